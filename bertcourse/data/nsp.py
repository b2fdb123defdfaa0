"""NSP sentence pairs (lesson 06): documents of token ids -> ``A``/``B`` segments with an IsNext label.

The semantics of BERT's ``create_pretraining_data.py`` (target lengths, ``short_seq_prob``, random
truncation from either end), but streaming over documents with bounded memory, and with the
labels kept balanced (the original skews towards NotNext when sentences are long).

>>> docs = [[[5, 6], [7, 8, 9]], [[10, 11], [12]]]
>>> pair = next(create_nsp_pairs(docs, max_seq_length=16, rng=random.Random(0)))
>>> pair.tokens_a, pair.tokens_b, pair.is_random_next   # B from the other document: NotNext
([5, 6], [12], True)
>>> pair.label                                           # BERT's NSP label: 0 IsNext, 1 NotNext
1
"""

from __future__ import annotations

import collections
import dataclasses
import random
from typing import Any, Iterable, Iterator, Sequence

__all__ = ["Document", "NspPair", "truncate_pair", "create_nsp_pairs", "pairs_from_document", "tokenize_documents"]

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


def truncate_pair(tokens_a: list[int], tokens_b: list[int], max_num_tokens: int, rng: random.Random) -> None:
    """Truncate the longer segment one token at a time, from the front or the back at random
    (in place), until both fit in ``max_num_tokens`` - exactly ``truncate_seq_pair`` of BERT.

    >>> a, b = list(range(6)), [10, 11]
    >>> truncate_pair(a, b, 5, random.Random(0))
    >>> a, b                                   # only the longer segment lost tokens
    ([1, 2, 3], [10, 11])
    """
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
        window: how many documents are held ahead and behind (see above).

    Yields:
        :class:`NspPair` objects, each of at most ``max_seq_length - 3`` tokens.
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
        yield from pairs_from_document(current, others, index, max_seq_length, short_seq_prob,
                                        next_sentence_prob, rng)
        past.append(buffer.popleft())
        index += 1
        fill()


def pairs_from_document(document: list[list[int]], others: list[list[list[int]]], doc_index: int,
                        max_seq_length: int, short_seq_prob: float, next_sentence_prob: float,
                        rng: random.Random) -> Iterator[NspPair]:
    """The NSP pairs of ONE document: BERT's ``create_instances_from_document``, made balanced.

    Sentences are gathered into a chunk until it reaches a target length (``max_seq_length - 3``,
    or with probability ``short_seq_prob`` a random shorter one). The chunk is cut at a random
    sentence boundary into A and B; with probability ``1 - next_sentence_prob`` B is replaced by
    text from a random other document (NotNext), and the chunk's unused sentences go back to be
    used by the next pair. Both segments are then cut to fit by :func:`truncate_pair`.

    Args:
        document: the sentences of this document, each a non-empty list of token ids.
        others: the other documents (NotNext segments come from them); empty = IsNext only.
        doc_index: stored in each pair's ``document_index``.
        max_seq_length: packed length including ``[CLS]`` and two ``[SEP]``.
        short_seq_prob, next_sentence_prob: as in :func:`create_nsp_pairs`.
        rng: the explicit random generator; every decision draws from it, in order.

    >>> doc = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    >>> pairs = list(pairs_from_document(doc, [], 0, 16, 0.0, 0.5, random.Random(0)))
    >>> [(p.tokens_a, p.tokens_b, p.label) for p in pairs]   # no other document: IsNext (label 0)
    [([1, 2, 3, 4, 5], [6, 7, 8, 9], 0)]
    """
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


def tokenize_documents(documents: Iterable[Any], tokenizer: Any, progress: bool = False) -> Iterator[list[list[int]]]:
    """Map ``bertcourse.data.corpora.Document`` objects (or lists of sentence strings) to lists of
    sentence token ids with ``tokenizer.encode`` (no special tokens).

    >>> from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path
    >>> tok = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
    >>> next(tokenize_documents([["The cat sat.", "It purred."]], tok))
    [[1996, 4937, 2938, 1012], [2009, 16405, 20529, 1012]]
    """
    docs = documents
    if progress:
        from tqdm.auto import tqdm  # lazy: optional progress bar, a notebook-only dependency

        docs = tqdm(documents, desc="tokenizing", unit="doc")
    for doc in docs:
        sents = doc.sentences if hasattr(doc, "sentences") else doc
        yield [tokenizer.encode(s) for s in sents]
