#!/usr/bin/env python
"""Author and execute the course notebooks (jupytext + nbclient, kernels over IPC).

Notebooks are written as readable jupytext "percent" scripts in notebooks/src/NN_name.py:

    # %% [markdown]
    # # Title ...
    # %% tags=["parameters"]
    SCALE = os.environ.get("BERTCOURSE_SCALE", "course")
    # %%
    code ...
    # %% tags=["solution"] jupyter={"source_hidden": true}
    solution code (collapsed in JupyterLab)

    python tools/notebook.py build notebooks/src/01_wordpiece.py   # -> notebooks/01_wordpiece.ipynb, executed
    python tools/notebook.py run notebooks/*.ipynb                  # re-execute in place (make course)
    python tools/notebook.py sync notebooks/src/07_pretraining.py   # markdown/metadata edits only: keeps outputs

Parsing is PyPI ``jupytext`` (``py:percent``); execution is ``nbclient`` with a kernel that talks over
IPC (Unix sockets in a private temporary directory), so no TCP port is opened and Jupyter's "Kernel is
running over TCP without encryption" warning does not apply. Execution uses $BERTCOURSE_SCALE
(default: course) and writes outputs back into the notebook.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
KEPT_METADATA = ("tags", "jupyter")  # cell metadata that travels from the script to the notebook


def parse_percent(text: str) -> nbformat.NotebookNode:
    """A percent script -> an unexecuted notebook (jupytext), with only tags and `jupyter` cell metadata
    (e.g. ``source_hidden`` for solutions) and no blank lines around cell sources."""
    nb = jupytext.reads(text, fmt="py:percent")
    cells = []
    for cell in nb.cells:
        source = cell.source.strip("\n")
        metadata = {k: cell.metadata[k] for k in KEPT_METADATA if k in cell.metadata}
        new = nbformat.v4.new_markdown_cell(source) if cell.cell_type == "markdown" else nbformat.v4.new_code_cell(source)
        new.metadata.update(metadata)
        new.id = f"cell-{len(cells):03d}"  # stable ids: rebuilding an unchanged script changes no line
        cells.append(new)
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    out.metadata["language_info"] = {"name": "python"}
    return out


def execute(path: Path, timeout: int = 1800) -> float:
    """Execute a notebook in place with a fresh IPC kernel; returns the seconds it took."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(path, as_version=4)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="bertcourse-kernel-") as sockets:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
        client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
        finally:  # nbclient leaves a kernel it did not start running
            if km.has_kernel:
                km.shutdown_kernel()
    elapsed = time.time() - start
    for cell in nb.cells:  # keep notebooks small and diff-friendly
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    return elapsed


def sync(src: Path, out: Path) -> None:
    """Rewrite ``out`` from ``src`` keeping its outputs: only markdown and cell metadata may differ (for
    lessons too long to re-execute for a prose fix). Any change to a code cell's source is refused."""
    new = parse_percent(src.read_text(encoding="utf-8"))
    old = nbformat.read(out, as_version=4)
    old_code = [c for c in old.cells if c.cell_type == "code"]
    new_code = [c for c in new.cells if c.cell_type == "code"]
    if [c.source for c in old_code] != [c.source for c in new_code]:
        changed = next((i for i, (a, b) in enumerate(zip(old_code, new_code)) if a.source != b.source),
                       min(len(old_code), len(new_code)))
        raise SystemExit(f"error: {src.name}: code cell {changed} changed; rebuild and execute with `build`")
    for before, after in zip(old_code, new_code):
        after.outputs = before.outputs
        after.execution_count = before.execution_count
    for before, after in zip(old.cells, new.cells):  # keep the committed ids where the cells line up
        if before.cell_type == after.cell_type and "id" in before:
            after.id = before.id
    new.metadata = old.metadata
    nbformat.write(new, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="percent script -> executed .ipynb")
    b.add_argument("sources", nargs="+", type=Path)
    b.add_argument("--no-execute", action="store_true")
    s = sub.add_parser("sync", help="copy markdown/metadata edits into the .ipynb, keeping its outputs")
    s.add_argument("sources", nargs="+", type=Path)
    r = sub.add_parser("run", help="execute notebooks in place")
    r.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    scale = os.environ.get("BERTCOURSE_SCALE", "course")
    if args.cmd in ("build", "sync"):
        for src in args.sources:
            out = ROOT / "notebooks" / (src.stem + ".ipynb")
            if args.cmd == "sync":
                sync(src, out)
                print(f"[notebook] {out.relative_to(ROOT)} synced from {src.name} (outputs kept)", flush=True)
                continue
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
