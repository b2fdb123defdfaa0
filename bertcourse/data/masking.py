"""MLM masking (lesson 06): BERT's 15% / 80-10-10 rule, once in plain NumPy and once in the graph.

Of the real (non-special) tokens of a sequence, 15% are selected for prediction; of those, 80%
become ``[MASK]``, 10% a random token and 10% stay as they are -- so the model cannot tell which
of the tokens it sees are the ones it will be asked about.

* :func:`mask_tokens_reference` is the rule written out in NumPy with an explicit
  ``np.random.Generator`` (as ``create_masked_lm_predictions`` in google-research/bert): read it.
* :func:`mask_tokens` is the same rule as TensorFlow ops with stateless seeds, for ``tf.data``;
  fed the same random numbers it gives exactly the reference's output (tested).
* :func:`num_predictions` is the one place of the prediction budget per sequence length.

>>> num_predictions(128), num_predictions(512)
(20, 77)
>>> ids = np.array([101, 7592, 2088, 2003, 2307, 1010, 2023, 2003, 1037, 3231, 102, 0, 0])
>>> out = mask_tokens_reference(ids, vocab_size=30522, special_ids=[0, 100, 101, 102, 103], mask_id=103,
...                             rng=np.random.default_rng(0), max_predictions=3)
>>> out["masked_positions"].tolist(), out["masked_ids"].tolist(), out["masked_weights"].tolist()
([9, 0, 0], [3231, 0, 0], [1.0, 0.0, 0.0])
>>> out["token_ids"].tolist()          # round(0.15 * 9 real tokens) = 1 selected, and it became [MASK]
[101, 7592, 2088, 2003, 2307, 1010, 2023, 2003, 1037, 103, 102, 0, 0]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

__all__ = ["MaskingConfig", "num_predictions", "whole_word_starts", "mask_tokens", "mask_tokens_reference"]


def num_predictions(seq_len: int, rate: float = 0.15) -> int:
    """The prediction budget of a packed sequence: ``max(1, round(seq_len * rate + 0.5))``.

    About ``ceil(seq_len * rate)`` and at least 1 -- BERT's ``max_predictions_per_seq`` (20 for 128
    tokens). The masked positions, ids and weights are padded to this many slots.

    >>> [num_predictions(n) for n in (8, 64, 128, 256, 512)], num_predictions(128, rate=0.4)
    ([2, 10, 20, 39, 77], 52)
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}.")
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"masking rate must be in (0, 1], got {rate}.")
    return max(1, round(seq_len * rate + 0.5))


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """The knobs of MLM masking; defaults are BERT's (15%, 80/10/10, 20 predictions for 128 tokens).

    >>> MaskingConfig.for_length(512)
    MaskingConfig(rate=0.15, mask_token_rate=0.8, random_token_rate=0.1, max_predictions=77)
    """

    rate: float = 0.15
    mask_token_rate: float = 0.8
    random_token_rate: float = 0.1
    max_predictions: int = 20

    def __post_init__(self) -> None:
        if not 0.0 < self.rate <= 1.0:
            raise ValueError(f"masking rate must be in (0, 1], got {self.rate}.")
        if self.mask_token_rate < 0 or self.random_token_rate < 0 or \
                self.mask_token_rate + self.random_token_rate > 1.0:
            raise ValueError("mask_token_rate and random_token_rate must be >= 0 and sum to at most 1.")
        if self.max_predictions < 1:
            raise ValueError("max_predictions must be >= 1.")

    @classmethod
    def for_length(cls, seq_len: int, rate: float = 0.15, **kwargs: Any) -> "MaskingConfig":
        """The config for sequences of ``seq_len`` tokens: ``max_predictions = num_predictions(seq_len, rate)``."""
        return cls(rate=rate, max_predictions=num_predictions(seq_len, rate), **kwargs)


def whole_word_starts(vocabulary: Sequence[str], prefix: str = "##") -> np.ndarray:
    """Boolean per vocabulary id: True where the piece starts a word (does not begin with ``##``).

    >>> whole_word_starts(["[PAD]", "play", "##ing", "dog"]).tolist()
    [True, True, False, True]
    """
    return np.array([not tok.startswith(prefix) for tok in vocabulary], dtype=bool)


# ----------------------------------------------------------------------------- the rule, in NumPy
def mask_tokens_reference(token_ids: Sequence[int] | np.ndarray, vocab_size: int, special_ids: Sequence[int],
                          mask_id: int, rng: np.random.Generator, rate: float = 0.15,
                          mask_token_rate: float = 0.8, random_token_rate: float = 0.1,
                          max_predictions: int = 20, word_starts: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Mask one packed sequence for MLM: the rule, step by step, in plain NumPy.

    Args:
        token_ids: the ids of one packed sequence (``[CLS] a [SEP] b [SEP]`` and padding).
        vocab_size: random replacements are drawn from ``0 .. vocab_size - 1`` minus ``special_ids``.
        special_ids: never selected ([PAD], [UNK], [CLS], [SEP], [MASK]).
        mask_id: the id of ``[MASK]``.
        rng: the explicit random generator; three draws, in this order: one score per unit (token
            or word), one action number per position, one random-token index per position.
        rate: share of the real tokens to predict (rounded; at least 1, at most ``max_predictions``).
        mask_token_rate, random_token_rate: of the selected tokens, the share that becomes
            ``[MASK]`` and the share that becomes a random token (the rest stay unchanged).
        word_starts: bool per vocabulary id (:func:`whole_word_starts`): mask whole words.

    Returns:
        ``token_ids`` (masked copy) and ``masked_positions``, ``masked_ids`` (the original ids
        there, the labels), ``masked_weights`` (1.0 for a real prediction), each padded to
        ``max_predictions``: the same dict as :func:`mask_tokens`.
    """
    cfg = MaskingConfig(rate, mask_token_rate, random_token_rate, max_predictions)
    ids = np.asarray(token_ids)
    n = len(ids)

    # 1. Candidates: every position that is not a special token or padding.
    is_special = np.isin(ids, list(special_ids))
    candidate = ~is_special

    # 2. How many: `rate` of the candidates, rounded (in float32, as the graph does), at least one,
    #    at most max_predictions.
    budget = int(np.rint(np.float32(candidate.sum()) * np.float32(cfg.rate)))
    budget = min(max(budget, 1), cfg.max_predictions, int(candidate.sum()))

    # 3. Units: single tokens, or whole words (a word = a start piece and the "##" pieces after it;
    #    special tokens, and a piece right after one, start a unit of their own).
    if word_starts is None:
        units = [[i] for i in range(n)]
    else:
        starts = np.asarray(word_starts, dtype=bool)[ids] | is_special | np.r_[True, is_special[:-1]]
        units = np.split(np.arange(n), np.flatnonzero(starts)[1:])

    # 4. Which: the candidate units in random order (sort by a random score = a random shuffle),
    #    taken while they fit in the budget. (The original skips a word that does not fit and tries
    #    the next; this rule stops, as the graph version must. A first word longer than the whole
    #    budget is still taken, so that every sequence predicts something.)
    scores = rng.random(len(units), dtype=np.float32)
    selected = np.zeros(n, dtype=bool)
    taken = 0
    for u in np.argsort(-scores, kind="stable"):
        if not candidate[units[u][0]]:
            continue
        if taken + len(units[u]) > budget and taken > 0:
            break
        selected[units[u]] = True
        taken += len(units[u])
        if taken >= budget:
            break

    # 5. What each selected token becomes: [MASK] (80%), a random non-special token (10%), itself (10%).
    action = rng.random(n, dtype=np.float32)
    allowed = np.setdiff1d(np.arange(vocab_size), list(special_ids))
    random_tokens = allowed[rng.integers(0, len(allowed), size=n)]
    to_mask = selected & (action < np.float32(cfg.mask_token_rate))
    to_random = selected & ~to_mask & (action < np.float32(cfg.mask_token_rate + cfg.random_token_rate))
    masked = np.where(to_mask, mask_id, np.where(to_random, random_tokens, ids))

    # 6. The labels: positions in ascending order, padded to max_predictions. (Only a whole word longer
    #    than the budget can overflow it: its overflowing pieces are left unmasked and unpredicted.)
    positions = np.flatnonzero(selected)[: cfg.max_predictions]
    predicted = np.zeros(n, dtype=bool)
    predicted[positions] = True
    masked = np.where(predicted, masked, ids)
    pad = cfg.max_predictions - len(positions)
    return {
        "token_ids": masked.astype(ids.dtype),
        "masked_positions": np.pad(positions, (0, pad)).astype(np.int32),
        "masked_ids": np.pad(ids[positions], (0, pad)).astype(np.int32),
        "masked_weights": np.pad(np.ones(len(positions), np.float32), (0, pad)),
    }


# ----------------------------------------------------------------------------- the rule, in the graph
def mask_tokens(token_ids: Any, vocab_size: int, special_ids: Sequence[int], mask_id: int, seed: Any,
                rate: float = 0.15, mask_token_rate: float = 0.8, random_token_rate: float = 0.1,
                max_predictions: int = 20, word_starts: np.ndarray | None = None) -> dict[str, tf.Tensor]:
    """Mask one sequence for MLM, in the TensorFlow graph (usable in ``tf.data.map``).

    Selects ``round(rate * n)`` of the ``n`` non-special positions (at least 1, at most
    ``max_predictions``); of those, ``mask_token_rate`` become ``mask_id``, ``random_token_rate``
    a random non-special token, the rest stay. With ``word_starts`` (a bool per vocabulary id, see
    :func:`whole_word_starts`) whole words are masked: all pieces of a word or none. The rule is
    :func:`mask_tokens_reference`'s, step for step.

    Args:
        token_ids: int tensor ``[seq_len]`` (padding and [CLS]/[SEP] count as special).
        seed: shape-[2] int tensor for the stateless random ops.

    Returns:
        ``token_ids`` (masked), ``masked_positions`` / ``masked_ids`` (int32 ``[max_predictions]``,
        sorted by position, zero-padded) and ``masked_weights`` (float32, 1 for real predictions).

    >>> out = mask_tokens(tf.constant([2, 10, 11, 12, 13, 3, 0, 0]), vocab_size=20,
    ...                   special_ids=[0, 1, 2, 3, 4], mask_id=4, seed=[1, 2], max_predictions=3)
    >>> int(out["masked_weights"].numpy().sum())   # round(0.15 * 4) = 1 position
    1
    """
    cfg = MaskingConfig(rate, mask_token_rate, random_token_rate, max_predictions)
    token_ids = tf.convert_to_tensor(token_ids)
    if token_ids.dtype not in (tf.int32, tf.int64):
        raise TypeError(f"token_ids must be integers, got {token_ids.dtype}.")
    if token_ids.shape.rank != 1:
        raise ValueError(f"mask_tokens works on one sequence of rank 1, got rank {token_ids.shape.rank}; "
                         "use it in Dataset.map before batching.")
    ids = tf.cast(token_ids, tf.int32)
    seq_len = tf.shape(ids)[0]
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
    seeds = tf.random.experimental.stateless_split(seed, num=4)

    special = tf.constant(sorted(set(int(i) for i in special_ids)), tf.int32)
    is_special = tf.reduce_any(tf.equal(ids[:, None], special[None, :]), axis=1)
    candidate = tf.logical_not(is_special)
    num_candidates = tf.reduce_sum(tf.cast(candidate, tf.int32))
    num_to_predict = tf.cast(tf.round(tf.cast(num_candidates, tf.float32) * cfg.rate), tf.int32)
    num_to_predict = tf.minimum(tf.maximum(num_to_predict, 1), cfg.max_predictions)
    num_to_predict = tf.minimum(num_to_predict, num_candidates)

    if word_starts is None:
        scores = tf.random.stateless_uniform([seq_len], seeds[0])
        scores = tf.where(candidate, scores, -1.0)
        order = tf.argsort(scores, direction="DESCENDING")
        rank = tf.scatter_nd(order[:, None], tf.range(seq_len), [seq_len])
        selected = tf.logical_and(candidate, rank < num_to_predict)
    else:
        starts_table = tf.constant(np.asarray(word_starts, dtype=bool))
        # Special tokens are words of their own, and a piece right after one (a "##" piece left
        # orphan by truncation) starts a new word.
        after_special = tf.concat([[True], is_special[:-1]], axis=0)
        is_start = tf.gather(starts_table, ids) | is_special | after_special
        word_id = tf.cumsum(tf.cast(is_start, tf.int32)) - 1
        num_words = word_id[-1] + 1
        word_scores = tf.random.stateless_uniform([num_words], seeds[0])
        word_is_candidate = tf.math.unsorted_segment_max(tf.cast(candidate, tf.int32), word_id, num_words) > 0
        word_len = tf.math.unsorted_segment_sum(tf.ones_like(ids), word_id, num_words)
        word_scores = tf.where(word_is_candidate, word_scores, -1.0)
        word_order = tf.argsort(word_scores, direction="DESCENDING")
        cum_len = tf.cumsum(tf.gather(word_len, word_order))
        ordered_ok = tf.logical_and(cum_len <= num_to_predict, tf.gather(word_is_candidate, word_order))
        # A first word longer than the budget is still taken, so that something is predicted.
        first = tf.logical_and(tf.range(num_words) == 0, tf.gather(word_is_candidate, word_order))
        ordered_ok = tf.logical_or(ordered_ok, tf.logical_and(first, tf.logical_not(tf.reduce_any(ordered_ok))))
        word_selected = tf.scatter_nd(word_order[:, None], ordered_ok, [num_words])
        selected = tf.logical_and(tf.gather(word_selected, word_id), candidate)

    # 80% [MASK] / 10% random / 10% unchanged, decided per selected position.
    action = tf.random.stateless_uniform([seq_len], seeds[1])
    to_mask = tf.logical_and(selected, action < cfg.mask_token_rate)
    to_random = tf.logical_and(selected, tf.logical_and(action >= cfg.mask_token_rate,
                                                        action < cfg.mask_token_rate + cfg.random_token_rate))
    allowed = tf.constant(np.setdiff1d(np.arange(vocab_size), np.asarray(sorted(set(special_ids)))), tf.int32)
    random_index = tf.random.stateless_uniform([seq_len], seeds[2], minval=0, maxval=tf.shape(allowed)[0],
                                               dtype=tf.int32)
    random_tokens = tf.gather(allowed, random_index)
    masked = tf.where(to_mask, mask_id, tf.where(to_random, random_tokens, ids))

    # Positions of the selected tokens, ascending, padded to max_predictions.
    positions = tf.boolean_mask(tf.range(seq_len), selected)[: cfg.max_predictions]
    n = tf.shape(positions)[0]
    pad = cfg.max_predictions - n
    masked_positions = tf.pad(positions, [[0, pad]])
    masked_ids = tf.pad(tf.gather(ids, positions), [[0, pad]])
    masked_weights = tf.pad(tf.ones([n], tf.float32), [[0, pad]])
    # With whole words a word may overflow max_predictions: unmask what cannot be predicted.
    predicted = tf.scatter_nd(positions[:, None], tf.ones([n], tf.bool), [seq_len])
    masked = tf.where(predicted, masked, ids)
    masked_positions.set_shape([cfg.max_predictions])
    masked_ids.set_shape([cfg.max_predictions])
    masked_weights.set_shape([cfg.max_predictions])
    return {
        "token_ids": tf.cast(masked, token_ids.dtype),
        "masked_positions": masked_positions,
        "masked_ids": masked_ids,
        "masked_weights": masked_weights,
    }
