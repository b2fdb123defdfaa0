"""The layers of BERT, written out with ``keras.ops`` (lessons 02-04 and 07's pretraining heads).

Every layer runs on the TensorFlow, JAX and PyTorch backends (tested on TensorFlow and JAX).

>>> from bertcourse.layers import BertEmbeddings, MultiHeadSelfAttention, FeedForward, EncoderBlock
>>> sorted(n for n in __all__ if n.endswith("initializer"))
['bert_initializer', 'clone_initializer']
"""

from bertcourse.layers.activations import ACTIVATIONS, gelu_approximate, gelu_exact, get_activation
from bertcourse.layers.attention import MultiHeadSelfAttention, gather_rows, mask_value, merge_masks
from bertcourse.layers.embeddings import BertEmbeddings, SequenceTooLongError, check_sequence_length
from bertcourse.layers.encoder_block import EncoderBlock
from bertcourse.layers.feedforward import FeedForward
from bertcourse.layers.heads import MaskedLMHead, NextSentenceHead
from bertcourse.layers.initializers import bert_initializer, clone_initializer
from bertcourse.layers.normalization import LayerNorm, fused_layer_norm_available

__all__ = ["BertEmbeddings", "MultiHeadSelfAttention", "FeedForward", "EncoderBlock", "MaskedLMHead",
           "NextSentenceHead", "LayerNorm", "fused_layer_norm_available", "SequenceTooLongError",
           "check_sequence_length", "mask_value", "merge_masks", "gather_rows", "ACTIVATIONS", "gelu_exact",
           "gelu_approximate", "get_activation", "bert_initializer", "clone_initializer"]
