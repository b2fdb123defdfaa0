"""Pytest set-up shared by the unit tests and nbval.

* TensorFlow's C++/Python logging is silenced before anything imports it; notebook
  kernels started by nbval inherit the environment.
* ``BERTCOURSE_SCALE`` defaults to ``ci`` under pytest.
* nbval compares ``stdout`` and results of cells marked ``# NBVAL_CHECK_OUTPUT``
  (``make test`` runs ``--nbval-lax``); ``stderr`` streams (progress bars, library
  warnings) are never compared.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("BERTCOURSE_SCALE", "ci")
os.environ.setdefault("PYTHONHASHSEED", "0")


def _without_stderr(outputs):
    return [o for o in outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]


try:
    from nbval.plugin import IPyNbCell

    _compare = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        return _compare(self, _without_stderr(test), _without_stderr(ref), skip_compare)

    IPyNbCell.compare_outputs = compare_outputs
except ImportError:  # nbval not installed: notebook tests are simply not collected
    pass
