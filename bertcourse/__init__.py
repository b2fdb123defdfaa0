"""bertcourse: BERT built from the ground up in Keras 3, one lesson at a time.

The package is what the notebooks in ``notebooks/`` import; every piece is tested
against its production twin (Hugging Face ``tokenizers``, ``tensorflow_text``,
``keras.layers.MultiHeadAttention``, ``keras_hub``).

>>> from bertcourse import BertConfig
>>> BertConfig.preset("tiny").num_layers
2
"""

from bertcourse.config import PRESETS, BertConfig

__version__ = "0.1.0"
__all__ = ["BertConfig", "PRESETS", "__version__"]
