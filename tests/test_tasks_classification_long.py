"""Classification beyond the basics: long texts (head, head+tail, windows with stride; mean/max over window
logits), regression (problem_type, MSE; beats predicting the mean on held-out data), regression_metrics
against scipy.stats, RUN_KIND / from_run_settings, save/load."""

import numpy as np
import pytest
import scipy.stats

import keras

from bertcourse import BertConfig
from bertcourse.errors import ModelInputError
from bertcourse.models import BertBackbone
from bertcourse.pipelines import pipeline
from bertcourse.tasks import BertClassifier, encode_texts
from bertcourse.tasks.classification import (aggregate_windows, classify_long, long_text_inputs,
                                             regression_metrics)
from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer
from bertcourse.text.windows import window_spans

WORDS = ["the", "film", "was", "good", "bad", "not", "very", "a", "plot", "and", "dull", "fine"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS


def _classifier(num_classes=2, seq_len=10, problem_type="single_label_classification", seed=0, layers=1):
    keras.utils.set_random_seed(seed)
    cfg = BertConfig(vocab_size=len(VOCAB), num_layers=layers, hidden_size=16, num_heads=2, intermediate_size=32,
                     max_position_embeddings=32, initializer_range=0.2)
    pre = BertPreprocessor(FastWordPieceTokenizer(VOCAB), sequence_length=seq_len)
    return BertClassifier(BertBackbone(cfg), num_classes=num_classes, preprocessor=pre, problem_type=problem_type)


@pytest.fixture(scope="module")
def clf():
    return _classifier()


def _text(n, offset=0):
    """n words, each a known single token, so token i of the text is WORDS[(i + offset) % 12]."""
    return " ".join(WORDS[(i + offset) % len(WORDS)] for i in range(n))


def _ids(n, offset=0):
    return [VOCAB.index(WORDS[(i + offset) % len(WORDS)]) for i in range(n)]


@pytest.mark.parametrize("n,stride", [(0, 0), (5, 3), (8, 0), (8, 3), (9, 3), (20, 3), (21, 4), (21, 7), (30, 0)])
def test_windows_cover_every_token_with_the_right_counts(clf, n, stride):
    body = clf.preprocessor.sequence_length - 2  # 8
    inputs, owner = long_text_inputs(clf.preprocessor, [_text(n), "bad"], "windows", stride=stride)
    spans = window_spans(n, body, stride)
    assert owner.tolist() == [0] * len(spans) + [1]
    ids, seen = _ids(n), np.zeros(n, int)
    for row, (a, b) in enumerate(spans):
        want = [2, *ids[a:b], 3]
        assert inputs["token_ids"][row, :len(want)].tolist() == want
        assert inputs["padding_mask"][row].sum() == len(want) and not inputs["token_ids"][row, len(want):].any()
        seen[a:b] += 1
    assert (seen >= 1).all()                            # every token is seen ...
    if len(spans) > 1:                                  # ... the first and last `body - stride` tokens once,
        assert (seen[:body - stride] == 1).all() and (seen[spans[-2][1]:] == 1).all()
        if 2 * stride <= body:                          # the shared `stride` tokens twice
            assert (seen[spans[1][0]:spans[0][1]] == 2).all() and spans[0][1] - spans[1][0] == stride
        assert seen.sum() == sum(b - a for a, b in spans)
    assert inputs["segment_ids"].max() == 0


def test_head_equals_the_preprocessor_and_head_tail_keeps_both_ends(clf):
    texts = [_text(3), _text(8), _text(25, offset=5)]
    head, owner = long_text_inputs(clf.preprocessor, texts, "head")
    want = encode_texts(clf.preprocessor, texts)
    for key in want:
        np.testing.assert_array_equal(head[key], want[key])
    both, owner = long_text_inputs(clf.preprocessor, texts, "head+tail", head_tokens=3)
    ids = _ids(25, offset=5)
    assert both["token_ids"][2].tolist() == [2, *ids[:3], *ids[-5:], 3] and owner.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(both["token_ids"][:2], want["token_ids"][:2])  # short texts: unchanged
    default, _ = long_text_inputs(clf.preprocessor, texts, "head+tail")       # head_tokens = body // 4 = 2
    assert default["token_ids"][2].tolist() == [2, *ids[:2], *ids[-6:], 3]
    with pytest.raises(ModelInputError, match="single texts"):
        long_text_inputs(clf.preprocessor, (["a"], ["b"]), "windows")
    with pytest.raises(ValueError, match="truncation"):
        long_text_inputs(clf.preprocessor, ["a"], "tail")
    with pytest.raises(ValueError, match="stride"):
        long_text_inputs(clf.preprocessor, ["a"], "windows", stride=8)


def test_window_logits_aggregate_and_pipeline_options(clf):
    texts = [_text(23), _text(4, offset=2), _text(12, offset=7)]
    np.testing.assert_allclose(classify_long(clf, texts, truncation="head"), clf.predict(texts, verbose=0), atol=1e-5)
    inputs, owner = long_text_inputs(clf.preprocessor, texts, "windows", stride=2)
    per_window = clf.predict(inputs, verbose=0)
    for aggregation, reduce in (("mean", np.mean), ("max", np.max)):
        got = classify_long(clf, texts, truncation="windows", stride=2, aggregation=aggregation, batch_size=2)
        want = np.stack([reduce(per_window[owner == i], axis=0) for i in range(len(texts))])
        np.testing.assert_allclose(got, want, atol=1e-5)
        classify = pipeline("text-classification", model=clf, truncation="windows", stride=2, aggregation=aggregation,
                            batch_size=2)
        probs = np.exp(want) / np.exp(want).sum(-1, keepdims=True)
        out = classify(texts, top_k=None)
        for row, p in zip(out, probs):
            assert row[0]["score"] == pytest.approx(p.max(), abs=1e-5)
    head_tail = pipeline("text-classification", model=clf)(texts, truncation="head+tail", top_k=None)
    logits = classify_long(clf, texts, truncation="head+tail")
    assert head_tail[0][0]["score"] == pytest.approx(float(np.exp(logits[0]).max() / np.exp(logits[0]).sum()),
                                                     abs=1e-5)
    assert aggregate_windows(np.array([[1.0], [3.0]]), np.array([0, 0]), 1).tolist() == [[2.0]]
    with pytest.raises(ValueError, match="aggregation"):
        pipeline("text-classification", model=clf, aggregation="median")


def test_regression_metrics_equal_scipy():
    rng = np.random.default_rng(0)
    gold = np.round(rng.uniform(0, 5, 500) * 5) / 5          # STS-like 0-5 scores with many ties
    pred = gold + rng.normal(0, 1.2, 500)
    pred[:50] = np.round(pred[:50])                            # ties in the predictions too
    m = regression_metrics(gold, pred[:, None])
    assert m["pearson"] == pytest.approx(scipy.stats.pearsonr(gold, pred)[0], abs=1e-12)
    assert m["spearman"] == pytest.approx(scipy.stats.spearmanr(gold, pred)[0], abs=1e-12)
    assert m["mse"] == pytest.approx(np.mean((gold - pred) ** 2))
    with pytest.raises(ValueError, match="same length"):
        regression_metrics([1.0, 2.0], [1.0])


def test_regression_head_trains_beats_the_mean_and_round_trips(tmp_path):
    """Score = (#good - #bad) of a text; 1-layer model, a few epochs: held-out MSE below the train mean's."""
    rng = np.random.default_rng(1)

    def make(n):
        texts, scores = [], []
        for _ in range(n):
            words = list(rng.choice(["good", "bad", "film", "plot", "the"], size=rng.integers(2, 7)))
            texts.append(" ".join(words))
            scores.append(words.count("good") - words.count("bad"))
        return texts, np.asarray(scores, np.float32)

    (train_texts, train_y), (test_texts, test_y) = make(384), make(128)
    reg = _classifier(num_classes=1, problem_type="regression", seq_len=10, seed=2)
    assert reg.is_regression and reg.default_function() == "none"
    reg.compile(optimizer=keras.optimizers.Adam(3e-3), **BertClassifier.loss_and_metrics("regression"))
    reg.fit(encode_texts(reg.preprocessor, train_texts), train_y[:, None], batch_size=32, epochs=8, verbose=0)
    pred = reg.predict(test_texts, verbose=0)
    model_mse = regression_metrics(test_y, pred)["mse"]
    mean_mse = float(np.mean((test_y - train_y.mean()) ** 2))
    assert model_mse < 0.5 * mean_mse, (model_mse, mean_mse)
    assert regression_metrics(test_y, pred)["spearman"] > 0.7
    out = pipeline("text-classification", model=reg)(test_texts[:3])
    np.testing.assert_allclose([o["score"] for o in out], pred[:3, 0], atol=1e-5)   # the raw score
    path = tmp_path / "reg.keras"
    reg.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.problem_type == "regression"
    np.testing.assert_allclose(loaded.predict(test_texts, verbose=0), pred, atol=1e-6)


def test_run_settings_rebuild_the_task(clf):
    assert BertClassifier.RUN_KIND == "classification"
    backbone = BertBackbone(clf.backbone.config)
    task = BertClassifier.from_run_settings(backbone, clf.preprocessor, {"labels": ["a", "b", "c"], "dropout": 0.2})
    assert task.num_classes == 3 and task.labels == ["a", "b", "c"] and task.dropout == 0.2
    reg = BertClassifier.from_run_settings(backbone, clf.preprocessor, {"labels": None, "problem_type": "regression"})
    assert reg.num_classes == 1 and reg.is_regression
    with pytest.raises(ValueError, match="problem_type"):
        BertClassifier(backbone, num_classes=1, problem_type="ordinal")
