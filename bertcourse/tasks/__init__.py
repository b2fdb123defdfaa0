"""Tasks: one module per task, each a :class:`Task` (backbone + preprocessor + head) with its
decoding, its metric and its pipeline (the contract is written in :mod:`bertcourse.tasks.base`).

* ``tasks.classification``: ``BertClassifier`` -> ``"text-classification"`` (alias ``"sentiment-analysis"``)
* ``tasks.feature_extraction``: ``SentenceEncoder`` -> ``"feature-extraction"``
* ``tasks.fill_mask``: a ``BertPretrainer`` (``bertcourse.models``) -> ``"fill-mask"``
* ``tasks.token_classification``: ``BertTokenClassifier`` -> ``"ner"`` (alias ``"token-classification"``)
* ``tasks.question_answering``: ``BertQuestionAnswerer`` -> ``"question-answering"``

The fill-mask core function is ``bertcourse.tasks.fill_mask.fill_mask`` (not re-exported here: the name
would hide its module).

``TASKS`` maps each pipeline name (aliases included) to its pipeline class; ``TASK_ALIASES`` maps an
alias to its canonical name.

>>> sorted(TASKS)
['feature-extraction', 'fill-mask', 'ner', 'question-answering', 'sentiment-analysis', 'text-classification',
 'token-classification']
>>> TASKS["sentiment-analysis"] is TASKS["text-classification"] is TextClassificationPipeline
True
"""

from bertcourse.tasks.base import (Task, TaskPipeline, as_preprocessor, as_text_batch, encode_texts, is_raw_text,
                                   trim_padding)
from bertcourse.tasks.classification import (BertClassifier, TextClassificationPipeline, classification_metrics,
                                             classify_long, label_map, regression_metrics)
from bertcourse.tasks.feature_extraction import (POOLING_MODES, FeatureExtractionPipeline, SentenceEncoder,
                                                 cosine_similarity)
from bertcourse.tasks.fill_mask import FillMaskPipeline, decode_tokens, masked_accuracy
from bertcourse.tasks.token_classification import (BertTokenClassifier, TokenClassificationPipeline,
                                                   entity_metrics)
from bertcourse.tasks.question_answering import BertQuestionAnswerer, QuestionAnsweringPipeline, squad_metrics

__all__ = ["Task", "TaskPipeline", "as_preprocessor", "as_text_batch", "encode_texts", "is_raw_text", "trim_padding",
           "BertClassifier", "TextClassificationPipeline", "classification_metrics", "label_map",
           "regression_metrics", "classify_long",
           "SentenceEncoder", "FeatureExtractionPipeline", "POOLING_MODES", "cosine_similarity",
           "FillMaskPipeline", "decode_tokens", "masked_accuracy", "TASKS", "TASK_ALIASES", "RUN_TASKS",
           "BertTokenClassifier", "TokenClassificationPipeline", "entity_metrics",
           "BertQuestionAnswerer", "QuestionAnsweringPipeline", "squad_metrics"]

TASK_ALIASES = {"sentiment-analysis": "text-classification", "token-classification": "ner"}
TASKS = {
    "fill-mask": FillMaskPipeline,
    "feature-extraction": FeatureExtractionPipeline,
    "text-classification": TextClassificationPipeline,
    "ner": TokenClassificationPipeline,
    "question-answering": QuestionAnsweringPipeline,
}
TASKS.update({alias: TASKS[name] for alias, name in TASK_ALIASES.items()})
# Tasks a fine-tuning run can hold: the run's kind (run.json) -> the task class that rebuilds itself from
# the run's task.json (``from_run_settings``); bertcourse.training.run.KINDS is "pretraining" + these.
RUN_TASKS = {
    BertClassifier.RUN_KIND: BertClassifier,
    BertTokenClassifier.RUN_KIND: BertTokenClassifier,
    BertQuestionAnswerer.RUN_KIND: BertQuestionAnswerer,
}
