"""Load and save Hugging Face BERT checkpoints (``config.json`` + ``model.safetensors`` + ``vocab.txt``).

No ``transformers`` and no ``torch``: the tensors are read with the ``safetensors`` package's
numpy API and copied into :class:`~bertcourse.models.BertBackbone` by name (lesson 05).

Two things differ between a PyTorch checkpoint and our Keras variables:

* PyTorch's ``nn.Linear`` stores its weight as ``[out, in]``; a Keras ``Dense`` kernel is
  ``[in, out]``: every dense kernel is transposed (embeddings and LayerNorms are not).
* Names: ``encoder.layer.3.attention.self.query.weight`` is the backbone's canonical weight
  ``encoder.3.attention.query.kernel`` (:mod:`bertcourse.convert.weight_map`); the whole
  translation is the table ``HF_NAMES``. ``BertModel`` checkpoints saved from a
  ``BertForPreTraining``/``BertForMaskedLM`` carry a ``bert.`` prefix and ``cls.*`` heads (ignored
  here, with a warning); the sentence-transformers models (MiniLM) have no prefix. The
  ``embeddings.position_ids`` buffer (``arange(512)``) is not a weight and is skipped.

Every tensor of the file must find a variable and every variable a tensor: otherwise the
error lists what is left over or missing, so a wrong file cannot load "half way".

>>> # backbone, tokenizer = load_hf_bert("path/to/all-MiniLM-L6-v2")
>>> # save_hf_bert(backbone, tokenizer, "out_dir")   # the same format back, byte for byte
>>> HF_NAMES["encoder.{i}.feedforward.intermediate.kernel"]
'encoder.layer.{i}.intermediate.dense.weight'
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from bertcourse import errors
from bertcourse.config import BertConfig
from bertcourse.convert.weight_map import NamedWeight, backbone_weights
from bertcourse.models import BertBackbone
from bertcourse.text import WordPieceTokenizer
from bertcourse.text.vocab import load_vocabulary, save_vocabulary

__all__ = ["load_hf_bert", "save_hf_bert", "hf_weight_names", "hf_name", "HF_NAMES", "read_hf_config",
           "read_vocab_file", "CheckpointError", "CasingMismatchError", "vocab_looks_cased"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
_PICKLE_FILES = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")
_SKIPPED_BUFFERS = ("embeddings.position_ids",)
_HEAD_PREFIXES = ("cls.",)
# Old (pre-2019) PyTorch BERT checkpoints call the LayerNorm parameters gamma/beta.
_OLD_LAYER_NORM = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}


class CheckpointError(errors.CheckpointError, errors.ModelLoadError):
    """A checkpoint directory or file cannot be loaded as BERT (the one-line message names the file/tensor).

    Both a :class:`bertcourse.errors.CheckpointError` and a :class:`bertcourse.errors.ModelLoadError`, so a
    front end catching either (or :class:`bertcourse.errors.BertcourseError`) prints it as one line.
    """


class CasingMismatchError(CheckpointError):
    """The vocabulary's casing disagrees with the tokenizer settings (cased vs uncased)."""


# ----------------------------------------------------------------------------- names
# Canonical name (bertcourse.convert.weight_map) -> Hugging Face tensor name (without a "bert." prefix).
# Every ".kernel" is a dense kernel: stored transposed, as PyTorch's [out, in].
HF_NAMES = {
    "embeddings.token": "embeddings.word_embeddings.weight",
    "embeddings.position": "embeddings.position_embeddings.weight",
    "embeddings.segment": "embeddings.token_type_embeddings.weight",
    "embeddings.layer_norm.gamma": "embeddings.LayerNorm.weight",
    "embeddings.layer_norm.beta": "embeddings.LayerNorm.bias",
    "encoder.{i}.attention.query.kernel": "encoder.layer.{i}.attention.self.query.weight",
    "encoder.{i}.attention.query.bias": "encoder.layer.{i}.attention.self.query.bias",
    "encoder.{i}.attention.key.kernel": "encoder.layer.{i}.attention.self.key.weight",
    "encoder.{i}.attention.key.bias": "encoder.layer.{i}.attention.self.key.bias",
    "encoder.{i}.attention.value.kernel": "encoder.layer.{i}.attention.self.value.weight",
    "encoder.{i}.attention.value.bias": "encoder.layer.{i}.attention.self.value.bias",
    "encoder.{i}.attention.output.kernel": "encoder.layer.{i}.attention.output.dense.weight",
    "encoder.{i}.attention.output.bias": "encoder.layer.{i}.attention.output.dense.bias",
    "encoder.{i}.attention_layer_norm.gamma": "encoder.layer.{i}.attention.output.LayerNorm.weight",
    "encoder.{i}.attention_layer_norm.beta": "encoder.layer.{i}.attention.output.LayerNorm.bias",
    "encoder.{i}.feedforward.intermediate.kernel": "encoder.layer.{i}.intermediate.dense.weight",
    "encoder.{i}.feedforward.intermediate.bias": "encoder.layer.{i}.intermediate.dense.bias",
    "encoder.{i}.feedforward.output.kernel": "encoder.layer.{i}.output.dense.weight",
    "encoder.{i}.feedforward.output.bias": "encoder.layer.{i}.output.dense.bias",
    "encoder.{i}.feedforward_layer_norm.gamma": "encoder.layer.{i}.output.LayerNorm.weight",
    "encoder.{i}.feedforward_layer_norm.beta": "encoder.layer.{i}.output.LayerNorm.bias",
    "pooler.kernel": "pooler.dense.weight",
    "pooler.bias": "pooler.dense.bias",
}


def hf_name(weight: NamedWeight) -> str:
    """The Hugging Face tensor name of one canonical weight.

    >>> from bertcourse.convert.weight_map import NamedWeight
    >>> hf_name(NamedWeight("encoder.3.attention.query.kernel", None))
    'encoder.layer.3.attention.self.query.weight'
    """
    if weight.pattern not in HF_NAMES:
        raise CheckpointError(f"{weight.name} has no place in a Hugging Face BERT checkpoint (BertModel is "
                              "post-LayerNorm, without a final LayerNorm).")
    return HF_NAMES[weight.pattern].format(i=weight.layer)


def _hf_weights(backbone) -> dict[str, tuple[Any, bool]]:
    """Hugging Face name -> (our variable, transpose?), from the canonical weight map."""
    return {hf_name(w): (w.variable, w.is_kernel) for w in backbone_weights(backbone)}


def hf_weight_names(backbone, prefix: str = "") -> list[str]:
    """The Hugging Face tensor names of every weight of ``backbone``, in model order.

    >>> from bertcourse.models import BertBackbone
    >>> names = hf_weight_names(BertBackbone("tiny"))
    >>> len(names), names[0], names[-1]
    (39, 'embeddings.word_embeddings.weight', 'pooler.dense.bias')
    """
    return [prefix + name for name in _hf_weights(backbone)]


# ----------------------------------------------------------------------------- reading
def _require_dir(path) -> Path:
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"No checkpoint directory at {str(root)!r}.")
    if not root.is_dir():
        raise CheckpointError(f"{str(root)!r} is a file; load_hf_bert takes the checkpoint DIRECTORY holding "
                              f"{CONFIG_FILE}, {WEIGHTS_FILE} and {VOCAB_FILE}.")
    return root


def _listing(root: Path) -> str:
    names = sorted(p.name for p in root.iterdir())
    return ", ".join(names[:20]) + (" ..." if len(names) > 20 else "") if names else "(empty)"


def read_hf_config(path) -> tuple[BertConfig, dict]:
    """``(BertConfig, raw dict)`` from a checkpoint directory's ``config.json``, with clear errors."""
    root = _require_dir(path)
    cfg_path = root / CONFIG_FILE
    if cfg_path.exists() and not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path} is not a file (a directory?): it must be the model's JSON config.")
    if not cfg_path.is_file():
        raise CheckpointError(f"{str(root)!r} is not a Hugging Face BERT checkpoint: it has no {CONFIG_FILE} "
                              f"(found: {_listing(root)}).")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {_one_line(err)}") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{cfg_path} must hold a JSON object.")
    model_type = raw.get("model_type")
    archs = raw.get("architectures") or []
    if model_type is None and not any(str(a).startswith("Bert") for a in archs):
        raise CheckpointError(f"{cfg_path} has no model_type and its architectures {archs} are not BERT's: "
                              "this does not look like a BERT config.")
    if model_type not in (None, "bert"):
        raise CheckpointError(f"{cfg_path} describes a {model_type!r} model (architectures {archs}), not BERT "
                              "(model_type 'bert'): its weights have other names and shapes, so load_hf_bert "
                              "cannot read it.")
    try:
        config = BertConfig.from_hf_dict(dict(raw, model_type="bert"))
    except (ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"{cfg_path}: {_one_line(err)}") from None
    return config, raw


def _read_tensors(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    weights = root / WEIGHTS_FILE
    if weights.exists() and not weights.is_file():
        raise CheckpointError(f"{weights} is not a file (a directory?): it must be the safetensors weights file.")
    if not weights.is_file():
        pickles = [n for n in _PICKLE_FILES if (root / n).exists()]
        hint = (f" It has {pickles[0]}, a pickle-based format that this loader does not read (a pickle can run "
                "code); convert it once with transformers: model.save_pretrained(dir, safe_serialization=True)."
                if pickles else "")
        raise CheckpointError(f"{str(root)!r} has no {WEIGHTS_FILE} (found: {_listing(root)}).{hint}")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        raise CheckpointError(f"{weights} cannot be read as safetensors (truncated or corrupt? download it "
                              f"again): {_one_line(err)}") from None
    return weights, tensors


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def read_vocab_file(vocab_path: Path) -> list[str]:
    """The tokens of a checkpoint's ``vocab.txt``; a missing, empty or undecodable file is a CheckpointError."""
    if vocab_path.exists() and not vocab_path.is_file():
        raise CheckpointError(f"{vocab_path} is not a file (a directory?): it must be the WordPiece vocabulary.")
    try:
        return load_vocabulary(vocab_path)
    except (ValueError, OSError) as err:  # UnicodeDecodeError is a ValueError
        msg = _one_line(err)
        raise CheckpointError(msg if str(vocab_path) in msg else f"{vocab_path}: {msg}") from None


def vocab_looks_cased(tokens: list[str]) -> bool:
    """True if a WordPiece vocabulary keeps upper case (a "cased" model).

    Uncased vocabularies were built from lowercased text, so apart from ``[CLS]``-style
    specials they hold (almost) no upper-case letters; cased ones hold thousands.

    >>> vocab_looks_cased(["[PAD]", "[UNK]", "the", "##s"]), vocab_looks_cased(["[UNK]", "The", "the", "Paris"])
    (False, True)
    """
    words = [t for t in tokens if not (t.startswith("[") and t.endswith("]")) and not t.startswith("<")]
    upper = sum(1 for t in words if any(c.isupper() for c in t))
    return upper > max(10, 0.01 * len(words)) or (len(words) < 1000 and upper > 0)


def _casing(root: Path, raw_config: dict, tokens: list[str], lowercase: bool | None,
            vocab_path: Path) -> tuple[bool, bool | None]:
    """Decide ``(lowercase, strip_accents)`` and check every casing signal agrees."""
    signals: list[tuple[str, bool]] = []  # (where, lowercase?)
    strip_accents = None
    tok_cfg_path = root / TOKENIZER_CONFIG_FILE
    if tok_cfg_path.is_file():
        try:
            tok_cfg = json.loads(tok_cfg_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{tok_cfg_path} is not valid JSON: {_one_line(err)}") from None
        if not isinstance(tok_cfg, dict):
            raise CheckpointError(f"{tok_cfg_path} must hold a JSON object.")
        if "do_lower_case" in tok_cfg:
            signals.append((f"{tok_cfg_path.name} do_lower_case={tok_cfg['do_lower_case']}",
                            bool(tok_cfg["do_lower_case"])))
        if tok_cfg.get("strip_accents") is not None:
            strip_accents = bool(tok_cfg["strip_accents"])
    name = str(raw_config.get("_name_or_path", ""))
    lowered = name.lower()
    if re.search(r"(^|[-_/])uncased($|[-_/])", lowered):
        signals.append((f"{CONFIG_FILE} _name_or_path {name!r}", True))
    elif re.search(r"(^|[-_/])cased($|[-_/])", lowered):
        signals.append((f"{CONFIG_FILE} _name_or_path {name!r}", False))
    cased_vocab = vocab_looks_cased(tokens)
    vocab_signal = (f"{vocab_path.name} ({'has' if cased_vocab else 'has no'} upper-case tokens)", not cased_vocab)
    declared = [s for s in signals]
    if lowercase is not None:
        declared.append((f"the argument lowercase={lowercase}", bool(lowercase)))
    # The vocabulary is the ground truth: an uncased vocab cannot match capitalised words.
    disagree = [where for where, low in declared if low != vocab_signal[1]]
    if disagree:
        want = "uncased (lowercase=True)" if vocab_signal[1] else "cased (lowercase=False)"
        raise CasingMismatchError(
            f"Cased/uncased mismatch in {str(root)!r}: {vocab_signal[0]} means the model is {want}, but "
            f"{'; '.join(disagree)} says otherwise. A cased model fed lowercased text (or the reverse) loads "
            f"without error and silently gives worse results: fix the file or the argument.")
    return vocab_signal[1], strip_accents


def _check_and_rename(tensors: dict[str, np.ndarray], weights_path: Path) -> tuple[dict[str, np.ndarray], str,
                                                                                    list[str]]:
    """Strip the ``bert.`` prefix, drop buffers and heads; returns (tensors, prefix, ignored heads)."""
    names = list(tensors)
    prefix = "bert." if any(n.startswith("bert.") for n in names) else ""
    out, ignored = {}, []
    for name, value in tensors.items():
        key = name
        for old, new in _OLD_LAYER_NORM.items():
            if key.endswith(old):
                key = key[: -len(old)] + new
        if prefix and key.startswith(prefix):
            key = key[len(prefix):]
        elif key.startswith(_HEAD_PREFIXES):
            ignored.append(name)
            continue
        if key in _SKIPPED_BUFFERS:
            continue
        out[key] = value
    return out, prefix, ignored


def load_hf_bert(path: str | os.PathLike, lowercase: bool | None = None, strict: bool = True,
                 **backbone_kwargs) -> tuple[Any, Any]:
    """Read a Hugging Face BERT directory into ``(BertBackbone, WordPieceTokenizer)``.

    Args:
        path: a directory with ``config.json``, ``model.safetensors``, ``vocab.txt`` and
            optionally ``tokenizer_config.json`` (``do_lower_case``, ``strip_accents``).
        lowercase: the tokenizer's casing. ``None`` (default) reads it from the checkpoint; any
            value given is checked against the vocabulary, and a cased/uncased disagreement
            anywhere is a :class:`CasingMismatchError`.
        strict: every variable must get a tensor (default). ``strict=False`` leaves weights the
            file lacks (e.g. the pooler of a ``BertForMaskedLM`` export) at their initial values
            and warns.
        backbone_kwargs: passed to ``BertBackbone`` (``output_attention_scores=True``, ``dtype=...``).

    Raises:
        FileNotFoundError when ``path`` does not exist; otherwise :class:`CheckpointError` (a
        :class:`bertcourse.errors.ModelLoadError`) with a one-line message naming the file (and tensor) when
        ``path`` is a file, ``config.json`` is corrupt or not BERT's, ``model.safetensors`` or ``vocab.txt``
        is missing, empty or truncated, or a tensor is missing, left over or has the wrong shape.
    """
    root = _require_dir(path)
    config, raw = read_hf_config(root)
    vocab_path = root / VOCAB_FILE
    if not vocab_path.is_file():
        raise CheckpointError(f"{str(root)!r} has no {VOCAB_FILE}: the weights cannot be used without the "
                              f"vocabulary they were trained with (found: {_listing(root)}).")
    tokens = read_vocab_file(vocab_path)
    weights_path, tensors = _read_tensors(root)
    tensors, prefix, ignored = _check_and_rename(tensors, weights_path)

    if len(tokens) > config.vocab_size:
        raise CheckpointError(f"{vocab_path} has {len(tokens)} tokens but {CONFIG_FILE} says vocab_size="
                              f"{config.vocab_size}: ids past {config.vocab_size - 1} would have no embedding. "
                              "The vocabulary does not belong to these weights.")
    do_lower, strip_accents = _casing(root, raw, tokens, lowercase, vocab_path)

    backbone = BertBackbone(config, **backbone_kwargs)
    expected = _hf_weights(backbone)
    missing = [n for n in expected if n not in tensors]
    unexpected = sorted(n for n in tensors if n not in expected)
    if unexpected or (missing and strict):
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s) {[prefix + n for n in missing][:12]}")
        if unexpected:
            parts.append(f"{len(unexpected)} tensor(s) left over {[prefix + n for n in unexpected][:12]}")
        hint = ""
        if any(n.startswith("encoder.layer.") for n in unexpected):
            hint = (f" ({CONFIG_FILE} says num_hidden_layers={config.num_layers}: does the config belong to "
                    "these weights?)")
        raise CheckpointError(f"{weights_path} does not match a BERT with this {CONFIG_FILE}: "
                              + "; ".join(parts) + "." + hint)
    for name in missing:
        warnings.warn(f"{weights_path}: no tensor {prefix + name}; that weight keeps its random initial value.",
                      stacklevel=2)
    for name, value in tensors.items():
        var, transpose = expected[name]
        value = value.T if transpose else value
        want = tuple(var.shape)
        if value.shape != want:
            stored = value.T.shape if transpose else value.shape
            raise CheckpointError(
                f"{weights_path}: tensor {prefix + name!r} has shape {tuple(stored)} but {CONFIG_FILE} "
                f"(hidden_size={config.hidden_size}, intermediate_size={config.intermediate_size}, "
                f"vocab_size={config.vocab_size}, max_position_embeddings={config.max_position_embeddings}) "
                f"needs {tuple(reversed(want)) if transpose else want}"
                + (" ([out, in], PyTorch's Linear layout)" if transpose else "") + ".")
        if not np.issubdtype(value.dtype, np.floating):
            raise CheckpointError(f"{weights_path}: tensor {prefix + name!r} has dtype {value.dtype}, "
                                  "expected floating point.")
        var.assign(np.ascontiguousarray(value))
    if ignored:
        warnings.warn(f"{weights_path}: ignored {len(ignored)} pretraining-head tensor(s) "
                      f"({', '.join(sorted(ignored)[:4])}{', ...' if len(ignored) > 4 else ''}); "
                      "only the encoder (BertBackbone) is loaded.", stacklevel=2)
    tokenizer = WordPieceTokenizer(tokens, lowercase=do_lower, strip_accents=strip_accents)
    return backbone, tokenizer


# ----------------------------------------------------------------------------- writing
def save_hf_bert(backbone, tokenizer, path: str | os.PathLike, prefix: str = "") -> Path:
    """Write ``backbone`` + ``tokenizer`` as a Hugging Face BERT directory (what ``load_hf_bert`` reads).

    Writes ``config.json`` (``BertModel``), ``model.safetensors`` (float tensors named as in
    ``transformers``, dense kernels transposed back to ``[out, in]``; ``prefix="bert."`` for the
    ``BertForPreTraining`` naming), ``vocab.txt`` and ``tokenizer_config.json``. Returns the directory.
    """
    if getattr(backbone, "normalize_first", False):
        raise CheckpointError("Hugging Face's BertModel is post-LayerNorm only; this backbone has "
                              "normalize_first=True (pre-LN), which no BERT checkpoint can express.")
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    vocab = list(tokenizer.get_vocabulary())
    config = backbone.config
    if len(vocab) > config.vocab_size:
        raise CheckpointError(f"The tokenizer has {len(vocab)} tokens but the backbone's token table only "
                              f"{config.vocab_size} rows.")
    tensors = {}
    for name, (var, transpose) in _hf_weights(backbone).items():
        value = np.asarray(var.numpy() if hasattr(var, "numpy") else var)
        tensors[prefix + name] = np.ascontiguousarray(value.T if transpose else value)
    save_file(tensors, str(root / WEIGHTS_FILE), metadata={"format": "pt"})
    hf = config.to_hf_dict()
    hf["architectures"] = ["BertForPreTraining" if prefix else "BertModel"]
    (root / CONFIG_FILE).write_text(json.dumps(hf, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    save_vocabulary(vocab, root / VOCAB_FILE)
    lowercase = bool(getattr(tokenizer, "lowercase", True))
    strip = getattr(tokenizer, "strip_accents", None)
    tok_cfg = {"do_lower_case": lowercase, "strip_accents": None if strip == lowercase else strip,
               "tokenize_chinese_chars": True, "tokenizer_class": "BertTokenizer",
               "model_max_length": config.max_position_embeddings, "unk_token": "[UNK]", "sep_token": "[SEP]",
               "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}
    (root / TOKENIZER_CONFIG_FILE).write_text(json.dumps(tok_cfg, indent=2, sort_keys=True) + "\n",
                                              encoding="utf-8")
    return root
