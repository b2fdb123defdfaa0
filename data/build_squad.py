#!/usr/bin/env python
"""Verify (or restore) the shipped SQuAD v1.1 dev file, data/squad/dev-v1.1.json.

    python data/build_squad.py                  # check its sha256 (make data)
    python data/build_squad.py --from DIR       # copy DIR/dev-v1.1.json here first (e.g. ../shared/eval)
    python data/build_squad.py --download       # fetch the official file first (needs the internet)

The file is the official one, byte for byte (CC BY-SA 4.0, Rajpurkar et al. 2016; see data/README.md),
so there is nothing to build: the step checks it against the published sha256 in
``bertcourse.data.squad.SQUAD_FILES`` and fails loudly on any difference.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import urllib.request
from pathlib import Path

from bertcourse.data.squad import SQUAD_FILES, read_squad, verify_file

NAME = "dev-v1.1.json"
TARGET = Path(__file__).resolve().parent / "squad" / NAME


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", help="a folder holding the official dev-v1.1.json")
    parser.add_argument("--download", action="store_true", help="fetch the official file")
    args = parser.parse_args(argv)
    url, digest, size = SQUAD_FILES[NAME]
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    if args.source:
        shutil.copyfile(Path(args.source) / NAME, TARGET)
    elif args.download:
        with urllib.request.urlopen(url, timeout=60) as response, open(TARGET, "wb") as out:  # noqa: S310
            shutil.copyfileobj(response, out)
    if not TARGET.is_file():
        print(f"error: {TARGET} is missing: restore it with `git checkout -- data/squad/{NAME}` "
              f"or `python data/build_squad.py --download`.", file=sys.stderr)
        return 1
    try:
        verify_file(TARGET, digest)
        counts = read_squad(TARGET).counts()
    except Exception as err:  # one line for make
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"ok {TARGET.name}: sha256 {digest[:12]}..., {TARGET.stat().st_size:,} bytes, "
          + ", ".join(f"{v:,} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
