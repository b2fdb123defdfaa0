"""The classification task on raw strings: preprocess = the preprocessor, predict on strings = predict on
ids, the pipeline's scores = a softmax by hand, HF's output shapes, `.keras` round trip with the
preprocessor and labels inside, label_map and the metrics."""

import numpy as np
import pytest

import keras

from bertcourse import BertConfig
from bertcourse.errors import BertcourseError, ModelInputError
from bertcourse.models import BertBackbone
from bertcourse.pipelines import pipeline
from bertcourse.tasks import (BertClassifier, Task, TextClassificationPipeline, classification_metrics, encode_texts,
                              is_raw_text, label_map)
from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer, WordPieceTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "was", "good", "bad", "not", "very", "##ly",
         ",", ".", "a", "plot", "and"]
TEXTS = ["The film was good.", "the film was bad", "not very good, badly", "A plot", "", "good good good film"]


def _classifier(num_classes=3, labels=("neg", "neu", "pos"), seq_len=16, seed=0):
    keras.utils.set_random_seed(seed)
    cfg = BertConfig(vocab_size=len(VOCAB), num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32,
                     max_position_embeddings=32)
    pre = BertPreprocessor(FastWordPieceTokenizer(VOCAB), sequence_length=seq_len)
    return BertClassifier(BertBackbone(cfg), num_classes=num_classes, preprocessor=pre,
                          labels=None if labels is None else list(labels))


@pytest.fixture(scope="module")
def clf():
    return _classifier()


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_is_a_task_with_preprocessor_in_config(clf):
    assert isinstance(clf, Task) and isinstance(clf, keras.Model)
    config = clf.get_config()
    assert config["labels"] == ["neg", "neu", "pos"] and config["num_classes"] == 3
    assert config["preprocessor"] is not None and config["backbone"] is not None
    clone = BertClassifier.from_config(config)
    assert clone.labels == clf.labels and clone.preprocessor.sequence_length == 16
    assert clone.preprocessor.tokenizer.get_vocabulary() == VOCAB


def test_predict_on_strings_equals_predict_on_ids(clf):
    ids = {k: np.asarray(v) for k, v in clf.preprocess(TEXTS).items()}
    by_hand = clf.predict(ids, batch_size=4, verbose=0)
    on_strings = clf.predict(TEXTS, batch_size=4, verbose=0)
    np.testing.assert_array_equal(on_strings, by_hand)
    import tensorflow as tf

    np.testing.assert_array_equal(clf.predict(tf.constant(TEXTS), batch_size=4, verbose=0), by_hand)
    one = clf.predict("the film was good", verbose=0)
    np.testing.assert_allclose(one, clf.predict(["the film was good"], verbose=0), atol=1e-6)
    pairs = (["the film", "a plot"], ["was good", "and bad"])
    pair_ids = clf.preprocess(pairs)
    assert np.asarray(pair_ids["segment_ids"]).max() == 1
    np.testing.assert_allclose(clf.predict(pairs, verbose=0), clf.predict(pair_ids, verbose=0), atol=1e-6)


def test_encode_texts_for_the_engine(clf):
    """What fine-tuning feeds tf.data: int32 arrays, the same ids as the task's own preprocess."""
    x = encode_texts(clf.preprocessor, TEXTS * 3, chunk_size=4)
    assert {k: (v.dtype, v.shape) for k, v in x.items()} == {k: ("int32", (18, 16)) for k in x}
    want = clf.preprocess(TEXTS)
    for key in x:
        np.testing.assert_array_equal(x[key][:6], np.asarray(want[key]).astype("int32"))
    pairs = encode_texts(clf.preprocessor, ["the film", "a plot"], ["was good", "and bad"])
    np.testing.assert_array_equal(pairs["segment_ids"], np.asarray(clf.preprocess(
        (["the film", "a plot"], ["was good", "and bad"]))["segment_ids"]))
    with pytest.raises(ModelInputError, match="differ in length"):
        encode_texts(clf.preprocessor, ["a"], ["b", "c"])


def test_pipeline_scores_are_a_softmax_of_the_logits(clf):
    classify = TextClassificationPipeline(clf, batch_size=4)
    logits = clf.predict(TEXTS, verbose=0)
    probs = _softmax(logits.astype("float64"))
    # no top_k: HF's legacy shape
    out = classify(TEXTS)
    assert len(out) == len(TEXTS) and all(set(o) == {"label", "score"} for o in out)
    for o, p in zip(out, probs):
        assert o["label"] == clf.labels[int(p.argmax())]
        assert abs(o["score"] - p.max()) < 1e-6
    single = classify(TEXTS[0])
    assert isinstance(single, list) and len(single) == 1 and single[0]["label"] == out[0]["label"]
    assert single[0]["score"] == pytest.approx(out[0]["score"], abs=1e-6)
    # top_k: sorted lists
    every = classify(TEXTS, top_k=None)
    for row, p in zip(every, probs):
        assert [r["label"] for r in row] == [clf.labels[i] for i in np.argsort(-p, kind="stable")]
        np.testing.assert_allclose([r["score"] for r in row], np.sort(p)[::-1], atol=1e-6)
    two = classify(TEXTS[0], top_k=2)
    assert len(two) == 2 and [t["label"] for t in two] == [t["label"] for t in every[0][:2]]
    nested = classify([TEXTS[0], TEXTS[1]], top_k=1)
    assert [[n[0]["label"]] for n in nested] == [[o["label"]] for o in out[:2]]
    raw = classify(TEXTS[0], top_k=None, function_to_apply="none")
    np.testing.assert_allclose(sorted(r["score"] for r in raw), np.sort(logits[0]), atol=1e-5)


def test_pipeline_pairs_and_aliases(clf):
    classify = pipeline("sentiment-analysis", model=clf)
    out = classify({"text": "the film", "text_pair": "was good"})
    direct = clf.predict((["the film"], ["was good"]), verbose=0)
    assert out[0]["label"] == clf.labels[int(direct.argmax())]
    assert len(classify([{"text": "a", "text_pair": "b"}, {"text": "c", "text_pair": "d"}])) == 2
    with pytest.raises(ModelInputError, match="text_pair"):
        classify({"text": "a"})
    with pytest.raises(ModelInputError, match="Mix"):
        classify(["a", {"text": "a", "text_pair": "b"}])


def test_pipeline_groups_a_list_by_length_and_answers_in_input_order(clf, monkeypatch):
    texts = [("good " * (3 + 5 * (i % 4))).strip() if i % 3 else "bad" for i in range(23)]
    grouped = TextClassificationPipeline(clf, batch_size=4)
    plain = TextClassificationPipeline(clf, batch_size=4, group_by_length=False)
    shapes = {}
    forward = clf.predict_on_batch

    def spy(batch):
        shapes.setdefault(spy.name, []).append(batch["token_ids"].shape)
        return forward(batch)

    monkeypatch.setattr(clf, "predict_on_batch", spy)
    spy.name = "grouped"
    out = grouped(texts, top_k=None)
    spy.name = "plain"
    ref = plain(texts, top_k=None)
    widths = [w for _, w in shapes["grouped"]]
    assert widths == sorted(widths)  # shortest first, each batch cut to its longest text
    cells = {name: sum(b * w for b, w in s) for name, s in shapes.items()}
    assert cells["grouped"] < 0.8 * cells["plain"]
    logits = forward(clf.preprocess(texts))
    for a, b, row in zip(out, ref, logits):  # each text's own answer, in the input order
        assert [x["label"] for x in a] == [x["label"] for x in b]
        np.testing.assert_allclose([x["score"] for x in a], [x["score"] for x in b], atol=1e-6)
        assert a[0]["label"] == clf.labels[int(np.asarray(row).argmax())]
    # other truncations order by characters; pairs too
    assert [x["label"] for x in grouped(texts, truncation="head+tail")] == [x["label"] for x in plain(texts)]
    pairs = [{"text": t, "text_pair": "the film"} for t in texts]
    assert [x["label"] for x in grouped(pairs)] == [x["label"] for x in plain(pairs)]


def test_default_labels_and_sigmoid_for_one_output():
    clf = _classifier(num_classes=2, labels=None)
    out = TextClassificationPipeline(clf)("the film", top_k=None)
    assert sorted(o["label"] for o in out) == ["LABEL_0", "LABEL_1"]
    reg = _classifier(num_classes=1, labels=None)
    logit = float(reg.predict(["a plot"], verbose=0)[0, 0])
    score = TextClassificationPipeline(reg)("a plot")[0]["score"]
    assert abs(score - 1 / (1 + np.exp(-logit))) < 1e-6


def test_keras_file_round_trip_on_raw_strings(tmp_path):
    clf = _classifier(seed=3)
    path = tmp_path / "clf.keras"
    clf.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, BertClassifier) and loaded.labels == clf.labels
    assert loaded.preprocessor.tokenizer.get_vocabulary() == VOCAB
    np.testing.assert_array_equal(loaded.predict(TEXTS, verbose=0), clf.predict(TEXTS, verbose=0))
    assert TextClassificationPipeline(loaded)(TEXTS, top_k=None) == TextClassificationPipeline(clf)(TEXTS, top_k=None)


def test_a_tokenizer_is_wrapped_and_no_preprocessor_is_a_clear_error():
    cfg = BertConfig(vocab_size=len(VOCAB), num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32,
                     max_position_embeddings=128)
    clf = BertClassifier(BertBackbone(cfg), num_classes=2, preprocessor=WordPieceTokenizer(VOCAB))
    assert isinstance(clf.preprocessor, BertPreprocessor) and clf.preprocessor.sequence_length == 128
    bare = BertClassifier(BertBackbone(cfg), num_classes=2)
    with pytest.raises(BertcourseError, match="no preprocessor"):
        bare.predict(["a text"])
    with pytest.raises(ValueError, match="labels"):
        BertClassifier(BertBackbone(cfg), num_classes=2, labels=["a"])
    with pytest.raises(ValueError, match="labels"):
        BertClassifier(BertBackbone(cfg), num_classes=2, labels=["a", "a"])


def test_raw_text_detection():
    assert is_raw_text("a") and is_raw_text(["a", "b"]) and is_raw_text((["a"], ["b"]))
    assert not is_raw_text({"token_ids": np.zeros((1, 3))}) and not is_raw_text(np.zeros((2, 3)))
    assert not is_raw_text([1, 2])


def test_label_map_keeps_labels_as_written():
    assert label_map(["1", "1.0", "1"]) == {"1": 0, "1.0": 1}         # two labels, never merged
    assert label_map(["1.0", "1", "0"]) == {"0": 0, "1": 1, "1.0": 2}  # deterministic whatever the order
    assert label_map(["10", "9", "-1", "2.5"]) == {"-1": 0, "2.5": 1, "9": 2, "10": 3}
    assert label_map(["pos", "neg", "Neg"]) == {"Neg": 0, "neg": 1, "pos": 2}
    assert label_map(["1", "one"]) == {"1": 0, "one": 1}               # not all numbers: string order
    assert label_map(["nan", "inf"]) == {"inf": 0, "nan": 1}            # words, not numbers
    with pytest.raises(TypeError, match="strings"):
        label_map([0, 1])
    with pytest.raises(ValueError, match="No labels"):
        label_map([])


def test_metrics_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    preds = np.array([0, 1, 0, 1, 2, 2, 2, 0, 2, 1])
    # per class (tp, fp, fn): 0 (2,1,1) 1 (1,2,1) 2 (3,1,1) 3 (0,0,1)
    f1 = [4 / 6, 2 / 5, 6 / 8, 0.0]
    m = classification_metrics(labels, preds, num_classes=5)  # class 4 never occurs: left out
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    with pytest.raises(ValueError, match="class ids"):
        classification_metrics([0, 5], [0, 1], num_classes=3)
