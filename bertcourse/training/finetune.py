"""Fine-tune a ``BertClassifier`` on labelled text files (``bertcourse finetune``; lessons 08-09).

Single texts or pairs (``LabelledTexts.texts_b``), classes (labels as written) or, with
``problem_type="regression"``, a real-valued score per text or pair (labels are numbers, e.g. STS-B's
0-5 similarity; MSE loss; Pearson/Spearman on the validation set; the best epoch by validation loss).

The pieces live where they belong: the files are read by :func:`bertcourse.data.labelled.read_labelled_texts`
(strict; labels kept as written), text becomes model inputs in the classifier's
:class:`~bertcourse.text.BertPreprocessor`, the model, its label order and its metrics are
:mod:`bertcourse.tasks.classification`; training is the engine's :func:`~bertcourse.training.loop.train`
(exact resume at any step); the result is a :class:`~bertcourse.training.run.RunDirectory` of kind
``"classification"`` that :meth:`~bertcourse.training.run.RunDirectory.load_task` reloads.

>>> from bertcourse.data.labelled import LabelledTexts
>>> from bertcourse.models import BertBackbone
>>> from bertcourse.text import WordPieceTokenizer
>>> import tempfile
>>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"])
>>> data = LabelledTexts(["good film", "bad film"] * 4, ["pos", "neg"] * 4)
>>> out = tempfile.mkdtemp() + "/clf"
>>> model, metrics = finetune_classifier(lambda: BertBackbone("tiny", vocab_size=8), tok, data, out,
...                                      seq_len=8, batch_size=4, epochs=1, verbose=0)
>>> metrics["labels"], metrics["steps_per_epoch"]
({'neg': 0, 'pos': 1}, 2)
>>> from bertcourse.training.run import RunDirectory
>>> reloaded = RunDirectory(out).load_task()
>>> bool(abs(reloaded.predict(["good film"], verbose=0) - model.predict(["good film"], verbose=0)).max() < 1e-6)
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from bertcourse.data.labelled import LabelledTexts, check_training_labels
from bertcourse.errors import DataFileError
from bertcourse.tasks.base import as_preprocessor, encode_texts
from bertcourse.tasks.classification import (PROBLEM_TYPES, BertClassifier, classification_metrics, label_map,
                                             regression_metrics)
from bertcourse.text import save_vocabulary
from bertcourse.training.loop import TrainConfig, train as train_loop
from bertcourse.training.run import RunDirectory, atomic_save_weights
from bertcourse.training.streams import shuffled_batches, trim_to_longest

__all__ = ["finetune_classifier", "encode_labelled", "epoch_plan", "task_run_config", "numeric_labels"]


def numeric_labels(data: LabelledTexts) -> np.ndarray:
    """The labels of ``data`` as float32 scores (regression); a label that is not a number is a
    ``DataFileError`` naming the file and the example."""
    values = []
    for i, label in enumerate(data.labels):
        try:
            value = float(label)
        except ValueError:
            value = float("nan")
        if not np.isfinite(value):
            raise DataFileError(f"{data.source or 'data'}: label {label!r} of example {i + 1} is not a finite number; "
                                "regression needs a numeric score in the label column.")
        values.append(value)
    return np.asarray(values, np.float32)


def encode_labelled(data: LabelledTexts, preprocessor, labels: dict[str, int] | None) -> tuple[dict, np.ndarray]:
    """``(inputs, targets)``: :func:`bertcourse.tasks.base.encode_texts` of the texts (pairs when
    ``data.texts_b``) and the class ids of ``data.labels`` under ``labels`` (``None``: regression, the
    labels as float32 scores ``[n, 1]``)."""
    inputs = encode_texts(preprocessor, data.texts, data.texts_b)
    if labels is None:
        return inputs, numeric_labels(data)[:, None]
    return inputs, np.array([labels[label] for label in data.labels], "int32")


def _fingerprint(data: LabelledTexts) -> str:
    digest = hashlib.sha256()
    for row in zip(data.texts, data.labels, data.texts_b or [""] * len(data)):
        digest.update(json.dumps(row).encode())
    return digest.hexdigest()


def epoch_plan(num_examples: int, batch_size: int, max_steps: int | None = None) -> tuple[int, int, int | None]:
    """``(global_batch, steps_per_epoch, max_steps)`` for a fine-tuning run: the batch over all replicas,
    whole batches per epoch (at least 1), and ``max_steps`` rounded up to whole epochs (an epoch is
    capped at ``max_steps``). Shared by every task's fine-tuning function.

    >>> epoch_plan(100, 32), epoch_plan(100, 32, max_steps=5)
    ((32, 3, None), (32, 3, 6))
    """
    global_batch = batch_size * tf.distribute.get_strategy().num_replicas_in_sync
    steps_per_epoch = max(1, num_examples // global_batch)
    if max_steps is not None:
        steps_per_epoch = min(steps_per_epoch, max_steps)
        max_steps = -(-max_steps // steps_per_epoch) * steps_per_epoch  # whole epochs
    return global_batch, steps_per_epoch, max_steps


def task_run_config(kind: str, task: dict, config: TrainConfig, vocabulary: Sequence[str],
                    source: dict[str, Any] | None, **data_sha256: str | None) -> dict[str, Any]:
    """The configuration a task run records (its sha256 decides whether ``--resume`` may continue it): the
    task settings, the training settings (minus paths and the checkpoint interval), the data and
    vocabulary fingerprints (``train_data_sha256=...``, ``validation_data_sha256=...``), the source."""
    return {"kind": kind, "task": task,
            "train": {k: v for k, v in dataclasses.asdict(config).items()
                      if k not in ("output_dir", "logging_dir", "save_steps")},
            **data_sha256,
            "vocab_sha256": hashlib.sha256("\n".join(vocabulary).encode()).hexdigest(),
            "source": source or {}}


def finetune_classifier(backbone_fn, tokenizer, train: LabelledTexts, out_dir: str | Path,
                        validation: LabelledTexts | None = None, seq_len: int = 128, batch_size: int = 32,
                        epochs: int = 3, max_steps: int | None = None, learning_rate: float = 5e-5,
                        warmup_ratio: float = 0.1, weight_decay: float = 0.01, dropout: float = 0.1,
                        bf16: bool = False, seed: int = 42, save_steps: int | None = None, resume: bool = False,
                        overwrite: bool = False, callbacks: Sequence = (), verbose: int | str = "auto",
                        source: dict[str, Any] | None = None,
                        problem_type: str = "single_label_classification") -> tuple[BertClassifier, dict]:
    """Fine-tune ``BertClassifier(backbone_fn(), ...)`` and write it as a ``"classification"`` run in ``out_dir``.

    ``backbone_fn()`` builds (or returns the already loaded) backbone; it is called after the precision
    policy and the seeds are set. ``tokenizer``: a WordPiece tokenizer (or a ``BertPreprocessor``) of that
    backbone. Each epoch reshuffles the training set from ``(seed, epoch)``; with ``validation`` the best
    epoch by validation accuracy is kept. ``save_steps``: a checkpoint every N batches; ``resume=True``
    continues the interrupted run in ``out_dir`` exactly (same final weights as without the interruption).
    ``source``: what the encoder came from (recorded in the run's configuration). ``problem_type="regression"``:
    numeric labels, one output (its bias starts at the mean training score), MSE; validation metrics
    Pearson/Spearman; best epoch by validation loss.

    Writes ``run.json``, ``config.json``, ``vocab.txt``, ``task.json`` (labels, sequence length),
    ``model.weights.h5``, ``history.json``, ``metrics.json`` (and ``checkpoints/`` until the end, TensorBoard
    ``logs/``); returns ``(classifier, metrics)``.
    """
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}.")
    regression = problem_type == "regression"
    if regression:
        for data in (train, validation):
            if data is not None:
                numeric_labels(data)
        labels, class_names = None, None
    else:
        check_training_labels(train)
        labels = label_map(train.labels)
        class_names = sorted(labels, key=labels.get)
    unknown = sorted(set(validation.labels) - set(labels)) if validation is not None and not regression else []
    if unknown:
        raise DataFileError(f"{validation.source or 'validation data'}: labels {unknown[:5]} never occur in the "
                            f"training file (labels: {class_names}).")
    if validation is not None and (validation.texts_b is None) != (train.texts_b is None):
        raise DataFileError("The training and validation files must both have a text_b column, or neither.")
    preprocessor = as_preprocessor(tokenizer, sequence_length=seq_len)
    vocabulary = preprocessor.tokenizer.get_vocabulary()
    lowercase = bool(getattr(tokenizer, "lowercase", getattr(preprocessor.tokenizer, "lowercase", True)))
    train_x, train_y = encode_labelled(train, preprocessor, labels)
    valid_x = valid_y = None
    if validation is not None:
        valid_x, valid_y = encode_labelled(validation, preprocessor, labels)

    global_batch, steps_per_epoch, max_steps = epoch_plan(len(train), batch_size, max_steps)
    out = Path(out_dir)
    config = TrainConfig(output_dir=str(out), learning_rate=learning_rate, per_device_train_batch_size=batch_size,
                         num_train_epochs=epochs, max_steps=max_steps, warmup_ratio=warmup_ratio,
                         weight_decay=weight_decay, bf16=bf16, seed=seed, steps_per_epoch=steps_per_epoch,
                         eval_strategy="epoch" if validation is not None else "no",
                         load_best_model_at_end=validation is not None,
                         metric_for_best_model="val_loss" if regression else "val_accuracy",
                         greater_is_better=not regression, save_steps=save_steps, logging_dir=str(out / "logs"))
    task = {"task": "classification", "labels": class_names, "sequence_length": seq_len, "dropout": dropout,
            "lowercase": lowercase, "pairs": train.texts_b is not None, "problem_type": problem_type}
    if regression:
        task["num_outputs"] = 1
    run_config = task_run_config("classification", task, config, vocabulary, source,
                                 train_data_sha256=_fingerprint(train),
                                 validation_data_sha256=_fingerprint(validation) if validation is not None else None)
    run = RunDirectory.create(out, "classification", run_config, overwrite=overwrite, resume=resume)
    # the engine sees a step-indexed stream: batch N is the same in any process, resumed or not
    stream = lambda start_step: shuffled_batches(train_x, train_y, batch_size=global_batch,  # noqa: E731
                                                 seed=seed, start_step=start_step).map(trim_to_longest)
    valid = tf.data.Dataset.from_tensor_slices((valid_x, valid_y)).batch(global_batch).map(trim_to_longest) \
        if validation is not None else None

    def build():
        model = BertClassifier(backbone_fn(), num_classes=1 if regression else len(labels), preprocessor=preprocessor,
                               dropout=dropout, labels=class_names, problem_type=problem_type)
        if regression:  # start at the mean score: the first updates then learn the signal, not the offset
            model.output_dense.bias.assign(np.full((1,), float(train_y.mean()), np.float32))
        return model

    model, history = train_loop(build, stream, config, validation_data=valid,
                                compile_kwargs=BertClassifier.loss_and_metrics(problem_type),
                                callbacks=callbacks, resume=resume, verbose=verbose, history_file=run.history)
    metrics: dict = {"history": history, "labels": labels, "train_examples": len(train),
                     "steps_per_epoch": steps_per_epoch, "problem_type": problem_type}
    if validation is not None:
        outputs = model.predict(valid_x, batch_size=global_batch, verbose=0)
        metrics["validation"] = regression_metrics(valid_y, outputs) if regression \
            else classification_metrics(valid_y, outputs.argmax(-1), len(labels))
    model.backbone.config.to_json(run.config_json)
    save_vocabulary(vocabulary, run.vocab)
    run.write_json("task_config", task)
    run.write_json("metrics", metrics)
    atomic_save_weights(model, run.model_weights)
    run.mark_finished()  # only now do the checkpoints go: a crash before this line leaves a resumable run
    return model, metrics
