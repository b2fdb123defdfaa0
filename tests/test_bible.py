"""data/bible_kjv_web.tsv (built by data/build_bible.py) and its reader."""

import hashlib
import json
from pathlib import Path

import pytest

from bertcourse.data.bible import bible_path, load_verse_pairs

MANIFEST = Path(__file__).resolve().parents[1] / "data" / "bible_manifest.json"


@pytest.fixture(scope="module")
def pairs():
    return load_verse_pairs()


def test_counts(pairs):
    assert len(pairs) == 31_095
    assert len({ref.rsplit(" ", 1)[0] for ref, _, _ in pairs}) == 66
    assert len({ref.split(":")[0] for ref, _, _ in pairs}) == 1_189
    assert len({ref for ref, _, _ in pairs}) == len(pairs)
    assert pairs[0][0] == "Gen 1:1" and pairs[-1][0] == "Rev 22:21"


def test_text_is_clean(pairs):
    assert pairs[2] == ("Gen 1:3", "And God said, Let there be light: and there was light.",
                        "God said, “Let there be light,” and there was light.")
    assert all(kjv and web for _, kjv, web in pairs)
    assert not any(c in kjv + web for _, kjv, web in pairs for c in "<>\t¶")
    assert sum(len(k.split()) for _, k, _ in pairs) == 789_559
    assert sum(len(w.split()) for _, _, w in pairs) == 751_920


def test_manifest_matches_file():
    entry = json.loads(MANIFEST.read_text())["bible_kjv_web.tsv"]
    assert hashlib.sha256(bible_path().read_bytes()).hexdigest() == entry["sha256"]
    assert entry["pairs"] == 31_095


def test_filter_by_book():
    john = load_verse_pairs(books=["John"])
    assert len(john) == 879 and john[0][0] == "John 1:1"


def test_missing_file_names_the_build_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python data/build_bible\.py"):
        load_verse_pairs(tmp_path / "nope.tsv")
