"""Fill-mask: the top-k fillers of every ``[MASK]`` in a text, from a model with BERT's MLM head
(lessons 06-07). :func:`fill_mask` is the core; :class:`FillMaskPipeline` is ``pipeline("fill-mask")``
and :class:`~bertcourse.training.FillMaskProbe` prints it during pretraining (both import it from
here: the engine never imports the front end).

    "the cat [MASK] on the mat" --BertPreprocessor--> [CLS] the cat [MASK] on the mat [SEP]
        --BertPretrainer (masked_positions = where token_ids == [MASK])--> logits [B, masks, vocab]
        --softmax--> top_k (token id, probability) per mask

``[MASK]`` written in the text is one token (the preprocessor keeps special tokens whole, as Hugging
Face's tokenizers do). Outputs follow ``transformers.FillMaskPipeline``: a dict per candidate with
``score``, ``token`` (the id), ``token_str`` and ``sequence`` (the text with the candidate filled in,
decoded as Hugging Face's BERT tokenizer decodes); one mask -> a list of dicts, several masks -> one
list per mask (the other masks stay ``[MASK]`` in ``sequence``).

Its metric is :func:`masked_accuracy` (top-k accuracy at masked positions; lesson 07's held-out check).

>>> import keras
>>> from bertcourse import BertConfig
>>> from bertcourse.models import BertBackbone, BertPretrainer
>>> from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer
>>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "##s", "."]
>>> keras.utils.set_random_seed(0)
>>> model = BertPretrainer(BertBackbone(BertConfig.preset("tiny", vocab_size=len(vocab))))
>>> fill = FillMaskPipeline(model, BertPreprocessor(FastWordPieceTokenizer(vocab), sequence_length=16))
>>> out = fill("the cat [MASK].", top_k=2)
>>> [sorted(o) for o in out]
[['score', 'sequence', 'token', 'token_str'], ['score', 'sequence', 'token', 'token_str']]
>>> len(fill("the [MASK] [MASK].", top_k=3)), decode_tokens(["the", "cat", "##s", "sat", "."])
(2, 'the cats sat.')
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bertcourse.errors import ModelInputError
from bertcourse.tasks.base import TaskPipeline, as_preprocessor, as_text_batch, trim_padding

__all__ = ["fill_mask", "FillMaskPipeline", "decode_tokens", "masked_accuracy", "MASK_TOKEN"]

MASK_TOKEN = "[MASK]"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Hugging Face's WordPiece decoder cleanup (per token), then transformers' clean_up_tokenization (whole text)
_TOKEN_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                  (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))
_TEXT_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                 (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def _replace_all(text: str, pairs) -> str:
    for old, new in pairs:
        text = text.replace(old, new)
    return text


def decode_tokens(tokens: Sequence[str], skip_special_tokens: bool = False, suffix_indicator: str = "##") -> str:
    """WordPiece tokens -> text exactly as Hugging Face's BERT tokenizer decodes them.

    ``##`` pieces are glued to the piece before (a leading one keeps its ``##``: ``"##s"`` alone stays
    ``"##s"``), other pieces get a space, and the spaces before ``. ? ! ,`` and in ``' s``-style
    contractions go (``clean_up_tokenization_spaces=True``, bert-base-uncased's setting).
    ``skip_special_tokens`` drops ``[PAD] [UNK] [CLS] [SEP] [MASK]``.

    >>> decode_tokens(["[CLS]", "hello", "##s", ",", "world", "!", "[SEP]"], skip_special_tokens=True)
    'hellos, world!'
    """
    if skip_special_tokens:
        tokens = [t for t in tokens if t not in SPECIAL_TOKENS]
    pieces = []
    for i, token in enumerate(tokens):
        if i:
            token = token[len(suffix_indicator):] if token.startswith(suffix_indicator) else " " + token
        pieces.append(_replace_all(token, _TOKEN_CLEANUP))
    return _replace_all("".join(pieces), _TEXT_CLEANUP)


def masked_accuracy(logits: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None, k: int = 1) -> float:
    """Top-``k`` accuracy at masked positions: ``logits [B, P, V]``, ``targets [B, P]`` ids, ``weights``
    ``[B, P]`` (1 for real predictions, 0 for padding rows of ``masked_positions``).

    >>> masked_accuracy(np.array([[[0.1, 2.0], [3.0, 0.0]]]), np.array([[1, 1]]), np.array([[1, 1]]))
    0.5
    """
    logits, targets = np.asarray(logits), np.asarray(targets)
    weights = np.ones(targets.shape) if weights is None else np.asarray(weights, np.float64)
    top = np.argsort(-logits, axis=-1, kind="stable")[..., :k]
    hit = (top == targets[..., None]).any(-1)
    total = weights.sum()
    if total == 0:
        raise ValueError("masked_accuracy: no masked position has weight > 0.")
    return float((hit * weights).sum() / total)


def _check_model(model) -> None:
    if not (hasattr(model, "mlm_head") or hasattr(model, "lm_head")):
        raise TypeError(f"fill-mask needs a model with an MLM head, e.g. bertcourse.models.BertPretrainer (or a "
                        f"left-to-right CausalLMPretrainer); got {type(model).__name__}.")


def fill_mask(model, preprocessor, texts: Sequence[str], top_k: int = 5) -> list[list[list[dict]]]:
    """Top-``top_k`` fillers of every ``[MASK]`` of every text: ``result[text][mask]`` is a list of
    ``{"score", "token", "token_str", "sequence"}`` dicts, best first.

    Args:
        model: a :class:`~bertcourse.models.BertPretrainer` (any model with ``mlm_head`` and a
            ``masked_positions`` input), or a left-to-right
            :class:`~bertcourse.models.pretraining.CausalLMPretrainer`: it scores a ``[MASK]`` at ``i`` from
            its logits at ``i - 1``, so only the words BEFORE the mask count (lesson 07's comparison).
        preprocessor: a :class:`~bertcourse.text.BertPreprocessor`, or a tokenizer (wrapped with the
            model's ``max_position_embeddings`` as ``sequence_length``).
        texts: strings with at least one ``[MASK]`` each.
        top_k: candidates per mask (at most the vocabulary size).
    """
    _check_model(model)
    pre = as_preprocessor(preprocessor, sequence_length=model.backbone.config.max_position_embeddings)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}.")
    texts = as_text_batch(texts)
    if isinstance(texts, tuple):
        raise TypeError("fill-mask takes single texts, not pairs.")
    if not texts:
        return []
    mask_id, pad_id = pre.mask_id, pre.pad_id
    packed = pre(texts)
    token_ids = np.asarray(packed["token_ids"], np.int32)
    lengths = np.asarray(packed["padding_mask"]).astype(bool).sum(axis=1)
    where = [np.flatnonzero(row[:n] == mask_id) for row, n in zip(token_ids, lengths)]
    for text, found in zip(texts, where):
        if len(found) == 0:
            if MASK_TOKEN in text:
                raise ModelInputError(f"The {MASK_TOKEN} of {text[:60]!r}... lies beyond the {pre.sequence_length} "
                                      f"tokens the model reads: shorten the text.")
            raise ModelInputError(f"No {MASK_TOKEN} in {text!r}: write the word to predict as {MASK_TOKEN}.")
    n_masks = max(len(w) for w in where)
    positions = np.zeros((len(texts), n_masks), np.int32)
    for row, found in enumerate(where):
        positions[row, :len(found)] = found
    if hasattr(model, "lm_head"):  # left-to-right: the row at i - 1 scores token i, from the tokens before it only
        rows = np.asarray(model.predict_on_batch(trim_padding(packed))["lm"], np.float64)
        logits = rows[np.arange(len(texts))[:, None], np.maximum(positions - 1, 0)]
    else:
        inputs = {**trim_padding(packed), "masked_positions": positions}
        logits = np.asarray(model.predict_on_batch(inputs)["mlm"], np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    vocab = pre.tokenizer.get_vocabulary()
    suffix = getattr(pre.tokenizer, "suffix_indicator", "##")
    k = min(top_k, probs.shape[-1])
    results = []
    for row, found in enumerate(where):
        ids = token_ids[row, :lengths[row]]
        ids = ids[ids != pad_id]
        single = len(found) == 1
        per_mask = []
        for j, position in enumerate(found):
            top = np.argsort(-probs[row, j], kind="stable")[:k]
            candidates = []
            for t in top:
                filled = ids.copy()
                filled[position] = t
                candidates.append({
                    "score": float(probs[row, j, t]),
                    "token": int(t),
                    "token_str": decode_tokens([vocab[t]], suffix_indicator=suffix),
                    # as Hugging Face: with several masks the others stay visible, so specials are kept
                    "sequence": decode_tokens([vocab[i] for i in filled], skip_special_tokens=single,
                                              suffix_indicator=suffix),
                })
            per_mask.append(candidates)
        results.append(per_mask)
    return results


class FillMaskPipeline(TaskPipeline):
    """``pipeline("fill-mask")``: one string -> a list of ``{"score", "token", "token_str", "sequence"}``
    (several ``[MASK]``: one such list per mask); a list of strings -> a list of those.

    Args:
        model: a :class:`~bertcourse.models.BertPretrainer`.
        preprocessor: a :class:`~bertcourse.text.BertPreprocessor`, or a tokenizer (pure or in-graph;
            wrapped with the model's ``max_position_embeddings`` as ``sequence_length``).
        top_k: candidates per mask (a call's ``top_k=`` overrides it).
        batch_size: texts per forward pass.
    """

    def __init__(self, model, preprocessor=None, top_k: int = 5, batch_size: int = 8, tokenizer=None):
        _check_model(model)
        if (preprocessor is None) == (tokenizer is None):
            raise ValueError("fill-mask needs a preprocessor= (or a tokenizer=), exactly one of them.")
        super().__init__(model, batch_size=batch_size)
        self.preprocessor = as_preprocessor(preprocessor if preprocessor is not None else tokenizer,
                                            sequence_length=model.backbone.config.max_position_embeddings)
        self.top_k = top_k

    def _inputs(self, raw: Any) -> tuple[list, bool]:
        items, single = super()._inputs(raw)
        if items and isinstance(items[0], tuple):
            raise TypeError("fill-mask takes single texts, not pairs.")
        return items, single

    def _run(self, items: list, top_k: int | None = None) -> list:
        results = fill_mask(self.model, self.preprocessor, items, top_k=self.top_k if top_k is None else top_k)
        return [per_mask[0] if len(per_mask) == 1 else per_mask for per_mask in results]
