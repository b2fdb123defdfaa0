"""The pretraining input pipeline (lessons 06-07): NSP pairs -> packed ids -> masked ``tf.data`` batches.

:func:`pretraining_dataset` is a deterministic, seeded STREAM of batches: element ``k`` of the
stream is pair ``permutation_e(k mod n)`` of epoch ``e = k div n`` (a stateless permutation seeded
by ``(seed, e)``), masked with the stateless seed ``(seed, k)``. Nothing depends on the process
(hash seed, tf global seed, thread timing), so a fresh build gives the same batches, and
``dataset.skip(N)`` -- or ``pretraining_dataset(..., start_batch=N)``, which does not compute the
skipped batches -- gives exactly batch ``N``: a resumed run continues where it stopped.

Masks are DYNAMIC (as RoBERTa: each epoch draws new ones); :func:`write_static_tfrecords`
writes ``dupe_factor`` pre-masked copies instead (STATIC masking, as the original BERT).

>>> from bertcourse.data.nsp import NspPair
>>> x = pack_pair(NspPair([5, 6], [7, 8, 9], is_random_next=True), 10, cls_id=101, sep_id=102)
>>> x["token_ids"].tolist(), x["segment_ids"].tolist(), int(x["next_sentence_label"])
([101, 5, 6, 102, 7, 8, 9, 102, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1, 0, 0], 1)
"""

from __future__ import annotations

import functools
import random
from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf

from bertcourse.data.masking import MaskingConfig, mask_tokens, num_predictions, whole_word_starts
from bertcourse.data.nsp import NspPair, create_nsp_pairs, tokenize_documents
from bertcourse.text import pack_inputs

__all__ = ["pack_pair", "pack_pairs", "nsp_pair_dataset", "pretraining_dataset", "write_static_tfrecords",
           "read_static_tfrecords"]

_CHUNK = 4096  # pairs packed per pack_inputs call


def pack_pairs(pairs: Sequence[NspPair], max_seq_length: int, cls_id: int, sep_id: int,
               pad_id: int = 0) -> dict[str, np.ndarray]:
    """``[CLS] A [SEP] B [SEP]`` for many pairs at once, through :func:`bertcourse.text.pack_inputs`.

    Returns int32 arrays ``token_ids``, ``segment_ids``, ``padding_mask`` (1 real, 0 padding) of shape
    ``[len(pairs), max_seq_length]`` and ``next_sentence_label`` ``[len(pairs)]``. A pair that does not
    fit is a ValueError (cut it with :func:`bertcourse.data.nsp.truncate_pair` first).

    >>> out = pack_pairs([NspPair([5], [6], False), NspPair([7, 8], [9], True)], 7, cls_id=1, sep_id=2)
    >>> out["token_ids"].tolist(), out["next_sentence_label"].tolist()
    ([[1, 5, 2, 6, 2, 0, 0], [1, 7, 8, 2, 9, 2, 0]], [0, 1])
    """
    too_long = [i for i, p in enumerate(pairs) if len(p.tokens_a) + len(p.tokens_b) + 3 > max_seq_length]
    if too_long:
        p = pairs[too_long[0]]
        raise ValueError(f"Pair of {len(p.tokens_a) + len(p.tokens_b) + 3} tokens does not fit in "
                         f"max_seq_length={max_seq_length}; truncate it with truncate_pair first.")
    out: dict[str, list[np.ndarray]] = {"token_ids": [], "segment_ids": [], "padding_mask": []}
    for start in range(0, len(pairs), _CHUNK):
        chunk = pairs[start:start + _CHUNK]
        packed = _packer(max_seq_length, cls_id, sep_id, pad_id)(*_flat([p.tokens_a for p in chunk]),
                                                                 *_flat([p.tokens_b for p in chunk]))
        for name in out:
            out[name].append(packed[name].numpy().astype(np.int32))
    arrays = {name: (np.concatenate(parts) if parts else np.zeros([0, max_seq_length], np.int32))
              for name, parts in out.items()}
    arrays["next_sentence_label"] = np.array([p.label for p in pairs], dtype=np.int32)
    return arrays


def pack_pair(pair: NspPair, max_seq_length: int, cls_id: int, sep_id: int, pad_id: int = 0) -> dict[str, np.ndarray]:
    """One pair packed as :func:`pack_pairs` does: arrays of shape ``[max_seq_length]``, label a scalar."""
    return {name: value[0] for name, value in pack_pairs([pair], max_seq_length, cls_id, sep_id, pad_id).items()}


@functools.lru_cache(maxsize=16)
def _packer(max_seq_length: int, cls_id: int, sep_id: int, pad_id: int) -> Callable:
    """:func:`bertcourse.text.pack_inputs` for two segments given as flat ids + row lengths, traced
    once per length and ids (eagerly, its ragged ops cost 20-100 ms a call; traced, about 1 ms)."""
    ids, lengths = tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int64)

    @tf.function(input_signature=[ids, lengths, ids, lengths])
    def pack(ids_a, lengths_a, ids_b, lengths_b):
        segments = [tf.RaggedTensor.from_row_lengths(ids_a, lengths_a),
                    tf.RaggedTensor.from_row_lengths(ids_b, lengths_b)]
        return pack_inputs(segments, max_seq_length, cls_id=cls_id, sep_id=sep_id, pad_id=pad_id)

    return pack


def _flat(segments: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(s) for s in segments], dtype=np.int64)
    return np.fromiter((t for s in segments for t in s), dtype=np.int32, count=int(lengths.sum())), lengths


def nsp_pair_dataset(documents: Sequence, tokenizer: Any, seq_len: int = 128, short_seq_prob: float = 0.1,
                     seed: int = 12345, window: int = 256) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of packed NSP pairs (no masking yet), generated lazily and
    deterministically from ``documents`` (``corpora.Document`` objects or lists of sentences).

    Elements: ``token_ids``, ``segment_ids``, ``padding_mask`` (int32 ``[seq_len]``) and
    ``next_sentence_label`` (int32 scalar), packed in the graph by :func:`bertcourse.text.pack_inputs`.
    """
    cls_id, sep_id, pad_id = tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id

    def generate():
        pairs = create_nsp_pairs(tokenize_documents(documents, tokenizer), max_seq_length=seq_len,
                                 short_seq_prob=short_seq_prob, rng=random.Random(seed), window=window)
        for pair in pairs:
            yield pair.tokens_a, pair.tokens_b, pair.label

    def pack(tokens_a, tokens_b, label):
        packed = pack_inputs([tokens_a, tokens_b], seq_len, cls_id=cls_id, sep_id=sep_id, pad_id=pad_id)
        out = {name: tf.ensure_shape(tf.cast(value, tf.int32), [seq_len]) for name, value in packed.items()}
        out["next_sentence_label"] = label
        return out

    spec = (tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32))
    return tf.data.Dataset.from_generator(generate, output_signature=spec).map(pack)


def _special_ids(tokenizer: Any) -> list[int]:
    return sorted({tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id})


def _masker(tokenizer: Any, seed: int, masking: MaskingConfig, whole_word: bool) -> Callable:
    """``(element index k, packed features) -> (x, y, sample_weight)``, masked with the seed ``(seed, k)``."""
    starts = whole_word_starts(tokenizer.get_vocabulary()) if whole_word else None
    specials = _special_ids(tokenizer)

    def apply(index, features):
        element_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
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


def pretraining_dataset(corpus: Sequence, tokenizer: Any, seq_len: int = 128, batch_size: int = 32,
                        masking: MaskingConfig | None = None, whole_word: bool = False, seed: int = 12345,
                        short_seq_prob: float = 0.1, shuffle: bool = True, repeat: bool = True,
                        start_batch: int = 0, shuffle_buffer: int | None = None) -> tf.data.Dataset:
    """``(x, y, sample_weight)`` batches for :class:`bertcourse.models.BertPretrainer`: a seeded stream.

    The NSP pairs are made once (``random.Random(seed)``) and held in memory; element ``k`` of the
    stream is pair ``index_shuffle(k mod n, seed=(seed, k div n))`` (``k mod n`` without ``shuffle``),
    its mask drawn from ``(seed, k)``: every epoch a new order and new masks (DYNAMIC masking), a
    rerun -- in any process -- the same ones. Batch ``N`` holds elements ``N*batch_size ...``.

    Args:
        corpus: ``corpora.Document`` objects or lists of sentence strings.
        masking: default ``MaskingConfig.for_length(seq_len)``.
        whole_word: mask all pieces of a word or none.
        shuffle: a new seeded permutation of the pairs every epoch; False keeps corpus order.
        repeat: an infinite stream (pass ``steps_per_epoch`` to ``fit``); False: one pass, the last
            partial batch dropped.
        start_batch: begin at batch ``start_batch``: equal to ``.skip(start_batch)`` but without
            computing the skipped batches (exact resume of a run at step ``start_batch``).
        shuffle_buffer: older spelling: ``shuffle_buffer=0`` is ``shuffle=False``.

    ``x`` holds ``token_ids``, ``segment_ids``, ``padding_mask`` (int32), ``masked_positions``;
    ``y`` holds ``mlm`` (the original ids at the masked positions) and ``nsp`` (0 IsNext, 1 NotNext);
    ``sample_weight`` holds ``mlm`` (1 for real predictions, 0 for padding) and ``nsp``.

    >>> from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path
    >>> tok = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
    >>> docs = [["The cat sat on the mat.", "It purred.", "Then it slept."], ["Rain fell all day.", "We read."]]
    >>> ds = pretraining_dataset(docs, tok, seq_len=16, batch_size=2, seed=1)
    >>> x, y, w = next(iter(ds))
    >>> x["token_ids"].shape, x["masked_positions"].shape, y["nsp"].shape   # 3 predictions for 16 tokens
    (TensorShape([2, 16]), TensorShape([2, 3]), TensorShape([2]))
    >>> batch_3 = next(iter(ds.skip(3)))[0]["token_ids"].numpy()
    >>> bool((batch_3 == next(iter(pretraining_dataset(docs, tok, seq_len=16, batch_size=2, seed=1,
    ...                                                 start_batch=3)))[0]["token_ids"].numpy()).all())
    True
    """
    if shuffle_buffer is not None:
        shuffle = bool(shuffle_buffer)
    if batch_size < 1 or start_batch < 0:
        raise ValueError(f"batch_size must be >= 1 and start_batch >= 0, got {batch_size} and {start_batch}.")
    masking = masking or MaskingConfig.for_length(seq_len)
    pairs = list(create_nsp_pairs(tokenize_documents(corpus, tokenizer), max_seq_length=seq_len,
                                  short_seq_prob=short_seq_prob, rng=random.Random(seed)))
    if not pairs:
        raise ValueError("No NSP pairs from this corpus: every document is empty (a pair needs two "
                         "segments of text).")
    table = {name: tf.constant(value) for name, value in
             pack_pairs(pairs, seq_len, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id).items()}
    n = len(pairs)
    mask = _masker(tokenizer, seed, masking, whole_word)

    def element(k):
        i = k % n
        if shuffle:
            i = tf.random.experimental.index_shuffle(i, seed=tf.stack([tf.constant(seed, tf.int64), k // n]),
                                                     max_index=tf.constant(n - 1, tf.int64))
        return mask(k, {name: tf.gather(value, i) for name, value in table.items()})

    first = start_batch * batch_size
    ds = tf.data.Dataset.counter(first) if repeat else tf.data.Dataset.range(first, n)
    ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------- static masking
def write_static_tfrecords(corpus: Sequence, tokenizer: Any, path: str, seq_len: int = 128, dupe_factor: int = 10,
                           masking: MaskingConfig | None = None, whole_word: bool = False, seed: int = 12345,
                           short_seq_prob: float = 0.1, progress: bool = True) -> int:
    """STATIC masking, the original recipe: ``dupe_factor`` passes over the corpus, each with its own
    pairs and masks, written once to a TFRecord file. Returns the number of examples written."""
    masking = masking or MaskingConfig.for_length(seq_len)
    apply = _masker(tokenizer, seed, masking, whole_word)
    count = 0

    def feature(values, kind):
        values = np.asarray(values).reshape(-1)
        if kind == "float":
            return tf.train.Feature(float_list=tf.train.FloatList(value=values.tolist()))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values.astype(np.int64).tolist()))

    iterator: Any = range(dupe_factor)
    if progress:
        from tqdm.auto import tqdm  # lazy: optional progress bar, a notebook-only dependency

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
                          batch_size: int = 32, shuffle_buffer: int = 10_000, seed: int = 12345) -> tf.data.Dataset:
    """Read :func:`write_static_tfrecords` output as the same ``(x, y, sample_weight)`` batches
    (``max_predictions`` default: :func:`bertcourse.data.masking.num_predictions` of ``seq_len``)."""
    p = max_predictions or num_predictions(seq_len)
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
