"""Callbacks that make long runs legible (lesson 07): fill-mask probes during pretraining.

>>> probe = FillMaskProbe(tokenizer, ["It is a truth universally [MASK]."])   # doctest: +SKIP
>>> pretrainer.fit(ds, epochs=3, steps_per_epoch=100, callbacks=[probe])    # doctest: +SKIP
epoch 1: It is a truth universally [MASK]. -> the 0.08 | , 0.05 | . 0.04
"""

from __future__ import annotations

from typing import Sequence

import keras

__all__ = ["FillMaskProbe", "BestWeights", "ResumableCheckpoint"]


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


class BestWeights(keras.callbacks.Callback):
    """"Load best model at end": remember the weights of the best epoch by ``monitor`` and put
    them back when training ends (Hugging Face's ``load_best_model_at_end``)."""

    def __init__(self, monitor: str = "val_loss", greater_is_better: bool = False, verbose: bool = True):
        super().__init__()
        self.monitor = monitor
        self.greater_is_better = greater_is_better
        self.verbose = verbose
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._weights = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(f"BestWeights monitors {self.monitor!r} but the logs only have {sorted(logs)}; "
                             "pass validation_data or choose another metric.")
        value = float(logs[self.monitor])
        better = self.best is None or (value > self.best if self.greater_is_better else value < self.best)
        if better:
            self.best, self.best_epoch = value, epoch + 1
            self._weights = [v.numpy().copy() for v in self.model.weights]

    def on_train_end(self, logs=None):
        if self._weights is not None:
            for variable, value in zip(self.model.weights, self._weights):
                variable.assign(value)
            if self.verbose:
                print(f"restored the best weights: epoch {self.best_epoch}, {self.monitor} = {self.best:.4f}")


class ResumableCheckpoint(keras.callbacks.Callback):
    """Checkpoints that let a killed run continue EXACTLY where it stopped.

    Every ``every_steps`` batches it writes ``step-<N>/`` holding every model variable (weights and
    the dropout RNG states), every optimizer variable (moments, iteration count, accumulators), the
    step, which is also the data position (``train`` resumes with ``dataset.skip(step)``), and a
    sha256 of each file. A directory is written under a temporary name and renamed when complete, so a
    crash never leaves a half-written checkpoint in place; a corrupted one is detected by its checksum
    and the previous good one is used, with a message. The last ``keep`` checkpoints are kept.
    """

    def __init__(self, directory: str, every_steps: int = 100, keep: int = 3, verbose: bool = True):
        super().__init__()
        if every_steps < 1:
            raise ValueError("every_steps must be >= 1.")
        self.directory = directory
        self.every_steps = int(every_steps)
        self.keep = int(keep)
        self.verbose = verbose
        self.step = 0

    # ------------------------------------------------------------------ files
    def _checkpoints(self) -> list[tuple[int, str]]:
        import os

        if not os.path.isdir(self.directory):
            return []
        found = []
        for name in os.listdir(self.directory):
            if name.startswith("step-") and not name.endswith(".tmp"):
                try:
                    found.append((int(name[5:]), os.path.join(self.directory, name)))
                except ValueError:
                    continue
        return sorted(found)

    @staticmethod
    def _sha256(path: str) -> str:
        import hashlib

        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def save(self, step: int) -> str:
        import json
        import os
        import shutil

        import numpy as np

        os.makedirs(self.directory, exist_ok=True)
        final = os.path.join(self.directory, f"step-{step}")
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        np.savez(os.path.join(tmp, "model.npz"), *[v.numpy() for v in self.model.variables])
        opt_vars = self.model.optimizer.variables if self.model.optimizer is not None else []
        np.savez(os.path.join(tmp, "optimizer.npz"), *[v.numpy() for v in opt_vars])
        state = {"step": step, "model_variables": [v.path for v in self.model.variables],
                 "optimizer_variables": [v.path for v in opt_vars],
                 "sha256": {name: self._sha256(os.path.join(tmp, name)) for name in ("model.npz", "optimizer.npz")}}
        with open(os.path.join(tmp, "state.json"), "w") as f:
            json.dump(state, f)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)  # atomic on POSIX: the checkpoint appears complete or not at all
        for _, old in self._checkpoints()[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _valid(self, path: str) -> dict | None:
        import json
        import os

        try:
            with open(os.path.join(path, "state.json")) as f:
                state = json.load(f)
            for name, digest in state["sha256"].items():
                if self._sha256(os.path.join(path, name)) != digest:
                    return None
            return state
        except (OSError, ValueError, KeyError):
            return None

    def restore(self, model) -> int:
        """Load the newest valid checkpoint into ``model`` (compiled, optimizer attached); return its
        step (0 if there is none). Skips corrupted checkpoints with a message."""
        import os

        import numpy as np

        for step, path in reversed(self._checkpoints()):
            state = self._valid(path)
            if state is None:
                print(f"checkpoint {path} is incomplete or corrupted (checksum mismatch): trying the previous one")
                continue
            paths = [v.path for v in model.variables]
            if paths != state["model_variables"]:
                raise ValueError(f"checkpoint {path} was written by a different model "
                                 f"({len(state['model_variables'])} variables vs {len(paths)}).")
            with np.load(os.path.join(path, "model.npz")) as data:
                for i, variable in enumerate(model.variables):
                    variable.assign(data[f"arr_{i}"])
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            opt_vars = model.optimizer.variables
            if [v.path for v in opt_vars] != state["optimizer_variables"]:
                raise ValueError(f"checkpoint {path}: the optimizer's variables do not match.")
            with np.load(os.path.join(path, "optimizer.npz")) as data:
                for i, variable in enumerate(opt_vars):
                    variable.assign(data[f"arr_{i}"])
            self.step = step
            if self.verbose:
                print(f"resumed from {path} (step {step})")
            return step
        self.step = 0
        return 0

    # ------------------------------------------------------------------ hooks
    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every_steps == 0:
            self.save(self.step)
