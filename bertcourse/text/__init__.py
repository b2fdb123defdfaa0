"""From text to BERT's input ids: normalisation, WordPiece (pure and in-graph), vocabularies, packing.

>>> from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path
>>> tok = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
>>> tok.tokenize("UNwanted, running")
['unwanted', ',', 'running']
>>> tok.tokenize("The [MASK] sat.")  # special tokens written in the text are one token each
['the', '[MASK]', 'sat', '.']

The in-graph parts (:class:`FastWordPieceTokenizer`, :class:`BertPreprocessor`, :func:`pack_inputs`)
import TensorFlow on first use.
"""

import importlib

from bertcourse.text.normalize import BasicTokenizer, check_text
from bertcourse.text.paths import bert_uncased_vocab_path
from bertcourse.text.vocab import RESERVED_TOKENS, learn_vocabulary, load_vocabulary, save_vocabulary
from bertcourse.text.windows import max_context_scores, max_context_windows, window_spans
from bertcourse.text.wordpiece import SPECIAL_TOKENS, WordPieceTokenizer

__all__ = ["BasicTokenizer", "WordPieceTokenizer", "FastWordPieceTokenizer", "BertPreprocessor", "learn_vocabulary",
           "save_vocabulary", "load_vocabulary", "pack_inputs", "bert_uncased_vocab_path", "check_text",
           "RESERVED_TOKENS", "SPECIAL_TOKENS", "TRUNCATION_STRATEGIES", "window_spans",
           "max_context_scores", "max_context_windows"]

# The in-graph parts and the module that defines each (they import TensorFlow).
_TENSORFLOW_PARTS = {"FastWordPieceTokenizer": "bertcourse.text.fast",
                     "BertPreprocessor": "bertcourse.text.preprocessor",
                     "pack_inputs": "bertcourse.text.packing", "TRUNCATION_STRATEGIES": "bertcourse.text.packing"}


def __getattr__(name: str):
    # lazy: TensorFlow is slow to import (measured: `import bertcourse.text` 0.17 s, with the
    # in-graph parts 13-14 s on the shared 2-core machine); the pure tokenizer, vocabularies and
    # normaliser need none of it, so the TensorFlow parts load on first use.
    if name in _TENSORFLOW_PARTS:
        return getattr(importlib.import_module(_TENSORFLOW_PARTS[name]), name)
    raise AttributeError(f"module 'bertcourse.text' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
