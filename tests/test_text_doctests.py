"""The worked examples in the docstrings of bertcourse.text run and are right."""

import doctest
import importlib

import pytest

MODULES = ["normalize", "wordpiece", "vocab", "paths", "display", "packing", "fast", "preprocessor"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"bertcourse.text.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"bertcourse.text.{name} has no examples"
    assert result.failed == 0


def test_package_docstring():
    import bertcourse.text

    assert doctest.testmod(bertcourse.text).failed == 0
