"""BERT's "basic tokenizer": clean the text, lowercase and strip accents, split words.

This is the step before WordPiece. It follows ``BasicTokenizer`` of google-research/bert and
``BertNormalizer`` + ``BertPreTokenizer`` of Hugging Face ``tokenizers``, character by character:

1. drop NUL, U+FFFD and control characters: categories Cc, Cf, Co, Cs, as Hugging Face does
   (google-research/bert drops only Cc and Cf); unassigned code points (Cn) are kept. Tab,
   newline and carriage return are whitespace, not control;
2. every whitespace character (the Unicode ``White_Space`` property: tab, newline, CR, no-break
   space, ...) becomes a plain space;
3. CJK ideographs become words of their own;
4. optionally strip accents (NFD, then drop non-spacing marks ``Mn``) and lowercase, one
   character at a time (so ``"ß"`` stays ``"ß"`` and a final capital sigma becomes ``"σ"``);
5. split on spaces and around every punctuation character (Unicode ``P*`` plus the ASCII symbol
   ranges ``!-/ :-@ [-` {-~``, so ``$``, ``+``, ``^`` count as punctuation, as in BERT).

Every normalised character remembers the index of the original character it came from, so
words (and later WordPiece tokens) carry offsets into the *original* string.

>>> BasicTokenizer(lowercase=True).tokenize(" \\tHeLLo!how  \\n Are yoU?  ")
['hello', '!', 'how', 'are', 'you', '?']
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from bertcourse.errors import ModelInputError

__all__ = ["BasicTokenizer", "is_whitespace", "is_control", "is_punctuation", "is_chinese_char",
           "normalize_char", "check_text"]

_SURROGATE = re.compile("[\ud800-\udfff]")

# The Unicode White_Space property (what Rust's char::is_whitespace and HF use). U+000B, U+000C
# and U+0085 are also control characters (Cc), and control characters are removed first.
_WHITESPACE = frozenset("\t\n\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000"
                        + "".join(chr(c) for c in range(0x2000, 0x200B)))

# CJK Unified Ideographs blocks, as in google-research/bert. (Hangul, Hiragana and Katakana are
# not here: they are written with spaces, so they are split like any other script.)
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_whitespace(char: str) -> bool:
    """True for tab, newline, CR, space and the other Unicode ``White_Space`` characters."""
    return char in _WHITESPACE


def is_control(char: str) -> bool:
    """True for characters the normaliser deletes: categories Cc, Cf, Co, Cs (not tab/newline/CR).

    That is Hugging Face ``tokenizers``' set; google-research/bert deletes only Cc and Cf (so it
    keeps private-use characters). Unassigned code points (``Cn``) are kept by both and end up
    as ``[UNK]``.
    """
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs")


def is_punctuation(char: str) -> bool:
    """Unicode punctuation (``P*``) or an ASCII symbol such as ``$ + < = > ^ ` | ~``."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_chinese_char(char: str) -> bool:
    """True for a CJK ideograph (the blocks BERT splits into single-character words)."""
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


@lru_cache(maxsize=None)
def normalize_char(char: str, lowercase: bool, strip_accents: bool) -> tuple[str, str]:
    """One original character -> (its normalised text, the same with spaces around punctuation/CJK).

    The whole normaliser, one character at a time (cached):

    >>> normalize_char("É", lowercase=True, strip_accents=True)
    ('e', 'e')
    >>> normalize_char("!", lowercase=True, strip_accents=True)
    ('!', ' ! ')
    >>> normalize_char("\u200b", lowercase=True, strip_accents=True)  # zero-width space: Cf, deleted
    ('', '')
    """
    cp = ord(char)
    if cp == 0 or cp == 0xFFFD or is_control(char):
        return "", ""
    if is_whitespace(char):
        return " ", " "
    text = char
    if strip_accents:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    if lowercase:
        text = "".join(c.lower() for c in text)  # per character: no final-sigma context rule
    padded = "".join(f" {c} " if is_punctuation(c) or is_chinese_char(c) else
                     " " if is_whitespace(c) else c for c in text)
    return text, padded


class BasicTokenizer:
    """Clean, optionally lowercase / strip accents, and split text into words and punctuation.

    Args:
        lowercase: lowercase every character (BERT "uncased").
        strip_accents: remove accents (NFD + drop ``Mn`` marks). ``None`` (default) follows
            ``lowercase``, as BERT's uncased/cased models do.

    Example:
        >>> BasicTokenizer(lowercase=True).tokenize_with_offsets("Héllo, wörld")
        [('hello', 0, 5), (',', 5, 6), ('world', 7, 12)]
    """

    def __init__(self, lowercase: bool = True, strip_accents: bool | None = None) -> None:
        self.lowercase = bool(lowercase)
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)

    def normalize_with_offsets(self, text: str, pad_punctuation: bool = False) -> tuple[str, list[int]]:
        """The normalised text and, for each of its characters, the index of the original one.

        ``pad_punctuation=True`` also puts spaces around punctuation and CJK ideographs (then
        splitting on spaces gives the words).

        >>> BasicTokenizer().normalize_with_offsets("Hé!", pad_punctuation=True)
        ('he ! ', [0, 1, 2, 2, 2])
        """
        return self._normalize(text, padded=pad_punctuation)

    def normalize(self, text: str) -> str:
        """The cleaned (and, if asked, lowercased and accent-stripped) text.

        >>> BasicTokenizer().normalize("Crème\u00a0Brûlée!")
        'creme brulee!'
        """
        return self._normalize(text, padded=False)[0]

    def _normalize(self, text: str, padded: bool) -> tuple[str, list[int]]:
        check_text(text)
        which = 1 if padded else 0  # padded: spaces around punctuation and CJK ideographs
        out: list[str] = []
        origin: list[int] = []
        for i, char in enumerate(text):
            piece = normalize_char(char, self.lowercase, self.strip_accents)[which]
            out.append(piece)
            origin.extend([i] * len(piece))
        return "".join(out), origin

    def tokenize_with_offsets(self, text: str) -> list[tuple[str, int, int]]:
        """Words as ``(word, start, end)``, ``text[start:end]`` being the original characters."""
        normalized, origin = self._normalize(text, padded=True)
        words = []
        pos = 0
        for word in normalized.split(" "):
            if word:
                words.append((word, origin[pos], origin[pos + len(word) - 1] + 1))
            pos += len(word) + 1
        return words

    def tokenize(self, text: str) -> list[str]:
        """The words of ``text`` (no offsets)."""
        check_text(text)
        padded = "".join([normalize_char(c, self.lowercase, self.strip_accents)[1] for c in text])
        return [w for w in padded.split(" ") if w]

    def get_config(self) -> dict:
        return {"lowercase": self.lowercase, "strip_accents": self.strip_accents}

    def __repr__(self) -> str:
        return f"BasicTokenizer(lowercase={self.lowercase}, strip_accents={self.strip_accents})"


def check_text(text: object, index: int | None = None) -> None:
    """A ``TypeError`` unless ``text`` is a ``str``; a ModelInputError if it holds an unpaired surrogate.

    Unpaired surrogates (U+D800-U+DFFF, e.g. from ``errors="surrogateescape"`` decoding or a broken
    UTF-16 pair) are not Unicode text: they cannot be encoded as UTF-8, so neither the in-graph
    tokenizer nor Hugging Face can take them. Every tokenizer here refuses them the same way,
    naming the position, rather than dropping them silently. ``index`` is the string's place in a batch.

    >>> try:
    ...     check_text("a\\ud800b")
    ... except ModelInputError as err:
    ...     print(str(err)[:43])
    Unpaired surrogate U+D800 at character 1 of
    """
    if not isinstance(text, str):
        hint = " Decode bytes first: text.decode('utf-8')." if isinstance(text, bytes) else ""
        raise TypeError(f"Expected a str, got {type(text).__name__}.{hint}")
    match = _SURROGATE.search(text)
    if match is not None:
        where = "the text" if index is None else f"text {index} of the batch"
        raise ModelInputError(f"Unpaired surrogate U+{ord(match.group()):04X} at character {match.start()} of "
                              f"{where}: not valid Unicode (cannot be encoded as UTF-8). Fix the decoding, or "
                              f'drop them with text.encode("utf-8", "ignore").decode("utf-8").')
