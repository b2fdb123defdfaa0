"""bertcourse.training.pretrain: config checks, the model it builds, a short real run with its files."""

import json

import pytest

from bertcourse.data import corpora
from bertcourse.text import WordPieceTokenizer, learn_vocabulary
from bertcourse.training.pretrain import (PretrainConfig, build_pretrainer, evaluate_mlm, pretrain,
                                          pretraining_train_config)
from bertcourse.training.run import RunDirectory


@pytest.fixture(scope="module")
def tokenizer():
    docs = corpora.load_corpus("austen")[:20]
    return WordPieceTokenizer(learn_vocabulary([s for d in docs for s in d.sentences], 600))


def test_config_errors():
    with pytest.raises(ValueError, match="multiple of steps_per_epoch"):
        pretraining_train_config(steps=10, steps_per_epoch=3)
    with pytest.raises(ValueError, match=">= 1"):
        pretraining_train_config(steps=0)
    with pytest.raises(ValueError, match="mask_rate"):
        PretrainConfig(mask_rate=1.0)
    assert PretrainConfig(seq_len=128).max_predictions == 20  # data.masking.num_predictions


def test_build_pretrainer_follows_the_config(tokenizer):
    model = build_pretrainer(tokenizer, PretrainConfig(preset="tiny", normalize_first=True, mlm_only=True,
                                                       dropout=0.0), dtype="mixed_bfloat16", seed=1)
    assert model.backbone.config.normalize_first and model.mlm_only and model.sparse_last_layer
    assert all(block.normalize_first for block in model.backbone.encoder_layers)
    assert model.backbone.config.vocab_size == tokenizer.vocabulary_size
    assert model.backbone.config.hidden_dropout == 0.0
    assert model.backbone.dtype_policy.name == "mixed_bfloat16"


def test_short_run_with_higher_mask_rate_writes_everything(tokenizer, tmp_path):
    docs = corpora.load_corpus("austen")[:20]
    config = PretrainConfig(preset="tiny", seq_len=32, mask_rate=0.3, normalize_first=True)
    model, history = pretrain(docs, tokenizer, config, pretraining_train_config(steps=4, steps_per_epoch=2,
                                                                                  batch_size=8),
                              out_dir=tmp_path, verbose=0)
    assert len(history["loss"]) == 2
    run = RunDirectory(tmp_path)
    assert run.kind == "pretraining" and run.is_finished and not run.checkpoints.exists()
    assert json.loads(run.pretrain_config.read_text())["mask_rate"] == 0.3
    assert json.loads(run.history.read_text())["loss"] == history["loss"]
    for name in ("pretrainer_weights", "backbone_weights", "config_json", "vocab", "log_csv", "train_config"):
        assert run.path_of(name).is_file(), name
    reloaded, reloaded_tok = run.load_pretrainer()  # sparse last layer + pre-LN: rebuilt the same way
    assert reloaded.sparse_last_layer and reloaded.backbone.config.normalize_first
    assert reloaded_tok.get_vocabulary() == tokenizer.get_vocabulary()
    for a, b in zip(reloaded.get_weights(), model.get_weights()):
        assert (a == b).all()
    held = evaluate_mlm(model, docs[:2], tokenizer, seq_len=32, batch_size=8, max_batches=2)
    assert 0.0 <= held["mlm_accuracy"] <= 1.0 and held["mlm_perplexity"] > 1.0


def test_fill_mask_probe_uses_the_task_module(tokenizer):
    from bertcourse.training import FillMaskProbe

    model = build_pretrainer(tokenizer, PretrainConfig(preset="tiny", seq_len=32), seed=0)
    probe = FillMaskProbe(tokenizer, ["She was very [MASK] to see her sister."], top_k=2, verbose=False)
    probe.set_model(model)
    rows = probe.probe(1)
    assert len(rows) == 1 and rows[0]["epoch"] == 1 and len(rows[0]["predictions"]) == 2
    token, score = rows[0]["predictions"][0]
    assert isinstance(token, str) and 0.0 <= score <= 1.0
    assert probe.history == rows
