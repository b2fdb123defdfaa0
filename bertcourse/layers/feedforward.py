"""The position-wise feed-forward network of a BERT block (lesson 04).

Each token on its own goes up to ``intermediate_size`` (4x hidden), through a GELU,
and back down:  ``FFN(x) = GELU(x W1 + b1) W2 + b2``. Two thirds of BERT's encoder
parameters live here.

BERT uses the *exact* GELU, ``x * Phi(x)`` with the normal CDF written with erf;
keras-hub's ``BertBackbone`` uses the tanh approximation. The two differ by less
than 1e-3 everywhere (see lesson 04), but parity tests need the same one.

>>> import numpy as np
>>> ffn = FeedForward(intermediate_size=32)
>>> tuple(ffn(np.ones((2, 3, 8), "float32")).shape)
(2, 3, 8)
"""

from __future__ import annotations

import keras

from bertcourse.layers.activations import ACTIVATIONS, get_activation
from bertcourse.layers.initializers import clone_initializer
from bertcourse.layers.tokenwise import per_token

__all__ = ["FeedForward"]


@keras.saving.register_keras_serializable(package="bertcourse")
class FeedForward(keras.layers.Layer):
    """Dense(intermediate_size) -> activation -> Dense(hidden).

    Args:
        intermediate_size: width of the inner layer (BERT: 4 * hidden).
        activation: ``"gelu"`` (exact erf GELU, BERT's), ``"gelu_approximate"`` (tanh,
            keras-hub's), ``"relu"`` or ``"tanh"``.
        kernel_initializer, bias_initializer: for both dense layers.

    The hidden size is read from the input. Dropout and the residual connection
    belong to the encoder block, not to this layer.
    """

    def __init__(self, intermediate_size, activation="gelu", kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if isinstance(intermediate_size, bool) or not isinstance(intermediate_size, int) or intermediate_size < 1:
            raise ValueError(f"intermediate_size must be a positive integer, got {intermediate_size!r}.")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}.")
        self.intermediate_size = intermediate_size
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True
        self.intermediate_dense = keras.layers.Dense(
            intermediate_size, activation=get_activation(activation),
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy, name="intermediate")

    def build(self, inputs_shape):
        hidden = inputs_shape[-1]
        if hidden is None:
            raise ValueError("The last (hidden) dimension of the feed-forward input must be known.")
        self.output_dense = keras.layers.Dense(
            int(hidden), kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer), dtype=self.dtype_policy, name="output")
        self.intermediate_dense.build(inputs_shape)
        self.output_dense.build(tuple(inputs_shape[:-1]) + (self.intermediate_size,))
        self.built = True

    def call(self, inputs):
        # per_token: each dense layer sees the tokens as one [batch * seq, hidden] matrix (same numbers;
        # TensorFlow's CPU kernels then fuse matmul, bias and GELU into one op).
        x = per_token(self.intermediate_dense, inputs)   # [B, S, H] -> [B, S, intermediate], GELU included
        return per_token(self.output_dense, x)           # -> [B, S, H]

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "intermediate_size": self.intermediate_size,
            "activation": self.activation,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        })
        return config
