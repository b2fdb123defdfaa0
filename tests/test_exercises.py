"""The exercise checkers accept the package's own implementations and reject typical mistakes, naming them."""

import math

import numpy as np
import pytest

from bertcourse import exercises
from bertcourse.text.wordpiece import greedy_wordpiece


# ----------------------------------------------------------------------------- WordPiece (lesson 01)
def test_wordpiece_accepts_the_real_one():
    result = exercises.check_wordpiece(greedy_wordpiece)
    assert result.passed and repr(result).startswith("PASSED")


def shortest_first(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        for end in range(start + 1, len(word) + 1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return None
        pieces.append(piece)
        start = end
    return pieces


def no_prefix(word, vocab):
    pieces = greedy_wordpiece(word, vocab)
    return None if pieces is None else [p.removeprefix("##") for p in pieces]


def unk_instead_of_none(word, vocab):
    pieces = greedy_wordpiece(word, vocab)
    return ["[UNK]"] if pieces is None else pieces


@pytest.mark.parametrize("fn, hint", [
    (shortest_first, "not the longest match"),
    (no_prefix, "'##' prefix"),
    (unk_instead_of_none, "return None there"),
])
def test_wordpiece_names_the_mistake(fn, hint):
    result = exercises.check_wordpiece(fn)
    assert not result.passed
    assert hint in result.message
    assert "expected" in result.message  # shows the real split


def test_wordpiece_stub_and_crash_do_not_raise():
    assert "not written yet" in exercises.check_wordpiece(lambda w, v: None).message
    result = exercises.check_wordpiece(lambda w, v: 1 / 0)
    assert not result.passed and "ZeroDivisionError" in result.message


# ----------------------------------------------------------------------------- attention (lesson 03)
def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def make_attention(scale="sqrt", use_mask=True, axis=-1):
    def attention(q, k, v, padding_mask):
        d = q.shape[-1]
        scores = q @ k.transpose(0, 1, 3, 2)
        scores = scores / {"sqrt": math.sqrt(d), "none": 1.0, "d": d}[scale]
        if use_mask:
            scores = scores + (1 - padding_mask[:, None, None, :]) * -1e9
        probs = softmax(scores, axis=axis)
        return probs @ v, probs
    return attention


def test_attention_accepts_a_correct_one_with_or_without_probs():
    assert exercises.check_attention(make_attention()).passed
    assert exercises.check_attention(lambda *a: make_attention()(*a)[0]).passed


@pytest.mark.parametrize("kwargs, hint", [
    ({"scale": "none"}, "did not scale"),
    ({"scale": "d"}, "divided by head_size"),
    ({"use_mask": False}, "padded keys get attention"),
    ({"axis": -2}, "over the queries"),
])
def test_attention_names_the_mistake(kwargs, hint):
    result = exercises.check_attention(make_attention(**kwargs))
    assert not result.passed and hint in result.message, result.message


def test_attention_wrong_shape():
    result = exercises.check_attention(lambda q, k, v, m: (q[:, 0], None))
    assert not result.passed and "shape" in result.message


# ----------------------------------------------------------------------------- encoder block (lesson 04)
def post_ln(block, x, mask):
    h = block.attention_layer_norm(x + block.attention(x, padding_mask=mask))
    return block.feedforward_layer_norm(h + block.feedforward(h))


def pre_ln(block, x, mask):
    h = x + block.attention(block.attention_layer_norm(x), padding_mask=mask)
    return h + block.feedforward(block.feedforward_layer_norm(h))


def no_residual(block, x, mask):
    h = block.attention_layer_norm(block.attention(x, padding_mask=mask))
    return block.feedforward_layer_norm(h + block.feedforward(h))


def no_mask(block, x, mask):
    h = block.attention_layer_norm(x + block.attention(x))
    return block.feedforward_layer_norm(h + block.feedforward(h))


def test_encoder_block_accepts_post_ln():
    result = exercises.check_encoder_block(post_ln)
    assert result.passed, result.message


@pytest.mark.parametrize("fn, hint", [(pre_ln, "pre-LN"), (no_residual, "no residual"), (no_mask, "padding mask")])
def test_encoder_block_names_the_mistake(fn, hint):
    result = exercises.check_encoder_block(fn)
    assert not result.passed and hint in result.message, result.message


# ----------------------------------------------------------------------------- 80/10/10 (lesson 06)
def rule(ids, selected, action, random_tokens, mask_id):
    out = ids.copy()
    out[selected & (action < 0.8)] = mask_id
    rand = selected & (action >= 0.8) & (action < 0.9)
    out[rand] = random_tokens[rand]
    return out


def all_mask(ids, selected, action, random_tokens, mask_id):
    return np.where(selected, mask_id, ids)


def everywhere(ids, selected, action, random_tokens, mask_id):
    out = ids.copy()
    out[action < 0.8] = mask_id
    rand = (action >= 0.8) & (action < 0.9)
    out[rand] = random_tokens[rand]
    return out


def swapped(ids, selected, action, random_tokens, mask_id):
    out = ids.copy()
    out[selected & (action < 0.1)] = random_tokens[selected & (action < 0.1)]
    out[selected & (action >= 0.1) & (action < 0.9)] = mask_id
    return out


def test_masking_rule_accepts_the_rule():
    result = exercises.check_masking_rule(rule)
    assert result.passed, result.message
    assert "80.0%" not in result.message or "10" in result.message  # reports the shares


@pytest.mark.parametrize("fn, hint", [
    (all_mask, "every selected token became [MASK]"),
    (everywhere, "not selected"),
    (swapped, "use the given draws"),
])
def test_masking_rule_names_the_mistake(fn, hint):
    result = exercises.check_masking_rule(fn)
    assert not result.passed and hint in result.message, result.message
