"""From text to BERT's input ids: normalisation, WordPiece (pure and in-graph), vocabularies, packing.

>>> from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path
>>> tok = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
>>> tok.tokenize("UNwanted, running")
['unwanted', ',', 'running']
"""

from bertcourse.text.normalize import BasicTokenizer
from bertcourse.text.vocab import RESERVED_TOKENS, learn_vocabulary, load_vocabulary, save_vocabulary
from bertcourse.text.wordpiece import SPECIAL_TOKENS, WordPieceTokenizer
from bertcourse.text.paths import bert_uncased_vocab_path

__all__ = ["BasicTokenizer", "WordPieceTokenizer", "FastWordPieceTokenizer", "BertPreprocessor", "learn_vocabulary",
           "save_vocabulary", "load_vocabulary", "pack_inputs", "bert_uncased_vocab_path",
           "RESERVED_TOKENS", "SPECIAL_TOKENS"]


def __getattr__(name):  # TensorFlow is imported only when the in-graph pieces are used
    if name == "FastWordPieceTokenizer":
        from bertcourse.text.fast import FastWordPieceTokenizer

        return FastWordPieceTokenizer
    if name == "BertPreprocessor":
        from bertcourse.text.preprocessor import BertPreprocessor

        return BertPreprocessor
    if name == "pack_inputs":
        from bertcourse.text.packing import pack_inputs

        return pack_inputs
    raise AttributeError(f"module 'bertcourse.text' has no attribute {name!r}")
