"""Converters between bertcourse models and other implementations.

>>> from bertcourse.convert import from_keras_hub, to_keras_hub
"""

from bertcourse.convert.keras_hub import (WeightShapeError, attention_to_keras, config_from_keras_hub,
                                          copy_weights_from_keras_hub, copy_weights_to_keras_hub,
                                          encoder_block_to_keras_hub, from_keras_hub, keras_hub_kwargs, to_keras_hub)

__all__ = ["from_keras_hub", "to_keras_hub", "config_from_keras_hub", "keras_hub_kwargs",
           "copy_weights_from_keras_hub", "copy_weights_to_keras_hub", "WeightShapeError",
           "attention_to_keras", "encoder_block_to_keras_hub"]

# Hugging Face safetensors checkpoints and Google's TF1 checkpoints (lesson 05).
from bertcourse.convert.google import load_google_checkpoint  # noqa: E402
from bertcourse.convert.hf import CasingMismatchError, CheckpointError, load_hf_bert, save_hf_bert  # noqa: E402

__all__ += ["load_hf_bert", "save_hf_bert", "load_google_checkpoint", "CheckpointError", "CasingMismatchError"]
