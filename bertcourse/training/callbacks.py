"""Callbacks that make long runs legible (lesson 07): fill-mask probes during pretraining.

>>> probe = FillMaskProbe(tokenizer, ["It is a truth universally [MASK]."])   # doctest: +SKIP
>>> pretrainer.fit(ds, epochs=3, steps_per_epoch=100, callbacks=[probe])    # doctest: +SKIP
epoch 1: It is a truth universally [MASK]. -> the 0.08 | , 0.05 | . 0.04
"""

from __future__ import annotations

from typing import Sequence

import keras

__all__ = ["FillMaskProbe"]


class FillMaskProbe(keras.callbacks.Callback):
    """Every ``every_n_epochs`` epochs, print the top-k fillers for fixed ``[MASK]`` sentences and keep
    them in ``self.history`` (a list of ``{"epoch", "sentence", "predictions": [(token, score)]}``)."""

    def __init__(self, tokenizer, sentences: Sequence[str], top_k: int = 3, every_n_epochs: int = 1,
                 verbose: bool = True):
        super().__init__()
        if not sentences:
            raise ValueError("FillMaskProbe needs at least one sentence with [MASK].")
        self.tokenizer = tokenizer
        self.sentences = list(sentences)
        self.top_k = top_k
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.verbose = verbose
        self.history: list[dict] = []

    def probe(self, epoch: int) -> list[dict]:
        from bertcourse.pipelines import FillMaskPipeline

        fill = FillMaskPipeline(self.model, self.tokenizer, top_k=self.top_k)
        rows = []
        for sentence in self.sentences:
            predictions = fill(sentence)
            if predictions and isinstance(predictions[0], list):  # several masks: show the first
                predictions = predictions[0]
            row = {"epoch": epoch, "sentence": sentence,
                   "predictions": [(p["token"], round(p["score"], 3)) for p in predictions]}
            rows.append(row)
            if self.verbose:
                shown = " | ".join(f"{t} {s:.2f}" for t, s in row["predictions"])
                print(f"epoch {epoch}: {sentence} -> {shown}")
        self.history.extend(rows)
        return rows

    def on_train_begin(self, logs=None):
        if not any(r["epoch"] == 0 for r in self.history):
            self.probe(0)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs == 0:
            self.probe(epoch + 1)
