#!/usr/bin/env python
"""Author and execute the course notebooks.

Notebooks are written as readable "percent" scripts in notebooks/src/NN_name.py:

    # %% [markdown]
    # # Title ...
    # %% tags=["parameters"]
    SCALE = os.environ.get("BERTCOURSE_SCALE", "course")
    # %%
    code ...

    python tools/notebook.py build notebooks/src/01_wordpiece.py   # -> notebooks/01_wordpiece.ipynb, executed
    python tools/notebook.py run notebooks/*.ipynb                  # re-execute in place (make course)

Execution uses $BERTCOURSE_SCALE (default: course) and writes outputs back into the notebook.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CELL = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*?\]))?\s*$")


def parse_percent(text: str):
    import nbformat

    cells, kind, tags, buf = [], None, [], []

    def flush():
        if kind is None:
            return
        body = "\n".join(buf).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.split("\n"))
            cell = nbformat.v4.new_markdown_cell(body)
        else:
            cell = nbformat.v4.new_code_cell(body)
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)

    for line in text.split("\n"):
        m = _CELL.match(line)
        if m:
            flush()
            kind = "markdown" if m.group("md") else "code"
            tags = json.loads(m.group("tags")) if m.group("tags") else []
            buf = []
        elif kind is not None:
            buf.append(line)
    flush()
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(path: Path, timeout: int = 1800) -> float:
    import nbformat
    from nbclient import NotebookClient

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(path, as_version=4)
    start = time.time()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    elapsed = time.time() - start
    for cell in nb.cells:  # keep notebooks small and diff-friendly
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="percent script -> executed .ipynb")
    b.add_argument("sources", nargs="+", type=Path)
    b.add_argument("--no-execute", action="store_true")
    r = sub.add_parser("run", help="execute notebooks in place")
    r.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    scale = os.environ.get("BERTCOURSE_SCALE", "course")
    if args.cmd == "build":
        import nbformat

        for src in args.sources:
            out = ROOT / "notebooks" / (src.stem + ".ipynb")
            nbformat.write(parse_percent(src.read_text(encoding="utf-8")), out)
            if not args.no_execute:
                secs = execute(out)
                print(f"[notebook] {out.relative_to(ROOT)} executed at scale={scale} in {secs:.1f}s", flush=True)
    else:
        total = 0.0
        for nb_path in args.notebooks:
            print(f"[notebook] running {nb_path} at scale={scale} ...", flush=True)
            secs = execute(nb_path)
            total += secs
            print(f"[notebook] {nb_path} done in {secs:.1f}s", flush=True)
        print(f"[notebook] {len(args.notebooks)} notebooks in {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
