"""BertPretrainer: tied MLM output, L = L_MLM + L_NSP exactly, it learns on real text, it round-trips."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from bertcourse import BertConfig
from bertcourse.data import corpora
from bertcourse.data.pipeline import pretraining_dataset
from bertcourse.models import BertBackbone
from bertcourse.models.pretraining import BertPretrainer
from bertcourse.pipelines import pipeline
from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path
from bertcourse.training import FillMaskProbe

VOCAB = 30522


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())


def _model(mlm_only=False, seed=0, **overrides):
    keras.utils.set_random_seed(seed)
    cfg = BertConfig.preset("tiny", vocab_size=VOCAB, num_layers=1, **overrides)
    return BertPretrainer(BertBackbone(cfg), mlm_only=mlm_only)


@pytest.fixture(scope="module")
def batch(tokenizer):
    docs = corpora.load_corpus("austen")[:3]
    return next(iter(pretraining_dataset(docs, tokenizer, seq_len=64, batch_size=8, seed=1)))


def test_output_projection_is_tied_to_token_embedding(batch):
    model = _model()
    table = model.backbone.token_embedding.embeddings
    assert sum(v is table for v in model.trainable_variables) == 1  # one variable, used twice
    assert not any("output_kernel" in v.path or v.shape == (128, VOCAB) for v in model.trainable_variables)
    x, y, w = batch
    # a vocabulary id that is a label but never an input: its row gets gradient only through the output layer
    label = int(y["mlm"].numpy()[0, 0])
    inputs = {k: tf.where(x["token_ids"] == label, 103, x["token_ids"]) if k == "token_ids" else v for k, v in x.items()}
    assert not (inputs["token_ids"].numpy() == label).any()
    with tf.GradientTape() as tape:
        pred = model(inputs, training=False)
        loss = model.compute_loss(inputs, y, pred, w)
    grad = tape.gradient(loss, table)
    row = tf.convert_to_tensor(grad)[label] if not isinstance(grad, tf.IndexedSlices) else \
        tf.math.unsorted_segment_sum(grad.values, grad.indices, VOCAB)[label]
    assert float(tf.norm(row)) > 0, "no gradient reached the tied output embedding"


def test_loss_is_the_sum_of_the_two_parts(batch):
    model = _model()
    x, y, w = batch
    pred = model(x, training=False)
    total = float(model.compute_loss(x, y, pred, w))
    logits, labels, weights = pred["mlm"].numpy().astype("float64"), y["mlm"].numpy(), w["mlm"].numpy()
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - \
        logits.max(-1, keepdims=True)
    ce = -np.take_along_axis(logp, labels[..., None], -1)[..., 0]
    l_mlm = (ce * weights).sum() / (weights.sum() + 1e-5)
    nsp = pred["nsp"].numpy().astype("float64")
    nsp_logp = nsp - np.log(np.exp(nsp).sum(-1, keepdims=True))
    l_nsp = -nsp_logp[np.arange(len(nsp)), y["nsp"].numpy()].mean()
    assert total == pytest.approx(l_mlm + l_nsp, rel=1e-5)
    parts = model.pretraining_losses(y, pred, w)
    assert float(parts[0]) == pytest.approx(l_mlm, rel=1e-5) and float(parts[1]) == pytest.approx(l_nsp, rel=1e-5)
    # an untrained model predicts ~uniformly: L_MLM ~ ln(vocab), L_NSP ~ ln 2
    assert abs(l_mlm - np.log(VOCAB)) < 0.5 and abs(l_nsp - np.log(2)) < 0.2


def test_fit_logs_every_part_and_loss_falls(tokenizer):
    docs = corpora.load_corpus("austen")[:6]
    ds = pretraining_dataset(docs, tokenizer, seq_len=64, batch_size=16, seed=3)
    model = _model(seed=3, hidden_dropout=0.0, attention_dropout=0.0)
    model.compile(keras.optimizers.AdamW(2e-3))
    history = model.fit(ds, steps_per_epoch=15, epochs=3, verbose=0).history
    for key in ("loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy", "mlm_perplexity"):
        assert key in history, key
    assert history["mlm_loss"][-1] < history["mlm_loss"][0] - 1.0, history["mlm_loss"]
    assert history["mlm_perplexity"][-1] == pytest.approx(np.exp(history["mlm_loss"][-1]), rel=1e-3)
    assert history["mlm_accuracy"][-1] > 0.05  # frequent words ("the", ",", ".") are learned first


def test_mlm_only_has_no_nsp(batch):
    model = _model(mlm_only=True)
    x, y, w = batch
    pred = model(x)
    assert set(pred) == {"mlm"}
    model.compile("adam")
    logs = model.train_on_batch(x, {"mlm": y["mlm"]}, {"mlm": w["mlm"]}, return_dict=True)
    assert "nsp_loss" not in logs and "mlm_loss" in logs


def test_serialization_round_trip(batch, tmp_path):
    model = _model()
    x, _, _ = batch
    expected = model(x)["mlm"].numpy()
    path = tmp_path / "pretrainer.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(x)["mlm"].numpy(), expected, atol=1e-5)
    tied = restored.backbone.token_embedding.embeddings
    assert restored.mlm_head.token_embedding.embeddings is tied
    clone = BertPretrainer.from_config(model.get_config())
    assert clone.mlm_only == model.mlm_only and clone.backbone.config == model.backbone.config


@pytest.mark.parametrize("normalize_first", [False, True])
def test_sparse_last_layer_gives_the_same_outputs_and_gradients(batch, normalize_first):
    """sparse_last_layer computes the last block at [CLS] + masked positions only: same logits
    (measured max |diff| <= 2e-7), same loss, same gradients (tolerance 1e-5)."""
    keras.utils.set_random_seed(0)
    cfg = BertConfig.preset("tiny", vocab_size=VOCAB, num_layers=2, hidden_dropout=0.0, attention_dropout=0.0)
    dense = BertPretrainer(BertBackbone(cfg, normalize_first=normalize_first))
    sparse = BertPretrainer(BertBackbone(cfg, normalize_first=normalize_first), sparse_last_layer=True)
    sparse.set_weights(dense.get_weights())
    x, y, w = batch
    grads = []
    for model in (dense, sparse):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = model.compute_loss(x, y, out, w)
        grads.append(tape.gradient(loss, model.trainable_variables))
        model.out = out
    for key in ("mlm", "nsp"):
        assert np.abs(dense.out[key].numpy() - sparse.out[key].numpy()).max() < 1e-5, key
    worst = max(float(np.abs(tf.convert_to_tensor(a).numpy() - tf.convert_to_tensor(b).numpy()).max())
                for a, b in zip(*grads) if a is not None)
    assert worst < 1e-5, f"gradient max |diff| {worst:.2e}"
    assert BertPretrainer.from_config(sparse.get_config()).sparse_last_layer


def test_clear_errors(batch):
    model = _model()
    with pytest.raises(ValueError, match="without `loss`"):
        model.compile("adam", loss="mse")
    x, y, w = batch
    with pytest.raises(ValueError, match="targets"):
        model.compute_loss(x, y["mlm"], model(x), w)


def test_fill_mask_pipeline_and_probe(tokenizer, batch):
    model = _model()
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer, top_k=4)
    out = fill("It is a truth universally [MASK].")
    assert len(out) == 4 and all(set(o) == {"score", "token", "token_str", "sequence"} for o in out)
    scores = [o["score"] for o in out]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0
    assert out[0]["sequence"].startswith("it is a truth universally")
    two = fill("The [MASK] of [MASK].")
    assert len(two) == 2 and len(two[0]) == 4
    batch_out = fill(["A [MASK] day.", "She [MASK] him."])
    assert len(batch_out) == 2
    with pytest.raises(ValueError, match=r"No \[MASK\]"):
        fill("no mask here")
    with pytest.raises(ValueError, match="Unknown task"):
        pipeline("translation", model=model, tokenizer=tokenizer)
    probe = FillMaskProbe(tokenizer, ["She was [MASK]."], top_k=2, verbose=False)
    x, y, w = batch
    model.compile("adam")
    model.fit(tf.data.Dataset.from_tensors((x, y, w)), epochs=2, verbose=0, callbacks=[probe])
    assert [r["epoch"] for r in probe.history] == [0, 1, 2]
    assert len(probe.history[0]["predictions"]) == 2


def test_mixed_bfloat16_pretrainer_trains(batch):
    keras.utils.set_random_seed(0)
    cfg = BertConfig.preset("tiny", vocab_size=VOCAB, num_layers=1)
    model = BertPretrainer(BertBackbone(cfg, dtype="mixed_bfloat16"))
    assert model.backbone.embeddings.token_embedding.embeddings.dtype == "float32"  # weights stay float32
    x, y, w = batch
    pred = model(x)
    assert pred["mlm"].dtype == "float32" and pred["nsp"].dtype == "float32"  # logits in float32
    model.compile(keras.optimizers.AdamW(1e-3))
    first = model.train_on_batch(x, y, w, return_dict=True)["loss"]
    for _ in range(3):
        last = model.train_on_batch(x, y, w, return_dict=True)["loss"]
    assert np.isfinite(first) and np.isfinite(last) and last < first
