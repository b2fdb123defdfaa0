"""Special tokens written in the text ([CLS] [SEP] [MASK] [UNK] [PAD]) are one token each, as in HF.

Pure WordPieceTokenizer == in-graph FastWordPieceTokenizer == Hugging Face ``tokenizers`` (special
tokens added as ``BertWordPieceTokenizer`` adds them): same ids and offsets; with
``split_special_tokens=True`` both split them as plain text, as HF does without added tokens.
"""

import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tokenizers")

from bertcourse.text import FastWordPieceTokenizer, WordPieceTokenizer, bert_uncased_vocab_path  # noqa: E402
from test_text_parity import compare, edge_cases, hf_tokenizer  # noqa: E402

CASES = [
    "the [MASK] sat", "The cat [MASK] on the [MASK].", "[mask]", "[Mask]", "[ MASK ]", "[MASK", "MASK]",
    "x[MASK]y", "[MASK][MASK]", "[[MASK]]", "[[[MASK]]]", "[MASK]##s", "##[MASK]",
    "  [CLS]  a [SEP] b[PAD][UNK]", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[UNK][UNK] unknownword",
    "Ünter[MASK]Café", "\u00a0[MASK]\u00a0", "[MASK]\u0301", "\u0301[MASK]", "北京[SEP]é", "ΟΔΟΣ[MASK]Σ",
    "[MA\x00SK]", "[MA\u200bSK]", "[\tMASK]", "a" * 120 + "[MASK]" + "b" * 120, "[MASK]" + "c" * 101,
    "Emma [MASK] Woodhouse, handsome, clever, and [MASK]", "", " ", "[SEP]\n[SEP]\r\n[CLS]",
    "[CLS][SEP][MASK][UNK][PAD]", "[CLS ] [ SEP] [MASKS] [MASK]S s[MASK]",
]


@pytest.fixture(scope="module")
def vocab_path():
    return bert_uncased_vocab_path()


@pytest.mark.parametrize("lowercase", [True, False], ids=["uncased", "cased"])
def test_specials_one_token_like_hugging_face(vocab_path, lowercase):
    pure = WordPieceTokenizer.from_vocab_file(vocab_path, lowercase=lowercase)
    fast = FastWordPieceTokenizer.from_vocab_file(vocab_path, lowercase=lowercase)
    hf = hf_tokenizer(pure.vocab, lowercase=lowercase)
    lines = CASES + edge_cases()
    same_ids, same_offsets, diffs = compare(lines, pure, fast, hf)
    print(f"\nspecial-token cases ({lowercase=}): {len(lines)} lines, {same_ids} identical ids, "
          f"{same_offsets} identical offsets")
    assert (same_ids, same_offsets) == (len(lines), len(lines)), diffs


def test_split_special_tokens_option(vocab_path):
    pure = WordPieceTokenizer.from_vocab_file(vocab_path, split_special_tokens=True)
    fast = FastWordPieceTokenizer.from_vocab_file(vocab_path, split_special_tokens=True)
    hf = hf_tokenizer(pure.vocab, lowercase=True, split_special_tokens=True)
    lines = CASES + edge_cases()
    same_ids, same_offsets, diffs = compare(lines, pure, fast, hf)
    assert (same_ids, same_offsets) == (len(lines), len(lines)), diffs
    assert pure.tokenize("the [MASK] sat") == ["the", "[", "mask", "]", "sat"]
    assert fast(["the [MASK] sat"]).to_list() == [[1996, 1031, 7308, 1033, 2938]]


def test_by_hand(vocab_path):
    pure = WordPieceTokenizer.from_vocab_file(vocab_path)
    fast = FastWordPieceTokenizer.from_vocab_file(vocab_path)
    assert pure.tokenize("the [MASK] sat") == ["the", "[MASK]", "sat"]
    assert pure.tokenize_with_offsets("x[MASK]y") == [("x", 0, 1), ("[MASK]", 1, 7), ("y", 7, 8)]
    assert pure.tokenize("[mask]") == ["[", "mask", "]"]  # case-sensitive, as HF
    assert pure.encode("[MASK][MASK]") == [103, 103]
    ids, starts, ends = (t.numpy().tolist() for t in fast.tokenize_with_offsets("é [MASK]"))
    assert (ids, starts, ends) == ([1041, 103], [0, 2], [1, 8])
    _, bstarts, bends = (t.numpy().tolist() for t in fast.tokenize_with_offsets("é [MASK]", unit="byte"))
    assert (bstarts, bends) == ([0, 3], [2, 9])


def test_only_the_specials_the_vocabulary_has():
    vocab = ["[UNK]", "[SEP]", "[", "]", "mask", "sep"]
    pure, fast = WordPieceTokenizer(vocab), FastWordPieceTokenizer(vocab)
    assert pure.special_tokens == fast.special_tokens == ("[UNK]", "[SEP]")
    for text, expected in [("[MASK] [SEP]", [2, 4, 3, 1]), ("[UNK]x", [0, 0])]:
        assert pure.encode(text) == expected
        assert fast([text]).to_list() == [expected]


def test_custom_unk_token():
    vocab = ["<unk>", "[MASK]", "a"]
    pure = WordPieceTokenizer(vocab, unk_token="<unk>")
    fast = FastWordPieceTokenizer(vocab, unk_token="<unk>")
    assert pure.encode("a<unk>[MASK]") == fast(["a<unk>[MASK]"]).to_list()[0] == [2, 0, 1]


def test_in_tf_function_and_tf_data(vocab_path):
    fast = FastWordPieceTokenizer.from_vocab_file(vocab_path)

    @tf.function
    def run(x):
        return fast(x), fast.tokenize_with_offsets(x)[1]

    ids, starts = run(tf.constant(["a [SEP] b", "c"]))
    assert ids.to_list() == [[1037, 102, 1038], [1039]] and starts.to_list() == [[0, 2, 8], [0]]
    ds = tf.data.Dataset.from_tensor_slices(["the [MASK] sat"]).map(fast)
    assert next(iter(ds)).numpy().tolist() == [1996, 103, 2938]


def test_config_round_trip_keeps_the_option(vocab_path):
    fast = FastWordPieceTokenizer.from_vocab_file(vocab_path, split_special_tokens=True)
    config = fast.get_config()
    assert config["split_special_tokens"] is True
    again = FastWordPieceTokenizer.from_config(config)
    assert again(["[MASK]"]).to_list() == [[1031, 7308, 1033]]
    default = FastWordPieceTokenizer.from_config(FastWordPieceTokenizer.from_vocab_file(vocab_path).get_config())
    assert default(["[MASK]"]).to_list() == [[103]]
