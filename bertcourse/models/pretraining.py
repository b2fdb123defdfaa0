"""``BertPretrainer``: the backbone plus BERT's two pretraining heads, trained on L = L_MLM + L_NSP
(lesson 07).

``L_MLM`` is the cross-entropy at the masked positions only, averaged over real predictions
(``sum(w * ce) / sum(w)``, as ``run_pretraining.py``); ``L_NSP`` the mean cross-entropy of the
IsNext/NotNext classifier. Both parts, MLM accuracy, NSP accuracy and MLM perplexity
(``exp`` of the epoch's mean MLM loss) appear in the ``fit`` logs. ``mlm_only=True`` drops NSP
(RoBERTa's finding that it does not help). ``sparse_last_layer=True`` computes the last encoder block
only at [CLS] and the masked positions, the only places the heads read (as MLPerf BERT submissions
do): same outputs, less work per step.

>>> from bertcourse import BertConfig
>>> from bertcourse.models import BertBackbone, BertPretrainer
>>> model = BertPretrainer(BertBackbone(BertConfig.preset("tiny", vocab_size=100)))
>>> sorted(model.output.keys()) if isinstance(model.output, dict) else sorted(model.output_names)
['mlm', 'nsp']
"""

from __future__ import annotations

import keras
from keras import ops

from bertcourse.layers.heads import MaskedLMHead, NextSentenceHead

__all__ = ["BertPretrainer", "CausalLMPretrainer", "Perplexity"]


def _scale_for_replicas(loss):
    """Under ``tf.distribute`` Keras sums gradients over replicas, so each replica's loss must be
    divided by their number (Keras does this for compiled losses; a custom ``compute_loss`` must too)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # lazy: TensorFlow-only (tf.distribute); JAX/torch runs never import it here

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            loss = loss / replicas
    return loss


@keras.saving.register_keras_serializable(package="bertcourse")
class Perplexity(keras.metrics.Mean):
    """``exp`` of the (weighted) mean cross-entropy seen so far: MLM perplexity."""

    def result(self):
        return ops.exp(super().result())


def tied_lm_head(backbone, name: str) -> MaskedLMHead:
    """The vocabulary head both pretrainers use, tied to ``backbone``'s token embedding and sized by its config."""
    cfg = backbone.config
    return MaskedLMHead(token_embedding=backbone.token_embedding, activation=cfg.hidden_act,
                        layer_norm_epsilon=cfg.layer_norm_epsilon, initializer_range=cfg.initializer_range,
                        dtype=backbone.dtype_policy, name=name)


@keras.saving.register_keras_serializable(package="bertcourse")
class BertPretrainer(keras.Model):
    """Backbone + tied MLM head (+ NSP head) with the BERT pretraining loss built in.

    Inputs: ``token_ids``, ``segment_ids``, ``padding_mask`` ``[B, L]`` and ``masked_positions``
    ``[B, P]``. Outputs: ``{"mlm": [B, P, vocab] logits, "nsp": [B, 2] logits}`` (no ``nsp`` when
    ``mlm_only``). Train on :func:`bertcourse.data.pipeline.pretraining_dataset`, whose targets are
    ``{"mlm": ids at masked positions, "nsp": 0/1}`` and sample weights ``{"mlm": 1 for real
    predictions}``. Compile with just an optimizer: the loss is part of the model.
    """

    def __init__(self, backbone, mlm_only: bool = False, sparse_last_layer: bool = False, **kwargs):
        cfg = backbone.config
        self.backbone = backbone
        self.mlm_head = tied_lm_head(backbone, name="mlm_head")
        self.nsp_head = None if mlm_only else NextSentenceHead(cfg.initializer_range, dtype=backbone.dtype_policy,
                                                               name="nsp_head")
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
                  for name in ("token_ids", "segment_ids", "padding_mask", "masked_positions")}
        if sparse_last_layer:
            masked_hidden, pooled = self._encode_sparse(backbone, inputs)
            outputs = {"mlm": self.mlm_head(masked_hidden)}
        else:
            encoded = backbone({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")})
            outputs = {"mlm": self.mlm_head(encoded["sequence_output"], masked_positions=inputs["masked_positions"])}
            pooled = encoded["pooled_output"]
        if self.nsp_head is not None:
            outputs["nsp"] = self.nsp_head(pooled)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.mlm_only = bool(mlm_only)
        self.sparse_last_layer = bool(sparse_last_layer)
        self.mlm_loss_tracker = keras.metrics.Mean(name="mlm_loss")
        self.mlm_accuracy = keras.metrics.SparseCategoricalAccuracy(name="mlm_accuracy")
        self.mlm_perplexity = Perplexity(name="mlm_perplexity")
        if not self.mlm_only:
            self.nsp_loss_tracker = keras.metrics.Mean(name="nsp_loss")
            self.nsp_accuracy = keras.metrics.SparseCategoricalAccuracy(name="nsp_accuracy")

    @staticmethod
    def _encode_sparse(backbone, inputs):
        """The backbone's layers, with the last block computed only where the heads read it: [CLS]
        (for the pooler) and the masked positions. Earlier blocks need every position (they are
        keys and values of the later ones); the last block's other outputs are never used."""
        padding_mask = inputs["padding_mask"]
        attention_mask = backbone.attention_mask(inputs["token_ids"])  # None for BERT; causal for a causal backbone
        x = backbone.embeddings(inputs["token_ids"], inputs["segment_ids"])
        for block in backbone.encoder_layers[:-1]:
            x = block(x, padding_mask=padding_mask, attention_mask=attention_mask)
        cls_position = ops.zeros_like(inputs["masked_positions"][:, :1])
        positions = ops.concatenate([cls_position, inputs["masked_positions"]], axis=1)
        h = backbone.encoder_layers[-1](x, padding_mask=padding_mask, attention_mask=attention_mask,
                                        query_positions=positions)
        if backbone.final_layer_norm is not None:
            h = backbone.final_layer_norm(h)
        return h[:, 1:, :], backbone.pooler(h[:, 0, :])

    def compile(self, optimizer="adamw", **kwargs):
        if "loss" in kwargs:
            raise ValueError("BertPretrainer computes L = L_MLM + L_NSP itself: compile it without `loss`.")
        super().compile(optimizer=optimizer, **kwargs)

    def pretraining_losses(self, y, y_pred, sample_weight=None):
        """``(l_mlm, l_nsp, per_prediction_ce, mlm_weights)``; ``l_nsp`` is 0 when ``mlm_only``."""
        mlm_logits = ops.cast(y_pred["mlm"], "float32")
        mlm_labels = ops.cast(y["mlm"], "int32")
        weights = None if sample_weight is None else sample_weight.get("mlm")
        weights = ops.ones(ops.shape(mlm_labels), "float32") if weights is None else ops.cast(weights, "float32")
        ce = keras.losses.sparse_categorical_crossentropy(mlm_labels, mlm_logits, from_logits=True)
        l_mlm = ops.sum(ce * weights) / (ops.sum(weights) + 1e-5)
        l_nsp = ops.zeros((), "float32")
        if not self.mlm_only:
            nsp_ce = keras.losses.sparse_categorical_crossentropy(ops.cast(y["nsp"], "int32"),
                                                                  ops.cast(y_pred["nsp"], "float32"), from_logits=True)
            l_nsp = ops.mean(nsp_ce)
        return l_mlm, l_nsp, ce, weights

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y, dict) or "mlm" not in y or (not self.mlm_only and "nsp" not in y):
            raise ValueError("BertPretrainer needs targets {'mlm': masked ids, 'nsp': 0/1 labels}; build them with "
                             "bertcourse.data.pretraining_dataset.")
        l_mlm, l_nsp, ce, weights = self.pretraining_losses(y, y_pred, sample_weight)
        self.mlm_loss_tracker.update_state(ce, sample_weight=weights)
        self.mlm_perplexity.update_state(ce, sample_weight=weights)
        self.mlm_accuracy.update_state(y["mlm"], y_pred["mlm"], sample_weight=weights)
        total = l_mlm
        if not self.mlm_only:
            self.nsp_loss_tracker.update_state(l_nsp)
            self.nsp_accuracy.update_state(y["nsp"], y_pred["nsp"])
            total = total + l_nsp
        if self.losses:
            total = total + ops.sum(self.losses)
        return _scale_for_replicas(total)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "backbone": keras.saving.serialize_keras_object(self.backbone), "mlm_only": self.mlm_only,
                "sparse_last_layer": self.sparse_last_layer}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="bertcourse")
class CausalLMPretrainer(keras.Model):
    """A left-to-right language model on a causal ``BertBackbone``: predict token ``i + 1`` from tokens ``<= i``.

    The same backbone and the same tied head as :class:`BertPretrainer` (``MaskedLMHead``, applied at every
    position instead of the masked ones); only the attention mask (``BertBackbone(causal=True)``) and the
    targets differ. This is the left-to-right model that BERT's paper compares MLM with (lesson 07).

    Inputs: ``token_ids``, ``segment_ids``, ``padding_mask`` ``[B, L]`` (clean text: nothing is masked).
    Output: ``{"lm": [B, L, vocab] logits}``; the row at ``i`` scores the NEXT token, ``token_ids[:, i + 1]``.
    Targets ``{"lm": next ids [B, L]}`` with sample weights ``{"lm": 1 where a next token exists}``:
    :func:`next_token_targets` makes them. Loss: ``sum(w * ce) / sum(w)``; ``lm_loss``, ``lm_accuracy``,
    ``lm_perplexity`` in the ``fit`` logs.

    >>> import numpy as np
    >>> from bertcourse import BertConfig
    >>> from bertcourse.models import BertBackbone
    >>> model = CausalLMPretrainer(BertBackbone(BertConfig.preset("tiny", vocab_size=100), causal=True))
    >>> ids = np.array([[2, 7, 8, 3, 0]]); mask = np.array([[1, 1, 1, 1, 0]])
    >>> tuple(model({"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": mask})["lm"].shape)
    (1, 5, 100)
    >>> y, w = next_token_targets(ids, mask)
    >>> np.asarray(y).tolist(), np.asarray(w).tolist()
    ([[7, 8, 3, 0, 0]], [[1.0, 1.0, 1.0, 0.0, 0.0]])
    """

    def __init__(self, backbone, **kwargs):
        if not getattr(backbone, "causal", False):
            raise ValueError("CausalLMPretrainer needs BertBackbone(..., causal=True): a bidirectional backbone "
                             "sees the very token it is asked to predict.")
        self.backbone = backbone
        self.lm_head = tied_lm_head(backbone, name="lm_head")
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
                  for name in ("token_ids", "segment_ids", "padding_mask")}
        outputs = {"lm": self.lm_head(backbone(inputs)["sequence_output"])}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.lm_loss_tracker = keras.metrics.Mean(name="lm_loss")
        self.lm_accuracy = keras.metrics.SparseCategoricalAccuracy(name="lm_accuracy")
        self.lm_perplexity = Perplexity(name="lm_perplexity")

    @property
    def objective(self) -> str:
        return "causal"

    def compile(self, optimizer="adamw", **kwargs):
        if "loss" in kwargs:
            raise ValueError("CausalLMPretrainer computes its next-token loss itself: compile it without `loss`.")
        super().compile(optimizer=optimizer, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y, dict) or "lm" not in y:
            raise ValueError("CausalLMPretrainer needs targets {'lm': next token ids}; build them with "
                             "bertcourse.models.pretraining.next_token_targets.")
        logits = ops.cast(y_pred["lm"], "float32")
        labels = ops.cast(y["lm"], "int32")
        weights = None if sample_weight is None else sample_weight.get("lm")
        weights = ops.ones(ops.shape(labels), "float32") if weights is None else ops.cast(weights, "float32")
        ce = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        self.lm_loss_tracker.update_state(ce, sample_weight=weights)
        self.lm_perplexity.update_state(ce, sample_weight=weights)
        self.lm_accuracy.update_state(labels, logits, sample_weight=weights)
        total = ops.sum(ce * weights) / (ops.sum(weights) + 1e-5)
        if self.losses:
            total = total + ops.sum(self.losses)
        return _scale_for_replicas(total)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "backbone": keras.saving.serialize_keras_object(self.backbone)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def next_token_targets(token_ids, padding_mask):
    """``(targets, weights)`` for :class:`CausalLMPretrainer`: ``targets[:, i] = token_ids[:, i + 1]`` (0 at the
    end), ``weights[:, i] = 1.0`` where position ``i + 1`` holds a real token, else 0. ``keras.ops`` only."""
    token_ids = ops.convert_to_tensor(token_ids)
    padding_mask = ops.convert_to_tensor(padding_mask)
    targets = ops.pad(token_ids[:, 1:], [[0, 0], [0, 1]])
    weights = ops.pad(ops.cast(padding_mask[:, 1:], "float32"), [[0, 0], [0, 1]])
    return targets, weights
