"""Raw text -> BERT's input dict, in the TensorFlow graph: THE one place text becomes model inputs.

:class:`BertPreprocessor` is a Keras layer: a batch of strings, or of string pairs, goes in;
``{"token_ids", "segment_ids", "padding_mask"}`` padded to ``sequence_length`` comes out,
``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, the same ids as Hugging Face ``tokenizers``
(``encode(a, b)`` with truncation and padding). It tokenizes with
:class:`~bertcourse.text.FastWordPieceTokenizer` and packs with :func:`~bertcourse.text.pack_inputs`,
so it runs eagerly, inside ``tf.data.Dataset.map`` and inside a ``tf.function`` / SavedModel.
TensorFlow only (like the in-graph tokenizer); the outputs feed any Keras backend.

Inputs:

* one string -> unbatched outputs ``[sequence_length]``;
* a list of strings or a 1-D string tensor -> a batch ``[batch, sequence_length]``;
* a *tuple* ``(first, second)`` -> pairs (each a string, a list of strings or a string tensor);
  a list of 2-tuples ``[("a", "b"), ...]`` is a batch of pairs too.

Truncation of pairs (see :mod:`bertcourse.text.packing`): ``"longest_first"`` (Hugging Face's
default rule), ``"only_second"`` (cut only the second segment: question answering contexts),
``"only_first"``, ``"round_robin"``, ``"waterfall"``. Where Hugging Face raises for
``only_second``/``only_first`` (the kept segment alone fills the sequence), a graph cannot raise for
one row: the kept segment is cut to fit and the other dropped.

``return_offsets=True`` adds ``"offsets"`` ``[..., sequence_length, 2]``: each token's character
start/end in ITS segment's original string, ``(0, 0)`` for ``[CLS]``, ``[SEP]`` and padding, as
Hugging Face's ``offset_mapping``.

>>> from bertcourse.text import BertPreprocessor, bert_uncased_vocab_path
>>> pre = BertPreprocessor.from_vocab_file(bert_uncased_vocab_path(), sequence_length=12)
>>> out = pre(("The cat sat.", "On the [MASK]."))
>>> out["token_ids"].numpy().tolist()
[101, 1996, 4937, 2938, 1012, 102, 2006, 1996, 103, 1012, 102, 0]
>>> out["segment_ids"].numpy().tolist()
[0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0]
>>> int(out["padding_mask"].numpy().sum())
11
>>> pre(["Hello!"], return_offsets=True)["offsets"].numpy()[0, :4].tolist()
[[0, 0], [0, 5], [5, 6], [0, 0]]
"""

from __future__ import annotations

import os
from typing import Any

import keras
import tensorflow as tf

from bertcourse.text.fast import FastWordPieceTokenizer, check_strings
from bertcourse.text.packing import TRUNCATION_STRATEGIES, pack_inputs
from bertcourse.text.wordpiece import WordPieceTokenizer

__all__ = ["BertPreprocessor"]


@keras.saving.register_keras_serializable(package="bertcourse")
class BertPreprocessor(keras.layers.Layer):
    """Strings or string pairs -> ``token_ids`` / ``segment_ids`` / ``padding_mask`` (in graph).

    Args:
        tokenizer: a :class:`FastWordPieceTokenizer` (a pure :class:`WordPieceTokenizer` is
            converted to one with the same vocabulary and options).
        sequence_length: the packed length, ``[CLS]`` and ``[SEP]`` included (at most 512).
        truncation: ``"longest_first"`` (default, Hugging Face's), ``"only_second"``,
            ``"only_first"``, ``"round_robin"`` or ``"waterfall"``.

    The special ids (``cls_id``, ``sep_id``, ``pad_id``, ``mask_id``, ``unk_id``) come from the
    tokenizer's vocabulary. ``get_config``/``from_config`` round trip; in a ``.keras`` file the
    vocabulary also travels as the tokenizer's asset (``vocabulary.txt``), so a tokenizer built with
    ``vocabulary_in_config=False`` keeps the config small.

    Example:
        >>> pre = BertPreprocessor(FastWordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"]),
        ...                        sequence_length=6)
        >>> pre(["a b", "b"])["token_ids"].numpy().tolist()
        [[2, 4, 5, 3, 0, 0], [2, 5, 3, 0, 0, 0]]
    """

    def __init__(self, tokenizer: FastWordPieceTokenizer | WordPieceTokenizer | dict,
                 sequence_length: int = 128, truncation: str = "longest_first", **kwargs) -> None:
        super().__init__(**kwargs)
        # Strings go in: no float casting, and plain Python lists and tuples are accepted.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        if isinstance(tokenizer, dict):
            tokenizer = keras.saving.deserialize_keras_object(tokenizer)
        if isinstance(tokenizer, WordPieceTokenizer):
            tokenizer = FastWordPieceTokenizer(
                tokenizer.get_vocabulary(), lowercase=tokenizer.lowercase, strip_accents=tokenizer.strip_accents,
                max_input_chars_per_word=tokenizer.max_input_chars_per_word, unk_token=tokenizer.unk_token,
                suffix_indicator=tokenizer.suffix_indicator, split_special_tokens=tokenizer.split_special_tokens)
        if not isinstance(tokenizer, FastWordPieceTokenizer):
            raise TypeError(f"BertPreprocessor needs a FastWordPieceTokenizer (or a WordPieceTokenizer), "
                            f"got {type(tokenizer).__name__}. Build one with "
                            f"BertPreprocessor.from_vocab_file('vocab.txt').")
        if not isinstance(sequence_length, int) or isinstance(sequence_length, bool) or sequence_length < 3:
            raise ValueError(f"sequence_length must be an int >= 3 ([CLS], a token, [SEP]), got {sequence_length!r}.")
        if sequence_length > 512:
            raise ValueError(f"sequence_length={sequence_length} is longer than BERT's 512 positions.")
        if truncation not in TRUNCATION_STRATEGIES:
            raise ValueError(f"truncation must be one of {TRUNCATION_STRATEGIES}, got {truncation!r}.")
        self.tokenizer = tokenizer
        self.sequence_length = sequence_length
        self.truncation = truncation
        self.built = True  # no weights

    @classmethod
    def from_vocab_file(cls, path: str | os.PathLike, lowercase: bool = True, sequence_length: int = 128,
                        truncation: str = "longest_first", **tokenizer_kwargs) -> "BertPreprocessor":
        """A preprocessor on a ``vocab.txt``; ``tokenizer_kwargs`` go to :class:`FastWordPieceTokenizer`."""
        tokenizer = FastWordPieceTokenizer.from_vocab_file(path, lowercase=lowercase, **tokenizer_kwargs)
        return cls(tokenizer, sequence_length=sequence_length, truncation=truncation)

    # ------------------------------------------------------------------ special ids
    @property
    def cls_id(self) -> int:
        return self.tokenizer.cls_id

    @property
    def sep_id(self) -> int:
        return self.tokenizer.sep_id

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_id

    @property
    def mask_id(self) -> int:
        return self.tokenizer.mask_id

    @property
    def unk_id(self) -> int:
        return self.tokenizer.unk_id

    # ------------------------------------------------------------------ call
    def call(self, inputs: Any, return_offsets: bool = False) -> dict[str, tf.Tensor]:
        """Strings or pairs -> the backbone's input dict (see the module docstring)."""
        segments, unbatched = _segments(inputs)
        # One tokenizer call for both segments (half the graph): rows [first..., second...].
        text = segments[0] if len(segments) == 1 else tf.concat(segments, axis=0)
        tokens = self.tokenizer.tokenize_with_offsets(text) if return_offsets else (self.tokenizer(text),)
        if len(segments) == 2:
            n = tf.shape(segments[0])[0]
            tokens = tuple([t[:n], t[n:]] for t in tokens)
        else:
            tokens = tuple([t] for t in tokens)
        out = pack_inputs(tokens[0], self.sequence_length, cls_id=self.cls_id, sep_id=self.sep_id,
                          pad_id=self.pad_id, truncation=self.truncation)
        if return_offsets:  # packed the same way, with 0 for [CLS], [SEP] and padding
            zeros = dict(cls_id=0, sep_id=0, pad_id=0, truncation=self.truncation)
            start = pack_inputs(tokens[1], self.sequence_length, **zeros)["token_ids"]
            end = pack_inputs(tokens[2], self.sequence_length, **zeros)["token_ids"]
            out["offsets"] = tf.stack([start, end], axis=-1)
        if unbatched:
            out = {k: v[0] for k, v in out.items()}
        return out

    def compute_output_spec(self, inputs, return_offsets: bool = False):
        shape = (None, self.sequence_length)
        spec = {"token_ids": keras.KerasTensor(shape, dtype="int32"),
                "segment_ids": keras.KerasTensor(shape, dtype="int32"),
                "padding_mask": keras.KerasTensor(shape, dtype="bool")}
        if return_offsets:
            spec["offsets"] = keras.KerasTensor(shape + (2,), dtype="int32")
        return spec

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"tokenizer": keras.saving.serialize_keras_object(self.tokenizer),
                       "sequence_length": self.sequence_length,
                       "truncation": self.truncation})
        return config

    def __repr__(self) -> str:
        return (f"BertPreprocessor(sequence_length={self.sequence_length}, truncation={self.truncation!r}, "
                f"lowercase={self.tokenizer.lowercase}, split_special_tokens={self.tokenizer.split_special_tokens})")


def _segments(inputs: Any) -> tuple[list[tf.Tensor], bool]:
    """The 1 or 2 segments as 1-D string tensors, and whether the input was a single example."""
    if isinstance(inputs, list) and inputs and all(isinstance(x, tuple) and len(x) == 2 for x in inputs):
        inputs = ([a for a, _ in inputs], [b for _, b in inputs])  # [(a, b), ...] -> (as, bs)
    if isinstance(inputs, tuple):
        if len(inputs) not in (1, 2):
            raise ValueError(f"A tuple input is one or two segments (first, second), got {len(inputs)}.")
        parts = [_as_strings(x) for x in inputs]
        if len({p[1] for p in parts}) != 1:
            raise ValueError("Pair segments must be both single strings or both batches.")
        if len(parts) == 2:
            n1, n2 = parts[0][0].shape[0], parts[1][0].shape[0]
            if n1 is not None and n2 is not None and n1 != n2:
                raise ValueError(f"The two segments of a pair batch differ in size: {n1} and {n2}.")
        return [p[0] for p in parts], parts[0][1]
    text, unbatched = _as_strings(inputs)
    return [text], unbatched


def _as_strings(x: Any) -> tuple[tf.Tensor, bool]:
    if isinstance(x, (str, bytes)):
        check_strings([x])
        return tf.constant([x]), True
    if isinstance(x, (list, tuple)):
        check_strings(x)
        return tf.constant(list(x), dtype=tf.string, shape=[len(x)]), False
    tensor = tf.convert_to_tensor(x)
    if tensor.dtype != tf.string:
        raise TypeError(f"BertPreprocessor takes strings, got a {tensor.dtype.name} tensor.")
    if tensor.shape.rank == 0:
        return tf.reshape(tensor, [1]), True
    if tensor.shape.rank != 1:
        raise ValueError(f"Expected a string or a 1-D batch of strings, got shape {tensor.shape}.")
    return tensor, False
