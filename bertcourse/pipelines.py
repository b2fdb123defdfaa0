"""Raw text in, answers out, as Hugging Face's ``pipeline(task, model=...)``: a thin registry from a task
name to its pipeline class in :mod:`bertcourse.tasks` (which holds all the logic).

==========================  ====================================  ===========================================
task name                   ``model=``                            output per input
==========================  ====================================  ===========================================
``"fill-mask"``             ``BertPretrainer`` (+ ``tokenizer=``)  ``[{"score", "token", "token_str", "sequence"}]``
                            or a pretraining run directory
``"feature-extraction"``    ``SentenceEncoder``, a published      ``[[token vectors]]`` (``pooled=True``: one
                            name (``"all-MiniLM-L6-v2"``) or a     sentence vector)
                            pretraining run directory
``"text-classification"``   ``BertClassifier`` with a             ``{"label", "score"}`` (``top_k``: a list)
(``"sentiment-analysis"``)  preprocessor, or a fine-tuning run
``"ner"``                   ``BertTokenClassifier`` with a        ``[{"entity_group", "score", "word", "start",
(``"token-classification"``) preprocessor, or a token-            "end"}]`` (``aggregation_strategy="none"``:
                            classification run                    per piece, ``"entity"`` and ``"index"``)
``"question-answering"``    ``BertQuestionAnswerer`` with a       ``{"score", "start", "end", "answer"}`` (``top_k``
                            preprocessor, or a question-          > 1: a list); ``question=``, ``context=``
                            answering run
==========================  ====================================  ===========================================

>>> from bertcourse.pipelines import pipeline, SUPPORTED_TASKS
>>> SUPPORTED_TASKS
('feature-extraction', 'fill-mask', 'ner', 'question-answering', 'sentiment-analysis', 'text-classification',
 'token-classification')
>>> try:
...     pipeline("translation", model=object())
... except ValueError as err:
...     print(err)
Unknown task 'translation'. Supported: feature-extraction, fill-mask, ner, question-answering,
sentiment-analysis, text-classification, token-classification.
>>> fill = pipeline("fill-mask", model=pretrainer, tokenizer=tok)   # doctest: +SKIP
>>> fill("It is a truth universally [MASK].")[0]                     # doctest: +SKIP
{'score': 0.41, 'token': 8969, 'token_str': 'acknowledged', 'sequence': 'it is a truth universally acknowledged.'}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bertcourse.errors import ModelLoadError
from bertcourse.pretrained import AVAILABLE, load_course_encoder, load_sentence_encoder
from bertcourse.tasks import TASK_ALIASES, TASKS, as_preprocessor
from bertcourse.training.run import RunDirectory

__all__ = ["pipeline", "SUPPORTED_TASKS"]

SUPPORTED_TASKS = tuple(sorted(TASKS))


def _attach_preprocessor(task_name: str, model: Any, preprocessor: Any) -> None:
    if preprocessor is None:
        return
    current = getattr(model, "preprocessor", None)
    if current is not None and current is not preprocessor:
        raise ValueError(f"pipeline({task_name!r}): the model already has a preprocessor; pass tokenizer= or "
                         f"preprocessor= only for a model built without one.")
    sequence_length = min(512, model.backbone.config.max_position_embeddings)
    model.preprocessor = as_preprocessor(preprocessor, sequence_length=sequence_length)


def _load(name: str, task: str, model: str | os.PathLike) -> tuple[Any, Any]:
    """``(model, tokenizer or None)`` from a published model name or a run directory."""
    path = Path(model)
    if name == "feature-extraction":
        if path.is_dir():
            return load_course_encoder(path), None
        return load_sentence_encoder(str(model)), None
    if not path.is_dir():
        raise ModelLoadError(f"pipeline({task!r}, model={str(model)!r}): no such run directory. A model name "
                             f"works for feature-extraction ({sorted(AVAILABLE)}); otherwise pass a run "
                             f"directory or the model object.")
    run = RunDirectory(path)
    if name == "fill-mask":
        return run.load_pretrainer()
    return run.load_task(), None


def pipeline(task: str, model: Any = None, tokenizer: Any = None, preprocessor: Any = None, **kwargs: Any):
    """The pipeline for ``task`` (one of ``SUPPORTED_TASKS``) around ``model``.

    ``model``: the task's model object, or a path: a run directory (``bertcourse pretrain``/``finetune``
    ``--out``: its pretrainer for fill-mask, its fine-tuned classifier for text-classification, its
    encoder for feature-extraction), or for feature-extraction a published name (``"all-MiniLM-L6-v2"``).
    Nothing is downloaded.
    ``tokenizer=``/``preprocessor=`` (a :class:`~bertcourse.text.BertPreprocessor` or a tokenizer): what
    turns text into ids; needed for fill-mask, and for a task model built without a preprocessor.
    ``kwargs`` go to the pipeline class (``top_k``, ``batch_size``...).
    """
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}. Supported: {', '.join(SUPPORTED_TASKS)}.")
    name = TASK_ALIASES.get(task, task)
    if tokenizer is not None and preprocessor is not None:
        raise ValueError(f"pipeline({task!r}): pass tokenizer= or preprocessor=, not both.")
    text_to_ids = preprocessor if preprocessor is not None else tokenizer
    if model is None:
        needs = {"fill-mask": "a BertPretrainer or a pretraining run directory",
                 "feature-extraction": f"a SentenceEncoder, a run directory or one of {sorted(AVAILABLE)}",
                 "text-classification": "a BertClassifier with a preprocessor or a fine-tuning run directory",
                 "ner": "a BertTokenClassifier with a preprocessor or a token-classification run directory",
                 "question-answering": "a BertQuestionAnswerer with a preprocessor or a question-answering run "
                                       "directory"}
        raise ModelLoadError(f"pipeline({task!r}) needs model=...: {needs[name]} (nothing is downloaded).")
    if isinstance(model, (str, os.PathLike)):
        model, tokenizer_of_run = _load(name, task, model)
        if text_to_ids is None:
            text_to_ids = tokenizer_of_run
    if name == "fill-mask":
        if text_to_ids is None:
            raise ModelLoadError("pipeline('fill-mask') needs tokenizer=... (or preprocessor=...) with the model's "
                                 "vocabulary.")
        return TASKS[name](model, preprocessor=text_to_ids, **kwargs)
    _attach_preprocessor(task, model, text_to_ids)
    return TASKS[name](model, **kwargs)
