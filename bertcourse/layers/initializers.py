"""Weight initializers shared by the layers, the models and the task heads.

BERT draws every kernel and embedding from a normal distribution of standard deviation
``initializer_range`` (0.02) cut at two standard deviations. ``clone_initializer`` gives each
weight its own copy of an initializer, so two weights never share one seeded (stateful) object.

>>> init = bert_initializer(0.02)
>>> type(init).__name__, init.get_config()["stddev"]
('TruncatedNormal', 0.02)
>>> other = clone_initializer(init)
>>> other is init, other.get_config() == init.get_config()
(False, True)
"""

from __future__ import annotations

import keras

__all__ = ["bert_initializer", "clone_initializer"]


def bert_initializer(initializer_range: float = 0.02) -> keras.initializers.Initializer:
    """BERT's weight initializer: a normal of std ``initializer_range`` truncated at 2 std."""
    return keras.initializers.TruncatedNormal(stddev=initializer_range)


def clone_initializer(initializer):
    """A fresh copy of ``initializer`` (a name, a config or an instance), so no two weights share one."""
    initializer = keras.initializers.get(initializer)
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    return initializer.__class__.from_config(initializer.get_config())
