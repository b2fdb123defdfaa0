"""The KJV / WEB verse pairs of ``data/bible_kjv_web.tsv`` (lesson 12's retrieval task).

The same 31,095 verses in two public-domain English translations, aligned by reference
(``Gen 1:3``): the King James Version (1769) and the World English Bible with its markup and
footnotes removed (a modified text, so it is called "web" here, not "World English Bible").
Built from Debian ``sword-text-kjv`` / ``sword-text-web`` by ``python data/build_bible.py``.

>>> pairs = load_verse_pairs(books=["Gen"])
>>> ref, kjv, web = pairs[2]
>>> len(pairs), ref, kjv
(1533, 'Gen 1:3', 'And God said, Let there be light: and there was light.')
>>> web
'God said, “Let there be light,” and there was light.'
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

from bertcourse.data.corpora import data_dir
from bertcourse.errors import DataFileError

__all__ = ["load_verse_pairs", "split_verse_chapters", "bible_path", "FILENAME", "COLUMNS"]

FILENAME = "bible_kjv_web.tsv"
COLUMNS = ("ref", "kjv", "web")


def bible_path() -> Path:
    """Where the verse pairs live: ``<data dir>/bible_kjv_web.tsv`` (``$BERTCOURSE_DATA_DIR`` or ``data/``)."""
    return data_dir() / FILENAME


def load_verse_pairs(path: str | os.PathLike | None = None, books: list[str] | None = None
                     ) -> list[tuple[str, str, str]]:
    """Every ``(ref, kjv, web)`` triple in canonical order (``books``: keep only these OSIS book names,
    e.g. ``["Gen", "John"]``).

    Raises FileNotFoundError naming ``python data/build_bible.py`` if the file has not been built, and
    :class:`bertcourse.errors.DataFileError` (file and line) for a malformed one.
    """
    path = Path(path) if path is not None else bible_path()
    if not path.is_file():
        raise FileNotFoundError(f"No verse pairs at {str(path)!r}. Build them (Debian packages, offline after "
                                "download) with: python data/build_bible.py")
    keep = set(books) if books is not None else None
    out = []
    with open(path, encoding="utf-8", newline="\n") as f:
        header = f.readline().rstrip("\n").split("\t")
        if tuple(header) != COLUMNS:
            raise DataFileError(f"{path}: expected the header {'/'.join(COLUMNS)}, got {header}.")
        for n, line in enumerate(f, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3:
                raise DataFileError(f"{path}, line {n}: expected 3 tab-separated fields, got {len(fields)}.")
            if keep is None or fields[0].rsplit(" ", 1)[0] in keep:
                out.append((fields[0], fields[1], fields[2]))
    return out


def split_verse_chapters(heldout_every: int = 10, path: str | os.PathLike | None = None
                         ) -> tuple[list[list[str]], list[list[str]]]:
    """``(train, heldout)`` documents for pretraining: one document (a list of verses) per chapter per
    translation, KJV and web; every ``heldout_every``-th chapter is held out in BOTH translations, so a
    held-out chapter's other wording is never in training (lesson 07's long run, ``make pretrain-long``).

    >>> train, heldout = split_verse_chapters()
    >>> len(train), len(heldout), heldout[0][0][:40]
    (2142, 236, 'Now these are the generations of the son')
    """
    if heldout_every < 2:
        raise ValueError(f"heldout_every must be >= 2, got {heldout_every}.")
    chapters: dict[str, tuple[list[str], list[str]]] = collections.OrderedDict()
    for ref, kjv, web in load_verse_pairs(path):
        kjv_verses, web_verses = chapters.setdefault(ref.rsplit(":", 1)[0], ([], []))
        kjv_verses.append(kjv)
        web_verses.append(web)
    train: list[list[str]] = []
    heldout: list[list[str]] = []
    for i, (kjv_verses, web_verses) in enumerate(chapters.values()):
        (heldout if i % heldout_every == heldout_every - 1 else train).extend([kjv_verses, web_verses])
    return train, heldout
