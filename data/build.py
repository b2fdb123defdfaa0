#!/usr/bin/env python
"""Build the course corpus in data/ from Debian packages, offline-reproducibly.

    python data/build.py            # verify the committed files; rebuild any that are missing
    python data/build.py --force    # download the packages again and rebuild everything

Sources (see data/README.md for licenses):
  * Debian ``r-cran-janeaustenr`` 1.0.0-1: Jane Austen's six novels, one R string per printed line.
  * Debian ``r-cran-tokenizers`` 0.3.0-1: Herman Melville's *Moby Dick* (Project Gutenberg #2701) as one string.

Steps: ``apt-get download`` the .deb, ``dpkg -x`` it into data/cache/, read the R lazy-load
database (``Rdata.rdx``/``Rdata.rdb``) with PyPI ``rdata``, cut the text into chapters
(= documents), re-join hard-wrapped lines into paragraphs, drop italics underscores and the
Gutenberg boilerplate, split paragraphs into sentences with PyPI ``pysbd``, and write

    === <document id> ===
    one sentence per line
    (a blank line between paragraphs)

then record sha256 and statistics in data/manifest.json.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import json
import lzma
import re
import struct
import subprocess
import sys
import unicodedata
import warnings
import zlib
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
CACHE_DIR = DATA_DIR / "cache"
MANIFEST = DATA_DIR / "manifest.json"

PACKAGES = {
    "r-cran-janeaustenr": {"version": "1.0.0-1", "rdata": "usr/lib/R/site-library/janeaustenr/data/Rdata"},
    "r-cran-tokenizers": {"version": "0.3.0-1", "rdata": "usr/lib/R/site-library/tokenizers/data/Rdata"},
}
AUSTEN_NOVELS = {  # R object name -> document id prefix, in publication order
    "sensesensibility": "sense-and-sensibility",
    "prideprejudice": "pride-and-prejudice",
    "mansfieldpark": "mansfield-park",
    "emma": "emma",
    "northangerabbey": "northanger-abbey",
    "persuasion": "persuasion",
}


# ----------------------------------------------------------------------------- packages
def fetch_package(name: str, force: bool = False) -> Path:
    """apt-get download + dpkg -x into data/cache/<name>/; returns the extraction root."""
    spec = PACKAGES[name]
    root = CACHE_DIR / name
    marker = root / ".extracted"
    if marker.exists() and not force:
        return root
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    print(f"[data] apt-get download {name}={spec['version']}", flush=True)
    subprocess.run(["apt-get", "download", f"{name}={spec['version']}"], cwd=CACHE_DIR, check=True,
                   stdout=subprocess.DEVNULL)
    debs = sorted(CACHE_DIR.glob(f"{name}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download produced no .deb for {name}; run 'apt-get update' first.")
    root.mkdir(exist_ok=True)
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(root)], check=True)
    (root / ".deb-sha256").write_text(sha256_file(debs[-1]) + "  " + debs[-1].name + "\n")
    marker.touch()
    return root


def _decompress(buf: bytes, compressed) -> bytes:
    size = struct.unpack(">I", buf[:4])[0]
    if compressed in (True, 1):
        out = zlib.decompress(buf[4:])
    else:  # R's type byte: Z = raw LZMA2, 2 = bzip2, 0 = none
        kind, body = buf[4:5], buf[5:]
        if kind == b"Z":
            out = lzma.decompress(body, format=lzma.FORMAT_RAW,
                                  filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}])
        elif kind == b"2":
            out = bz2.decompress(body)
        else:
            out = body
    if len(out) != size:
        raise ValueError("R lazy-load blob has the wrong length")
    return out


def read_r_object(prefix: Path, name: str):
    """One object from an R lazy-load database (Rdata.rdx index + Rdata.rdb blobs)."""
    import rdata  # build-time dependency (extra "data")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = rdata.read_rds(str(prefix) + ".rdx")
        offset, length = (int(v) for v in index["variables"][name])
        with open(str(prefix) + ".rdb", "rb") as f:
            f.seek(offset)
            blob = f.read(length)
        parsed = rdata.parser.parse_data(_decompress(blob, index["compressed"][0]), expand_altrep=True)
        return rdata.conversion.convert(parsed)


# ----------------------------------------------------------------------------- cleaning
_AUSTEN_CHAPTER = re.compile(r"^\s*chapter\s+([ivxlc]+|\d+)\.?\s*$", re.IGNORECASE)
_AUSTEN_VOLUME = re.compile(r"^\s*volume\s+([ivxlc]+|\d+)\.?\s*$", re.IGNORECASE)
_MOBY_CHAPTER = re.compile(r"^CHAPTER (\d+)\. ")
_ENDINGS = {"THE END", "FINIS", "THE END."}


def clean_paragraph(lines: list[str]) -> str:
    """Re-join hard-wrapped lines; drop _italics_ underscores; NFC; squeeze spaces."""
    text = " ".join(line.strip() for line in lines)
    text = re.sub(r"_([^_]+)_", r"\1", text).replace("_", "")
    text = unicodedata.normalize("NFC", text)
    return re.sub(r"\s+", " ", text).strip()


def paragraphs_of(lines: list[str]) -> list[str]:
    out, block = [], []
    for line in lines + [""]:
        if line.strip():
            block.append(line)
        elif block:
            para = clean_paragraph(block)
            if para and para.upper() not in _ENDINGS:
                out.append(para)
            block = []
    return out


def austen_documents(root: Path) -> list[tuple[str, list[str]]]:
    """(doc id, paragraphs) for every chapter of the six novels."""
    prefix = root / PACKAGES["r-cran-janeaustenr"]["rdata"]
    docs = []
    for obj, slug in AUSTEN_NOVELS.items():
        lines = [str(x) for x in read_r_object(prefix, obj)]
        volume, current, body = None, None, []
        for line in lines + ["CHAPTER END"]:
            vol = _AUSTEN_VOLUME.match(line)
            chap = _AUSTEN_CHAPTER.match(line) or line == "CHAPTER END"
            if vol:
                volume = vol.group(1).lower()
                continue
            if chap:
                if current is not None:
                    paras = paragraphs_of(body)
                    if paras:
                        docs.append((current, paras))
                number = line.split()[-1].rstrip(".").lower()
                current = f"{slug}/{'volume-' + volume + '/' if volume else ''}chapter-{number}"
                body = []
            elif current is not None:  # text before the first chapter is the title page
                body.append(line)
    return docs


def moby_dick_documents(root: Path) -> list[tuple[str, list[str]]]:
    prefix = root / PACKAGES["r-cran-tokenizers"]["rdata"]
    text = str(read_r_object(prefix, "mobydick")[0]).lstrip("\ufeff").replace("\r\n", "\n")
    start = text.index("CHAPTER 1. Loomings.")
    end = text.index("End of Project Gutenberg's Moby Dick")
    lines = text[start:end].split("\n")
    docs, current, body = [], None, []
    for line in lines + ["CHAPTER 0. END"]:
        chap = _MOBY_CHAPTER.match(line)
        if chap or line.strip() == "Epilogue":
            if current is not None:
                docs.append((current, paragraphs_of(body)))
            current = f"moby-dick/chapter-{chap.group(1)}" if chap else "moby-dick/epilogue"
            body = []
        else:
            body.append(line)
    return [(d, p) for d, p in docs if p]


_ABBREVIATIONS = ("Mr.", "Mrs.", "Dr.", "St.", "Messrs.", "Col.", "Capt.", "Esq.", "Rev.", "Sir.", "Mt.")
# End of sentence: . ! ? (optionally closing quotes) then space, then an opening quote or capital.
_BOUNDARY = re.compile(r"(?<=[.!?])(['\"’”]?)\s+(?=['\"‘“]?[A-Z])")
LONG_SENTENCE_WORDS = 60


def resplit_long(sentence: str) -> list[str]:
    """pysbd keeps a whole quoted speech (or letter) as one "sentence"; split those at clear
    sentence ends that are not after a title abbreviation such as "Mr."."""
    if len(sentence.split()) <= LONG_SENTENCE_WORDS:
        return [sentence]
    out, start = [], 0
    for m in _BOUNDARY.finditer(sentence):
        end = m.start() + len(m.group(1))
        piece = sentence[start:end]
        if piece.rstrip().endswith(_ABBREVIATIONS) or len(piece.split()) < 3:
            continue
        out.append(piece.strip())
        start = m.end()
    out.append(sentence[start:].strip())
    return [s for s in out if s]


def split_sentences(paragraph: str, segmenter) -> list[str]:
    sents = [s.strip() for s in segmenter.segment(paragraph)]
    return [piece for s in sents if s for piece in resplit_long(s)]


def write_corpus(path: Path, documents: list[tuple[str, list[str]]]) -> dict:
    import pysbd
    from tqdm import tqdm

    segmenter = pysbd.Segmenter(language="en", clean=False)
    n_par = n_sent = n_words = 0
    chunks = []
    for doc_id, paras in tqdm(documents, desc=f"[data] {path.name}", unit="doc"):
        chunks.append(f"=== {doc_id} ===\n")
        blocks = []
        for para in paras:
            sents = split_sentences(para, segmenter)
            blocks.append("\n".join(sents) + "\n")
            n_par += 1
            n_sent += len(sents)
            n_words += sum(len(x.split()) for x in sents)
        chunks.append("\n".join(blocks) + "\n")
    path.write_text("".join(chunks), encoding="utf-8")
    return {"documents": len(documents), "paragraphs": n_par, "sentences": n_sent, "words": n_words}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- main
TARGETS = {
    "austen.txt": ("r-cran-janeaustenr", austen_documents,
                   "Jane Austen, six novels (1811-1817), public domain"),
    "moby_dick.txt": ("r-cran-tokenizers", moby_dick_documents,
                      "Herman Melville, Moby Dick (1851), Project Gutenberg #2701, public domain"),
}


def build(force: bool = False) -> dict:
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    for name, (package, reader, title) in TARGETS.items():
        out = DATA_DIR / name
        entry = manifest.get(name)
        if out.exists() and entry and not force:
            digest = sha256_file(out)
            if digest != entry["sha256"]:
                raise SystemExit(f"[data] {name}: checksum mismatch ({digest} != {entry['sha256']}); "
                                 f"run 'python data/build.py --force' (or 'make data-rebuild') to rebuild it.")
            print(f"[data] {name}: ok ({entry['words']:,} words, sha256 {digest[:12]}...)")
            continue
        root = fetch_package(package, force=force)
        stats = write_corpus(out, reader(root))
        manifest[name] = {
            "title": title,
            "source": f"Debian {package} {PACKAGES[package]['version']}",
            "deb_sha256": (root / ".deb-sha256").read_text().split()[0],
            "bytes": out.stat().st_size,
            "sha256": sha256_file(out),
            **stats,
        }
        print(f"[data] {name}: built, {json.dumps(manifest[name])}")
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="download the packages again and rebuild")
    args = parser.parse_args(argv)
    build(force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
