"""The models run on JAX as on TensorFlow: tested, not claimed (issue 13).

Two checks:

* ``backend_agnostic`` tests (these, the layer tests and the keras-hub parity tests) run twice in
  ``make test``: on TensorFlow and again with ``KERAS_BACKEND=jax``. keras-hub's models run on JAX
  too, so our classifier is compared with keras-hub's on each backend.
* ``test_tensorflow_and_jax_agree``: the same saved weights of a backbone, a BertClassifier and a
  BertPretrainer give the same outputs on both backends (this process computes on its backend,
  a subprocess on the other). Measured (TF 2.21 vs JAX 0.10.2, tiny preset, real padded sentences,
  2-core CPU): sequence_output 7.2e-07, pooled_output 1.3e-07, classifier logits 4.8e-08, MLM logits
  5.4e-07, NSP logits 8.4e-09 max |diff|; tolerance 1e-5.

TensorFlow-only parts (tf.data pipelines, the in-graph tokenizer, BertPreprocessor) are not run here.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402

from bertcourse import BertConfig  # noqa: E402
from bertcourse.convert import to_keras_hub  # noqa: E402
from bertcourse.models import BertBackbone  # noqa: E402
from bertcourse.tasks import BertClassifier  # noqa: E402

from test_backbone_parity import CFG, FP32_TOL, real_batch  # noqa: E402

BACKEND = keras.backend.backend()
OTHER = {"tensorflow": "jax", "jax": "tensorflow"}.get(BACKEND)

# Builds the three models from CFG and computes their outputs on a batch; run here and in the subprocess.
MODELS = """
import numpy as np
import keras
from bertcourse import BertConfig
from bertcourse.models import BertBackbone, BertPretrainer
from bertcourse.tasks import BertClassifier


def build(cfg_dict):
    cfg = BertConfig.from_dict(cfg_dict)
    return {"backbone": BertBackbone(cfg), "classifier": BertClassifier(BertBackbone(cfg), num_classes=3),
            "pretrainer": BertPretrainer(BertBackbone(cfg))}


def outputs(models, batch):
    inputs = {k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    out = {"backbone." + k: v for k, v in models["backbone"](inputs, training=False).items()}
    out["classifier.logits"] = models["classifier"](inputs, training=False)
    pre = models["pretrainer"](dict(inputs, masked_positions=batch["masked_positions"]), training=False)
    out.update({"pretrainer." + k: v for k, v in pre.items()})
    return {k: np.asarray(keras.ops.convert_to_numpy(v), "float32") for k, v in out.items()}
"""

SUBPROCESS = MODELS + """
import json, sys
d = sys.argv[1]
assert keras.backend.backend() == sys.argv[2], keras.backend.backend()
models = build(json.load(open(d + "/config.json")))
for name, model in models.items():
    model.load_weights(f"{d}/{name}.weights.h5")
np.savez(f"{d}/other.npz", **outputs(models, dict(np.load(d + "/batch.npz"))))
"""


@pytest.mark.skipif(OTHER is None, reason=f"compares TensorFlow with JAX; this run uses {BACKEND}")
def test_tensorflow_and_jax_agree(tmp_path):
    namespace = {}
    exec(MODELS, namespace)  # noqa: S102 - the same code the subprocess runs
    keras.utils.set_random_seed(3)
    models = namespace["build"](CFG.to_dict())
    batch = real_batch(n=4, seq_len=24)
    batch["masked_positions"] = np.array([[1, 2, 5], [3, 4, 0], [1, 6, 7], [2, 0, 0]], "int32")
    for name, model in models.items():
        model.save_weights(tmp_path / f"{name}.weights.h5")
    (tmp_path / "config.json").write_text(json.dumps(CFG.to_dict()))
    np.savez(tmp_path / "batch.npz", **batch)
    here = namespace["outputs"](models, batch)

    env = dict(os.environ, KERAS_BACKEND=OTHER, JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", SUBPROCESS, str(tmp_path), OTHER], env=env, capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, f"{OTHER} subprocess failed:\n{proc.stderr[-3000:]}"
    there = dict(np.load(tmp_path / "other.npz"))
    assert set(there) == set(here)
    diffs = {k: float(np.abs(here[k] - there[k]).max()) for k in sorted(here)}
    print(f"{BACKEND} vs {OTHER} max |diff|: " + ", ".join(f"{k} {v:.2g}" for k, v in diffs.items()))
    for key, diff in diffs.items():
        assert np.std(here[key]) > 0, key
        assert diff <= FP32_TOL, f"{BACKEND} vs {OTHER} {key}: max |diff| = {diff:.3g}"


@pytest.mark.backend_agnostic
def test_classifier_logits_match_keras_hub_classifier():
    """Our BertClassifier and keras-hub's, same weights, on the backend this run uses."""
    batch = real_batch(n=6, seq_len=32)
    keras.utils.set_random_seed(5)
    ours = BertClassifier(BertBackbone(CFG), num_classes=3)
    theirs = keras_hub.models.BertClassifier(to_keras_hub(ours.backbone), num_classes=3, preprocessor=None)
    theirs.get_layer("logits").set_weights(ours.output_dense.get_weights())
    want = keras.ops.convert_to_numpy(theirs(batch, training=False))
    got = keras.ops.convert_to_numpy(ours(batch, training=False))
    diff = float(np.abs(want - got).max())
    assert diff <= FP32_TOL, f"{BACKEND}: logits max |diff| vs keras_hub.models.BertClassifier = {diff:.3g}"
    assert got.shape == (6, 3) and np.std(got) > 0


@pytest.mark.backend_agnostic
def test_backbone_trains_one_step():
    """A gradient step runs on this backend (fit on a tiny classifier) and changes the weights."""
    keras.utils.set_random_seed(0)
    clf = BertClassifier(BertBackbone(BertConfig.preset("tiny", vocab_size=200, num_layers=1)), num_classes=2)
    clf.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = {"token_ids": np.random.default_rng(0).integers(5, 200, (8, 12)).astype("int32"),
         "segment_ids": np.zeros((8, 12), "int32"), "padding_mask": np.ones((8, 12), "int32")}
    before = keras.ops.convert_to_numpy(clf.output_dense.kernel).copy()
    history = clf.fit(x, np.arange(8) % 2, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(before, keras.ops.convert_to_numpy(clf.output_dense.kernel))


@pytest.mark.backend_agnostic
def test_pretrainer_trains_one_step():
    """BertPretrainer's built-in loss (MLM + NSP) and its metrics work on this backend."""
    from bertcourse.models import BertPretrainer

    keras.utils.set_random_seed(0)
    model = BertPretrainer(BertBackbone(BertConfig.preset("tiny", vocab_size=200, num_layers=1)))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(5, 200, (8, 12)).astype("int32"), "segment_ids": np.zeros((8, 12), "int32"),
         "padding_mask": np.ones((8, 12), "int32"), "masked_positions": rng.integers(1, 12, (8, 3)).astype("int32")}
    y = {"mlm": rng.integers(5, 200, (8, 3)).astype("int32"), "nsp": np.arange(8) % 2}
    batches = [tuple({k: v[i:i + 4] for k, v in d.items()} for d in (x, y, {"mlm": np.ones((8, 3), "float32")}))
               for i in (0, 4)]
    logs = model.fit((b for b in batches), steps_per_epoch=2, epochs=1, shuffle=False, verbose=0).history
    assert np.isfinite(logs["loss"][0]) and 0 < logs["mlm_loss"][0] < 10 and "nsp_accuracy" in logs
