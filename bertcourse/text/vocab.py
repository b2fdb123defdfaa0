"""WordPiece vocabularies: learn one from a corpus, save and load ``vocab.txt``.

``learn_vocabulary`` splits the text into words with the same :class:`BasicTokenizer` the
tokenizers use, counts them, and hands the counts to the learner of ``tensorflow_text``
(``wordpiece_tokenizer_learner_lib``, the algorithm behind ``bert_vocab_from_dataset``): for a
count threshold it keeps the sub-words that greedy longest-match-first segmentation would use at
least that often; we search the threshold that gives ``vocab_size`` tokens.

>>> vocab = learn_vocabulary(["the cat sat on the mat"] * 20, vocab_size=60)
>>> vocab[:5]
['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
"""

from __future__ import annotations

import collections
import math
import os
import random
from pathlib import Path
from typing import Iterable, Sequence

from bertcourse.errors import DataFileError
from bertcourse.text.normalize import BasicTokenizer

__all__ = ["RESERVED_TOKENS", "learn_vocabulary", "save_vocabulary", "load_vocabulary", "count_words"]

# Fixed ids 0..4, the order every BERT-style model in this course expects.
RESERVED_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def load_vocabulary(path: str | os.PathLike) -> list[str]:
    """Read ``vocab.txt``: one token per line; the token on line ``n`` (from 1) gets id ``n - 1``.

    Strict, because a wrong vocabulary shifts every id silently:

    * a missing file -> ``FileNotFoundError``;
    * an empty file, a blank line (empty or only whitespace: no tokenizer can produce such a
      token), a duplicated token (two ids for one string), or bytes that are not UTF-8 ->
      :class:`bertcourse.errors.DataFileError` naming the file and the line(s).

    The file may end with one newline (it normally does); an empty line after it is a blank token
    (a trailing blank line is an error). ``\\r\\n`` line ends and a UTF-8 byte-order mark are accepted.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "vocab.txt"
    >>> _ = path.write_text("[PAD]\\n[UNK]\\nthe\\n\\n")
    >>> try:
    ...     load_vocabulary(path)
    ... except DataFileError as err:
    ...     print(str(err).split("vocab.txt, ")[1][:35])
    line 4: blank token (an empty line)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No vocabulary file at {str(path)!r}.")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataFileError(f"{path}, line {line}: not UTF-8 (byte 0x{data[err.start]:02x}). A vocabulary "
                            f"file must be UTF-8: convert it, e.g. iconv -f latin-1 -t utf-8.") from None
    tokens = text.split("\n")
    if tokens[-1] == "":
        tokens.pop()  # the final newline
    tokens = [t[:-1] if t.endswith("\r") else t for t in tokens]
    if not tokens:
        raise DataFileError(f"{path}: the vocabulary file is empty (one token per line expected).")
    seen: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if not token.strip():
            what = "an empty line" if not token else f"only whitespace {token!r}"
            raise DataFileError(f"{path}, line {i + 1}: blank token ({what}). Every line must hold one "
                                f"token; remove the line (ids are line numbers, so check the ids after it).")
        if token in seen:
            raise DataFileError(f"Duplicate vocabulary entry {token!r} in {path} (lines {seen[token] + 1} and "
                                f"{i + 1}: two ids for one token). Remove one of them.")
        seen[token] = i
    return tokens


def save_vocabulary(vocabulary: Sequence[str], path: str | os.PathLike) -> Path:
    """Write one token per line (UTF-8, ``\\n``); returns the path."""
    tokens = list(vocabulary)
    if len(set(tokens)) != len(tokens):
        dup = next(t for t, n in collections.Counter(tokens).items() if n > 1)
        raise ValueError(f"Duplicate vocabulary entry {dup!r}: refusing to write an ambiguous vocab.")
    bad = [t for t in tokens if not isinstance(t, str) or "\n" in t or "\r" in t or not t.strip()]
    if bad:
        raise ValueError(f"Vocabulary entries must be non-empty single-line strings, got {bad[0]!r}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(t + "\n" for t in tokens))
    return path


def count_words(texts: Iterable[str], lowercase: bool = True,
                strip_accents: bool | None = None) -> collections.Counter:
    """Word counts after BERT's basic tokenization (what WordPiece will actually see)."""
    basic = BasicTokenizer(lowercase=lowercase, strip_accents=strip_accents)
    counts: collections.Counter = collections.Counter()
    for text in texts:
        counts.update(basic.tokenize(text))
    return counts


def learn_vocabulary(corpus_iter: Iterable[str], vocab_size: int,
                     reserved_tokens: Sequence[str] = RESERVED_TOKENS, lowercase: bool = True,
                     strip_accents: bool | None = None, sample_size: int | None = None,
                     seed: int = 0, **learn_params) -> list[str]:
    """Learn a WordPiece vocabulary of at most ``vocab_size`` tokens from sentences.

    Args:
        corpus_iter: strings (sentences or paragraphs).
        vocab_size: the size of the result (smaller only on a corpus too small to fill it:
            every learned sub-word is used at least ``lower_thresh`` = 2 times).
        reserved_tokens: placed first, at ids 0, 1, 2...
        lowercase, strip_accents: as for the tokenizer that will use the vocabulary.
        sample_size: learn from a random sample of this many strings (faster).
        seed: the seed for that sample.
        **learn_params: passed to ``tensorflow_text``'s learner (``lower_thresh``,
            ``num_iterations``, ``max_token_length``, ``max_unique_chars``, ``slack``).

    Example:
        >>> v = learn_vocabulary(["a rose is a rose is a rose"] * 50, vocab_size=40)
        >>> "rose" in v, v.index("[UNK]")
        (True, 1)
    """
    if isinstance(corpus_iter, (str, bytes)):
        raise TypeError("corpus_iter must be an iterable of strings (e.g. a list of sentences), "
                        "not a single string.")
    reserved = list(reserved_tokens)
    if len(set(reserved)) != len(reserved):
        raise ValueError(f"reserved_tokens has duplicates: {reserved}.")
    if not isinstance(vocab_size, int) or vocab_size <= len(reserved):
        raise ValueError(f"vocab_size must be an int larger than the {len(reserved)} reserved tokens, "
                         f"got {vocab_size!r}.")
    texts = list(corpus_iter)
    if not texts:
        raise ValueError("Cannot learn a vocabulary from an empty corpus.")
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"corpus_iter must yield str, got {type(bad).__name__}.")
    if sample_size is not None and sample_size < len(texts):
        texts = random.Random(seed).sample(texts, sample_size)
    counts = count_words(texts, lowercase=lowercase, strip_accents=strip_accents)
    if not counts:
        raise ValueError("The corpus has no words (only whitespace or control characters).")
    vocab = _learn(counts, vocab_size, reserved, **learn_params)
    if vocab[:len(reserved)] != reserved:  # pragma: no cover - the learner puts them first
        raise ValueError("The learner did not keep the reserved tokens first.")
    return vocab


def _learn(counts: collections.Counter, vocab_size: int, reserved: list[str], lower_thresh: int = 2,
           num_iterations: int = 4, max_token_length: int = 50, max_unique_chars: int = 1000,
           max_input_tokens: int = 5_000_000, slack: float = 0.05) -> list[str]:
    """tensorflow_text's learner with a faster threshold search.

    The library bisects the count threshold linearly (about 16 full learning passes on Austen);
    the log of the vocabulary size is close to linear in the log of the threshold, so we
    interpolate on that scale (3-5 passes), stop at a threshold whose vocabulary exceeds
    ``vocab_size`` by at most ``slack`` (5%), and drop its least frequent tokens beyond it.
    """
    # vocab.txt loading/saving must stay light, and any tensorflow_text module imports TensorFlow:
    # lazy: tensorflow_text imports TensorFlow (13 s here); only learning a vocabulary needs it
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    word_counts = sorted(counts.items())  # deterministic whatever the input order
    params = learner.Params(upper_thresh=None, lower_thresh=lower_thresh, num_iterations=num_iterations,
                            max_input_tokens=max_input_tokens, max_token_length=max_token_length,
                            max_unique_chars=max_unique_chars, vocab_size=vocab_size, slack_ratio=0.0,
                            include_joiner_token=True, joiner="##", reserved_tokens=reserved)
    all_counts = learner.get_input_words(word_counts, reserved, max_token_length)
    allowed = learner.get_allowed_chars(all_counts, max_unique_chars)
    filtered = learner.filter_input_words(all_counts, allowed, max_input_tokens)
    cache: dict[int, list[str]] = {}

    def vocab_at(thresh: int) -> list[str]:
        if thresh not in cache:
            cache[thresh] = learner.learn_with_thresh(filtered, thresh, params)
        return cache[thresh]

    lo, hi = max(1, lower_thresh), max(2, max(counts.values()) + 1)
    size_lo, size_hi = len(vocab_at(lo)), None
    if size_lo <= vocab_size:   # even the lowest threshold gives a small enough vocab
        return vocab_at(lo)
    # Invariant: vocab_at(lo) is too big or just right, vocab_at(hi) is smaller than vocab_size.
    while hi - lo > 1:
        if size_hi is None:     # no size known at hi yet: the geometric middle
            mid = round((lo * hi) ** 0.5)
        else:                   # log(size) is close to linear in log(threshold): interpolate
            frac = math.log(size_lo / vocab_size) / math.log(size_lo / max(size_hi, 1))
            mid = round(math.exp(math.log(lo) + frac * (math.log(hi) - math.log(lo))))
        mid = min(hi - 1, max(lo + 1, mid))
        size = len(vocab_at(mid))
        if size >= vocab_size:
            lo, size_lo = mid, size
            if size <= vocab_size * (1 + slack):  # close enough: trimming drops a few rare tokens
                break
        else:
            hi, size_hi = mid, size
    return _trim(vocab_at(lo), vocab_size, len(reserved))


def _trim(vocab: list[str], vocab_size: int, n_reserved: int) -> list[str]:
    """Drop the least frequent multi-character tokens (the tail) until ``vocab_size`` remain.

    Single characters and their ``##`` forms are never dropped: they guarantee that every word
    made of known characters can be covered (no ``[UNK]``).
    """
    def is_char(token: str) -> bool:
        return len(token[2:] if token.startswith("##") else token) == 1

    extra = len(vocab) - vocab_size
    keep = [True] * len(vocab)
    for i in range(len(vocab) - 1, n_reserved - 1, -1):
        if extra <= 0:
            break
        if not is_char(vocab[i]):
            keep[i] = False
            extra -= 1
    return [t for t, k in zip(vocab, keep) if k]
