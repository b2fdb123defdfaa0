"""WNUT-17 (data/wnut17/): verify the shipped copy against its published sha256.

    python data/build_wnut17.py                       # verify (what `make data` runs); offline
    python data/build_wnut17.py --from ../shared/eval  # (re)copy the three files from a folder holding the
                                                       # originals (leondz/emerging_entities_17), then verify

The files are byte copies of the shared task's own files; nothing is rebuilt or changed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bertcourse.data.conll import WNUT17_COUNTS, WNUT17_FILES, load_wnut17, verify_wnut17  # noqa: E402
from bertcourse.errors import DataFileError  # noqa: E402

TARGET = ROOT / "data" / "wnut17"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", help="folder with the original WNUT-17 files to copy first")
    args = parser.parse_args(argv)
    if args.source:
        TARGET.mkdir(parents=True, exist_ok=True)
        for name in WNUT17_FILES.values():
            shutil.copyfile(Path(args.source) / name, TARGET / name)
    try:
        digests = verify_wnut17(TARGET)
        for split in WNUT17_FILES:
            data = load_wnut17(split, TARGET)
            counts = (len(data), data.num_tokens, data.num_entities)
            if counts != WNUT17_COUNTS[split]:
                raise DataFileError(f"WNUT-17 {split}: {counts} sentences/tokens/entities, expected "
                                    f"{WNUT17_COUNTS[split]}.")
    except (DataFileError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, digest in digests.items():
        print(f"ok  data/wnut17/{name}  sha256 {digest[:16]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
