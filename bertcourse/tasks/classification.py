"""Sequence classification and regression: BERT's [CLS] pooled output -> dropout -> dense (lessons 08-09, 13).

    [CLS] text [SEP] (or [CLS] A [SEP] B [SEP]) --BertBackbone--> pooled = tanh(W h_[CLS] + b)
        --Dropout(0.1)--> Dense(num_classes) --> logits (float32, also under mixed precision)

The same head as keras-hub's ``BertClassifier`` and Hugging Face's ``BertForSequenceClassification``
(a test copies weights between ours and keras-hub's and compares logits; another runs Hugging Face's
pipeline on the same weights, written by :func:`save_hf_classifier`). With a preprocessor it reads raw
strings (``clf.predict(["a text"])``) and ``labels`` names the classes.

* single texts or pairs, any number of classes; ``problem_type="regression"`` (one output, MSE: a
  cross-encoder that scores a pair, e.g. STS-B's 0-5 similarity), as Hugging Face's ``problem_type``;
* :func:`label_map` -- label strings -> class ids, in a documented order;
* :func:`classification_metrics` -- accuracy and macro-F1; :func:`regression_metrics` -- Pearson,
  Spearman (and MSE), the same numbers as ``scipy.stats``;
* :class:`TextClassificationPipeline` -- ``pipeline("text-classification")``, Hugging Face's outputs;
* long texts (more tokens than ``sequence_length - 2``): :func:`classify_long`, or the pipeline's
  ``truncation=``/``stride=``/``aggregation=`` options (below);
* :func:`save_hf_classifier` -- write the model as a Hugging Face ``BertForSequenceClassification`` folder.

Long texts (lesson 13). ``truncation`` chooses which tokens the model sees (``body = sequence_length - 2``
tokens fit between ``[CLS]`` and ``[SEP]``):

* ``"head"`` -- the first ``body`` tokens (what the preprocessor does; Hugging Face's default);
* ``"head+tail"`` -- the first ``head_tokens`` and the last ``body - head_tokens`` tokens (Sun et al.
  2019, "How to Fine-Tune BERT for Text Classification": 128 + 382 of 510 was best on IMDB; the default
  ``head_tokens`` is ``body // 4``, the same share);
* ``"windows"`` -- every token, in windows of ``body`` tokens of which consecutive ones share
  ``stride`` tokens (:func:`bertcourse.text.windows.window_spans`, Hugging Face's ``stride``); each
  window is one ``[CLS] ... [SEP]`` input; the text's logits are the ``aggregation`` (``"mean"`` or
  ``"max"``, per class) of its windows' logits. Cost: one forward pass per window.

API::

    logits = classify_long(clf, texts, truncation="windows", stride=64, aggregation="mean")  # [n, classes]
    inputs, owner = long_text_inputs(clf.preprocessor, texts, "windows", stride=64)  # owner[i]: text of input i
    classify = pipeline("text-classification", model=clf, truncation="windows", stride=64, aggregation="max")
    classify(long_texts)  # or per call: classify(long_texts, truncation="head+tail")

Pairs are packed by the preprocessor (``"head"`` only). ``truncation="head"`` gives exactly
the logits of ``clf.predict(texts)``.

>>> from bertcourse.models import BertBackbone
>>> from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer
>>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
>>> pre = BertPreprocessor(FastWordPieceTokenizer(vocab), sequence_length=8)
>>> clf = BertClassifier(BertBackbone("tiny", vocab_size=len(vocab)), num_classes=2, preprocessor=pre,
...                      labels=["negative", "positive"])
>>> clf.predict(["good film", "bad film"], verbose=0).shape
(2, 2)
>>> classify = TextClassificationPipeline(clf)
>>> [sorted(r) for r in classify("good film")]
[['label', 'score']]
>>> inputs, owner = long_text_inputs(pre, ["good film " * 5, "bad"], "windows", stride=2)
>>> inputs["token_ids"].shape, owner.tolist()      # 10 tokens, windows of 6 sharing 2: [0, 6), [4, 10)
((3, 8), [0, 0, 1])
>>> classify_long(clf, ["good film " * 5, "bad"], truncation="windows", stride=2).shape
(2, 2)
>>> label_map(["pos", "neg", "pos"]), label_map(["2", "10", "2"]), label_map(["1", "1.0"])
({'neg': 0, 'pos': 1}, {'2': 0, '10': 1}, {'1': 0, '1.0': 1})
>>> regression_metrics([0.0, 1.0, 2.0, 3.0], [0.1, 0.9, 2.5, 2.4])["spearman"]
0.8
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf
from safetensors.numpy import load_file, save_file

from bertcourse.convert.hf import CONFIG_FILE, WEIGHTS_FILE, save_hf_bert
from bertcourse.errors import DataFileError, ModelInputError
from bertcourse.tasks.base import (GROUP_BATCHES, Task, TaskPipeline, as_preprocessor, as_text_batch, padded_batches,
                                   trim_padding)
from bertcourse.text.windows import window_spans

__all__ = ["BertClassifier", "TextClassificationPipeline", "classification_metrics", "regression_metrics",
           "label_map", "FUNCTIONS_TO_APPLY", "PROBLEM_TYPES", "TRUNCATIONS", "AGGREGATIONS", "long_text_inputs",
           "aggregate_windows", "classify_long", "save_hf_classifier"]

FUNCTIONS_TO_APPLY = ("softmax", "sigmoid", "none")
PROBLEM_TYPES = ("single_label_classification", "regression")   # Hugging Face's names
TRUNCATIONS = ("head", "head+tail", "windows")
AGGREGATIONS = ("mean", "max")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def label_map(labels: Sequence[str]) -> dict[str, int]:
    """Label string -> class id, over the distinct labels of ``labels``.

    Labels stay the strings as written: ``"1"`` and ``"1.0"`` are two labels (nothing is parsed and
    merged). Order of the ids: if every label is written as a decimal number (``"0"``, ``"-1"``,
    ``"2.5"``, ``"10"``) numeric order, ties such as ``"1"``/``"1.0"`` broken by the string; otherwise
    the strings sorted by code point (``"Neg" < "neg" < "pos"``).

    >>> label_map(["10", "9", "-1"])
    {'-1': 0, '9': 1, '10': 2}
    """
    labels = list(labels)
    bad = next((x for x in labels if not isinstance(x, str)), None)
    if bad is not None:
        raise TypeError(f"Labels must be strings as written in the data, got {bad!r} "
                        f"({type(bad).__name__}); convert them with str(...) first.")
    if not labels:
        raise DataFileError("No labels: a classifier needs at least one labelled example.")
    unique = set(labels)
    if all(_NUMBER.fullmatch(x) for x in unique):
        ordered = sorted(unique, key=lambda x: (float(x), x))
    else:
        ordered = sorted(unique)
    return {label: i for i, label in enumerate(ordered)}


def classification_metrics(labels: Sequence[int], predictions: Sequence[int], num_classes: int) -> dict[str, float]:
    """Accuracy and macro-averaged F1 over class ids.

    Macro-F1 is the mean of per-class ``F1 = 2 TP / (2 TP + FP + FN)`` over the classes that occur in
    ``labels`` or ``predictions`` (a class seen in neither has no F1 and is left out), so every class
    counts the same on imbalanced sets; the same number as ``sklearn.metrics.f1_score(labels,
    predictions, average="macro")``.

    >>> classification_metrics([0, 0, 1, 2], [0, 1, 1, 2], num_classes=3)
    {'accuracy': 0.75, 'macro_f1': 0.7777777777777777}
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(f"labels and predictions must be 1-D of the same length, got {labels.shape} "
                         f"and {predictions.shape}.")
    if labels.size == 0:
        raise ValueError("classification_metrics needs at least one example.")
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.min() < 0 or values.max() >= num_classes:
            raise ValueError(f"{name} must be class ids in [0, {num_classes}), got values in "
                             f"[{values.min()}, {values.max()}].")
    f1s = []
    for c in range(num_classes):
        tp = float(((predictions == c) & (labels == c)).sum())
        fp = float(((predictions == c) & (labels != c)).sum())
        fn = float(((predictions != c) & (labels == c)).sum())
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float((labels == predictions).mean()), "macro_f1": float(np.mean(f1s))}


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given the mean of the ranks they span (``scipy.stats.rankdata``'s default)."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.diff(np.r_[first, len(x)])
    ranks = np.empty(len(x), np.float64)
    ranks[order] = first[group] + (counts[group] + 1) / 2.0
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def regression_metrics(labels: Sequence[float], predictions: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation (and the mean squared error) of predicted against gold scores.

    Spearman is Pearson's correlation of the ranks (ties: mean rank), as ``scipy.stats.spearmanr``;
    a constant prediction has no correlation (``nan``). STS-B reports both x100.

    >>> m = regression_metrics([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.5])
    >>> round(m["pearson"], 4), m["spearman"], m["mse"]
    (0.9984, 1.0, 8.5625)
    """
    labels = np.asarray(labels, np.float64).reshape(-1)
    predictions = np.asarray(predictions, np.float64)
    if predictions.ndim == 2 and predictions.shape[1] == 1:  # a regression head's [n, 1] output
        predictions = predictions[:, 0]
    if labels.shape != predictions.shape:
        raise ValueError(f"labels and predictions must be 1-D of the same length, got {labels.shape} "
                         f"and {predictions.shape}.")
    if labels.size < 2:
        raise ValueError("regression_metrics needs at least two examples.")
    return {"pearson": _pearson(labels, predictions),
            "spearman": _pearson(_average_ranks(labels), _average_ranks(predictions)),
            "mse": float(((labels - predictions) ** 2).mean())}


def _softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def apply_function(logits: np.ndarray, function: str) -> np.ndarray:
    """Scores from logits as Hugging Face's pipeline computes them: ``"softmax"``, ``"sigmoid"``, ``"none"``."""
    if function == "softmax":
        return _softmax(logits)
    if function == "sigmoid":
        return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    if function == "none":
        return np.asarray(logits, np.float64)
    raise ValueError(f"function_to_apply must be one of {FUNCTIONS_TO_APPLY}, got {function!r}.")


@keras.saving.register_keras_serializable(package="bertcourse")
class BertClassifier(Task):
    """``BertBackbone`` + a classification head on the pooled ``[CLS]`` vector.

    Args:
        backbone: a :class:`~bertcourse.models.BertBackbone` (pretrained or fresh).
        num_classes: number of labels (2 for positive/negative sentiment).
        preprocessor: a :class:`~bertcourse.text.BertPreprocessor` (or a tokenizer, wrapped with
            ``sequence_length=128``) to read raw strings; ``None`` for tensors only.
        dropout: dropout on the pooled vector before the dense layer (BERT: 0.1).
        labels: the class names in class-id order (e.g. ``list(label_map(train_labels))``);
            ``None`` -> ``"LABEL_0"``, ``"LABEL_1"``... as Hugging Face names them.
        activation: ``None`` for logits (train with ``from_logits=True``), or e.g. ``"softmax"``.
        problem_type: ``"single_label_classification"`` (default: one class per input, cross-entropy)
            or ``"regression"`` (a real-valued score per output, MSE; usually ``num_classes=1``), as
            Hugging Face's ``config.problem_type``. The pipeline then reports the raw output as the score.

    ``RUN_KIND = "classification"``: a fine-tuning run (``bertcourse finetune``) of this task is rebuilt by
    :meth:`from_run_settings` from its ``task.json``.

    Inputs: the backbone's dict (``token_ids``, ``segment_ids``, ``padding_mask``), or raw strings in
    ``predict``. Output: ``[batch, num_classes]`` float32 logits (probabilities with
    ``activation="softmax"``).
    """

    RUN_KIND = "classification"

    def __init__(self, backbone, num_classes: int, preprocessor=None, dropout: float = 0.1,
                 labels: Sequence[str] | None = None, activation=None,
                 problem_type: str = "single_label_classification", **kwargs):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
        if problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        if labels is not None:
            labels = list(labels)
            if len(labels) != num_classes or len(set(labels)) != num_classes \
                    or not all(isinstance(x, str) for x in labels):
                raise ValueError(f"labels must be {num_classes} distinct strings (one per class, in class-id "
                                 f"order), got {labels!r}.")
        self.backbone = backbone
        self.preprocessor = as_preprocessor(preprocessor, sequence_length=128)
        self.output_dropout = keras.layers.Dropout(dropout, dtype=backbone.dtype_policy, name="classifier_dropout")
        # float32 logits: a softmax over bf16/fp16 logits loses the small differences fine-tuning needs
        self.output_dense = keras.layers.Dense(
            num_classes, activation=activation,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=backbone.config.initializer_range),
            dtype="float32", name="logits")
        inputs = backbone.input
        pooled = backbone(inputs)["pooled_output"]
        outputs = self.output_dense(self.output_dropout(pooled))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.num_classes = num_classes
        self.dropout = float(dropout)
        self.labels = labels
        self.activation = keras.activations.get(activation)
        self.problem_type = problem_type

    @property
    def is_regression(self) -> bool:
        return self.problem_type == "regression"

    @classmethod
    def from_run_settings(cls, backbone, preprocessor, settings: dict) -> "BertClassifier":
        """The task of a ``"classification"`` run from its ``task.json`` settings (``labels``, ``dropout``,
        ``problem_type``; ``sequence_length``/``lowercase`` are the preprocessor's)."""
        problem_type = settings.get("problem_type", "single_label_classification")
        labels = settings.get("labels")
        if problem_type == "regression":
            num_classes = int(settings.get("num_outputs", 1))
            labels = list(labels) if labels else None
        else:
            labels = list(labels)
            num_classes = len(labels)
        return cls(backbone, num_classes=num_classes, preprocessor=preprocessor,
                   dropout=float(settings.get("dropout", 0.1)), labels=labels, problem_type=problem_type)

    @staticmethod
    def loss_and_metrics(problem_type: str = "single_label_classification") -> dict[str, Any]:
        """``compile`` arguments for training the head: cross-entropy on logits + accuracy, or for
        ``"regression"`` mean squared error (+ mean absolute error)."""
        if problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}.")
        if problem_type == "regression":
            return {"loss": keras.losses.MeanSquaredError(),
                    "metrics": [keras.metrics.MeanAbsoluteError("mae")]}
        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                "metrics": [keras.metrics.SparseCategoricalAccuracy("accuracy")]}

    @property
    def class_names(self) -> list[str]:
        """``labels``, or Hugging Face's default names ``LABEL_0``... when none were given."""
        return list(self.labels) if self.labels is not None else [f"LABEL_{i}" for i in range(self.num_classes)]

    def default_function(self) -> str:
        """Hugging Face's rule: ``none`` for regression, ``sigmoid`` for one output, ``softmax`` for several;
        ``none`` when the model already ends in an activation."""
        if self.is_regression or keras.activations.serialize(self.activation) not in ("linear", None):
            return "none"
        return "sigmoid" if self.num_classes == 1 else "softmax"

    def postprocess(self, outputs: Any, top_k: int | None = 1, function_to_apply: str | None = None) -> list:
        """Logits ``[batch, num_classes]`` -> per example a list of ``{"label", "score"}``, best first,
        ``top_k`` of them (``None``: all classes)."""
        scores = apply_function(np.asarray(outputs), function_to_apply or self.default_function())
        names = self.class_names
        k = self.num_classes if top_k is None else top_k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}.")
        results = []
        for row in scores:
            order = np.argsort(-row, kind="stable")[:k]
            results.append([{"label": names[i], "score": float(row[i])} for i in order])
        return results

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes, "dropout": self.dropout,
                "labels": self.labels, "activation": keras.activations.serialize(self.activation),
                "problem_type": self.problem_type}


# ----------------------------------------------------------------------------- long texts
def _check_long_options(truncation: str, stride: int, aggregation: str) -> None:
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}.")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}.")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 0:
        raise ValueError(f"stride (tokens shared by consecutive windows) must be an int >= 0, got {stride!r}.")


def long_text_inputs(preprocessor, texts: str | Sequence[str], truncation: str = "windows", stride: int = 0,
                     head_tokens: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Single texts -> ``(inputs, owner)``: the backbone's input dict (int32 ``[m, sequence_length]``)
    with one row per model input, and ``owner[i]``, the index of the text row ``i`` comes from.

    ``truncation`` (see the module doc): ``"head"`` and ``"head+tail"`` give one row per text;
    ``"windows"`` one row per window of ``sequence_length - 2`` tokens, consecutive windows sharing
    ``stride`` tokens (:func:`~bertcourse.text.windows.window_spans`). ``head_tokens``: for
    ``"head+tail"``, how many of the kept tokens come from the start (default ``body // 4``).
    """
    _check_long_options(truncation, stride, "mean")
    batch = as_text_batch(texts)
    if isinstance(batch, tuple):
        raise ModelInputError("Long-text truncation ('head+tail', 'windows') reads single texts; a pair is packed "
                              "by the preprocessor (truncation='head').")
    length = preprocessor.sequence_length
    body = length - 2
    if stride >= body and truncation == "windows":
        raise ValueError(f"stride={stride} must be smaller than the window ({body} tokens = sequence_length - 2).")
    if head_tokens is None:
        head_tokens = body // 4
    if not 0 <= head_tokens <= body:
        raise ValueError(f"head_tokens must be in [0, {body}], got {head_tokens}.")
    ids = preprocessor.tokenizer(tf.constant(batch, dtype=tf.string)).to_list() if batch else []
    rows: list[list[int]] = []
    owner: list[int] = []
    for i, tokens in enumerate(ids):
        if truncation == "windows":
            pieces = [tokens[a:b] for a, b in window_spans(len(tokens), body, stride)]
        elif truncation == "head+tail" and len(tokens) > body:
            tail = body - head_tokens
            pieces = [tokens[:head_tokens] + (tokens[len(tokens) - tail:] if tail else [])]
        else:
            pieces = [tokens[:body]]
        rows.extend(pieces)
        owner.extend([i] * len(pieces))
    token_ids = np.full((len(rows), length), preprocessor.pad_id, np.int32)
    padding_mask = np.zeros((len(rows), length), np.int32)
    for r, piece in enumerate(rows):
        token_ids[r, :len(piece) + 2] = [preprocessor.cls_id, *piece, preprocessor.sep_id]
        padding_mask[r, :len(piece) + 2] = 1
    inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": padding_mask}
    return inputs, np.asarray(owner, np.int64)


def aggregate_windows(logits: np.ndarray, owner: np.ndarray, num_texts: int, aggregation: str = "mean") -> np.ndarray:
    """Per text, the ``"mean"`` or the ``"max"`` (per class) of the logits of its windows ``[num_texts, classes]``.

    >>> aggregate_windows(np.array([[1.0, 0.0], [3.0, -2.0], [5.0, 5.0]]), np.array([0, 0, 1]), 2, "max").tolist()
    [[3.0, 0.0], [5.0, 5.0]]
    """
    _check_long_options("head", 0, aggregation)
    logits, owner = np.asarray(logits, np.float64), np.asarray(owner)
    if np.bincount(owner, minlength=num_texts)[:num_texts].min(initial=1) == 0:
        raise ValueError("Every text needs at least one window.")
    if aggregation == "max":
        out = np.full((num_texts, logits.shape[-1]), -np.inf)
        np.maximum.at(out, owner, logits)
        return out
    out = np.zeros((num_texts, logits.shape[-1]))
    np.add.at(out, owner, logits)
    return out / np.bincount(owner, minlength=num_texts)[:, None]


def classify_long(model: "BertClassifier", texts: str | Sequence[str], truncation: str = "windows", stride: int = 0,
                  aggregation: str = "mean", batch_size: int = 32, head_tokens: int | None = None) -> np.ndarray:
    """Logits ``[len(texts), num_classes]`` of texts of any length (see the module doc).

    ``truncation="head"`` equals ``model.predict(texts)``; ``"head+tail"`` keeps both ends;
    ``"windows"`` runs every window (``stride`` tokens shared) and aggregates its logits (``"mean"`` or
    ``"max"``). ``batch_size``: model inputs (windows) per forward pass.
    """
    _check_long_options(truncation, stride, aggregation)
    pre = model._require_preprocessor()
    inputs, owner = long_text_inputs(pre, texts, truncation, stride, head_tokens)
    outputs = [np.asarray(model.predict_on_batch(trim_padding({k: v[i:i + batch_size] for k, v in inputs.items()})))
               for i in range(0, len(owner), batch_size)]
    logits = np.concatenate(outputs) if outputs else np.zeros((0, model.num_classes), np.float32)
    return aggregate_windows(logits, owner, len(as_text_batch(texts)), aggregation).astype(np.float32)


# ----------------------------------------------------------------------------- Hugging Face format
def save_hf_classifier(model: "BertClassifier", path: str | Path) -> Path:
    """Write ``model`` as a Hugging Face ``BertForSequenceClassification`` folder (``config.json`` with
    ``id2label``/``problem_type``, ``model.safetensors``, ``vocab.txt``): what
    ``transformers.pipeline("text-classification", model=path)`` loads (the parity twin)."""
    pre = model._require_preprocessor()
    root = save_hf_bert(model.backbone, pre.tokenizer, path, prefix="bert.")
    tensors = load_file(str(root / WEIGHTS_FILE))
    tensors["classifier.weight"] = np.ascontiguousarray(np.asarray(model.output_dense.kernel.numpy()).T)
    tensors["classifier.bias"] = np.asarray(model.output_dense.bias.numpy())
    save_file(tensors, str(root / WEIGHTS_FILE), metadata={"format": "pt"})
    config = json.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
    names = model.class_names
    config.update({"architectures": ["BertForSequenceClassification"], "id2label": dict(enumerate(names)),
                   "label2id": {name: i for i, name in enumerate(names)}, "problem_type": model.problem_type,
                   "classifier_dropout": None})
    (root / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return root


_UNSET = object()


def _characters(item: str | tuple[str, str]) -> int:
    return len(item) if isinstance(item, str) else len(item[0]) + len(item[1])


class TextClassificationPipeline(TaskPipeline):
    """``pipeline("text-classification")`` (alias ``"sentiment-analysis"``), shaped as Hugging Face's.

    Inputs: one string, a ``{"text": a, "text_pair": b}`` dict (a sentence pair), or a list of those.
    Outputs, as ``transformers.TextClassificationPipeline``:

    * no ``top_k`` given: a string -> ``[{"label", "score"}]`` (the best class); a list -> one
      ``{"label", "score"}`` dict per input;
    * ``top_k=k`` (``None``: every class): per input a list of ``k`` dicts, best first; a string
      -> that list, a list -> a list of those lists.

    Scores: softmax of the logits (sigmoid for one output, the raw value for regression;
    ``function_to_apply`` overrides).

    Args:
        model: a :class:`BertClassifier` with a preprocessor.
        top_k: a default for ``top_k`` (then outputs are lists of dicts, as when passed to the call).
        function_to_apply: ``"softmax"``, ``"sigmoid"`` or ``"none"``.
        batch_size: texts per forward pass (with ``truncation="windows"``: windows per forward pass).
        truncation: ``"head"`` (default), ``"head+tail"`` or ``"windows"`` for texts longer than the
            model's sequence (see the module doc); also a call option.
        stride: tokens shared by consecutive windows (``truncation="windows"``).
        aggregation: ``"mean"`` or ``"max"`` over a text's window logits.
        group_by_length: batch a list's texts in order of length (outputs in the input order): each batch
            is padded to its longest text, so mixing short and long texts pays for padding; same labels,
            scores equal up to float32 rounding (a different padding width changes the summation order).
    """

    def __init__(self, model: BertClassifier, top_k: Any = _UNSET, function_to_apply: str | None = None,
                 batch_size: int = 32, truncation: str = "head", stride: int = 0, aggregation: str = "mean",
                 group_by_length: bool = True):
        if not isinstance(model, BertClassifier):
            raise TypeError(f"text-classification needs a bertcourse.tasks.BertClassifier, got {type(model).__name__}.")
        model._require_preprocessor()
        _check_long_options(truncation, stride, aggregation)
        super().__init__(model, batch_size=batch_size)
        self.top_k = top_k
        self.function_to_apply = function_to_apply
        self.truncation, self.stride, self.aggregation = truncation, stride, aggregation
        self.group_by_length = group_by_length
        self._encoders: tuple | None = None

    def _encode(self, raw: list[str] | tuple[list[str], list[str]]) -> dict[str, np.ndarray]:
        """The preprocessor as a traced ``tf.function`` (one graph for texts, one for pairs): eager ragged
        ops cost more than the model on short texts. Same ids as ``model.preprocess``."""
        pre = self.model.preprocessor
        if self._encoders is None or self._encoders[0] is not pre:
            spec = tf.TensorSpec([None], tf.string)
            self._encoders = (pre, tf.function(lambda t: pre(t), input_signature=[spec]),
                              tf.function(lambda a, b: pre((a, b)), input_signature=[spec, spec]))
        if isinstance(raw, tuple):
            out = self._encoders[2](tf.constant(raw[0], tf.string), tf.constant(raw[1], tf.string))
        else:
            out = self._encoders[1](tf.constant(raw, tf.string))
        return {k: out[k].numpy() for k in ("token_ids", "segment_ids", "padding_mask")}

    def _inputs(self, raw: Any) -> tuple[list, bool]:
        if isinstance(raw, (str, dict)):
            return [self._item(raw)], True
        if isinstance(raw, (list, tuple)):
            return [self._item(x) for x in raw], False
        raise TypeError(f"text-classification takes a string, a {{'text', 'text_pair'}} dict or a list of them, "
                        f"got {type(raw).__name__}.")

    @staticmethod
    def _item(x: Any) -> str | tuple[str, str]:
        if isinstance(x, str):
            return x
        if isinstance(x, dict) and set(x) == {"text", "text_pair"} and all(isinstance(v, str) for v in x.values()):
            return x["text"], x["text_pair"]
        raise ModelInputError(f"text-classification takes strings or {{'text': str, 'text_pair': str}} dicts, "
                              f"got {x!r:.80}.")

    def _run(self, items: list, top_k: int | None = 1, function_to_apply: str | None = None,
             legacy: bool = True, truncation: str = "head", stride: int = 0, aggregation: str = "mean",
             batch_size: int = 32) -> list:
        pairs = [isinstance(x, tuple) for x in items]
        if any(pairs) and not all(pairs):
            raise ModelInputError("Mix of single texts and text pairs in one call: classify them separately.")
        raw = (list(a for a, _ in items), list(b for _, b in items)) if pairs[0] else items
        if truncation != "head":
            logits = classify_long(self.model, raw, truncation=truncation, stride=stride, aggregation=aggregation,
                                   batch_size=batch_size)
        else:  # padding columns past the batch's longest text are cut: less work, the same logits
            logits = self.model.predict_on_batch(trim_padding(self._encode(raw)))
        return self._answers(logits, top_k, function_to_apply, legacy)

    def _answers(self, logits: np.ndarray, top_k: int | None, function_to_apply: str | None, legacy: bool) -> list:
        results = self.model.postprocess(logits, top_k=top_k, function_to_apply=function_to_apply)
        return [r[0] for r in results] if legacy else results

    def _by_length(self, items: list, size: int, options: dict) -> Iterator[tuple[list[int], list]]:
        """(indices, answers) batch by batch, the texts of each group of ``GROUP_BATCHES`` batches taken
        shortest first. Head truncation: the group is tokenized in one call and ordered by its real
        length in pieces, and each batch is cut to its longest row exactly. Otherwise by characters."""
        for start in range(0, len(items), size * GROUP_BATCHES):
            group = items[start:start + size * GROUP_BATCHES]
            if options["truncation"] != "head":
                order = sorted(range(len(group)), key=lambda i: _characters(group[i]))
                for chunk in self.batches(order, size):
                    yield [start + i for i in chunk], self._run([group[i] for i in chunk], **options)
                continue
            pairs = isinstance(group[0], tuple)
            encoded = self._encode((list(a for a, _ in group), list(b for _, b in group)) if pairs else group)
            for rows, batch in padded_batches(encoded, size):
                yield [start + int(i) for i in rows], self._answers(self.model.predict_on_batch(batch),
                                                                     options["top_k"], options["function_to_apply"],
                                                                     options["legacy"])

    def __call__(self, inputs: Any, top_k: Any = _UNSET, function_to_apply: str | None = None,
                 batch_size: int | None = None, truncation: str | None = None, stride: int | None = None,
                 aggregation: str | None = None):
        if top_k is _UNSET:
            top_k = self.top_k
        legacy = top_k is _UNSET
        items, single = self._inputs(inputs)
        options = {"top_k": 1 if legacy else top_k, "legacy": legacy,
                   "function_to_apply": function_to_apply or self.function_to_apply,
                   "truncation": truncation or self.truncation, "stride": self.stride if stride is None else stride,
                   "aggregation": aggregation or self.aggregation, "batch_size": batch_size or self.batch_size}
        _check_long_options(options["truncation"], options["stride"], options["aggregation"])
        if len({isinstance(x, tuple) for x in items}) > 1:
            raise ModelInputError("Mix of single texts and text pairs in one call: classify them separately.")
        size = batch_size or self.batch_size
        if self.group_by_length and len(items) > size:
            batches = self._by_length(items, size, options)
        else:
            batches = ((list(chunk), self._run([items[i] for i in chunk], **options))
                       for chunk in self.batches(range(len(items)), size))
        results: list = [None] * len(items)
        for indices, answers in batches:
            for i, answer in zip(indices, answers):
                results[i] = answer
        if single:
            return [results[0]] if legacy else results[0]
        return results
