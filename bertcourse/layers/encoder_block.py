"""One Transformer encoder block, as in BERT (lesson 04).

Post-LayerNorm (BERT, the original Transformer)::

    x = LayerNorm(x + Dropout(SelfAttention(x)))
    x = LayerNorm(x + Dropout(FeedForward(x)))

Pre-LayerNorm (``normalize_first=True``; GPT-2 and most later models, easier to train deep)::

    x = x + Dropout(SelfAttention(LayerNorm(x)))
    x = x + Dropout(FeedForward(LayerNorm(x)))

>>> import numpy as np
>>> block = EncoderBlock(num_heads=2, intermediate_size=32)
>>> tuple(block(np.ones((2, 5, 8), "float32"), padding_mask=np.ones((2, 5))).shape)
(2, 5, 8)
"""

from __future__ import annotations

import keras

from bertcourse.layers.activations import ACTIVATIONS
from bertcourse.layers.attention import MultiHeadSelfAttention, gather_rows
from bertcourse.layers.feedforward import FeedForward
from bertcourse.layers.initializers import bert_initializer, clone_initializer
from bertcourse.layers.normalization import LayerNorm

__all__ = ["EncoderBlock"]


@keras.saving.register_keras_serializable(package="bertcourse")
class EncoderBlock(keras.layers.Layer):
    """Self-attention + feed-forward, each with a residual connection and a LayerNorm.

    Args:
        num_heads: attention heads.
        intermediate_size: feed-forward inner width.
        hidden_act: ``"gelu"`` (exact, BERT), ``"gelu_approximate"`` (keras-hub), ``"relu"``, ``"tanh"``.
        hidden_dropout: dropout on the attention output and the feed-forward output.
        attention_dropout: dropout on the attention probabilities.
        layer_norm_epsilon: LayerNorm epsilon (BERT: 1e-12).
        initializer_range: std of the truncated-normal kernel initializer.
        normalize_first: pre-LN instead of BERT's post-LN.
        fused_qkv: one matmul for Q, K and V (same weights and results).

    Call args: ``inputs [batch, seq, hidden]``, ``padding_mask [batch, seq]``,
    ``attention_mask [batch, seq, seq]``, ``training``, ``return_attention_scores``.
    """

    def __init__(self, num_heads, intermediate_size, hidden_act="gelu", hidden_dropout=0.1, attention_dropout=0.1,
                 layer_norm_epsilon=1e-12, initializer_range=0.02, normalize_first=False, fused_qkv=False,
                 **kwargs):
        super().__init__(**kwargs)
        if hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {ACTIVATIONS}, got {hidden_act!r}.")
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout = float(hidden_dropout)
        self.attention_dropout = float(attention_dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.initializer_range = float(initializer_range)
        self.normalize_first = bool(normalize_first)
        self.fused_qkv = bool(fused_qkv)
        self.supports_masking = True
        init = bert_initializer(self.initializer_range)
        self.attention = MultiHeadSelfAttention(
            num_heads, dropout=self.attention_dropout, kernel_initializer=clone_initializer(init),
            fused_qkv=self.fused_qkv, dtype=self.dtype_policy, name="attention")
        self.attention_dropout_layer = keras.layers.Dropout(self.hidden_dropout, dtype=self.dtype_policy,
                                                            name="attention_output_dropout")
        self.attention_layer_norm = LayerNorm(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="attention_layer_norm")
        self.feedforward = FeedForward(intermediate_size, activation=hidden_act,
                                       kernel_initializer=clone_initializer(init), dtype=self.dtype_policy,
                                       name="feedforward")
        self.feedforward_dropout_layer = keras.layers.Dropout(self.hidden_dropout, dtype=self.dtype_policy,
                                                              name="feedforward_output_dropout")
        self.feedforward_layer_norm = LayerNorm(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="feedforward_layer_norm")

    def build(self, inputs_shape):
        for layer in (self.attention, self.attention_layer_norm, self.feedforward, self.feedforward_layer_norm):
            layer.build(inputs_shape)
        self.built = True

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None, return_attention_scores=False,
             query_positions=None):
        """``query_positions`` ``[B, P]``: outputs for those positions only, ``[B, P, hidden]`` (every
        position still serves as key and value). Same numbers as gathering the full output."""
        # Self-attention sub-block.
        residual = inputs if query_positions is None else gather_rows(inputs, query_positions)
        x = self.attention_layer_norm(inputs) if self.normalize_first else inputs
        x, probs = self.attention(x, padding_mask=padding_mask, attention_mask=attention_mask, training=training,
                                  return_attention_scores=True, query_positions=query_positions)
        x = self.attention_dropout_layer(x, training=training) + residual
        if not self.normalize_first:
            x = self.attention_layer_norm(x)
        # Feed-forward sub-block.
        residual = x
        if self.normalize_first:
            x = self.feedforward_layer_norm(x)
        x = self.feedforward(x)
        x = self.feedforward_dropout_layer(x, training=training) + residual
        if not self.normalize_first:
            x = self.feedforward_layer_norm(x)
        if return_attention_scores:
            return x, probs
        return x

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": self.hidden_act,
            "hidden_dropout": self.hidden_dropout,
            "attention_dropout": self.attention_dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "initializer_range": self.initializer_range,
            "normalize_first": self.normalize_first,
            "fused_qkv": self.fused_qkv,
        })
        return config
