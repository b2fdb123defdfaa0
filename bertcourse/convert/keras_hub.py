"""Convert between ``bertcourse.models.BertBackbone`` and ``keras_hub.models.BertBackbone`` (both ways).

The two models hold the same numbers in slightly different shapes: keras-hub's attention
(``keras.layers.MultiHeadAttention``) keeps Q/K/V kernels as ``[hidden, heads, head_size]``
and the output kernel as ``[heads, head_size, hidden]``; ours are plain ``[hidden, hidden]``
dense kernels. Everything else maps one to one.

keras-hub's BERT always uses the tanh-approximate GELU, LayerNorm epsilon 1e-12 and one
dropout rate, so ``from_keras_hub`` builds ours with ``hidden_act="gelu_approximate"``,
and the outputs agree to float32 round-off (see ``tests/test_backbone_parity.py``).

>>> # kh = keras_hub.models.BertBackbone(vocabulary_size=..., ...)
>>> # ours = from_keras_hub(kh);  kh2 = to_keras_hub(ours)
"""

from __future__ import annotations

import warnings
from typing import Iterator

import numpy as np

from bertcourse.config import BertConfig

__all__ = ["from_keras_hub", "to_keras_hub", "config_from_keras_hub", "keras_hub_kwargs",
           "copy_weights_from_keras_hub", "copy_weights_to_keras_hub", "WeightShapeError",
           "attention_to_keras", "encoder_block_to_keras_hub"]


class WeightShapeError(ValueError):
    """A weight cannot be copied because the two models' shapes disagree."""


def config_from_keras_hub(kh_backbone) -> BertConfig:
    """The ``BertConfig`` equivalent of a keras-hub ``BertBackbone``."""
    return BertConfig(
        vocab_size=kh_backbone.vocabulary_size,
        num_layers=kh_backbone.num_layers,
        hidden_size=kh_backbone.hidden_dim,
        num_heads=kh_backbone.num_heads,
        intermediate_size=kh_backbone.intermediate_dim,
        max_position_embeddings=kh_backbone.max_sequence_length,
        type_vocab_size=kh_backbone.num_segments,
        hidden_dropout=kh_backbone.dropout,
        attention_dropout=kh_backbone.dropout,
        layer_norm_epsilon=1e-12,
        hidden_act="gelu_approximate",
        initializer_range=0.02,
    )


def keras_hub_kwargs(config: BertConfig) -> dict:
    """Constructor arguments of ``keras_hub.models.BertBackbone`` for a ``BertConfig``."""
    return dict(vocabulary_size=config.vocab_size, num_layers=config.num_layers, num_heads=config.num_heads,
                hidden_dim=config.hidden_size, intermediate_dim=config.intermediate_size,
                dropout=config.hidden_dropout, max_sequence_length=config.max_position_embeddings,
                num_segments=config.type_vocab_size)


def _pairs(ours, kh) -> Iterator[tuple[str, object, object, tuple]]:
    """(name, our variable, keras-hub variable, keras-hub shape as ours sees it)."""
    cfg = ours.config
    h, n, d = cfg.hidden_size, cfg.num_heads, cfg.head_size
    emb = ours.embeddings
    yield "token_embedding", emb.token_embedding.embeddings, kh.token_embedding.embeddings, None
    yield "position_embedding", emb.position_embeddings, kh.position_embedding.position_embeddings, None
    yield "segment_embedding", emb.segment_embedding.embeddings, kh.segment_embedding.embeddings, None
    yield "embeddings_layer_norm.gamma", emb.layer_norm.gamma, kh.embeddings_layer_norm.gamma, None
    yield "embeddings_layer_norm.beta", emb.layer_norm.beta, kh.embeddings_layer_norm.beta, None
    for i, (block, khb) in enumerate(zip(ours.encoder_layers, kh.transformer_layers)):
        att, kha = block.attention, khb._self_attention_layer
        p = f"layer_{i}."
        for ours_dense, kh_dense, nm in ((att.query_dense, kha._query_dense, "query"),
                                         (att.key_dense, kha._key_dense, "key"),
                                         (att.value_dense, kha._value_dense, "value")):
            yield p + nm + ".kernel", ours_dense.kernel, kh_dense.kernel, (h, n, d)   # [h, h] <-> [h, n, d]
            yield p + nm + ".bias", ours_dense.bias, kh_dense.bias, (n, d)            # [h]    <-> [n, d]
        yield p + "attention_output.kernel", att.output_dense.kernel, kha._output_dense.kernel, (n, d, h)
        yield p + "attention_output.bias", att.output_dense.bias, kha._output_dense.bias, None
        yield p + "attention_layer_norm.gamma", block.attention_layer_norm.gamma, khb._self_attention_layer_norm.gamma, None
        yield p + "attention_layer_norm.beta", block.attention_layer_norm.beta, khb._self_attention_layer_norm.beta, None
        ff = block.feedforward
        yield p + "intermediate.kernel", ff.intermediate_dense.kernel, khb._feedforward_intermediate_dense.kernel, None
        yield p + "intermediate.bias", ff.intermediate_dense.bias, khb._feedforward_intermediate_dense.bias, None
        yield p + "output.kernel", ff.output_dense.kernel, khb._feedforward_output_dense.kernel, None
        yield p + "output.bias", ff.output_dense.bias, khb._feedforward_output_dense.bias, None
        yield p + "feedforward_layer_norm.gamma", block.feedforward_layer_norm.gamma, khb._feedforward_layer_norm.gamma, None
        yield p + "feedforward_layer_norm.beta", block.feedforward_layer_norm.beta, khb._feedforward_layer_norm.beta, None
    yield "pooler.kernel", ours.pooler.kernel, kh.pooled_dense.kernel, None
    yield "pooler.bias", ours.pooler.bias, kh.pooled_dense.bias, None


def _check_structure(ours, kh) -> None:
    cfg, kcfg = ours.config, config_from_keras_hub(kh)
    fields = ("vocab_size", "num_layers", "hidden_size", "num_heads", "intermediate_size",
              "max_position_embeddings", "type_vocab_size")
    diffs = [f"{f}: ours {getattr(cfg, f)} vs keras-hub {getattr(kcfg, f)}" for f in fields
             if getattr(cfg, f) != getattr(kcfg, f)]
    if diffs:
        raise WeightShapeError("The two backbones have different shapes, so their weights cannot be copied: "
                               + "; ".join(diffs) + ".")


def _copy(name, src, dst_var):
    src = np.asarray(src)
    target = tuple(dst_var.shape)
    if src.size != int(np.prod(target)):
        raise WeightShapeError(f"Weight {name!r}: source has shape {src.shape} ({src.size} values) but the target "
                               f"variable has shape {target} ({int(np.prod(target))} values).")
    dst_var.assign(src.reshape(target))  # Keras casts to the variable's dtype


def copy_weights_from_keras_hub(kh_backbone, backbone) -> None:
    """Copy every weight of a keras-hub ``BertBackbone`` into one of ours (same shapes), in place."""
    _check_structure(backbone, kh_backbone)
    for name, ours_var, kh_var, _ in _pairs(backbone, kh_backbone):
        _copy(name, kh_var.numpy() if hasattr(kh_var, "numpy") else kh_var, ours_var)


def copy_weights_to_keras_hub(backbone, kh_backbone) -> None:
    """Copy every weight of our ``BertBackbone`` into a keras-hub one (same shapes), in place."""
    _check_structure(backbone, kh_backbone)
    for name, ours_var, kh_var, _ in _pairs(backbone, kh_backbone):
        _copy(name, ours_var.numpy() if hasattr(ours_var, "numpy") else ours_var, kh_var)


def from_keras_hub(kh_backbone, **backbone_kwargs):
    """A ``bertcourse.models.BertBackbone`` with the weights of a ``keras_hub.models.BertBackbone``.

    ``backbone_kwargs`` go to our constructor (``output_attention_scores=True``, ``dtype=...``).
    It is built with ``hidden_act="gelu_approximate"``, as keras-hub computes.
    """
    from bertcourse.models import BertBackbone

    backbone_kwargs.setdefault("dtype", kh_backbone.dtype_policy)
    ours = BertBackbone(config_from_keras_hub(kh_backbone), **backbone_kwargs)
    copy_weights_from_keras_hub(kh_backbone, ours)
    return ours


def to_keras_hub(backbone, **kh_kwargs):
    """A ``keras_hub.models.BertBackbone`` with the weights of our ``BertBackbone``.

    keras-hub has no option for the exact GELU, separate attention dropout or another
    LayerNorm epsilon: converting such a model warns that outputs will differ slightly.
    """
    import keras_hub

    cfg = backbone.config
    problems = []
    if cfg.hidden_act != "gelu_approximate":
        problems.append(f"hidden_act={cfg.hidden_act!r} (keras-hub always uses the tanh-approximate GELU)")
    if cfg.layer_norm_epsilon != 1e-12:
        problems.append(f"layer_norm_epsilon={cfg.layer_norm_epsilon} (keras-hub uses 1e-12)")
    if cfg.attention_dropout != cfg.hidden_dropout:
        problems.append(f"attention_dropout={cfg.attention_dropout} != hidden_dropout={cfg.hidden_dropout} "
                        "(keras-hub has one dropout rate; hidden_dropout is used)")
    if getattr(backbone, "normalize_first", False):
        raise ValueError("keras-hub's BertBackbone is post-LayerNorm only; this backbone has normalize_first=True.")
    if problems:
        warnings.warn("The keras-hub model will not compute exactly the same function: " + "; ".join(problems)
                      + ".", stacklevel=2)
    kwargs = keras_hub_kwargs(cfg)
    kwargs.setdefault("dtype", backbone.dtype_policy)
    kwargs.update(kh_kwargs)
    kh = keras_hub.models.BertBackbone(**kwargs)
    copy_weights_to_keras_hub(backbone, kh)
    return kh


# ---------------------------------------------------------------------------- single layers
def _assign(name, var, value):
    value = np.asarray(value)
    if tuple(var.shape) != value.shape:
        raise WeightShapeError(f"Weight {name!r}: expected shape {tuple(var.shape)}, got {value.shape}.")
    var.assign(value)


def _copy_attention(att, mha) -> None:
    h, n = att.hidden_size, att.num_heads
    d = h // n
    for ours, theirs, nm in ((att.query_dense, mha._query_dense, "query"), (att.key_dense, mha._key_dense, "key"),
                             (att.value_dense, mha._value_dense, "value")):
        _assign(nm + ".kernel", theirs.kernel, np.asarray(ours.kernel).reshape(h, n, d))
        _assign(nm + ".bias", theirs.bias, np.asarray(ours.bias).reshape(n, d))
    _assign("output.kernel", mha._output_dense.kernel, np.asarray(att.output_dense.kernel).reshape(n, d, h))
    _assign("output.bias", mha._output_dense.bias, np.asarray(att.output_dense.bias))


def attention_to_keras(layer):
    """A built ``keras.layers.MultiHeadAttention`` computing the same function as our built
    ``MultiHeadSelfAttention`` (call it as ``mha(x, x, attention_mask=...)``)."""
    import keras

    if not layer.built:
        raise ValueError("Build (call) the attention layer first, so its hidden size is known.")
    h = layer.hidden_size
    mha = keras.layers.MultiHeadAttention(num_heads=layer.num_heads, key_dim=h // layer.num_heads,
                                          dropout=layer.dropout, dtype=layer.dtype_policy)
    mha.build((None, None, h), (None, None, h))
    _copy_attention(layer, mha)
    return mha


def encoder_block_to_keras_hub(block):
    """A built ``keras_hub.layers.TransformerEncoder`` with the weights of our built ``EncoderBlock``.

    keras-hub has one dropout rate (``hidden_dropout`` is used) and takes the activation as a function.
    """
    import keras_hub

    from bertcourse.layers._utils import get_activation

    if not block.built:
        raise ValueError("Build (call) the encoder block first, so its hidden size is known.")
    h = block.attention.hidden_size
    ref = keras_hub.layers.TransformerEncoder(
        block.intermediate_size, block.num_heads, dropout=block.hidden_dropout,
        activation=get_activation(block.hidden_act), layer_norm_epsilon=block.layer_norm_epsilon,
        normalize_first=block.normalize_first, dtype=block.dtype_policy)
    ref.build((None, None, h))
    _copy_attention(block.attention, ref._self_attention_layer)
    for ours, theirs in ((block.attention_layer_norm, ref._self_attention_layer_norm),
                         (block.feedforward.intermediate_dense, ref._feedforward_intermediate_dense),
                         (block.feedforward.output_dense, ref._feedforward_output_dense),
                         (block.feedforward_layer_norm, ref._feedforward_layer_norm)):
        for o, t in zip(ours.weights, theirs.weights):
            _assign(o.path, t, np.asarray(o))
    return ref
