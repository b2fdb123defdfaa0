"""Every module of the package has a worked example in its docstrings, and it runs and is right.

The modules are discovered with ``pkgutil.walk_packages`` (a new module is tested without being
listed). The ``bertcourse.text`` modules that ``tests/test_text_doctests.py`` already runs are left to
it. An example counts as worked when it is code, not a comment, and not skipped.
"""

import doctest
import importlib
import pkgutil

import pytest

import bertcourse
from test_text_doctests import MODULES as TEXT_DOCTEST_MODULES

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
RUN_ELSEWHERE = {f"bertcourse.text.{name}" for name in TEXT_DOCTEST_MODULES} | {"bertcourse.text"}


def _all_modules() -> list[str]:
    names = ["bertcourse"] + [info.name for info in pkgutil.walk_packages(bertcourse.__path__, "bertcourse.")]
    return sorted(n for n in names if n not in RUN_ELSEWHERE and not n.endswith("__main__"))


MODULES = _all_modules()


def _worked(example: doctest.Example) -> bool:
    return (not example.source.lstrip().startswith("#")) and not example.options.get(doctest.SKIP, False)


def test_discovery_finds_the_whole_package():
    assert {"bertcourse.convert.hf", "bertcourse.layers.attention", "bertcourse.models.backbone"} <= set(MODULES)
    assert not RUN_ELSEWHERE & set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder().find(module, name)
    worked = sum(_worked(e) for t in tests for e in t.examples)
    assert worked > 0, f"{name} has no worked example (a '>>>' line that is code, not a comment or +SKIP)"
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples fail (see above)"
