"""MultiHeadSelfAttention == keras.layers.MultiHeadAttention with copied weights, masks, dtypes, config."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from bertcourse.layers import MultiHeadSelfAttention, mask_value, merge_masks  # noqa: E402

pytestmark = pytest.mark.backend_agnostic

TOL = 1e-5
B, S, H, N = 3, 7, 16, 4


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")))


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, S, H)).astype("float32")
    padding = np.ones((B, S), "int32")
    padding[1, 5:] = 0
    padding[2, 2:] = 0
    attention = (rng.random((B, S, S)) > 0.3).astype("int32")
    attention[:, np.arange(S), np.arange(S)] = 1  # every token may see itself: no fully masked row
    return x, padding, attention


def _pair(seed=0, **kwargs):
    """Our layer and Keras's, with the same weights."""
    x, _, _ = _inputs()
    ours = MultiHeadSelfAttention(N, **kwargs)
    ours(x)
    ref = keras.layers.MultiHeadAttention(num_heads=N, key_dim=H // N)
    ref(x, x)
    d = H // N
    for mine, theirs in ((ours.query_dense, ref._query_dense), (ours.key_dense, ref._key_dense),
                         (ours.value_dense, ref._value_dense)):
        theirs.kernel.assign(_np(mine.kernel).reshape(H, N, d))
        theirs.bias.assign(np.random.default_rng(seed).normal(size=(N, d)).astype("float32"))
        mine.bias.assign(_np(theirs.bias).reshape(H))
    ref._output_dense.kernel.assign(_np(ours.output_dense.kernel).reshape(N, d, H))
    ours.output_dense.bias.assign(np.full((H,), 0.1, "float32"))
    ref._output_dense.bias.assign(_np(ours.output_dense.bias))
    return ours, ref


@pytest.mark.parametrize("which", ["none", "padding", "attention_2d", "both"])
@pytest.mark.parametrize("fused_qkv", [False, True], ids=["separate_qkv", "fused_qkv"])
def test_equals_keras_multi_head_attention(which, fused_qkv):
    x, padding, attention = _inputs()
    ours, ref = _pair(fused_qkv=fused_qkv)
    pm = padding if which in ("padding", "both") else None
    am = attention if which in ("attention_2d", "both") else None
    full = merge_masks(pm, am)
    keras_mask = None if full is None else np.broadcast_to(_np(full), (B, S, S)).astype(bool)
    want, want_probs = ref(x, x, attention_mask=keras_mask, return_attention_scores=True)
    got, got_probs = ours(x, padding_mask=pm, attention_mask=am, return_attention_scores=True)
    diff = float(np.abs(_np(want) - _np(got)).max())
    pdiff = float(np.abs(_np(want_probs) - _np(got_probs)).max())
    assert diff <= TOL, f"mask={which}: output max |diff| = {diff:.3g} > {TOL}"
    assert pdiff <= TOL, f"mask={which}: probabilities max |diff| = {pdiff:.3g} > {TOL}"
    # Keras's fast path (no scores returned) agrees too.
    fast = ref(x, x, attention_mask=keras_mask)
    diff = float(np.abs(_np(fast) - _np(got)).max())
    assert diff <= TOL, f"mask={which}: output vs Keras fast path max |diff| = {diff:.3g}"


def test_padding_gets_zero_attention_and_rows_sum_to_one():
    x, padding, _ = _inputs()
    ours = MultiHeadSelfAttention(N)
    _, probs = ours(x, padding_mask=padding, return_attention_scores=True)
    probs = _np(probs)
    assert probs.shape == (B, N, S, S)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert probs[1, :, :, 5:].max() == 0.0 and probs[2, :, :, 2:].max() == 0.0


def test_padding_does_not_change_real_tokens():
    """Appending pad tokens (masked) leaves the real tokens' outputs unchanged."""
    x, _, _ = _inputs()
    ours = MultiHeadSelfAttention(N)
    short = _np(ours(x[:, :4], padding_mask=np.ones((B, 4))))
    noise = np.random.default_rng(5).normal(size=(B, 3, H)).astype("float32") * 100
    longer = np.concatenate([x[:, :4], noise], axis=1)
    mask = np.concatenate([np.ones((B, 4)), np.zeros((B, 3))], axis=1)
    padded = _np(ours(longer, padding_mask=mask))[:, :4]
    assert np.abs(short - padded).max() <= TOL


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_half_precision_is_stable(policy):
    """Scores, mask and softmax in float32: no inf/nan in half precision, even with huge scores or a
    query whose every key is masked; and close to float32 at ordinary scale.

    Measured over 8 seeds (ordinary scale): max |diff| / max |output| <= 0.0012 (float16), <= 0.0062
    (bfloat16); tolerance 0.002 / 0.02. (At 30x the input scale the softmax is nearly one-hot and a
    bfloat16 rounding of the scores can flip it: only finiteness is checked there.)
    """
    keras.utils.set_random_seed(0)
    x, padding, attention = _inputs()
    ours32 = MultiHeadSelfAttention(N)
    ours16 = MultiHeadSelfAttention(N, dtype=policy)
    ours32(x)
    ours16(x)
    ours16.set_weights(ours32.get_weights())
    attention[0, 0, :] = 0  # a query that may see nothing at all
    out16, probs16 = ours16(x * 30, padding_mask=padding, attention_mask=attention, return_attention_scores=True)
    assert keras.backend.standardize_dtype(out16.dtype) == policy.split("_")[1]
    assert np.isfinite(_np(out16)).all() and np.isfinite(_np(probs16)).all()
    out16 = ours16(x, padding_mask=padding, attention_mask=attention)
    out32 = ours32(x, padding_mask=padding, attention_mask=attention)
    rel = np.abs(_np(out16) - _np(out32)).max() / np.abs(_np(out32)).max()
    tol = 0.002 if policy == "mixed_float16" else 0.02
    assert rel < tol, f"{policy}: max |diff| / max |output| vs float32 = {rel:.3g} >= {tol}"


def test_mask_value_is_finite_in_its_dtype():
    assert np.isfinite(np.float16(mask_value("float16")))
    assert mask_value("float32") == -1e9


def test_dropout_only_in_training():
    x, padding, _ = _inputs()
    layer = MultiHeadSelfAttention(N, dropout=0.5)
    a, b = _np(layer(x, padding_mask=padding)), _np(layer(x, padding_mask=padding, training=False))
    np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(0)
    c = _np(layer(x, padding_mask=padding, training=True))
    assert np.abs(a - c).max() > 1e-3


def test_get_config_round_trip():
    x, padding, _ = _inputs()
    layer = MultiHeadSelfAttention(N, dropout=0.1, fused_qkv=True, name="att")
    out = layer(x, padding_mask=padding)
    config = layer.get_config()
    assert config["num_heads"] == N and config["fused_qkv"] is True and config["dropout"] == 0.1
    clone = MultiHeadSelfAttention.from_config(config)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(_np(out), _np(clone(x, padding_mask=padding)))
    # Registered, so Keras can deserialize it by name.
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(again, MultiHeadSelfAttention)


def test_bad_arguments():
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        MultiHeadSelfAttention(3)(np.zeros((1, 2, 16), "float32"))
    with pytest.raises(ValueError, match=r"padding_mask must have shape \[batch, seq_len\]"):
        MultiHeadSelfAttention(2)(np.zeros((1, 2, 16), "float32"), padding_mask=np.ones((2,)))
    with pytest.raises(ValueError, match="num_heads must be a positive integer"):
        MultiHeadSelfAttention(0)
