#!/usr/bin/env python
"""Run every benchmark in bench/ in turn (``make bench``); each prints its own table.

The STS-B benchmark needs ``BERTCOURSE_EVAL_DIR`` (the public eval files) and skips itself otherwise.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    # *_app.py: servers that a benchmark starts itself (bench/serving_twin_app.py), not benchmarks
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != "run_all.py" and not p.name.endswith("_app.py"))
    failed = []
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        if subprocess.call([sys.executable, str(script)]) != 0:
            failed.append(script.name)
    if failed:
        print("failed:", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
