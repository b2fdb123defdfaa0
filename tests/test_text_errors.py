"""Bad input gets a clear error that names the problem."""

import pytest

from bertcourse.text import (BasicTokenizer, FastWordPieceTokenizer, WordPieceTokenizer, learn_vocabulary,
                             load_vocabulary, pack_inputs, save_vocabulary)


def test_non_string_input():
    tok = WordPieceTokenizer(["[UNK]", "a"])
    for bad in (None, 3, ["a"]):
        with pytest.raises(TypeError, match="Expected a str"):
            tok.tokenize(bad)
    with pytest.raises(TypeError, match="decode"):
        tok.encode(b"bytes")
    with pytest.raises(TypeError, match="Expected a str"):
        BasicTokenizer().tokenize(1.5)


def test_fast_non_string_input():
    tok = FastWordPieceTokenizer(["[UNK]", "a"])
    with pytest.raises(TypeError, match="strings"):
        tok([1, 2])
    with pytest.raises(TypeError, match="int32"):
        import tensorflow as tf

        tok(tf.constant([1, 2]))


def test_vocab_without_unk(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\nthe\ncat\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no unknown token '\[UNK\]'"):
        WordPieceTokenizer.from_vocab_file(path)
    with pytest.raises(ValueError, match=r"no unknown token '\[UNK\]'"):
        FastWordPieceTokenizer.from_vocab_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No vocabulary file"):
        WordPieceTokenizer.from_vocab_file(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="No vocabulary file"):
        FastWordPieceTokenizer(str(tmp_path / "nope.txt"))


def test_duplicate_entries(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[UNK]\nthe\ncat\nthe\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"Duplicate vocabulary entry 'the'.*lines 2 and 4"):
        load_vocabulary(path)
    with pytest.raises(ValueError, match="Duplicate vocabulary entry 'the'"):
        WordPieceTokenizer(["[UNK]", "the", "the"])
    with pytest.raises(ValueError, match="Duplicate vocabulary entry 'the'"):
        FastWordPieceTokenizer(["[UNK]", "the", "the"])
    with pytest.raises(ValueError, match="Duplicate"):
        save_vocabulary(["a", "a"], tmp_path / "out.txt")


def test_empty_vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        load_vocabulary(path)


def test_missing_special_token_named():
    tok = WordPieceTokenizer(["[UNK]", "a"])
    with pytest.raises(ValueError, match=r"no '\[CLS\]' token"):
        tok.cls_id
    with pytest.raises(ValueError, match=r"no '\[MASK\]' token"):
        tok.mask_id
    assert tok.unk_id == 0


def test_path_given_as_vocabulary():
    with pytest.raises(TypeError, match="from_vocab_file"):
        WordPieceTokenizer("vocab.txt")


def test_bad_ids():
    tok = WordPieceTokenizer(["[UNK]", "a"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([5])


def test_learn_vocabulary_bad_input():
    with pytest.raises(ValueError, match="empty corpus"):
        learn_vocabulary([], 100)
    with pytest.raises(TypeError, match="not a single string"):
        learn_vocabulary("some text", 100)
    with pytest.raises(TypeError, match="must yield str"):
        learn_vocabulary(["ok", 3], 100)
    with pytest.raises(ValueError, match="larger than the 5 reserved"):
        learn_vocabulary(["a b"], 5)
    with pytest.raises(ValueError, match="no words"):
        learn_vocabulary(["  ", "\x00"], 100)


def test_pack_inputs_errors():
    with pytest.raises(ValueError, match="needs cls_id"):
        pack_inputs([1, 2], 8, sep_id=2, pad_id=0)
    with pytest.raises(ValueError, match="truncation must be one of"):
        pack_inputs([1, 2], 8, cls_id=1, sep_id=2, pad_id=0, truncation="middle")
    with pytest.raises(TypeError, match="integer token ids"):
        pack_inputs(["a", "b"], 8, cls_id=1, sep_id=2, pad_id=0)
    with pytest.raises(ValueError, match="no room"):
        pack_inputs([1, 2], 2, cls_id=1, sep_id=2, pad_id=0)
