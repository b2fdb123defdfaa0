"""Pure-Python WordPiece == in-graph FastWordPieceTokenizer == Hugging Face ``tokenizers``.

On every sentence of the shipped corpora and every line of ``fixtures/text_edge_cases.txt``,
with the real BERT-uncased vocabulary: same ids, and same offsets into the original text.
Any difference is a bug. Counts are printed (``pytest -s``) and asserted.
"""

from pathlib import Path

import pytest

tf = pytest.importorskip("tensorflow")
tokenizers = pytest.importorskip("tokenizers")

from bertcourse.data.corpora import sentences  # noqa: E402
from bertcourse.text import FastWordPieceTokenizer, WordPieceTokenizer, bert_uncased_vocab_path  # noqa: E402

EDGE_CASES = Path(__file__).parent / "fixtures" / "text_edge_cases.txt"


def edge_cases() -> list[str]:
    # Split on "\n" only: the cases contain \r, \x0b, \x0c, \x85, \u2028 on purpose.
    with open(EDGE_CASES, encoding="utf-8", newline="") as f:
        return f.read().split("\n")[:-1]


def hf_tokenizer(vocab: dict, lowercase: bool, strip_accents=None, max_chars: int = 100,
                 split_special_tokens: bool = False):
    """HF's BERT pipeline without a post-processor; special tokens added as BertWordPieceTokenizer does."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=max_chars))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=strip_accents, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    if not split_special_tokens:
        tok.add_special_tokens([t for t in ("[SEP]", "[CLS]", "[UNK]", "[PAD]", "[MASK]") if t in vocab])
    return tok  # no post-processor: no [CLS]/[SEP] added


@pytest.fixture(scope="module")
def vocab_path():
    return bert_uncased_vocab_path()


@pytest.fixture(scope="module")
def corpus():
    return sentences()


def compare(texts, pure, fast, hf):
    """Counts of identical lines for ids (pure/fast-ids/fast-offsets-path/HF) and offsets."""
    hf_out = hf.encode_batch(texts, add_special_tokens=False)
    fast_ids = fast(tf.constant(texts)).to_list()
    f_ids, f_start, f_end = (t.to_list() for t in fast.tokenize_with_offsets(tf.constant(texts)))
    same_ids = same_offsets = 0
    diffs = []
    for i, text in enumerate(texts):
        p_ids = pure.encode(text)
        p_off = [(s, e) for _, s, e in pure.tokenize_with_offsets(text)]
        ids_ok = p_ids == hf_out[i].ids == fast_ids[i] == f_ids[i]
        off_ok = p_off == hf_out[i].offsets == list(zip(f_start[i], f_end[i]))
        same_ids += ids_ok
        same_offsets += off_ok
        if not (ids_ok and off_ok) and len(diffs) < 5:
            diffs.append((text, pure.tokenize(text), hf_out[i].tokens))
    return same_ids, same_offsets, diffs


def test_parity_uncased_corpus(vocab_path, corpus):
    pure = WordPieceTokenizer.from_vocab_file(vocab_path)
    fast = FastWordPieceTokenizer.from_vocab_file(vocab_path)
    hf = hf_tokenizer(pure.vocab, lowercase=True)
    same_ids, same_offsets, diffs = compare(corpus, pure, fast, hf)
    print(f"\nuncased corpus: {len(corpus)} lines compared, {same_ids} identical ids, "
          f"{same_offsets} identical offsets")
    assert len(corpus) > 25_000
    assert (same_ids, same_offsets) == (len(corpus), len(corpus)), diffs


@pytest.mark.parametrize("lowercase, strip_accents", [(True, None), (False, None), (True, False), (False, True)],
                         ids=["uncased", "cased", "lower-keep-accents", "strip-only"])
def test_parity_edge_cases(vocab_path, lowercase, strip_accents):
    lines = edge_cases()
    pure = WordPieceTokenizer.from_vocab_file(vocab_path, lowercase=lowercase, strip_accents=strip_accents)
    fast = FastWordPieceTokenizer.from_vocab_file(vocab_path, lowercase=lowercase, strip_accents=strip_accents)
    hf = hf_tokenizer(pure.vocab, lowercase=lowercase, strip_accents=strip_accents)
    same_ids, same_offsets, diffs = compare(lines, pure, fast, hf)
    print(f"\nedge cases ({lowercase=}, {strip_accents=}): {len(lines)} lines compared, "
          f"{same_ids} identical ids, {same_offsets} identical offsets")
    assert len(lines) >= 50
    assert (same_ids, same_offsets) == (len(lines), len(lines)), diffs


def test_max_chars_200_like_original(vocab_path):
    lines = edge_cases()
    pure = WordPieceTokenizer.from_vocab_file(vocab_path, max_input_chars_per_word=200)
    fast = FastWordPieceTokenizer.from_vocab_file(vocab_path, max_input_chars_per_word=200)
    hf = hf_tokenizer(pure.vocab, lowercase=True, max_chars=200)
    same_ids, same_offsets, diffs = compare(lines, pure, fast, hf)
    assert (same_ids, same_offsets) == (len(lines), len(lines)), diffs
    assert pure.tokenize("b" * 150) != ["[UNK]"]


def test_known_pitfalls(vocab_path):
    """What FastBertTokenizer / keras-hub get wrong, we get right (as HF does)."""
    pure = WordPieceTokenizer.from_vocab_file(vocab_path)
    fast = FastWordPieceTokenizer.from_vocab_file(vocab_path)
    for text, tokens in [("Fußball", ["fu", "##ß", "##ball"]), ("a´b", ["a", "##´", "##b"]),
                         ("Café", ["cafe"]), ("ΟΔΟΣ", ["ο", "##δ", "##ο", "##σ"]),
                         ("UNwanted, running", ["unwanted", ",", "running"])]:
        assert pure.tokenize(text) == tokens
        assert fast([text]).to_list() == [pure.encode(text)]


def test_offsets_point_at_the_original_text(vocab_path, corpus):
    """text[start:end], normalised, is the token (without ##), for every token but [UNK] and specials.

    (Contains rather than equals: one original character can expand into several normalised ones,
    e.g. a Hangul syllable into jamo that WordPiece may split.)"""
    pure = WordPieceTokenizer.from_vocab_file(vocab_path)
    checked = 0
    for text in corpus[::20] + edge_cases():
        for token, start, end in pure.tokenize_with_offsets(text):
            if token == "[UNK]" or (token in pure.special_tokens and text[start:end] == token):
                continue
            piece = token[2:] if token.startswith("##") else token
            original = pure.basic.normalize(text[start:end])
            assert piece == original or (end - start == 1 and piece in original), (text, token, start, end)
            checked += 1
    assert checked > 10_000


def test_offsets_in_bytes(vocab_path):
    fast = FastWordPieceTokenizer.from_vocab_file(vocab_path)
    text = "Crème brûlée, 北京!"
    _, starts, ends = fast.tokenize_with_offsets([text], unit="byte")
    _, cstarts, cends = fast.tokenize_with_offsets([text], unit="char")
    raw = text.encode("utf-8")
    by_bytes = [raw[s:e].decode("utf-8") for s, e in zip(starts.to_list()[0], ends.to_list()[0])]
    by_chars = [text[s:e] for s, e in zip(cstarts.to_list()[0], cends.to_list()[0])]
    assert by_bytes == by_chars
    assert "".join(by_chars) == "Crèmebrûlée,北京!"
