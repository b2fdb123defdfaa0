"""Multi-head self-attention, written out step by step (lesson 03).

Every token asks a question (its *query*), advertises what it holds (its *key*) and
offers content (its *value*). Attention compares each query with every key,
turns the scores into probabilities with a softmax and mixes the values:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + mask) V

``num_heads`` heads do this in parallel, each on ``head_size = hidden / num_heads``
dimensions, and an output projection merges them again.

Only ``keras.ops`` is used, so the layer runs on the TensorFlow, JAX and PyTorch
backends. Under mixed precision the scores, the mask and the softmax are computed
in float32: a float16 score plus a mask of ``-1e9`` would overflow to ``-inf``
(and a fully masked row would give ``nan``); in float32 it cannot.

>>> import numpy as np
>>> layer = MultiHeadSelfAttention(num_heads=2)
>>> out, probs = layer(np.ones((1, 5, 8), "float32"), padding_mask=np.array([[1, 1, 1, 0, 0]]),
...                    return_attention_scores=True)
>>> tuple(out.shape), tuple(probs.shape)
((1, 5, 8), (1, 2, 5, 5))
>>> float(np.asarray(probs)[0, 0, 0, 3:].sum())   # padded keys get no attention
0.0
"""

from __future__ import annotations

import math

import keras
from keras import ops

from bertcourse.layers.initializers import clone_initializer
from bertcourse.layers.tokenwise import per_token

__all__ = ["MultiHeadSelfAttention", "mask_value", "merge_masks", "gather_rows"]


def mask_value(dtype) -> float:
    """The large negative number added to masked scores: finite in ``dtype``.

    ``-1e9`` for float32/bfloat16/float64; ``-3e4`` for float16, whose largest
    finite value is 65504 (``-1e9`` would become ``-inf``, and ``-inf - -inf``
    in the softmax is ``nan``).
    """
    return -3e4 if keras.backend.standardize_dtype(dtype) == "float16" else -1e9


def merge_masks(padding_mask=None, attention_mask=None):
    """One ``[batch, 1 or query_len, key_len]`` boolean mask (True = may attend), or None.

    ``padding_mask`` ``[batch, seq_len]`` (1 for real tokens, 0 for padding) hides
    padded *keys* from every query; ``attention_mask`` ``[batch, query_len, key_len]``
    hides any pair you choose. Both given: a pair is allowed only if both allow it.
    """
    mask = None
    if padding_mask is not None:
        if len(padding_mask.shape) != 2:
            raise ValueError(f"padding_mask must have shape [batch, seq_len]; got shape {tuple(padding_mask.shape)}.")
        mask = ops.expand_dims(ops.cast(padding_mask, "bool"), axis=1)  # [B, 1, S]
    if attention_mask is not None:
        if len(attention_mask.shape) != 3:
            raise ValueError("attention_mask must have shape [batch, query_len, key_len]; "
                             f"got shape {tuple(attention_mask.shape)}.")
        attention_mask = ops.cast(attention_mask, "bool")
        mask = attention_mask if mask is None else ops.logical_and(mask, attention_mask)
    return mask


def gather_rows(x, positions):
    """``x[b, positions[b, p], ...]`` for every batch row: ``[B, S, ...]``, ``[B, P]`` -> ``[B, P, ...]``."""
    positions = ops.cast(positions, "int32")
    index = ops.reshape(positions, tuple(ops.shape(positions)) + (1,) * (len(x.shape) - 2))
    return ops.take_along_axis(x, index, axis=1)


@keras.saving.register_keras_serializable(package="bertcourse")
class MultiHeadSelfAttention(keras.layers.Layer):
    """BERT's self-attention: Q/K/V projections, split heads, scaled dot product, mask,
    softmax, dropout, merge heads, output projection.

    Args:
        num_heads: number of attention heads; the hidden size (read from the input)
            must be divisible by it.
        dropout: dropout rate on the attention probabilities (BERT: 0.1).
        kernel_initializer, bias_initializer: for the four projections.
        use_bias: whether the projections have biases (BERT: yes).
        fused_qkv: compute Q, K and V with one matmul against the three kernels
            concatenated (same weights, same result; sometimes faster).

    Call args:
        inputs: ``[batch, seq_len, hidden]``.
        padding_mask: optional ``[batch, seq_len]``, 1 = real token, 0 = padding.
        attention_mask: optional ``[batch, seq_len, seq_len]``, 1 = query may see key.
        return_attention_scores: also return the probabilities ``[batch, heads, query, key]``.
        query_positions: optional ``[batch, P]`` int: compute outputs for these positions only
            (queries from those rows, keys and values from all rows); the output is ``[batch, P,
            hidden]``. Used for the last layer of MLM pretraining, where only the masked positions
            (and [CLS]) are ever read.
    """

    def __init__(self, num_heads, dropout=0.0, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 use_bias=True, fused_qkv=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"num_heads must be a positive integer, got {num_heads!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.num_heads = num_heads
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.use_bias = bool(use_bias)
        self.fused_qkv = bool(fused_qkv)
        self.supports_masking = True
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="attention_dropout")

    def _dense(self, units, name):
        return keras.layers.Dense(
            units,
            use_bias=self.use_bias,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, inputs_shape):
        hidden = inputs_shape[-1]
        if hidden is None:
            raise ValueError("The last (hidden) dimension of the attention input must be known.")
        if hidden % self.num_heads:
            raise ValueError(f"hidden size {hidden} is not divisible by num_heads={self.num_heads}.")
        self.hidden_size = int(hidden)
        self.head_size = self.hidden_size // self.num_heads
        self.query_dense = self._dense(hidden, "query")
        self.key_dense = self._dense(hidden, "key")
        self.value_dense = self._dense(hidden, "value")
        self.output_dense = self._dense(hidden, "attention_output")
        for layer in (self.query_dense, self.key_dense, self.value_dense, self.output_dense):
            layer.build(inputs_shape)
        self.built = True

    # ---------------------------------------------------------------- the steps
    def split_heads(self, x):
        """``[B, S, hidden]`` -> ``[B, S, heads, head_size]``."""
        return ops.reshape(x, (ops.shape(x)[0], ops.shape(x)[1], self.num_heads, self.head_size))

    def merge_heads(self, x):
        """``[B, S, heads, head_size]`` -> ``[B, S, hidden]``."""
        return ops.reshape(x, (ops.shape(x)[0], ops.shape(x)[1], self.hidden_size))

    def project_qkv(self, x):
        """``x`` ``[B, S, hidden]`` -> queries, keys, values ``[B, S, hidden]`` each (per token, as
        one ``[B * S, hidden]`` matmul each: :func:`~bertcourse.layers.tokenwise.per_token`)."""
        if not self.fused_qkv:
            return per_token(self.query_dense, x), per_token(self.key_dense, x), per_token(self.value_dense, x)
        dense = (self.query_dense, self.key_dense, self.value_dense)
        kernel = ops.concatenate([ops.cast(d.kernel, self.compute_dtype) for d in dense], axis=-1)

        def project(tokens):                                             # [T, hidden] -> [T, 3 * hidden]
            qkv = ops.matmul(tokens, kernel)
            if self.use_bias:
                qkv = qkv + ops.concatenate([ops.cast(d.bias, self.compute_dtype) for d in dense], axis=-1)
            return qkv

        return ops.split(per_token(project, x), 3, axis=-1)

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None, return_attention_scores=False,
             query_positions=None):
        if query_positions is None:
            q, k, v = self.project_qkv(inputs)                          # 1. project: [B, S, hidden] each
        else:  # queries only where outputs are wanted
            q = per_token(self.query_dense, gather_rows(inputs, query_positions))
            k, v = per_token(self.key_dense, inputs), per_token(self.value_dense, inputs)
            if attention_mask is not None:
                attention_mask = gather_rows(attention_mask, query_positions)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # 2. [B, S, N, D]
        q = q * ops.cast(1.0 / math.sqrt(self.head_size), q.dtype)      # 3. scale by 1/sqrt(D) ...
        scores = ops.einsum("bqnd,bknd->bnqk", q, k)                    #    ... and compare: [B, N, Q, K]
        scores = ops.cast(scores, "float32")                            # 4. mask + softmax in float32
        mask = merge_masks(padding_mask, attention_mask)
        if mask is not None:
            mask = ops.expand_dims(mask, axis=1)                        #    [B, 1, 1 or Q, K]: every head
            scores = scores + (1.0 - ops.cast(mask, "float32")) * mask_value("float32")
        probs = ops.softmax(scores, axis=-1)
        probs = ops.cast(probs, self.compute_dtype)
        dropped = self.dropout_layer(probs, training=training)          # 5. attention dropout
        context = ops.einsum("bnqk,bknd->bqnd", dropped, v)             # 6. mix the values
        output = per_token(self.output_dense, self.merge_heads(context))  # 7. merge heads, project
        if return_attention_scores:
            return output, probs
        return output

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "use_bias": self.use_bias,
            "fused_qkv": self.fused_qkv,
        })
        return config
