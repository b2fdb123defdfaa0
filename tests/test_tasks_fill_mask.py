"""Fill-mask on a tiny random BertPretrainer: "[MASK]" in the text is the mask id, the pipeline's top-k is
the argsort of the model's own logits on the same ids (scores = a softmax by hand), Hugging Face's
output keys and shapes (one mask, several masks, a batch), its decoding, and clear errors."""

import numpy as np
import pytest

import keras

from bertcourse import BertConfig
from bertcourse.errors import ModelInputError
from bertcourse.models import BertBackbone, BertPretrainer
from bertcourse.pipelines import pipeline
from bertcourse.tasks import FillMaskPipeline, decode_tokens, masked_accuracy
from bertcourse.tasks.fill_mask import fill_mask
from bertcourse.tasks.base import as_preprocessor
from bertcourse.text import BertPreprocessor, WordPieceTokenizer, bert_uncased_vocab_path

HF_KEYS = {"score", "token", "token_str", "sequence"}


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())


@pytest.fixture(scope="module")
def model(tokenizer):
    keras.utils.set_random_seed(0)
    cfg = BertConfig(vocab_size=tokenizer.vocabulary_size, num_layers=1, hidden_size=32, num_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    return BertPretrainer(BertBackbone(cfg))


@pytest.fixture(scope="module")
def fill(model, tokenizer):
    return FillMaskPipeline(model, BertPreprocessor(tokenizer, sequence_length=64), top_k=5)


def _by_hand(model, tokenizer, text):
    """Ids from the pure tokenizer, the model called directly, probabilities by hand."""
    ids = [tokenizer.cls_id] + tokenizer.encode(text) + [tokenizer.sep_id]
    where = [i for i, t in enumerate(ids) if t == tokenizer.mask_id]
    x = {"token_ids": np.array([ids], "int32"), "segment_ids": np.zeros((1, len(ids)), "int32"),
         "padding_mask": np.ones((1, len(ids)), "int32"), "masked_positions": np.array([where], "int32")}
    logits = np.asarray(model(x, training=False)["mlm"], "float64")[0]
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return ids, where, logits, probs / probs.sum(-1, keepdims=True)


def test_mask_written_in_text_is_one_token(fill, tokenizer):
    ids = fill.preprocessor(["It is a truth universally [MASK]."])["token_ids"].numpy()[0]
    assert tokenizer.mask_id == 103 and list(ids).count(103) == 1
    assert list(ids[:8]) == [101, 2009, 2003, 1037, 3606, 21186, 103, 1012]


def test_top_k_is_the_argsort_of_the_logits(fill, model, tokenizer):
    text = "It is a truth universally [MASK]."
    ids, where, logits, probs = _by_hand(model, tokenizer, text)
    out = fill(text, top_k=7)
    assert len(out) == 7 and all(set(o) == HF_KEYS for o in out)
    want = np.argsort(-logits[0], kind="stable")[:7]
    assert [o["token"] for o in out] == want.tolist()
    np.testing.assert_allclose([o["score"] for o in out], probs[0, want], rtol=1e-5)
    vocab = tokenizer.get_vocabulary()
    for o in out:
        assert o["token_str"] == decode_tokens([vocab[o["token"]]])
        filled = list(ids)
        filled[where[0]] = o["token"]
        assert o["sequence"] == decode_tokens([vocab[i] for i in filled], skip_special_tokens=True)
        assert o["sequence"].startswith("it is a truth universally")


def test_several_masks_and_batches(fill, model, tokenizer):
    text = "The [MASK] of [MASK] and the sea."
    ids, where, logits, probs = _by_hand(model, tokenizer, text)
    out = fill(text, top_k=3)
    assert len(out) == 2 and all(len(per_mask) == 3 for per_mask in out)
    for j, per_mask in enumerate(out):
        assert [o["token"] for o in per_mask] == np.argsort(-logits[j], kind="stable")[:3].tolist()
        # as Hugging Face: with several masks the specials stay, so the other mask is visible
        assert per_mask[0]["sequence"].startswith("[CLS] the") and "[MASK]" in per_mask[0]["sequence"]
    texts = ["A [MASK] day.", "She [MASK] him, and he [MASK] her back at once."]
    batch = fill(texts, top_k=4)
    assert len(batch) == 2 and len(batch[0]) == 4 and len(batch[1]) == 2
    alone = [fill(t, top_k=4) for t in texts]
    assert [o["token"] for o in batch[0]] == [o["token"] for o in alone[0]]
    assert [[o["token"] for o in m] for m in batch[1]] == [[o["token"] for o in m] for m in alone[1]]
    core = fill_mask(model, fill.preprocessor, texts, top_k=4)
    assert len(core) == 2 and len(core[0]) == 1 and len(core[1]) == 2   # always [text][mask][candidate]


def test_a_pure_tokenizer_works_and_is_converted_once(model, tokenizer):
    a = as_preprocessor(tokenizer, sequence_length=64)
    assert a is as_preprocessor(tokenizer, sequence_length=64)
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer, top_k=2)
    out = fill("She was [MASK].")
    assert len(out) == 2 and out[0]["score"] >= out[1]["score"]
    assert fill.preprocessor.sequence_length == 64  # the model's position table


def test_clear_errors(fill, model, tokenizer):
    with pytest.raises(ModelInputError, match=r"No \[MASK\]"):
        fill("no mask here")
    with pytest.raises(ModelInputError, match="beyond"):
        fill("word " * 100 + "[MASK]")
    with pytest.raises(TypeError, match="MLM head"):
        FillMaskPipeline(model.backbone, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="top_k"):
        fill("a [MASK]", top_k=0)
    with pytest.raises(TypeError, match="pairs"):
        fill([("a [MASK]", "b")])


def test_decode_like_hugging_face():
    assert decode_tokens(["##s"]) == "##s"
    assert decode_tokens(["hello", ",", "world", "!"]) == "hello, world!"
    assert decode_tokens(["don", "'", "t", "go", "."]) == "don't go."
    assert decode_tokens(["[CLS]", "un", "##want", "##ed", "[SEP]"], skip_special_tokens=True) == "unwanted"
    assert decode_tokens(["[CLS]", "a", "[MASK]", "[SEP]"]) == "[CLS] a [MASK] [SEP]"


def test_masked_accuracy():
    logits = np.array([[[0.0, 1.0, 2.0], [5.0, 1.0, 0.0], [0.0, 0.0, 9.0]]])
    targets = np.array([[2, 1, 0]])
    assert masked_accuracy(logits, targets, np.array([[1, 1, 0]])) == 0.5
    assert masked_accuracy(logits, targets, np.array([[1, 1, 0]]), k=2) == 1.0


def test_a_causal_model_fills_a_mask_from_the_left_context_only(tokenizer):
    """CausalLMPretrainer: the [MASK] at i is scored by the row at i - 1, so text after the mask cannot move
    it (an MLM model's answer does move: that is lesson 07's comparison)."""
    from bertcourse.models.pretraining import CausalLMPretrainer

    keras.utils.set_random_seed(1)
    cfg = BertConfig(vocab_size=tokenizer.vocabulary_size, num_layers=1, hidden_size=32, num_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    causal = CausalLMPretrainer(BertBackbone(cfg, causal=True))
    fill = pipeline("fill-mask", model=causal, tokenizer=tokenizer, top_k=4)
    a, b = fill(["the cat [MASK] on the mat.", "the cat [MASK] in a house far away."])
    assert [o["token"] for o in a] == [o["token"] for o in b]
    np.testing.assert_allclose([o["score"] for o in a], [o["score"] for o in b], rtol=1e-5)
    ids = [tokenizer.cls_id] + tokenizer.encode("the cat [MASK] on the mat.") + [tokenizer.sep_id]
    x = {"token_ids": np.array([ids], "int32"), "segment_ids": np.zeros((1, len(ids)), "int32"),
         "padding_mask": np.ones((1, len(ids)), "int32")}
    logits = np.asarray(causal(x, training=False)["lm"], "float64")[0, ids.index(tokenizer.mask_id) - 1]
    assert [o["token"] for o in a] == np.argsort(-logits, kind="stable")[:4].tolist()
    assert a[0]["sequence"].startswith("the cat ")
