"""EncoderBlock == keras_hub.layers.TransformerEncoder (post-LN and pre-LN); FeedForward's GELUs."""

import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402

from bertcourse.layers import EncoderBlock, FeedForward  # noqa: E402

pytestmark = pytest.mark.backend_agnostic


def gelu_approximate(x):  # what keras_hub.models.BertBackbone passes to its TransformerEncoder
    return keras.activations.gelu(x, approximate=True)

TOL = 1e-5
B, S, H, N, I = 3, 9, 32, 4, 64


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")))


def copy_encoder_weights(ours: EncoderBlock, ref) -> None:
    """Our block's weights into a keras-hub TransformerEncoder (reshaping the attention kernels)."""
    h = ours.attention.hidden_size
    n, d = ours.num_heads, h // ours.num_heads
    att, ra = ours.attention, ref._self_attention_layer
    for mine, theirs in ((att.query_dense, ra._query_dense), (att.key_dense, ra._key_dense),
                         (att.value_dense, ra._value_dense)):
        theirs.kernel.assign(_np(mine.kernel).reshape(h, n, d))
        theirs.bias.assign(_np(mine.bias).reshape(n, d))
    ra._output_dense.kernel.assign(_np(att.output_dense.kernel).reshape(n, d, h))
    ra._output_dense.bias.assign(_np(att.output_dense.bias))
    pairs = ((ours.attention_layer_norm, ref._self_attention_layer_norm),
             (ours.feedforward.intermediate_dense, ref._feedforward_intermediate_dense),
             (ours.feedforward.output_dense, ref._feedforward_output_dense),
             (ours.feedforward_layer_norm, ref._feedforward_layer_norm))
    for mine, theirs in pairs:
        theirs.set_weights(mine.get_weights())


def _inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, S, H)).astype("float32")
    padding = np.ones((B, S), "int32")
    padding[1, 6:] = 0
    padding[2, 3:] = 0
    return x, padding


def _randomize(layer, seed=0):
    """Non-trivial biases and LayerNorm parameters, so the copy is really tested."""
    rng = np.random.default_rng(seed)
    layer.set_weights([w + rng.normal(scale=0.1, size=w.shape).astype("float32") for w in layer.get_weights()])


@pytest.mark.parametrize("normalize_first", [False, True], ids=["post_ln", "pre_ln"])
@pytest.mark.parametrize("with_mask", [True, False], ids=["padding_mask", "no_mask"])
def test_equals_keras_hub_transformer_encoder(normalize_first, with_mask):
    x, padding = _inputs()
    mask = padding if with_mask else None
    ours = EncoderBlock(N, I, hidden_act="gelu_approximate", layer_norm_epsilon=1e-12,
                        normalize_first=normalize_first, hidden_dropout=0.1, attention_dropout=0.1)
    ours(x)
    _randomize(ours)
    ref = keras_hub.layers.TransformerEncoder(I, N, dropout=0.1, activation=gelu_approximate,
                                              layer_norm_epsilon=1e-12, normalize_first=normalize_first)
    ref(x)
    copy_encoder_weights(ours, ref)
    want, want_probs = ref(x, padding_mask=mask, return_attention_scores=True)
    got, got_probs = ours(x, padding_mask=mask, return_attention_scores=True)
    diff = float(np.abs(_np(want) - _np(got)).max())
    pdiff = float(np.abs(_np(want_probs) - _np(got_probs)).max())
    name = "pre-LN" if normalize_first else "post-LN"
    assert diff <= TOL, f"{name}: output max |diff| = {diff:.3g} > {TOL}"
    assert pdiff <= TOL, f"{name}: attention probabilities max |diff| = {pdiff:.3g} > {TOL}"


def test_post_ln_output_is_normalised():
    x, padding = _inputs()
    out = _np(EncoderBlock(N, I)(x * 5 + 3, padding_mask=padding))
    np.testing.assert_allclose(out.mean(-1), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(-1), 1, atol=1e-3)


def test_dropout_off_in_inference_on_in_training():
    x, padding = _inputs()
    block = EncoderBlock(N, I, hidden_dropout=0.3, attention_dropout=0.3)
    a, b = _np(block(x, padding_mask=padding)), _np(block(x, padding_mask=padding))
    np.testing.assert_array_equal(a, b)
    c = _np(block(x, padding_mask=padding, training=True))
    assert np.abs(a - c).max() > 1e-3


def test_encoder_get_config_round_trip():
    x, padding = _inputs()
    block = EncoderBlock(N, I, hidden_act="relu", normalize_first=True, layer_norm_epsilon=1e-6, name="blk")
    out = block(x, padding_mask=padding)
    config = block.get_config()
    for key, value in dict(num_heads=N, intermediate_size=I, hidden_act="relu", normalize_first=True,
                           layer_norm_epsilon=1e-6).items():
        assert config[key] == value, key
    clone = EncoderBlock.from_config(config)
    clone(x)
    clone.set_weights(block.get_weights())
    np.testing.assert_array_equal(_np(out), _np(clone(x, padding_mask=padding)))


def test_exact_and_approximate_gelu():
    x = np.linspace(-6, 6, 101).astype("float32")
    exact = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.astype("float64")])
    ffn = FeedForward(4, activation="gelu")
    ffn_approx = FeedForward(4, activation="gelu_approximate")
    f, fa = ffn.intermediate_dense.activation, ffn_approx.intermediate_dense.activation
    assert np.abs(_np(f(x)) - exact).max() < 1e-6
    gap = np.abs(_np(fa(x)) - exact).max()
    assert 1e-5 < gap < 1e-3, f"approximate GELU differs from exact by {gap:.3g}"


def test_feedforward_shapes_params_and_config():
    x, _ = _inputs()
    ffn = FeedForward(I, activation="gelu_approximate")
    assert tuple(ffn(x).shape) == (B, S, H)
    assert ffn.count_params() == (H * I + I) + (I * H + H)
    clone = FeedForward.from_config(ffn.get_config())
    assert clone.get_config() == ffn.get_config()
    with pytest.raises(ValueError, match="activation must be one of"):
        FeedForward(I, activation="swish")


def test_package_converters_for_single_layers():
    """bertcourse.convert's layer-level helpers (used by lessons 03 and 04) give the same functions."""
    from bertcourse.convert import attention_to_keras, encoder_block_to_keras_hub

    x, padding = _inputs()
    block = EncoderBlock(N, I, hidden_act="gelu", normalize_first=True)
    block(x)
    _randomize(block, seed=3)
    ref = encoder_block_to_keras_hub(block)
    diff = float(np.abs(_np(ref(x, padding_mask=padding)) - _np(block(x, padding_mask=padding))).max())
    assert diff <= TOL, f"encoder_block_to_keras_hub: max |diff| = {diff:.3g}"
    mha = attention_to_keras(block.attention)
    keras_mask = np.broadcast_to(padding[:, None, :], (B, S, S)).astype(bool)
    diff = float(np.abs(_np(mha(x, x, attention_mask=keras_mask)) - _np(block.attention(x, padding_mask=padding))).max())
    assert diff <= TOL, f"attention_to_keras: max |diff| = {diff:.3g}"


@pytest.mark.parametrize("normalize_first", [False, True])
def test_query_positions_equal_gathering_the_full_output(normalize_first):
    """The last-layer shortcut of MLM pretraining: outputs for a subset of positions (keys and values
    from all) equal those rows of the full block output. Measured max |diff| ~2e-7 (float32)."""
    from bertcourse.layers import EncoderBlock

    keras.utils.set_random_seed(3)
    block = EncoderBlock(4, 64, normalize_first=normalize_first)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 12, 32)).astype("float32")
    mask = np.ones((3, 12), "int32")
    mask[1, 8:] = 0
    attention_mask = (rng.random((3, 12, 12)) > 0.2).astype("int32")
    np.fill_diagonal(attention_mask[0], 1)
    positions = np.array([[0, 3, 3, 7], [0, 1, 5, 2], [0, 11, 10, 4]], "int32")
    full = np.asarray(block(x, padding_mask=mask, attention_mask=attention_mask))
    part = np.asarray(block(x, padding_mask=mask, attention_mask=attention_mask, query_positions=positions))
    assert part.shape == (3, 4, 32)
    want = np.take_along_axis(full, positions[..., None], axis=1)
    assert np.abs(part - want).max() < 1e-5
