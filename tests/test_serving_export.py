"""Export: a SavedModel that takes raw strings, reloaded in a fresh process that imports only
tensorflow + tensorflow_text, gives the Python pipeline's outputs on real texts (single texts and pairs)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bertcourse.cli import main as cli_main
from bertcourse.errors import ModelInputError, RunDirectoryError
from bertcourse.models import BertBackbone
from bertcourse.serving.export import export_task, read_serving_metadata
from bertcourse.tasks import BertClassifier, TextClassificationPipeline
from bertcourse.tasks.base import trim_padding
from bertcourse.text import BertPreprocessor, bert_uncased_vocab_path
from bertcourse.training.run import RunDirectory
from serving_support import CHECK, finetune_tiny_run

TEXTS = [t for t, _ in CHECK] + [
    "Café CRÈME was, frankly, GREAT — naïve but wonderful!",        # accents, case, punctuation
    "The [MASK] was terrible.",                                       # a special token written in the text
    "",                                                               # empty string: [CLS] [SEP]
    " ".join(["a great film with a wonderful cast"] * 12),            # longer than the 32-token sequence
]
PAIRS = [("A great film.", "I loved it."), ("Terrible.", "An awful evening, really."), ("", "x")]

FRESH = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer's ops
args = json.loads(sys.argv[1])
out = {"bertcourse_imported": any(m.split(".")[0] == "bertcourse" for m in sys.modules)}
single = tf.saved_model.load(args["single"]).signatures["serving_default"]
r = single(text=tf.constant(args["texts"]))
out["single"] = {k: (v.numpy().astype(str) if v.dtype == tf.string else v.numpy()).tolist() for k, v in r.items()}
pair = tf.saved_model.load(args["pair"]).signatures["serving_default"]
r = pair(text=tf.constant([a for a, _ in args["pairs"]]), text_pair=tf.constant([b for _, b in args["pairs"]]))
out["pair"] = {k: (v.numpy().astype(str) if v.dtype == tf.string else v.numpy()).tolist() for k, v in r.items()}
out["pair_inputs"] = sorted(pair.structured_input_signature[1])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    run = finetune_tiny_run(root)
    single = export_task(run, root / "single")
    pre = BertPreprocessor.from_vocab_file(bert_uncased_vocab_path(), sequence_length=16)
    pair_model = BertClassifier(BertBackbone("tiny", vocab_size=30522), 3, preprocessor=pre,
                                labels=["entailment", "neutral", "contradiction"])
    pair = export_task(pair_model, root / "pair", pairs=True)
    return {"run": run, "single": single, "pair": pair, "pair_model": pair_model,
            "model": RunDirectory(run).load_task()}


def _python_outputs(model, raw):
    logits = model.predict_on_batch(trim_padding(model.preprocess(raw)))
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return np.asarray(logits), e / e.sum(-1, keepdims=True)


def test_fresh_process_without_bertcourse_gives_the_pipelines_outputs(exported):
    args = {"single": str(exported["single"]), "pair": str(exported["pair"]), "texts": TEXTS,
            "pairs": [list(p) for p in PAIRS]}
    proc = subprocess.run([sys.executable, "-c", FRESH, json.dumps(args)], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["bertcourse_imported"] is False

    model = exported["model"]
    logits, probs = _python_outputs(model, TEXTS)
    served = got["single"]
    np.testing.assert_allclose(served["logits"], logits, atol=1e-5)
    np.testing.assert_allclose(served["probabilities"], probs, atol=1e-6)
    pipeline = TextClassificationPipeline(model)(TEXTS)
    assert served["label"] == [r["label"] for r in pipeline]
    assert served["label_id"] == [model.class_names.index(r["label"]) for r in pipeline]
    np.testing.assert_allclose(np.max(served["probabilities"], -1), [r["score"] for r in pipeline], atol=1e-6)
    assert served["label"][:len(CHECK)] == [label for _, label in CHECK]  # the model learnt the cue words

    pair_model = exported["pair_model"]
    logits, probs = _python_outputs(pair_model, ([a for a, _ in PAIRS], [b for _, b in PAIRS]))
    np.testing.assert_allclose(got["pair"]["logits"], logits, atol=1e-5)
    pipeline = TextClassificationPipeline(pair_model)([{"text": a, "text_pair": b} for a, b in PAIRS])
    assert got["pair"]["label"] == [r["label"] for r in pipeline]
    assert got["pair_inputs"] == ["text", "text_pair"]


def test_metadata_and_vocabulary_travel_as_assets(exported):
    meta = read_serving_metadata(exported["single"])
    assert meta["task"] == "classification" and meta["inputs"] == ["text"]
    assert meta["labels"] == ["neg", "pos"] and meta["sequence_length"] == 32 and meta["lowercase"] is True
    vocab = (exported["single"] / "assets" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 30522 and vocab[101] == "[CLS]"
    assert read_serving_metadata(exported["pair"])["inputs"] == ["text", "text_pair"]


def test_refusals(exported, tmp_path):
    with pytest.raises(RunDirectoryError, match="already exists"):
        export_task(exported["model"], exported["single"])
    with pytest.raises(RunDirectoryError, match="holds no run"):
        export_task(tmp_path, tmp_path / "out")
    RunDirectory.create(tmp_path / "pre", "pretraining", {})
    with pytest.raises(RunDirectoryError, match="pretraining run"):
        export_task(tmp_path / "pre", tmp_path / "out")
    with pytest.raises(TypeError, match="run directory"):
        export_task(42, tmp_path / "out")
    with pytest.raises(RunDirectoryError, match="not a SavedModel"):
        read_serving_metadata(tmp_path)
    # overwrite replaces an export in place, atomically
    again = export_task(exported["pair_model"], tmp_path / "again", pairs=True)
    assert export_task(exported["pair_model"], again, pairs=True, overwrite=True) == again
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_export_dtype_bfloat16_from_the_command_line(exported, tmp_path):
    """`bertcourse export RUN OUT --dtype bfloat16`: the same weights stored and computed in bf16 (about half
    the variables on disk), the outputs of the Python model under that policy, labels as float32's on the
    texts the tiny model learnt with a margin."""
    out = tmp_path / "bf16"
    assert cli_main(["export", str(exported["run"]), str(out), "--dtype", "bfloat16"]) == 0
    assert read_serving_metadata(out)["dtype"] == "bfloat16"
    assert read_serving_metadata(exported["single"])["dtype"] == "float32"

    def variables_bytes(folder):
        return sum(f.stat().st_size for f in (folder / "variables").iterdir())
    assert variables_bytes(out) < 0.6 * variables_bytes(exported["single"])

    half = exported["model"].with_dtype("bfloat16")
    assert half.backbone.dtype_policy.name == "bfloat16" and half.name == exported["model"].name
    for a, b in zip(half.get_weights(), exported["model"].get_weights()):
        np.testing.assert_allclose(np.asarray(a, np.float32), b, rtol=1 / 128, atol=1e-6)  # bf16: 8 bits
    served = tf.saved_model.load(str(out)).signatures["serving_default"](text=tf.constant(TEXTS))
    logits, _ = _python_outputs(half, TEXTS)  # padded differently (x8 in the graph): bf16 rounding apart
    np.testing.assert_allclose(served["logits"].numpy(), logits, atol=1e-2)
    float32_logits, _ = _python_outputs(exported["model"], TEXTS)
    np.testing.assert_allclose(served["logits"].numpy(), float32_logits, atol=0.1)
    assert served["label"].numpy().astype(str)[:len(CHECK)].tolist() == [label for _, label in CHECK]

    back = export_task(half, tmp_path / "back", dtype="float32")  # and back: a bf16 model exported as float32
    assert read_serving_metadata(back)["dtype"] == "float32"
    assert variables_bytes(back) > 0.9 * variables_bytes(exported["single"])

    with pytest.raises(ModelInputError, match="dtype must be one of"):
        exported["model"].with_dtype("int8")
    with pytest.raises(SystemExit):
        cli_main(["export", str(exported["run"]), str(tmp_path / "never"), "--dtype", "int8"])
    assert not (tmp_path / "never").exists()
