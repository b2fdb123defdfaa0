"""The activations BERT blocks use: the exact GELU written out (x * Phi(x) with erf) against a float64
reference and against Keras' own ``gelu(approximate=False)``, in float32 and bfloat16, on every backend."""

import math

import keras
import numpy as np
import pytest

from bertcourse.layers import ACTIVATIONS, gelu_approximate, gelu_exact, get_activation

pytestmark = pytest.mark.backend_agnostic

X = np.concatenate([np.linspace(-8, 8, 4001), [-1e4, -30.0, 0.0, 30.0, 1e4]]).astype("float32")


def reference(x: np.ndarray) -> np.ndarray:
    return np.array([v * 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x.astype("float64")])


def test_exact_gelu_is_x_times_the_normal_cdf():
    got = np.asarray(gelu_exact(keras.ops.convert_to_tensor(X)), dtype="float64")
    want = reference(X)
    # float32 rounding; atol: for x < -4, 1 + erf(x / sqrt 2) cancels (true values above -1e-5; keras the same)
    np.testing.assert_allclose(got[np.abs(X) <= 8], want[np.abs(X) <= 8], rtol=2e-6, atol=1e-6)
    assert got[-1] == 1e4 and got[-5] == 0.0 and got[-3] == 0.0          # the tails: x and 0


def test_exact_gelu_matches_keras_gelu_and_differs_from_the_tanh_one():
    x = keras.ops.convert_to_tensor(X[np.abs(X) <= 8])
    ours = np.asarray(gelu_exact(x))
    theirs = np.asarray(keras.activations.gelu(x, approximate=False))
    assert np.abs(ours - theirs).max() < 2e-6
    tanh = np.asarray(gelu_approximate(x))
    assert 1e-4 < np.abs(ours - tanh).max() < 1e-3        # a different function: parity tests must pick one


def test_exact_gelu_keeps_bfloat16():
    x = keras.ops.cast(keras.ops.convert_to_tensor(X[::40]), "bfloat16")
    y = gelu_exact(x)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    want = reference(np.asarray(keras.ops.cast(x, "float32")))
    np.testing.assert_allclose(np.asarray(keras.ops.cast(y, "float32")), want, rtol=2e-2, atol=2e-2)


def test_get_activation_names():
    assert get_activation("gelu") is gelu_exact and get_activation("gelu_approximate") is gelu_approximate
    assert ACTIVATIONS == ("gelu", "gelu_approximate", "relu", "tanh")
    with pytest.raises(ValueError, match="Unknown activation 'swish'"):
        get_activation("swish")
