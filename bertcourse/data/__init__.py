"""Data: the shipped corpora, NSP pairs, MLM masking, the pretraining pipeline, labelled text files.

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
from bertcourse.data.nsp import NspPair, create_nsp_pairs, pairs_from_document, tokenize_documents, truncate_pair

__all__ = ["NspPair", "truncate_pair", "create_nsp_pairs", "pairs_from_document", "tokenize_documents",
           "MaskingConfig", "num_predictions", "whole_word_starts", "mask_tokens", "mask_tokens_reference",
           "pack_pair", "pack_pairs", "nsp_pair_dataset", "pretraining_dataset", "write_static_tfrecords",
           "read_static_tfrecords", "LabelledTexts", "read_labelled_texts", "check_training_labels", "DIALECTS"]

_MASKING = {"MaskingConfig", "num_predictions", "whole_word_starts", "mask_tokens", "mask_tokens_reference"}
_PIPELINE = {"pack_pair", "pack_pairs", "nsp_pair_dataset", "pretraining_dataset", "write_static_tfrecords",
             "read_static_tfrecords"}


def __getattr__(name: str):
    # lazy: masking and pipeline import TensorFlow; `from bertcourse.data import corpora` (the CLI's
    # parser, lesson 00) must not pay for it nor print its start-up banner (as bertcourse.text).
    if name in _MASKING:
        from bertcourse.data import masking

        return getattr(masking, name)
    if name in _PIPELINE:
        from bertcourse.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'bertcourse.data' has no attribute {name!r}")
