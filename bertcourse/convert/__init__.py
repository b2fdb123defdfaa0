"""Converters between bertcourse models and other implementations.

>>> from bertcourse.convert import from_keras_hub, to_keras_hub
"""

from bertcourse.convert.keras_hub import (WeightShapeError, config_from_keras_hub, copy_weights_from_keras_hub,
                                          copy_weights_to_keras_hub, from_keras_hub, keras_hub_kwargs, to_keras_hub)

__all__ = ["from_keras_hub", "to_keras_hub", "config_from_keras_hub", "keras_hub_kwargs",
           "copy_weights_from_keras_hub", "copy_weights_to_keras_hub", "WeightShapeError"]
