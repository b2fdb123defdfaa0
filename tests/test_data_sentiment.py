"""data/sentiment/ (built by data/build_sentiment.py from the vadersentiment 3.3.2 sdist): checksums,
counts, the stratified split, no text in two splits, the reader, the SST-2 overlap stated in data/README.md."""

import collections
import doctest
import hashlib
import importlib.util
import json
import os
from pathlib import Path

import pytest

from bertcourse.data.labelled import read_labelled_texts

ROOT = Path(__file__).resolve().parents[1]
SENTIMENT = ROOT / "data" / "sentiment"
MANIFEST = json.loads((SENTIMENT / "manifest.json").read_text())
SPLITS = ("train", "validation", "test")
ROWS = {"train": 15_474, "validation": 1_937, "test": 1_937}
EVAL_DIR = Path(os.environ.get("BERTCOURSE_EVAL_DIR") or ROOT.parent / "shared" / "eval")


def _load_build_module():
    spec = importlib.util.spec_from_file_location("build_sentiment", ROOT / "data" / "build_sentiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build_module()


@pytest.fixture(scope="module")
def rows():
    return {name: build._read_rows(SENTIMENT / f"{name}.tsv") for name in SPLITS}


def test_checksums_match_manifest():
    for name in SPLITS:
        path = SENTIMENT / f"{name}.tsv"
        entry = MANIFEST["files"][path.name]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert path.stat().st_size == entry["bytes"]
    assert MANIFEST["sdist_sha256"] == build.SDIST_SHA256


def test_verify_mode_passes_without_network(capsys):
    build.build(force=False)  # verifies the committed files; never downloads
    assert capsys.readouterr().out.count(": ok (") == 3


def test_counts(rows):
    assert {name: len(r) for name, r in rows.items()} == ROWS
    selection = MANIFEST["selection"]
    assert selection["rated"] == 23_703 and selection["kept"] == sum(ROWS.values())
    assert selection["rated"] - selection["near_neutral_dropped"] - selection["duplicate_copies_dropped"] \
        - selection["conflicting_duplicates_dropped"] == selection["kept"]
    every = [r for part in rows.values() for r in part]
    by_domain = collections.Counter(r["domain"] for r in every)
    assert by_domain == {"movies": 10_070, "tweets": 3_372, "nyt": 2_931, "amazon": 2_975}
    for name, part in rows.items():
        table = MANIFEST["files"][f"{name}.tsv"]["counts"]
        assert collections.Counter((r["domain"], r["label"]) for r in part) == \
            {(d, lab): n for d, labs in table.items() for lab, n in labs.items()}


def test_labels_follow_the_rating(rows):
    for part in rows.values():
        for r in part:
            mean = float(r["mean"])
            assert (mean >= 0.5 and r["label"] == "positive") or (mean <= -0.5 and r["label"] == "negative"), r
            assert r["id"].startswith(r["domain"] + "/") and r["text"] == r["text"].strip() and r["text"]


def test_split_is_stratified_by_domain_and_label(rows):
    strata = collections.Counter((r["domain"], r["label"]) for part in rows.values() for r in part)
    assert len(strata) == 8
    for name in ("validation", "test"):
        counts = collections.Counter((r["domain"], r["label"]) for r in rows[name])
        for stratum, total in strata.items():
            assert counts[stratum] == round(0.1 * total), (name, stratum)


def test_no_text_in_two_splits(rows):
    seen: dict[str, str] = {}
    for name, part in rows.items():
        for r in part:
            key = build.text_key(r["text"])
            assert seen.setdefault(key, name) == name, f"{r['text']!r} in {seen[key]} and {name}"
    assert len(seen) == sum(ROWS.values())  # no duplicate inside a split either
    ids = [r["id"] for part in rows.values() for r in part]
    assert len(set(ids)) == len(ids)


def test_read_by_the_labelled_reader():
    train = read_labelled_texts(SENTIMENT / "train.tsv", require_classes=2)
    assert len(train) == ROWS["train"] and sorted(train.classes) == ["negative", "positive"]
    test = read_labelled_texts(SENTIMENT / "test.tsv", label_column="mean")  # regression target
    assert len(test) == ROWS["test"] and all(abs(float(x)) >= 0.5 for x in test.labels)


def test_build_helpers_doctests():
    failures, tried = doctest.testmod(build, optionflags=doctest.ELLIPSIS)
    assert tried >= 4 and failures == 0


@pytest.mark.skipif(not (EVAL_DIR / "sst2-train.tsv").exists(), reason="SST-2 files not present (BERTCOURSE_EVAL_DIR)")
def test_sst2_overlap_as_stated_in_readme():
    overlap = build.sst2_overlap(EVAL_DIR)
    assert overlap["sst2-train.tsv"]["verbatim"] == 12
    assert overlap["any sst2 file"] == {"loose": 7_027, "loose_movies": 7_000, "movies": 10_070}
    assert overlap["sst2-dev.tsv"]["loose"] == 633 and overlap["sst2-test.tsv"]["loose"] == 1_294
