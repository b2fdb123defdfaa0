"""Every lesson is committed executed, in sync with its source, error-free and small."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_BYTES = 2_000_000


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"
    assert NOTEBOOKS[0].name.startswith("00_")


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_in_order_without_errors(path):
    nb = _load(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    counts = [c.get("execution_count") for c in code]
    assert None not in counts, f"{path.name}: cells not executed: {counts.index(None)}"
    assert counts == sorted(counts), f"{path.name}: cells executed out of order"
    for cell in code:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name}: error output {out.get('ename')}"
            text = "".join(out.get("text", "")) if out["output_type"] == "stream" else ""
            assert "Traceback (most recent call last)" not in text, f"{path.name}: traceback in output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_small_and_parameterised(path):
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size:,} bytes"
    nb = _load(path)
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    assert "BERTCOURSE_SCALE" in "".join(params[0]["source"])
    sources = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "bertcourse" in sources, f"{path.name} never imports bertcourse"
    assert re.search(r"setup\(seed=", sources), f"{path.name} does not seed via bertcourse.course.setup"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_in_sync_with_source(path):
    src = ROOT / "notebooks" / "src" / (path.stem + ".py")
    assert src.is_file(), f"{path.name} has no source script {src.relative_to(ROOT)}"
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import notebook as nbtool
    finally:
        sys.path.pop(0)
    expected = [("".join(c["source"]), c["cell_type"]) for c in nbtool.parse_percent(src.read_text())["cells"]]
    actual = [("".join(c["source"]), c["cell_type"]) for c in _load(path)["cells"]]
    assert actual == expected, f"{path.name} differs from {src.name}: rebuild with tools/notebook.py build"
