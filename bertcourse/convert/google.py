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
from typing import Any, Iterator

import numpy as np

from bertcourse.config import BertConfig
from bertcourse.convert.hf import CasingMismatchError, CheckpointError, vocab_looks_cased

__all__ = ["load_google_checkpoint", "google_variable_names"]

_IGNORED = re.compile(r"^(cls/|global_step$|bad_steps$|good_steps$|loss_scale$)|/adam_[mv]$|/Momentum$")


def _variables(backbone) -> Iterator[tuple[str, Any]]:
    emb = backbone.embeddings
    yield "bert/embeddings/word_embeddings", emb.token_embedding.embeddings
    yield "bert/embeddings/token_type_embeddings", emb.segment_embedding.embeddings
    yield "bert/embeddings/position_embeddings", emb.position_embeddings
    yield "bert/embeddings/LayerNorm/gamma", emb.layer_norm.gamma
    yield "bert/embeddings/LayerNorm/beta", emb.layer_norm.beta
    for i, block in enumerate(backbone.encoder_layers):
        p = f"bert/encoder/layer_{i}/"
        att, ff = block.attention, block.feedforward
        for name, dense in (("attention/self/query", att.query_dense), ("attention/self/key", att.key_dense),
                            ("attention/self/value", att.value_dense), ("attention/output/dense", att.output_dense),
                            ("intermediate/dense", ff.intermediate_dense), ("output/dense", ff.output_dense)):
            yield p + name + "/kernel", dense.kernel
            yield p + name + "/bias", dense.bias
        for name, norm in (("attention/output/LayerNorm", block.attention_layer_norm),
                           ("output/LayerNorm", block.feedforward_layer_norm)):
            yield p + name + "/gamma", norm.gamma
            yield p + name + "/beta", norm.beta
    yield "bert/pooler/dense/kernel", backbone.pooler.kernel
    yield "bert/pooler/dense/bias", backbone.pooler.bias


def google_variable_names(backbone) -> list[str]:
    """The TF1 checkpoint names of every weight of ``backbone``, in model order."""
    return [name for name, _ in _variables(backbone)]


def _reader(ckpt_prefix: str):
    import tensorflow as tf

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
        raise CheckpointError(f"{prefix}: cannot read the checkpoint: {err}") from None


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
    from bertcourse.models import BertBackbone
    from bertcourse.text import WordPieceTokenizer
    from bertcourse.text.vocab import load_vocabulary

    cfg_path = Path(bert_config_json)
    if not cfg_path.is_file():
        raise FileNotFoundError(f"No BERT config at {str(cfg_path)!r} (Google checkpoints ship bert_config.json).")
    try:
        config = BertConfig.from_json(cfg_path)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{cfg_path}: {err}") from None
    vocab_path = Path(vocab_txt)
    if not vocab_path.is_file():
        raise CheckpointError(f"No vocabulary at {str(vocab_path)!r}: the weights cannot be used without the "
                              "vocab.txt they were trained with.")
    tokens = load_vocabulary(vocab_path)
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
    expected = dict(_variables(backbone))
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
