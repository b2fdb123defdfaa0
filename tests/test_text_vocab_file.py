"""load_vocabulary is strict (issue 14 item 7): blank and duplicate tokens, non-UTF-8 -> DataFileError
naming the file and the line(s). One final newline is fine; a blank line after it is not."""

import pytest

from bertcourse.errors import BertcourseError, DataFileError
from bertcourse.text import WordPieceTokenizer, load_vocabulary


def write(tmp_path, data: bytes):
    path = tmp_path / "vocab.txt"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("data, tokens", [
    (b"[PAD]\n[UNK]\nthe\n", ["[PAD]", "[UNK]", "the"]),          # one final newline: fine
    (b"[PAD]\n[UNK]\nthe", ["[PAD]", "[UNK]", "the"]),            # no final newline: fine
    (b"[PAD]\r\n[UNK]\r\nthe\r\n", ["[PAD]", "[UNK]", "the"]),    # Windows line ends
    (b"\xef\xbb\xbf[PAD]\n[UNK]\n", ["[PAD]", "[UNK]"]),            # UTF-8 byte-order mark
    ("[UNK]\ncaf\u00e9\n\u5317\n".encode(), ["[UNK]", "caf\u00e9", "\u5317"]),
])
def test_accepted(tmp_path, data, tokens):
    assert load_vocabulary(write(tmp_path, data)) == tokens


@pytest.mark.parametrize("data, line", [
    (b"[PAD]\n[UNK]\nthe\n\n", 4),        # a trailing blank line (the bug in issue 14: an empty token)
    (b"[PAD]\n[UNK]\nthe\n\n\n", 4),
    (b"[PAD]\n\n[UNK]\n", 2),             # a blank line in the middle
    (b"\n[PAD]\n", 1),
    (b"[PAD]\n  \n[UNK]\n", 2),           # only whitespace: no tokenizer can produce it
    (b"[PAD]\r\n\r\n[UNK]\r\n", 2),
])
def test_blank_token_named_by_line(tmp_path, data, line):
    path = write(tmp_path, data)
    with pytest.raises(DataFileError, match=rf"vocab\.txt, line {line}: blank token") as err:
        load_vocabulary(path)
    assert str(path) in str(err.value)
    with pytest.raises(BertcourseError):
        WordPieceTokenizer.from_vocab_file(path)


def test_duplicate_names_both_lines(tmp_path):
    path = write(tmp_path, b"[UNK]\nthe\ncat\nsat\nthe\n")
    with pytest.raises(DataFileError, match=r"Duplicate vocabulary entry 'the' in .*vocab\.txt \(lines 2 and 5"):
        load_vocabulary(path)


def test_not_utf8_names_file_and_line(tmp_path):
    path = write(tmp_path, b"[UNK]\nthe\ncaf\xe9\n")  # Latin-1
    with pytest.raises(DataFileError, match=r"vocab\.txt, line 3: not UTF-8 \(byte 0xe9\)") as err:
        load_vocabulary(path)
    assert "iconv" in str(err.value)


def test_empty_file(tmp_path):
    for data in (b"", b"\n"):
        with pytest.raises(DataFileError, match="empty|blank"):
            load_vocabulary(write(tmp_path, data))


def test_missing_file_stays_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_vocabulary(tmp_path / "nope.txt")
