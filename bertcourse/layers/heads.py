"""Pretraining heads (lesson 07): the masked-LM head tied to the token embeddings, and NSP.

The MLM head is BERT's ``get_masked_lm_output``: gather the hidden states at the masked
positions, ``dense -> GELU -> LayerNorm``, then score every vocabulary entry with the SAME
matrix that embeds tokens (``logits = h @ E^T + b``), so input and output share one table.

>>> import numpy as np, keras
>>> emb = keras.layers.Embedding(50, 8); emb.build((None,))
>>> head = MaskedLMHead(token_embedding=emb)
>>> tuple(head(np.zeros((2, 6, 8), "float32"), masked_positions=np.array([[1, 4], [0, 0]])).shape)
(2, 2, 50)
"""

from __future__ import annotations

import keras
from keras import ops

from bertcourse.layers.activations import get_activation
from bertcourse.layers.initializers import bert_initializer
from bertcourse.layers.normalization import LayerNorm

__all__ = ["MaskedLMHead", "NextSentenceHead"]


@keras.saving.register_keras_serializable(package="bertcourse")
class MaskedLMHead(keras.layers.Layer):
    """Scores the vocabulary at the masked positions, output weights tied to ``token_embedding``.

    Args:
        token_embedding: the backbone's ``keras.layers.Embedding``; its ``[vocab, hidden]`` matrix is
            the output projection (tied weights). Not serialised: the owning model passes it again.
        activation: of the transform layer, ``"gelu"`` (exact) as in BERT.
        layer_norm_epsilon, initializer_range: as in ``BertConfig``.

    Call: ``head(sequence_output [B, L, H], masked_positions=[B, P] int)`` -> logits ``[B, P, vocab]``
    in float32 (also under mixed precision).
    """

    def __init__(self, token_embedding: keras.layers.Embedding, activation: str = "gelu",
                 layer_norm_epsilon: float = 1e-12, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        if token_embedding is None:
            raise ValueError("MaskedLMHead needs the backbone's token embedding layer (its weights are tied).")
        self.token_embedding = token_embedding
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self._act = get_activation(activation)
        self.transform = keras.layers.Dense(token_embedding.output_dim,
                                            kernel_initializer=bert_initializer(initializer_range),
                                            dtype=self.dtype_policy, name="transform")
        self.layer_norm = LayerNorm(epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm")

    def build(self, sequence_output_shape, masked_positions_shape=None):
        hidden = sequence_output_shape[-1]
        if hidden != self.token_embedding.output_dim:
            raise ValueError(f"sequence_output has hidden size {hidden}, the tied token embedding "
                             f"{self.token_embedding.output_dim}.")
        vocab = self.token_embedding.input_dim
        self.transform.build((None, None, hidden))
        self.layer_norm.build((None, None, hidden))
        self.output_bias = self.add_weight(name="output_bias", shape=(vocab,), initializer="zeros")

    def call(self, sequence_output, masked_positions=None):
        if masked_positions is None:  # the rows are already the masked positions' hidden states
            gathered = sequence_output
        else:
            positions = ops.cast(masked_positions, "int32")
            gathered = ops.take_along_axis(sequence_output, ops.expand_dims(positions, axis=-1), axis=1)
        h = self.layer_norm(self._act(self.transform(gathered)))
        table = ops.cast(self.token_embedding.embeddings, h.dtype)
        logits = ops.matmul(h, ops.transpose(table))
        return ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")

    def compute_output_shape(self, sequence_output_shape, masked_positions_shape=None):
        rows = sequence_output_shape[:-1] if masked_positions_shape is None else masked_positions_shape
        return tuple(rows) + (self.token_embedding.input_dim,)

    def get_config(self):
        config = super().get_config()
        config.update({"activation": self.activation, "layer_norm_epsilon": self.layer_norm_epsilon,
                       "initializer_range": self.initializer_range})
        return config


@keras.saving.register_keras_serializable(package="bertcourse")
class NextSentenceHead(keras.layers.Layer):
    """Two logits (0 = IsNext, 1 = NotNext) from the pooled [CLS] vector, float32."""

    def __init__(self, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(2, kernel_initializer=bert_initializer(initializer_range),
                                        dtype=self.dtype_policy, name="dense")

    def build(self, pooled_shape):
        self.dense.build(pooled_shape)

    def call(self, pooled_output):
        return ops.cast(self.dense(pooled_output), "float32")

    def compute_output_shape(self, pooled_shape):
        return tuple(pooled_shape[:-1]) + (2,)

    def get_config(self):
        config = super().get_config()
        config.update({"initializer_range": self.initializer_range})
        return config
