"""``LayerNorm``: Keras's LayerNormalization with TensorFlow's fused CPU kernel at inference.

Checked against ``keras.layers.LayerNormalization`` with the same weights (float64 NumPy too) on inputs
with large means and scales, BERT's epsilon 1e-12 and Keras's 1e-3, in float32 and bfloat16; the
training path and its gradients; and, on TensorFlow, that the fused kernel really runs (``_MklLayerNorm``
in a profiler trace, no ``Mean`` op) and that it is switched off without oneDNN.
"""

import collections
import glob
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from bertcourse.layers import LayerNorm, fused_layer_norm_available

RNG = np.random.default_rng(0)
X = (RNG.normal(size=(4, 7, 48)) * RNG.uniform(0.1, 30, size=(4, 7, 1)) + RNG.normal(size=(4, 7, 1)) * 50)
X = X.astype("float32")
on_tensorflow = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's fused kernel")


def pair(epsilon, dtype="float32", **kwargs):
    """Ours and Keras's layer, built with the same random gamma and beta."""
    ours = LayerNorm(epsilon=epsilon, dtype=dtype, **kwargs)
    ref = keras.layers.LayerNormalization(epsilon=epsilon, dtype=dtype, **kwargs)
    for layer in (ours, ref):
        layer.build(X.shape)
    for w_ours, w_ref in zip(ours.weights, ref.weights):
        value = RNG.normal(size=w_ours.shape).astype("float32")
        w_ours.assign(value)
        w_ref.assign(value)
    return ours, ref


def float64_layer_norm(x, gamma, beta, epsilon):
    x = x.astype("float64")
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * gamma + beta


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("epsilon", [1e-12, 1e-3])
@pytest.mark.parametrize("shape", [(4, 7, 48), (28, 48)])
def test_layer_norm_equals_keras_and_float64(epsilon, shape):
    ours, ref = pair(epsilon)
    x = X.reshape(shape)
    got, want = np.asarray(ours(x)), np.asarray(ref(x))
    exact = float64_layer_norm(x, np.asarray(ours.gamma), np.asarray(ours.beta), epsilon)
    ours_error, keras_error = np.abs(got - exact).max(), np.abs(want - exact).max()
    # Rows with |mean| 50x their std lose digits to x - mean in float32 in every implementation
    # (about 1e-5 here): ours must be as close to float64 as Keras's formula is.
    assert ours_error < 1.5 * keras_error + 1e-6 and ours_error < 3e-5 * np.abs(exact).max()


@pytest.mark.backend_agnostic
def test_constant_tokens_give_beta():
    """Variance 0: the output is beta. All zeros (any epsilon) exactly; a constant 3.0 within rounding at
    epsilon 1e-3. (At 1e-12 the float32 rounding of a constant row's mean is multiplied by 1 / sqrt(1e-12)
    = 1e6 in every implementation, Keras's too when the mean does not round exactly; a BERT's hidden
    states are never constant.)"""
    for epsilon, value, atol in ((1e-12, 0.0, 0.0), (1e-3, 0.0, 0.0), (1e-3, 3.0, 1e-4)):
        ours, _ = pair(epsilon)
        x = np.full((2, 5, 48), value, "float32")
        got = np.asarray(ours(x)).reshape(-1, 48)
        np.testing.assert_allclose(got, np.broadcast_to(np.asarray(ours.beta), got.shape), atol=atol)


@pytest.mark.backend_agnostic
def test_training_path_and_gradients_equal_keras():
    ours, ref = pair(1e-12)
    np.testing.assert_allclose(np.asarray(ours(X, training=True)), np.asarray(ref(X, training=True)), atol=0)
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    grads, upstream = [], tf.constant(RNG.normal(size=X.shape), tf.float32)
    for layer in (ours, ref):
        x = tf.constant(X)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * upstream)
        grads.append([np.asarray(g) for g in tape.gradient(loss, [x, layer.gamma, layer.beta])])
    for g_ours, g_ref in zip(*grads):
        np.testing.assert_allclose(g_ours, g_ref, atol=0)


@pytest.mark.backend_agnostic
def test_bfloat16_compute_keeps_its_dtype_and_values():
    ours, ref = pair(1e-12, dtype="mixed_bfloat16")
    got, want = ours(X), ref(X)
    assert keras.backend.standardize_dtype(got.dtype) == "bfloat16" == keras.backend.standardize_dtype(want.dtype)
    got, want = np.asarray(keras.ops.cast(got, "float32")), np.asarray(keras.ops.cast(want, "float32"))
    assert np.abs(got - want).max() <= 2 ** -7 * np.abs(want).max()   # one bfloat16 rounding step


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("kwargs", [{"axis": 1}, {"center": False}, {"scale": False}])
def test_other_axes_and_missing_weights_take_keras_path(kwargs):
    ours, ref = pair(1e-6, **kwargs)
    np.testing.assert_allclose(np.asarray(ours(X)), np.asarray(ref(X)), atol=0)
    assert not ours._fusable(keras.ops.convert_to_tensor(X))
    assert not ours._fusable(keras.ops.convert_to_tensor(X[None]))         # rank 4: the kernel takes 2 or 3


@on_tensorflow
def test_fusable_in_the_usual_case():
    ours, _ = pair(1e-12)
    assert ours._fusable(keras.ops.convert_to_tensor(X)) and ours._fusable(keras.ops.convert_to_tensor(X[0]))
    assert not ours._fusable(keras.ops.convert_to_tensor(X[None]))


@pytest.mark.backend_agnostic
def test_config_round_trips_and_is_registered():
    layer = LayerNorm(epsilon=1e-12, center=False, name="ln")
    config = layer.get_config()
    again = LayerNorm.from_config(config)
    assert again.get_config() == config and again.epsilon == 1e-12 and not again.center
    assert keras.saving.get_registered_name(LayerNorm) == "bertcourse>LayerNorm"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is LayerNorm
    x = X.reshape(-1, 48)
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(keras.layers.LayerNormalization(
        epsilon=1e-12, center=False)(x)), atol=2e-6 * np.abs(x).max())


def kernels_run(fn) -> collections.Counter:
    """The TensorFlow kernels one call of ``fn`` runs, from a profiler trace."""
    import tempfile

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        fn()
        tf.profiler.experimental.stop()
        (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
    ops = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" in name:
                    ops[name.rsplit(":", 1)[-1]] += 1
    return ops


@on_tensorflow
@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("static_shape", [True, False])
def test_inference_runs_one_fused_kernel_on_this_cpu(dtype, static_shape):
    """The fused kernel, whether the traced shape is static (a fixed batch) or not (predict_on_batch
    after its first retrace), in float32 and bfloat16."""
    import tensorflow as tf

    assert fused_layer_norm_available()                          # this CI machine: TF, oneDNN on, CPU only
    ours, ref = pair(1e-12, dtype=dtype)
    x = tf.cast(tf.constant(X), keras.mixed_precision.Policy(dtype).compute_dtype)
    spec = tf.TensorSpec(x.shape if static_shape else [None, None, X.shape[-1]], x.dtype)
    step = {layer: tf.function(lambda x, layer=layer: layer(x, training=False), input_signature=[spec])
            for layer in (ours, ref)}
    for fn in step.values():
        fn(x)                                                     # trace outside the profile
    fused, plain = kernels_run(lambda: step[ours](x)), kernels_run(lambda: step[ref](x))
    assert fused["_MklLayerNorm"] == 1 and fused["Mean"] == 0 and not fused["_MklNativeFusedBatchNormV3"], fused
    assert plain["_MklLayerNorm"] == 0 and plain["Mean"] == 2, plain   # Keras: mean and variance as means
    got, want = (np.asarray(tf.cast(step[layer](x), tf.float32)) for layer in (ours, ref))
    tolerance = 4e-6 if dtype == "float32" else 2 ** -7          # float32 rounding / one bfloat16 step
    assert np.abs(got - want).max() <= tolerance * np.abs(want).max()


@on_tensorflow
def test_no_fused_path_without_onednn():
    code = ("import keras; from bertcourse.layers import fused_layer_norm_available as f; "
            "print('fused', f())")
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fused False" in out.stdout
