"""bertcourse.pipelines is a thin registry: names -> the tasks' pipeline classes, clear errors otherwise."""

import pytest

import keras

from bertcourse import BertConfig
from bertcourse.errors import BertcourseError, ModelLoadError
from bertcourse.models import BertBackbone, BertPretrainer
from bertcourse.pipelines import SUPPORTED_TASKS, pipeline
from bertcourse.tasks import (TASKS, BertClassifier, FeatureExtractionPipeline, FillMaskPipeline,
                              TextClassificationPipeline)
from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer, WordPieceTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"]


def _backbone():
    keras.utils.set_random_seed(0)
    return BertBackbone(BertConfig(vocab_size=len(VOCAB), num_layers=1, hidden_size=16, num_heads=2,
                                   intermediate_size=32, max_position_embeddings=16))


def test_registry():
    assert SUPPORTED_TASKS == ("feature-extraction", "fill-mask", "ner", "question-answering", "sentiment-analysis",
                               "text-classification", "token-classification")
    assert TASKS["fill-mask"] is FillMaskPipeline and TASKS["feature-extraction"] is FeatureExtractionPipeline
    assert TASKS["sentiment-analysis"] is TASKS["text-classification"] is TextClassificationPipeline


def test_each_name_gives_its_pipeline():
    pre = BertPreprocessor(FastWordPieceTokenizer(VOCAB), sequence_length=8)
    clf = BertClassifier(_backbone(), num_classes=2, preprocessor=pre, labels=["no", "yes"])
    for name in ("text-classification", "sentiment-analysis"):
        classify = pipeline(name, model=clf)
        assert isinstance(classify, TextClassificationPipeline)
        assert classify("a b")[0]["label"] in ("no", "yes")
    fill = pipeline("fill-mask", model=BertPretrainer(_backbone()), tokenizer=WordPieceTokenizer(VOCAB), top_k=2)
    assert isinstance(fill, FillMaskPipeline) and len(fill("a [MASK] c")) == 2


def test_a_tokenizer_is_attached_to_a_bare_task_model():
    bare = BertClassifier(_backbone(), num_classes=2)
    classify = pipeline("text-classification", model=bare, tokenizer=FastWordPieceTokenizer(VOCAB))
    assert bare.preprocessor.sequence_length == 16 and len(classify(["a", "b c"])) == 2
    with pytest.raises(ValueError, match="already has a preprocessor"):
        pipeline("text-classification", model=bare, tokenizer=FastWordPieceTokenizer(VOCAB))


def test_a_run_directory_is_a_model(tmp_path):
    """A lesson-07 style run (config.json, vocab.txt, pretrainer.weights.h5) serves fill-mask by its path."""
    from bertcourse.text import save_vocabulary

    model = BertPretrainer(_backbone())
    model.backbone.config.to_json(tmp_path / "config.json")
    save_vocabulary(VOCAB, tmp_path / "vocab.txt")
    model.save_weights(tmp_path / "pretrainer.weights.h5")
    fill = pipeline("fill-mask", model=str(tmp_path), top_k=3)
    direct = pipeline("fill-mask", model=model, tokenizer=WordPieceTokenizer(VOCAB), top_k=3)
    assert [o["token"] for o in fill("a [MASK] c")] == [o["token"] for o in direct("a [MASK] c")]
    with pytest.raises(ModelLoadError, match="no such run directory"):
        pipeline("fill-mask", model=str(tmp_path / "missing"))


def test_clear_errors():
    with pytest.raises(ValueError, match=r"Unknown task 'translation'\. Supported: feature-extraction, fill-mask"):
        pipeline("translation", model=object())
    for name in SUPPORTED_TASKS:
        with pytest.raises(ModelLoadError, match="needs model="):
            pipeline(name)
    with pytest.raises(BertcourseError, match="tokenizer"):
        pipeline("fill-mask", model=BertPretrainer(_backbone()))
    with pytest.raises(ModelLoadError, match="model name"):
        pipeline("text-classification", model="my-run")
    with pytest.raises(BertcourseError, match="no preprocessor"):
        pipeline("text-classification", model=BertClassifier(_backbone(), num_classes=2))
    with pytest.raises(TypeError, match="BertClassifier"):
        pipeline("text-classification", model=BertPretrainer(_backbone()))
