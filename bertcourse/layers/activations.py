"""The activations a BERT block can use, by the names ``BertConfig.hidden_act`` takes.

BERT uses the exact GELU, ``x * Phi(x)`` with the normal CDF written with erf; keras-hub
(and many TF ports) use the tanh approximation. They differ by less than 1e-3, but a parity
test against another implementation needs the same one.

>>> import numpy as np
>>> x = np.array([-1.0, 0.0, 1.0], "float32")
>>> [round(float(v), 4) for v in np.asarray(get_activation("gelu")(x))]
[-0.1587, 0.0, 0.8413]
>>> float(np.abs(np.asarray(gelu_exact(x)) - np.asarray(gelu_approximate(x))).max()) < 1e-3
True
>>> ACTIVATIONS
('gelu', 'gelu_approximate', 'relu', 'tanh')
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import ops

__all__ = ["ACTIVATIONS", "gelu_exact", "gelu_approximate", "get_activation"]

ACTIVATIONS = ("gelu", "gelu_approximate", "relu", "tanh")


_INV_SQRT2 = 0.7071067811865476


def gelu_exact(x):
    """BERT's GELU: ``x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))``.

    Written out with a multiplication by ``1 / sqrt(2)``: TensorFlow's ``tf.nn.gelu`` divides, which
    costs this CPU twice the time of the whole activation (5.3 vs 3.0 ms on a ``[1920, 1536]`` batch,
    5% of a MiniLM forward pass); the values agree to float32 rounding (``tests/test_layers_activations.py``).
    """
    return 0.5 * x * (1.0 + ops.erf(x * ops.cast(_INV_SQRT2, x.dtype)))


def gelu_approximate(x):
    """The tanh approximation: ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (keras-hub's)."""
    return keras.activations.gelu(x, approximate=True)


def get_activation(name: str) -> Callable:
    """``"gelu"`` (exact, erf, as in BERT), ``"gelu_approximate"`` (tanh, keras-hub), ``"relu"``, ``"tanh"``."""
    if name == "gelu":
        return gelu_exact
    if name == "gelu_approximate":
        return gelu_approximate
    if name in ("relu", "tanh"):
        return keras.activations.get(name)
    raise ValueError(f"Unknown activation {name!r}; expected one of {ACTIVATIONS}.")
