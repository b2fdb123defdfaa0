"""Readers for the plain-text corpora shipped in ``data/`` (built by ``data/build.py``).

File format (one file per source)::

    === <document id> ===          a document (a chapter) starts
    one sentence per line
                                   a blank line ends a paragraph

A corpus reads as documents -> paragraphs -> sentences:

>>> from bertcourse.data.corpora import load_corpus
>>> docs = load_corpus("austen")
>>> docs[0].id, docs[0].paragraphs[0][0]
('sense-and-sensibility/chapter-1', 'The family of Dashwood had long been settled in Sussex.')
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Iterator, Sequence

from bertcourse.errors import DataFileError

__all__ = ["Document", "CORPORA", "data_dir", "corpus_path", "load_corpus", "iter_documents",
           "sentences", "paragraphs", "corpus_stats", "split_documents"]

CORPORA = {"austen": "austen.txt", "moby_dick": "moby_dick.txt"}
BUILD_COMMAND = "make data   (or: python data/build.py)"


@dataclasses.dataclass(frozen=True)
class Document:
    """A chapter: an id such as ``emma/volume-i/chapter-iii`` and its paragraphs of sentences."""

    id: str
    paragraphs: tuple[tuple[str, ...], ...]

    @property
    def sentences(self) -> list[str]:
        return [s for para in self.paragraphs for s in para]

    @property
    def text(self) -> str:
        return "\n\n".join(" ".join(para) for para in self.paragraphs)

    @property
    def source(self) -> str:
        """The book: the first part of the id (``emma``, ``moby-dick``...)."""
        return self.id.split("/", 1)[0]


def data_dir() -> Path:
    """``$BERTCOURSE_DATA_DIR`` if set, else the repository's ``data/`` folder."""
    env = os.environ.get("BERTCOURSE_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data"


def corpus_path(name: str) -> Path:
    if name not in CORPORA:
        raise ValueError(f"Unknown corpus {name!r}. Available: {', '.join(CORPORA)}.")
    path = data_dir() / CORPORA[name]
    if not path.is_file():
        raise FileNotFoundError(f"Corpus file {path} is missing. Build it with: {BUILD_COMMAND}")
    return path


def iter_documents(name_or_path: str | os.PathLike) -> Iterator[Document]:
    """Stream documents from a corpus name (``austen``, ``moby_dick``) or a file in the same format."""
    name = os.fspath(name_or_path)
    if name in CORPORA:
        path = corpus_path(name)
    elif os.sep not in name and "." not in name:  # looks like a corpus name, not a file
        raise ValueError(f"Unknown corpus {name!r}. Available: {', '.join(CORPORA)} (or a path to a file "
                         "in the same format).")
    else:
        path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"Corpus file {path} is missing. Build the shipped corpora with: {BUILD_COMMAND}")
    doc_id: str | None = None
    paras: list[tuple[str, ...]] = []
    block: list[str] = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if line.startswith("=== ") and line.endswith(" ==="):
                if block:
                    paras.append(tuple(block))
                    block = []
                if doc_id is not None:
                    yield Document(doc_id, tuple(paras))
                doc_id, paras = line[4:-4].strip(), []
            elif not line.strip():
                if block:
                    paras.append(tuple(block))
                    block = []
            else:
                if doc_id is None:
                    raise DataFileError(f"{path}:{lineno}: text before the first '=== <id> ===' document header.")
                block.append(line.strip())
    if block:
        paras.append(tuple(block))
    if doc_id is not None:
        yield Document(doc_id, tuple(paras))


def load_corpus(*names: str) -> list[Document]:
    """All documents of one or more corpora, in file order (default: every shipped corpus)."""
    names = names or tuple(CORPORA)
    docs = [doc for name in names for doc in iter_documents(name)]
    if not docs:
        raise DataFileError(f"Corpus {names} is empty. Rebuild it with: {BUILD_COMMAND}")
    return docs


def split_documents(documents: Sequence[Document], heldout_every: int = 10) -> tuple[list[Document], list[Document]]:
    """Deterministic train / held-out split by document: every ``heldout_every``-th chapter is held out.

    Splitting by chapter (not by sentence) keeps held-out text truly unseen.
    """
    if heldout_every < 2:
        raise ValueError("heldout_every must be >= 2.")
    train = [d for i, d in enumerate(documents) if i % heldout_every != heldout_every - 1]
    heldout = [d for i, d in enumerate(documents) if i % heldout_every == heldout_every - 1]
    return train, heldout


def sentences(*names: str) -> list[str]:
    """Every sentence of the named corpora (default: all), in order."""
    return [s for doc in load_corpus(*names) for s in doc.sentences]


def paragraphs(*names: str) -> list[str]:
    """Every paragraph (sentences joined by a space) of the named corpora."""
    return [" ".join(p) for doc in load_corpus(*names) for p in doc.paragraphs]


def corpus_stats(*names: str) -> dict[str, dict[str, int]]:
    """Counts per corpus: documents, paragraphs, sentences, words (whitespace-separated)."""
    out = {}
    for name in names or tuple(CORPORA):
        docs = load_corpus(name)
        out[name] = {
            "documents": len(docs),
            "paragraphs": sum(len(d.paragraphs) for d in docs),
            "sentences": sum(len(p) for d in docs for p in d.paragraphs),
            "words": sum(len(s.split()) for d in docs for s in d.sentences),
        }
    return out


def manifest() -> dict:
    """``data/manifest.json``: checksums and counts written by the build."""
    path = data_dir() / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing. Build it with: {BUILD_COMMAND}")
    return json.loads(path.read_text())
