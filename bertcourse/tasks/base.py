"""The task contract: every task in ``bertcourse.tasks`` is a :class:`Task` (one module per task).

A task is a ``keras.Model`` made of three parts, as keras-hub's ``Task``:

* ``backbone``: a :class:`~bertcourse.models.BertBackbone` (pretrained or fresh);
* ``preprocessor``: a :class:`~bertcourse.text.BertPreprocessor` (raw strings -> the backbone's
  input dict), or ``None`` for a model that only ever sees tensors;
* its head (a few layers on the backbone's outputs).

What a task module ``bertcourse/tasks/<name>.py`` writes (NER, QA... add exactly this):

1. ``class MyTask(Task)`` with ``__init__(self, backbone, <head args>, preprocessor=None, **kwargs)``:
   set ``self.backbone`` and ``self.preprocessor`` first, build the head on the backbone's symbolic
   inputs, then ``super().__init__(inputs=backbone.input, outputs=..., **kwargs)``: a task is a
   *functional* model (as keras-hub's tasks; Keras makes every ``Task`` subclass functional once one
   is built, so a subclassed ``call`` is not an option). ``get_config`` returns
   ``{**super().get_config(), <head args>}``: the base class serializes the backbone AND the
   preprocessor (the vocabulary travels with it), and ``from_config`` rebuilds both, so
   ``task.save("x.keras")`` / ``keras.saving.load_model("x.keras")`` round-trips.
   Decorate it with ``@keras.saving.register_keras_serializable(package="bertcourse")``.
2. ``preprocess(raw)`` -> the input dict. Inherited: the preprocessor on raw text (see
   :func:`is_raw_text`: one string, a list, one pair ``(a, b)``, a pair of lists ``(as, bs)``, a list of
   pairs). Override it for task-specific packing: a token task (NER) calls
   ``self.preprocessor(texts, return_offsets=True)`` and keeps ``offsets`` for its postprocess; QA
   builds ``(question, context)`` windows with the preprocessor's ``truncation="only_second"``.
   Only ``token_ids``/``segment_ids``/``padding_mask`` go into the model.
3. ``predict(x)``: inherited. Raw text is preprocessed (eagerly, in chunks), then Keras ``predict``
   runs; a dict of tensors or a ``tf.data.Dataset`` goes straight to Keras. Returns NumPy, as Keras
   does. (For training data, :func:`encode_texts` gives int32 arrays for ``tf.data``.)
4. ``postprocess(outputs, **options)`` -> the task's Python outputs (labels and scores, entities,
   answer spans...), from the NumPy outputs of ``predict``/``predict_on_batch``.
5. The task's metric: a plain function in the same module (``classification_metrics``...).
6. A :class:`TaskPipeline` subclass for the HF-style front end: override ``_inputs`` for inputs other
   than strings (QA: ``question=``/``context=``) and ``_run(batch, **options)`` (preprocess,
   :func:`trim_padding`, ``predict_on_batch``, postprocess, Hugging Face's output shape); the base
   ``__call__`` batches and unwraps a single input. Then one line in ``bertcourse.tasks.TASKS``
   (``"ner": TokenClassificationPipeline``; aliases in ``TASK_ALIASES``): ``bertcourse.pipelines``
   serves every name there. A run directory's ``load_task()`` (``bertcourse.training.run``) rebuilds
   the task from its ``task.json``.
7. Tests: ``tests/test_tasks_<name>.py`` (raw strings = pre-tokenized inputs, ``.keras`` round trip,
   the pipeline against its metric or a twin).

>>> import keras
>>> from bertcourse.models import BertBackbone
>>> from bertcourse.tasks import Task
>>> @keras.saving.register_keras_serializable(package="doctest")
... class FirstToken(Task):                       # the smallest task: [CLS] vector -> 2 logits
...     def __init__(self, backbone, preprocessor=None, **kwargs):
...         self.backbone, self.preprocessor = backbone, preprocessor
...         self.dense = keras.layers.Dense(2, name="logits")
...         inputs = backbone.input
...         super().__init__(inputs=inputs, outputs=self.dense(backbone(inputs)["sequence_output"][:, 0]),
...                          **kwargs)
>>> task = FirstToken(BertBackbone("tiny"))
>>> sorted(task.get_config())
['backbone', 'name', 'preprocessor', 'trainable']
>>> is_raw_text(["a text", "another"]), is_raw_text((["a"], ["b"])), is_raw_text({"token_ids": [[2, 3]]})
(True, True, False)
"""

from __future__ import annotations

import weakref
from typing import Any, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from bertcourse.errors import ModelInputError
from bertcourse.models import BertBackbone
from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer, WordPieceTokenizer

__all__ = ["DTYPE_POLICIES", "GROUP_BATCHES", "Task", "TaskPipeline", "as_preprocessor", "is_raw_text", "as_text_batch", "encode_texts",
           "trim_padding", "padded_batches"]


DTYPE_POLICIES = ("float32", "mixed_bfloat16", "bfloat16", "mixed_float16", "float16")  # Task.with_dtype
GROUP_BATCHES = 64  # pipelines that order inputs by length do it over this many batches at a time (bounded memory)


def _is_str_sequence(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.ndim == 1 and x.dtype.kind in "UO" and all(isinstance(s, str) for s in x)
    return isinstance(x, (list, tuple)) and all(isinstance(s, str) for s in x)


def is_raw_text(x: Any) -> bool:
    """True for what ``Task.predict`` treats as raw text: a ``str``, a list of ``str``, one pair
    ``(text_a, text_b)``, a pair of lists ``(texts_a, texts_b)``, a list of pairs, or a ``tf.string``
    tensor. Dicts of tensors and datasets are not."""
    if isinstance(x, str):
        return True
    if isinstance(x, tuple) and len(x) == 2 and all(isinstance(s, str) for s in x):
        return True
    if isinstance(x, list) and x and all(isinstance(p, tuple) and len(p) == 2 and all(isinstance(s, str) for s in p)
                                         for p in x):
        return True
    if isinstance(x, tf.Tensor):
        return x.dtype == tf.string
    if isinstance(x, tuple) and len(x) == 2 and all(_is_str_sequence(s) and not isinstance(s, str) for s in x) \
            and all(isinstance(s, (list, np.ndarray)) for s in x):
        return True
    return _is_str_sequence(x) and not isinstance(x, str)


def as_text_batch(raw: Any) -> list[str] | tuple[list[str], list[str]]:
    """A ``str`` -> ``[str]``; a list stays a list; one pair ``("a", "b")`` -> ``(["a"], ["b"])``; a pair
    of lists ``(as, bs)`` or a list of pairs ``[(a, b), ...]`` -> two lists of equal length.

    Anything else is a ``TypeError`` that says what is accepted."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, tuple) and len(raw) == 2 and all(isinstance(s, str) for s in raw):
        return [raw[0]], [raw[1]]                       # one pair, as the preprocessor reads it
    if isinstance(raw, tuple) and len(raw) == 2 and all(isinstance(s, (list, np.ndarray)) for s in raw):
        a, b = (list(s) for s in raw)
        if len(a) != len(b):
            raise ModelInputError(f"A pair of text lists must have equal lengths, got {len(a)} and {len(b)}.")
        bad = next((s for s in a + b if not isinstance(s, str)), None)
        if bad is not None:
            raise TypeError(f"Texts must be strings, got an element of type {type(bad).__name__}.")
        return a, b
    if isinstance(raw, list) and raw and all(isinstance(p, tuple) and len(p) == 2
                                             and all(isinstance(s, str) for s in p) for p in raw):
        return [a for a, _ in raw], [b for _, b in raw]  # a list of pairs, as the preprocessor reads it
    if isinstance(raw, tuple):
        raise TypeError(f"A tuple is one pair (text_a, text_b) or a pair of lists (texts_a, texts_b), got "
                        f"{len(raw)} items; give a batch of texts as a list.")
    if _is_str_sequence(raw):
        return list(raw)
    if isinstance(raw, (list, tuple)):
        bad = next((s for s in raw if not isinstance(s, str)), None)
        raise TypeError(f"Texts must be strings, got an element of type {type(bad).__name__}.")
    raise TypeError(f"Expected a string, a list of strings or a pair (texts_a, texts_b) of lists, "
                    f"got {type(raw).__name__}.")


def as_preprocessor(preprocessor_or_tokenizer: Any, sequence_length: int | None = None,
                    **kwargs: Any) -> BertPreprocessor | None:
    """A :class:`BertPreprocessor` from a preprocessor (returned as is) or a tokenizer.

    A :class:`~bertcourse.text.FastWordPieceTokenizer` is wrapped; a pure-Python
    :class:`~bertcourse.text.WordPieceTokenizer` is first turned into the in-graph one with the same
    vocabulary and normalisation. ``sequence_length`` (required for a tokenizer) and ``kwargs``
    (e.g. ``truncation``) go to the new preprocessor. ``None`` stays ``None``.
    """
    x = preprocessor_or_tokenizer
    if x is None or isinstance(x, BertPreprocessor):
        return x
    if not isinstance(x, (WordPieceTokenizer, FastWordPieceTokenizer)):
        raise TypeError(f"Expected a BertPreprocessor, a FastWordPieceTokenizer or a WordPieceTokenizer, "
                        f"got {type(x).__name__}.")
    if sequence_length is None:
        raise ValueError("Wrapping a tokenizer in a BertPreprocessor needs sequence_length=...")
    if isinstance(x, FastWordPieceTokenizer):
        return BertPreprocessor(x, sequence_length=sequence_length, **kwargs)
    # the same pure tokenizer wrapped again (a probe every epoch) reuses its preprocessor: building the
    # in-graph twin of a 30k vocabulary takes a while
    cache = _WRAPPED.setdefault(x, {})
    key = (sequence_length, tuple(sorted(kwargs.items())))
    if key not in cache:
        cache[key] = BertPreprocessor(x, sequence_length=sequence_length, **kwargs)
    return cache[key]


_WRAPPED: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def encode_texts(preprocessor: BertPreprocessor, texts: Sequence[str], texts_b: Sequence[str] | None = None,
                 chunk_size: int = 4096) -> dict[str, np.ndarray]:
    """Texts (and optional second segments) -> the backbone's input dict as int32 NumPy arrays
    ``[n, sequence_length]``, through the preprocessor in chunks (for datasets: ``tf.data`` slices).

    ``padding_mask`` comes back as 0/1 int32 like the ids. ``texts_b`` given: pairs
    ``[CLS] a [SEP] b [SEP]`` with the preprocessor's truncation.

    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"]
    >>> pre = BertPreprocessor(FastWordPieceTokenizer(vocab), sequence_length=6)
    >>> x = encode_texts(pre, ["a", "b b"], texts_b=["b", "a"])
    >>> x["token_ids"].tolist(), x["segment_ids"][0].tolist(), x["padding_mask"].dtype
    ([[2, 4, 3, 5, 3, 0], [2, 5, 5, 3, 4, 3]], [0, 0, 0, 1, 1, 0], dtype('int32'))
    """
    texts = list(texts)
    if texts_b is not None:
        texts_b = list(texts_b)
        if len(texts_b) != len(texts):
            raise ModelInputError(f"texts and texts_b differ in length: {len(texts)} and {len(texts_b)}.")
    length = preprocessor.sequence_length
    out = {k: [np.zeros((0, length), np.int32)] for k in ("token_ids", "segment_ids", "padding_mask")}
    for start in range(0, len(texts), chunk_size):
        stop = start + chunk_size
        raw = texts[start:stop] if texts_b is None else (texts[start:stop], texts_b[start:stop])
        for key, value in preprocessor(as_text_batch(raw)).items():
            if key in out:
                out[key].append(np.asarray(value).astype(np.int32))
    return {k: np.concatenate(v) for k, v in out.items()}


def trim_padding(inputs: dict, pad_to_multiple_of: int = 8) -> dict[str, np.ndarray]:
    """Cut the all-padding columns off a padded batch (NumPy out): up to its longest row, rounded up to
    ``pad_to_multiple_of`` (which bounds the shapes a compiled model sees). The columns cut are
    padding only, which attention and pooling ignore, so outputs are those of the full batch.

    >>> x = {"token_ids": np.array([[2, 5, 3, 0, 0, 0]]), "padding_mask": np.array([[1, 1, 1, 0, 0, 0]])}
    >>> trim_padding(x, pad_to_multiple_of=2)["token_ids"].tolist()
    [[2, 5, 3, 0]]
    """
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    width = arrays["padding_mask"].shape[1]
    longest = int(arrays["padding_mask"].astype(bool).sum(axis=1).max(initial=1))
    keep = min(width, -(-longest // pad_to_multiple_of) * pad_to_multiple_of)
    return {k: (v[:, :keep] if v.ndim >= 2 and v.shape[1] == width else v) for k, v in arrays.items()}


def padded_batches(inputs: dict, batch_size: int, by_length: bool = True) -> Iterator[tuple[np.ndarray, dict]]:
    """``(rows, batch)`` over a padded input dict, ``batch_size`` rows at a time. ``by_length``: the rows
    shortest first (by ``padding_mask``), each batch cut to its longest row exactly, so mixed lengths pay
    almost no padding; otherwise in input order, widths rounded up to 8 (:func:`trim_padding`). Put the
    outputs back with ``out[rows] = ...``.

    >>> x = {"token_ids": np.array([[2, 5, 6, 3], [2, 3, 0, 0], [2, 7, 3, 0]]),
    ...      "padding_mask": np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])}
    >>> [(rows.tolist(), b["token_ids"].shape) for rows, b in padded_batches(x, 2)]
    [([1, 2], (2, 3)), ([0], (1, 4))]
    """
    lengths = np.asarray(inputs["padding_mask"]).sum(axis=1)
    order = np.argsort(lengths, kind="stable") if by_length else np.arange(len(lengths))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        yield rows, trim_padding({k: np.asarray(v)[rows] for k, v in inputs.items()},
                                 pad_to_multiple_of=1 if by_length else 8)


class Task(keras.Model):
    """Base class of the task models: ``backbone`` + ``preprocessor`` + a head (see the module doc).

    Subclasses set ``self.backbone`` and ``self.preprocessor`` before calling ``super().__init__``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._initialized = True

    def build(self, input_shape=None):
        # built by construction (functional) or on first call; the preprocessor has no weights to build
        self.built = True

    def __setattr__(self, name, value):
        # PyTorch backend: a torch Module refuses attributes before Module.__init__ (keras-hub does the same)
        if keras.config.backend() == "torch" and not hasattr(self, "_initialized"):
            return object.__setattr__(self, name, value)
        return super().__setattr__(name, value)

    # ------------------------------------------------------------------ raw text
    def _require_preprocessor(self) -> BertPreprocessor:
        if getattr(self, "preprocessor", None) is None:
            raise ModelInputError(f"This {type(self).__name__} has no preprocessor, so it cannot read raw "
                                  f"strings: build it with preprocessor=BertPreprocessor(...), or pass the "
                                  f"backbone's input dict (token_ids, segment_ids, padding_mask).")
        return self.preprocessor

    def preprocess(self, raw: Any) -> dict[str, tf.Tensor]:
        """Raw text (one ``str``, a list, or a pair of lists) -> the backbone's input dict."""
        pre = self._require_preprocessor()
        if isinstance(raw, tf.Tensor):
            return pre(raw)
        return pre(as_text_batch(raw))

    def predict(self, x=None, batch_size: int | None = None, verbose="auto", **kwargs):
        """Keras ``predict``, also on raw text (preprocessed first, eagerly in chunks: a ``tf.data`` map
        would trace the tokenizer again on every call)."""
        if is_raw_text(x):
            pre = self._require_preprocessor()
            if isinstance(x, tf.Tensor):
                x = [s.decode("utf-8") for s in np.atleast_1d(x.numpy())]
            texts = as_text_batch(x)
            if isinstance(texts, tuple):
                x = encode_texts(pre, texts[0], texts[1])
            else:
                x = encode_texts(pre, texts)
        return super().predict(x, batch_size=batch_size, verbose=verbose, **kwargs)

    def postprocess(self, outputs: Any, **options: Any) -> Any:
        """The task's decoding: NumPy outputs of ``predict`` -> Python results. Subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} does not define postprocess().")

    # ------------------------------------------------------------------ precision
    def with_dtype(self, dtype: str) -> "Task":
        """The same task, weights and preprocessor in a model built with another Keras dtype policy:
        ``"float32"``, ``"mixed_bfloat16"`` (float32 weights, bf16 matrix products), ``"bfloat16"`` (the
        weights stored in bf16 too: half the size), ``"mixed_float16"`` or ``"float16"``. Heads that keep
        float32 outputs (logits) still do. What ``bertcourse export --dtype`` serves.

        >>> from bertcourse.models import BertBackbone
        >>> from bertcourse.tasks import BertClassifier
        >>> clf = BertClassifier(BertBackbone("tiny"), num_classes=2)
        >>> half = clf.with_dtype("bfloat16")
        >>> half.backbone.dtype_policy.name, half.count_params() == clf.count_params()
        ('bfloat16', True)
        """
        if dtype not in DTYPE_POLICIES:
            raise ModelInputError(f"dtype must be one of {', '.join(DTYPE_POLICIES)}, got {dtype!r}.")
        config = self.get_config()
        config.update(backbone=BertBackbone(self.backbone.config, dtype=dtype),
                      preprocessor=getattr(self, "preprocessor", None))
        twin = type(self).from_config(config)
        twin.set_weights(self.get_weights())
        return twin

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        # not chained to keras.Model.get_config: a functional model's config is a layer graph, which
        # the subclass constructor cannot take (keras-hub's Task does the same)
        pre = getattr(self, "preprocessor", None)
        return {"name": self.name, "trainable": self.trainable,
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "preprocessor": None if pre is None else keras.saving.serialize_keras_object(pre)}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        for key in ("backbone", "preprocessor"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


class TaskPipeline:
    """Front end of a task: one input or a list in, Hugging Face's output shapes out, in batches.

    Subclasses define ``_inputs(raw) -> (items, single)`` if they accept more than strings,
    ``_run(batch_items, **options) -> list of per-item results``; ``__call__`` does the batching.

    Args:
        model: the task model.
        batch_size: inputs per forward pass.
    """

    def __init__(self, model: Task, batch_size: int = 32):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        self.model = model
        self.batch_size = batch_size

    def _inputs(self, raw: Any) -> tuple[list, bool]:
        if isinstance(raw, str):
            return [raw], True
        if isinstance(raw, tuple) and len(raw) == 2 and all(isinstance(s, str) for s in raw):
            return [raw], True
        texts = as_text_batch(raw)
        if isinstance(texts, tuple):
            return list(zip(*texts)), False
        return texts, False

    def _run(self, items: list, **options: Any) -> list:
        raise NotImplementedError

    @staticmethod
    def batches(items: Sequence, batch_size: int) -> Iterator[Sequence]:
        for start in range(0, len(items), batch_size):
            yield items[start:start + batch_size]

    def __call__(self, inputs: Any, batch_size: int | None = None, **options: Any):
        items, single = self._inputs(inputs)
        size = batch_size or self.batch_size
        results: list = []
        for chunk in self.batches(items, size):
            results.extend(self._run(list(chunk), **options))
        return results[0] if single else results
