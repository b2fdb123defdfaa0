"""Sequence classification: BERT's [CLS] pooled output -> dropout -> dense logits (lessons 08-09).

    [CLS] text [SEP] (or [CLS] A [SEP] B [SEP]) --BertBackbone--> pooled = tanh(W h_[CLS] + b)
        --Dropout(0.1)--> Dense(num_classes) --> logits (float32, also under mixed precision)

The same head as keras-hub's ``BertClassifier`` and Hugging Face's ``BertForSequenceClassification``
(a test copies weights between ours and keras-hub's and compares logits).

>>> from bertcourse.models import BertBackbone
>>> clf = BertClassifier(BertBackbone("tiny"), num_classes=3)
>>> import numpy as np
>>> x = {"token_ids": np.array([[2, 7, 3]]), "segment_ids": np.zeros((1, 3), int), "padding_mask": np.ones((1, 3), int)}
>>> clf(x).shape
TensorShape([1, 3])
"""

from __future__ import annotations

import keras

from bertcourse.layers._utils import bert_initializer

__all__ = ["BertClassifier"]


@keras.saving.register_keras_serializable(package="bertcourse")
class BertClassifier(keras.Model):
    """``BertBackbone`` + a classification head on the pooled ``[CLS]`` vector.

    Args:
        backbone: a :class:`~bertcourse.models.BertBackbone` (pretrained or fresh).
        num_classes: number of labels (2 for positive/negative sentiment).
        dropout: dropout on the pooled vector before the dense layer (BERT: 0.1).
        activation: ``None`` for logits (train with ``from_logits=True``), or e.g. ``"softmax"``.

    Inputs: the backbone's dict (``token_ids``, ``segment_ids``, ``padding_mask``).
    Output: ``[batch, num_classes]`` float32 logits (probabilities with ``activation="softmax"``).
    """

    def __init__(self, backbone, num_classes: int, dropout: float = 0.1, activation=None, **kwargs):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.backbone = backbone
        self.output_dropout = keras.layers.Dropout(dropout, dtype=backbone.dtype_policy, name="classifier_dropout")
        # float32 logits: a softmax over bf16/fp16 logits loses the small differences fine-tuning needs
        self.output_dense = keras.layers.Dense(num_classes, activation=activation,
                                               kernel_initializer=bert_initializer(backbone.config.initializer_range),
                                               dtype="float32", name="logits")
        inputs = backbone.input
        pooled = backbone(inputs)["pooled_output"]
        outputs = self.output_dense(self.output_dropout(pooled))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._initialized = True
        self.num_classes = num_classes
        self.dropout = float(dropout)
        self.activation = keras.activations.get(activation)

    def __setattr__(self, name, value):
        # PyTorch backend: a torch Module refuses attributes before Module.__init__ (as BertBackbone)
        if keras.config.backend() == "torch" and not hasattr(self, "_initialized"):
            return object.__setattr__(self, name, value)
        return super().__setattr__(name, value)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "backbone": keras.saving.serialize_keras_object(self.backbone), "num_classes": self.num_classes,
                "dropout": self.dropout, "activation": keras.activations.serialize(self.activation)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
