"""TRANSITIONAL: the old private home of the layer helpers, kept only until models/backbone.py and the task
heads import the public modules (``bertcourse.layers.initializers`` / ``bertcourse.layers.activations``, or
simply ``from bertcourse.layers import bert_initializer``). The import-linter contract "no package imports
bertcourse.layers._utils" lists the remaining users; delete this file when it passes.

>>> from bertcourse.layers._utils import bert_initializer
>>> bert_initializer(0.02).get_config()["stddev"]
0.02
"""

from bertcourse.layers.activations import ACTIVATIONS, gelu_approximate, gelu_exact, get_activation  # noqa: F401
from bertcourse.layers.initializers import bert_initializer, clone_initializer  # noqa: F401
