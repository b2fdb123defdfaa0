"""Pretraining a small BERT end to end (lesson 07): data -> BertPretrainer -> fit -> weights on disk.

>>> from bertcourse.training.pretrain import PretrainConfig, pretrain          # doctest: +SKIP
>>> model, history = pretrain(train_docs, tokenizer, PretrainConfig(preset="mini", steps=1000),
...                           out_dir="runs/pretrain-mini")                      # doctest: +SKIP

The run is resumable: with ``out_dir`` set, Keras' ``BackupAndRestore`` keeps a backup every epoch
and a rerun of the same call continues where it stopped.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["PretrainConfig", "build_pretrainer", "pretrain", "evaluate_mlm", "unigram_baseline"]


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """What a pretraining run needs. ``steps`` are optimizer updates; ``steps_per_epoch`` sets how often
    Keras logs, probes and backs up."""

    preset: str = "mini"
    seq_len: int = 128
    batch_size: int = 32
    steps: int = 1000
    steps_per_epoch: int = 100
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    mlm_only: bool = False
    whole_word: bool = False
    mask_rate: float = 0.15  # training only; held-out evaluation always masks BERT's 15%
    normalize_first: bool = False  # pre-LayerNorm blocks (not BERT's post-LN)
    sparse_last_layer: bool = True  # last block only at [CLS] + masked positions: same outputs, ~1.2x faster
    dropout: float = 0.1
    seed: int = 12345
    jit_compile: bool = False  # measured on a 2-core CPU: XLA makes the BERT train step slower (lesson 08)
    precision: str = "float32"  # "mixed_bfloat16": about 2x faster on CPUs with AVX512-BF16 (lesson 08)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.steps_per_epoch < 1:
            raise ValueError("steps and steps_per_epoch must be >= 1.")
        if not 0.0 < self.mask_rate < 1.0:
            raise ValueError(f"mask_rate must be in (0, 1), got {self.mask_rate}.")
        if self.steps % self.steps_per_epoch:
            raise ValueError(f"steps ({self.steps}) must be a multiple of steps_per_epoch ({self.steps_per_epoch}).")


def build_pretrainer(tokenizer, config: PretrainConfig):
    """A fresh ``BertPretrainer`` for ``config.preset`` sized to the tokenizer's vocabulary."""
    import keras

    from bertcourse import BertConfig
    from bertcourse.models import BertBackbone
    from bertcourse.models.pretraining import BertPretrainer

    keras.utils.set_random_seed(config.seed)
    bert_config = BertConfig.preset(config.preset, vocab_size=tokenizer.vocabulary_size,
                                    max_position_embeddings=max(config.seq_len, 128),
                                    hidden_dropout=config.dropout, attention_dropout=config.dropout)
    backbone = BertBackbone(bert_config, normalize_first=config.normalize_first, dtype=config.precision)
    return BertPretrainer(backbone, mlm_only=config.mlm_only, sparse_last_layer=config.sparse_last_layer)


def pretrain(train_documents: Sequence, tokenizer, config: PretrainConfig, out_dir: str | Path | None = None,
             callbacks: Sequence = (), verbose: int | str = "auto"):
    """Pretrain from scratch on ``train_documents``; returns ``(pretrainer, history_dict)``.

    With ``out_dir``: resumes from ``out_dir/backup`` if a previous run was interrupted, and writes
    ``pretrainer.weights.h5``, ``backbone.weights.h5``, ``config.json``, ``vocab.txt`` and
    ``history.json`` there at the end.
    """
    import keras

    from bertcourse.data.pretraining import MaskingConfig, pretraining_dataset
    from bertcourse.text import save_vocabulary
    from bertcourse.training.optim import bert_adamw

    model = build_pretrainer(tokenizer, config)
    masking = MaskingConfig(rate=config.mask_rate,
                            max_predictions=max(1, round(config.seq_len * config.mask_rate + 0.5)))
    data = pretraining_dataset(train_documents, tokenizer, seq_len=config.seq_len, batch_size=config.batch_size,
                               masking=masking, whole_word=config.whole_word, seed=config.seed)
    model.compile(bert_adamw(config.learning_rate, config.steps, warmup_ratio=config.warmup_ratio,
                             weight_decay=config.weight_decay), jit_compile=config.jit_compile)
    callbacks = list(callbacks)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        resuming = (out / "backup").exists()  # an interrupted run: continue its log; a new run: a new log
        callbacks.append(keras.callbacks.BackupAndRestore(str(out / "backup")))
        callbacks.append(keras.callbacks.CSVLogger(str(out / "log.csv"), append=resuming))
    history = model.fit(data, epochs=config.steps // config.steps_per_epoch, steps_per_epoch=config.steps_per_epoch,
                        callbacks=callbacks, verbose=verbose).history
    if out_dir is not None:
        model.save_weights(str(out / "pretrainer.weights.h5"))
        model.backbone.save_weights(str(out / "backbone.weights.h5"))
        model.backbone.config.to_json(out / "config.json")
        save_vocabulary(tokenizer.get_vocabulary(), out / "vocab.txt")
        (out / "history.json").write_text(json.dumps(history, indent=1))
        (out / "pretrain_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=1))
    return model, history


def evaluate_mlm(model, documents: Sequence, tokenizer, seq_len: int = 128, batch_size: int = 32,
                 max_batches: int | None = None, seed: int = 2024) -> dict[str, float]:
    """MLM accuracy, loss and perplexity (+ NSP accuracy) on held-out documents, with fixed masks."""
    from bertcourse.data.pretraining import MaskingConfig, pretraining_dataset

    masking = MaskingConfig(max_predictions=max(1, round(seq_len * 0.15 + 0.5)))
    data = pretraining_dataset(documents, tokenizer, seq_len=seq_len, batch_size=batch_size, masking=masking,
                               seed=seed, shuffle_buffer=0, repeat=False)
    if max_batches:
        data = data.take(max_batches)
    logs = model.evaluate(data, verbose=0, return_dict=True)
    return {k: float(v) for k, v in logs.items()}


def unigram_baseline(train_documents: Sequence, heldout_documents: Sequence, tokenizer, seq_len: int = 128,
                     batch_size: int = 32, max_batches: int | None = None, seed: int = 2024) -> dict[str, float]:
    """The no-context baseline: predict every masked token from training-set token frequencies alone.

    Accuracy = how often the single most frequent token is right; perplexity = exp of the
    cross-entropy of the (add-one smoothed) unigram distribution, on the same masks as
    :func:`evaluate_mlm`.
    """
    from bertcourse.data.pretraining import MaskingConfig, pretraining_dataset, tokenize_documents

    specials = {tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id}
    counts = collections.Counter(t for doc in tokenize_documents(train_documents, tokenizer) for s in doc for t in s)
    vocab = tokenizer.vocabulary_size
    freq = np.ones(vocab, dtype="float64")
    for token, count in counts.items():
        freq[token] += count
    for token in specials:
        freq[token] = 0.0
    prob = freq / freq.sum()
    best = int(np.argmax(prob))
    masking = MaskingConfig(max_predictions=max(1, round(seq_len * 0.15 + 0.5)))
    data = pretraining_dataset(heldout_documents, tokenizer, seq_len=seq_len, batch_size=batch_size, masking=masking,
                               seed=seed, shuffle_buffer=0, repeat=False)
    if max_batches:
        data = data.take(max_batches)
    correct = total = 0.0
    nll = 0.0
    for _, y, w in data.as_numpy_iterator():
        labels, weights = y["mlm"], w["mlm"]
        real = weights > 0  # padded prediction slots hold [PAD] with weight 0
        correct += float((labels[real] == best).sum())
        nll += float(-np.log(prob[labels[real]]).sum())
        total += float(real.sum())
    return {"mlm_accuracy": correct / total, "mlm_loss": nll / total, "mlm_perplexity": math.exp(nll / total),
            "most_frequent_token": tokenizer.convert_ids_to_tokens([best])[0]}
