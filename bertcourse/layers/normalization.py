"""LayerNorm over the hidden axis, run as one fused kernel where TensorFlow has one (lesson 04).

``LayerNorm(x) = gamma * (x - mean) / sqrt(var + epsilon) + beta``, mean and variance taken over the
last axis of each token. :class:`LayerNorm` is ``keras.layers.LayerNormalization`` (same arguments,
weights and numbers) with one fast path: at inference on TensorFlow's CPU kernels (oneDNN on, no GPU
or TPU visible) it writes the normalization as a ``FusedBatchNormV3`` over ``[1, tokens, hidden, 1]``
(each token a "channel") followed by ``* gamma + beta``. TensorFlow's graph optimizer rewrites that
pattern into one ``_MklLayerNorm`` kernel instead of Keras's passes for the mean, the squared
difference, the variance and three multiply-adds: 0.59 against 1.2 ms on ``[16, 128, 384]``, about 4%
of a MiniLM forward pass (bench/README.md, "Question answering"). Keras itself takes the same kind of
shortcut for PyTorch (``torch.nn.functional.layer_norm``). Training, other backends and devices, and
the rare cases the kernel does not take (rank 4 and up, no ``gamma`` or ``beta``) run Keras's code.

Two details make the rewrite happen every time: the epsilon goes to the raw op as given
(``tf.nn.fused_batch_norm`` would raise BERT's 1e-12 to 1.001e-5, a cuDNN limit, which is why Keras 2
never used this path for BERT), and the ones and zeros the op needs are built by ``Fill`` from a
``PlaceholderWithDefault`` that the optimizer cannot fold into a constant when the shape is static.

>>> import numpy as np, keras
>>> x = np.random.default_rng(0).normal(size=(2, 3, 8)).astype("float32")
>>> ours, ref = LayerNorm(epsilon=1e-12), keras.layers.LayerNormalization(epsilon=1e-12)
>>> bool(np.allclose(np.asarray(ours(x)), np.asarray(ref(x)), atol=1e-5))
True
"""

from __future__ import annotations

import functools

import keras

__all__ = ["LayerNorm", "fused_layer_norm_available"]


@functools.lru_cache(maxsize=None)
def fused_layer_norm_available() -> bool:
    """True where :class:`LayerNorm` takes the fused path: the TensorFlow backend, oneDNN's CPU
    kernels on (``TF_ENABLE_ONEDNN_OPTS`` not 0; without them the op is slower than the plain
    formula) and no GPU or TPU visible (their batch-norm kernels clamp epsilon to 1e-5)."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf  # lazy: only the TensorFlow backend gets here
    from tensorflow.python.util import _pywrap_util_port  # lazy: the same

    return bool(_pywrap_util_port.IsMklEnabled()) and not any(
        tf.config.list_logical_devices(kind) for kind in ("GPU", "TPU"))


def _fused_layer_norm(x, gamma, beta, epsilon: float, dtype):
    """``x`` ``[..., hidden]`` normalized over its last axis with TensorFlow's fused kernel."""
    import tensorflow as tf  # lazy: only the TensorFlow backend gets here

    # float32 and bfloat16 run as they are (the kernel keeps its statistics in float32); float16 in float32.
    work = x.dtype if x.dtype in (tf.float32, tf.bfloat16) else tf.float32
    x = tf.cast(x, work)
    shape = tf.shape(x)
    tokens = tf.reduce_prod(shape[:-1])
    # The pattern needs scale and offset made by Fill ops; with a static shape the optimizer would fold
    # them into constants (and the unfused op is slower than Keras's formula). A PlaceholderWithDefault
    # is never folded.
    per_token = tf.raw_ops.PlaceholderWithDefault(input=tf.reshape(tokens, [1]), shape=[1])
    y, *_ = tf.raw_ops.FusedBatchNormV3(
        x=tf.reshape(x, [1, tokens, x.shape[-1], 1]), scale=tf.fill(per_token, 1.0), offset=tf.fill(per_token, 0.0),
        mean=tf.zeros([0]), variance=tf.zeros([0]), epsilon=float(epsilon), data_format="NCHW",
        is_training=True)                           # "training": statistics of this input, per token
    y = tf.reshape(y, shape) * tf.cast(gamma, work) + tf.cast(beta, work)
    return tf.cast(y, dtype)


@keras.saving.register_keras_serializable(package="bertcourse")
class LayerNorm(keras.layers.LayerNormalization):
    """``keras.layers.LayerNormalization`` with TensorFlow's fused CPU kernel at inference (module doc).

    Same constructor arguments, weights (``gamma``, ``beta``) and config as Keras's layer. The fused
    path covers the usual case (normalize the last axis, no ``rms_scaling``); anything else, and every
    call with ``training=True``, runs Keras's code.
    """

    def _fusable(self, inputs) -> bool:
        rank = len(inputs.shape)                    # the kernel takes [tokens, hidden] or [batch, seq, hidden]
        return (rank in (2, 3) and list(self.axis) in ([-1], [rank - 1]) and self.gamma is not None
                and self.beta is not None and inputs.shape[-1] is not None and fused_layer_norm_available())

    def call(self, inputs, training=None):
        if not training and self._fusable(inputs):
            return _fused_layer_norm(inputs, self.gamma, self.beta, self.epsilon, self.compute_dtype)
        return super().call(inputs)
