"""Export and serving (lesson 14): SavedModels that take raw strings, an HTTP service speaking TF Serving's
REST format, TFLite.

* :mod:`bertcourse.serving.export` -- :func:`export_task`: a fine-tuned task -> a SavedModel with the
  tokenizer in the graph (``bertcourse export RUN OUT``).

>>> from bertcourse.serving import SERVING_METADATA, export_task
>>> SERVING_METADATA, callable(export_task)
('serving.json', True)
"""

from bertcourse.serving.export import SERVING_METADATA, export_task, read_serving_metadata

__all__ = ["export_task", "read_serving_metadata", "SERVING_METADATA"]
