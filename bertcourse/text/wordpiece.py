"""WordPiece in pure Python: the algorithm of BERT, readable, with offsets.

Each word from :class:`~bertcourse.text.normalize.BasicTokenizer` is cut greedily, longest match
first: take the longest vocabulary entry that starts the word, then the longest ``##``-prefixed
entry that continues it, and so on. If some position cannot be matched, the whole word becomes
``[UNK]`` (as does any word longer than ``max_input_chars_per_word`` characters).

Special tokens written in the text (``[CLS] [SEP] [MASK] [UNK] [PAD]``, those the vocabulary
has) are one token each, as in Hugging Face ``tokenizers``: they are matched in the *original*
text, case-sensitively, before any normalisation (``"[mask]"`` is plain text). Pass
``split_special_tokens=True`` to tokenize them as plain text instead.

>>> tok = WordPieceTokenizer(["[UNK]", "un", "##want", "##ed", "runn", "##ing", ","])
>>> tok.tokenize("UNwant\\u00e9d,running")
['un', '##want', '##ed', ',', 'runn', '##ing']
"""

from __future__ import annotations

import os
import re
from typing import Iterable, Mapping, Sequence

from bertcourse.text.normalize import BasicTokenizer, check_text
from bertcourse.text.vocab import load_vocabulary

__all__ = ["WordPieceTokenizer", "SPECIAL_TOKENS", "special_tokens_in", "special_token_regex"]

# Role -> BERT's spelling of the special token.
SPECIAL_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}


def greedy_wordpiece(word: str, vocab: Mapping[str, int] | set, prefix: str = "##",
                     max_token_chars: int | None = None) -> list[str] | None:
    """Cut ``word`` into the longest vocabulary pieces, left to right; ``None`` if impossible.

    >>> greedy_wordpiece("unwanted", {"un", "##want", "##ed", "want"})
    ['un', '##want', '##ed']
    """
    pieces = []
    start = 0
    while start < len(word):
        end = len(word) if max_token_chars is None else min(len(word), start + max_token_chars)
        while end > start:                       # try the longest candidate first
            piece = word[start:end] if start == 0 else prefix + word[start:end]
            if piece in vocab:
                break
            end -= 1
        else:                                    # no piece matched at this position
            return None
        pieces.append(piece)
        start = end
    return pieces


class WordPieceTokenizer:
    """BERT's full tokenizer (basic tokenizer + WordPiece) in plain Python.

    Args:
        vocabulary: the tokens in id order (a list, or a ``{token: id}`` mapping).
        lowercase: lowercase the text (``True`` for "uncased" vocabularies).
        strip_accents: strip accents; ``None`` follows ``lowercase`` (as BERT does).
        max_input_chars_per_word: longer words become ``[UNK]`` (100 as in Hugging Face; the
            original BERT code used 200).
        unk_token: the token for words that cannot be covered.
        suffix_indicator: the prefix of word-continuing pieces.
        split_special_tokens: ``False`` (default, as Hugging Face): ``[MASK]`` etc. written in the
            text are one token each; ``True``: they are split as plain text (``[``, ``mask``, ``]``).

    Example:
        >>> tok = WordPieceTokenizer(["[UNK]", "[CLS]", "[SEP]", "the", "cat", "##s"])
        >>> tok.encode("The cats")
        [3, 4, 5]
        >>> tok.decode([3, 4, 5])
        'the cats'
        >>> tok.tokenize("the [SEP]cats"), tok.tokenize("the [sep]")
        (['the', '[SEP]', 'cat', '##s'], ['the', '[UNK]', '[UNK]', '[UNK]'])
    """

    def __init__(self, vocabulary: Sequence[str] | Mapping[str, int], lowercase: bool = True,
                 strip_accents: bool | None = None, max_input_chars_per_word: int = 100,
                 unk_token: str = "[UNK]", suffix_indicator: str = "##",
                 split_special_tokens: bool = False) -> None:
        if isinstance(vocabulary, (str, os.PathLike)):
            raise TypeError("WordPieceTokenizer takes a list of tokens; to read a file use "
                            "WordPieceTokenizer.from_vocab_file(path).")
        if isinstance(vocabulary, Mapping):
            ids = sorted(vocabulary.values())
            if ids != list(range(len(ids))):
                raise ValueError("A vocabulary mapping must use the ids 0..N-1 exactly once each.")
            tokens = sorted(vocabulary, key=vocabulary.__getitem__)
        else:
            tokens = list(vocabulary)
        self.vocab: dict[str, int] = _index(tokens)
        self.inv_vocab: list[str] = tokens
        if unk_token not in self.vocab:
            raise ValueError(f"The vocabulary has no unknown token {unk_token!r}; add it or pass "
                             f"unk_token=... (first tokens: {tokens[:5]}).")
        if not isinstance(max_input_chars_per_word, int) or max_input_chars_per_word < 1:
            raise ValueError(f"max_input_chars_per_word must be a positive int, got {max_input_chars_per_word!r}.")
        self.basic = BasicTokenizer(lowercase=lowercase, strip_accents=strip_accents)
        self.lowercase = self.basic.lowercase
        self.strip_accents = self.basic.strip_accents
        self.max_input_chars_per_word = max_input_chars_per_word
        self.unk_token = unk_token
        self.suffix_indicator = suffix_indicator
        # Longest piece in characters: no candidate longer than this can match.
        self._max_piece = max((len(t) - len(suffix_indicator) if t.startswith(suffix_indicator) else len(t))
                              for t in tokens)
        self._cache: dict[str, list[str]] = {}
        self.split_special_tokens = bool(split_special_tokens)
        self.special_tokens: tuple[str, ...] = special_tokens_in(tokens, unk_token)
        self._special_re = (None if self.split_special_tokens or not self.special_tokens
                            else special_token_regex(self.special_tokens))

    @classmethod
    def from_vocab_file(cls, path: str | os.PathLike, **kwargs) -> "WordPieceTokenizer":
        """Read a ``vocab.txt`` (one token per line, line number = id)."""
        return cls(load_vocabulary(path), **kwargs)

    # ------------------------------------------------------------------ tokens
    def wordpiece(self, word: str) -> list[str]:
        """The pieces of one (already normalised) word, or ``[unk_token]``."""
        pieces = self._cache.get(word)
        if pieces is None:
            if len(word) > self.max_input_chars_per_word:
                pieces = [self.unk_token]
            else:
                pieces = greedy_wordpiece(word, self.vocab, self.suffix_indicator, self._max_piece)
                pieces = pieces or [self.unk_token]
            if len(self._cache) < 1_000_000:
                self._cache[word] = pieces
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Text -> WordPiece tokens (strings), no special tokens added."""
        check_text(text)
        if self._special_re is None or self._special_re.search(text) is None:
            return self._tokenize_plain(text)
        out = []
        for start, end, special in self._segments(text):
            out.extend([text[start:end]] if special else self._tokenize_plain(text[start:end]))
        return out

    def _tokenize_plain(self, text: str) -> list[str]:
        return [piece for word in self.basic.tokenize(text) for piece in self.wordpiece(word)]

    def _segments(self, text: str) -> list[tuple[int, int, bool]]:
        """``(start, end, is_special)`` runs covering ``text``: special tokens and the text between."""
        out, pos = [], 0
        for match in self._special_re.finditer(text):
            if match.start() > pos:
                out.append((pos, match.start(), False))
            out.append((match.start(), match.end(), True))
            pos = match.end()
        if pos < len(text):
            out.append((pos, len(text), False))
        return out

    def tokenize_with_offsets(self, text: str) -> list[tuple[str, int, int]]:
        """Tokens as ``(token, start, end)``: ``text[start:end]`` is the original text of the token.

        >>> WordPieceTokenizer(["[UNK]", "cafe", "##s"]).tokenize_with_offsets("  CAFÉS")
        [('cafe', 2, 6), ('##s', 6, 7)]
        >>> WordPieceTokenizer(["[UNK]", "[MASK]", "cafe"]).tokenize_with_offsets("cafe[MASK]")
        [('cafe', 0, 4), ('[MASK]', 4, 10)]
        """
        check_text(text)
        if self._special_re is None or self._special_re.search(text) is None:
            return self._offsets_plain(text)
        out = []
        for start, end, special in self._segments(text):
            if special:
                out.append((text[start:end], start, end))
            else:
                out.extend((t, s + start, e + start) for t, s, e in self._offsets_plain(text[start:end]))
        return out

    def _offsets_plain(self, text: str) -> list[tuple[str, int, int]]:
        normalized, origin = self.basic.normalize_with_offsets(text, pad_punctuation=True)
        out = []
        pos = 0
        for word in normalized.split(" "):
            if word:
                pieces = self.wordpiece(word)
                if pieces == [self.unk_token]:  # the whole word
                    out.append((self.unk_token, origin[pos], origin[pos + len(word) - 1] + 1))
                else:
                    begin = pos
                    for piece in pieces:
                        n = len(piece) - (len(self.suffix_indicator) if begin > pos else 0)
                        out.append((piece, origin[begin], origin[begin + n - 1] + 1))
                        begin += n
            pos += len(word) + 1
        return out

    # ------------------------------------------------------------------ ids
    def encode(self, text: str) -> list[int]:
        """Text -> token ids (no ``[CLS]``/``[SEP]``; see :func:`bertcourse.text.pack_inputs`)."""
        vocab = self.vocab
        return [vocab[t] for t in self.tokenize(text)]

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Ids -> text: tokens joined by spaces, ``##`` pieces glued to the piece before.

        Lowercasing and accent stripping cannot be undone, so this is the normalised text.
        """
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            specials = set(SPECIAL_TOKENS.values())
            tokens = [t for t in tokens if t not in specials]
        text = " ".join(tokens).replace(" " + self.suffix_indicator, "")
        if text.startswith(self.suffix_indicator):
            text = text[len(self.suffix_indicator):]
        return text

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        unk = self.vocab[self.unk_token]
        return [self.vocab.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.inv_vocab):
                raise ValueError(f"Token id {i} is outside the vocabulary (size {len(self.inv_vocab)}).")
            out.append(self.inv_vocab[i])
        return out

    # ------------------------------------------------------------------ special tokens
    def token_to_id(self, token: str) -> int:
        """The id of ``token``; a ValueError naming it if the vocabulary lacks it."""
        try:
            return self.vocab[token]
        except KeyError:
            raise ValueError(f"The vocabulary ({len(self.vocab)} tokens) has no {token!r} token. "
                             f"BERT vocabularies start with [PAD], [UNK], [CLS], [SEP], [MASK]; "
                             f"learn one with bertcourse.text.learn_vocabulary(...).") from None

    @property
    def pad_id(self) -> int:
        return self.token_to_id(SPECIAL_TOKENS["pad"])

    @property
    def unk_id(self) -> int:
        return self.token_to_id(self.unk_token)

    @property
    def cls_id(self) -> int:
        return self.token_to_id(SPECIAL_TOKENS["cls"])

    @property
    def sep_id(self) -> int:
        return self.token_to_id(SPECIAL_TOKENS["sep"])

    @property
    def mask_id(self) -> int:
        return self.token_to_id(SPECIAL_TOKENS["mask"])

    @property
    def vocabulary_size(self) -> int:
        return len(self.inv_vocab)

    def get_vocabulary(self) -> list[str]:
        return list(self.inv_vocab)

    def __repr__(self) -> str:
        return (f"WordPieceTokenizer(vocabulary_size={self.vocabulary_size}, lowercase={self.lowercase}, "
                f"strip_accents={self.strip_accents}, max_input_chars_per_word={self.max_input_chars_per_word}"
                f"{', split_special_tokens=True' if self.split_special_tokens else ''})")


def special_tokens_in(vocabulary: Iterable[str], unk_token: str = "[UNK]") -> tuple[str, ...]:
    """The special tokens (``[PAD] [UNK] [CLS] [SEP] [MASK]``, ``unk_token`` for ``[UNK]``) the vocabulary has.

    These are the strings that are one token each when written in the text.

    >>> special_tokens_in(["[PAD]", "[UNK]", "the", "[MASK]"])
    ('[PAD]', '[UNK]', '[MASK]')
    """
    present = set(vocabulary)
    wanted = [unk_token if role == "unk" else token for role, token in SPECIAL_TOKENS.items()]
    return tuple(t for t in wanted if t in present)


def special_token_regex(tokens: Sequence[str]) -> re.Pattern:
    """One regex matching any of ``tokens`` (longest first, as Hugging Face's leftmost-longest match)."""
    return re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)))


def _index(tokens: list[str]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            raise TypeError(f"Vocabulary entries must be str; entry {i} is {type(token).__name__}.")
        if token in vocab:
            raise ValueError(f"Duplicate vocabulary entry {token!r} at ids {vocab[token]} and {i}.")
        vocab[token] = i
    if not vocab:
        raise ValueError("The vocabulary is empty.")
    return vocab
