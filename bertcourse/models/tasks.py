"""Task models on top of ``BertBackbone``.

``SentenceEncoder`` (lessons 05 and 12): one fixed-size vector per sentence, sentence-transformers
style::

    strings --FastWordPieceTokenizer (in graph)--> [CLS] ids [SEP] --BertBackbone--> h [B, S, H]
      "mean": sum_t mask_t h_t / sum_t mask_t      (attention-mask mean pooling: padding never counts)
      "cls":  h_[CLS], the raw first vector         (for comparison: strongly anisotropic)
      "pooler": tanh(W h_[CLS] + b), BERT's NSP pooler
    then x / ||x||  (normalize=True), so a dot product is the cosine.

>>> from bertcourse.models import BertBackbone
>>> from bertcourse.text import FastWordPieceTokenizer
>>> enc = SentenceEncoder(BertBackbone("tiny"), FastWordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"]))
>>> enc.encode(["a a", "a"]).shape
(2, 128)
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
from keras import ops

__all__ = ["SentenceEncoder", "POOLING_MODES", "exact_search", "BM25", "ranking_metrics", "word_tokenize"]

POOLING_MODES = ("mean", "cls", "pooler")


@keras.saving.register_keras_serializable(package="bertcourse")
class SentenceEncoder(keras.Model):
    """A ``BertBackbone`` + pooling + L2 normalisation: sentences in, unit vectors out.

    Args:
        backbone: a :class:`~bertcourse.models.BertBackbone`.
        tokenizer: a :class:`~bertcourse.text.FastWordPieceTokenizer` with the backbone's vocabulary
            (needed by ``encode``; ``call`` takes ids).
        pooling: ``"mean"`` (attention-mask mean of the last layer, as all-MiniLM-L6-v2 was trained),
            ``"cls"`` (the raw ``[CLS]`` vector) or ``"pooler"`` (BERT's tanh pooler output).
        normalize: divide by the L2 norm (``max(||x||, 1e-12)``, as ``torch.nn.functional.normalize``).
        max_seq_length: longer inputs are cut to ``[CLS]`` + the first ``max_seq_length - 2`` tokens
            + ``[SEP]``. all-MiniLM-L6-v2 uses 256 (its ``sentence_bert_config.json``); note that its
            ``tokenizer.json`` carries a truncation of 128, which sentence-transformers overrides
            with 256, and so do we.

    ``call`` takes the backbone's input dict and returns ``[batch, hidden]`` embeddings;
    ``encode(list_of_strings)`` does tokenization, length-sorted batching and returns numpy.
    """

    def __init__(self, backbone, tokenizer=None, pooling: str = "mean", normalize: bool = True,
                 max_seq_length: int = 256, **kwargs):
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}.")
        max_pos = backbone.config.max_position_embeddings
        if not isinstance(max_seq_length, int) or not 3 <= max_seq_length <= max_pos:
            raise ValueError(f"max_seq_length must be an int in [3, {max_pos}] (the backbone's position table), "
                             f"got {max_seq_length!r}.")
        super().__init__(**kwargs)
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = bool(normalize)
        self.max_seq_length = max_seq_length
        self._encode_fns: dict[bool, object] = {}

    @property
    def embedding_size(self) -> int:
        return self.backbone.config.hidden_size

    # ------------------------------------------------------------------ tensors
    def pool(self, outputs, padding_mask, pooling: str | None = None):
        """Pool backbone ``outputs`` (its dict) to ``[batch, hidden]`` and normalise.

        ``pooling`` overrides ``self.pooling`` (one forward pass can feed several poolings)."""
        pooling = pooling or self.pooling
        if pooling == "mean":
            h = outputs["sequence_output"]
            mask = ops.cast(padding_mask, h.dtype)[:, :, None]
            summed = ops.sum(h * mask, axis=1)
            count = ops.maximum(ops.sum(mask, axis=1), 1e-9)
            x = summed / count
        elif pooling == "cls":
            x = outputs["sequence_output"][:, 0, :]
        else:
            x = outputs["pooled_output"]
        if self.normalize:
            norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))
            x = x / ops.maximum(norm, 1e-12)
        return x

    def call(self, inputs, training=None):
        outputs = self.backbone(inputs, training=training)
        return self.pool(outputs, inputs["padding_mask"])

    # ------------------------------------------------------------------ strings
    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError("This SentenceEncoder has no tokenizer: pass tokenizer=FastWordPieceTokenizer(...) "
                             "to encode strings, or call it on token ids.")
        return self.tokenizer

    def _ragged_ids(self, sentences: Sequence[str]):
        """Token ids without specials, cut to ``max_seq_length - 2``, as a ``tf.RaggedTensor``."""
        import tensorflow as tf

        tok = self._require_tokenizer()
        if isinstance(sentences, str):
            raise TypeError("encode takes a list of strings; wrap a single sentence in a list: encode([text]).")
        sentences = list(sentences)
        bad = next((s for s in sentences if not isinstance(s, str)), None)
        if bad is not None:
            raise TypeError(f"encode takes strings, got an element of type {type(bad).__name__}.")
        if not sentences:
            return tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([0], tf.int64))
        chunks = [tok(tf.constant(sentences[i:i + 4096])) for i in range(0, len(sentences), 4096)]
        ids = chunks[0] if len(chunks) == 1 else tf.concat(chunks, axis=0)
        return ids[:, : self.max_seq_length - 2]

    def tokenize(self, sentences: Sequence[str]) -> list[list[int]]:
        """The ids the model sees for each sentence: ``[CLS] ... [SEP]``, truncated to ``max_seq_length``."""
        tok = self._require_tokenizer()
        ids = self._ragged_ids(sentences).to_list()
        return [[tok.cls_id] + row + [tok.sep_id] for row in ids]

    def _forward(self, jit_compile: bool, modes: tuple[str, ...]):
        key = (jit_compile, modes)
        if key not in self._encode_fns:
            import tensorflow as tf

            spec = tf.TensorSpec([None, None], tf.int32)

            @tf.function(input_signature=[spec, spec], jit_compile=jit_compile, reduce_retracing=True)
            def forward(token_ids, padding_mask):
                inputs = {"token_ids": token_ids, "segment_ids": tf.zeros_like(token_ids),
                          "padding_mask": padding_mask}
                outputs = self.backbone(inputs, training=False)
                return {m: self.pool(outputs, padding_mask, pooling=m) for m in modes}

            self._encode_fns[key] = forward
        return self._encode_fns[key]

    def encode(self, sentences: Sequence[str], batch_size: int = 32, jit_compile: bool = False,
               pad_to_multiple_of: int = 8, progress: bool = False, pooling: str | Sequence[str] | None = None):
        """Embed a list of strings: ``np.ndarray [n, hidden]`` float32, rows in input order.

        ``pooling`` overrides the encoder's pooling; a list of modes (e.g. ``("mean", "cls")``) returns
        ``{mode: array}`` from ONE forward pass over the data.

        Tokenization runs in the TensorFlow graph (``FastWordPieceTokenizer``). Sentences are
        sorted by token length so a batch holds similar lengths and little padding, then put back
        in the input order. Each batch is padded to its longest member (rounded up to
        ``pad_to_multiple_of``, which bounds the number of shapes ``jit_compile=True`` compiles).
        Results do not depend on the batch: padding is masked out of attention and pooling.
        """
        import tensorflow as tf

        from bertcourse.text.packing import pack_inputs

        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        tok = self._require_tokenizer()
        single = pooling is None or isinstance(pooling, str)
        modes = (pooling or self.pooling,) if single else tuple(pooling)
        bad = [m for m in modes if m not in POOLING_MODES]
        if bad or not modes:
            raise ValueError(f"pooling must be among {POOLING_MODES}, got {pooling!r}.")
        if len(sentences) == 0:
            empty = {m: np.zeros((0, self.embedding_size), np.float32) for m in modes}
            return empty[modes[0]] if single else empty
        ids = self._ragged_ids(sentences)
        lengths = ids.row_lengths().numpy()
        order = np.argsort(-lengths, kind="stable")
        forward = self._forward(bool(jit_compile), modes)
        outs = {m: np.empty((len(order), self.embedding_size), np.float32) for m in modes}
        steps = range(0, len(order), batch_size)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="encode", unit="batch")
        for start in steps:
            rows = order[start:start + batch_size]
            longest = int(lengths[rows].max()) + 2
            seq_len = min(self.max_seq_length, pad_to_multiple_of * math.ceil(longest / pad_to_multiple_of))
            packed = pack_inputs(tf.gather(ids, rows), seq_len, cls_id=tok.cls_id, sep_id=tok.sep_id,
                                 pad_id=tok.pad_id, max_position_embeddings=self.backbone.config.max_position_embeddings)
            emb = forward(tf.cast(packed["token_ids"], tf.int32), tf.cast(packed["padding_mask"], tf.int32))
            for m in modes:
                outs[m][rows] = np.asarray(emb[m], np.float32)
        return outs[modes[0]] if single else outs

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "tokenizer": None if self.tokenizer is None else keras.saving.serialize_keras_object(self.tokenizer),
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_seq_length": self.max_seq_length,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if config.get("tokenizer") is not None:
            config["tokenizer"] = keras.saving.deserialize_keras_object(config["tokenizer"])
        return cls(**config)


# ---------------------------------------------------------------------------------------------- search
# Semantic search and its evaluation (lesson 12): exact top-k over unit vectors, a BM25 baseline,
# and ranking metrics. Exact search is a chunked matrix product; at tens of thousands of vectors it
# needs no approximate index.
def _gold_ranks(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """1-based rank of each row's gold column; ties count against the gold item (pessimistic)."""
    g = scores[np.arange(len(gold)), gold][:, None]
    return 1 + (scores > g).sum(1) + (scores == g).sum(1) - 1


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


def exact_search(queries: np.ndarray, index: np.ndarray, k: int = 10, gold: Sequence[int] | None = None,
                 chunk_size: int = 1024):
    """Exact top-``k`` by dot product (the cosine, for unit vectors), in chunks of queries.

    Returns ``(indices [q, k], scores [q, k])``, plus ``ranks [q]`` (1-based rank of ``gold[i]`` among
    all index rows) when ``gold`` is given.

    >>> idx, sc = exact_search(np.eye(3, dtype="float32"), np.eye(3, dtype="float32"), k=1)
    >>> idx[:, 0].tolist()
    [0, 1, 2]
    """
    queries = np.asarray(queries, np.float32)
    index = np.asarray(index, np.float32)
    if queries.ndim != 2 or index.ndim != 2 or queries.shape[1] != index.shape[1]:
        raise ValueError(f"queries [q, d] and index [n, d] must share d; got {queries.shape} and {index.shape}.")
    gold_arr = None if gold is None else np.asarray(gold)
    idx, sc, ranks = [], [], []
    for start in range(0, len(queries), chunk_size):
        scores = queries[start:start + chunk_size] @ index.T
        i, s = _top_k(scores, k)
        idx.append(i)
        sc.append(s)
        if gold_arr is not None:
            ranks.append(_gold_ranks(scores, gold_arr[start:start + chunk_size]))
    out = (np.concatenate(idx), np.concatenate(sc))
    return out + (np.concatenate(ranks),) if gold_arr is not None else out


def ranking_metrics(ranks: Sequence[int], ks: Sequence[int] = (1, 10)) -> dict[str, float]:
    """``recall@k`` (share of queries whose answer is in the top k) and ``mrr`` (mean of 1/rank).

    >>> {k: round(v, 3) for k, v in ranking_metrics([1, 2, 20], ks=(1, 10)).items()}
    {'recall@1': 0.333, 'recall@10': 0.667, 'mrr': 0.517}
    """
    ranks = np.asarray(ranks, np.float64)
    out = {f"recall@{k}": float((ranks <= k).mean()) for k in ks}
    out["mrr"] = float((1.0 / ranks).mean())
    return out


_WORD = None  # compiled on first use


def word_tokenize(text: str) -> list[str]:
    """Lowercased word tokens (letters/digits, inner apostrophes kept): BM25's default analyser.

    >>> word_tokenize("God’s Spirit, LORD-of-hosts!")
    ['god’s', 'spirit', 'lord', 'of', 'hosts']
    """
    global _WORD
    if _WORD is None:
        import re

        _WORD = re.compile(r"\w+(?:['’]\w+)*")
    return _WORD.findall(text.lower())


class BM25:
    """Okapi BM25 (Robertson et al.), the classic lexical search baseline, in numpy.

    score(q, d) = sum over distinct query terms t of  idf(t) * tf(t, d) (k1 + 1) / (tf(t, d) + k1 (1 - b + b |d| / avgdl)),
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))  (the always-positive Lucene form).

    The index is an inverted list (term -> documents, weights); scoring a batch of queries adds up their
    postings with ``np.bincount``, so there is no Python loop per document.

    >>> bm25 = BM25(["the cat sat", "the dog barked", "a cat and a dog"])
    >>> bm25.search(["cat"], k=2)[0].tolist()
    [[0, 2]]
    """

    def __init__(self, documents: Sequence[str], k1: float = 1.5, b: float = 0.75, tokenize=word_tokenize):
        if not len(documents):
            raise ValueError("BM25 needs at least one document.")
        self.k1, self.b, self.tokenize = float(k1), float(b), tokenize
        self.num_documents = len(documents)
        vocab: dict[str, int] = {}
        rows, cols = [], []
        lengths = np.empty(len(documents), np.float64)
        for d, text in enumerate(documents):
            tokens = tokenize(text)
            lengths[d] = len(tokens)
            for t in tokens:
                cols.append(vocab.setdefault(t, len(vocab)))
                rows.append(d)
        self.vocabulary = vocab
        # (term, doc) pairs with their counts, sorted by term: the postings lists.
        pair = np.asarray(cols, np.int64) * len(documents) + np.asarray(rows, np.int64)
        uniq, tf = np.unique(pair, return_counts=True)
        term, doc = np.divmod(uniq, len(documents))
        df = np.bincount(term, minlength=len(vocab)).astype(np.float64)
        self.idf = np.log1p((len(documents) - df + 0.5) / (df + 0.5))
        avgdl = max(lengths.mean(), 1e-9)
        norm = self.k1 * (1.0 - self.b + self.b * lengths[doc] / avgdl)
        self._weights = (self.idf[term] * tf * (self.k1 + 1.0) / (tf + norm)).astype(np.float32)
        self._docs = doc.astype(np.int64)
        self._starts = np.concatenate([[0], np.cumsum(df.astype(np.int64))])

    def _term_ids(self, query: str) -> list[int]:
        return sorted({self.vocabulary[t] for t in self.tokenize(query) if t in self.vocabulary})

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """``[len(queries), num_documents]`` float32 BM25 scores."""
        n = self.num_documents
        q_idx, d_idx, w = [], [], []
        for qi, query in enumerate(queries):
            for t in self._term_ids(query):
                a, b = self._starts[t], self._starts[t + 1]
                d_idx.append(self._docs[a:b] + qi * n)
                w.append(self._weights[a:b])
        if not d_idx:
            return np.zeros((len(queries), n), np.float32)
        flat = np.bincount(np.concatenate(d_idx), weights=np.concatenate(w), minlength=len(queries) * n)
        return flat.reshape(len(queries), n).astype(np.float32)

    def search(self, queries: Sequence[str], k: int = 10, gold: Sequence[int] | None = None, chunk_size: int = 256):
        """Like :func:`exact_search`: ``(indices, scores[, ranks])``."""
        gold_arr = None if gold is None else np.asarray(gold)
        idx, sc, ranks = [], [], []
        for start in range(0, len(queries), chunk_size):
            scores = self.scores(queries[start:start + chunk_size])
            i, s = _top_k(scores, k)
            idx.append(i)
            sc.append(s)
            if gold_arr is not None:
                ranks.append(_gold_ranks(scores, gold_arr[start:start + chunk_size]))
        out = (np.concatenate(idx), np.concatenate(sc))
        return out + (np.concatenate(ranks),) if gold_arr is not None else out
