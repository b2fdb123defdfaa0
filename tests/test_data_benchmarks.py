"""bertcourse.data.benchmarks: SST-2 / STS-B / IMDB loaders on small files in the published formats (always)
and on the real files (exact counts) when a benchmark folder is present: $BERTCOURSE_EVAL_DIR, else
../shared/eval beside the repository."""

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from bertcourse.data import benchmarks
from bertcourse.data.benchmarks import (EXPECTED_COUNTS, KNOWN_SHA256, download_dataset, find_file, load_imdb,
                                        load_sst2, load_stsb, read_sst2_file, read_stsb_file)
from bertcourse.errors import DataFileError

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("BERTCOURSE_EVAL_DIR") or REPO.parent / "shared" / "eval")


@pytest.fixture(autouse=True)
def no_default_folders(monkeypatch, tmp_path):
    """Tests see only the folders they name: no user cache, no benchmark folder unless set here."""
    monkeypatch.setenv("BERTCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BERTCOURSE_EVAL_DIR", raising=False)


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


SST_TRAIN = "label\tsentence\n0\thide new secretions\n1\tthe greatest musicians \n0\tcontains no wit , only labored gags\n"
SST_DEV = 'label\tcontent\n1\tit \'s a " charming " and often affecting journey .\n0\tunflinchingly bleak\n'
STS = ("main-captions\tMSRvid\t2012test\t0001\t5.000\tA plane is taking off.\tAn air plane is taking off.\n"
       'main-news\theadlines\t2016\t0012\t4\tDriver "backs" into stroller\tDriver backs into mom\t'
       "Europe Media Monitor (http://emm.newsbrief.eu)\tEurope Media Monitor (http://emm.newsbrief.eu)\n"
       "main-forums\tdeft-forum\t2014\t0003\t0.400\tOne \"quote only\tAnother sentence.\n")


def test_sst2_train_and_dev_headers(tmp_path):
    train = read_sst2_file(write(tmp_path / "sst2-train.tsv", SST_TRAIN))
    assert train.texts[1] == "the greatest musicians " and train.labels == ["0", "1", "0"]
    dev = read_sst2_file(write(tmp_path / "sst2-dev.tsv", SST_DEV))
    assert dev.texts[0] == 'it \'s a " charming " and often affecting journey .' and dev.labels == ["1", "0"]
    glue = read_sst2_file(write(tmp_path / "glue-sst2-dev.tsv", "sentence\tlabel\nfine .\t1\n"))  # GLUE's order
    assert glue.texts == ["fine ."] and glue.labels == ["1"]
    with pytest.raises(DataFileError, match="no labels"):
        read_sst2_file(write(tmp_path / "test.tsv", "index\tsentence\n0\ta film\n"))
    with pytest.raises(DataFileError, match="line 3: label '2'"):
        read_sst2_file(write(tmp_path / "bad.tsv", "label\tsentence\n1\ta\n2\tb\n"))
    with pytest.raises(DataFileError, match="empty"):
        read_sst2_file(write(tmp_path / "empty.tsv", ""))


def test_stsb_quotes_and_extra_source_fields(tmp_path):
    pairs = read_stsb_file(write(tmp_path / "sts-dev.csv", STS))
    assert pairs.labels == ["5.000", "4", "0.400"]
    assert pairs.texts[1] == 'Driver "backs" into stroller' and pairs.texts_b[1] == "Driver backs into mom"
    assert pairs.texts[2] == 'One "quote only' and pairs.texts_b[2] == "Another sentence."  # no quoting
    with pytest.raises(DataFileError, match="line 1: 6 fields"):
        read_stsb_file(write(tmp_path / "short.csv", "a\tb\tc\td\t1.0\tonly one\n"))
    with pytest.raises(DataFileError, match="outside"):
        read_stsb_file(write(tmp_path / "range.csv", "a\tb\tc\td\t7\tx\ty\n"))


def test_lookup_order_checksums_and_no_download_unless_asked(tmp_path, monkeypatch):
    evals = tmp_path / "eval"
    evals.mkdir()
    write(evals / "sts-dev.csv", STS)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded unless asked"):
        load_stsb("dev")
    monkeypatch.setenv("BERTCOURSE_EVAL_DIR", str(evals))
    with pytest.raises(DataFileError, match="differs from the published file's"):  # a known name, other bytes
        load_stsb("dev")
    assert len(load_stsb("dev", verify=False)) == 3
    assert len(load_stsb("dev", path=evals, verify=False)) == 3
    with pytest.raises(ValueError, match="split"):
        load_sst2("validation")


def test_download_path_from_a_local_archive(tmp_path, monkeypatch):
    """The download code runs on a file:// URL (never the network in tests): fetched into the cache, its
    sha256 checked, its members unpacked under their cache names, then found by the loader."""
    src = tmp_path / "src" / "stsbenchmark"
    src.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        write(src / f"sts-{split}.csv", STS)
    archive = tmp_path / "Stsbenchmark.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname="stsbenchmark")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(benchmarks.SOURCES, "stsb", dict(benchmarks.SOURCES["stsb"], url=archive.as_uri(),
                                                         sha256=digest))
    for split in ("train", "dev", "test"):  # the small files are not the published ones
        monkeypatch.setitem(KNOWN_SHA256, f"sts-{split}.csv", hashlib.sha256(STS.encode()).hexdigest())
    assert len(load_stsb("test", download=True)) == 3
    assert (Path(os.environ["BERTCOURSE_CACHE"]) / "sts-train.csv").is_file()
    monkeypatch.setitem(benchmarks.SOURCES, "stsb", dict(benchmarks.SOURCES["stsb"], url=archive.as_uri(),
                                                         sha256="0" * 64))
    (Path(os.environ["BERTCOURSE_CACHE"]) / "sts-test.csv").unlink()
    with pytest.raises(DataFileError, match="differs"):
        download_dataset("stsb")


def test_imdb_folders(tmp_path):
    root = tmp_path / "aclImdb"
    for split in ("train", "test"):
        for label, texts in (("pos", ["Great.<br /><br />Loved it", "Fine"]), ("neg", ["Dull"])):
            (root / split / label).mkdir(parents=True)
            for i, text in enumerate(texts):
                write(root / split / label / f"{10 - i}_{9 if label == 'pos' else 2}.txt", text)
    data = load_imdb("train", path=root)
    assert data.labels == ["neg", "pos", "pos"]
    assert data.texts == ["Dull", "Fine", "Great.  Loved it"]  # 9_ before 10_: numeric file order
    assert load_imdb("test", path=root, line_breaks=None).texts[2] == "Great.<br /><br />Loved it"
    with pytest.raises(DataFileError, match="no train/neg folder"):
        load_imdb("train", path=tmp_path)
    with pytest.raises(FileNotFoundError, match="aclImdb"):
        find_file("aclImdb", "imdb")


@pytest.mark.skipif(not (REAL / "sst2-train.tsv").is_file(),
                    reason=f"no benchmark folder at {REAL} (set BERTCOURSE_EVAL_DIR to the folder of sst2-*.tsv)")
def test_real_sst2_counts(monkeypatch):
    monkeypatch.setenv("BERTCOURSE_EVAL_DIR", str(REAL))
    for split in ("train", "dev", "test"):
        data = load_sst2(split)  # sha256 checked
        assert len(data) == EXPECTED_COUNTS[("sst2", split)]
    assert load_sst2("train").labels.count("0") == 29_780
    dev = load_sst2("dev")
    assert (dev.labels.count("0"), dev.labels.count("1")) == (428, 444)


@pytest.mark.skipif(not (REAL / "sts-train.csv").is_file(),
                    reason=f"no benchmark folder at {REAL} (set BERTCOURSE_EVAL_DIR to the folder of sts-*.csv)")
def test_real_stsb_counts(monkeypatch):
    monkeypatch.setenv("BERTCOURSE_EVAL_DIR", str(REAL))
    for split in ("train", "dev", "test"):
        data = load_stsb(split)
        assert len(data) == len(data.texts_b) == EXPECTED_COUNTS[("stsb", split)]
        assert all(0.0 <= float(s) <= 5.0 for s in data.labels)
    assert any('"' in t for t in load_stsb("train").texts + load_stsb("train").texts_b)
