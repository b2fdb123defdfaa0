"""Convert between ``bertcourse.models.BertBackbone`` and ``keras_hub.models.BertBackbone`` (both ways).

The two models hold the same numbers in slightly different shapes: keras-hub's attention
(``keras.layers.MultiHeadAttention``) keeps Q/K/V kernels as ``[hidden, heads, head_size]``
and the output kernel as ``[heads, head_size, hidden]``; ours are plain ``[hidden, hidden]``
dense kernels (reshaped on the way). Everything else maps one to one: the table
``KERAS_HUB_NAMES`` maps each canonical weight of :mod:`bertcourse.convert.weight_map` to the
attribute path of keras-hub's variable.

keras-hub's BERT always uses the tanh-approximate GELU, LayerNorm epsilon 1e-12 and one
dropout rate, so ``from_keras_hub`` builds ours with ``hidden_act="gelu_approximate"``,
and the outputs agree to float32 round-off (see ``tests/test_backbone_parity.py``).

>>> # kh = keras_hub.models.BertBackbone(vocabulary_size=..., ...)
>>> # ours = from_keras_hub(kh);  kh2 = to_keras_hub(ours)
>>> KERAS_HUB_NAMES["encoder.{i}.attention.query.kernel"]
'transformer_layers.{i}._self_attention_layer._query_dense.kernel'
"""

from __future__ import annotations

import warnings

import keras
import numpy as np

from bertcourse import errors
from bertcourse.config import BertConfig
from bertcourse.convert.weight_map import attention_weights, backbone_weights, encoder_block_weights
from bertcourse.layers import get_activation
from bertcourse.models import BertBackbone

__all__ = ["from_keras_hub", "to_keras_hub", "config_from_keras_hub", "keras_hub_kwargs",
           "copy_weights_from_keras_hub", "copy_weights_to_keras_hub", "WeightShapeError",
           "attention_to_keras", "encoder_block_to_keras_hub", "keras_hub_variable", "KERAS_HUB_NAMES",
           "KERAS_HUB_BLOCK_NAMES", "KERAS_HUB_ATTENTION_NAMES"]


class WeightShapeError(errors.ModelLoadError):
    """A weight cannot be copied because the two models' shapes disagree (a ``ValueError`` too)."""


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


# Canonical name (bertcourse.convert.weight_map) -> attribute path in keras_hub.models.BertBackbone.
# Inside an encoder block the path is KERAS_HUB_BLOCK_NAMES' (a keras_hub.layers.TransformerEncoder);
# inside the attention, KERAS_HUB_ATTENTION_NAMES' (a keras.layers.MultiHeadAttention).
KERAS_HUB_ATTENTION_NAMES = {
    "query.kernel": "_query_dense.kernel",            # [h, h]  <-> [h, heads, head_size]
    "query.bias": "_query_dense.bias",                # [h]     <-> [heads, head_size]
    "key.kernel": "_key_dense.kernel",
    "key.bias": "_key_dense.bias",
    "value.kernel": "_value_dense.kernel",
    "value.bias": "_value_dense.bias",
    "output.kernel": "_output_dense.kernel",          # [h, h]  <-> [heads, head_size, h]
    "output.bias": "_output_dense.bias",
}
KERAS_HUB_BLOCK_NAMES = {
    **{"attention." + k: "_self_attention_layer." + v for k, v in KERAS_HUB_ATTENTION_NAMES.items()},
    "attention_layer_norm.gamma": "_self_attention_layer_norm.gamma",
    "attention_layer_norm.beta": "_self_attention_layer_norm.beta",
    "feedforward.intermediate.kernel": "_feedforward_intermediate_dense.kernel",
    "feedforward.intermediate.bias": "_feedforward_intermediate_dense.bias",
    "feedforward.output.kernel": "_feedforward_output_dense.kernel",
    "feedforward.output.bias": "_feedforward_output_dense.bias",
    "feedforward_layer_norm.gamma": "_feedforward_layer_norm.gamma",
    "feedforward_layer_norm.beta": "_feedforward_layer_norm.beta",
}
KERAS_HUB_NAMES = {
    "embeddings.token": "token_embedding.embeddings",
    "embeddings.position": "position_embedding.position_embeddings",
    "embeddings.segment": "segment_embedding.embeddings",
    "embeddings.layer_norm.gamma": "embeddings_layer_norm.gamma",
    "embeddings.layer_norm.beta": "embeddings_layer_norm.beta",
    **{"encoder.{i}." + k: "transformer_layers.{i}." + v for k, v in KERAS_HUB_BLOCK_NAMES.items()},
    "pooler.kernel": "pooled_dense.kernel",
    "pooler.bias": "pooled_dense.bias",
}


def keras_hub_variable(model, path: str):
    """The variable at an attribute path such as ``"transformer_layers.0._query_dense.kernel"``.

    >>> keras_hub_variable({"a": [None, {"b": 7}]}, "a.1.b")
    7
    """
    obj = model
    for part in path.split("."):
        if part.isdigit():
            obj = obj[int(part)]
        elif isinstance(obj, dict):
            obj = obj[part]
        else:
            obj = getattr(obj, part)
    return obj


def _pairs(weights, table: dict, kh) -> list[tuple[str, object, object]]:
    """(canonical name, our variable, keras-hub variable) for canonical ``weights`` through ``table``."""
    out = []
    for w in weights:
        if w.pattern not in table:
            raise WeightShapeError(f"{w.name} has no counterpart in keras-hub's BERT (post-LayerNorm only).")
        out.append((w.name, w.variable, keras_hub_variable(kh, table[w.pattern].format(i=w.layer))))
    return out


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
    for name, ours_var, kh_var in _pairs(backbone_weights(backbone), KERAS_HUB_NAMES, kh_backbone):
        _copy(name, keras.ops.convert_to_numpy(kh_var), ours_var)


def copy_weights_to_keras_hub(backbone, kh_backbone) -> None:
    """Copy every weight of our ``BertBackbone`` into a keras-hub one (same shapes), in place."""
    _check_structure(backbone, kh_backbone)
    for name, ours_var, kh_var in _pairs(backbone_weights(backbone), KERAS_HUB_NAMES, kh_backbone):
        _copy(name, keras.ops.convert_to_numpy(ours_var), kh_var)


def from_keras_hub(kh_backbone, **backbone_kwargs):
    """A ``bertcourse.models.BertBackbone`` with the weights of a ``keras_hub.models.BertBackbone``.

    ``backbone_kwargs`` go to our constructor (``output_attention_scores=True``, ``dtype=...``).
    It is built with ``hidden_act="gelu_approximate"``, as keras-hub computes.
    """
    backbone_kwargs.setdefault("dtype", kh_backbone.dtype_policy)
    ours = BertBackbone(config_from_keras_hub(kh_backbone), **backbone_kwargs)
    copy_weights_from_keras_hub(kh_backbone, ours)
    return ours


def to_keras_hub(backbone, **kh_kwargs):
    """A ``keras_hub.models.BertBackbone`` with the weights of our ``BertBackbone``.

    keras-hub has no option for the exact GELU, separate attention dropout or another
    LayerNorm epsilon: converting such a model warns that outputs will differ slightly.
    """
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
    import keras_hub  # lazy: the keras-hub twin is heavy (it loads huggingface_hub); only built on request

    kh = keras_hub.models.BertBackbone(**kwargs)
    copy_weights_to_keras_hub(backbone, kh)
    return kh


# ---------------------------------------------------------------------------- single layers
def attention_to_keras(layer):
    """A built ``keras.layers.MultiHeadAttention`` computing the same function as our built
    ``MultiHeadSelfAttention`` (call it as ``mha(x, x, attention_mask=...)``)."""
    if not layer.built:
        raise ValueError("Build (call) the attention layer first, so its hidden size is known.")
    h = layer.hidden_size
    mha = keras.layers.MultiHeadAttention(num_heads=layer.num_heads, key_dim=h // layer.num_heads,
                                          dropout=layer.dropout, dtype=layer.dtype_policy)
    mha.build((None, None, h), (None, None, h))
    for name, ours, theirs in _pairs(attention_weights(layer), KERAS_HUB_ATTENTION_NAMES, mha):
        _copy(name, keras.ops.convert_to_numpy(ours), theirs)
    return mha


def encoder_block_to_keras_hub(block):
    """A built ``keras_hub.layers.TransformerEncoder`` with the weights of our built ``EncoderBlock``.

    keras-hub has one dropout rate (``hidden_dropout`` is used) and takes the activation as a function.
    """
    if not block.built:
        raise ValueError("Build (call) the encoder block first, so its hidden size is known.")
    h = block.attention.hidden_size
    import keras_hub  # lazy: the keras-hub twin is heavy (it loads huggingface_hub); only built on request

    ref = keras_hub.layers.TransformerEncoder(
        block.intermediate_size, block.num_heads, dropout=block.hidden_dropout,
        activation=get_activation(block.hidden_act), layer_norm_epsilon=block.layer_norm_epsilon,
        normalize_first=block.normalize_first, dtype=block.dtype_policy)
    ref.build((None, None, h))
    for name, ours, theirs in _pairs(encoder_block_weights(block), KERAS_HUB_BLOCK_NAMES, ref):
        _copy(name, keras.ops.convert_to_numpy(ours), theirs)
    return ref
