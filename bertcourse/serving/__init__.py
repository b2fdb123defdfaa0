"""Export and serving (lesson 14): SavedModels that take raw strings, an HTTP service speaking TF Serving's
REST format, TFLite.

* :mod:`bertcourse.serving.export` -- :func:`export_task`: a fine-tuned task (classification, token
  classification, question answering) -> a SavedModel with the tokenizer, the windows over long texts and
  the decoding in the graph (``bertcourse export RUN OUT``).
* :mod:`bertcourse.serving.server` -- ``bertcourse serve OUT...``: FastAPI + uvicorn, TF Serving's REST
  format, dynamic batching, limits, an API key off loopback.
* :mod:`bertcourse.serving.tflite` -- :func:`~bertcourse.serving.tflite.convert_classifier`: a ``.tflite``
  with the tokenizer in the graph (tensorflow-text's TFLite kernels), float32 or dynamic-range quantised.

>>> from bertcourse.serving import SERVING_METADATA, export_task
>>> SERVING_METADATA, callable(export_task)
('serving.json', True)
"""

from bertcourse.serving.export import SERVING_METADATA, export_task, read_serving_metadata

__all__ = ["export_task", "read_serving_metadata", "SERVING_METADATA"]
