#!/usr/bin/env python
"""Build data/bible_es_gen_john.tsv: Genesis and John in Spanish (Reina-Valera 1909), verse-aligned with
data/bible_kjv_web.tsv by reference (lesson 01's multilingual fertility), offline-reproducibly.

    python data/build_bible_es.py            # verify the committed file; rebuild it if missing
    python data/build_bible_es.py --force    # download the package again and rebuild

Source: Debian ``sword-text-sparv`` 2.60-1, SWORD module ``spaRV1909eb`` ("Santa Biblia - Reina Valera
1909", public domain: ``DistributionLicense=Public Domain`` in its ``.conf``; Debian ``copyright``:
"This work is not copyrighted. It is in the Public Domain."). Versification KJV, so references match
the KJV column of data/bible_kjv_web.tsv. Steps as in data/build_bible.py (apt-get download, dpkg -x into
data/cache/, PyPI ``pysword`` 0.2.8, the same OSIS cleaning), for two books only::

    ref<TAB>es          e.g.  Gen 1:3<TAB>Y dijo Dios: Sea la luz: y fué la luz.

sha256 and counts go into data/bible_manifest.json under this file's name.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import build_bible  # data/build_bible.py: the package fetch and the OSIS cleaning, shared

OUT = build_bible.DATA_DIR / "bible_es_gen_john.tsv"
PACKAGE, VERSION, MODULE = "sword-text-sparv", "2.60-1", "spaRV1909eb"
BOOKS = ("Gen", "John")


def read_books(root: Path, module: str, books: tuple[str, ...]) -> dict[str, str]:
    """{"Gen 1:1": text, ...} for every non-empty verse of ``books``, in canonical order."""
    from pysword.modules import SwordModules  # build-time dependency (extra "data")

    modules = SwordModules(str(root / "usr/share/sword"))
    modules.parse_modules()
    bible = modules.get_bible_from_module(module)
    bible._decompressed_text = functools.lru_cache(maxsize=8)(bible._decompressed_text)
    by_name = {book.osis_name: book for group in bible.get_structure().get_books().values() for book in group}
    verses: dict[str, str] = {}
    for name in books:
        for chapter, n_verses in enumerate(by_name[name].chapter_lengths, start=1):
            texts = list(bible.get_iter(books=[name], chapters=[chapter], clean=False))
            if len(texts) != n_verses:
                raise RuntimeError(f"{module} {name} {chapter}: {len(texts)} texts for {n_verses} verses")
            for verse, raw in enumerate(texts, start=1):
                text = build_bible.clean_osis(raw)
                if text:
                    if "\t" in text or "\n" in text:
                        raise ValueError(f"{name} {chapter}:{verse}: a tab or newline survived cleaning")
                    verses[f"{name} {chapter}:{verse}"] = text
    return verses


def build(force: bool = False) -> dict:
    manifest_path = build_bible.MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    entry = manifest.get(OUT.name)
    if OUT.exists() and entry and not force:
        digest = build_bible.sha256_file(OUT)
        if digest != entry["sha256"]:
            raise SystemExit(f"[data] {OUT.name}: checksum mismatch ({digest} != {entry['sha256']}); "
                             "run 'python data/build_bible_es.py --force' to rebuild it.")
        print(f"[data] {OUT.name}: ok ({entry['verses']:,} verses, sha256 {digest[:12]}...)")
        return manifest
    build_bible.PACKAGES.setdefault(PACKAGE, {"version": VERSION, "module": MODULE})
    root = build_bible.fetch_package(PACKAGE, force=force)
    verses = read_books(root, MODULE, BOOKS)
    OUT.write_text("ref\tes\n" + "".join(f"{ref}\t{text}\n" for ref, text in verses.items()), encoding="utf-8")
    manifest[OUT.name] = {
        "title": "Genesis and John, Reina-Valera 1909 (Spanish; markup removed), by KJV verse reference; public domain",
        "source": f"Debian {PACKAGE} {VERSION} (SWORD module {MODULE})",
        "deb_sha256": {PACKAGE: (root / ".deb-sha256").read_text().split()[0]},
        "bytes": OUT.stat().st_size,
        "sha256": build_bible.sha256_file(OUT),
        "books": list(BOOKS),
        "verses": len(verses),
        "words": sum(len(t.split()) for t in verses.values()),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"[data] {OUT.name}: built, {json.dumps(manifest[OUT.name])}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="download the package again and rebuild")
    build(force=parser.parse_args(argv).force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
