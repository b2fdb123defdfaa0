"""Pack one or two token-id segments into BERT's input: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``.

Tensors in, tensors out (works on ``tf.RaggedTensor`` batches inside ``tf.data``):

* ``token_ids``    the packed ids, padded with ``pad_id`` to ``sequence_length``;
* ``segment_ids``  0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``, 0 on padding;
* ``padding_mask`` ``True`` on real tokens, ``False`` on padding.

When the segments do not fit, ``B = sequence_length - (number of segments + 1)`` token slots are
shared out and each segment is cut at its end. With lengths ``n1, n2``:

* ``"waterfall"``:   A keeps ``min(n1, B)``; B gets what is left, ``min(n2, B - a)``.
* ``"round_robin"``: slots are dealt one at a time, A first, skipping a segment that is used up
  (``tensorflow_text.RoundRobinTrimmer``, keras-hub's default). If both are long, A gets
  ``ceil(B/2)`` and B ``floor(B/2)``; otherwise the short one is kept whole.
* ``"longest_first"``: Hugging Face ``tokenizers``' rule: the short one is kept whole if it fits
  in half; otherwise the *longer* segment gets ``ceil(B/2)`` and the shorter ``floor(B/2)``, and on
  a tie the *second* gets ``ceil``. It differs from ``round_robin`` only when ``B`` is odd, both
  are long and ``n1 <= n2``.
* ``"only_second"``: Hugging Face's rule for question answering: only B is cut, A is kept whole,
  so B keeps ``min(n2, budget - n1)``. Where A alone fills the budget (``n1 >= budget``) Hugging
  Face raises ("Sequence to truncate too short"); a graph cannot raise for one row, so here A is
  cut to the budget and B is dropped (the ``"waterfall"`` result, which equals ``"only_second"``
  wherever Hugging Face succeeds). With one segment, it is cut (Hugging Face raises).
* ``"only_first"``: the mirror image: only A is cut, B kept whole (``n2 >= budget``: B is cut to the
  budget and A dropped; Hugging Face raises there).

>>> import tensorflow as tf
>>> out = pack_inputs([tf.ragged.constant([[5, 6, 7]]), tf.ragged.constant([[8, 9]])],
...                   sequence_length=8, cls_id=1, sep_id=2, pad_id=0)
>>> out["token_ids"].numpy().tolist(), out["segment_ids"].numpy().tolist()
([[1, 5, 6, 7, 2, 8, 9, 2]], [[0, 0, 0, 0, 0, 1, 1, 1]])
"""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

__all__ = ["pack_inputs", "TRUNCATION_STRATEGIES"]

TRUNCATION_STRATEGIES = ("round_robin", "waterfall", "longest_first", "only_second", "only_first")


def pack_inputs(segments: Any, sequence_length: int, *, tokenizer: Any = None, cls_id: int | None = None,
                sep_id: int | None = None, pad_id: int | None = None, truncation: str = "round_robin",
                max_position_embeddings: int = 512) -> dict[str, tf.Tensor]:
    """Pack 1 or 2 segments of ids into ``{"token_ids", "segment_ids", "padding_mask"}``.

    Args:
        segments: one segment or a list of one or two. A segment is a ``tf.RaggedTensor``
            ``[batch, (n)]`` (or a list of id lists), or a 1-D tensor / list of ids for a single
            example (then the outputs are 1-D).
        sequence_length: the packed length, ``[CLS]`` and ``[SEP]`` included.
        tokenizer: where to read ``cls_id``/``sep_id``/``pad_id`` (any object with those
            attributes, e.g. :class:`WordPieceTokenizer`); explicit ids win.
        truncation: ``"round_robin"``, ``"waterfall"``, ``"longest_first"``, ``"only_second"`` or
            ``"only_first"`` (see the module docstring).
        max_position_embeddings: the model's position table; a longer ``sequence_length`` is a
            ValueError (BERT has 512 positions).

    Example:
        >>> pack_inputs([7, 8, 9], 4, cls_id=1, sep_id=2, pad_id=0)["token_ids"].numpy().tolist()
        [1, 7, 8, 2]
        >>> pack_inputs([tf.constant([5, 6, 7]), tf.constant([8, 9])], 6, truncation="only_first",
        ...             cls_id=1, sep_id=2, pad_id=0)["token_ids"].numpy().tolist()
        [1, 5, 2, 8, 9, 2]
    """
    cls_id, sep_id, pad_id = (_special(name, value, tokenizer) for name, value in
                              (("cls_id", cls_id), ("sep_id", sep_id), ("pad_id", pad_id)))
    if truncation not in TRUNCATION_STRATEGIES:
        raise ValueError(f"truncation must be one of {TRUNCATION_STRATEGIES}, got {truncation!r}.")
    if isinstance(segments, (tuple, list)) and segments and _is_segment_list(segments):
        segs = list(segments)
    else:
        segs = [segments]
    if not 1 <= len(segs) <= 2:
        raise ValueError(f"pack_inputs takes one or two segments, got {len(segs)}.")
    if not isinstance(sequence_length, int) or isinstance(sequence_length, bool):
        raise TypeError(f"sequence_length must be a Python int, got {type(sequence_length).__name__}.")
    if sequence_length > max_position_embeddings:
        raise ValueError(f"sequence_length={sequence_length} is longer than the model's position table "
                         f"(max_position_embeddings={max_position_embeddings}): BERT cannot attend past it. "
                         f"Use sequence_length <= {max_position_embeddings}, or split long documents into windows.")
    n_special = len(segs) + 1
    if sequence_length <= n_special:
        raise ValueError(f"sequence_length={sequence_length} leaves no room for tokens after {n_special} "
                         f"special tokens ([CLS] and {len(segs)} [SEP]).")

    ragged, unbatched = zip(*(_to_ragged(s) for s in segs))
    if len(set(unbatched)) != 1:
        raise ValueError("Mix of batched and unbatched segments: give both as batches or both as single examples.")
    budget = sequence_length - n_special
    lengths = [r.row_lengths() for r in ragged]
    keep = _trim(lengths, budget, truncation)
    ragged = [_head(r, k) for r, k in zip(ragged, keep)]

    batch = ragged[0].nrows()
    cls = tf.fill([batch, 1], tf.constant(cls_id, tf.int32))
    sep = tf.fill([batch, 1], tf.constant(sep_id, tf.int32))
    pieces, segment_pieces = [cls], [tf.zeros_like(cls)]
    for i, r in enumerate(ragged):
        pieces += [r, sep]
        segment_pieces += [r.with_flat_values(tf.fill(tf.shape(r.flat_values), i)), tf.fill([batch, 1], i)]
    token_ids = tf.concat([_as_ragged(p) for p in pieces], axis=1)
    segment_ids = tf.concat([_as_ragged(p) for p in segment_pieces], axis=1)
    shape = [None, sequence_length]
    out = {
        "token_ids": token_ids.to_tensor(default_value=pad_id, shape=shape),
        "segment_ids": segment_ids.to_tensor(default_value=0, shape=shape),
        "padding_mask": tf.ones_like(token_ids, dtype=tf.bool).to_tensor(default_value=False, shape=shape),
    }
    if unbatched[0]:
        out = {k: v[0] for k, v in out.items()}
    return out


def _special(name: str, value: int | None, tokenizer: Any) -> int:
    if value is None and tokenizer is not None:
        value = getattr(tokenizer, name)
    if value is None:
        raise ValueError(f"pack_inputs needs {name}: pass {name}=... or tokenizer=... (for the BERT "
                         f"uncased vocab: [CLS]=101, [SEP]=102, [PAD]=0).")
    return int(value)


def _is_segment_list(segments: Sequence) -> bool:
    """A list of segments (not a list of ids, nor a list of id lists = one batched segment)."""
    first = segments[0]
    if isinstance(first, (tf.Tensor, tf.RaggedTensor)):
        return True
    if isinstance(first, (list, tuple)):
        return bool(first) and isinstance(first[0], (list, tuple))  # [[[...]], [[...]]]
    return False


def _to_ragged(segment: Any) -> tuple[tf.RaggedTensor, bool]:
    if isinstance(segment, tf.RaggedTensor):
        if segment.shape.rank != 2:
            raise ValueError(f"A ragged segment must be [batch, (tokens)], got rank {segment.shape.rank}.")
        return tf.cast(segment, tf.int32), False
    if isinstance(segment, (list, tuple)) and segment and isinstance(segment[0], (list, tuple)):
        return tf.ragged.constant(segment, dtype=tf.int32, ragged_rank=1), False
    tensor = tf.convert_to_tensor(segment)
    if tensor.dtype.is_floating or tensor.dtype == tf.string or tensor.dtype == tf.bool:
        raise TypeError(f"Segments hold integer token ids, got {tensor.dtype.name}. Tokenize text first.")
    tensor = tf.cast(tensor, tf.int32)
    if tensor.shape.rank == 1:
        return tf.RaggedTensor.from_tensor(tensor[tf.newaxis]), True
    if tensor.shape.rank == 2:  # a dense batch: every row is full
        return tf.RaggedTensor.from_tensor(tensor), False
    raise ValueError(f"A segment must be 1-D (one example) or a [batch, (tokens)] batch, got shape {tensor.shape}.")


def _trim(lengths: list[tf.Tensor], budget: int, truncation: str) -> list[tf.Tensor]:
    """How many tokens each segment keeps (see the module docstring for the rules)."""
    b = tf.constant(budget, tf.int64)
    if len(lengths) == 1:
        return [tf.minimum(lengths[0], b)]
    n1, n2 = lengths
    if truncation in ("waterfall", "only_second"):
        a = tf.minimum(n1, b)
        return [a, tf.minimum(n2, b - a)]
    if truncation == "only_first":
        kept_b = tf.minimum(n2, b)
        return [tf.minimum(n1, b - kept_b), kept_b]
    if truncation == "round_robin":
        a = tf.minimum(n1, tf.maximum((b + 1) // 2, b - n2))
        return [a, tf.minimum(n2, b - a)]
    # longest_first, as tokenizers' TruncationStrategy::LongestFirst.
    fits = n1 + n2 <= b
    short = tf.minimum(n1, n2)
    short_fits_in_half = 2 * short <= b
    first_is_longer = n1 > n2
    half_floor, half_ceil = b // 2, b - b // 2
    a_both = tf.where(first_is_longer, half_ceil, half_floor)
    a = tf.where(fits, n1, tf.where(short_fits_in_half, tf.where(first_is_longer, b - n2, n1), a_both))
    return [a, tf.minimum(n2, b - a)]


def _head(r: tf.RaggedTensor, keep: tf.Tensor) -> tf.RaggedTensor:
    """The first ``keep[i]`` tokens of row ``i``."""
    positions = tf.ragged.range(r.row_lengths())
    return tf.ragged.boolean_mask(r, positions < tf.expand_dims(keep, 1))


def _as_ragged(x: tf.Tensor | tf.RaggedTensor) -> tf.RaggedTensor:
    return x if isinstance(x, tf.RaggedTensor) else tf.RaggedTensor.from_tensor(x)
