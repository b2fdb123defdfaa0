"""Every Unicode code point, one at a time ("x<c>y"), through the three tokenizers (slow).

Measured (uncased, 1,112,064 code points): the algorithms agree everywhere; what differs is the
*Unicode version* of the character tables each library carries:

* pure (Python 3.11 ``unicodedata``, Unicode 14) vs fast (TF's ICU/RE2, newer): 78 code points,
  all unassigned in Unicode 14 (so Python keeps them as unknown letters while TF knows them as
  marks or punctuation);
* pure vs Hugging Face ``tokenizers``: 759 code points (384 Mn, 104 P*, 13 Cf, 1 So added to
  Unicode after the old tables of HF's ``unicode_categories`` crate, and 256 Lo in U+2B820-2B91F:
  HF's CJK range starts at 0x2B920 where google-research/bert's starts at 0x2B820).

None of these characters occurs in the corpora or in the edge-case fixture, where the three
agree on every line (see test_text_parity.py).
"""

import unicodedata

import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tokenizers")

from bertcourse.text import FastWordPieceTokenizer, WordPieceTokenizer, bert_uncased_vocab_path  # noqa: E402


@pytest.mark.slow
def test_every_code_point():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    pure = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
    fast = FastWordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
    hf = Tokenizer(models.WordPiece(pure.vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    hf.normalizer = normalizers.BertNormalizer(lowercase=True)
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()

    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    lines = [f"x{chr(c)}y" for c in cps]
    p_ids = [pure.encode(s) for s in lines]
    h_ids = [e.ids for e in hf.encode_batch(lines, add_special_tokens=False)]
    f_ids = []
    for i in range(0, len(lines), 100_000):
        f_ids += fast(tf.constant(lines[i:i + 100_000])).to_list()

    pure_vs_fast = [c for c, a, b in zip(cps, p_ids, f_ids) if a != b]
    pure_vs_hf = [c for c, a, b in zip(cps, p_ids, h_ids) if a != b]
    print(f"\n{len(cps):,} code points: pure!=fast {len(pure_vs_fast)}, pure!=hf {len(pure_vs_hf)}")
    # pure vs fast: only code points Python's Unicode tables do not know yet.
    assert all(unicodedata.category(chr(c)) == "Cn" for c in pure_vs_fast)
    assert len(pure_vs_fast) < 200
    # pure vs HF: characters newer than HF's tables, and HF's CJK range typo.
    newer = {"Mn", "Mc", "Cf", "So", "Po", "Ps", "Pe", "Pd", "Pc", "Pi", "Pf"}
    assert all(0x2B820 <= c <= 0x2B91F or unicodedata.category(chr(c)) in newer for c in pure_vs_hf)
    assert len(pure_vs_hf) < 1_000
    # Not a single difference in the Basic Multilingual Plane's Latin, Greek, Cyrillic, CJK blocks.
    assert not [c for c in pure_vs_fast + pure_vs_hf if c < 0x0600 or 0x4E00 <= c <= 0x9FFF]
