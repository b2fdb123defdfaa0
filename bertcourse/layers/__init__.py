"""The layers of BERT, written out with ``keras.ops`` (lessons 02-04).

>>> from bertcourse.layers import BertEmbeddings, MultiHeadSelfAttention, FeedForward, EncoderBlock
"""

from bertcourse.layers._utils import gelu_approximate, gelu_exact
from bertcourse.layers.attention import MultiHeadSelfAttention, mask_value, merge_masks
from bertcourse.layers.embeddings import BertEmbeddings, SequenceTooLongError
from bertcourse.layers.encoder_block import EncoderBlock
from bertcourse.layers.feedforward import FeedForward

__all__ = ["BertEmbeddings", "MultiHeadSelfAttention", "FeedForward", "EncoderBlock", "SequenceTooLongError",
           "mask_value", "merge_masks", "gelu_exact", "gelu_approximate"]
