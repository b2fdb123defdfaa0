"""Fine-tune a ``BertTokenClassifier`` on CoNLL-column data (named entities: lesson 10, ``bench/ner.py``).

The same path as :func:`~bertcourse.training.finetune.finetune_classifier`: the files are
:class:`~bertcourse.data.conll.ConllData`; words and tags become pieces and piece labels in
:func:`~bertcourse.tasks.token_classification.encode_tagged` (first piece labelled, others ``-100``);
training is the engine's :func:`~bertcourse.training.loop.train` (exact resume); with validation data the
epoch with the best validation entity F1 (``val_entity_f1``, :class:`~bertcourse.tasks.token_classification.EntityF1`)
is kept; the result is a ``"token-classification"`` :class:`~bertcourse.training.run.RunDirectory` that
``load_task()`` rebuilds.

>>> import tempfile
>>> from bertcourse.data.conll import ConllData
>>> from bertcourse.models import BertBackbone
>>> from bertcourse.text import WordPieceTokenizer
>>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "jane", "lives", "in", "bath"])
>>> data = ConllData([["Jane", "lives", "in", "Bath"]] * 8, [["B-person", "O", "O", "B-location"]] * 8)
>>> out = tempfile.mkdtemp() + "/ner"
>>> model, metrics = finetune_token_classifier(lambda: BertBackbone("tiny", vocab_size=9), tok, data, out,
...                                            validation=data, seq_len=8, batch_size=4, epochs=1, verbose=0)
restored the best weights: epoch 1, val_entity_f1 = ...
>>> metrics["labels"], metrics["steps_per_epoch"], sorted(metrics["validation"])[:3]
(['O', 'B-location', 'I-location', 'B-person', 'I-person'], 2, ['correct', 'f1', 'per_type'])
>>> from bertcourse.training.run import RunDirectory
>>> reloaded = RunDirectory(out).load_task()
>>> import numpy as np
>>> x = {"token_ids": np.array([[2, 5, 6, 7, 8, 3]]), "segment_ids": np.zeros((1, 6), "int32"),
...      "padding_mask": np.ones((1, 6), "int32")}
>>> bool(abs(reloaded.predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 1e-6)
True
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import keras
import tensorflow as tf

from bertcourse.data.conll import ConllData
from bertcourse.errors import DataFileError
from bertcourse.tasks.base import as_preprocessor
from bertcourse.tasks.token_classification import (IGNORE_INDEX, BertTokenClassifier, EntityF1, check_tags,
                                                   encode_tagged, entity_metrics, predict_word_tags)
from bertcourse.text import save_vocabulary
from bertcourse.training.finetune import epoch_plan, task_run_config
from bertcourse.training.loop import TrainConfig, train as train_loop
from bertcourse.training.run import RunDirectory, atomic_save_weights
from bertcourse.training.streams import shuffled_batches, trim_to_longest

__all__ = ["finetune_token_classifier", "token_loss", "trim_batch"]


def token_loss() -> keras.losses.Loss:
    """Cross-entropy over the labelled pieces only: ``-100`` pieces are left out, and the mean is over the
    labelled pieces (``ignore_class``), as Hugging Face's ``BertForTokenClassification`` loss."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE_INDEX)


def trim_batch(inputs: dict, labels: tf.Tensor) -> tuple[dict, tf.Tensor]:
    """Cut a padded batch to its longest row, labels included (tweets are short: the padding is most of a
    fixed-length batch); :func:`~bertcourse.training.streams.trim_to_longest` with per-position labels."""
    return trim_to_longest(inputs, labels, trim_labels=True)


def _fingerprint(data: ConllData) -> str:
    digest = hashlib.sha256()
    for row in zip(data.sentences, data.tags):
        digest.update(json.dumps(row).encode())
    return digest.hexdigest()


def finetune_token_classifier(backbone_fn, tokenizer, train: ConllData, out_dir: str | Path,
                              validation: ConllData | None = None, labels: Sequence[str] | None = None,
                              seq_len: int = 128, batch_size: int = 32, epochs: int = 3, max_steps: int | None = None,
                              learning_rate: float = 5e-5, warmup_ratio: float = 0.1, weight_decay: float = 0.01,
                              dropout: float = 0.1, label_all_pieces: bool = False, bf16: bool = False,
                              seed: int = 42, save_steps: int | None = None, resume: bool = False,
                              overwrite: bool = False, callbacks: Sequence = (), verbose: int | str = "auto",
                              source: dict[str, Any] | None = None) -> tuple[BertTokenClassifier, dict]:
    """Fine-tune ``BertTokenClassifier(backbone_fn(), labels)`` on ``train`` and write a
    ``"token-classification"`` run in ``out_dir``; returns ``(model, metrics)``.

    ``labels``: the label list in id order (default: ``train.label_list``: ``O`` then B-/I- of each type);
    a tag of ``train`` or ``validation`` outside it is a :class:`DataFileError`. ``seq_len``: pieces per
    training example, ``[CLS]``/``[SEP]`` included (a longer sentence loses its last words in training;
    prediction windows instead). Each epoch reshuffles from ``(seed, epoch)``; ``save_steps``/``resume``
    as for classification. ``metrics["validation"]``: :func:`entity_metrics` of the kept model on
    ``validation`` at word level (windows, nothing cut).
    """
    labels = list(labels) if labels is not None else train.label_list
    check_tags(train.tags, labels, what=train.source or "training data")
    if validation is not None:
        check_tags(validation.tags, labels, what=validation.source or "validation data")
    if len(train) == 0:
        raise DataFileError("No training sentences.")
    preprocessor = as_preprocessor(tokenizer, sequence_length=seq_len)
    vocabulary = preprocessor.tokenizer.get_vocabulary()
    lowercase = bool(getattr(tokenizer, "lowercase", getattr(preprocessor.tokenizer, "lowercase", True)))
    train_x, train_y, _ = encode_tagged(preprocessor, train.sentences, train.tags, labels, seq_len,
                                        label_all_pieces=label_all_pieces)
    valid = None
    if validation is not None:
        valid_x, valid_y, _ = encode_tagged(preprocessor, validation.sentences, validation.tags, labels, seq_len)
    global_batch, steps_per_epoch, max_steps = epoch_plan(len(train), batch_size, max_steps)
    if validation is not None:
        valid = tf.data.Dataset.from_tensor_slices((valid_x, valid_y)).batch(global_batch).map(trim_batch)
    out = Path(out_dir)
    config = TrainConfig(output_dir=str(out), learning_rate=learning_rate, per_device_train_batch_size=batch_size,
                         num_train_epochs=epochs, max_steps=max_steps, warmup_ratio=warmup_ratio,
                         weight_decay=weight_decay, bf16=bf16, seed=seed, steps_per_epoch=steps_per_epoch,
                         eval_strategy="epoch" if validation is not None else "no",
                         load_best_model_at_end=validation is not None, metric_for_best_model="val_entity_f1",
                         greater_is_better=True, save_steps=save_steps, logging_dir=str(out / "logs"))
    task = {"task": BertTokenClassifier.RUN_KIND, "labels": labels, "sequence_length": seq_len, "dropout": dropout,
            "lowercase": lowercase, "label_all_pieces": label_all_pieces}
    run_config = task_run_config(BertTokenClassifier.RUN_KIND, task, config, vocabulary, source,
                                 train_data_sha256=_fingerprint(train),
                                 validation_data_sha256=_fingerprint(validation) if validation is not None else None)
    run = RunDirectory.create(out, BertTokenClassifier.RUN_KIND, run_config, overwrite=overwrite, resume=resume)
    stream = lambda start_step: shuffled_batches(train_x, train_y, batch_size=global_batch,  # noqa: E731
                                                 seed=seed, start_step=start_step).map(trim_batch)

    def build():
        return BertTokenClassifier(backbone_fn(), labels=labels, preprocessor=preprocessor, dropout=dropout)

    model, history = train_loop(build, stream, config, validation_data=valid,
                                compile_kwargs={"loss": token_loss(), "metrics": [EntityF1(labels)]},
                                callbacks=callbacks, resume=resume, verbose=verbose, history_file=run.history)
    metrics: dict = {"history": history, "labels": labels, "train_sentences": len(train),
                     "steps_per_epoch": steps_per_epoch}
    if validation is not None:
        predicted = predict_word_tags(model, validation.sentences, batch_size=global_batch)
        metrics["validation"] = entity_metrics(validation.tags, predicted)
    model.backbone.config.to_json(run.config_json)
    save_vocabulary(vocabulary, run.vocab)
    run.write_json("task_config", task)
    run.write_json("metrics", metrics)
    atomic_save_weights(model, run.model_weights)
    run.mark_finished()
    return model, metrics
