"""BERT's input embeddings: token + segment + learned position, then LayerNorm and dropout (lesson 02).

    E(token_id, segment_id, position) = LayerNorm(T[token_id] + S[segment_id] + P[position])

The position table ``P`` is learned and has ``max_position_embeddings`` rows (512 for
BERT): a model has simply never seen a position past the end of it, so a longer input
is an error, not something to truncate silently. Lesson 13 shows how to handle long
documents (sliding windows).

>>> import numpy as np
>>> emb = BertEmbeddings(vocab_size=100, hidden_size=8, max_position_embeddings=16)
>>> tuple(emb(np.array([[2, 5, 7]]), np.array([[0, 0, 1]])).shape)
(1, 3, 8)
"""

from __future__ import annotations

import keras
from keras import ops

from bertcourse.layers.initializers import bert_initializer, clone_initializer
from bertcourse.layers.normalization import LayerNorm

__all__ = ["BertEmbeddings", "SequenceTooLongError", "check_sequence_length"]


class SequenceTooLongError(ValueError):
    """An input is longer than the position-embedding table."""


def check_sequence_length(seq_len, max_position_embeddings: int) -> None:
    """Raise ``SequenceTooLongError`` if a (static) ``seq_len`` exceeds the position table."""
    if seq_len is not None and int(seq_len) > max_position_embeddings:
        raise SequenceTooLongError(
            f"Input sequence length {int(seq_len)} is longer than the position-embedding table "
            f"(max_position_embeddings={max_position_embeddings}; 512 for BERT). BERT has no embedding "
            f"for positions past {max_position_embeddings - 1}: truncate the input, or split a long "
            f"document into overlapping windows (`bertcourse.text.window_spans`) as in lesson 13 (long documents)."
        )


@keras.saving.register_keras_serializable(package="bertcourse")
class BertEmbeddings(keras.layers.Layer):
    """Token + segment + position embeddings, summed, LayerNorm, dropout.

    Args:
        vocab_size: rows of the token table.
        hidden_size: width of every embedding.
        max_position_embeddings: rows of the learned position table (longest input).
        type_vocab_size: rows of the segment table (2: sentence A / sentence B).
        dropout: dropout rate after the LayerNorm.
        layer_norm_epsilon: LayerNorm epsilon (BERT: 1e-12).
        initializer_range: std of the truncated-normal initializer of the three tables.

    Call args:
        token_ids: ``[batch, seq_len]`` int.
        segment_ids: ``[batch, seq_len]`` int, or None for all zeros (one segment).

    Attributes ``token_embedding`` and ``segment_embedding`` are ``keras.layers.Embedding``;
    ``position_embeddings`` is the ``[max_position_embeddings, hidden_size]`` variable.
    """

    def __init__(self, vocab_size, hidden_size, max_position_embeddings=512, type_vocab_size=2, dropout=0.1,
                 layer_norm_epsilon=1e-12, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("vocab_size", vocab_size), ("hidden_size", hidden_size),
                            ("max_position_embeddings", max_position_embeddings),
                            ("type_vocab_size", type_vocab_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.dropout = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.initializer_range = float(initializer_range)
        init = bert_initializer(self.initializer_range)
        self.token_embedding = keras.layers.Embedding(
            vocab_size, hidden_size, embeddings_initializer=clone_initializer(init),
            dtype=self.dtype_policy, name="token_embedding")
        self.segment_embedding = keras.layers.Embedding(
            type_vocab_size, hidden_size, embeddings_initializer=clone_initializer(init),
            dtype=self.dtype_policy, name="segment_embedding")
        self.layer_norm = LayerNorm(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm")
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout")

    def build(self, token_ids_shape, segment_ids_shape=None):
        self.token_embedding.build(token_ids_shape)
        self.segment_embedding.build(token_ids_shape)
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(self.max_position_embeddings, self.hidden_size),
            initializer=bert_initializer(self.initializer_range), trainable=True)
        self.layer_norm.build(tuple(token_ids_shape) + (self.hidden_size,))
        self.built = True

    def __call__(self, token_ids, *args, **kwargs):
        # Checked here too, before Keras wraps errors raised inside call() in a longer message.
        check_sequence_length(getattr(token_ids, "shape", (None, None))[1] if len(getattr(token_ids, "shape", ())) > 1
                              else None, self.max_position_embeddings)
        return super().__call__(token_ids, *args, **kwargs)

    def call(self, token_ids, segment_ids=None, training=None):
        check_sequence_length(token_ids.shape[1], self.max_position_embeddings)
        tokens = self.token_embedding(token_ids)                               # [B, S, H]
        if segment_ids is None:
            segment_ids = ops.zeros_like(token_ids)
        segments = self.segment_embedding(segment_ids)                        # [B, S, H]
        seq_len = ops.shape(token_ids)[1]
        positions = ops.slice(ops.convert_to_tensor(self.position_embeddings), (0, 0),
                              (seq_len, self.hidden_size))                    # [S, H] rows 0..S-1
        positions = ops.cast(positions, tokens.dtype)
        x = tokens + positions[None, :, :] + segments                         # broadcast over batch
        x = self.layer_norm(x)
        return self.dropout_layer(x, training=training)

    def compute_output_shape(self, token_ids_shape, segment_ids_shape=None):
        return tuple(token_ids_shape) + (self.hidden_size,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "dropout": self.dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "initializer_range": self.initializer_range,
        })
        return config
