"""Sequence classification: BERT's [CLS] pooled output -> dropout -> dense logits (lessons 08-09).

    [CLS] text [SEP] (or [CLS] A [SEP] B [SEP]) --BertBackbone--> pooled = tanh(W h_[CLS] + b)
        --Dropout(0.1)--> Dense(num_classes) --> logits (float32, also under mixed precision)

The same head as keras-hub's ``BertClassifier`` and Hugging Face's ``BertForSequenceClassification``
(a test copies weights between ours and keras-hub's and compares logits). With a preprocessor it
reads raw strings (``clf.predict(["a text"])``) and ``labels`` names the classes.

* :func:`label_map` -- label strings -> class ids, in a documented order;
* :func:`classification_metrics` -- accuracy and macro-F1;
* :class:`TextClassificationPipeline` -- ``pipeline("text-classification")``, Hugging Face's outputs.

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
>>> label_map(["pos", "neg", "pos"]), label_map(["2", "10", "2"]), label_map(["1", "1.0"])
({'neg': 0, 'pos': 1}, {'2': 0, '10': 1}, {'1': 0, '1.0': 1})
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import keras
import numpy as np

from bertcourse.errors import DataFileError, ModelInputError
from bertcourse.tasks.base import Task, TaskPipeline, as_preprocessor, trim_padding

__all__ = ["BertClassifier", "TextClassificationPipeline", "classification_metrics", "label_map",
           "FUNCTIONS_TO_APPLY"]

FUNCTIONS_TO_APPLY = ("softmax", "sigmoid", "none")
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

    Inputs: the backbone's dict (``token_ids``, ``segment_ids``, ``padding_mask``), or raw strings in
    ``predict``. Output: ``[batch, num_classes]`` float32 logits (probabilities with
    ``activation="softmax"``).
    """

    def __init__(self, backbone, num_classes: int, preprocessor=None, dropout: float = 0.1,
                 labels: Sequence[str] | None = None, activation=None, **kwargs):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
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

    @property
    def class_names(self) -> list[str]:
        """``labels``, or Hugging Face's default names ``LABEL_0``... when none were given."""
        return list(self.labels) if self.labels is not None else [f"LABEL_{i}" for i in range(self.num_classes)]

    def default_function(self) -> str:
        """Hugging Face's rule: ``sigmoid`` for one output, ``softmax`` for several; ``none`` when the
        model already ends in an activation."""
        if keras.activations.serialize(self.activation) not in ("linear", None):
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
                "labels": self.labels, "activation": keras.activations.serialize(self.activation)}


_UNSET = object()


class TextClassificationPipeline(TaskPipeline):
    """``pipeline("text-classification")`` (alias ``"sentiment-analysis"``), shaped as Hugging Face's.

    Inputs: one string, a ``{"text": a, "text_pair": b}`` dict (a sentence pair), or a list of those.
    Outputs, as ``transformers.TextClassificationPipeline``:

    * no ``top_k`` given: a string -> ``[{"label", "score"}]`` (the best class); a list -> one
      ``{"label", "score"}`` dict per input;
    * ``top_k=k`` (``None``: every class): per input a list of ``k`` dicts, best first; a string
      -> that list, a list -> a list of those lists.

    Scores: softmax of the logits (sigmoid for one output; ``function_to_apply`` overrides).

    Args:
        model: a :class:`BertClassifier` with a preprocessor.
        top_k: a default for ``top_k`` (then outputs are lists of dicts, as when passed to the call).
        function_to_apply: ``"softmax"``, ``"sigmoid"`` or ``"none"``.
        batch_size: texts per forward pass.
    """

    def __init__(self, model: BertClassifier, top_k: Any = _UNSET, function_to_apply: str | None = None,
                 batch_size: int = 32):
        if not isinstance(model, BertClassifier):
            raise TypeError(f"text-classification needs a bertcourse.tasks.BertClassifier, got {type(model).__name__}.")
        model._require_preprocessor()
        super().__init__(model, batch_size=batch_size)
        self.top_k = top_k
        self.function_to_apply = function_to_apply

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
             legacy: bool = True) -> list:
        pairs = [isinstance(x, tuple) for x in items]
        if any(pairs) and not all(pairs):
            raise ModelInputError("Mix of single texts and text pairs in one call: classify them separately.")
        raw = (list(a for a, _ in items), list(b for _, b in items)) if pairs[0] else items
        # padding columns past the batch's longest text are cut: less work, the same logits
        logits = self.model.predict_on_batch(trim_padding(self.model.preprocess(raw)))
        results = self.model.postprocess(logits, top_k=top_k, function_to_apply=function_to_apply)
        return [r[0] for r in results] if legacy else results

    def __call__(self, inputs: Any, top_k: Any = _UNSET, function_to_apply: str | None = None,
                 batch_size: int | None = None):
        if top_k is _UNSET:
            top_k = self.top_k
        legacy = top_k is _UNSET
        items, single = self._inputs(inputs)
        options = {"top_k": 1 if legacy else top_k, "legacy": legacy,
                   "function_to_apply": function_to_apply or self.function_to_apply}
        results: list = []
        for chunk in self.batches(items, batch_size or self.batch_size):
            results.extend(self._run(list(chunk), **options))
        if single:
            return [results[0]] if legacy else results[0]
        return results
