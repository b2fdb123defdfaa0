"""Converters between bertcourse's BertBackbone and other implementations (lesson 05).

All three read ONE named-weight map of the backbone (:mod:`bertcourse.convert.weight_map`) and only
translate its canonical names into their format: Hugging Face safetensors (:mod:`~bertcourse.convert.hf`),
Google's TF1 checkpoints (:mod:`~bertcourse.convert.google`) and keras-hub (:mod:`~bertcourse.convert.keras_hub`).

>>> from bertcourse.models import BertBackbone
>>> w = backbone_weights(BertBackbone("tiny"))[-2]
>>> w.name, HF_NAMES[w.pattern], GOOGLE_NAMES[w.pattern], KERAS_HUB_NAMES[w.pattern]
('pooler.kernel', 'pooler.dense.weight', 'bert/pooler/dense/kernel', 'pooled_dense.kernel')
"""

from bertcourse.convert.google import GOOGLE_NAMES, google_name, google_variable_names, load_google_checkpoint
from bertcourse.convert.hf import (HF_NAMES, CasingMismatchError, CheckpointError, hf_name, hf_weight_names,
                                   load_hf_bert, read_hf_config, save_hf_bert, vocab_looks_cased)
from bertcourse.convert.keras_hub import (KERAS_HUB_NAMES, WeightShapeError, attention_to_keras, config_from_keras_hub,
                                          copy_weights_from_keras_hub, copy_weights_to_keras_hub,
                                          encoder_block_to_keras_hub, from_keras_hub, keras_hub_kwargs, to_keras_hub)
from bertcourse.convert.weight_map import NamedWeight, backbone_weights, weight_names

__all__ = ["from_keras_hub", "to_keras_hub", "config_from_keras_hub", "keras_hub_kwargs",
           "copy_weights_from_keras_hub", "copy_weights_to_keras_hub", "WeightShapeError",
           "attention_to_keras", "encoder_block_to_keras_hub", "KERAS_HUB_NAMES",
           "load_hf_bert", "save_hf_bert", "read_hf_config", "hf_weight_names", "hf_name", "HF_NAMES",
           "vocab_looks_cased", "CheckpointError", "CasingMismatchError",
           "load_google_checkpoint", "google_variable_names", "google_name", "GOOGLE_NAMES",
           "NamedWeight", "backbone_weights", "weight_names"]
