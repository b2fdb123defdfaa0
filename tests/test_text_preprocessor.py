"""BertPreprocessor == Hugging Face ``tokenizers`` (encode with truncation and padding) on real pairs.

Pairs come from the shipped Austen corpus: consecutive sentences (mostly fitting) and consecutive
paragraphs (far over the length), at several sequence lengths, odd and even budgets. Same
token ids, segment ids (HF type_ids), padding mask (HF attention_mask) and offsets
(HF offset_mapping: (0, 0) for [CLS]/[SEP]/padding). Counts are printed (``pytest -s``).
"""

import pytest

tf = pytest.importorskip("tensorflow")
tokenizers = pytest.importorskip("tokenizers")
keras = pytest.importorskip("keras")

from bertcourse.data.corpora import load_corpus  # noqa: E402
from bertcourse.text import (BertPreprocessor, FastWordPieceTokenizer, WordPieceTokenizer,  # noqa: E402
                             bert_uncased_vocab_path, pack_inputs)

LENGTHS = (16, 33, 64, 127, 128)  # pair budgets 13, 30, 61, 124, 125


@pytest.fixture(scope="module")
def vocab_path():
    return str(bert_uncased_vocab_path())


@pytest.fixture(scope="module")
def pairs():
    """Real pairs: consecutive sentences, and consecutive whole paragraphs (long), from Austen."""
    docs = load_corpus("austen")
    sentence_pairs, paragraph_pairs = [], []
    for doc in docs[::6]:
        flat = [s for p in doc.paragraphs for s in p]
        sentence_pairs += list(zip(flat[:-1:5], flat[1::5]))
        paras = [" ".join(p) for p in doc.paragraphs]
        paragraph_pairs += list(zip(paras[:-1:4], paras[1::4]))
    mixed = [(a, b) for (a, _), (_, b) in zip(sentence_pairs, paragraph_pairs)]  # short A, long B
    mixed += [(b, a) for (a, _), (_, b) in zip(sentence_pairs[1::2], paragraph_pairs[1::2])]  # long A, short B
    return sentence_pairs[:500] + paragraph_pairs[:250] + mixed[:250]


def hf(vocab_path, length, strategy="longest_first"):
    tok = tokenizers.BertWordPieceTokenizer(vocab_path, lowercase=True)
    tok.enable_truncation(max_length=length, strategy=strategy)
    tok.enable_padding(length=length, pad_id=0, pad_token="[PAD]")
    return tok


def ours_as_lists(out):
    return (out["token_ids"].numpy().tolist(), out["segment_ids"].numpy().tolist(),
            out["padding_mask"].numpy().astype(int).tolist(),
            [[tuple(o) for o in row] for row in out["offsets"].numpy().tolist()])


def same(encoding, ids, segments, mask, offsets):
    return (encoding.ids == ids and encoding.type_ids == segments and encoding.attention_mask == mask
            and encoding.offsets == offsets)


def test_pairs_like_hugging_face(vocab_path, pairs):
    pre_tok = FastWordPieceTokenizer.from_vocab_file(vocab_path)
    firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
    untruncated = tokenizers.BertWordPieceTokenizer(vocab_path, lowercase=True)
    full_lengths = [len(e.ids) for e in untruncated.encode_batch(pairs)]
    n_over = {}
    for length in LENGTHS:
        pre = BertPreprocessor(pre_tok, sequence_length=length)
        ids, segs, mask, offs = ours_as_lists(pre((firsts, seconds), return_offsets=True))
        expected = hf(vocab_path, length).encode_batch(pairs)
        bad = [i for i, e in enumerate(expected) if not same(e, ids[i], segs[i], mask[i], offs[i])]
        assert not bad, (length, pairs[bad[0]], ids[bad[0]], expected[bad[0]].ids)
        n_over[length] = sum(n > length for n in full_lengths)
    print(f"\n{len(pairs)} Austen pairs x {len(LENGTHS)} lengths {LENGTHS}: identical ids, segment ids, "
          f"masks and offsets; pairs over the length: {n_over}; longest pair {max(full_lengths)} tokens")
    assert len(pairs) == 1000
    assert n_over[128] > 250 and n_over[16] > 900  # far over the length: paragraphs of 100s of tokens


def test_single_texts_like_hugging_face(vocab_path, pairs):
    texts = [a for a, _ in pairs] + ["the [MASK] sat", "", "[CLS] x [SEP]", "Café [mask]"]
    for length in (16, 33, 128):
        pre = BertPreprocessor.from_vocab_file(vocab_path, sequence_length=length)
        ids, segs, mask, offs = ours_as_lists(pre(texts, return_offsets=True))
        expected = hf(vocab_path, length).encode_batch(texts)
        bad = [i for i, e in enumerate(expected) if not same(e, ids[i], segs[i], mask[i], offs[i])]
        assert not bad, (length, texts[bad[0]])


@pytest.mark.parametrize("strategy", ["only_second", "only_first"])
def test_only_second_and_only_first_like_hugging_face(vocab_path, pairs, strategy):
    """Identical where HF succeeds; where HF raises (the kept segment alone is too long) we keep
    that segment cut to the budget and drop the other (documented in bertcourse.text.packing)."""
    sample = pairs[::4]
    agreed = raised = 0
    for length in (33, 64, 128):
        budget = length - 3
        pre = BertPreprocessor.from_vocab_file(vocab_path, sequence_length=length, truncation=strategy)
        ids, segs, mask, offs = ours_as_lists(pre(([a for a, _ in sample], [b for _, b in sample]),
                                                  return_offsets=True))
        tok = hf(vocab_path, length, strategy)
        for i, (a, b) in enumerate(sample):
            try:
                expected = tok.encode(a, b)
            except Exception as err:
                assert "too short" in str(err)
                kept = 1 if strategy == "only_second" else 2  # [CLS] A... or ... [SEP] B... [SEP]
                n_kept = segs[i].count(0) - 2 if kept == 1 else sum(segs[i]) - 1
                assert n_kept == budget and sum(mask[i]) == length
                raised += 1
                continue
            assert same(expected, ids[i], segs[i], mask[i], offs[i]), (strategy, length, a, b)
            agreed += 1
    print(f"\n{strategy}: {agreed} pairs identical to HF, {raised} where HF raises")
    assert agreed > 200 and raised > 50


def test_pure_tokenizer_plus_pack_inputs_gives_the_same_ids(vocab_path, pairs):
    pure = WordPieceTokenizer.from_vocab_file(vocab_path)
    sample = pairs[::3]
    for truncation in ("longest_first", "round_robin", "waterfall", "only_second", "only_first"):
        pre = BertPreprocessor(pure, sequence_length=64, truncation=truncation)  # converted to the fast one
        graph = pre(([a for a, _ in sample], [b for _, b in sample]))
        by_hand = pack_inputs([[pure.encode(a) for a, _ in sample], [pure.encode(b) for _, b in sample]], 64,
                              tokenizer=pure, truncation=truncation)
        for key in ("token_ids", "segment_ids", "padding_mask"):
            assert graph[key].numpy().tolist() == by_hand[key].numpy().tolist(), (truncation, key)


@pytest.fixture(scope="module")
def pre(vocab_path):
    return BertPreprocessor.from_vocab_file(vocab_path, sequence_length=12)


def test_input_forms(pre):
    one = pre("the [MASK] sat")
    assert one["token_ids"].shape == (12,) and one["token_ids"].dtype == tf.int32
    assert one["padding_mask"].dtype == tf.bool
    assert one["token_ids"].numpy().tolist()[:5] == [101, 1996, 103, 2938, 102]
    batch = pre(["the [MASK] sat", "x"])
    assert batch["token_ids"].shape == (2, 12)
    assert batch["token_ids"].numpy()[0].tolist() == one["token_ids"].numpy().tolist()
    tensor = pre(tf.constant(["the [MASK] sat", "x"]))
    assert tensor["token_ids"].numpy().tolist() == batch["token_ids"].numpy().tolist()
    pair = pre(("a b", "c"))
    assert pair["token_ids"].numpy().tolist()[:6] == [101, 1037, 1038, 102, 1039, 102]
    listed = pre([("a b", "c"), ("d", "e f")])
    tupled = pre((["a b", "d"], ["c", "e f"]))
    assert listed["token_ids"].numpy().tolist() == tupled["token_ids"].numpy().tolist()
    assert listed["token_ids"].numpy()[0].tolist() == pair["token_ids"].numpy().tolist()
    offsets = pre(("Hi Bob", "Ann"), return_offsets=True)["offsets"].numpy().tolist()
    assert offsets[:6] == [[0, 0], [0, 2], [3, 6], [0, 0], [0, 3], [0, 0]] and offsets[6:] == [[0, 0]] * 6
    assert (pre.cls_id, pre.sep_id, pre.pad_id, pre.mask_id, pre.unk_id) == (101, 102, 0, 103, 100)


def test_in_tf_data_and_tf_function(pre):
    texts = ["Emma Woodhouse, handsome, clever, and rich", "It is a truth universally acknowledged"]
    eager = pre((texts, texts[::-1]), return_offsets=True)
    ds = tf.data.Dataset.from_tensor_slices((texts, texts[::-1])).batch(2).map(
        lambda a, b: pre((a, b), return_offsets=True))
    batch = next(iter(ds))
    assert batch["token_ids"].shape == (2, 12) and batch["offsets"].shape == (2, 12, 2)
    for key in eager:
        assert batch[key].numpy().tolist() == eager[key].numpy().tolist()
    traced = tf.function(lambda x: pre(x))(tf.constant(texts))
    assert traced["token_ids"].numpy().tolist() == pre(texts)["token_ids"].numpy().tolist()
    unbatched = next(iter(tf.data.Dataset.from_tensor_slices(texts).map(pre)))  # one string per element
    assert unbatched["token_ids"].numpy().tolist() == traced["token_ids"].numpy()[0].tolist()


def test_config_round_trip(pre, vocab_path):
    texts = (["The [MASK] sat on the mat.", "Hi"], ["A dog.", "Bob and Ann went out for a long walk"])
    config = pre.get_config()
    again = BertPreprocessor.from_config(config)
    assert (again.sequence_length, again.truncation) == (12, "longest_first")
    for key, value in pre(texts).items():
        assert again(texts)[key].numpy().tolist() == value.numpy().tolist()
    lean = BertPreprocessor.from_vocab_file(vocab_path, sequence_length=10, truncation="only_second",
                                            vocabulary_in_config=False, split_special_tokens=True)
    clone = BertPreprocessor.from_config(lean.get_config())
    assert clone.get_config() == lean.get_config() and clone.tokenizer.split_special_tokens


def test_keras_file_carries_the_vocabulary(vocab_path, tmp_path):
    """A .keras file holding the preprocessor: the vocabulary travels as the tokenizer's asset."""
    pre = BertPreprocessor.from_vocab_file(vocab_path, sequence_length=16, truncation="only_second",
                                           vocabulary_in_config=False)
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, pre(inputs))
    path = tmp_path / "pre.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    layer = next(layer for layer in restored.layers if isinstance(layer, BertPreprocessor))
    assert layer.get_config()["tokenizer"]["config"]["vocabulary"] is None
    assert (layer.sequence_length, layer.truncation) == (16, "only_second")
    texts = ["the [MASK] sat", "Emma Woodhouse"]
    assert layer(texts)["token_ids"].numpy().tolist() == pre(texts)["token_ids"].numpy().tolist()


def test_errors(vocab_path, pre):
    tok = FastWordPieceTokenizer.from_vocab_file(vocab_path)
    with pytest.raises(ValueError, match="truncation must be one of"):
        BertPreprocessor(tok, truncation="middle")
    with pytest.raises(ValueError, match="sequence_length"):
        BertPreprocessor(tok, sequence_length=2)
    with pytest.raises(ValueError, match="512"):
        BertPreprocessor(tok, sequence_length=600)
    with pytest.raises(TypeError, match="FastWordPieceTokenizer"):
        BertPreprocessor("vocab.txt")
    with pytest.raises(TypeError, match="strings"):
        pre(tf.constant([1, 2]))
    with pytest.raises(TypeError, match="strings"):
        pre(["a", 3])
    with pytest.raises(ValueError, match="differ in size"):
        pre((["a", "b"], ["c"]))
    with pytest.raises(ValueError, match="one or two segments"):
        pre(("a", "b", "c"))
