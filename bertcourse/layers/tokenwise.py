"""Apply a layer to every token of a sequence batch as one 2-D matmul.

A ``Dense`` on ``[batch, seq_len, hidden]`` and the same ``Dense`` on the tokens laid out as
``[batch * seq_len, hidden]`` compute the same numbers. The 2-D form is faster on TensorFlow's
CPU kernels: oneDNN then fuses the matmul, the bias and the activation into one op (the 3-D
form runs them as three), which makes a MiniLM forward pass about 5% faster (bench/README.md,
"Question answering"). On other backends the reshape costs nothing.

>>> import keras, numpy as np
>>> dense = keras.layers.Dense(4)
>>> x = np.random.default_rng(0).normal(size=(2, 3, 8)).astype("float32")
>>> y = per_token(dense, x)
>>> tuple(y.shape), bool(np.allclose(np.asarray(y), np.asarray(dense(x)), atol=1e-6))
((2, 3, 4), True)
"""

from __future__ import annotations

from keras import ops

__all__ = ["per_token"]


def per_token(layer, x):
    """``layer(x)`` for ``x`` ``[..., features]``, run on ``x`` reshaped to ``[tokens, features]``.

    ``layer`` must act on the last axis only (``Dense``, an activation); the output has ``x``'s
    leading axes and the layer's last axis.
    """
    if len(x.shape) <= 2:
        return layer(x)
    lead = ops.shape(x)[:-1]
    y = layer(ops.reshape(x, (-1, x.shape[-1])))
    return ops.reshape(y, tuple(lead) + (y.shape[-1],))
