"""The backbone's weights under one set of canonical names: the map every converter reads.

``backbone_weights(backbone)`` walks a :class:`~bertcourse.models.BertBackbone` once and names each
variable after the model's own structure::

    embeddings.token                        [vocab, hidden]        token table
    embeddings.position                     [max_positions, hidden]
    embeddings.segment                      [type_vocab, hidden]
    embeddings.layer_norm.gamma | beta      [hidden]
    encoder.{i}.attention.query | key | value | output .kernel [hidden, hidden] | .bias [hidden]
    encoder.{i}.attention_layer_norm.gamma | beta
    encoder.{i}.feedforward.intermediate.kernel [hidden, intermediate] | .bias
    encoder.{i}.feedforward.output.kernel       [intermediate, hidden] | .bias
    encoder.{i}.feedforward_layer_norm.gamma | beta
    final_layer_norm.gamma | beta           (pre-LN backbones only)
    pooler.kernel | bias                    [hidden, hidden] | [hidden]

Kernels are Keras ``[in, out]``. Each converter only maps these names to its own format
(``HF_NAMES`` in :mod:`bertcourse.convert.hf`, ``GOOGLE_NAMES`` in :mod:`bertcourse.convert.google`,
``KERAS_HUB_NAMES`` in :mod:`bertcourse.convert.keras_hub`); none walks the model itself.

>>> from bertcourse.models import BertBackbone
>>> weights = backbone_weights(BertBackbone("tiny"))
>>> len(weights), weights[0].name, weights[0].shape
(39, 'embeddings.token', (30522, 128))
>>> w = weights[5]
>>> w.name, w.pattern, w.layer, w.shape
('encoder.0.attention.query.kernel', 'encoder.{i}.attention.query.kernel', 0, (128, 128))
>>> split_layer("encoder.11.feedforward.output.bias")
('encoder.{i}.feedforward.output.bias', 11)
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

__all__ = ["NamedWeight", "backbone_weights", "encoder_block_weights", "attention_weights", "split_layer",
           "weight_names"]

_LAYER = re.compile(r"^encoder\.(\d+)\.")


class NamedWeight(NamedTuple):
    """One variable of a model with its canonical name (``encoder.3.attention.query.kernel``)."""

    name: str
    variable: Any

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.variable.shape)

    @property
    def pattern(self) -> str:
        """The name with the layer index replaced by ``{i}`` (the key of the converters' tables)."""
        return split_layer(self.name)[0]

    @property
    def layer(self) -> int | None:
        """The encoder layer index, or None outside the encoder."""
        return split_layer(self.name)[1]

    @property
    def is_kernel(self) -> bool:
        """A dense ``[in, out]`` kernel (PyTorch stores it transposed)."""
        return self.name.endswith(".kernel")


def split_layer(name: str) -> tuple[str, int | None]:
    """``"encoder.3.x"`` -> ``("encoder.{i}.x", 3)``; other names come back unchanged with None."""
    match = _LAYER.match(name)
    if match is None:
        return name, None
    return "encoder.{i}." + name[match.end():], int(match.group(1))


def _dense(prefix: str, dense) -> list[NamedWeight]:
    return [NamedWeight(prefix + ".kernel", dense.kernel), NamedWeight(prefix + ".bias", dense.bias)]


def _norm(prefix: str, norm) -> list[NamedWeight]:
    return [NamedWeight(prefix + ".gamma", norm.gamma), NamedWeight(prefix + ".beta", norm.beta)]


def attention_weights(attention, prefix: str = "") -> list[NamedWeight]:
    """The weights of a built ``MultiHeadSelfAttention``: ``query|key|value|output.kernel|bias``."""
    out = []
    for part, dense in (("query", attention.query_dense), ("key", attention.key_dense),
                        ("value", attention.value_dense), ("output", attention.output_dense)):
        out += _dense(prefix + part, dense)
    return out


def encoder_block_weights(block, prefix: str = "") -> list[NamedWeight]:
    """The weights of a built ``EncoderBlock`` (names relative to the block, or under ``prefix``)."""
    ff = block.feedforward
    return (attention_weights(block.attention, prefix + "attention.")
            + _norm(prefix + "attention_layer_norm", block.attention_layer_norm)
            + _dense(prefix + "feedforward.intermediate", ff.intermediate_dense)
            + _dense(prefix + "feedforward.output", ff.output_dense)
            + _norm(prefix + "feedforward_layer_norm", block.feedforward_layer_norm))


def backbone_weights(backbone) -> list[NamedWeight]:
    """Every weight of a ``BertBackbone`` exactly once, in model order, with its canonical name."""
    emb = backbone.embeddings
    out = [NamedWeight("embeddings.token", emb.token_embedding.embeddings),
           NamedWeight("embeddings.position", emb.position_embeddings),
           NamedWeight("embeddings.segment", emb.segment_embedding.embeddings)]
    out += _norm("embeddings.layer_norm", emb.layer_norm)
    for i, block in enumerate(backbone.encoder_layers):
        out += encoder_block_weights(block, f"encoder.{i}.")
    if getattr(backbone, "final_layer_norm", None) is not None:
        out += _norm("final_layer_norm", backbone.final_layer_norm)
    out += _dense("pooler", backbone.pooler)
    return out


def weight_names(backbone) -> list[str]:
    """The canonical names of :func:`backbone_weights`, in order."""
    return [w.name for w in backbone_weights(backbone)]
