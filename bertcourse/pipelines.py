"""Raw text in, answers out: ``pipeline("fill-mask", model=..., tokenizer=...)``.

>>> from bertcourse.pipelines import pipeline                      # doctest: +SKIP
>>> fill = pipeline("fill-mask", model=pretrainer, tokenizer=tok)  # doctest: +SKIP
>>> fill("It is a truth universally [MASK].")[0]                   # doctest: +SKIP
[{'token': 'acknowledged', 'score': 0.41, 'sequence': 'it is a truth universally acknowledged.'}, ...]

Other tasks (sentiment, NER, QA, feature extraction) arrive with their lessons.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["pipeline", "FillMaskPipeline", "SUPPORTED_TASKS"]

SUPPORTED_TASKS = ("fill-mask",)
MASK_TOKEN = "[MASK]"


class FillMaskPipeline:
    """Top-k predictions for every ``[MASK]`` in a sentence, from a :class:`BertPretrainer`.

    Calling it on one string returns one list of ``{"token", "token_id", "score", "sequence"}`` dicts
    per ``[MASK]`` (scores are softmax probabilities); on a list of strings, a list of those.
    """

    def __init__(self, model, tokenizer, top_k: int = 5, max_length: int | None = None):
        if not hasattr(model, "mlm_head"):
            raise TypeError("fill-mask needs a model with an MLM head, e.g. bertcourse.models.BertPretrainer.")
        self.model = model
        self.tokenizer = tokenizer
        self.top_k = int(top_k)
        self.max_length = max_length or model.backbone.config.max_position_embeddings

    def encode(self, text: str) -> list[int]:
        """Token ids of ``[CLS] text [SEP]`` with ``[MASK]`` kept as the mask token."""
        if not isinstance(text, str):
            raise TypeError(f"fill-mask expects a string, got {type(text).__name__}.")
        pieces = text.split(MASK_TOKEN)
        if len(pieces) < 2:
            raise ValueError(f"No {MASK_TOKEN} in {text!r}: write the word to predict as {MASK_TOKEN}.")
        ids = [self.tokenizer.cls_id]
        for i, piece in enumerate(pieces):
            if i:
                ids.append(self.tokenizer.mask_id)
            ids.extend(self.tokenizer.encode(piece))
        ids.append(self.tokenizer.sep_id)
        if len(ids) > self.max_length:
            raise ValueError(f"{len(ids)} tokens is longer than the model's {self.max_length} positions.")
        return ids

    def __call__(self, inputs: str | list[str], top_k: int | None = None):
        single = isinstance(inputs, str)
        texts = [inputs] if single else list(inputs)
        k = top_k or self.top_k
        encoded = [self.encode(t) for t in texts]
        length = max(len(e) for e in encoded)
        n_masks = max(e.count(self.tokenizer.mask_id) for e in encoded)
        token_ids = np.zeros((len(texts), length), "int32")
        padding_mask = np.zeros_like(token_ids)
        positions = np.zeros((len(texts), n_masks), "int32")
        for row, ids in enumerate(encoded):
            token_ids[row, :len(ids)] = ids
            padding_mask[row, :len(ids)] = 1
            where = [i for i, t in enumerate(ids) if t == self.tokenizer.mask_id]
            positions[row, :len(where)] = where
        outputs = self.model.predict_on_batch({"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
                                               "padding_mask": padding_mask, "masked_positions": positions})
        logits = np.asarray(outputs["mlm"], dtype="float64")
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        results = []
        for row, ids in enumerate(encoded):
            per_mask = []
            for j in range(ids.count(self.tokenizer.mask_id)):
                top = np.argsort(-probs[row, j])[:k]
                per_mask.append([{
                    "token": self.tokenizer.convert_ids_to_tokens([int(t)])[0],
                    "token_id": int(t),
                    "score": float(probs[row, j, t]),
                    "sequence": self._fill(ids, positions[row, j], int(t)),
                } for t in top])
            results.append(per_mask[0] if len(per_mask) == 1 else per_mask)
        return results[0] if single else results

    def _fill(self, ids: list[int], position: int, token_id: int) -> str:
        filled = list(ids[1:-1])
        filled[position - 1] = token_id
        return self.tokenizer.decode(filled)


def pipeline(task: str, model=None, tokenizer=None, **kwargs: Any) -> Callable:
    """Build a task pipeline. ``task`` is one of ``SUPPORTED_TASKS``."""
    if task not in SUPPORTED_TASKS:
        raise ValueError(f"Unknown task {task!r}. Supported now: {', '.join(SUPPORTED_TASKS)}.")
    if model is None or tokenizer is None:
        raise ValueError(f"pipeline({task!r}) needs both model= and tokenizer=.")
    return FillMaskPipeline(model, tokenizer, **kwargs)
