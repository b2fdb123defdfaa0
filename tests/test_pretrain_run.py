"""bertcourse.training.pretrain: config checks, the model it builds, a short real run with its files."""

import json

import pytest

from bertcourse.data import corpora
from bertcourse.text import WordPieceTokenizer, learn_vocabulary
from bertcourse.training.pretrain import PretrainConfig, build_pretrainer, evaluate_mlm, pretrain


@pytest.fixture(scope="module")
def tokenizer():
    docs = corpora.load_corpus("austen")[:20]
    return WordPieceTokenizer(learn_vocabulary([s for d in docs for s in d.sentences], 600))


def test_config_errors():
    with pytest.raises(ValueError, match="multiple of steps_per_epoch"):
        PretrainConfig(steps=10, steps_per_epoch=3)
    with pytest.raises(ValueError, match=">= 1"):
        PretrainConfig(steps=0)
    with pytest.raises(ValueError, match="mask_rate"):
        PretrainConfig(mask_rate=1.0)


def test_build_pretrainer_follows_the_config(tokenizer):
    model = build_pretrainer(tokenizer, PretrainConfig(preset="tiny", normalize_first=True, mlm_only=True,
                                                       precision="mixed_bfloat16", dropout=0.0))
    assert model.backbone.normalize_first and model.mlm_only and model.sparse_last_layer
    assert all(block.normalize_first for block in model.backbone.encoder_layers)
    assert model.backbone.config.vocab_size == tokenizer.vocabulary_size
    assert model.backbone.config.hidden_dropout == 0.0
    assert model.backbone.dtype_policy.name == "mixed_bfloat16"


def test_short_run_with_higher_mask_rate_writes_everything(tokenizer, tmp_path):
    docs = corpora.load_corpus("austen")[:20]
    config = PretrainConfig(preset="tiny", seq_len=32, batch_size=8, steps=4, steps_per_epoch=2, mask_rate=0.3)
    model, history = pretrain(docs, tokenizer, config, out_dir=tmp_path, verbose=0)
    assert len(history["loss"]) == 2
    saved = json.loads((tmp_path / "pretrain_config.json").read_text())
    assert saved["mask_rate"] == 0.3
    for name in ("pretrainer.weights.h5", "backbone.weights.h5", "config.json", "vocab.txt", "history.json"):
        assert (tmp_path / name).is_file(), name
    from bertcourse.pretrained import load_course_pretrainer

    reloaded, reloaded_tok = load_course_pretrainer(tmp_path)  # sparse last layer: rebuilt the same way
    assert reloaded.sparse_last_layer and reloaded_tok.get_vocabulary() == tokenizer.get_vocabulary()
    for a, b in zip(reloaded.get_weights(), model.get_weights()):
        assert (a == b).all()
    held = evaluate_mlm(model, docs[:2], tokenizer, seq_len=32, batch_size=8, max_batches=2)
    assert 0.0 <= held["mlm_accuracy"] <= 1.0 and held["mlm_perplexity"] > 1.0
