"""Export a fine-tuned task as a SavedModel that takes raw strings (lesson 14; ``bertcourse export``).

The tokenizer and the packing run inside the graph (:class:`~bertcourse.text.BertPreprocessor`, on
``tensorflow_text`` ops), so a client sends text and gets the task's outputs back; nothing of
``bertcourse`` is needed to load it, only ``tensorflow`` and ``tensorflow_text`` (whose ops the graph
uses: ``import tensorflow_text`` registers them)::

    import tensorflow as tf, tensorflow_text  # noqa: F401  (registers the tokenizer's ops)
    model = tf.saved_model.load("export/sentiment")
    out = model.signatures["serving_default"](text=tf.constant(["a fine film"]))
    out["label"], out["probabilities"]

The serving signature (``serving_default``) of a classifier:

* inputs: ``text`` ``[batch]`` ``tf.string`` (and ``text_pair`` for a sentence-pair model);
* outputs: ``logits`` ``[batch, classes]`` float32, ``probabilities`` (softmax; sigmoid for a single
  output, as Hugging Face's pipeline), ``label_id`` ``[batch]`` int32 and ``label`` ``[batch]`` string
  (the class name).

Inside the graph each batch is cut to its longest row rounded up to a multiple of 8 before the encoder
runs (as the Python pipeline's :func:`~bertcourse.tasks.base.trim_padding`): a batch of short texts
does not pay for ``sequence_length`` positions, and the logits are the Python pipeline's.

Assets (``assets/`` of the SavedModel, referenced by the graph, so they move with it):
``vocab.txt`` (the WordPiece vocabulary, one token per line, line number = id) and ``serving.json``
(task, input and output names, labels, sequence length, lower-casing: what a server or client needs).

>>> import json, tempfile
>>> from bertcourse.models import BertBackbone
>>> from bertcourse.tasks import BertClassifier
>>> from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer
>>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
>>> pre = BertPreprocessor(FastWordPieceTokenizer(vocab), sequence_length=8)
>>> clf = BertClassifier(BertBackbone("tiny", vocab_size=len(vocab)), 2, preprocessor=pre, labels=["neg", "pos"])
>>> out = export_task(clf, tempfile.mkdtemp() + "/clf")
>>> json.loads((out / "assets" / "serving.json").read_text())["inputs"]
['text']
>>> served = tf.saved_model.load(str(out)).signatures["serving_default"](text=tf.constant(["good film"]))
>>> sorted(served), served["label"].shape
(['label', 'label_id', 'logits', 'probabilities'], TensorShape([1]))
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import tensorflow as tf

from bertcourse.errors import ModelInputError, RunDirectoryError
from bertcourse.tasks.base import Task
from bertcourse.tasks.classification import BertClassifier
from bertcourse.training.run import RunDirectory

__all__ = ["export_task", "read_serving_metadata", "load_task_model", "SERVING_METADATA", "VOCAB_ASSET",
           "PAD_TO_MULTIPLE_OF"]

SERVING_METADATA = "serving.json"
VOCAB_ASSET = "vocab.txt"
PAD_TO_MULTIPLE_OF = 8
FORMAT_VERSION = 1


def load_task_model(model_or_run_dir: Any) -> tuple[Task, dict]:
    """``(task model, the run's task.json settings)`` from a task model (settings ``{}``) or a fine-tuning
    run directory; one line (``RunDirectoryError``) for a folder that holds no fine-tuned task."""
    if isinstance(model_or_run_dir, Task):
        return model_or_run_dir, {}
    if not isinstance(model_or_run_dir, (str, os.PathLike)):
        raise TypeError(f"export_task takes a task model (e.g. BertClassifier) or a run directory, got "
                        f"{type(model_or_run_dir).__name__}.")
    run = RunDirectory(model_or_run_dir)
    if not run.path.is_dir():
        raise RunDirectoryError(f"{run.path} is not a directory: give a fine-tuning run (`bertcourse finetune "
                                f"--out ...`) or pass the model itself.")
    if not run.exists:
        raise RunDirectoryError(f"{run.path} holds no run (no run.json): give a `bertcourse finetune` output.")
    if run.kind == "pretraining":
        raise RunDirectoryError(f"{run.path} is a pretraining run: fine-tune a task on it first "
                                f"(`bertcourse finetune --init {run.path} ...`), then export that run.")
    model = run.load_task()
    return model, dict(run.read_json("task_config", {}) or {})


def _trim(inputs: dict[str, tf.Tensor], multiple: int) -> dict[str, tf.Tensor]:
    """Graph twin of ``tasks.base.trim_padding``: columns past the longest row (rounded up) are cut."""
    mask = tf.cast(inputs["padding_mask"], tf.int32)
    width = tf.shape(mask)[1]
    longest = tf.maximum(tf.reduce_max(tf.reduce_sum(mask, axis=1)), 1)  # empty batch: 1
    keep = tf.minimum(width, (longest + multiple - 1) // multiple * multiple)
    return {"token_ids": tf.cast(inputs["token_ids"], tf.int32)[:, :keep],
            "segment_ids": tf.cast(inputs["segment_ids"], tf.int32)[:, :keep],
            "padding_mask": mask[:, :keep]}


def _classifier_outputs(model: BertClassifier, encoded: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    logits = tf.cast(model(encoded, training=False), tf.float32)
    function = model.default_function()
    if function == "softmax":
        probabilities = tf.nn.softmax(logits, axis=-1)
    elif function == "sigmoid":
        probabilities = tf.sigmoid(logits)
    else:
        probabilities = tf.identity(logits)
    if model.num_classes == 1:  # one sigmoid output: class 1 when p > 0.5 (names as in postprocess)
        label_id = tf.zeros(tf.shape(logits)[:1], tf.int32)
    else:
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    names = tf.constant(model.class_names)
    return {"logits": logits, "probabilities": probabilities, "label_id": label_id,
            "label": tf.gather(names, label_id)}


class _ServingModule(tf.Module):
    """What is saved: the task model, its preprocessor and the assets; one serving function."""

    def __init__(self, model: Task, pairs: bool, assets: dict[str, Path], multiple: int):
        super().__init__(name="bertcourse_serving")
        self.model = model
        self.preprocessor = model.preprocessor
        self.assets = {name: tf.saved_model.Asset(str(path)) for name, path in assets.items()}
        self.multiple = multiple
        text = tf.TensorSpec([None], tf.string, name="text")
        if pairs:
            pair = tf.TensorSpec([None], tf.string, name="text_pair")
            self.serve = tf.function(self._serve_pairs, input_signature=[text, pair])
        else:
            self.serve = tf.function(self._serve, input_signature=[text])

    def _run(self, segments) -> dict[str, tf.Tensor]:
        encoded = _trim(self.preprocessor(segments), self.multiple)
        return _classifier_outputs(self.model, encoded)

    def _serve(self, text):
        return self._run(text)

    def _serve_pairs(self, text, text_pair):
        return self._run((text, text_pair))


def _metadata(model: BertClassifier, pairs: bool, settings: dict) -> dict[str, Any]:
    pre = model.preprocessor
    return {"format_version": FORMAT_VERSION, "task": "classification",
            "signature": "serving_default",
            "inputs": ["text", "text_pair"] if pairs else ["text"],
            "outputs": ["logits", "probabilities", "label_id", "label"],
            "labels": model.class_names, "function_to_apply": model.default_function(),
            "sequence_length": pre.sequence_length, "truncation": pre.truncation,
            "lowercase": pre.tokenizer.lowercase, "vocab_size": pre.tokenizer.vocabulary_size(),
            "num_parameters": int(model.count_params()),
            "pad_to_multiple_of": PAD_TO_MULTIPLE_OF,
            "tensorflow": tf.__version__, "tensorflow_text": version("tensorflow-text"),
            "bertcourse": _own_version(), "run_settings": settings}


def _own_version() -> str:
    try:
        return version("bertcourse")
    except Exception:  # running from a source tree that is not installed
        return "unknown"


def export_task(model_or_run_dir: Any, out_dir: str | os.PathLike, pairs: bool | None = None,
                overwrite: bool = False) -> Path:
    """Write ``model_or_run_dir`` (a task model with a preprocessor, or a fine-tuning run directory) to
    ``out_dir`` as a SavedModel that takes raw strings (see the module doc for the signature).

    ``pairs``: a sentence-pair model (inputs ``text`` and ``text_pair``); ``None`` reads it from the
    run's ``task.json`` (``False`` for a model passed in). ``overwrite``: replace an existing export.
    The SavedModel is written to a temporary folder next to ``out_dir`` and renamed into place, so a
    crash never leaves half an export. Returns ``Path(out_dir)``.
    """
    model, settings = load_task_model(model_or_run_dir)
    if not isinstance(model, BertClassifier):
        raise ModelInputError(f"Export supports text classification today; got a {type(model).__name__}.")
    model._require_preprocessor()
    if pairs is None:
        pairs = bool(settings.get("pairs", False))
    out = Path(out_dir)
    if out.exists() and not (overwrite and (out / "saved_model.pb").is_file()):
        what = "an export" if (out / "saved_model.pb").is_file() else "something else"
        hint = " (pass overwrite=True / --overwrite to replace it)" if what == "an export" else ""
        raise RunDirectoryError(f"{out} already exists and holds {what}{hint}; choose another output folder.")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        source = staging / "source-assets"
        source.mkdir()
        vocab = source / VOCAB_ASSET
        vocab.write_text("".join(t + "\n" for t in model.preprocessor.tokenizer.get_vocabulary()), encoding="utf-8")
        meta = source / SERVING_METADATA
        meta.write_text(json.dumps(_metadata(model, pairs, settings), indent=2, default=str) + "\n",
                        encoding="utf-8")
        module = _ServingModule(model, pairs, {"vocab": vocab, "metadata": meta}, PAD_TO_MULTIPLE_OF)
        saved = staging / "saved"
        tf.saved_model.save(module, str(saved), signatures={"serving_default": module.serve})
        if out.exists():
            shutil.rmtree(out)
        os.replace(saved, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def read_serving_metadata(export_dir: str | os.PathLike) -> dict[str, Any]:
    """``assets/serving.json`` of an export (what :func:`export_task` wrote)."""
    path = Path(export_dir) / "assets" / SERVING_METADATA
    if not (Path(export_dir) / "saved_model.pb").is_file():
        raise RunDirectoryError(f"{export_dir} is not a SavedModel (no saved_model.pb): export a run with "
                                f"`bertcourse export RUN OUT` first.")
    if not path.is_file():
        raise RunDirectoryError(f"{path} is missing: {export_dir} was not written by bertcourse export.")
    return json.loads(path.read_text(encoding="utf-8"))
