"""Exercise checkers for the lessons: the learner writes a function, a checker compares it with the
package's own on real inputs and says what differs.

Each checker takes the learner's function, runs it and the package's implementation on the same real
inputs (BERT's uncased vocabulary, Austen's sentences, a seeded encoder) and returns a
:class:`CheckResult`: ``passed``, and a message that names the first difference and, when the
difference matches a typical mistake, the mistake. A checker never raises on a wrong or unfinished
answer (a notebook cell that checks a stub still runs).

==================================  =========  ==================================================
checker                             lesson     the learner writes
==================================  =========  ==================================================
:func:`check_wordpiece`             01         greedy longest-match-first WordPiece for one word
:func:`check_attention`             03         scaled dot-product attention with a padding mask
:func:`check_encoder_block`         04         BERT's post-LN encoder block from its sublayers
:func:`check_masking_rule`          06         the 80/10/10 rule for the selected positions
==================================  =========  ==================================================

>>> from bertcourse.text.wordpiece import greedy_wordpiece
>>> check_wordpiece(greedy_wordpiece).passed
True
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import keras
import numpy as np

from bertcourse.config import BertConfig
from bertcourse.data import corpora
from bertcourse.data.masking import mask_tokens_reference
from bertcourse.layers import EncoderBlock, MultiHeadSelfAttention
from bertcourse.models import BertBackbone
from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path
from bertcourse.text.wordpiece import greedy_wordpiece

__all__ = ["CheckResult", "check_wordpiece", "check_attention", "check_encoder_block", "check_masking_rule",
           "WORDPIECE_WORDS"]

# Words whose WordPiece split is instructive with BERT's uncased vocabulary (plus one no piece can start).
WORDPIECE_WORDS = ("unaffable", "anticonstitutionally", "tokenization", "embeddings", "playing", "the",
                   "bidirectional", "pemberley", "darcy", "netherfield", "transformers", "hyperparameter",
                   "untokenizable", "\u2603snow")


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """What a checker found: ``passed`` and a human-readable ``message`` (printed as the repr)."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return ("PASSED: " if self.passed else "NOT YET: ") + self.message


def _fail(message: str) -> CheckResult:
    return CheckResult(False, message)


def _call(fn: Callable, *args: Any) -> tuple[Any, CheckResult | None]:
    """Run the learner's function; an exception becomes a failed result naming it."""
    try:
        return fn(*args), None
    except Exception as exc:  # the learner's code: any error is a finding, not a crash
        return None, _fail(f"your function raised {type(exc).__name__}: {exc}")


# ----------------------------------------------------------------------------- lesson 01: WordPiece
@functools.lru_cache(maxsize=1)
def _uncased_vocab() -> frozenset:
    return frozenset(WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path()).get_vocabulary())


def check_wordpiece(fn: Callable[[str, Any], list[str] | None], words=WORDPIECE_WORDS, vocab=None) -> CheckResult:
    """Check ``fn(word, vocab) -> list of pieces | None`` against ``greedy_wordpiece`` on BERT's uncased
    vocabulary (``vocab`` is a set of strings; ``None`` means "no split exists": the tokenizer then
    emits ``[UNK]``)."""
    vocab = _uncased_vocab() if vocab is None else vocab
    wrong = []
    for word in words:
        got, error = _call(fn, word, vocab)
        if error is not None:
            return _fail(f"on {word!r}: {error.message}")
        want = greedy_wordpiece(word, vocab)
        if got is not None and not isinstance(got, (list, tuple)):
            return _fail(f"on {word!r} you returned {type(got).__name__}; return a list of pieces, or None")
        if (list(got) if got is not None else None) != want:
            wrong.append((word, got, want))
    if wrong and all(got is None for _, got, _ in wrong) and len(wrong) > len(words) // 2:
        return _fail(f"your function returned None for {len(wrong)} of {len(words)} words that have a split "
                     "(not written yet?)")
    if not wrong:
        return CheckResult(True, f"same pieces as greedy_wordpiece on all {len(words)} words "
                                 f"(e.g. {words[1]!r} -> {greedy_wordpiece(words[1], vocab)})")
    word, got, want = wrong[0]
    lines = [f"{len(wrong)} of {len(words)} words differ; first: {word!r} -> yours {got}, expected {want}"]
    lines.append(_wordpiece_hint(word, got, want, vocab))
    return _fail("\n".join(line for line in lines if line))


def _wordpiece_hint(word: str, got, want, vocab) -> str:
    if got is None:
        return "you returned None, but a split exists"
    if want is None:
        return ("no split exists (a position no vocabulary piece starts): return None there, not a partial "
                "list or '[UNK]' (the tokenizer turns None into one [UNK] for the whole word)")
    got = list(got)
    if len(got) > 1 and not any(p.startswith("##") for p in got[1:]):
        return "pieces after the first must carry the '##' prefix (they continue a word)"
    if "".join(p[2:] if i and p.startswith("##") else p for i, p in enumerate(got)) == word:
        if all(p in vocab for p in got):
            return ("your pieces are in the vocabulary and spell the word, but they are not the longest "
                    "match at each step: try the longest candidate first, then shorten it")
        return "some of your pieces are not in the vocabulary"
    return "your pieces do not spell the word back"


# ----------------------------------------------------------------------------- lessons 02-03: attention
@functools.lru_cache(maxsize=1)
def _attention_case(seed: int = 3):
    """Q, K, V of a seeded 4-head attention layer on two real sentences (the second padded), the padding
    mask, and the layer's own probabilities and output."""
    tokenizer = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
    sentences = ["It is a truth universally acknowledged, that a single man in possession of a good "
                 "fortune, must be in want of a wife.", "Call me Ishmael."]
    ids = [[tokenizer.cls_id, *tokenizer.encode(s), tokenizer.sep_id] for s in sentences]
    length = max(map(len, ids))
    token_ids = np.array([row + [tokenizer.pad_id] * (length - len(row)) for row in ids], "int32")
    padding_mask = (token_ids != tokenizer.pad_id).astype("int32")
    keras.utils.set_random_seed(seed)
    backbone = BertBackbone(BertConfig.preset("tiny", vocab_size=tokenizer.vocabulary_size, num_heads=4))
    x = backbone.embeddings(token_ids, np.zeros_like(token_ids), training=False)
    layer: MultiHeadSelfAttention = backbone.encoder_layers[0].attention
    q, k, v = (np.asarray(layer.split_heads(t)).transpose(0, 2, 1, 3) for t in layer.project_qkv(x))
    output, probs = layer(x, padding_mask=padding_mask, return_attention_scores=True, training=False)
    context = np.einsum("bnqk,bnkd->bnqd", np.asarray(probs), v)
    return q, k, v, padding_mask, np.asarray(probs), context


def _softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def check_attention(fn: Callable, atol: float = 1e-5) -> CheckResult:
    """Check ``fn(q, k, v, padding_mask) -> (context, probs)`` (or ``context`` alone) against a real
    attention layer of the package.

    ``q, k, v``: float32 ``[batch, heads, seq, head_size]``; ``padding_mask``: ``[batch, seq]``, 1 for a
    real key, 0 for padding. ``probs`` ``[batch, heads, seq, seq]`` (rows: queries; columns: keys) and
    ``context = probs @ v``, as in ``MultiHeadSelfAttention.call``."""
    q, k, v, mask, probs_ref, context_ref = _attention_case()
    result, error = _call(fn, q.copy(), k.copy(), v.copy(), mask.copy())
    if error is not None:
        return error
    if result is None:
        return _fail("your function returned None (not written yet?)")
    context, probs = (result if isinstance(result, tuple) else (result, None))
    context = np.asarray(context, dtype="float32")
    if context.shape != context_ref.shape:
        return _fail(f"context has shape {context.shape}, expected {context_ref.shape} "
                     "([batch, heads, seq, head_size])")
    if probs is not None:
        probs = np.asarray(probs, dtype="float32")
        if probs.shape != probs_ref.shape:
            return _fail(f"probs has shape {probs.shape}, expected {probs_ref.shape} ([batch, heads, queries, keys])")
    err = float(np.abs(context - context_ref).max())
    if err <= atol and (probs is None or float(np.abs(probs - probs_ref).max()) <= atol):
        return CheckResult(True, f"matches the package's MultiHeadSelfAttention on 2 real sentences x 4 heads "
                                 f"(max |difference| {err:.1e})")
    hint = _attention_hint(q, k, v, mask, context, probs)
    return _fail(f"max |context difference| {err:.3g} (tolerance {atol:g}); {hint}")


def _attention_hint(q, k, v, mask, context, probs) -> str:
    d = q.shape[-1]
    raw = np.einsum("bnqd,bnkd->bnqk", q, k)
    additive = (1.0 - mask[:, None, None, :]) * -1e9
    variants = {
        "you did not scale the scores: divide Q K^T by sqrt(head_size)": _softmax(raw + additive),
        "you divided by head_size; divide by sqrt(head_size)": _softmax(raw / d + additive),
        "padded keys get attention: add a large negative number to their scores before the softmax":
            _softmax(raw / math.sqrt(d)),
        "the softmax runs over the queries; it must run over the keys (the last axis)":
            _softmax(raw / math.sqrt(d) + additive, axis=-2),
    }
    for hint, p in variants.items():
        if np.allclose(context, np.einsum("bnqk,bnkd->bnqd", p, v), atol=1e-4):
            return hint
    if probs is not None:
        sums = probs.sum(-1)
        if not np.allclose(sums, 1.0, atol=1e-4):
            return f"each row of probs should sum to 1 over the keys (yours: {sums.min():.3f} .. {sums.max():.3f})"
        padded = float((probs * (1 - mask[:, None, None, :])).sum(-1).max())
        if padded > 1e-6:
            return f"padded keys receive up to {padded:.3f} of a row's attention; they must get 0"
    return "compare step by step: scores = Q K^T / sqrt(d), mask, softmax over keys, then probs @ V"


# ----------------------------------------------------------------------------- lesson 04: encoder block
@functools.lru_cache(maxsize=1)
def _block_case(seed: int = 4):
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    block = EncoderBlock(num_heads=4, intermediate_size=128, hidden_dropout=0.0, attention_dropout=0.0)
    x = rng.normal(size=(2, 9, 64)).astype("float32")
    mask = np.ones((2, 9), "int32")
    mask[1, 6:] = 0
    block(x, padding_mask=mask)  # build
    return block, x, mask


def check_encoder_block(fn: Callable, atol: float = 1e-4) -> CheckResult:
    """Check ``fn(block, x, padding_mask) -> y`` against ``block(x, padding_mask=...)``.

    The learner composes the sublayers of a real ``EncoderBlock`` (``block.attention``,
    ``block.attention_layer_norm``, ``block.feedforward``, ``block.feedforward_layer_norm``) into BERT's
    post-LN block: ``x = LN(x + Attention(x))``, then ``x = LN(x + FeedForward(x))`` (no dropout: inference)."""
    block, x, mask = _block_case()
    want = np.asarray(block(x, padding_mask=mask, training=False))
    got, error = _call(fn, block, x.copy(), mask.copy())
    if error is not None:
        return error
    if got is None:
        return _fail("your function returned None (not written yet?)")
    got = np.asarray(got, dtype="float32")
    if got.shape != want.shape:
        return _fail(f"output shape {got.shape}, expected {want.shape} (the block keeps [batch, seq, hidden])")
    err = float(np.abs(got - want).max())
    if err <= atol:
        return CheckResult(True, f"matches EncoderBlock on a [2, 9, 64] batch with padding "
                                 f"(max |difference| {err:.1e})")
    return _fail(f"max |difference| {err:.3g} (tolerance {atol:g}); {_block_hint(block, x, mask, got)}")


def _block_hint(block, x, mask, got) -> str:
    attn = lambda h: block.attention(h, padding_mask=mask, training=False)  # noqa: E731
    ffn, ln1, ln2 = block.feedforward, block.attention_layer_norm, block.feedforward_layer_norm

    def pre_ln():
        h = x + attn(ln1(x))
        return h + ffn(ln2(h))

    def no_attention_residual():
        h = ln1(attn(x))
        return ln2(h + ffn(h))

    def no_ffn_residual():
        h = ln1(x + attn(x))
        return ln2(ffn(h))

    def no_mask():
        h = ln1(x + block.attention(x, training=False))
        return ln2(h + ffn(h))

    def residual_after_norm():
        h = x + ln1(attn(x))
        return h + ln2(ffn(h))

    variants = {
        "this is the pre-LN block (LayerNorm before each sublayer); BERT normalises after the residual sum":
            pre_ln,
        "the attention sublayer has no residual connection: add its input before the LayerNorm": no_attention_residual,
        "the feed-forward sublayer has no residual connection: add its input before the LayerNorm": no_ffn_residual,
        "the padding mask is not passed to the attention": no_mask,
        "the LayerNorm must normalise the sum x + sublayer(x), not the sublayer output alone": residual_after_norm,
    }
    for hint, variant in variants.items():
        if np.allclose(got, np.asarray(variant()), atol=1e-4):
            return hint
    return "compare with the two lines of BERT's block: x = LN(x + Attention(x)); x = LN(x + FeedForward(x))"


# ----------------------------------------------------------------------------- lesson 06: 80/10/10
@functools.lru_cache(maxsize=1)
def _masking_case(n_sentences: int = 400, seed: int = 6):  # the first chapters hold fewer
    """Real Austen sentences, tokenized and packed, with the package's own selection and random draws."""
    tokenizer = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
    special = [tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id]
    sentences = [s for d in corpora.load_corpus("austen")[:3] for s in d.sentences][:n_sentences]
    rng = np.random.default_rng(seed)
    rows = []
    for s in sentences:
        ids = np.array([tokenizer.cls_id, *tokenizer.encode(s)[:62], tokenizer.sep_id], "int32")
        out = mask_tokens_reference(ids, tokenizer.vocabulary_size, special, tokenizer.mask_id,
                                    np.random.default_rng(rng.integers(1 << 31)))
        selected = np.zeros(len(ids), bool)
        selected[out["masked_positions"][out["masked_weights"] > 0]] = True
        action = rng.random(len(ids), dtype=np.float32)
        random_tokens = rng.integers(999, tokenizer.vocabulary_size, size=len(ids)).astype("int32")
        rows.append((ids, selected, action, random_tokens))
    return tokenizer.mask_id, rows


def _rule(ids, selected, action, random_tokens, mask_id):
    """The reference: step 5 of ``mask_tokens_reference``."""
    to_mask = selected & (action < np.float32(0.8))
    to_random = selected & ~to_mask & (action < np.float32(0.9))
    return np.where(to_mask, mask_id, np.where(to_random, random_tokens, ids))


def check_masking_rule(fn: Callable) -> CheckResult:
    """Check ``fn(ids, selected, action, random_tokens, mask_id) -> new ids`` for BERT's 80/10/10 rule.

    ``selected`` (bool per position) are the tokens chosen for prediction; ``action`` (uniform in [0, 1)
    per position) decides what each becomes: below 0.8 ``[MASK]``, from 0.8 to 0.9 the position's
    ``random_tokens`` entry, otherwise the token stays. Unselected positions never change. Real inputs:
    the sentences of Austen's first three chapters with the package's own selection
    (``mask_tokens_reference``)."""
    mask_id, rows = _masking_case()
    counts = {"mask": 0, "random": 0, "same": 0, "changed_unselected": 0, "wrong": 0, "selected": 0}
    first_wrong = None
    for ids, selected, action, random_tokens in rows:
        got, error = _call(fn, ids.copy(), selected.copy(), action.copy(), random_tokens.copy(), mask_id)
        if error is not None:
            return error
        if got is None:
            return _fail("your function returned None (not written yet?)")
        got = np.asarray(got)
        if got.shape != ids.shape:
            return _fail(f"you returned shape {got.shape} for a sequence of {ids.shape[0]} tokens")
        want = _rule(ids, selected, action, random_tokens, mask_id)
        counts["selected"] += int(selected.sum())
        counts["mask"] += int((selected & (got == mask_id)).sum())
        counts["random"] += int((selected & (got != mask_id) & (got != ids)).sum())
        counts["same"] += int((selected & (got == ids)).sum())
        counts["changed_unselected"] += int((~selected & (got != ids)).sum())
        bad = got != want
        counts["wrong"] += int(bad.sum())
        if bad.any() and first_wrong is None:
            j = int(np.flatnonzero(bad)[0])
            first_wrong = (j, bool(selected[j]), float(action[j]), int(ids[j]), int(got[j]), int(want[j]))
    n = max(counts["selected"], 1)
    shares = (f"of {counts['selected']:,} selected tokens yours made {counts['mask'] / n:.1%} [MASK], "
              f"{counts['random'] / n:.1%} random, {counts['same'] / n:.1%} unchanged")
    if not counts["wrong"]:
        return CheckResult(True, f"same ids as the package's rule on {len(rows)} Austen sentences; {shares} "
                                 "(expected about 80/10/10)")
    j, sel, act, before, got_id, want_id = first_wrong
    if counts["changed_unselected"]:
        hint = f"you changed {counts['changed_unselected']:,} positions that were not selected: leave them as they are"
    elif counts["mask"] == counts["selected"]:
        hint = "every selected token became [MASK]: 10% should become a random token and 10% stay unchanged"
    elif counts["random"] and counts["mask"] / n < 0.7:
        hint = ("the shares are off: action < 0.8 -> [MASK], 0.8 <= action < 0.9 -> random token, "
                "action >= 0.9 -> unchanged")
    else:
        hint = "use the given draws: action < 0.8 -> [MASK], then < 0.9 -> random_tokens[position], else keep"
    return _fail(f"{counts['wrong']:,} positions differ; first at position {j} (selected={sel}, action={act:.2f}): "
                 f"id {before} became {got_id}, expected {want_id}; {shares}. {hint}")
