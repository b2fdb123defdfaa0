"""Loaders for the standard labelled sets in their published formats: GLUE SST-2, STS-B, IMDB (aclImdb).

Nothing is downloaded unless asked (``download=True``). A file is looked for, in order, at the ``path``
given, in ``$BERTCOURSE_EVAL_DIR`` (a folder of the benchmark files under the names below) and in the
cache folder (``$BERTCOURSE_CACHE`` or ``~/.cache/bertcourse``); a file under a known name is checked
against its sha256 (a different version or a damaged copy is refused by name; ``verify=False`` reads
it anyway).

========================  ===========================================  =================================
set                       file(s) and format                           loader -> ``LabelledTexts``
========================  ===========================================  =================================
SST-2 (GLUE, binary)      ``sst2-{train,dev,test}.tsv``: tab-separated,  :func:`load_sst2`: texts,
                          header ``label<TAB>sentence`` (train) or       labels ``"0"``/``"1"``
                          ``label<TAB>content`` (dev/test); GLUE's own
                          ``sentence<TAB>label`` files read too
STS-B                     ``sts-{train,dev,test}.csv``: tab-separated,   :func:`load_stsb`: texts, texts_b,
                          no header, no quoting (a ``"`` is a           labels = the gold score as
                          character), ``genre file year id score s1      written (``"3.800"``; 0-5)
                          s2`` (+2 source fields on some lines)
IMDB (Maas et al. 2011)   ``aclImdb/{train,test}/{pos,neg}/<id>_<r>.txt``  :func:`load_imdb`: reviews,
                                                                        labels ``"neg"``/``"pos"``
========================  ===========================================  =================================

Counts of the published files: SST-2 67,349 / 872 / 1,821; STS-B 5,749 / 1,500 / 1,379 pairs; IMDB 25,000 /
25,000 reviews. GLUE hides the SST-2 test labels; ``sst2-test.tsv`` here is the treebank's labelled binary
test split (the file a benchmark folder holds). A download fetches the official archives
(:data:`SOURCES`): STS-B from its wiki, IMDB from Stanford, SST-2 from GLUE (train and dev only).

>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "pairs.csv").write_text('main-news\\theadlines\\t2016\\t0001\\t4.000\\tA "big" cat.\\tA cat.\\n')
>>> pairs = read_stsb_file(root / "pairs.csv")     # load_stsb("dev") finds sts-dev.csv and checks its sha256
>>> pairs.texts, pairs.texts_b, pairs.labels
(['A "big" cat.'], ['A cat.'], ['4.000'])
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from bertcourse.data.labelled import LabelledTexts
from bertcourse.errors import DataFileError

__all__ = ["KNOWN_SHA256", "SOURCES", "EXPECTED_COUNTS", "cache_dir", "eval_dir", "find_file", "sha256_of",
           "verify_file", "read_sst2_file", "read_stsb_file", "read_imdb_folder", "load_sst2", "load_stsb",
           "load_imdb", "download_dataset"]

SPLITS = ("train", "dev", "test")

# sha256 of the published files (the copies in a benchmark folder; see ../shared/eval/README.md).
KNOWN_SHA256 = {
    "sst2-train.tsv": "e981ceb4fe6c9acd1c79851d0d091b9e78103f1f2a399ca83dda27915d41c56c",
    "sst2-dev.tsv": "84207e6be5873fb18db798cc6faec86871f5a426554650ff64a1c34e87665f6f",
    "sst2-test.tsv": "fcd46f967b7b8efd8b5398481dadf873886298d092195167af907fd532e81e1c",
    "sts-train.csv": "d52e1db23c2483099f2ff4d9cd80a0f98be6438748b65e21f2f2244da0164ab1",
    "sts-dev.csv": "5d7e944d8b02734b07bfdb5df67db3420c64bed153fcaa1ba47ad03480cf4234",
    "sts-test.csv": "affe45928a66ee5a708531233c95b7dacbbdc57f974f002a3d32ea0180cf816a",
    "aclImdb_v1.tar.gz": "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
}

EXPECTED_COUNTS = {("sst2", "train"): 67_349, ("sst2", "dev"): 872, ("sst2", "test"): 1_821,
                   ("stsb", "train"): 5_749, ("stsb", "dev"): 1_500, ("stsb", "test"): 1_379,
                   ("imdb", "train"): 25_000, ("imdb", "test"): 25_000}

# Where a download comes from: archive URL, its sha256 (None: none published), and member -> cache name.
SOURCES = {
    "stsb": {"url": "https://ixa2.si.ehu.eus/stswiki/images/4/48/Stsbenchmark.tar.gz", "sha256": None,
             "members": {f"stsbenchmark/sts-{s}.csv": f"sts-{s}.csv" for s in SPLITS}},
    "sst2": {"url": "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip", "sha256": None,
             "members": {"SST-2/train.tsv": "glue-sst2-train.tsv", "SST-2/dev.tsv": "glue-sst2-dev.tsv"}},
    "imdb": {"url": "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
             "sha256": KNOWN_SHA256["aclImdb_v1.tar.gz"], "members": {"aclImdb/": "aclImdb/"}},
}


def cache_dir() -> Path:
    """``$BERTCOURSE_CACHE``, else ``~/.cache/bertcourse`` (not created until a download)."""
    return Path(os.environ.get("BERTCOURSE_CACHE") or Path.home() / ".cache" / "bertcourse").expanduser()


def eval_dir() -> Path | None:
    """``$BERTCOURSE_EVAL_DIR`` when set and a folder, else ``None``."""
    value = os.environ.get("BERTCOURSE_EVAL_DIR")
    return Path(value).expanduser() if value and Path(value).expanduser().is_dir() else None


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: str | os.PathLike, expected: str | None = None) -> Path:
    """Refuse (``DataFileError``) a file whose sha256 differs from ``expected`` (default: its known name's)."""
    path = Path(path)
    expected = expected or KNOWN_SHA256.get(path.name)
    if expected is None:
        return path
    actual = sha256_of(path)
    if actual != expected:
        raise DataFileError(f"{path}: sha256 {actual} differs from the published file's {expected} (another version "
                            "or a damaged copy); replace it, or pass verify=False to read it anyway.")
    return path


def find_file(names: str | list[str], dataset: str, path: str | os.PathLike | None = None,
              download: bool = False, verify: bool = True) -> Path:
    """The first of ``names`` at ``path`` / in ``$BERTCOURSE_EVAL_DIR`` / in the cache; with ``download``,
    fetched into the cache when missing. ``FileNotFoundError`` (saying where it looked) otherwise."""
    names = [names] if isinstance(names, str) else list(names)
    if path is not None:
        path = Path(path)
        if path.is_dir():
            candidates = [path / n for n in names]
        else:
            if not path.exists():
                raise FileNotFoundError(f"{path} does not exist.")
            candidates = [path]
    else:
        folders = [d for d in (eval_dir(), cache_dir()) if d is not None]
        candidates = [d / n for d in folders for n in names]
    for candidate in candidates:
        if candidate.exists():
            return verify_file(candidate) if verify and candidate.is_file() else candidate
    if download and path is None:
        download_dataset(dataset)
        return find_file(names, dataset, verify=verify)
    looked = ", ".join(str(c) for c in candidates) or "nowhere"
    raise FileNotFoundError(f"{dataset}: none of {names} found (looked at: {looked}). Set BERTCOURSE_EVAL_DIR to a "
                            f"folder holding them, pass path=..., or download=True to fetch {SOURCES[dataset]['url']} "
                            "into the cache (nothing is downloaded unless asked).")


def _check_split(split: str, allowed=SPLITS) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, got {split!r}.")


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataFileError(f"{path}: not UTF-8 ({err}).") from None


# ----------------------------------------------------------------------------- SST-2
def read_sst2_file(path: str | os.PathLike) -> LabelledTexts:
    """An SST-2 tsv (header with a ``label`` column and a ``sentence`` or ``content`` column, in any order;
    no quoting) -> texts and labels ``"0"``/``"1"``. GLUE's unlabelled test file is refused by name."""
    path = Path(path)
    lines = _read_text(path).split("\n")
    header = lines[0].rstrip("\r").split("\t") if lines and lines[0].strip() else []
    if not header:
        raise DataFileError(f"{path}: the file is empty; expected a header (label, sentence) and one row per text.")
    text_column = next((c for c in ("sentence", "content") if c in header), None)
    if "label" not in header or text_column is None:
        hint = " (GLUE's test.tsv has no labels: use the labelled test split)" if header[:2] == ["index", "sentence"] \
            else ""
        raise DataFileError(f"{path}: expected columns 'label' and 'sentence' (or 'content'), got {header}{hint}.")
    i_label, i_text = header.index("label"), header.index(text_column)
    texts, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataFileError(f"{path}, line {number}: {len(fields)} fields, expected {len(header)} ({header}).")
        if fields[i_label] not in ("0", "1"):
            raise DataFileError(f"{path}, line {number}: label {fields[i_label]!r} is not 0 or 1.")
        texts.append(fields[i_text])
        labels.append(fields[i_label])
    if not texts:
        raise DataFileError(f"{path}: no examples after the header.")
    return LabelledTexts(texts, labels, source=str(path))


def load_sst2(split: str = "train", path: str | os.PathLike | None = None, download: bool = False,
              verify: bool = True) -> LabelledTexts:
    """SST-2 ``split`` (``"train"``, ``"dev"``, ``"test"``): ``sst2-<split>.tsv`` (or a downloaded
    ``glue-sst2-<split>.tsv``, train and dev only) -- see :func:`find_file` for where it is looked for."""
    _check_split(split)
    names = [f"sst2-{split}.tsv"] + ([f"glue-sst2-{split}.tsv"] if split != "test" else [])
    return read_sst2_file(find_file(names, "sst2", path, download=download and split != "test", verify=verify))


# ----------------------------------------------------------------------------- STS-B
def read_stsb_file(path: str | os.PathLike) -> LabelledTexts:
    """An STS-B csv: tab-separated, no header, ``csv.QUOTE_NONE`` (quotes are text), 7 fields ``genre, file,
    year, id, score, sentence1, sentence2`` and on some lines 2 more (the sentences' sources, ignored).
    Labels: the score as written (``float(label)`` in [0, 5])."""
    path = Path(path)
    texts, texts_b, labels = [], [], []
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) not in (7, 9):
            raise DataFileError(f"{path}, line {reader.line_num}: {len(row)} fields, expected 7 (genre, file, year, "
                                "id, score, sentence1, sentence2) or 9 (+ 2 sources).")
        try:
            score = float(row[4])
        except ValueError:
            raise DataFileError(f"{path}, line {reader.line_num}: score {row[4]!r} is not a number.") from None
        if not 0.0 <= score <= 5.0:
            raise DataFileError(f"{path}, line {reader.line_num}: score {score} is outside [0, 5].")
        labels.append(row[4])
        texts.append(row[5])
        texts_b.append(row[6])
    if not texts:
        raise DataFileError(f"{path}: the file is empty; expected one scored pair per line.")
    return LabelledTexts(texts, labels, texts_b, source=str(path))


def load_stsb(split: str = "train", path: str | os.PathLike | None = None, download: bool = False,
              verify: bool = True) -> LabelledTexts:
    """STS-B ``split``: ``sts-<split>.csv`` -- sentence pairs with their 0-5 similarity (as strings)."""
    _check_split(split)
    return read_stsb_file(find_file(f"sts-{split}.csv", "stsb", path, download=download, verify=verify))


# ----------------------------------------------------------------------------- IMDB
def read_imdb_folder(root: str | os.PathLike, split: str = "train", line_breaks: str | None = " ") -> LabelledTexts:
    """``root/<split>/{neg,pos}/*.txt`` (``root`` is the ``aclImdb`` folder) -> reviews, labels ``"neg"``/``"pos"``,
    ordered by label then file name (deterministic). The reviews' ``<br />`` tags become ``line_breaks``
    (``None``: kept as written)."""
    _check_split(split, ("train", "test"))
    root = Path(root)
    texts, labels = [], []
    for label in ("neg", "pos"):
        folder = root / split / label
        if not folder.is_dir():
            raise DataFileError(f"{root}: no {split}/{label} folder (expected the aclImdb layout "
                                "<split>/{neg,pos}/<id>_<rating>.txt).")
        for file in sorted(folder.glob("*.txt"), key=lambda p: (len(p.name), p.name)):
            text = _read_text(file)
            texts.append(text.replace("<br />", line_breaks) if line_breaks is not None else text)
            labels.append(label)
    if not texts:
        raise DataFileError(f"{root}/{split}: no reviews (*.txt) found.")
    return LabelledTexts(texts, labels, source=str(root / split))


def load_imdb(split: str = "train", path: str | os.PathLike | None = None, download: bool = False,
              line_breaks: str | None = " ") -> LabelledTexts:
    """IMDB reviews of ``split`` (``"train"``/``"test"``) from an ``aclImdb`` folder (``path``, or found as
    :func:`find_file` finds files)."""
    if path is not None:
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a folder: give the aclImdb folder.")
    else:
        root = find_file("aclImdb", "imdb", download=download, verify=False)
    return read_imdb_folder(root, split, line_breaks)


# ----------------------------------------------------------------------------- download (only when asked)
def download_dataset(dataset: str, folder: str | os.PathLike | None = None) -> Path:
    """Fetch ``dataset``'s archive (:data:`SOURCES`) into ``folder`` (default: the cache), check its sha256
    where one is published, and unpack its files under their cache names. Returns the folder."""
    if dataset not in SOURCES:
        raise ValueError(f"dataset must be one of {sorted(SOURCES)}, got {dataset!r}.")
    source = SOURCES[dataset]
    folder = Path(folder) if folder is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    archive_name = source["url"].rsplit("/", 1)[-1]
    archive = folder / archive_name
    if not archive.is_file():
        tmp = folder / f".{archive_name}.part"
        with urllib.request.urlopen(source["url"], timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
        os.replace(tmp, archive)
    if source["sha256"]:
        verify_file(archive, source["sha256"])
    with tempfile.TemporaryDirectory(dir=folder) as tmp_dir:
        if archive_name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp_dir)
        else:
            with tarfile.open(archive) as t:
                t.extractall(tmp_dir, filter="data")
        for member, name in source["members"].items():
            src = Path(tmp_dir) / member
            if not src.exists():
                raise DataFileError(f"{archive}: no {member} inside; the archive's layout changed.")
            target = folder / name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(src, target)
            if target.is_file() and name in KNOWN_SHA256:
                verify_file(target)
    return folder
