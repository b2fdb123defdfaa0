"""The shipped corpora: counts asserted on the real files, the reader's format and errors."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bertcourse.data import corpora

ROOT = Path(__file__).resolve().parents[1]


def test_austen_counts():
    docs = corpora.load_corpus("austen")
    assert len(docs) == 269  # every "CHAPTER n" heading of the six novels
    books = {d.source for d in docs}
    assert books == {"sense-and-sensibility", "pride-and-prejudice", "mansfield-park", "emma",
                     "northanger-abbey", "persuasion"}
    stats = corpora.corpus_stats("austen")["austen"]
    assert stats == {"documents": 269, "paragraphs": 10003, "sentences": 27828, "words": 717211}
    # janeaustenr's own count is 717,537 words including titles and chapter headings
    assert abs(stats["words"] - 717_537) / 717_537 < 0.01


def test_moby_dick_counts_and_no_gutenberg_boilerplate():
    docs = corpora.load_corpus("moby_dick")
    assert docs[0].id == "moby-dick/chapter-1" and docs[-1].id == "moby-dick/epilogue"
    assert len(docs) == 136  # 135 chapters + epilogue
    assert docs[0].paragraphs[0][0] == "Call me Ishmael."
    text = "\n".join(d.text for d in docs)
    assert "Gutenberg" not in text and "*** START" not in text


def test_chapters_per_novel():
    docs = corpora.load_corpus("austen")
    per_book = {}
    for d in docs:
        per_book[d.source] = per_book.get(d.source, 0) + 1
    assert per_book == {"sense-and-sensibility": 50, "pride-and-prejudice": 61, "mansfield-park": 48,
                        "emma": 55, "northanger-abbey": 31, "persuasion": 24}
    emma = [d.id for d in docs if d.source == "emma"]
    assert emma[0] == "emma/volume-i/chapter-i" and emma[-1] == "emma/volume-iii/chapter-xix"


def test_sentences_are_clean():
    sents = corpora.sentences()
    assert len(sents) == 27828 + 8115
    assert all(s == s.strip() and s for s in sents)
    assert not any("_" in s for s in sents)  # italics markers removed
    assert not any(s.startswith("CHAPTER") for s in sents)
    assert max(len(s.split()) for s in sents) < 500  # quoted speeches re-split (pysbd alone: 1,492)


def test_manifest_checksums_match_files():
    manifest = corpora.manifest()
    assert set(manifest) == set(corpora.CORPORA.values())
    for name, entry in manifest.items():
        data = (ROOT / "data" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
    stats = corpora.corpus_stats()
    for key, fname in corpora.CORPORA.items():
        for field in ("documents", "paragraphs", "sentences", "words"):
            assert stats[key][field] == manifest[fname][field]


def test_build_script_verifies_committed_files():
    out = subprocess.run([sys.executable, str(ROOT / "data" / "build.py")], capture_output=True, text=True, check=True)
    assert "austen.txt: ok" in out.stdout and "moby_dick.txt: ok" in out.stdout


def test_data_readme_accounts_for_every_file():
    readme = (ROOT / "data" / "README.md").read_text()
    for path in sorted((ROOT / "data").iterdir()):
        if path.name in ("README.md", "cache", "__pycache__") or path.name.startswith("."):
            continue
        if path.is_dir():  # a folder of files (sentiment/, squad/, wnut17/): each file by its path
            for inner in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
                name = inner.relative_to(ROOT / "data").as_posix()
                assert f"`{name}`" in readme, f"data/README.md does not describe {name}"
        else:
            assert f"`{path.name}`" in readme, f"data/README.md does not describe {path.name}"


def test_heldout_split_is_by_document_and_deterministic():
    docs = corpora.load_corpus("austen")
    train, heldout = corpora.split_documents(docs)
    assert len(train) + len(heldout) == len(docs) and len(heldout) == 26
    assert not {d.id for d in train} & {d.id for d in heldout}
    assert corpora.split_documents(docs)[1] == heldout
    with pytest.raises(ValueError):
        corpora.split_documents(docs, heldout_every=1)


def test_reader_format(tmp_path):
    path = tmp_path / "mini.txt"
    path.write_text("=== a/1 ===\nOne.\nTwo.\n\nThree.\n\n=== b/1 ===\nFour.\n")
    docs = list(corpora.iter_documents(path))
    assert [d.id for d in docs] == ["a/1", "b/1"]
    assert docs[0].paragraphs == (("One.", "Two."), ("Three.",))
    assert docs[0].text == "One. Two.\n\nThree."


def test_missing_file_names_the_build_command(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTCOURSE_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make data"):
        corpora.load_corpus("austen")
    with pytest.raises(ValueError, match="Available: austen, moby_dick"):
        corpora.load_corpus("shakespeare")


def test_text_before_header_is_an_error(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("orphan sentence\n=== a ===\nx\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        list(corpora.iter_documents(path))


def test_build_helpers():
    sys.path.insert(0, str(ROOT / "data"))
    try:
        import build
    finally:
        sys.path.pop(0)
    assert build.clean_paragraph(["Between _them_ it was", "  more the intimacy."]) == \
        "Between them it was more the intimacy."
    assert build.paragraphs_of(["a b", "c", "", "", "THE END", "", "d"]) == ["a b c", "d"]
    assert build._AUSTEN_CHAPTER.match("CHAPTER XLVII") and build._AUSTEN_CHAPTER.match("Chapter 12")
    assert not build._AUSTEN_CHAPTER.match("Chapter the first was long")


def test_long_quoted_speech_is_resplit():
    sys.path.insert(0, str(ROOT / "data"))
    try:
        import build
    finally:
        sys.path.pop(0)
    speech = ('"Oh! my mother\'s spectacles. So very obliging of Mr. Frank Churchill! \'Oh!\' said he, '
              + "'I do think I can fasten the rivet.' " + "Indeed I must say that it was all very fine. " * 8)
    pieces = build.resplit_long(speech)
    assert pieces[0] == '"Oh! my mother\'s spectacles.'
    assert not any(p.endswith("Mr.") for p in pieces)  # never split after a title
    assert "".join(pieces).replace(" ", "") == speech.replace(" ", "")  # nothing lost
    short = "A short sentence. Another one."
    assert build.resplit_long(short) == [short]
