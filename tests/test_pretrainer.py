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


# ---------------------------------------------------------------- left-to-right (causal) vs bidirectional

def _backbones(vocab=100, num_layers=2):
    """A bidirectional and a causal backbone with the same weights (no dropout)."""
    keras.utils.set_random_seed(0)
    cfg = BertConfig.preset("tiny", vocab_size=vocab, num_layers=num_layers, hidden_dropout=0.0,
                            attention_dropout=0.0)
    bidirectional, causal = BertBackbone(cfg), BertBackbone(cfg, causal=True)
    causal.set_weights(bidirectional.get_weights())
    return bidirectional, causal


def test_causal_output_at_i_ignores_every_token_to_its_right():
    bidirectional, causal = _backbones()
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 100, size=(2, 12)).astype("int32")
    changed = ids.copy()
    changed[:, 7] = np.where(ids[:, 7] == 50, 51, 50)  # one token, at position 7
    inputs = lambda t: {"token_ids": t, "segment_ids": np.zeros_like(t), "padding_mask": np.ones_like(t)}
    for model in (bidirectional, causal):
        before = model(inputs(ids))["sequence_output"].numpy()
        after = model(inputs(changed))["sequence_output"].numpy()
        left_of_change = np.abs(before[:, :7] - after[:, :7]).max()
        rest = np.abs(before[:, 7:] - after[:, 7:]).max(axis=-1)
        if model.causal:
            assert left_of_change == 0.0  # not one bit: positions 0..6 never see position 7
        else:
            assert left_of_change > 1e-3  # BERT: every position reads both sides
        assert (rest > 1e-3).all()  # position 7 and everything after it does change
    # with the same weights, the causal model's FIRST position equals a one-token bidirectional pass
    first = causal(inputs(ids))["sequence_output"].numpy()[:, 0]
    alone = bidirectional(inputs(ids[:, :1]))["sequence_output"].numpy()[:, 0]
    np.testing.assert_allclose(first, alone, atol=1e-5)


def test_causal_backbone_config_round_trips():
    _, causal = _backbones()
    config = causal.get_config()
    assert config["causal"] is True and BertBackbone(BertConfig.preset("tiny", vocab_size=100)).get_config()[
        "causal"] is False
    clone = BertBackbone.from_config(config)
    assert clone.causal
    clone.set_weights(causal.get_weights())
    ids = np.arange(5, 15, dtype="int32")[None]
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
    np.testing.assert_allclose(clone(x)["sequence_output"].numpy(), causal(x)["sequence_output"].numpy(), atol=1e-6)


def test_sparse_last_layer_keeps_the_causal_mask(batch):
    """BertPretrainer's sparse last layer must pass the backbone's causal mask on, as the dense path does."""
    keras.utils.set_random_seed(0)
    cfg = BertConfig.preset("tiny", vocab_size=VOCAB, num_layers=2, hidden_dropout=0.0, attention_dropout=0.0)
    dense = BertPretrainer(BertBackbone(cfg, causal=True), mlm_only=True)
    sparse = BertPretrainer(BertBackbone(cfg, causal=True), mlm_only=True, sparse_last_layer=True)
    bidirectional = BertPretrainer(BertBackbone(cfg), mlm_only=True, sparse_last_layer=True)
    sparse.set_weights(dense.get_weights())
    bidirectional.set_weights(dense.get_weights())
    x, _, _ = batch
    out = dense(x)["mlm"].numpy()
    assert np.abs(out - sparse(x)["mlm"].numpy()).max() < 1e-5
    assert np.abs(out - bidirectional(x)["mlm"].numpy()).max() > 1e-3


def test_causal_pretrainer_refuses_a_bidirectional_backbone():
    from bertcourse.models import CausalLMPretrainer

    with pytest.raises(ValueError, match="causal=True"):
        CausalLMPretrainer(BertBackbone(BertConfig.preset("tiny", vocab_size=100)))


def test_causal_batches_are_the_mlm_batches_unmasked(tokenizer):
    import random

    from bertcourse.data.nsp import create_nsp_pairs, tokenize_documents
    from bertcourse.data.pipeline import pack_pairs
    from bertcourse.training.pretrain import causal_lm_batches

    docs = corpora.load_corpus("austen")[:3]
    data = pretraining_dataset(docs, tokenizer, seq_len=64, batch_size=8, seed=1, shuffle=False, repeat=False)
    x, y, w = next(iter(causal_lm_batches(data)))
    pairs = list(create_nsp_pairs(tokenize_documents(docs, tokenizer), max_seq_length=64, rng=random.Random(1)))
    packed = pack_pairs(pairs[:8], 64, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    np.testing.assert_array_equal(x["token_ids"].numpy(), packed["token_ids"])  # no [MASK], no random tokens
    assert set(x) == {"token_ids", "segment_ids", "padding_mask"}
    np.testing.assert_array_equal(y["lm"].numpy()[:, :-1], packed["token_ids"][:, 1:])
    np.testing.assert_array_equal(w["lm"].numpy()[:, :-1], packed["padding_mask"][:, 1:])
    assert (w["lm"].numpy()[:, -1] == 0).all()


def test_causal_model_trains_and_is_scored_on_the_mlm_positions(tokenizer):
    from bertcourse.training.pretrain import (PretrainConfig, evaluate_causal_lm, evaluate_mlm,
                                              heldout_mlm_dataset, pretrain, pretraining_train_config,
                                              unmasked_token_ids)

    train_docs, heldout = corpora.split_documents(corpora.load_corpus("austen")[:30])
    config = PretrainConfig(preset="tiny", seq_len=32, objective="causal", dropout=0.0)
    model, history = pretrain(train_docs, tokenizer, config,
                              pretraining_train_config(steps=30, steps_per_epoch=10, batch_size=8), verbose=0)
    assert model.objective == "causal" and model.backbone.causal
    assert history["lm_loss"][-1] < history["lm_loss"][0] - 0.5, history["lm_loss"]
    result = evaluate_mlm(model, heldout, tokenizer, seq_len=32, batch_size=8, max_batches=3)
    assert result == evaluate_causal_lm(model, heldout, tokenizer, seq_len=32, batch_size=8, max_batches=3)
    # by hand: the token at masked position i is scored by the logits at i - 1 of the clean sequence
    correct = total = 0
    for x, y, w in heldout_mlm_dataset(heldout, tokenizer, 32, 8, 3, 2024):
        ids = unmasked_token_ids(x, y, w)
        logits = model({"token_ids": ids, "segment_ids": x["segment_ids"], "padding_mask": x["padding_mask"]})["lm"]
        guess = np.take_along_axis(np.argmax(logits.numpy(), -1), x["masked_positions"].numpy() - 1, axis=1)
        real = w["mlm"].numpy() > 0
        correct += int((guess == y["mlm"].numpy())[real].sum())
        total += int(real.sum())
    assert result["mlm_accuracy"] == pytest.approx(correct / total)
    assert 0 < result["mlm_accuracy"] < 1 and np.isfinite(result["mlm_perplexity"])
