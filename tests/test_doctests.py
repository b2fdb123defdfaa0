"""Every worked example in the package's docstrings runs and is right (bertcourse.text has its own)."""

import doctest
import importlib

import pytest

MODULES = ["bertcourse", "bertcourse.config", "bertcourse.course", "bertcourse.data.corpora",
           "bertcourse.data.pretraining", "bertcourse.layers.heads", "bertcourse.models.pretraining",
           "bertcourse.training.optim", "bertcourse.training.loop", "bertcourse.training.custom_loop", "bertcourse.retrieval",
           "bertcourse.models.tasks", "bertcourse.models.classifier", "bertcourse.convert.hf"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no worked example"
    assert result.failed == 0, f"{name}: {result.failed} failing docstring examples"
