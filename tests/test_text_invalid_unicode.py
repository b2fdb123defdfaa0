"""Unpaired surrogates and invalid UTF-8 (issue 14 item 9): pure and in-graph tokenizers agree.

Decision: a ``str`` holding an unpaired surrogate (U+D800-U+DFFF, e.g. from surrogateescape decoding)
is refused by every tokenizer with the same ModelInputError naming the character position (the
in-graph one used to raise TensorFlow's "Error converting unicode string", the pure one dropped
them; Hugging Face cannot take them either). Bytes that are not UTF-8 (only a tf.string tensor or
``bytes`` can hold them) are read as U+FFFD, which the normaliser deletes: the in-graph ids and
offsets equal the pure tokenizer's on ``bytes.decode("utf-8", "replace")``.
"""

import pytest

tf = pytest.importorskip("tensorflow")

from bertcourse.errors import BertcourseError, ModelInputError  # noqa: E402
from bertcourse.text import (BasicTokenizer, BertPreprocessor, FastWordPieceTokenizer,  # noqa: E402
                             WordPieceTokenizer, bert_uncased_vocab_path)


@pytest.fixture(scope="module")
def toks():
    path = bert_uncased_vocab_path()
    return WordPieceTokenizer.from_vocab_file(path), FastWordPieceTokenizer.from_vocab_file(path)


@pytest.mark.parametrize("text, code, pos", [("a\ud800b", "D800", 1), ("caf\udce9", "DCE9", 3),
                                             ("[MASK]\udfff", "DFFF", 6)])
def test_surrogates_refused_alike(toks, text, code, pos):
    pure, fast = toks
    message = rf"Unpaired surrogate U\+{code} at character {pos} of the text"
    for call in (pure.tokenize, pure.encode, pure.tokenize_with_offsets, BasicTokenizer().tokenize, fast,
                 fast.tokenize_with_offsets):
        with pytest.raises(ModelInputError, match=message):
            call(text)
    with pytest.raises(ModelInputError, match=rf"U\+{code} at character {pos} of text 1 of the batch"):
        fast(["fine", text])
    with pytest.raises(BertcourseError, match="surrogate"):
        BertPreprocessor(fast, sequence_length=8)(("fine", text))
    assert issubclass(ModelInputError, ValueError)


def test_hugging_face_cannot_take_them_either(toks):
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.BertWordPieceTokenizer(str(bert_uncased_vocab_path()))
    with pytest.raises(Exception):
        hf.encode("a\ud800b")


@pytest.mark.parametrize("raw", [b"a\xed\xa0\x80b", b"a\xffb", b"caf\xe9 ok", b"\xe4\xb8 x\xe4\xb8\x80",
                                 b"[MASK]\xff[SEP]", b"ok \xc3"])
def test_invalid_utf8_bytes_read_as_replacement_characters(toks, raw):
    pure, fast = toks
    text = raw.decode("utf-8", "replace")
    expected_ids = pure.encode(text)
    expected_offsets = [(s, e) for _, s, e in pure.tokenize_with_offsets(text)]
    assert fast(tf.constant([raw])).to_list() == [expected_ids]
    ids, starts, ends = (t.to_list()[0] for t in fast.tokenize_with_offsets(tf.constant([raw])))
    assert ids == expected_ids and list(zip(starts, ends)) == expected_offsets
