"""Pretraining data: NSP sentence pairs and MLM masking (lesson 06), as in BERT's
``create_pretraining_data.py`` but streaming, seeded, and with the masking inside ``tf.data``.

Three steps, each usable alone:

1. :func:`create_nsp_pairs` turns documents (lists of sentences of token ids) into
   ``[CLS] A [SEP] B [SEP]`` pairs: half IsNext (B really follows A), half NotNext (B from another
   document), with the original's target lengths, ``short_seq_prob`` and random truncation.
2. :func:`mask_tokens` picks 15% of the real tokens and replaces 80% of those with ``[MASK]``,
   10% with a random token and leaves 10% unchanged, inside the TensorFlow graph with stateless
   seeds: the same seed gives the same masks, a new seed new masks.
3. :func:`pretraining_dataset` puts both in a ``tf.data`` pipeline whose masks change every epoch
   (dynamic masking, as RoBERTa), and :func:`write_static_tfrecords` writes ``dupe_factor``
   pre-masked copies (static masking, as the original BERT).

>>> import random
>>> docs = [[[5, 6], [7, 8, 9]], [[10, 11], [12]]]
>>> pair = next(create_nsp_pairs(docs, max_seq_length=16, rng=random.Random(0)))
>>> pair.tokens_a, pair.tokens_b, pair.is_random_next   # B from the other document: NotNext
([5, 6], [12], True)
"""

from __future__ import annotations

import collections
import dataclasses
import random
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

__all__ = ["NspPair", "create_nsp_pairs", "truncate_pair", "pack_pair", "tokenize_documents",
           "mask_tokens", "whole_word_starts", "pretraining_dataset", "nsp_pair_dataset",
           "write_static_tfrecords", "read_static_tfrecords", "MaskingConfig"]

Document = Sequence[Sequence[int]]  # sentences of token ids


@dataclasses.dataclass(frozen=True)
class NspPair:
    """Two segments of token ids (no special tokens) and whether B is a random document's text."""

    tokens_a: list[int]
    tokens_b: list[int]
    is_random_next: bool
    document_index: int = -1
    num_truncated: int = 0  # tokens cut by truncate_pair (from the front or back of either segment)

    @property
    def label(self) -> int:
        """NSP label as in BERT: 0 = IsNext, 1 = NotNext."""
        return int(self.is_random_next)


# ----------------------------------------------------------------------------- NSP pairs
def truncate_pair(tokens_a: list[int], tokens_b: list[int], max_num_tokens: int, rng: random.Random) -> None:
    """Truncate the longer segment one token at a time, from the front or the back at random
    (in place), until both fit in ``max_num_tokens`` - exactly ``truncate_seq_pair`` of BERT."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        trunc = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del trunc[0]
        else:
            trunc.pop()


def create_nsp_pairs(documents: Iterable[Document], max_seq_length: int = 128, short_seq_prob: float = 0.1,
                     next_sentence_prob: float = 0.5, rng: random.Random | None = None,
                     window: int = 256) -> Iterator[NspPair]:
    """Stream NSP pairs from documents, with the semantics of BERT's ``create_instances_from_document``.

    Memory stays bounded: at most ``window`` documents ahead and ``window`` behind are held; NotNext
    segments come from those other documents (for a corpus under ``window`` documents: all others).

    Args:
        documents: iterable of documents; a document is a sequence of sentences; a sentence a
            sequence of token ids without special tokens.
        max_seq_length: packed length including ``[CLS]`` and two ``[SEP]``.
        short_seq_prob: probability of a shorter random target length (2 .. max), so that the model
            also sees short sequences.
        next_sentence_prob: probability that B is the true continuation.
        rng: the explicit random generator (BERT passes one everywhere); default ``Random(12345)``.
    """
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length must be at least 5 ([CLS] a [SEP] b [SEP]), got {max_seq_length}.")
    if not 0.0 <= short_seq_prob <= 1.0 or not 0.0 <= next_sentence_prob <= 1.0:
        raise ValueError("short_seq_prob and next_sentence_prob must be probabilities in [0, 1].")
    rng = rng if rng is not None else random.Random(12345)
    buffer: collections.deque = collections.deque()
    iterator = iter(documents)
    index = 0
    exhausted = False

    def fill() -> None:
        nonlocal exhausted
        while not exhausted and len(buffer) < window:
            try:
                doc = next(iterator)
            except StopIteration:
                exhausted = True
                return
            doc = [list(s) for s in doc if len(s) > 0]
            if doc:
                buffer.append(doc)

    past: collections.deque = collections.deque(maxlen=window)
    fill()
    while buffer:
        current = buffer[0]
        others = list(past) + list(buffer)[1:]
        yield from _pairs_from_document(current, others, index, max_seq_length, short_seq_prob,
                                        next_sentence_prob, rng)
        past.append(buffer.popleft())
        index += 1
        fill()


def _pairs_from_document(document: list[list[int]], others: list[list[list[int]]], doc_index: int,
                         max_seq_length: int, short_seq_prob: float, next_sentence_prob: float,
                         rng: random.Random) -> Iterator[NspPair]:
    max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)
    chunk: list[list[int]] = []
    current_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if chunk:
                # Decide first, so that IsNext really is next_sentence_prob of the pairs. (The
                # original forces NotNext whenever the chunk holds one segment, which with long
                # sentences skews the labels; here such a chunk takes the next sentence as B, or,
                # at the end of a document, is split at a random token: still contiguous text.)
                is_random_next = bool(others) and rng.random() >= next_sentence_prob
                if not is_random_next and len(chunk) == 1:
                    if i + 1 < len(document):
                        i += 1
                        chunk.append(document[i])
                    elif len(chunk[0]) >= 2:
                        cut = rng.randint(1, len(chunk[0]) - 1)
                        chunk = [chunk[0][:cut], chunk[0][cut:]]
                    else:
                        is_random_next = bool(others)
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                tokens_a = [t for s in chunk[:a_end] for t in s]
                if is_random_next:
                    target_b_length = target_seq_length - len(tokens_a)
                    random_document = others[rng.randint(0, len(others) - 1)]
                    random_start = rng.randint(0, len(random_document) - 1)
                    tokens_b = []
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    # The unused segments of this chunk go back to be used by the next pair.
                    i -= len(chunk) - a_end
                else:
                    tokens_b = [t for s in chunk[a_end:] for t in s]
                if tokens_a and tokens_b:
                    before = len(tokens_a) + len(tokens_b)
                    truncate_pair(tokens_a, tokens_b, max_num_tokens, rng)
                    yield NspPair(tokens_a, tokens_b, is_random_next, doc_index,
                                  before - len(tokens_a) - len(tokens_b))
            chunk = []
            current_length = 0
            # a new target length for the next pair, as in the original
            target_seq_length = max_num_tokens
            if rng.random() < short_seq_prob:
                target_seq_length = rng.randint(2, max_num_tokens)
        i += 1


def pack_pair(pair: NspPair, max_seq_length: int, cls_id: int, sep_id: int, pad_id: int = 0) -> dict[str, np.ndarray]:
    """``[CLS] A [SEP] B [SEP]`` padded to ``max_seq_length``, with segment ids and padding mask."""
    ids = [cls_id] + list(pair.tokens_a) + [sep_id] + list(pair.tokens_b) + [sep_id]
    if len(ids) > max_seq_length:
        raise ValueError(f"Pair of {len(ids)} tokens does not fit in max_seq_length={max_seq_length}; "
                         "truncate it with truncate_pair first.")
    segments = [0] * (len(pair.tokens_a) + 2) + [1] * (len(pair.tokens_b) + 1)
    pad = max_seq_length - len(ids)
    return {
        "token_ids": np.array(ids + [pad_id] * pad, dtype=np.int32),
        "segment_ids": np.array(segments + [0] * pad, dtype=np.int32),
        "padding_mask": np.array([1] * len(ids) + [0] * pad, dtype=np.int32),
        "next_sentence_label": np.int32(pair.label),
    }


def tokenize_documents(documents: Iterable, tokenizer, progress: bool = False) -> Iterator[list[list[int]]]:
    """Map ``bertcourse.data.corpora.Document`` objects (or lists of sentence strings) to lists of
    sentence token ids with ``tokenizer.encode`` (no special tokens)."""
    docs = documents
    if progress:
        from tqdm.auto import tqdm

        docs = tqdm(documents, desc="tokenizing", unit="doc")
    for doc in docs:
        sents = doc.sentences if hasattr(doc, "sentences") else doc
        yield [tokenizer.encode(s) for s in sents]


# ----------------------------------------------------------------------------- masking
@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """The knobs of MLM masking; defaults are BERT's (15%, 80/10/10, 20 predictions for 128 tokens)."""

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


def whole_word_starts(vocabulary: Sequence[str], prefix: str = "##") -> np.ndarray:
    """Boolean per vocabulary id: True where the piece starts a word (does not begin with ``##``)."""
    return np.array([not tok.startswith(prefix) for tok in vocabulary], dtype=bool)


def mask_tokens(token_ids, vocab_size: int, special_ids: Sequence[int], mask_id: int, seed,
                rate: float = 0.15, mask_token_rate: float = 0.8, random_token_rate: float = 0.1,
                max_predictions: int = 20, word_starts=None) -> dict:
    """Mask one sequence for MLM, in the TensorFlow graph (usable in ``tf.data.map``).

    Selects ``round(rate * n)`` of the ``n`` non-special positions (at least 1, at most
    ``max_predictions``); of those, ``mask_token_rate`` become ``mask_id``, ``random_token_rate``
    a random non-special token, the rest stay. With ``word_starts`` (a bool per vocabulary id, see
    :func:`whole_word_starts`) whole words are masked: all pieces of a word or none.

    Args:
        token_ids: int tensor ``[seq_len]`` (padding and [CLS]/[SEP] count as special).
        seed: shape-[2] int tensor for the stateless random ops.

    Returns:
        ``token_ids`` (masked), ``masked_positions`` / ``masked_ids`` (int32 ``[max_predictions]``,
        sorted by position, zero-padded) and ``masked_weights`` (float32, 1 for real predictions).

    >>> import tensorflow as tf
    >>> out = mask_tokens(tf.constant([2, 10, 11, 12, 13, 3, 0, 0]), vocab_size=20,
    ...                   special_ids=[0, 1, 2, 3, 4], mask_id=4, seed=[1, 2], max_predictions=3)
    >>> int(out["masked_weights"].numpy().sum())   # round(0.15 * 4) = 1 position
    1
    """
    import tensorflow as tf

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


# ----------------------------------------------------------------------------- tf.data
def nsp_pair_dataset(documents: Sequence, tokenizer, seq_len: int = 128, short_seq_prob: float = 0.1,
                     seed: int = 12345, window: int = 256):
    """A ``tf.data.Dataset`` of packed NSP pairs (no masking yet), generated lazily and
    deterministically from ``documents`` (``corpora.Document`` objects or lists of sentences)."""
    import tensorflow as tf

    cls_id, sep_id, pad_id = tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id

    def generate():
        pairs = create_nsp_pairs(tokenize_documents(documents, tokenizer), max_seq_length=seq_len,
                                 short_seq_prob=short_seq_prob, rng=random.Random(seed), window=window)
        for pair in pairs:
            yield pack_pair(pair, seq_len, cls_id, sep_id, pad_id)

    spec = {"token_ids": tf.TensorSpec([seq_len], tf.int32), "segment_ids": tf.TensorSpec([seq_len], tf.int32),
            "padding_mask": tf.TensorSpec([seq_len], tf.int32),
            "next_sentence_label": tf.TensorSpec([], tf.int32)}
    return tf.data.Dataset.from_generator(generate, output_signature=spec)


def _special_ids(tokenizer) -> list[int]:
    return sorted({tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id})


def _masker(tokenizer, seed: int, masking: MaskingConfig, whole_word: bool) -> Callable:
    import tensorflow as tf

    starts = whole_word_starts(tokenizer.get_vocabulary()) if whole_word else None
    specials = _special_ids(tokenizer)

    def apply(index, features):
        element_seed = tf.stack([tf.constant(seed, tf.int64), index])
        out = mask_tokens(features["token_ids"], tokenizer.vocabulary_size, specials, tokenizer.mask_id,
                          seed=tf.cast(element_seed % (2**31 - 1), tf.int32), rate=masking.rate,
                          mask_token_rate=masking.mask_token_rate, random_token_rate=masking.random_token_rate,
                          max_predictions=masking.max_predictions, word_starts=starts)
        x = {"token_ids": out["token_ids"], "segment_ids": features["segment_ids"],
             "padding_mask": features["padding_mask"], "masked_positions": out["masked_positions"]}
        y = {"mlm": out["masked_ids"], "nsp": features["next_sentence_label"]}
        w = {"mlm": out["masked_weights"], "nsp": tf.ones([], tf.float32)}
        return x, y, w

    return apply


def pretraining_dataset(corpus: Sequence, tokenizer, seq_len: int = 128, batch_size: int = 32,
                        masking: MaskingConfig | None = None, whole_word: bool = False, seed: int = 12345,
                        short_seq_prob: float = 0.1, shuffle_buffer: int = 10_000, cache: bool = True,
                        repeat: bool = True):
    """``(x, y, sample_weight)`` batches for :class:`bertcourse.models.BertPretrainer` with
    DYNAMIC masking: pairs are made once (and cached), masks are drawn per element from
    ``(seed, running element index)``, so every epoch sees new masks and a rerun the same ones.

    ``x`` holds ``token_ids``, ``segment_ids``, ``padding_mask``, ``masked_positions``;
    ``y`` holds ``mlm`` (the original ids at the masked positions) and ``nsp`` (0 IsNext, 1 NotNext);
    ``sample_weight`` holds ``mlm`` (1 for real predictions, 0 for padding) and ``nsp``.
    With ``repeat=True`` the dataset is infinite: pass ``steps_per_epoch`` to ``fit``.
    """
    import tensorflow as tf

    masking = masking or MaskingConfig(max_predictions=max(1, round(seq_len * 0.15 + 0.5)))
    pairs = nsp_pair_dataset(corpus, tokenizer, seq_len, short_seq_prob, seed)
    if cache:
        pairs = pairs.cache()
    if shuffle_buffer:
        pairs = pairs.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        pairs = pairs.repeat()
    ds = pairs.enumerate().map(_masker(tokenizer, seed, masking, whole_word), num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------- static masking
def write_static_tfrecords(corpus: Sequence, tokenizer, path: str, seq_len: int = 128, dupe_factor: int = 10,
                           masking: MaskingConfig | None = None, whole_word: bool = False, seed: int = 12345,
                           short_seq_prob: float = 0.1, progress: bool = True) -> int:
    """STATIC masking, the original recipe: ``dupe_factor`` passes over the corpus, each with its own
    pairs and masks, written once to a TFRecord file. Returns the number of examples written."""
    import tensorflow as tf

    masking = masking or MaskingConfig(max_predictions=max(1, round(seq_len * 0.15 + 0.5)))
    apply = _masker(tokenizer, seed, masking, whole_word)
    count = 0

    def feature(values, kind):
        values = np.asarray(values).reshape(-1)
        if kind == "float":
            return tf.train.Feature(float_list=tf.train.FloatList(value=values.tolist()))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values.astype(np.int64).tolist()))

    iterator = range(dupe_factor)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="static masking (dupe_factor passes)")
    with tf.io.TFRecordWriter(path) as writer:
        for dupe in iterator:
            pairs = nsp_pair_dataset(corpus, tokenizer, seq_len, short_seq_prob, seed + dupe)
            for index, features in pairs.enumerate(start=dupe * 10_000_000):
                x, y, w = apply(index, features)
                example = tf.train.Example(features=tf.train.Features(feature={
                    "token_ids": feature(x["token_ids"], "int"), "segment_ids": feature(x["segment_ids"], "int"),
                    "padding_mask": feature(x["padding_mask"], "int"),
                    "masked_positions": feature(x["masked_positions"], "int"),
                    "masked_ids": feature(y["mlm"], "int"), "masked_weights": feature(w["mlm"], "float"),
                    "next_sentence_label": feature(y["nsp"], "int")}))
                writer.write(example.SerializeToString())
                count += 1
    return count


def read_static_tfrecords(path: str, seq_len: int = 128, max_predictions: int | None = None,
                          batch_size: int = 32, shuffle_buffer: int = 10_000, seed: int = 12345):
    """Read :func:`write_static_tfrecords` output as the same ``(x, y, sample_weight)`` batches."""
    import tensorflow as tf

    p = max_predictions or max(1, round(seq_len * 0.15 + 0.5))
    spec = {"token_ids": tf.io.FixedLenFeature([seq_len], tf.int64),
            "segment_ids": tf.io.FixedLenFeature([seq_len], tf.int64),
            "padding_mask": tf.io.FixedLenFeature([seq_len], tf.int64),
            "masked_positions": tf.io.FixedLenFeature([p], tf.int64),
            "masked_ids": tf.io.FixedLenFeature([p], tf.int64),
            "masked_weights": tf.io.FixedLenFeature([p], tf.float32),
            "next_sentence_label": tf.io.FixedLenFeature([1], tf.int64)}

    def parse(record):
        f = tf.io.parse_single_example(record, spec)
        x = {k: tf.cast(f[k], tf.int32) for k in ("token_ids", "segment_ids", "padding_mask", "masked_positions")}
        y = {"mlm": tf.cast(f["masked_ids"], tf.int32), "nsp": tf.cast(f["next_sentence_label"][0], tf.int32)}
        w = {"mlm": f["masked_weights"], "nsp": tf.ones([], tf.float32)}
        return x, y, w

    ds = tf.data.TFRecordDataset(path)
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed)
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size, drop_remainder=True)
