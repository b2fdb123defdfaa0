"""TFLite: a classifier with the tokenizer in the graph, float32 or dynamic-range quantised (lesson 14).

What works with the Python interpreter here (TensorFlow 2.21, tensorflow-text 2.21; TFLite builtins +
tensorflow-text's TFLite kernels, ``tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS``; this
interpreter has no Flex delegate, so no TensorFlow op can fall back):

* The exact :class:`~bertcourse.text.BertPreprocessor` does NOT convert: its BERT normalisation and
  special-token splitting are TensorFlow string ops with no TFLite kernel. The first the interpreter
  refuses is ``FlexUnicodeTranscode`` (invalid UTF-8 -> U+FFFD); behind it ``NormalizeUTF8`` (NFD),
  ``StaticRegexReplace``, ``StringLower``, ``RegexSplitWithOffsets``, ``StaticRegexFullMatch`` and the
  ragged ops of the packing (``RaggedRange``...). :func:`exact_preprocessor_blockers` lists them.
* What does convert: ``tensorflow_text.FastBertNormalizer`` (lower-case + NFD + strip accents) and
  ``tensorflow_text.FastWordpieceTokenizer`` (whitespace/punctuation split + WordPiece), both with TFLite
  kernels, then packing written with builtin ops (``to_tensor`` with a fixed width, ``where`` over
  positions: no ragged slicing). That graph is what :func:`convert_classifier` writes with
  ``with_tokenizer=True``: raw strings in, logits and probabilities out.

  It gives the same ids as the exact preprocessor on ordinary text (the tests compare them), but not
  everywhere: ``FastBertNormalizer`` case-folds (``"Straße"`` -> ``strasse``, BERT keeps ``ß``) and uses
  compatibility decomposition (``"´"`` disappears); special tokens written in the text (``[MASK]``) are
  split as punctuation + word; single texts only (no pairs).
* ``with_tokenizer=False`` converts the encoder + head alone (inputs ``token_ids``, ``segment_ids``,
  ``padding_mask``): the exact preprocessor then runs outside, in TensorFlow or in Python.

Variables are frozen into constants before conversion: converting the SavedModel of a Keras 3 model
here keeps its weights as uninitialised TFLite resource variables (a 70 kB file that answers NaN).

Tolerances (tests): float32 logits within 1e-4 of the SavedModel's; dynamic-range quantised
(int8 weights, float activations) probabilities within 0.05 and the same labels on the test texts.

>>> import tempfile
>>> from bertcourse.models import BertBackbone
>>> from bertcourse.tasks import BertClassifier
>>> from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer
>>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
>>> pre = BertPreprocessor(FastWordPieceTokenizer(vocab), sequence_length=8)
>>> clf = BertClassifier(BertBackbone("tiny", vocab_size=len(vocab)), 2, preprocessor=pre, labels=["neg", "pos"])
>>> path = convert_classifier(clf, tempfile.mkdtemp() + "/clf.tflite")
>>> lite = TFLiteClassifier(path)
>>> out = lite(["good film", "bad film"])
>>> out["probabilities"].shape, lite.labels
((2, 2), ['neg', 'pos'])
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow.lite.python.interpreter import InterpreterWithCustomOps
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from bertcourse.errors import ModelInputError
from bertcourse.serving.export import load_task_model
from bertcourse.tasks.classification import BertClassifier

__all__ = ["convert_classifier", "TFLiteClassifier", "exact_preprocessor_blockers", "QUANTIZATIONS",
           "tflite_tokenizer_ids"]

QUANTIZATIONS = ("none", "dynamic")


def _lite_tokenizer(model: BertClassifier):
    """The TFLite-convertible tokenizer of ``model``'s vocabulary, as a function strings -> token ids."""
    pre = model.preprocessor
    vocab = pre.tokenizer.get_vocabulary()
    normalizer = tf_text.FastBertNormalizer(lower_case_nfd_strip_accents=pre.tokenizer.lowercase)
    wordpiece = tf_text.FastWordpieceTokenizer(
        vocab=vocab, suffix_indicator=pre.tokenizer.suffix_indicator, unknown_token=pre.tokenizer.unk_token,
        max_bytes_per_word=4 * pre.tokenizer.max_input_chars_per_word, token_out_type=tf.int32,
        no_pretokenization=False, support_detokenization=False)
    length, cls_id, sep_id, pad_id = pre.sequence_length, pre.cls_id, pre.sep_id, pre.pad_id

    def tokenize(text: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = wordpiece.tokenize(normalizer.normalize(text))
        n = tf.shape(text)[0]
        body = ids.to_tensor(default_value=pad_id, shape=[None, length - 2])  # cut at the budget
        kept = tf.minimum(tf.cast(ids.row_lengths(), tf.int32), length - 2)
        positions = tf.range(length)[tf.newaxis, :]
        sep_at = (kept + 1)[:, tf.newaxis]
        shifted = tf.concat([tf.fill([n, 1], cls_id), body, tf.fill([n, 1], pad_id)], axis=1)
        token_ids = tf.where(positions == sep_at, sep_id, tf.where(positions > sep_at, pad_id, shifted))
        mask = tf.cast(positions <= sep_at, tf.int32)
        return {"token_ids": token_ids, "segment_ids": tf.zeros_like(token_ids), "padding_mask": mask}

    return tokenize


def _heads(model: BertClassifier, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    logits = tf.cast(model(inputs, training=False), tf.float32)
    function = model.default_function()
    probabilities = tf.nn.softmax(logits, -1) if function == "softmax" else \
        tf.sigmoid(logits) if function == "sigmoid" else tf.identity(logits)
    return {"logits": logits, "probabilities": probabilities}


def tflite_tokenizer_ids(model: BertClassifier, texts: Sequence[str]) -> np.ndarray:
    """The token ids the TFLite graph's tokenizer gives (run in TensorFlow), ``[n, sequence_length]``:
    compare them with ``model.preprocess(texts)["token_ids"]`` to see where the two tokenizers differ."""
    return _lite_tokenizer(model)(tf.constant(list(texts), tf.string))["token_ids"].numpy()


def _frozen_function(model: BertClassifier, with_tokenizer: bool):
    if with_tokenizer:
        tokenize = _lite_tokenizer(model)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(text):
            return _heads(model, tokenize(text))
    else:
        length = model.preprocessor.sequence_length if model.preprocessor is not None else None
        spec = [tf.TensorSpec([None, length], tf.int32, name=k) for k in ("token_ids", "segment_ids", "padding_mask")]

        @tf.function(input_signature=spec)
        def serve(token_ids, segment_ids, padding_mask):
            return _heads(model, {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask})
    return convert_variables_to_constants_v2(serve.get_concrete_function())


def convert_classifier(model_or_run_dir: Any, out_path: str | os.PathLike, quantize: str = "none",
                       with_tokenizer: bool = True) -> Path:
    """Write a classifier (a model with a preprocessor, or a fine-tuning run directory) as a ``.tflite``
    file, and ``<out>.json`` next to it (labels, inputs, tokenizer, quantisation).

    ``quantize``: ``"none"`` (float32) or ``"dynamic"`` (dynamic-range: int8 weights, float
    activations, about 4x smaller). ``with_tokenizer``: strings in (see the module doc for what the
    TFLite tokenizer does differently) or the backbone's three id tensors in.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}.")
    model, _ = load_task_model(model_or_run_dir)
    if not isinstance(model, BertClassifier):
        raise ModelInputError(f"TFLite conversion supports text classification; got a {type(model).__name__}.")
    if with_tokenizer:
        model._require_preprocessor()
    frozen = _frozen_function(model, with_tokenizer)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = True  # the tensorflow-text kernels, registered when the file is loaded
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    content = converter.convert()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(content)
    inputs = ["text"] if with_tokenizer else ["token_ids", "segment_ids", "padding_mask"]
    meta = {"task": "classification", "labels": model.class_names, "inputs": inputs,
            "outputs": ["logits", "probabilities"], "quantize": quantize, "with_tokenizer": with_tokenizer,
            "sequence_length": model.preprocessor.sequence_length if model.preprocessor is not None else None,
            "tokenizer": "tensorflow_text FastBertNormalizer + FastWordpieceTokenizer" if with_tokenizer else None}
    Path(str(out) + ".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


class TFLiteClassifier:
    """A ``.tflite`` file from :func:`convert_classifier`, run by the TFLite interpreter with
    tensorflow-text's kernels registered. ``__call__`` takes texts (or, for a model without the
    tokenizer, the id arrays) and returns ``{"logits", "probabilities"}`` as NumPy."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        self.path = Path(path)
        meta_path = Path(str(self.path) + ".json")
        self.metadata = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        self.labels = self.metadata.get("labels")
        with warnings.catch_warnings():  # tf.lite.Interpreter announces its move to ai_edge_litert
            warnings.simplefilter("ignore")
            self.interpreter = InterpreterWithCustomOps(
                model_path=str(self.path), num_threads=num_threads,
                custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
        self._inputs = {d["name"].split(":")[0]: d for d in self.interpreter.get_input_details()}
        self._outputs = self.interpreter.get_output_details()
        self._names = self._output_names()
        self._shapes: dict | None = None

    def _output_names(self) -> list[str]:
        # a frozen function's outputs are Identity, Identity_1... in the order of its sorted dict keys
        order = sorted(["logits", "probabilities"])
        by_name = sorted(self._outputs, key=lambda d: d["name"])
        return [order[i] if i < len(order) else d["name"] for i, d in enumerate(by_name)]

    @property
    def input_names(self) -> list[str]:
        return sorted(self._inputs)

    def __call__(self, inputs: Sequence[str] | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if isinstance(inputs, dict):
            arrays = {k: np.asarray(v, np.int32) for k, v in inputs.items()}
        else:
            if isinstance(inputs, str):
                inputs = [inputs]
            arrays = {"text": np.array([s.encode("utf-8") for s in inputs], dtype=object)}
        missing = set(self._inputs) - {_input_key(k, self._inputs) for k in arrays}
        if missing:
            raise ModelInputError(f"This TFLite model takes {self.input_names}, got {sorted(arrays)}.")
        interp = self.interpreter
        shapes = {k: v.shape for k, v in arrays.items()}
        if shapes != self._shapes:  # re-plan memory only when the batch shape changes
            for key, value in arrays.items():
                detail = self._inputs[_input_key(key, self._inputs)]
                interp.resize_tensor_input(detail["index"], value.shape)
            interp.allocate_tensors()
            self._shapes = shapes
        for key, value in arrays.items():
            interp.set_tensor(self._inputs[_input_key(key, self._inputs)]["index"], value)
        interp.invoke()
        by_name = sorted(self._outputs, key=lambda d: d["name"])
        return {name: interp.get_tensor(d["index"]) for name, d in zip(self._names, by_name)}


def _input_key(key: str, inputs: dict) -> str:
    if key in inputs:
        return key
    matches = [k for k in inputs if k.endswith(key)]
    return matches[0] if len(matches) == 1 else key


def exact_preprocessor_blockers(model: BertClassifier) -> list[str]:
    """Convert ``model`` with its exact :class:`~bertcourse.text.BertPreprocessor` in the graph (TFLite
    builtins, Flex allowed so the converter names every op) and return the ops that the Python TFLite
    interpreter here cannot run: the Flex (TensorFlow) ops and the custom ops without a
    tensorflow-text TFLite kernel. Empty means the exact tokenizer would convert."""
    model._require_preprocessor()
    pre = model.preprocessor

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        encoded = pre(text)
        return _heads(model, {k: tf.cast(v, tf.int32) for k, v in encoded.items()})

    converter = tf.lite.TFLiteConverter.from_concrete_functions([convert_variables_to_constants_v2(
        serve.get_concrete_function())])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    converter.allow_custom_ops = True
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "exact.tflite"
        path.write_bytes(converter.convert())
        ops = set(_op_names(path))
    kernels = {"FastWordpieceTokenizeWithOffsets", "FastWordpieceDetokenize", "FastBertNormalize",
               "RaggedTensorToTensor", "WhitespaceTokenizeWithOffsetsV2", "RoundRobinTrim",
               "RoundRobinGenerateMasks", "ByteSplitWithOffsets", "NgramsStringJoin"}
    return sorted(op for op in ops if op.startswith("Flex") or (op not in kernels and not op.isupper()))


def _op_names(path: Path) -> list[str]:
    """The op names in a .tflite file (builtin ops upper-case, custom and Flex ops by their name)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = tf.lite.Interpreter(model_path=str(path))
    return [d["op_name"] for d in interp._get_ops_details()]  # noqa: SLF001  the interpreter's only op listing
