"""Small helpers shared by the layers (not part of the public API)."""

from __future__ import annotations

import keras

ACTIVATIONS = ("gelu", "gelu_approximate", "relu", "tanh")


def clone_initializer(initializer):
    """A fresh copy, so two weights never share one stateful (seeded) initializer."""
    initializer = keras.initializers.get(initializer)
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    return initializer.__class__.from_config(initializer.get_config())


def bert_initializer(initializer_range: float = 0.02):
    """BERT's weight initializer: a normal of std ``initializer_range`` truncated at 2 std."""
    return keras.initializers.TruncatedNormal(stddev=initializer_range)


def gelu_exact(x):
    """BERT's GELU: ``x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))``."""
    return keras.activations.gelu(x, approximate=False)


def gelu_approximate(x):
    """The tanh approximation: ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (keras-hub's)."""
    return keras.activations.gelu(x, approximate=True)


def get_activation(name: str):
    """``"gelu"`` (exact, erf, as in BERT), ``"gelu_approximate"`` (tanh, keras-hub), ``"relu"``, ``"tanh"``."""
    if name == "gelu":
        return gelu_exact
    if name == "gelu_approximate":
        return gelu_approximate
    if name in ("relu", "tanh"):
        return keras.activations.get(name)
    raise ValueError(f"Unknown activation {name!r}; expected one of {ACTIVATIONS}.")
