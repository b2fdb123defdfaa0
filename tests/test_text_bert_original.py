"""The published cases of google-research/bert ``tokenization_test.py`` (Apache-2.0), reproduced.

Each test names the original test method it mirrors. BERT's ``FullTokenizer(vocab, do_lower_case)``
is our ``WordPieceTokenizer(vocab, lowercase)``; its ``BasicTokenizer`` is ours; its
``WordpieceTokenizer`` (WordPiece on already-split text) is ``greedy_wordpiece`` per word.
"""

import pytest

from bertcourse.text import BasicTokenizer, WordPieceTokenizer, save_vocabulary
from bertcourse.text.normalize import is_control, is_punctuation, is_whitespace
from bertcourse.text.wordpiece import greedy_wordpiece

VOCAB = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing"]


def test_full_tokenizer(tmp_path):
    path = save_vocabulary(VOCAB + [","], tmp_path / "vocab.txt")
    tokenizer = WordPieceTokenizer.from_vocab_file(path)
    tokens = tokenizer.tokenize("UNwant\u00E9d,running")
    assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert tokenizer.convert_tokens_to_ids(tokens) == [7, 4, 5, 10, 8, 9]


def test_chinese():
    assert BasicTokenizer().tokenize("ah\u535A\u63A8zz") == ["ah", "\u535A", "\u63A8", "zz"]


def test_basic_tokenizer_lower():
    tokenizer = BasicTokenizer(lowercase=True)
    assert tokenizer.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["hello", "!", "how", "are", "you", "?"]
    assert tokenizer.tokenize("H\u00E9llo") == ["hello"]


def test_basic_tokenizer_no_lower():
    tokenizer = BasicTokenizer(lowercase=False)
    assert tokenizer.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["HeLLo", "!", "how", "Are", "yoU", "?"]


def _wordpiece(text):
    """BERT's WordpieceTokenizer: whitespace split, then greedy longest-match-first per word."""
    vocab = set(VOCAB)
    return [p for w in text.split() for p in (greedy_wordpiece(w, vocab) or ["[UNK]"])]


def test_wordpiece_tokenizer():
    assert _wordpiece("") == []
    assert _wordpiece("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert _wordpiece("unwantedX running") == ["[UNK]", "runn", "##ing"]
    # The same through the full tokenizer, which lowercases first: "X" -> "x" is still unknown.
    tok = WordPieceTokenizer(VOCAB)
    assert tok.tokenize("") == []
    assert tok.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert tok.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]


def test_convert_tokens_to_ids():
    tok = WordPieceTokenizer(VOCAB)
    assert tok.convert_tokens_to_ids(["un", "##want", "##ed", "runn", "##ing"]) == [7, 4, 5, 8, 9]


def test_is_whitespace():
    for char in [" ", "\t", "\r", "\n", "\u00A0"]:
        assert is_whitespace(char), repr(char)
    for char in ["A", "-"]:
        assert not is_whitespace(char), repr(char)


def test_is_control():
    assert is_control("\u0005")
    for char in ["A", " ", "\t", "\r", "\U0001F4A9"]:
        assert not is_control(char), repr(char)


def test_is_punctuation():
    for char in ["-", "$", "`", "."]:
        assert is_punctuation(char), repr(char)
    for char in ["A", " "]:
        assert not is_punctuation(char), repr(char)


@pytest.mark.parametrize("limit, expected", [(100, ["[UNK]"]), (200, ["a" * 150])])
def test_max_input_chars_per_word(limit, expected):
    """HF's default (100) vs the original BERT code's (200): a 150-character word."""
    tok = WordPieceTokenizer(["[UNK]", "a" * 150], max_input_chars_per_word=limit)
    assert tok.tokenize("a" * 150) == expected
