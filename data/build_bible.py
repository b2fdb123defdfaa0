#!/usr/bin/env python
"""Build data/bible_kjv_web.tsv: the same verses in two English translations (lesson 12), offline-reproducibly.

    python data/build_bible.py            # verify the committed file; rebuild it if missing
    python data/build_bible.py --force    # download the packages again and rebuild

Sources (see data/README.md for licenses):
  * Debian ``sword-text-kjv`` 14.3-1: the King James Version (1769 text), SWORD module ``engKJV2006eb``.
  * Debian ``sword-text-web`` 426.0-1: the World English Bible, SWORD module ``engWEB2015eb``.

Steps: ``apt-get download`` both .deb files, ``dpkg -x`` them into data/cache/, read every verse of
both modules with PyPI ``pysword`` 0.2.8 (the SWORD "ztext" format), strip the OSIS markup
(footnotes, section/psalm titles and the KJV's ¶ paragraph marks dropped; words kept), and write one line per verse reference
present and non-empty in both, in canonical order::

    ref<TAB>kjv<TAB>web          e.g.  Gen 1:3<TAB>And God said, Let there be light: ...<TAB>God said, “Let there be light,” ...

then record sha256 and counts in data/bible_manifest.json. The WEB column is the World English Bible
text with its markup and footnotes removed: a modified text, so (as the WEB's trademark note asks) it is
called "web" here, not "World English Bible".
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import html
import json
import re
import subprocess
import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
CACHE_DIR = DATA_DIR / "cache"
OUT = DATA_DIR / "bible_kjv_web.tsv"
MANIFEST = DATA_DIR / "bible_manifest.json"

PACKAGES = {
    "sword-text-kjv": {"version": "14.3-1", "module": "engKJV2006eb"},
    "sword-text-web": {"version": "426.0-1", "module": "engWEB2015eb"},
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
    debs = sorted(CACHE_DIR.glob(f"{name}_{spec['version']}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download produced no .deb for {name}; run 'apt-get update' first.")
    root.mkdir(exist_ok=True)
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(root)], check=True)
    (root / ".deb-sha256").write_text(sha256_file(debs[-1]) + "  " + debs[-1].name + "\n")
    marker.touch()
    return root


# ----------------------------------------------------------------------------- reading
_NOTE = re.compile(r"<note\b[^>]*>.*?</note>", re.S)
_TITLE = re.compile(r"<title\b[^>]*>.*?</title>", re.S)
_TAG = re.compile(r"<[^>]+>")
_GAP = "\x01"


def clean_osis(raw: str) -> str:
    """OSIS verse markup -> plain text: footnotes and titles dropped, word tags unwrapped, spaces squeezed.

    >>> clean_osis('<w lemma="strong:H0430">God</w><note placement="foot">Elohim.</note><w>created</w> the earth. ')
    'God created the earth.'
    >>> clean_osis('the <w>waters</w><note>x</note>, and')
    'the waters, and'
    >>> clean_osis('\u00b6 She conceived,<note>n</note>and bore')
    'She conceived, and bore'
    """
    text = _NOTE.sub(_GAP, raw)
    text = _TITLE.sub(" ", text)
    text = _TAG.sub("", text)
    text = html.unescape(text)
    text = re.sub(rf"(?<=[\w,;:.!?’”)]){_GAP}(?=[\w‘“(])", " ", text).replace(_GAP, "")
    text = text.replace("\u00b6", " ")  # the KJV module's pilcrow paragraph marks
    return " ".join(text.split())


def read_module(root: Path, module: str) -> dict[str, str]:
    """{"Gen 1:1": text, ...} for every non-empty verse of a SWORD module, in canonical order."""
    from pysword.modules import SwordModules  # build-time dependency (extra "data")

    modules = SwordModules(str(root / "usr/share/sword"))
    modules.parse_modules()
    bible = modules.get_bible_from_module(module)
    # pysword 0.2.8 decompresses a whole book block for every verse; cache the last few blocks.
    bible._decompressed_text = functools.lru_cache(maxsize=8)(bible._decompressed_text)
    verses: dict[str, str] = {}
    for testament, books in bible.get_structure().get_books().items():
        for book in books:
            for chapter, n_verses in enumerate(book.chapter_lengths, start=1):
                texts = list(bible.get_iter(books=[book.osis_name], chapters=[chapter], clean=False))
                if len(texts) != n_verses:
                    raise RuntimeError(f"{module} {book.osis_name} {chapter}: {len(texts)} texts for {n_verses} verses")
                for verse, raw in enumerate(texts, start=1):
                    text = clean_osis(raw)
                    if text:
                        verses[f"{book.osis_name} {chapter}:{verse}"] = text
    return verses


def write_pairs(path: Path, kjv: dict[str, str], web: dict[str, str]) -> dict:
    refs = [ref for ref in kjv if ref in web]  # KJV's canonical order; the WEB's extra books are dropped
    lines = ["ref\tkjv\tweb\n"]
    for ref in refs:
        a, b = kjv[ref], web[ref]
        if "\t" in a + b or "\n" in a + b:
            raise ValueError(f"{ref}: a tab or newline survived cleaning")
        lines.append(f"{ref}\t{a}\t{b}\n")
    path.write_text("".join(lines), encoding="utf-8")
    books = {ref.rsplit(" ", 1)[0] for ref in refs}
    return {
        "pairs": len(refs),
        "books": len(books),
        "chapters": len({ref.split(":")[0] for ref in refs}),
        "kjv_verses": len(kjv),
        "web_verses": len(web),
        "kjv_words": sum(len(kjv[r].split()) for r in refs),
        "web_words": sum(len(web[r].split()) for r in refs),
    }


def build(force: bool = False) -> dict:
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    entry = manifest.get(OUT.name)
    if OUT.exists() and entry and not force:
        digest = sha256_file(OUT)
        if digest != entry["sha256"]:
            raise SystemExit(f"[data] {OUT.name}: checksum mismatch ({digest} != {entry['sha256']}); "
                             "run 'python data/build_bible.py --force' to rebuild it.")
        print(f"[data] {OUT.name}: ok ({entry['pairs']:,} verse pairs, sha256 {digest[:12]}...)")
        return manifest
    roots = {name: fetch_package(name, force=force) for name in PACKAGES}
    kjv = read_module(roots["sword-text-kjv"], PACKAGES["sword-text-kjv"]["module"])
    web = read_module(roots["sword-text-web"], PACKAGES["sword-text-web"]["module"])
    stats = write_pairs(OUT, kjv, web)
    manifest[OUT.name] = {
        "title": "KJV and WEB (markup removed), aligned by verse reference; public domain",
        "source": ", ".join(f"Debian {n} {s['version']} (SWORD module {s['module']})" for n, s in PACKAGES.items()),
        "deb_sha256": {n: (roots[n] / ".deb-sha256").read_text().split()[0] for n in PACKAGES},
        "bytes": OUT.stat().st_size,
        "sha256": sha256_file(OUT),
        **stats,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"[data] {OUT.name}: built, {json.dumps(manifest[OUT.name])}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="download the packages again and rebuild")
    args = parser.parse_args(argv)
    build(force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
