"""Semantic search and its evaluation (lesson 12): exact top-k over unit vectors, a BM25 baseline,
and ranking metrics (recall@k, MRR).

>>> import numpy as np
>>> index = np.eye(3, dtype="float32")
>>> hits, scores = exact_search(index[[2, 0]], index, k=1)
>>> hits[:, 0].tolist()
[2, 0]
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

__all__ = ["exact_search", "BM25", "ranking_metrics", "word_tokenize"]


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


def _chunked_search(score_chunk, n_queries: int, k: int, gold, chunk_size: int):
    """Top-``k`` (and gold ranks) over queries in chunks; ``score_chunk(start, stop)`` gives their scores."""
    gold_arr = None if gold is None else np.asarray(gold)
    idx, sc, ranks = [], [], []
    for start in range(0, n_queries, chunk_size):
        scores = score_chunk(start, start + chunk_size)
        i, s = _top_k(scores, k)
        idx.append(i)
        sc.append(s)
        if gold_arr is not None:
            ranks.append(_gold_ranks(scores, gold_arr[start:start + chunk_size]))
    out = (np.concatenate(idx), np.concatenate(sc))
    return out + (np.concatenate(ranks),) if gold_arr is not None else out


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
    return _chunked_search(lambda a, b: queries[a:b] @ index.T, len(queries), k, gold, chunk_size)


def ranking_metrics(ranks: Sequence[int], ks: Sequence[int] = (1, 10)) -> dict[str, float]:
    """``recall@k`` (share of queries whose answer is in the top k) and ``mrr`` (mean of 1/rank).

    >>> {k: round(v, 3) for k, v in ranking_metrics([1, 2, 20], ks=(1, 10)).items()}
    {'recall@1': 0.333, 'recall@10': 0.667, 'mrr': 0.517}
    """
    ranks = np.asarray(ranks, np.float64)
    out = {f"recall@{k}": float((ranks <= k).mean()) for k in ks}
    out["mrr"] = float((1.0 / ranks).mean())
    return out


_WORD = re.compile(r"\w+(?:['’]\w+)*")


def word_tokenize(text: str) -> list[str]:
    """Lowercased word tokens (letters/digits, inner apostrophes kept): BM25's default analyser.

    >>> word_tokenize("God’s Spirit, LORD-of-hosts!")
    ['god’s', 'spirit', 'lord', 'of', 'hosts']
    """
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
        d_idx, w = [], []
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
        return _chunked_search(lambda a, b: self.scores(queries[a:b]), len(queries), k, gold, chunk_size)
