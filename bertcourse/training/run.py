"""A run directory: every file a training run writes, named in ONE place, and a manifest that says what it is.

``run.json`` (the manifest) holds the run's ``kind`` ("pretraining", "classification"), the format version,
``status`` ("running" until the final weights are safely written, then "finished"), the sha256 of the
run's configuration and the bertcourse version. :meth:`RunDirectory.create` refuses (one line,
:class:`~bertcourse.errors.RunDirectoryError`) to write a run into a run of another kind, over a finished
run without ``overwrite=True``, or to resume a finished run; the loaders rebuild any run, including the
runs written before the manifest existed (lesson 07's ``pretrainer.weights.h5``, ``backbone.weights.h5``,
``config.json``, ``vocab.txt``, ``pretrain_config.json``).

>>> import tempfile
>>> path = tempfile.mkdtemp() + "/run"
>>> run = RunDirectory.create(path, "pretraining", {"preset": "tiny"})
>>> run.kind, run.manifest["status"], run.is_finished
('pretraining', 'running', False)
>>> run.path_of("backbone_weights").name
'backbone.weights.h5'
>>> run.mark_finished()
>>> RunDirectory.create(path, "classification", {})
Traceback (most recent call last):
...
bertcourse.errors.RunDirectoryError: ... is a pretraining run; a classification run cannot be written there: ...
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from keras.src.saving import saving_lib  # save_weights_only(objects_to_skip=...): the weights without the optimizer

from bertcourse import __version__
from bertcourse.config import BertConfig
from bertcourse.errors import ModelLoadError, RunDirectoryError
from bertcourse.models import BertBackbone
from bertcourse.models.pretraining import BertPretrainer, CausalLMPretrainer
from bertcourse.tasks import RUN_TASKS
from bertcourse.text import BertPreprocessor, WordPieceTokenizer

__all__ = ["RunDirectory", "pretrainer_from_settings", "FILES", "KINDS", "FORMAT_VERSION", "config_sha256",
           "atomic_write_text", "fsync_path", "atomic_save_weights"]

FORMAT_VERSION = 1
# a run kind per fine-tunable task (bertcourse.tasks.RUN_TASKS: kind -> task class)
KINDS = ("pretraining", *RUN_TASKS)

# Every file name of a run, in one place (attribute name -> file or folder name).
FILES = {
    "manifest": "run.json",
    "config_json": "config.json",                  # the backbone's BertConfig
    "vocab": "vocab.txt",
    "backbone_weights": "backbone.weights.h5",
    "pretrainer_weights": "pretrainer.weights.h5",  # pretraining: backbone + MLM/NSP heads
    "model_weights": "model.weights.h5",            # a task model (classifier ...)
    "train_config": "train_config.json",            # the whole run configuration (its sha256 is in run.json)
    "pretrain_config": "pretrain_config.json",      # PretrainConfig (how to rebuild the pretrainer)
    "task_config": "task.json",                     # a task model's settings (labels, sequence length ...)
    "history": "history.json",                      # every epoch's logs, kept across resumes
    "log_csv": "log.csv",                           # the same, as a table
    "metrics": "metrics.json",
    "checkpoints": "checkpoints",                   # step-<N>/ folders, kept until the final weights are written
    "logs": "logs",                                 # TensorBoard
}
# Files of runs written before run.json existed, and what they say about the run's kind.
LEGACY_FILES = {"classifier_weights": "classifier.weights.h5", "labels": "labels.json", "backup": "backup"}


def config_sha256(config: dict[str, Any]) -> str:
    """sha256 of a configuration's canonical JSON (sorted keys): equal configs, equal hashes."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"seed": 1}}`` -> ``{"train.seed": 1}`` (to name what differs between two configurations)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's or a directory's entry to disk (best effort: some file systems refuse; then nothing)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary file, fsync it, rename it over ``path``: never half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)
    return path


def atomic_save_weights(model, path: str | os.PathLike, include_optimizer: bool = False) -> Path:
    """``model.save_weights`` to a temporary ``.weights.h5`` file, then an atomic rename over ``path``.

    A compiled model's ``save_weights`` also writes its optimizer's state (AdamW's two moments: twice
    the model's size) although only the model's weights are ever loaded from a finished run; resuming
    reads ``checkpoints/``. So the optimizer is left out unless ``include_optimizer``.
    """
    path = Path(path)
    tmp = path.with_name(path.name.replace(".weights.h5", ".partial.weights.h5"))
    optimizer = getattr(model, "optimizer", None)
    if include_optimizer or optimizer is None:
        model.save_weights(str(tmp))
    else:
        saving_lib.save_weights_only(model, str(tmp), objects_to_skip=[optimizer])
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)
    return path


def pretrainer_from_settings(config: BertConfig, settings: dict, dtype=None):
    """The untrained pretrainer a weights file was saved from, rebuilt from ``pretrain_config.json``'s
    ``settings``: a ``CausalLMPretrainer`` for ``objective == "causal"``, else a ``BertPretrainer`` with
    the run's ``mlm_only`` and ``sparse_last_layer`` (the weight layout depends on them)."""
    if settings.get("objective", "mlm") == "causal":  # a left-to-right LM (PretrainConfig(objective="causal"))
        return CausalLMPretrainer(BertBackbone(config, causal=True, dtype=dtype))
    return BertPretrainer(BertBackbone(config, dtype=dtype), mlm_only=bool(settings.get("mlm_only", False)),
                          sparse_last_layer=bool(settings.get("sparse_last_layer", False)))


class RunDirectory:
    """One training run on disk. ``run.path_of("history")`` or ``run.history`` -> its path."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __getattr__(self, name: str) -> Path:
        if name in FILES:
            return self.path / FILES[name]
        raise AttributeError(name)

    def path_of(self, name: str) -> Path:
        """The path of one of the run's files by its name in :data:`FILES` (``"config"`` = ``"config_json"``)."""
        key = {"config": "config_json"}.get(name, name)
        if key not in FILES:
            raise KeyError(f"{name!r} is not a run file; known: {sorted(FILES)}")
        return self.path / FILES[key]

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    # ------------------------------------------------------------------ what the run is
    @property
    def manifest(self) -> dict[str, Any]:
        """``run.json``; for a run written before the manifest existed, one inferred from its files
        (``format_version`` 0). Empty when the folder holds no run."""
        path = self.path / FILES["manifest"]
        if path.is_file():
            try:
                manifest = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(manifest, dict) or "kind" not in manifest:
                    raise ValueError("no 'kind'")
            except ValueError as err:
                raise RunDirectoryError(f"{path} is corrupt ({err}); move the folder away or choose another "
                                        "--out.") from None
            return manifest
        return self._legacy_manifest()

    def _legacy_manifest(self) -> dict[str, Any]:
        p = self.path
        if (p / LEGACY_FILES["classifier_weights"]).is_file():
            return {"kind": "classification", "format_version": 0, "status": "finished"}
        if (p / FILES["pretrainer_weights"]).is_file() or (p / FILES["backbone_weights"]).is_file():
            return {"kind": "pretraining", "format_version": 0, "status": "finished"}
        if (p / LEGACY_FILES["backup"]).is_dir():
            return {"kind": "pretraining", "format_version": 0, "status": "running"}
        return {}

    @property
    def exists(self) -> bool:
        """Whether the folder holds a run (with a manifest or an older run's files)."""
        return self.path.is_dir() and bool(self.manifest)

    @property
    def kind(self) -> str | None:
        return self.manifest.get("kind")

    @property
    def is_finished(self) -> bool:
        return self.manifest.get("status") == "finished"

    @property
    def config(self) -> dict[str, Any]:
        """The run configuration given to :meth:`create` (``train_config.json``)."""
        path = self.path / FILES["train_config"]
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    # ------------------------------------------------------------------ writing
    @classmethod
    def create(cls, path: str | os.PathLike, kind: str, config: dict[str, Any], overwrite: bool = False,
               resume: bool = False) -> "RunDirectory":
        """Open ``path`` for a new run of ``kind`` (or, with ``resume``, the interrupted run there).

        Refused with one line (:class:`RunDirectoryError`): a file at ``path``; a run of another kind there
        (even with ``overwrite``: a pretraining run is never replaced by a fine-tuning run or the other way);
        a finished or interrupted run without ``overwrite`` (or ``resume``); ``resume`` of a finished run
        (it says so and changes nothing), of a run written by an older version, of a run with another
        configuration, or where there is no run. ``overwrite`` removes the old run's files first.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise RunDirectoryError(f"{run.path} is a file, not a run directory: choose another --out.")
        manifest = run.manifest if run.path.is_dir() else {}
        digest = config_sha256(config)
        if manifest:
            if manifest["kind"] != kind:
                raise RunDirectoryError(f"{run.path} is a {manifest['kind']} run; a {kind} run cannot be written "
                                        "there: choose another --out.")
            finished = manifest.get("status") == "finished"
            if resume and not overwrite:
                if finished:
                    raise RunDirectoryError(f"{run.path} is a finished {kind} run: nothing to resume (nothing was "
                                            "changed); pass --overwrite to train it again.")
                if manifest.get("format_version", 0) < 1:
                    raise RunDirectoryError(f"{run.path} was interrupted under an older bertcourse whose backups "
                                            "cannot be resumed exactly; pass --overwrite to start again.")
                if manifest.get("config_sha256") != digest:
                    old, new = _flatten(run.config), _flatten(json.loads(json.dumps(config, default=str)))
                    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                    raise RunDirectoryError(f"{run.path} was started with another configuration (differs in: "
                                            f"{', '.join(changed) or 'unknown'}); resume with the same settings, "
                                            "or pass --overwrite to start again.")
                return run
            if not overwrite:
                if finished:
                    raise RunDirectoryError(f"{run.path} already holds a finished {kind} run; choose another --out "
                                            "or pass --overwrite.")
                raise RunDirectoryError(f"{run.path} holds an interrupted {kind} run; pass --resume to continue it "
                                        "(or --overwrite to start again).")
            run.clear()
        elif resume and not overwrite:
            raise RunDirectoryError(f"--resume given but {run.path} holds no run to continue.")
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.path / FILES["train_config"], json.dumps(config, indent=1, sort_keys=True,
                                                                          default=str))
        run._write_manifest({"kind": kind, "format_version": FORMAT_VERSION, "status": "running",
                             "config_sha256": digest, "bertcourse": __version__})
        return run

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_text(self.path / FILES["manifest"], json.dumps(manifest, indent=1, sort_keys=True))

    def clear(self) -> None:
        """Remove the run's own files and folders (not anything else a user put in the folder)."""
        for name in list(FILES.values()) + list(LEGACY_FILES.values()):
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def mark_finished(self, remove_checkpoints: bool = True) -> None:
        """Call once the final weights are written: ``status`` -> ``finished`` (atomically), then the
        checkpoints go (until this moment a crash leaves a resumable run)."""
        manifest = self.manifest
        manifest["status"] = "finished"
        self._write_manifest(manifest)
        if remove_checkpoints:
            shutil.rmtree(self.path / FILES["checkpoints"], ignore_errors=True)

    def write_json(self, name: str, data: Any) -> Path:
        """Write one of the run's JSON files (by its :data:`FILES` name) atomically."""
        return atomic_write_text(self.path_of(name), json.dumps(data, indent=1, default=float))

    def read_json(self, name: str, default: Any = None) -> Any:
        path = self.path_of(name)
        if not path.is_file():
            return default
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise RunDirectoryError(f"{path} is corrupt: {err}.") from None

    # ------------------------------------------------------------------ loading
    def _require(self, *names: str) -> None:
        for name in names:
            path = self.path_of(name)
            if not path.is_file():
                what = f"a {self.kind} run" if self.kind else "no run"
                raise FileNotFoundError(f"{path} is missing ({self.path} holds {what}): run lesson 07 "
                                        f"(or `bertcourse pretrain --out {self.path}`) first.")

    def _load_weights(self, model, name: str) -> None:
        path = self.path_of(name)
        try:
            model.load_weights(str(path))
        except Exception as err:  # h5py/Keras raise many types for truncated or foreign files
            raise ModelLoadError(f"{path} cannot be loaded into this model ({type(err).__name__}: "
                                 f"{str(err).splitlines()[0] if str(err) else ''}); the file is truncated or "
                                 "from another model.") from err

    def bert_config(self) -> BertConfig:
        """The backbone's config; ``normalize_first`` from ``pretrain_config.json`` for older runs."""
        self._require("config_json")
        config = BertConfig.from_json(self.path_of("config_json"))
        legacy = self.read_json("pretrain_config", {}) or {}
        if legacy.get("normalize_first") and not config.normalize_first:
            config = config.replace(normalize_first=True)
        return config

    def tokenizer(self, lowercase: bool | None = None) -> WordPieceTokenizer:
        self._require("vocab")
        if lowercase is None:
            lowercase = bool((self.read_json("task_config", {}) or {}).get("lowercase", True))
        return WordPieceTokenizer.from_vocab_file(self.path_of("vocab"), lowercase=lowercase)

    def load_backbone(self, dtype=None):
        """``(BertBackbone, WordPieceTokenizer)``: the pretrained encoder of a pretraining run (or the
        fine-tuned encoder of a task run, taken from its model weights)."""
        if self.kind in RUN_TASKS:
            task = self.load_task(dtype=dtype)
            return task.backbone, self.tokenizer()
        self._require("config_json", "backbone_weights", "vocab")
        backbone = BertBackbone(self.bert_config(), dtype=dtype)
        self._load_weights(backbone, "backbone_weights")
        return backbone, self.tokenizer()

    def load_pretrainer(self, dtype=None):
        """``(BertPretrainer, WordPieceTokenizer)`` rebuilt with the run's own settings (MLM-only, sparse
        last layer: the weight file's layout depends on them), then ``pretrainer.weights.h5`` loaded; a
        causal run (``objective="causal"``) gives its ``CausalLMPretrainer``."""
        self._require("config_json", "pretrainer_weights", "vocab")
        model = pretrainer_from_settings(self.bert_config(), self.read_json("pretrain_config", {}) or {}, dtype)
        self._load_weights(model, "pretrainer_weights")
        return model, self.tokenizer()

    def load_task(self, dtype=None):
        """The fine-tuned task model of a task run, with its preprocessor: the task class registered for
        the run's kind in :data:`bertcourse.tasks.RUN_TASKS` rebuilds itself from ``task.json``
        (``from_run_settings``), then ``model.weights.h5`` is loaded. Its ``predict`` takes raw strings."""
        task_class = RUN_TASKS.get(self.kind or "")
        if task_class is None:
            raise RunDirectoryError(f"{self.path} is a {self.kind or 'no'} run, not a fine-tuned task model; "
                                    "use load_backbone() or load_pretrainer().")
        settings = self.read_json("task_config", None)
        legacy = settings is None
        if legacy:  # a classification run written before task.json: classifier.weights.h5 + labels.json
            labels = json.loads((self.path / LEGACY_FILES["labels"]).read_text(encoding="utf-8"))
            settings = {"labels": sorted(labels, key=labels.get), "dropout": 0.1, "lowercase": True}
        self._require("config_json", "vocab")
        config = self.bert_config()
        settings = dict(settings)
        settings.setdefault("sequence_length", min(128, config.max_position_embeddings))
        backbone = BertBackbone(config, dtype=dtype)
        extra = {"truncation": settings["truncation"]} if settings.get("truncation") else {}
        preprocessor = BertPreprocessor.from_vocab_file(self.path_of("vocab"),
                                                        lowercase=bool(settings.get("lowercase", True)),
                                                        sequence_length=int(settings["sequence_length"]), **extra)
        model = task_class.from_run_settings(backbone, preprocessor, settings)
        if legacy:
            path = self.path / LEGACY_FILES["classifier_weights"]
            try:
                model.load_weights(str(path))
            except Exception as err:
                raise ModelLoadError(f"{path} cannot be loaded into this model ({type(err).__name__}).") from err
        else:
            self._require("model_weights")
            self._load_weights(model, "model_weights")
        return model
