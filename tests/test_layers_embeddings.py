"""BertEmbeddings: the sum, the LayerNorm, the position-table limit, the config."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from bertcourse.layers import BertEmbeddings, SequenceTooLongError  # noqa: E402

pytestmark = pytest.mark.backend_agnostic


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")))


def _layer(**kw):
    args = dict(vocab_size=50, hidden_size=16, max_position_embeddings=12, type_vocab_size=2, dropout=0.1)
    args.update(kw)
    return BertEmbeddings(**args)


def test_is_layernorm_of_token_plus_position_plus_segment():
    emb = _layer()
    ids = np.array([[2, 7, 9, 0], [5, 5, 1, 3]], "int32")
    segs = np.array([[0, 0, 1, 1], [0, 1, 1, 1]], "int32")
    out = _np(emb(ids, segs))
    t = _np(emb.token_embedding.embeddings)[ids]
    p = _np(emb.position_embeddings)[:4][None]
    s = _np(emb.segment_embedding.embeddings)[segs]
    x = t + p + s
    want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
    assert np.abs(out - want).max() < 1e-5
    # The same token at a different position gets a different vector; at the same position, the same.
    assert np.abs(out[1, 0] - out[1, 1]).max() > 1e-3
    # Equal up to float32 round-off: a length-1 batch may take another vectorised path on another CPU.
    np.testing.assert_allclose(_np(emb(ids[:, :1], segs[:, :1]))[0, 0], out[0, 0], rtol=0, atol=2e-6)


def test_segment_ids_default_to_zero():
    emb = _layer()
    ids = np.array([[2, 7, 9]], "int32")
    np.testing.assert_array_equal(_np(emb(ids)), _np(emb(ids, np.zeros_like(ids))))


def test_position_table_size_and_weights():
    emb = _layer(max_position_embeddings=20)
    emb(np.zeros((1, 3), "int32"))
    assert tuple(emb.position_embeddings.shape) == (20, 16)
    assert emb.count_params() == (50 + 20 + 2) * 16 + 2 * 16


def test_too_long_input_names_the_limit_and_lesson_13():
    emb = _layer(max_position_embeddings=12)
    with pytest.raises(SequenceTooLongError, match=r"length 13 .*max_position_embeddings=12; 512 for BERT.*lesson 13"):
        emb(np.zeros((1, 13), "int32"))
    assert tuple(emb(np.zeros((1, 12), "int32")).shape) == (1, 12, 16)  # exactly the limit is fine


def test_dropout_training_only():
    emb = _layer(dropout=0.5)
    ids = np.array([[2, 7, 9, 4]], "int32")
    np.testing.assert_array_equal(_np(emb(ids)), _np(emb(ids, training=False)))
    assert np.abs(_np(emb(ids)) - _np(emb(ids, training=True))).max() > 1e-3


def test_get_config_round_trip():
    emb = _layer(layer_norm_epsilon=1e-6, initializer_range=0.05)
    config = emb.get_config()
    assert config["max_position_embeddings"] == 12 and config["initializer_range"] == 0.05
    clone = BertEmbeddings.from_config(config)
    assert clone.get_config() == config
    ids = np.array([[1, 2, 3]], "int32")
    out = emb(ids)
    clone(ids)
    clone.set_weights(emb.get_weights())
    np.testing.assert_array_equal(_np(out), _np(clone(ids)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
        BertEmbeddings(0, 16)
