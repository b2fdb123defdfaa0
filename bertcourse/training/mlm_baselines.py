"""Count baselines for masked-LM accuracy (lesson 07): how far do the neighbouring tokens alone get?

Three guessers, fitted by counting on the training text and scored on EXACTLY the masked positions of
:func:`bertcourse.training.pretrain.evaluate_mlm` (the same :func:`~bertcourse.training.pretrain.heldout_mlm_dataset`):

* ``unigram``: always the most frequent token (no context);
* ``left``: the most frequent token after the left neighbour (a bigram model), else ``unigram``;
* ``right``: the most frequent token before the right neighbour, else ``unigram``;
* ``bidirectional``: the most frequent token between the left AND the right neighbour, else ``left``'s
  answer if that left neighbour was seen, else ``right``'s, else ``unigram``.

``left`` is what a left-to-right count model can do at a masked position, ``bidirectional`` what "both sides
of the context" buys a model that only reads one token each way. A masked LM that really reads its context
must beat ``bidirectional``.

Neighbours are read from the input the MLM model sees: the CORRUPTED sequence, so a neighbour that is itself
masked is ``[MASK]`` (or BERT's random / unchanged token); ``[MASK]`` never occurs in the training counts, so
that side is simply unknown and the guess backs off. Counts come from the training documents packed into the
same ``[CLS] A [SEP] B [SEP]`` sequences the model trains on (unmasked), so ``[CLS]``/``[SEP]`` are neighbours
there too; the specials themselves are never counted as a centre token (they are never masked). Ties go to the
smaller token id (deterministic).

>>> import numpy as np
>>> train = np.array([[1, 5, 6, 7, 2], [1, 5, 6, 8, 2], [1, 9, 6, 8, 2]])      # 1 = [CLS], 2 = [SEP]
>>> counts = NeighbourCounts.fit(train, vocab_size=10, ignore_ids=[0, 1, 2])
>>> counts.unigram, counts.predict(np.array([[1, 5, 4, 8, 2]]), np.array([[2]]), "left").tolist()
(6, [[6]])
>>> counts.predict(np.array([[1, 6, 4, 2]]), np.array([[2]]), "bidirectional").tolist()   # 6 _ [SEP]: 7 once, 8 twice
[[8]]
"""

from __future__ import annotations

import dataclasses
import random
from typing import Iterable, Sequence

import numpy as np

from bertcourse.data.nsp import create_nsp_pairs, tokenize_documents
from bertcourse.data.pipeline import pack_pairs
from bertcourse.training.pretrain import PRETRAINING_DEFAULTS, heldout_mlm_dataset

__all__ = ["NeighbourCounts", "count_baselines", "METHODS"]

METHODS = ("unigram", "left", "right", "bidirectional")


def _best_per_context(context: np.ndarray, centre: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
    """``(contexts, best)``: every distinct context (sorted) and its most frequent centre (ties: smaller id).
    Centre ids are ``< base``; one int64 key per (context, centre) keeps it one sort."""
    keys, counts = np.unique(context.astype(np.int64) * base + centre, return_counts=True)
    ctx, cen = keys // base, keys % base
    order = np.lexsort((cen, -counts, ctx))  # by context, then count (desc), then id (asc)
    ctx, cen = ctx[order], cen[order]
    first = np.ones(len(ctx), bool)
    first[1:] = ctx[1:] != ctx[:-1]
    return ctx[first], cen[first]


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(found, value)`` for each query key in the sorted ``keys``."""
    if keys.size == 0:
        return np.zeros(query.shape, bool), np.zeros(query.shape, np.int64)
    index = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
    return keys[index] == query, values[index]


@dataclasses.dataclass(frozen=True)
class NeighbourCounts:
    """The best guess per context, fitted from token-id sequences. ``boundary`` (= ``vocab_size``) stands for
    "no token there" (before the first position, after the last real one)."""

    vocab_size: int
    unigram: int
    left_keys: np.ndarray  # left neighbour ids (sorted) -> left_best
    left_best: np.ndarray
    right_keys: np.ndarray
    right_best: np.ndarray
    both_keys: np.ndarray  # left * (vocab_size + 1) + right (sorted) -> both_best
    both_best: np.ndarray

    @property
    def boundary(self) -> int:
        return self.vocab_size

    @staticmethod
    def neighbours(token_ids: np.ndarray, positions: np.ndarray, padding_mask: np.ndarray | None = None,
                   boundary: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """``(left, right)`` ids around ``positions`` ``[B, P]`` of ``token_ids`` ``[B, L]``; ``boundary`` where
        the neighbour is outside the sequence or padding."""
        token_ids = np.asarray(token_ids, np.int64)
        positions = np.asarray(positions, np.int64)
        length = token_ids.shape[1]
        real = np.ones(token_ids.shape, bool) if padding_mask is None else np.asarray(padding_mask) > 0
        out = []
        for offset in (-1, 1):
            at = positions + offset
            inside = (at >= 0) & (at < length)
            at = np.clip(at, 0, length - 1)
            ids = np.take_along_axis(token_ids, at, axis=1)
            ok = inside & np.take_along_axis(real, at, axis=1)
            out.append(np.where(ok, ids, boundary))
        return out[0], out[1]

    @classmethod
    def fit(cls, token_ids: np.ndarray, vocab_size: int, padding_mask: np.ndarray | None = None,
            ignore_ids: Iterable[int] = ()) -> "NeighbourCounts":
        """Count every real position of ``token_ids`` ``[N, L]`` whose token is not in ``ignore_ids``
        (the specials) as a centre, with its left and right neighbours (specials included)."""
        token_ids = np.asarray(token_ids, np.int64)
        real = np.ones(token_ids.shape, bool) if padding_mask is None else np.asarray(padding_mask) > 0
        centre_ok = real & ~np.isin(token_ids, np.fromiter(ignore_ids, np.int64))
        rows, cols = np.nonzero(centre_ok)
        if rows.size == 0:
            raise ValueError("Nothing to count: no real, non-special tokens in the training sequences.")
        centre = token_ids[rows, cols]
        length = token_ids.shape[1]
        sides = []
        for at in (cols - 1, cols + 1):
            inside = (at >= 0) & (at < length)
            at = np.clip(at, 0, length - 1)
            sides.append(np.where(inside & real[rows, at], token_ids[rows, at], vocab_size))
        left, right = sides
        unigram = int(np.argmax(np.bincount(centre, minlength=vocab_size)))
        base = vocab_size + 1
        return cls(vocab_size, unigram, *_best_per_context(left, centre, base),
                   *_best_per_context(right, centre, base), *_best_per_context(left * base + right, centre, base))

    def predict(self, token_ids: np.ndarray, positions: np.ndarray, method: str = "bidirectional",
                padding_mask: np.ndarray | None = None) -> np.ndarray:
        """The guess at each of ``positions`` ``[B, P]`` in ``token_ids`` ``[B, L]`` (the centre's own id is
        never read), by ``method`` (one of :data:`METHODS`)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
        left, right = self.neighbours(token_ids, positions, padding_mask, self.boundary)
        guess = np.full(left.shape, self.unigram, np.int64)
        if method == "unigram":
            return guess
        found_l, best_l = _lookup(self.left_keys, self.left_best, left)
        found_r, best_r = _lookup(self.right_keys, self.right_best, right)
        if method == "left":
            return np.where(found_l, best_l, guess)
        if method == "right":
            return np.where(found_r, best_r, guess)
        found_b, best_b = _lookup(self.both_keys, self.both_best, left * (self.vocab_size + 1) + right)
        return np.where(found_b, best_b, np.where(found_l, best_l, np.where(found_r, best_r, guess)))


def _training_sequences(train_documents: Sequence, tokenizer, seq_len: int, seed: int,
                        short_seq_prob: float) -> dict[str, np.ndarray]:
    """The training documents as the model sees them, unmasked: the NSP pairs of
    :func:`bertcourse.data.pipeline.pretraining_dataset` (same ``seed``), packed."""
    pairs = list(create_nsp_pairs(tokenize_documents(train_documents, tokenizer), max_seq_length=seq_len,
                                  short_seq_prob=short_seq_prob, rng=random.Random(seed)))
    return pack_pairs(pairs, seq_len, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)


def count_baselines(train_documents: Sequence, heldout_documents: Sequence, tokenizer, seq_len: int = 128,
                    batch_size: int = 32, max_batches: int | None = None, seed: int = 2024,
                    train_seed: int = PRETRAINING_DEFAULTS["seed"], short_seq_prob: float = 0.1
                    ) -> dict[str, float | int | str]:
    """Held-out accuracy of each count guesser in :data:`METHODS`, on :func:`evaluate_mlm`'s masked positions.

    The arguments after ``tokenizer`` are :func:`~bertcourse.training.pretrain.evaluate_mlm`'s (same values,
    same masks); ``train_seed`` makes the training pairs (pretraining's default seed). Returns
    ``{"unigram": acc, "left": acc, "right": acc, "bidirectional": acc, "predictions": n,
    "backoff_both" / "backoff_left" / "backoff_right" / "backoff_unigram": the share of predictions that the
    bidirectional guesser answered at each level, "most_frequent_token": str}``.
    """
    specials = sorted({tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id})
    packed = _training_sequences(train_documents, tokenizer, seq_len, train_seed, short_seq_prob)
    counts = NeighbourCounts.fit(packed["token_ids"], tokenizer.vocabulary_size, packed["padding_mask"], specials)
    correct = dict.fromkeys(METHODS, 0)
    levels = dict.fromkeys(("both", "left", "right", "unigram"), 0)
    total = 0
    for x, y, w in heldout_mlm_dataset(heldout_documents, tokenizer, seq_len, batch_size, max_batches,
                                       seed).as_numpy_iterator():
        real = w["mlm"] > 0
        labels = y["mlm"]
        for method in METHODS:
            guess = counts.predict(x["token_ids"], x["masked_positions"], method, x["padding_mask"])
            correct[method] += int((guess == labels)[real].sum())
        left, right = counts.neighbours(x["token_ids"], x["masked_positions"], x["padding_mask"], counts.boundary)
        b = _lookup(counts.both_keys, counts.both_best, left * (counts.vocab_size + 1) + right)[0][real]
        lf = _lookup(counts.left_keys, counts.left_best, left)[0][real]
        rf = _lookup(counts.right_keys, counts.right_best, right)[0][real]
        levels["both"] += int(b.sum())
        levels["left"] += int((~b & lf).sum())
        levels["right"] += int((~b & ~lf & rf).sum())
        levels["unigram"] += int((~b & ~lf & ~rf).sum())
        total += int(real.sum())
    if not total:
        raise ValueError("No masked positions to score: the held-out documents are empty.")
    out: dict[str, float | int | str] = {m: correct[m] / total for m in METHODS}
    out["predictions"] = total
    out.update({f"backoff_{k}": v / total for k, v in levels.items()})
    out["most_frequent_token"] = tokenizer.convert_ids_to_tokens([counts.unigram])[0]
    return out
