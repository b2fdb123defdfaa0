"""Data: the shipped corpora, NSP pairs, MLM masking, the pretraining pipeline, labelled text files.

Importing the package imports TensorFlow (masking and the pipeline are TensorFlow ops); call
``bertcourse.course.import_tensorflow_quietly()`` first to keep its start-up lines off stderr.

=====================  ===========================================================================
``corpora``            the plain-text corpora shipped in ``data/`` (documents of sentences)
``bible``              the KJV / WEB verse pairs (lesson 12)
``nsp``                documents of token ids -> NSP pairs (``create_nsp_pairs``, ``truncate_pair``)
``masking``            the 15% / 80-10-10 rule: ``mask_tokens_reference`` (NumPy), ``mask_tokens``
                       (graph), ``num_predictions``, ``MaskingConfig``
``pipeline``           ``pretraining_dataset`` (a seeded stream), static TFRecords, ``pack_pairs``
``labelled``           ``read_labelled_texts``: TSV/CSV files for fine-tuning, read strictly
=====================  ===========================================================================

>>> from bertcourse.data import LabelledTexts, NspPair
>>> NspPair([5, 6], [7], is_random_next=False).label, len(LabelledTexts(["a", "b"], ["x", "y"]))
(0, 2)
"""

from bertcourse.data.labelled import DIALECTS, LabelledTexts, check_training_labels, read_labelled_texts
from bertcourse.data.masking import (MaskingConfig, mask_tokens, mask_tokens_reference, num_predictions,
                                     whole_word_starts)
from bertcourse.data.nsp import NspPair, create_nsp_pairs, pairs_from_document, tokenize_documents, truncate_pair
from bertcourse.data.pipeline import (nsp_pair_dataset, pack_pair, pack_pairs, pretraining_dataset,
                                      read_static_tfrecords, write_static_tfrecords)

__all__ = ["NspPair", "truncate_pair", "create_nsp_pairs", "pairs_from_document", "tokenize_documents",
           "MaskingConfig", "num_predictions", "whole_word_starts", "mask_tokens", "mask_tokens_reference",
           "pack_pair", "pack_pairs", "nsp_pair_dataset", "pretraining_dataset", "write_static_tfrecords",
           "read_static_tfrecords", "LabelledTexts", "read_labelled_texts", "check_training_labels", "DIALECTS"]
