"""BERT's optimizer recipe: decay exclusions by path, the schedule, clipping, accumulation."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from bertcourse import BertConfig
from bertcourse.models import BertBackbone
from bertcourse.models.pretraining import BertPretrainer
from bertcourse.training.optim import WarmupPolynomialDecay, bert_adamw, weight_decay_split


def test_schedule_warmup_then_linear_decay():
    s = WarmupPolynomialDecay(1e-3, total_steps=100, warmup_steps=10)
    values = np.array([float(s(i)) for i in range(0, 101)])
    np.testing.assert_allclose(values[:11], np.linspace(0, 1e-3, 11), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(values[10:], np.linspace(1e-3, 0, 91), rtol=1e-4, atol=1e-9)
    assert float(s(500)) == 0.0  # stays at the end value after total_steps
    quad = WarmupPolynomialDecay(1e-3, 100, 0, power=2.0)
    assert float(quad(50)) == pytest.approx(1e-3 * 0.25, rel=1e-5)
    assert WarmupPolynomialDecay.from_config(s.get_config()).get_config() == s.get_config()


def test_schedule_errors():
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupPolynomialDecay(1e-3, 10, 20)
    with pytest.raises(ValueError, match="total_steps"):
        WarmupPolynomialDecay(1e-3, 0)
    with pytest.raises(ValueError, match="warmup_ratio"):
        bert_adamw(1e-3, 10, warmup_ratio=1.5)


def test_weight_decay_excludes_layer_norm_and_biases_by_path():
    keras.utils.set_random_seed(0)
    model = BertPretrainer(BertBackbone(BertConfig.preset("tiny", vocab_size=50, num_layers=1)))
    opt = bert_adamw(1e-3, 100)
    decayed, excluded = weight_decay_split(opt, model.trainable_variables)
    paths = [v.path for v in model.trainable_variables]
    # Decayed: every weight matrix and embedding table. Not decayed: LayerNorm gamma/beta and biases.
    assert sorted(decayed) == sorted(p for p in paths if p.endswith(("/kernel", "embeddings"))), decayed
    assert sorted(excluded) == sorted(p for p in paths if p.endswith(("/gamma", "/beta", "bias"))), excluded
    assert len(decayed) == 12 and len(excluded) == 18  # one block: 6 kernels + 3 tables + 3 head kernels
    for must in ("embeddings/token_embedding/embeddings", "encoder_layer_0/attention/query/kernel", "pooler/kernel",
                 "mlm_head/transform/kernel", "nsp_head/dense/kernel"):
        assert must in decayed
    for must in ("embeddings/layer_norm/gamma", "encoder_layer_0/attention/query/bias", "mlm_head/output_bias",
                 "mlm_head/layer_norm/beta"):
        assert must in excluded
    assert all(p.endswith(("/gamma", "/beta", "/bias", "output_bias")) for p in excluded), excluded
    assert any("layer_norm" in p for p in excluded) and "mlm_head/output_bias" in excluded


def _regression_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(16, activation="tanh", name="hidden")(inputs)
    h = keras.layers.LayerNormalization(name="layer_norm")(h)
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(h))


def test_four_accumulated_micro_batches_equal_one_batch_of_32():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    results = []
    for accumulation, batch in ((None, 32), (4, 8)):
        model = _regression_model()
        opt = bert_adamw(1e-2, total_steps=3, warmup_ratio=0.0, gradient_accumulation_steps=accumulation)
        model.compile(opt, loss="mse")
        for _ in range(3):  # three optimizer updates
            for start in range(0, 32, batch):
                model.train_on_batch(x[start:start + batch], y[start:start + batch])
        assert int(opt.iterations) == 3
        results.append([w.copy() for w in model.get_weights()])
    max_diff = max(float(np.abs(a - b).max()) for a, b in zip(*results))
    assert max_diff < 1e-6, f"accumulated vs full batch: max abs weight diff {max_diff:.2e}"


def test_global_norm_clipping():
    var = keras.Variable(np.zeros(4, "float32"), name="w")
    opt = bert_adamw(1.0, total_steps=10, warmup_ratio=0.0, weight_decay=0.0, clipnorm=1.0)
    opt.build([var])
    grads = [tf.constant([30.0, 40.0, 0.0, 0.0])]  # norm 50
    clipped = opt._clip_gradients(grads)
    np.testing.assert_allclose(clipped[0].numpy(), [0.6, 0.8, 0.0, 0.0], rtol=1e-6)


def test_decay_is_decoupled_and_lr_scaled():
    var = keras.Variable(np.ones(3, "float32"), name="kernel")
    opt = bert_adamw(0.1, total_steps=1, warmup_ratio=0.0, weight_decay=0.5)
    opt.apply([tf.zeros(3)], [var])  # zero gradient: only decay acts, with the step-0 learning rate (0.1)
    np.testing.assert_allclose(var.numpy(), 1 - 0.1 * 0.5, rtol=1e-6)
