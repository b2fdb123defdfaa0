"""Fine-tune a ``BertQuestionAnswerer`` on SQuAD examples -> a ``"question-answering"`` run directory (lesson 11).

The same shape as :func:`bertcourse.training.finetune.finetune_classifier`: examples become windows with
start/end labels in :func:`bertcourse.tasks.question_answering.qa_training_features`, the loss is
Hugging Face's (the mean of the start and end cross-entropies over the window's positions), training is
the engine's :func:`~bertcourse.training.loop.train` (step-indexed shuffled batches, exact resume), and
the run holds ``task.json`` (``sequence_length``, ``lowercase``, ``doc_stride``, ``max_query_length``,
``max_answer_len``), ``config.json``, ``vocab.txt`` and ``model.weights.h5``;
:meth:`~bertcourse.training.run.RunDirectory.load_task` rebuilds the model.

>>> import tempfile
>>> from bertcourse.data.squad import QAExample, SquadAnswer
>>> from bertcourse.models import BertBackbone
>>> from bertcourse.text import WordPieceTokenizer
>>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "where", "is", "bath", "in", "england"])
>>> ex = QAExample("q1", "where is bath", "bath is in england", (SquadAnswer("england", 11),))
>>> out = tempfile.mkdtemp() + "/qa"
>>> model, metrics = finetune_question_answerer(lambda: BertBackbone("tiny", vocab_size=10), tok, [ex] * 4, out,
...                                             seq_len=16, doc_stride=4, batch_size=2, epochs=1, verbose=0)
>>> metrics["train_windows"], metrics["steps_per_epoch"]
(4, 2)
>>> from bertcourse.training.run import RunDirectory
>>> RunDirectory(out).load_task().doc_stride
4
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from bertcourse.data.squad import QAExample
from bertcourse.tasks.base import as_preprocessor
from bertcourse.tasks.question_answering import BertQuestionAnswerer, qa_training_features, squad_metrics
from bertcourse.text import save_vocabulary
from bertcourse.training.finetune import epoch_plan, task_run_config
from bertcourse.training.loop import TrainConfig, train as train_loop
from bertcourse.training.run import RunDirectory, atomic_save_weights
from bertcourse.training.streams import shuffled_batches

__all__ = ["finetune_question_answerer", "span_loss"]


def span_loss() -> dict[str, Any]:
    """``compile`` arguments: sparse cross-entropy on the start and on the end logits, weighted 1/2 each
    (Hugging Face's ``(start_loss + end_loss) / 2``)."""
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return {"loss": {"start_logits": ce, "end_logits": ce},
            "loss_weights": {"start_logits": 0.5, "end_logits": 0.5}}


def _fingerprint(examples: Sequence[QAExample]) -> str:
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps([ex.id, ex.question, ex.context, [(a.text, a.start) for a in ex.answers]]).encode())
    return digest.hexdigest()


def finetune_question_answerer(backbone_fn, tokenizer, train: Sequence[QAExample], out_dir: str | Path,
                               validation: Sequence[QAExample] | None = None, seq_len: int = 384,
                               doc_stride: int = 128, max_query_length: int = 64, max_answer_len: int = 15,
                               batch_size: int = 32, epochs: int = 2, max_steps: int | None = None,
                               learning_rate: float = 5e-5, warmup_ratio: float = 0.1, weight_decay: float = 0.01,
                               bf16: bool = False, seed: int = 42, save_steps: int | None = None,
                               resume: bool = False, overwrite: bool = False, callbacks: Sequence = (),
                               verbose: int | str = "auto",
                               source: dict[str, Any] | None = None) -> tuple[BertQuestionAnswerer, dict]:
    """Fine-tune ``BertQuestionAnswerer(backbone_fn(), ...)`` on ``train`` and write a ``"question-answering"``
    run in ``out_dir``; returns ``(model, metrics)``.

    ``backbone_fn()`` is called after the precision policy and the seeds are set. ``tokenizer``: the
    backbone's WordPiece tokenizer (or a ``BertPreprocessor``). Every window of every example is a training
    row (a window without the whole answer learns "[CLS]"). With ``validation`` the metrics hold the
    official EM/F1 of the final model on it (:func:`~bertcourse.tasks.question_answering.squad_metrics`).
    ``save_steps``/``resume``: checkpoints and exact resume, as the classifier's fine-tuning.
    """
    train = list(train)
    if not train:
        raise ValueError("finetune_question_answerer needs at least one training example.")
    preprocessor = as_preprocessor(tokenizer, sequence_length=seq_len, truncation="only_second")
    vocabulary = preprocessor.tokenizer.get_vocabulary()
    lowercase = bool(getattr(tokenizer, "lowercase", getattr(preprocessor.tokenizer, "lowercase", True)))
    features, starts, ends = qa_training_features(preprocessor, train, max_seq_length=seq_len, doc_stride=doc_stride,
                                                  max_query_length=max_query_length)
    global_batch, steps_per_epoch, max_steps = epoch_plan(len(features), batch_size, max_steps)
    out = Path(out_dir)
    config = TrainConfig(output_dir=str(out), learning_rate=learning_rate, per_device_train_batch_size=batch_size,
                         num_train_epochs=epochs, max_steps=max_steps, warmup_ratio=warmup_ratio,
                         weight_decay=weight_decay, bf16=bf16, seed=seed, steps_per_epoch=steps_per_epoch,
                         eval_strategy="no", save_steps=save_steps, logging_dir=str(out / "logs"))
    task = {"task": BertQuestionAnswerer.RUN_KIND, "sequence_length": seq_len, "lowercase": lowercase,
            "truncation": "only_second", "doc_stride": doc_stride, "max_query_length": max_query_length,
            "max_answer_len": max_answer_len}
    run_config = task_run_config(BertQuestionAnswerer.RUN_KIND, task, config, vocabulary, source,
                                 train_data_sha256=_fingerprint(train))
    run = RunDirectory.create(out, BertQuestionAnswerer.RUN_KIND, run_config, overwrite=overwrite, resume=resume)
    labels = {"start_logits": starts, "end_logits": ends}
    stream = lambda start_step: shuffled_batches(features.inputs, labels, batch_size=global_batch,  # noqa: E731
                                                 seed=seed, start_step=start_step)

    def build():
        model = BertQuestionAnswerer(backbone_fn(), preprocessor=preprocessor, doc_stride=doc_stride,
                                     max_query_length=max_query_length, max_answer_len=max_answer_len)
        model.backbone.pooler.trainable = False   # the pooler feeds no span score (no gradient-less warning)
        return model

    model, history = train_loop(build, stream, config, compile_kwargs=span_loss(), callbacks=callbacks,
                                resume=resume, verbose=verbose, history_file=run.history)
    metrics: dict = {"history": history, "train_examples": len(train), "train_windows": len(features),
                     "windows_with_answer": int(np.count_nonzero(starts)), "steps_per_epoch": steps_per_epoch}
    if validation:
        predictions, _ = model.predict_answers(validation, batch_size=global_batch)
        metrics["validation"] = squad_metrics(predictions, validation)
    model.backbone.config.to_json(run.config_json)
    save_vocabulary(vocabulary, run.vocab)
    run.write_json("task_config", task)
    run.write_json("metrics", metrics)
    atomic_save_weights(model, run.model_weights)
    run.mark_finished()
    return model, metrics
