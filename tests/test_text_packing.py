"""pack_inputs: [CLS] A [SEP] B [SEP], segment ids, padding mask, truncation rules by hand."""

import pytest

tf = pytest.importorskip("tensorflow")

from bertcourse.text import pack_inputs  # noqa: E402

IDS = dict(cls_id=1, sep_id=2, pad_id=0)


def lists(out):
    return {k: v.numpy().astype(int).tolist() for k, v in out.items()}


def test_one_segment_padded():
    out = lists(pack_inputs(tf.ragged.constant([[5, 6, 7], [8]]), 6, **IDS))
    assert out["token_ids"] == [[1, 5, 6, 7, 2, 0], [1, 8, 2, 0, 0, 0]]
    assert out["segment_ids"] == [[0] * 6, [0] * 6]
    assert out["padding_mask"] == [[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]


def test_two_segments_shapes_and_segment_ids():
    a = tf.ragged.constant([[5, 6], [7]])
    b = tf.ragged.constant([[8], [9, 10, 11]])
    out = pack_inputs([a, b], 8, **IDS)
    assert all(v.shape == (2, 8) for v in out.values())
    assert out["token_ids"].dtype == tf.int32 and out["padding_mask"].dtype == tf.bool
    got = lists(out)
    assert got["token_ids"] == [[1, 5, 6, 2, 8, 2, 0, 0], [1, 7, 2, 9, 10, 11, 2, 0]]
    assert got["segment_ids"] == [[0, 0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 1, 0]]
    assert got["padding_mask"] == [[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0]]


# Budget = sequence_length - 3 = 7 slots for A (10 tokens: 10..19) and B (2, 4 or 10 tokens: 30..).
A10 = list(range(10, 20))
B2, B4, B10 = list(range(30, 32)), list(range(30, 34)), list(range(30, 40))


@pytest.mark.parametrize("truncation, b, expected", [
    # waterfall: A takes all it can (7), B gets the rest (0).
    ("waterfall", B4, [1, 10, 11, 12, 13, 14, 15, 16, 2, 2]),
    # round robin, B short (2): B is kept whole, A gets 7 - 2 = 5.
    ("round_robin", B2, [1, 10, 11, 12, 13, 14, 2, 30, 31, 2]),
    # round robin, B has 4 > 7 // 2: slots dealt A, B, A, B, A, B, A -> A 4, B 3.
    ("round_robin", B4, [1, 10, 11, 12, 13, 2, 30, 31, 32, 2]),
    # round robin, both long: A gets ceil(7/2) = 4, B floor = 3.
    ("round_robin", B10, [1, 10, 11, 12, 13, 2, 30, 31, 32, 2]),
    # longest_first (HF), B short (2 <= 7 // 2): kept whole, as in round robin.
    ("longest_first", B2, [1, 10, 11, 12, 13, 14, 2, 30, 31, 2]),
    # longest_first, B 4 > 7 // 2: the longer (A) gets ceil(7/2) = 4, B floor = 3.
    ("longest_first", B4, [1, 10, 11, 12, 13, 2, 30, 31, 32, 2]),
    # longest_first, tie (10 vs 10): the SECOND gets ceil(7/2) = 4, the first 3.
    ("longest_first", B10, [1, 10, 11, 12, 2, 30, 31, 32, 33, 2]),
])
def test_truncation_by_hand(truncation, b, expected):
    out = lists(pack_inputs([[A10], [b]], 10, truncation=truncation, **IDS))
    assert out["token_ids"] == [expected]
    assert out["padding_mask"] == [[1] * 10]


def test_waterfall_keeps_b_when_a_is_short():
    out = lists(pack_inputs([[[5, 6]], [B10]], 10, truncation="waterfall", **IDS))
    assert out["token_ids"] == [[1, 5, 6, 2, 30, 31, 32, 33, 34, 2]]


def test_longest_first_longer_first_segment():
    # A has 10, B has 6: both long, A (the longer) gets ceil(7/2) = 4, B 3 (= round robin here).
    for strategy in ("longest_first", "round_robin"):
        out = lists(pack_inputs([[A10], [B10[:6]]], 10, truncation=strategy, **IDS))
        assert out["token_ids"] == [[1, 10, 11, 12, 13, 2, 30, 31, 32, 2]]


def test_longest_first_matches_hugging_face():
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {f"t{i}": i for i in range(40)} | {"[UNK]": 40, "[CLS]": 41, "[SEP]": 42}
    hf = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 41), ("[SEP]", 42)])
    cases = [(n1, n2) for n1 in range(0, 9) for n2 in range(0, 9)]
    for length in (5, 6, 9, 10):
        hf.enable_truncation(max_length=length, strategy="longest_first")
        a = tf.ragged.constant([list(range(n1)) for n1, _ in cases], dtype=tf.int32)
        b = tf.ragged.constant([list(range(20, 20 + n2)) for _, n2 in cases], dtype=tf.int32)
        ours = pack_inputs([a, b], length, cls_id=41, sep_id=42, pad_id=-1, truncation="longest_first")
        for row, (n1, n2) in zip(ours["token_ids"].numpy().tolist(), cases):
            expected = hf.encode(" ".join(f"t{i}" for i in range(n1)), " ".join(f"t{20 + i}" for i in range(n2))).ids
            assert [t for t in row if t != -1] == expected, (length, n1, n2)


def test_unbatched_segments():
    out = lists(pack_inputs([tf.constant([5, 6]), tf.constant([7])], 6, **IDS))
    assert out["token_ids"] == [1, 5, 6, 2, 7, 2]
    assert out["segment_ids"] == [0, 0, 0, 0, 1, 1]


def test_over_position_table_is_an_error():
    with pytest.raises(ValueError, match="max_position_embeddings=512"):
        pack_inputs([1, 2], 513, **IDS)
    with pytest.raises(ValueError, match="max_position_embeddings=128"):
        pack_inputs([1, 2], 256, max_position_embeddings=128, **IDS)
    assert pack_inputs([1, 2], 512, **IDS)["token_ids"].shape == (512,)


def test_inside_tf_data_with_the_tokenizer():
    from bertcourse.text import FastWordPieceTokenizer, bert_uncased_vocab_path

    tok = FastWordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
    pairs = (["Emma Woodhouse, handsome.", "It is a truth"], ["Clever and rich.", "universally acknowledged."])
    ds = tf.data.Dataset.from_tensor_slices(pairs).batch(2).map(
        lambda a, b: pack_inputs([tok(a), tok(b)], 12, tokenizer=tok, truncation="waterfall"))
    batch = next(iter(ds))
    assert batch["token_ids"].shape == (2, 12)
    ids = batch["token_ids"].numpy().tolist()
    assert ids[0][0] == 101 and ids[0].count(102) == 2
    assert tok.detokenize(tf.constant([ids[0][1:ids[0].index(102)]])).numpy()[0] == b"emma woodhouse , handsome ."


@pytest.mark.parametrize("strategy", ["only_second", "only_first"])
def test_only_second_and_only_first_match_hugging_face(strategy):
    """Same ids as HF wherever HF succeeds; where HF raises (the other segment alone fills the
    budget) we cut that segment to the budget and drop the one HF would have cut (documented)."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {f"t{i}": i for i in range(40)} | {"[UNK]": 40, "[CLS]": 41, "[SEP]": 42}
    hf = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 41), ("[SEP]", 42)])
    cases = [(n1, n2) for n1 in range(0, 9) for n2 in range(0, 9)]
    agreed = raised = 0
    for length in (5, 6, 9, 10):
        budget = length - 3
        hf.enable_truncation(max_length=length, strategy=strategy)
        a = tf.ragged.constant([list(range(n1)) for n1, _ in cases], dtype=tf.int32)
        b = tf.ragged.constant([list(range(20, 20 + n2)) for _, n2 in cases], dtype=tf.int32)
        ours = pack_inputs([a, b], length, cls_id=41, sep_id=42, pad_id=-1, truncation=strategy)
        for row, (n1, n2) in zip(ours["token_ids"].numpy().tolist(), cases):
            row = [t for t in row if t != -1]
            try:
                expected = hf.encode(" ".join(f"t{i}" for i in range(n1)),
                                     " ".join(f"t{20 + i}" for i in range(n2))).ids
            except Exception as err:  # HF: "Sequence to truncate too short to respect the provided max_length"
                assert "too short" in str(err)
                kept = n1 if strategy == "only_second" else n2
                assert kept >= budget and n1 + n2 > budget
                a_len, b_len = (budget, 0) if strategy == "only_second" else (0, budget)
                assert row == [41] + list(range(a_len)) + [42] + list(range(20, 20 + b_len)) + [42]
                raised += 1
                continue
            assert row == expected, (strategy, length, n1, n2)
            agreed += 1
    assert agreed + raised == 4 * len(cases) and agreed > 150 and raised > 100


def test_only_second_single_segment_is_cut():
    out = lists(pack_inputs([A10], 5, truncation="only_second", **IDS))
    assert out["token_ids"] == [[1, 10, 11, 12, 2]]
