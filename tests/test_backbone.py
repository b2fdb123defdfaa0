"""BertBackbone: parameter counts, configs, save/load, dropout, bad inputs, initializer."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402

from bertcourse import PRESETS, BertConfig  # noqa: E402
from bertcourse.convert import keras_hub_kwargs  # noqa: E402
from bertcourse.layers import SequenceTooLongError  # noqa: E402
from bertcourse.models import BertBackbone  # noqa: E402

SMALL = BertConfig.preset("tiny", vocab_size=200, num_layers=2, max_position_embeddings=32)


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")))


def _batch(b=2, s=10, vocab=200, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(b, s)).astype("int32")
    mask = np.ones((b, s), "int32")
    mask[0, s - 3:] = 0
    ids[mask == 0] = 0
    segs = np.zeros((b, s), "int32")
    segs[:, s // 2:] = 1
    return {"token_ids": ids, "segment_ids": segs, "padding_mask": mask}


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return BertBackbone(SMALL)


# ------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "large"])
def test_parameter_count_equals_config(preset):
    cfg = BertConfig.preset(preset)
    backbone = BertBackbone(cfg)
    assert backbone.count_params() == cfg.num_parameters(), preset
    breakdown = cfg.parameter_breakdown()
    assert backbone.get_layer("embeddings").count_params() == breakdown["embeddings"]
    assert sum(b.count_params() for b in backbone.encoder_layers) == breakdown["attention"] + breakdown["feedforward"]
    assert backbone.get_layer("pooler").count_params() == breakdown["pooler"]


@pytest.mark.slow
def test_parameter_count_large():
    cfg = BertConfig.preset("large")
    assert BertBackbone(cfg).count_params() == cfg.num_parameters() == 335_141_888


@pytest.mark.parametrize("preset", ["tiny", "mini", "small"])
def test_parameter_count_equals_keras_hub(preset):
    cfg = BertConfig.preset(preset)
    assert keras_hub.models.BertBackbone(**keras_hub_kwargs(cfg)).count_params() == cfg.num_parameters()


def test_published_sizes():
    assert round(BertConfig.preset("base").num_parameters() / 1e6) == 109   # "110M"
    assert round(BertConfig.preset("large").num_parameters() / 1e6) == 335  # "340M"


# ------------------------------------------------------------------ construction and outputs
def test_accepts_config_preset_name_or_dict():
    assert BertBackbone("tiny").config == BertConfig.preset("tiny")
    assert BertBackbone(SMALL.to_dict()).config == SMALL
    with pytest.raises(ValueError, match="Unknown preset 'huge'"):
        BertBackbone("huge")
    with pytest.raises(TypeError, match="config must be a BertConfig"):
        BertBackbone(3)


def test_outputs_and_optional_outputs(model):
    batch = _batch()
    out = model(batch)
    assert set(out) == {"sequence_output", "pooled_output"}
    assert tuple(out["sequence_output"].shape) == (2, 10, SMALL.hidden_size)
    cls = _np(out["sequence_output"])[:, 0]
    pooled = np.tanh(cls @ _np(model.pooler.kernel) + _np(model.pooler.bias))
    assert np.abs(pooled - _np(out["pooled_output"])).max() < 1e-5
    full = BertBackbone(SMALL, output_hidden_states=True, output_attention_scores=True)
    full.set_weights(model.get_weights())
    out2 = full(batch)
    assert tuple(out2["hidden_states"].shape) == (2, SMALL.num_layers + 1, 10, SMALL.hidden_size)
    assert tuple(out2["attention_scores"].shape) == (2, SMALL.num_layers, SMALL.num_heads, 10, 10)
    np.testing.assert_array_equal(_np(out2["sequence_output"]), _np(out["sequence_output"]))
    probs = _np(out2["attention_scores"])
    assert probs[0, :, :, :, 7:].max() == 0.0  # padded keys are never attended to
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_token_embedding_and_config_attributes(model):
    assert model.token_embedding is model.embeddings.token_embedding
    assert tuple(model.token_embedding.embeddings.shape) == (SMALL.vocab_size, SMALL.hidden_size)
    assert model.config is SMALL or model.config == SMALL


def test_fused_qkv_gives_the_same_outputs(model):
    fused = BertBackbone(SMALL, fused_qkv=True)
    fused.set_weights(model.get_weights())
    batch = _batch()
    diff = np.abs(_np(model(batch)["sequence_output"]) - _np(fused(batch)["sequence_output"])).max()
    assert diff <= 1e-5, f"fused QKV max |diff| = {diff:.3g}"


# ------------------------------------------------------------------ serialization, dropout
def test_get_config_from_config_round_trip(model):
    config = model.get_config()
    assert config["config"] == SMALL.to_dict()
    clone = BertBackbone.from_config(config)
    assert clone.config == SMALL
    clone.set_weights(model.get_weights())
    batch = _batch()
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_array_equal(_np(model(batch)[key]), _np(clone(batch)[key]))


def test_keras_file_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    backbone = BertBackbone(SMALL, output_attention_scores=True, dtype="mixed_bfloat16")
    path = tmp_path / "backbone.keras"
    backbone.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, BertBackbone)
    assert loaded.config == SMALL and loaded.output_attention_scores
    assert loaded.dtype_policy.name == "mixed_bfloat16"
    batch = _batch()
    want, got = backbone(batch), loaded(batch)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_array_equal(_np(want[key]), _np(got[key]), err_msg=key)


def test_dropout_off_in_inference(model):
    batch = _batch()
    a = _np(model(batch)["sequence_output"])
    np.testing.assert_array_equal(a, _np(model(batch, training=False)["sequence_output"]))
    # predict() runs a compiled graph: same function, float32 round-off only.
    np.testing.assert_allclose(a, _np(model.predict(batch, verbose=0)["sequence_output"]), atol=1e-5)
    assert np.abs(a - _np(model(batch, training=True)["sequence_output"])).max() > 1e-3


# ------------------------------------------------------------------ bad input
def test_wrong_dict_keys(model):
    batch = _batch()
    hf = {"input_ids": batch["token_ids"], "token_type_ids": batch["segment_ids"],
          "attention_mask": batch["padding_mask"]}
    with pytest.raises(KeyError, match=r"missing \['token_ids', 'segment_ids', 'padding_mask'\].*"
                                        r"'input_ids' is called 'token_ids' here"):
        model(hf)
    with pytest.raises(KeyError, match=r"missing \['padding_mask'\]"):
        model({k: v for k, v in batch.items() if k != "padding_mask"})
    with pytest.raises(TypeError, match="takes a dict with keys"):
        model(batch["token_ids"])


def test_rank_1_ids(model):
    batch = {k: v[0] for k, v in _batch().items()}
    with pytest.raises(ValueError, match=r"'token_ids' must have shape \[batch, seq_len\].*ids\[None, :\]"):
        model(batch)


def test_float_ids(model):
    batch = _batch()
    batch["token_ids"] = batch["token_ids"].astype("float32")
    with pytest.raises(TypeError, match=r"'token_ids' must hold integers.*float32"):
        model(batch)


def test_mismatched_shapes(model):
    batch = _batch()
    batch["padding_mask"] = batch["padding_mask"][:, :7]
    with pytest.raises(ValueError, match=r"'token_ids' has shape \(2, 10\) but 'padding_mask' has shape \(2, 7\)"):
        model(batch)


def test_sequence_over_the_position_table(model):
    batch = _batch(s=SMALL.max_position_embeddings + 1)
    with pytest.raises(SequenceTooLongError, match=r"length 33 .*max_position_embeddings=32.*lesson 13"):
        model(batch)


# ------------------------------------------------------------------ initializer
def test_initializer_is_truncated_normal_std_002():
    """BERT's init: N(0, 0.02) truncated at 2 std, so the sample std is 0.02 * 0.8796 = 0.01759.

    Tolerance: 3% of that std (the standard error over ~1.5M values is ~0.1%).
    """
    keras.utils.set_random_seed(123)
    backbone = BertBackbone(BertConfig.preset("mini", vocab_size=2000))
    kernels = [_np(v).ravel() for v in backbone.weights
               if v.path.endswith(("kernel", "embeddings")) and "layer_norm" not in v.path]
    values = np.concatenate(kernels)
    assert values.size > 1_000_000
    expected = 0.02 * 0.879626
    assert abs(values.std() - expected) / expected < 0.03, f"std {values.std():.5f}, expected {expected:.5f}"
    assert abs(values.mean()) < 1e-4
    assert np.abs(values).max() <= 0.04 + 1e-6  # truncated at two standard deviations
    biases = np.concatenate([_np(v).ravel() for v in backbone.weights if v.path.endswith(("bias", "beta"))])
    assert not biases.any()
    gammas = np.concatenate([_np(v).ravel() for v in backbone.weights if v.path.endswith("gamma")])
    assert (gammas == 1).all()


def test_global_mixed_bfloat16_policy_is_honoured():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        backbone = BertBackbone(SMALL)
        out = backbone(_batch())
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(out["sequence_output"].dtype) == "bfloat16"
    assert all(v.dtype == "float32" for v in backbone.weights)  # variables stay float32
    assert np.isfinite(_np(out["sequence_output"])).all()


def test_trains_inside_a_keras_model():
    """Used as a sub-model (symbolic inputs) and trained with fit(): the validation accepts both."""
    model = BertBackbone(SMALL)
    inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
              for name in ("token_ids", "segment_ids", "padding_mask")}
    logits = keras.layers.Dense(1)(model(inputs)["pooled_output"])
    classifier = keras.Model(inputs, logits)
    classifier.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    batch = _batch(b=4)
    history = classifier.fit(batch, np.array([0, 1, 0, 1], "float32"), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    with pytest.raises(TypeError, match="must hold integers"):
        model({name: keras.Input(shape=(None,), name=name) for name in inputs})  # float32 Inputs


def test_pre_ln_backbone_ends_in_a_layer_norm_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    pre = BertBackbone(BertConfig.preset("tiny", vocab_size=100, num_layers=2), normalize_first=True,
                       output_hidden_states=True)
    ids = np.array([[2, 7, 8, 9, 3, 0]], "int32")
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": (ids > 0).astype("int32")}
    out = pre(x)
    seq = np.asarray(out["sequence_output"])
    # a fresh LayerNorm (gamma 1, beta 0): every position has mean 0 and variance 1
    np.testing.assert_allclose(seq.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(seq.var(-1), 1.0, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(out["hidden_states"])[:, -1], seq)
    assert pre.count_params() == BertConfig.preset("tiny", vocab_size=100, num_layers=2).num_parameters() + 2 * 128
    path = tmp_path / "pre.keras"
    pre.save(path)
    again = keras.saving.load_model(path)
    assert again.normalize_first and again.config.normalize_first
    np.testing.assert_allclose(np.asarray(again(x)["sequence_output"]), seq, atol=1e-6)


def test_pre_ln_cannot_be_saved_as_a_hugging_face_bert(tmp_path):
    from bertcourse.convert import CheckpointError, save_hf_bert
    from bertcourse.text import WordPieceTokenizer

    pre = BertBackbone(BertConfig.preset("tiny", vocab_size=6), normalize_first=True)
    tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])
    with pytest.raises(CheckpointError, match="post-LayerNorm only"):
        save_hf_bert(pre, tok, tmp_path)


def test_normalize_first_comes_from_the_config_and_the_kwarg_overrides_it():
    from_config = BertBackbone(BertConfig.preset("tiny", vocab_size=50, normalize_first=True))
    assert from_config.normalize_first and from_config.final_layer_norm is not None
    assert all(block.normalize_first for block in from_config.encoder_layers)
    overridden = BertBackbone(BertConfig.preset("tiny", vocab_size=50), normalize_first=True)
    assert overridden.config.normalize_first  # the override is written into the config ...
    config = overridden.get_config()
    assert config["config"]["normalize_first"] and "normalize_first" not in config
    assert BertBackbone.from_config(config).normalize_first  # ... so get_config round trips
    back = BertBackbone(BertConfig.preset("tiny", vocab_size=50, normalize_first=True), normalize_first=False)
    assert not back.normalize_first and back.final_layer_norm is None
    # a get_config written before the field moved: a top-level key, a config without it
    old = dict(BertBackbone(BertConfig.preset("tiny", vocab_size=50)).get_config(), normalize_first=True)
    del old["config"]["normalize_first"]
    assert BertBackbone.from_config(old).normalize_first


def _ids(token_ids, segment_ids=None):
    token_ids = np.asarray(token_ids, "int32")
    segs = np.zeros_like(token_ids) if segment_ids is None else np.asarray(segment_ids, "int32")
    return {"token_ids": token_ids, "segment_ids": segs, "padding_mask": np.ones_like(token_ids)}


@pytest.mark.parametrize("ids,segs,match", [
    ([[5, -1, 7]], None, r"'token_ids' holds -1 at \[0, 1\], outside the vocabulary: token ids must be in "
                         r"\[0, 200\) \(vocab_size=200\)"),
    ([[5, 6], [7, 200]], None, r"'token_ids' holds 200 at \[1, 1\].*\[0, 200\)"),
    ([[5, 6, 7]], [[0, 1, 2]], r"'segment_ids' holds 2 at \[0, 2\], outside the segment table: segment ids must "
                               r"be in \[0, 2\) \(type_vocab_size=2\)"),
    ([[5, 6, 7]], [[0, -1, 0]], r"'segment_ids' holds -1"),
], ids=["token_minus_1", "token_vocab_size", "segment_2", "segment_minus_1"])
def test_out_of_range_ids_are_a_clear_model_input_error(model, ids, segs, match):
    """Issue 14 item 9: -1 silently read the last row; >= vocab_size / segment 2 gave raw InvalidArgumentErrors."""
    import tensorflow as tf

    from bertcourse.errors import BertcourseError, ModelInputError

    with pytest.raises(ModelInputError, match=match) as info:
        model(_ids(ids, segs))
    assert isinstance(info.value, BertcourseError) and isinstance(info.value, ValueError)
    with pytest.raises(ModelInputError):  # eager TensorFlow tensors are checked too
        model({k: tf.constant(v) for k, v in _ids(ids, segs).items()})


def test_value_check_skips_symbolic_calls(model):
    """Graph calls cannot see values: tf.function traces (and Keras' fit/predict) are not checked."""
    import tensorflow as tf

    good = _ids([[5, 6, 7]])
    np.testing.assert_allclose(_np(tf.function(lambda x: model(x)["pooled_output"])(good)),
                               _np(model(good)["pooled_output"]), atol=1e-6)
    assert _np(model(_ids(np.zeros((0, 3))))["sequence_output"]).shape == (0, 3, SMALL.hidden_size)
