"""Callbacks of the training engine: fill-mask probes (lesson 07), best weights, and the checkpoints that
let a killed run continue exactly (lesson 08).

>>> probe = FillMaskProbe(tokenizer, ["It is a truth universally [MASK]."])   # doctest: +SKIP
>>> pretrainer.fit(ds, epochs=3, steps_per_epoch=100, callbacks=[probe])    # doctest: +SKIP
epoch 1: It is a truth universally [MASK]. -> the 0.08 | , 0.05 | . 0.04

A checkpoint is a folder that appears complete or not at all, with a checksum per file:

>>> import keras, numpy as np, tempfile
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
>>> model.compile("sgd", "mse")
>>> ckpt = ResumableCheckpoint(tempfile.mkdtemp(), every_steps=1, verbose=False)
>>> ckpt.set_model(model)
>>> path = ckpt.save(7)
>>> sorted(p.name for p in __import__("pathlib").Path(path).iterdir())
['model.npz', 'optimizer.npz', 'state.json']
>>> ckpt.restore(model)
7
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import keras
import numpy as np

from bertcourse.errors import CheckpointError, RunDirectoryError
from bertcourse.tasks.fill_mask import fill_mask
from bertcourse.training.run import fsync_path

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
        rows = []
        for sentence in self.sentences:
            per_mask = fill_mask(self.model, self.tokenizer, [sentence], top_k=self.top_k)[0]
            predictions = per_mask[0] if per_mask else []  # several masks: show the first
            row = {"epoch": epoch, "sentence": sentence,
                   "predictions": [(p["token_str"], round(p["score"], 3)) for p in predictions]}
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

    def __init__(self, monitor: str = "val_loss", greater_is_better: bool = False, verbose: bool = True,
                 restore_at_end: bool = True):
        super().__init__()
        self.restore_at_end = restore_at_end  # train() restores once, after all of its fit calls
        self.monitor = monitor
        self.greater_is_better = greater_is_better
        self.verbose = verbose
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(f"BestWeights monitors {self.monitor!r} but the logs only have {sorted(logs)}; "
                             "pass validation_data or choose another metric.")
        value = float(logs[self.monitor])
        better = self.best is None or (value > self.best if self.greater_is_better else value < self.best)
        if better:
            self.best, self.best_epoch = value, epoch + 1
            self.best_weights = [np.array(v.numpy(), copy=True) for v in self.model.weights]

    def restore_best(self) -> bool:
        """Put the best epoch's weights into the model (what ``on_train_end`` does); False if none yet."""
        if self.best_weights is None:
            return False
        for variable, value in zip(self.model.weights, self.best_weights):
            variable.assign(value)
        if self.verbose:
            print(f"restored the best weights: epoch {self.best_epoch}, {self.monitor} = {self.best:.4f}")
        return True

    def on_train_end(self, logs=None):
        if self.restore_at_end:
            self.restore_best()




def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _floats(logs: dict | None) -> dict[str, float]:
    out = {}
    for key, value in (logs or {}).items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class ResumableCheckpoint(keras.callbacks.Callback):
    """Checkpoints that let a killed run continue EXACTLY where it stopped.

    Every ``every_steps`` batches (and once more when training ends) it writes ``step-<N>/`` holding every
    model variable (weights and the dropout RNG states), every optimizer variable (moments, iteration
    count, accumulators), the best epoch's weights of a :class:`BestWeights` (``best=``), and
    ``state.json``: the step -- which is also the data position, since the engine's training streams
    are step-indexed (:mod:`bertcourse.training.streams`) -- the history of the finished epochs, the
    running logs of the current one, and a sha256 of each file. The folder is written as ``step-<N>.tmp``,
    fsynced and renamed when complete, so a crash never leaves a half-written checkpoint in place.

    :meth:`restore` loads the newest checkpoint whose checksums match; corrupt ones are reported, renamed
    ``step-<N>.corrupt`` (so they never count toward ``keep``) and the previous one is used. When every
    checkpoint is corrupt it raises :class:`~bertcourse.errors.RunDirectoryError` instead of silently
    starting from step 0. The newest ``keep`` good checkpoints are kept.
    """

    def __init__(self, directory: str | os.PathLike, every_steps: int | None = 100, keep: int = 3,
                 verbose: bool = True, best: BestWeights | None = None, final_step: int | None = None,
                 history_file: str | os.PathLike | None = None):
        super().__init__()
        if every_steps is not None and every_steps < 1:
            raise ValueError("every_steps must be >= 1 (or None: history only, no checkpoints).")
        if keep < 1:
            raise ValueError("keep must be >= 1.")
        self.directory = str(directory)
        self.every_steps = int(every_steps) if every_steps else None
        self.final_step = final_step  # also checkpointed: a crash while final weights are written resumes here
        self.history_file = history_file  # history.json (+ log.csv next to it), rewritten every epoch
        self.keep = int(keep)
        self.verbose = verbose
        self.best = best
        self.step = 0
        self.history: dict[str, list[float]] = {}
        self._epoch_steps = 0
        self._epoch_logs: dict[str, float] = {}
        self._carry: tuple[int, dict[str, float]] | None = None  # (steps, running logs) of a resumed epoch
        self._last_saved: int | None = None

    # ------------------------------------------------------------------ files
    def checkpoints(self) -> list[tuple[int, str]]:
        """``(step, path)`` of the complete-looking checkpoints, oldest first (not ``.tmp``/``.corrupt``)."""
        if not os.path.isdir(self.directory):
            return []
        found = []
        for name in os.listdir(self.directory):
            if name.startswith("step-") and name[5:].isdigit():
                found.append((int(name[5:]), os.path.join(self.directory, name)))
        return sorted(found)

    def save(self, step: int) -> str:
        """Write ``step-<step>/`` atomically; then drop all but the newest ``keep`` checkpoints."""
        os.makedirs(self.directory, exist_ok=True)
        final = os.path.join(self.directory, f"step-{step}")
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        files = {"model.npz": [v.numpy() for v in self.model.variables]}
        opt_vars = list(self.model.optimizer.variables) if getattr(self.model, "optimizer", None) is not None else []
        files["optimizer.npz"] = [v.numpy() for v in opt_vars]
        best = None
        if self.best is not None and self.best.best_weights is not None:
            files["best.npz"] = self.best.best_weights
            best = {"value": self.best.best, "epoch": self.best.best_epoch}
        digests = {}
        for name, arrays in files.items():
            path = os.path.join(tmp, name)
            np.savez(path, *arrays)
            fsync_path(path)
            digests[name] = _sha256(path)
        state = {"step": step, "model_variables": [v.path for v in self.model.variables],
                 "optimizer_variables": [v.path for v in opt_vars], "sha256": digests, "best": best,
                 "history": self.history, "epoch_steps": self._epoch_steps, "epoch_logs": self._epoch_logs}
        with open(os.path.join(tmp, "state.json"), "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)  # atomic on POSIX: the checkpoint appears complete or not at all
        fsync_path(self.directory)
        self._last_saved = step
        for _, old in self.checkpoints()[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for name in os.listdir(self.directory):  # corrupt ones, now that a newer good one exists
            if name.endswith(".corrupt"):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
        return final

    @staticmethod
    def _valid(path: str) -> dict | None:
        try:
            with open(os.path.join(path, "state.json")) as f:
                state = json.load(f)
            for name, digest in state["sha256"].items():
                if _sha256(os.path.join(path, name)) != digest:
                    return None
            int(state["step"])
            return state
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def restore(self, model) -> int:
        """Load the newest valid checkpoint into ``model`` (compiled, optimizer attached); return its step
        (0 if there is no checkpoint at all). Corrupt ones are skipped with a message."""
        found = self.checkpoints()
        corrupt = []
        for step, path in reversed(found):
            state = self._valid(path)
            if state is None:
                print(f"checkpoint {path} is incomplete or corrupted (checksum mismatch): trying the previous one")
                corrupt.append(path)
                continue
            self._load(model, path, state)
            for bad in corrupt:  # out of the way: they must not count toward `keep` nor be tried again
                os.replace(bad, bad + ".corrupt")
            self.step = self._last_saved = step
            self.history = {k: list(v) for k, v in (state.get("history") or {}).items()}
            done = int(state.get("epoch_steps") or 0)
            self._carry = (done, dict(state.get("epoch_logs") or {})) if done else None
            if self.verbose:
                print(f"resumed from {path} (step {step})")
            return step
        if corrupt:
            raise RunDirectoryError(f"every checkpoint in {self.directory} is corrupt "
                                    f"({', '.join(os.path.basename(p) for p in corrupt)}): nothing to resume from; "
                                    "pass --overwrite to start over.")
        if self.verbose:
            print(f"no checkpoint in {self.directory} yet: starting from step 0")
        self.step = 0
        return 0

    @staticmethod
    def _assign(variables, path: str, name: str, what: str) -> None:
        """Assign the arrays of ``name`` in order (layer names may differ between processes: Keras numbers
        auto-named layers per session), after checking their number and shapes."""
        with np.load(os.path.join(path, name), allow_pickle=False) as data:
            arrays = [data[f"arr_{i}"] for i in range(len(data.files))]
        shapes = [tuple(v.shape) for v in variables]
        if len(arrays) != len(variables) or [a.shape for a in arrays] != shapes:
            raise CheckpointError(f"checkpoint {path} was written by a different {what} ({len(arrays)} variables vs "
                                  f"{len(variables)}, or other shapes); resume with the run's own settings.")
        for variable, value in zip(variables, arrays):
            variable.assign(value)

    def _load(self, model, path: str, state: dict) -> None:
        self._assign(model.variables, path, "model.npz", "model")
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self._assign(model.optimizer.variables, path, "optimizer.npz", "optimizer")
        best = state.get("best")
        if self.best is not None and best:
            with np.load(os.path.join(path, "best.npz"), allow_pickle=False) as data:
                self.best.best_weights = [data[f"arr_{i}"] for i in range(len(data.files))]
            self.best.best, self.best.best_epoch = best["value"], best["epoch"]

    # ------------------------------------------------------------------ hooks
    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_steps = self._carry[0] if self._carry else 0
        self._epoch_logs = dict(self._carry[1]) if self._carry else {}

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self._epoch_steps += 1
        self._epoch_logs = _floats(logs)
        if self._carry:  # a resumed epoch: Keras' running means cover only the batches since the checkpoint
            done, before = self._carry
            for key, value in self._epoch_logs.items():
                if key in before:
                    self._epoch_logs[key] = (before[key] * done + value * (self._epoch_steps - done)) \
                        / self._epoch_steps
        if self.every_steps and (self.step % self.every_steps == 0 or self.step == self.final_step):
            self.save(self.step)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._carry:
            # a resumed epoch: Keras averaged only the batches after the checkpoint; the epoch's logs are the
            # mean over all of its (equal-sized) batches, as in the uninterrupted run
            done, before = self._carry
            total = self._epoch_steps
            for key, value in list(logs.items()):
                if not key.startswith("val_") and key in before and total > done:
                    logs[key] = (before[key] * done + float(value) * (total - done)) / total
        self._carry = None
        for key, value in _floats(logs).items():
            self.history.setdefault(key, []).append(value)
        self._epoch_steps = 0
        self._epoch_logs = {}
        if self.history_file:
            self.write_history(self.history_file)

    def write_history(self, path: str | os.PathLike) -> None:
        """``history.json`` (every epoch so far, resumed ones included) and ``log.csv`` beside it, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = max((len(v) for v in self.history.values()), default=0)
        keys = sorted(self.history)
        lines = [",".join(["epoch"] + keys)]
        for i in range(rows):
            lines.append(",".join([str(i)] + [repr(self.history[k][i]) if i < len(self.history[k]) else ""
                                              for k in keys]))
        for target, text in ((path, json.dumps(self.history, indent=1)),
                             (path.with_name("log.csv"), "\n".join(lines) + "\n")):
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(text)
            os.replace(tmp, target)
