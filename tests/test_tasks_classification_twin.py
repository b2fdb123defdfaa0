"""Parity twin: our pipeline("text-classification") against Hugging Face's TextClassificationPipeline on the
same weights (a tiny random model written by save_hf_classifier): same labels on every input, scores within
1e-4, for single texts, pairs, every class (top_k=None) and a regression head."""

import os

import numpy as np
import pytest

import keras

from bertcourse import BertConfig
from bertcourse.models import BertBackbone
from bertcourse.pipelines import pipeline
from bertcourse.tasks import BertClassifier
from bertcourse.tasks.classification import save_hf_classifier
from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer

os.environ["USE_TF"] = "0"  # transformers' TensorFlow side wants tf-keras; the twin is the PyTorch model
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "was", "good", "bad", "not", "very", "##ly",
         ",", ".", "a", "plot", "and", "it", "is", "dull", "fine", "##s", "story"]
TEXTS = ["The film was good.", "the film was bad", "not very good, badly", "A plot", "", "good good good film",
         "It is a dull story, and the plots are not fine.", "fine"]
PAIRS = [{"text": "the film", "text_pair": "was good"}, {"text": "a dull plot", "text_pair": "it is fine"},
         {"text": "", "text_pair": "bad"}, {"text": "good good good good good", "text_pair": "very bad story"}]


def _pair(tmp_path_factory, num_classes, labels, problem_type="single_label_classification"):
    keras.utils.set_random_seed(7)
    # initializer_range 0.3: a random head whose classes are far apart, so labels are a real check
    cfg = BertConfig(vocab_size=len(VOCAB), num_layers=2, hidden_size=32, num_heads=4, intermediate_size=64,
                     max_position_embeddings=64, initializer_range=0.3)
    pre = BertPreprocessor(FastWordPieceTokenizer(VOCAB), sequence_length=24)
    clf = BertClassifier(BertBackbone(cfg), num_classes=num_classes, preprocessor=pre, labels=labels,
                         problem_type=problem_type)
    path = save_hf_classifier(clf, tmp_path_factory.mktemp("hf"))
    model = transformers.BertForSequenceClassification.from_pretrained(path).eval()
    hf = transformers.TextClassificationPipeline(model=model, tokenizer=transformers.AutoTokenizer.from_pretrained(path),
                                                 device=-1)
    return pipeline("text-classification", model=clf, batch_size=3), hf


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    return _pair(tmp_path_factory, 3, ["neg", "neu", "pos"])


def _same(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        a, b = (a if isinstance(a, list) else [a]), (b if isinstance(b, list) else [b])
        assert [x["label"] for x in a] == [x["label"] for x in b]
        np.testing.assert_allclose([x["score"] for x in a], [x["score"] for x in b], atol=1e-4)


def test_single_texts_match_hugging_face(three_classes):
    ours, hf = three_classes
    _same(ours(TEXTS), hf(TEXTS, batch_size=3))
    _same(ours(TEXTS, top_k=None), hf(TEXTS, top_k=None))
    _same(ours(TEXTS[0]), hf(TEXTS[0]))
    assert len({o["label"] for o in ours(TEXTS)}) > 1  # the twin is not trivially one class


def test_pairs_match_hugging_face(three_classes):
    ours, hf = three_classes
    _same(ours(PAIRS), hf(PAIRS))
    _same(ours(PAIRS, top_k=None), hf(PAIRS, top_k=None))


def test_sigmoid_and_regression_heads_match(tmp_path_factory):
    ours, hf = _pair(tmp_path_factory, 1, None, problem_type="regression")
    _same(ours(TEXTS), hf(TEXTS))  # regression: the raw output is the score, label LABEL_0
    assert all(o["label"] == "LABEL_0" for o in ours(TEXTS))
    ours, hf = _pair(tmp_path_factory, 2, ["no", "yes"])
    _same(ours(PAIRS, function_to_apply="sigmoid"), hf(PAIRS, function_to_apply="sigmoid"))
