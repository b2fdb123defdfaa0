"""Load Google's original TF1 BERT checkpoints (``bert_model.ckpt`` + ``bert_config.json`` + ``vocab.txt``).

The checkpoints published with the BERT paper (``uncased_L-12_H-768_A-12.zip`` and the 24 "BERT
miniatures") are TensorFlow 1 name-based checkpoints, read here with ``tf.train.load_checkpoint``.
Their variable names::

    bert/embeddings/word_embeddings                 [vocab, hidden]
    bert/embeddings/token_type_embeddings           [type_vocab, hidden]
    bert/embeddings/position_embeddings             [max_positions, hidden]
    bert/embeddings/LayerNorm/gamma|beta            [hidden]
    bert/encoder/layer_N/attention/self/query|key|value/kernel|bias
    bert/encoder/layer_N/attention/output/dense/kernel|bias
    bert/encoder/layer_N/attention/output/LayerNorm/gamma|beta
    bert/encoder/layer_N/intermediate/dense/kernel|bias
    bert/encoder/layer_N/output/dense/kernel|bias
    bert/encoder/layer_N/output/LayerNorm/gamma|beta
    bert/pooler/dense/kernel|bias

Each is one canonical weight of :mod:`bertcourse.convert.weight_map` (table ``GOOGLE_NAMES``).
TF1 ``tf.layers.dense`` kernels are ``[in, out]`` like Keras, so nothing is transposed (unlike
PyTorch, see :mod:`bertcourse.convert.hf`). The MLM/NSP heads (``cls/...``), ``global_step`` and
Adam slots (``.../adam_m``, ``.../adam_v``) are not part of the encoder and are skipped.

>>> # backbone, tokenizer = load_google_checkpoint("uncased_L-4_H-256_A-4/bert_model.ckpt",
>>> #                                              "uncased_L-4_H-256_A-4/bert_config.json",
>>> #                                              "uncased_L-4_H-256_A-4/vocab.txt")
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from bertcourse.config import BertConfig
from bertcourse.convert.hf import CasingMismatchError, CheckpointError, read_vocab_file, vocab_looks_cased
from bertcourse.convert.weight_map import NamedWeight, backbone_weights
from bertcourse.models import BertBackbone
from bertcourse.text import WordPieceTokenizer

__all__ = ["load_google_checkpoint", "google_variable_names", "google_name", "GOOGLE_NAMES"]

_IGNORED = re.compile(r"^(cls/|global_step$|bad_steps$|good_steps$|loss_scale$)|/adam_[mv]$|/Momentum$")


# Canonical name (bertcourse.convert.weight_map) -> TF1 checkpoint variable. TF1 kernels are [in, out], as ours.
GOOGLE_NAMES = {
    "embeddings.token": "bert/embeddings/word_embeddings",
    "embeddings.segment": "bert/embeddings/token_type_embeddings",
    "embeddings.position": "bert/embeddings/position_embeddings",
    "embeddings.layer_norm.gamma": "bert/embeddings/LayerNorm/gamma",
    "embeddings.layer_norm.beta": "bert/embeddings/LayerNorm/beta",
    "encoder.{i}.attention.query.kernel": "bert/encoder/layer_{i}/attention/self/query/kernel",
    "encoder.{i}.attention.query.bias": "bert/encoder/layer_{i}/attention/self/query/bias",
    "encoder.{i}.attention.key.kernel": "bert/encoder/layer_{i}/attention/self/key/kernel",
    "encoder.{i}.attention.key.bias": "bert/encoder/layer_{i}/attention/self/key/bias",
    "encoder.{i}.attention.value.kernel": "bert/encoder/layer_{i}/attention/self/value/kernel",
    "encoder.{i}.attention.value.bias": "bert/encoder/layer_{i}/attention/self/value/bias",
    "encoder.{i}.attention.output.kernel": "bert/encoder/layer_{i}/attention/output/dense/kernel",
    "encoder.{i}.attention.output.bias": "bert/encoder/layer_{i}/attention/output/dense/bias",
    "encoder.{i}.attention_layer_norm.gamma": "bert/encoder/layer_{i}/attention/output/LayerNorm/gamma",
    "encoder.{i}.attention_layer_norm.beta": "bert/encoder/layer_{i}/attention/output/LayerNorm/beta",
    "encoder.{i}.feedforward.intermediate.kernel": "bert/encoder/layer_{i}/intermediate/dense/kernel",
    "encoder.{i}.feedforward.intermediate.bias": "bert/encoder/layer_{i}/intermediate/dense/bias",
    "encoder.{i}.feedforward.output.kernel": "bert/encoder/layer_{i}/output/dense/kernel",
    "encoder.{i}.feedforward.output.bias": "bert/encoder/layer_{i}/output/dense/bias",
    "encoder.{i}.feedforward_layer_norm.gamma": "bert/encoder/layer_{i}/output/LayerNorm/gamma",
    "encoder.{i}.feedforward_layer_norm.beta": "bert/encoder/layer_{i}/output/LayerNorm/beta",
    "pooler.kernel": "bert/pooler/dense/kernel",
    "pooler.bias": "bert/pooler/dense/bias",
}


def google_name(weight: NamedWeight) -> str:
    """The TF1 checkpoint name of one canonical weight.

    >>> from bertcourse.convert.weight_map import NamedWeight
    >>> google_name(NamedWeight("encoder.2.feedforward.output.kernel", None))
    'bert/encoder/layer_2/output/dense/kernel'
    """
    if weight.pattern not in GOOGLE_NAMES:
        raise CheckpointError(f"{weight.name} has no place in a Google BERT checkpoint (post-LayerNorm only).")
    return GOOGLE_NAMES[weight.pattern].format(i=weight.layer)


def _google_weights(backbone) -> dict[str, Any]:
    """TF1 checkpoint name -> our variable, from the canonical weight map."""
    return {google_name(w): w.variable for w in backbone_weights(backbone)}


def google_variable_names(backbone) -> list[str]:
    """The TF1 checkpoint names of every weight of ``backbone``, in model order.

    >>> from bertcourse.models import BertBackbone
    >>> names = google_variable_names(BertBackbone("tiny"))
    >>> len(names), names[0]
    (39, 'bert/embeddings/word_embeddings')
    """
    return list(_google_weights(backbone))


def _reader(ckpt_prefix: str):
    prefix = str(ckpt_prefix)
    if os.path.isdir(prefix):
        found = tf.train.latest_checkpoint(prefix)
        if found is None:
            candidates = sorted(Path(prefix).glob("*.index"))
            if len(candidates) != 1:
                raise CheckpointError(f"{prefix!r} is a directory without a single TF checkpoint; pass the "
                                      "checkpoint prefix, e.g. '.../bert_model.ckpt'.")
            found = str(candidates[0])[: -len(".index")]
        prefix = found
    if prefix.endswith((".index", ".meta")) or re.search(r"\.data-\d+-of-\d+$", prefix):
        prefix = re.sub(r"(\.index|\.meta|\.data-\d+-of-\d+)$", "", prefix)
    if not os.path.exists(prefix + ".index"):
        raise CheckpointError(f"No TensorFlow checkpoint at {prefix!r}: {prefix}.index does not exist. Pass the "
                              "prefix shared by the .index and .data-* files (e.g. '.../bert_model.ckpt').")
    try:
        return prefix, tf.train.load_checkpoint(prefix)
    except Exception as err:  # noqa: BLE001 - TF raises several error types for corrupt files
        raise CheckpointError(f"{prefix}: cannot read the checkpoint: {' '.join(str(err).split())}") from None


def load_google_checkpoint(ckpt_prefix: str | os.PathLike, bert_config_json: str | os.PathLike,
                           vocab_txt: str | os.PathLike, lowercase: bool | None = None,
                           **backbone_kwargs) -> tuple[Any, Any]:
    """A Google TF1 BERT checkpoint as ``(BertBackbone, WordPieceTokenizer)``.

    Args:
        ckpt_prefix: the checkpoint prefix (``.../bert_model.ckpt``; its directory also works).
        bert_config_json: Google's ``bert_config.json`` (the same keys as Hugging Face's).
        vocab_txt: the model's ``vocab.txt``.
        lowercase: ``None`` infers it from the vocabulary (an uncased vocab has no upper-case
            tokens); a given value that contradicts the vocabulary, or a path that says
            ``uncased``/``cased`` the other way, is a :class:`CasingMismatchError`.
        backbone_kwargs: passed to ``BertBackbone``.

    Every encoder variable must be in the checkpoint and every ``bert/`` variable of the
    checkpoint must find a place; shape mismatches name the variable and the file.
    """
    cfg_path = Path(bert_config_json)
    if not cfg_path.is_file():
        raise FileNotFoundError(f"No BERT config at {str(cfg_path)!r} (Google checkpoints ship bert_config.json).")
    try:
        config = BertConfig.from_json(cfg_path)
    except (ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"{cfg_path}: {' '.join(str(err).split())}") from None
    vocab_path = Path(vocab_txt)
    if not vocab_path.is_file():
        raise CheckpointError(f"No vocabulary at {str(vocab_path)!r}: the weights cannot be used without the "
                              "vocab.txt they were trained with.")
    tokens = read_vocab_file(vocab_path)
    if len(tokens) > config.vocab_size:
        raise CheckpointError(f"{vocab_path} has {len(tokens)} tokens but {cfg_path.name} says vocab_size="
                              f"{config.vocab_size}: the vocabulary does not belong to these weights.")
    vocab_lower = not vocab_looks_cased(tokens)
    signals = []
    if lowercase is not None:
        signals.append(f"the argument lowercase={lowercase}" if bool(lowercase) != vocab_lower else None)
    where = str(ckpt_prefix).lower()
    if re.search(r"(^|[^a-z])uncased", where) and not vocab_lower:
        signals.append(f"the path {str(ckpt_prefix)!r} (says uncased)")
    elif re.search(r"(^|[^a-z])cased", where) and vocab_lower:
        signals.append(f"the path {str(ckpt_prefix)!r} (says cased)")
    signals = [s for s in signals if s]
    if signals:
        raise CasingMismatchError(
            f"Cased/uncased mismatch: {vocab_path.name} {'has no' if vocab_lower else 'has'} upper-case tokens, so "
            f"the model is {'uncased' if vocab_lower else 'cased'}, but {'; '.join(signals)} says otherwise.")

    prefix, reader = _reader(ckpt_prefix)
    shapes = reader.get_variable_to_shape_map()
    backbone = BertBackbone(config, **backbone_kwargs)
    expected = _google_weights(backbone)
    missing = [n for n in expected if n not in shapes]
    leftover = sorted(n for n in shapes if n not in expected and not _IGNORED.search(n))
    if missing or leftover:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} variable(s) {missing[:12]}")
        if leftover:
            parts.append(f"{len(leftover)} variable(s) left over {leftover[:12]}")
        raise CheckpointError(f"{prefix} does not match a BERT with {cfg_path.name} "
                              f"(num_hidden_layers={config.num_layers}): " + "; ".join(parts) + ".")
    for name, var in expected.items():
        value = reader.get_tensor(name)
        if tuple(value.shape) != tuple(var.shape):
            raise CheckpointError(f"{prefix}: variable {name!r} has shape {tuple(value.shape)} but {cfg_path.name} "
                                  f"(hidden_size={config.hidden_size}, intermediate_size={config.intermediate_size}, "
                                  f"vocab_size={config.vocab_size}) needs {tuple(var.shape)}.")
        var.assign(np.asarray(value))
    heads = sorted(n for n in shapes if n.startswith("cls/") and not _IGNORED.search(n.replace("cls/", "x/", 1)))
    if heads:
        warnings.warn(f"{prefix}: ignored {len(heads)} pretraining-head variable(s) ({', '.join(heads[:3])}"
                      f"{', ...' if len(heads) > 3 else ''}); only the encoder is loaded.", stacklevel=2)
    return backbone, WordPieceTokenizer(tokens, lowercase=vocab_lower)
