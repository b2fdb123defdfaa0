"""Pretraining a small BERT end to end (lesson 07): data -> BertPretrainer -> the training engine -> a run
directory.

``PretrainConfig`` holds what is specific to pretraining (model size, sequence length, masking, NSP, the
sparse last layer); how to optimise (steps, batch size, learning rate, precision, seed, checkpoints) is the
engine's :class:`~bertcourse.training.loop.TrainConfig`, with pretraining's defaults from
:func:`pretraining_train_config`. The run goes through :func:`~bertcourse.training.loop.train`, so it is
checkpointed (atomic, checksummed) and a killed run resumes exactly, at any step.

>>> PretrainConfig(preset="tiny", seq_len=64, mask_rate=0.3).max_predictions
20
>>> PretrainConfig(objective="causal").objective        # a left-to-right LM on the same backbone
'causal'
>>> tc = pretraining_train_config(steps=200, steps_per_epoch=50, batch_size=16)
>>> tc.max_steps, tc.steps_per_epoch, tc.per_device_train_batch_size, tc.learning_rate, tc.save_steps
(200, 50, 16, 0.001, 50)
>>> model, history = pretrain(train_docs, tokenizer, PretrainConfig(preset="mini"), tc,
...                           out_dir="runs/pretrain-mini")                      # doctest: +SKIP
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from bertcourse.config import BertConfig
from bertcourse.data.masking import MaskingConfig, num_predictions
from bertcourse.data.nsp import tokenize_documents
from bertcourse.data.pipeline import pretraining_dataset
from bertcourse.models import BertBackbone
from bertcourse.models.pretraining import BertPretrainer, CausalLMPretrainer
from bertcourse.text import save_vocabulary
from bertcourse.training.loop import TrainConfig, train
from bertcourse.training.run import RunDirectory, atomic_save_weights

__all__ = ["PretrainConfig", "pretraining_train_config", "build_pretrainer", "pretrain", "evaluate_mlm",
           "evaluate_causal_lm", "heldout_mlm_dataset", "unmasked_token_ids", "causal_lm_batches",
           "unigram_baseline", "OBJECTIVES", "PRETRAINING_DEFAULTS"]

# "mlm": BERT (bidirectional encoder, masked-LM loss, + NSP unless mlm_only); "causal": the same backbone with
# a causal attention mask, trained to predict the next token (no NSP), as the left-to-right LMs BERT compares with.
OBJECTIVES = ("mlm", "causal")


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """What is specific to pretraining: the model and the MLM/NSP data. Optimisation lives in ``TrainConfig``."""

    preset: str = "mini"
    seq_len: int = 128
    mlm_only: bool = False  # no NSP head (RoBERTa-style)
    whole_word: bool = False
    mask_rate: float = 0.15  # training only; held-out evaluation always masks BERT's 15%
    short_seq_prob: float = 0.1  # NSP pairs: share of shorter sequences (BERT's create_pretraining_data)
    normalize_first: bool = False  # pre-LayerNorm blocks (not BERT's post-LN); stored in BertConfig
    sparse_last_layer: bool = True  # last block only at [CLS] + masked positions: same outputs, ~1.2x faster
    dropout: float = 0.1
    # "causal": left-to-right LM (predict the next token), same backbone; no NSP, and mlm_only, whole_word,
    # mask_rate and sparse_last_layer do not apply (it reads every position of the clean sequence)
    objective: str = "mlm"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}.")
        if self.seq_len < 8:
            raise ValueError(f"seq_len must be >= 8, got {self.seq_len}.")
        if not 0.0 < self.mask_rate < 1.0:
            raise ValueError(f"mask_rate must be in (0, 1), got {self.mask_rate}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")

    @property
    def max_predictions(self) -> int:
        """Prediction slots per sequence (:func:`bertcourse.data.masking.num_predictions`)."""
        return num_predictions(self.seq_len, self.mask_rate)

    @property
    def masking(self) -> MaskingConfig:
        return MaskingConfig.for_length(self.seq_len, rate=self.mask_rate)


# Pretraining's optimisation defaults (BERT's recipe at course scale), as TrainConfig fields.
PRETRAINING_DEFAULTS: dict[str, Any] = {"learning_rate": 1e-3, "per_device_train_batch_size": 32, "max_steps": 1000,
                                        "steps_per_epoch": 100, "warmup_ratio": 0.1, "weight_decay": 0.01,
                                        "seed": 12345, "eval_strategy": "no"}


def pretraining_train_config(steps: int | None = None, steps_per_epoch: int | None = None,
                             batch_size: int | None = None, **fields: Any) -> TrainConfig:
    """A ``TrainConfig`` with pretraining's defaults; ``steps`` = ``max_steps``, ``batch_size`` =
    ``per_device_train_batch_size``. ``save_steps`` defaults to one checkpoint per epoch."""
    values = dict(PRETRAINING_DEFAULTS)
    for key, value in (("max_steps", steps), ("steps_per_epoch", steps_per_epoch),
                       ("per_device_train_batch_size", batch_size)):
        if value is not None:
            values[key] = value
    values.update(fields)
    values.setdefault("save_steps", values["steps_per_epoch"])
    config = TrainConfig(**values)
    if config.max_steps % config.steps_per_epoch:
        raise ValueError(f"steps ({config.max_steps}) must be a multiple of steps_per_epoch "
                         f"({config.steps_per_epoch}).")
    return config


def build_pretrainer(tokenizer, config: PretrainConfig, dtype=None,
                     seed: int | None = None) -> BertPretrainer | CausalLMPretrainer:
    """A fresh ``BertPretrainer`` for ``config.preset`` sized to the tokenizer's vocabulary; with
    ``config.objective == "causal"`` a ``CausalLMPretrainer`` on a causal backbone of the same size.
    ``seed``: set Keras' seeds first (``train`` does it itself before it calls the builder)."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    bert_config = BertConfig.preset(config.preset, vocab_size=tokenizer.vocabulary_size,
                                    max_position_embeddings=max(config.seq_len, 128),
                                    hidden_dropout=config.dropout, attention_dropout=config.dropout,
                                    normalize_first=config.normalize_first)
    if config.objective == "causal":
        return CausalLMPretrainer(BertBackbone(bert_config, causal=True, dtype=dtype))
    backbone = BertBackbone(bert_config, dtype=dtype)
    return BertPretrainer(backbone, mlm_only=config.mlm_only, sparse_last_layer=config.sparse_last_layer)


def _global_batch(train_config: TrainConfig) -> int:
    return train_config.per_device_train_batch_size * tf.distribute.get_strategy().num_replicas_in_sync


def pretrain(train_documents: Sequence, tokenizer, config: PretrainConfig | None = None,
             train_config: TrainConfig | None = None, out_dir: str | Path | None = None, resume: bool = False,
             overwrite: bool = False, callbacks: Sequence = (), verbose: int | str = "auto"):
    """Pretrain from scratch on ``train_documents``; returns ``(pretrainer, history_dict)``.

    With ``out_dir``: a :class:`~bertcourse.training.run.RunDirectory` of kind ``"pretraining"`` (refused
    over another kind of run, over a finished run without ``overwrite``, over an interrupted one without
    ``resume``). ``vocab.txt``, ``config.json``, ``pretrain_config.json`` are written first, checkpoints
    every ``train_config.save_steps`` batches, ``history.json``/``log.csv`` every epoch, TensorBoard logs in
    ``logs/``; at the end ``pretrainer.weights.h5`` and ``backbone.weights.h5`` (atomically), then the
    run is marked finished. ``resume=True`` continues the interrupted run exactly where its newest good
    checkpoint stopped (same data, masks, dropout and optimizer state as the uninterrupted run).

    ``config.objective == "causal"`` trains a :class:`~bertcourse.models.pretraining.CausalLMPretrainer` on
    the SAME sequences in the same order (the MLM batches with their masks undone, :func:`causal_lm_batches`).
    """
    config = config or PretrainConfig()
    train_config = train_config or pretraining_train_config()
    if train_config.max_steps is None:
        raise ValueError("Pretraining counts steps: set TrainConfig.max_steps (pretraining_train_config(steps=...)).")
    run = None
    if out_dir is not None:
        out = Path(out_dir)
        fields = {"output_dir": str(out), "logging_dir": train_config.logging_dir or str(out / "logs")}
        if train_config.save_steps is None:
            fields["save_steps"] = train_config.steps_per_epoch
        train_config = dataclasses.replace(train_config, **fields)
        vocabulary = tokenizer.get_vocabulary()
        run_config = {"kind": "pretraining", "pretrain": dataclasses.asdict(config),
                      "train": {k: v for k, v in dataclasses.asdict(train_config).items()
                                if k not in ("output_dir", "logging_dir")},
                      "vocab_sha256": hashlib.sha256("\n".join(vocabulary).encode()).hexdigest()}
        run = RunDirectory.create(out, "pretraining", run_config, overwrite=overwrite, resume=resume)
        if not resume:
            save_vocabulary(vocabulary, run.vocab)  # before training, so a resumed run reads the same one
            run.write_json("pretrain_config", dataclasses.asdict(config))
    elif resume:
        raise ValueError("resume=True needs out_dir (the run to continue).")
    else:
        train_config = dataclasses.replace(train_config, save_steps=None)  # nowhere to keep checkpoints
    dtype = train_config.precision_policy

    def build():
        return build_pretrainer(tokenizer, config, dtype=dtype)

    def stream(start_step: int):
        data = pretraining_dataset(train_documents, tokenizer, seq_len=config.seq_len,
                                   batch_size=_global_batch(train_config), masking=config.masking,
                                   whole_word=config.whole_word, seed=train_config.seed,
                                   short_seq_prob=config.short_seq_prob, start_batch=start_step)
        return causal_lm_batches(data) if config.objective == "causal" else data

    model, history = train(build, stream, train_config, callbacks=callbacks, resume=resume, verbose=verbose,
                           history_file=run.history if run is not None else None)
    if run is not None:
        model.backbone.config.to_json(run.config_json)
        atomic_save_weights(model, run.pretrainer_weights)
        atomic_save_weights(model.backbone, run.backbone_weights)
        run.mark_finished()  # only now do the checkpoints go: a crash before this line resumes
    return model, history


def heldout_mlm_dataset(documents: Sequence, tokenizer, seq_len: int = 128, batch_size: int = 32,
                        max_batches: int | None = None, seed: int = 2024) -> tf.data.Dataset:
    """The fixed held-out MLM batches every scorer here uses (:func:`evaluate_mlm`, :func:`unigram_baseline`,
    :func:`evaluate_causal_lm`, :func:`bertcourse.training.mlm_baselines.count_baselines`): corpus order, one
    pass, BERT's 15% masks drawn from ``seed``. Same arguments, same masked positions, in any process."""
    data = pretraining_dataset(documents, tokenizer, seq_len=seq_len, batch_size=batch_size,
                               masking=MaskingConfig.for_length(seq_len), seed=seed, shuffle=False, repeat=False)
    if max_batches:
        data = data.take(max_batches)
    return data


def unmasked_token_ids(x: dict, y: dict, w: dict):
    """The original ``token_ids`` of an MLM batch: the labels written back at the masked positions
    (padded prediction slots, weight 0, are left alone). TensorFlow ops (a ``tf.data`` map or eager).

    >>> x = {"token_ids": tf.constant([[101, 103, 7, 102]]), "masked_positions": tf.constant([[1, 0]])}
    >>> unmasked_token_ids(x, {"mlm": tf.constant([[5, 0]])}, {"mlm": tf.constant([[1.0, 0.0]])}).numpy().tolist()
    [[101, 5, 7, 102]]
    """
    ids = tf.convert_to_tensor(x["token_ids"])
    positions = tf.cast(x["masked_positions"], tf.int32)
    real = tf.convert_to_tensor(w["mlm"]) > 0
    labels = tf.cast(y["mlm"], ids.dtype)
    restored = tf.where(real, labels, tf.gather(ids, positions, batch_dims=1))  # padded slots keep what is there
    rows = tf.broadcast_to(tf.range(tf.shape(ids)[0])[:, None], tf.shape(positions))
    return tf.tensor_scatter_nd_update(ids, tf.stack([rows, positions], axis=-1), restored)


def causal_lm_batches(data: tf.data.Dataset) -> tf.data.Dataset:
    """MLM batches -> next-token batches for :class:`~bertcourse.models.pretraining.CausalLMPretrainer`: the
    same sequences unmasked, ``y = {"lm": ids shifted left}``, ``w = {"lm": 1 where a next token exists}``
    (:func:`~bertcourse.models.pretraining.next_token_targets`)."""

    def convert(x, y, w):  # tf ops (a tf.data map, whatever the Keras backend): next_token_targets' rule
        ids = unmasked_token_ids(x, y, w)
        targets = tf.pad(ids[:, 1:], [[0, 0], [0, 1]])
        weights = tf.pad(tf.cast(x["padding_mask"][:, 1:], tf.float32), [[0, 0], [0, 1]])
        inputs = {"token_ids": ids, "segment_ids": x["segment_ids"], "padding_mask": x["padding_mask"]}
        return inputs, {"lm": targets}, {"lm": weights}

    return data.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def evaluate_mlm(model, documents: Sequence, tokenizer, seq_len: int = 128, batch_size: int = 32,
                 max_batches: int | None = None, seed: int = 2024) -> dict[str, float]:
    """MLM accuracy, loss and perplexity (+ NSP accuracy) on held-out documents, with fixed masks
    (:func:`heldout_mlm_dataset`). A causal model (``objective == "causal"``) is scored on the same masked
    positions by :func:`evaluate_causal_lm`."""
    if getattr(model, "objective", "mlm") == "causal":
        return evaluate_causal_lm(model, documents, tokenizer, seq_len=seq_len, batch_size=batch_size,
                                  max_batches=max_batches, seed=seed)
    data = heldout_mlm_dataset(documents, tokenizer, seq_len, batch_size, max_batches, seed)
    if not getattr(model, "compiled", False):  # a model loaded from files: its loss is built in, no optimizer needed
        model.compile()
    logs = model.evaluate(data, verbose=0, return_dict=True)
    return {k: float(v) for k, v in logs.items()}


def evaluate_causal_lm(model, documents: Sequence, tokenizer, seq_len: int = 128, batch_size: int = 32,
                       max_batches: int | None = None, seed: int = 2024) -> dict[str, float]:
    """A left-to-right model scored on :func:`evaluate_mlm`'s masked positions: the token at masked position
    ``i`` is predicted from the logits at ``i - 1`` of the UNMASKED sequence, i.e. from the clean tokens
    ``< i`` only (the MLM model instead sees both sides, with the other masked tokens corrupted).
    Returns ``mlm_accuracy``, ``mlm_loss``, ``mlm_perplexity`` (named as :func:`evaluate_mlm`'s, to compare)."""
    data = heldout_mlm_dataset(documents, tokenizer, seq_len, batch_size, max_batches, seed)

    @tf.function
    def score(x, y, w):
        ids = unmasked_token_ids(x, y, w)
        logits = model({"token_ids": ids, "segment_ids": x["segment_ids"], "padding_mask": x["padding_mask"]},
                       training=False)["lm"]                                    # [B, L, V]: row j scores token j+1
        previous = tf.maximum(tf.cast(x["masked_positions"], tf.int32) - 1, 0)  # masked positions are never 0
        logits = tf.cast(tf.gather(logits, previous, batch_dims=1), tf.float32)  # [B, P, V]
        labels = tf.cast(y["mlm"], tf.int32)
        weights = tf.cast(w["mlm"], tf.float32)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        hit = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
        return tf.reduce_sum(hit * weights), tf.reduce_sum(ce * weights), tf.reduce_sum(weights)

    correct = nll = total = 0.0
    for x, y, w in data:
        c, n, t = score(x, y, w)
        correct, nll, total = correct + float(c), nll + float(n), total + float(t)
    if not total:
        raise ValueError("No masked positions to score: the held-out documents are empty.")
    return {"mlm_accuracy": correct / total, "mlm_loss": nll / total, "mlm_perplexity": math.exp(nll / total)}


def unigram_baseline(train_documents: Sequence, heldout_documents: Sequence, tokenizer, seq_len: int = 128,
                     batch_size: int = 32, max_batches: int | None = None, seed: int = 2024) -> dict[str, float]:
    """The no-context baseline: predict every masked token from training-set token frequencies alone.

    Accuracy = how often the single most frequent token is right; perplexity = exp of the
    cross-entropy of the (add-one smoothed) unigram distribution, on the same masks as
    :func:`evaluate_mlm`.
    """
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
    data = heldout_mlm_dataset(heldout_documents, tokenizer, seq_len, batch_size, max_batches, seed)
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
