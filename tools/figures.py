#!/usr/bin/env python
"""Regenerate the course's headline figures, stamped with the date, the machine and its load.

    python tools/figures.py                    # print the table (test count + figures read from the lessons)
    python tools/figures.py --bench            # also run the tokenizer benchmark (a few minutes)
    python tools/figures.py --bench --write    # and replace the "## Headline figures" section of bench/README.md

Why a script: figures typed into a README go stale, and a speed ratio measured while other jobs share
the cores says more about the load than about the code (Hugging Face's Rust thread pool loses most on a
busy machine, which flatters the in-graph tokenizer). Every run records the load average before and
after; a benchmark run at a load average above half the core count is marked "high load: rerun" and
should not become a headline.

Sources:
  * test count: ``pytest --collect-only -q tests/`` (the notebooks, run by nbval, are counted apart);
  * parity and quality figures: read from the committed, executed lessons (``notebooks/*.ipynb``), so they
    are the numbers a learner sees, from the last ``make course``;
  * benchmark ratios: ``bench/tokenizer_speed.py`` run now (``--bench``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "bench" / "README.md"
SECTION = "## Headline figures"

# (lesson, what, regex over the lesson's printed output; group 1 is the figure)
LESSON_FIGURES = [
    ("01_wordpiece", "in-graph tokenizer = pure Python (Austen sentences)", r"identical ids for [\d,]+ \(([\d.]+%)\)"),
    ("03_self_attention", "attention = keras.layers.MultiHeadAttention (<= 1e-5)", r"max \|ours - keras\| <= 1e-5: (\w+)"),
    ("05_real_weights", "MiniLM: ours vs transformers, max abs diff", r"measured: max \|diff\| = ([\d.e+-]+)"),
    ("05_real_weights", "MiniLM: ours vs transformers, min cosine", r"min cosine = ([\d.]+)"),
    ("07_pretraining", "lesson-07 BERT held-out MLM accuracy", r"BERT \w+ \(ours\)\s+([\d.]+%)"),
    ("07_pretraining", "unigram baseline held-out MLM accuracy", r"unigram baseline\s+([\d.]+%)"),
    ("07_pretraining", "verses, 10,000 steps: masked LM held-out accuracy", r"masked LM \(BERT\)\s+everything, both sides\s+([\d.]+%)"),
    ("07_pretraining", "verses: both-neighbour counts, same masks", r"both-neighbours counts \(back-off\)\s+1 word each side\s+([\d.]+%)"),
    ("07_pretraining", "verses, 10,000 steps: left-to-right model, same masks", r"left-to-right model \(causal LM\)\s+everything left\s+([\d.]+%)"),
    ("11_question_answering", "held-out SQuAD dev articles: MiniLM F1, mean +/- std over seeds (bench/qa.py)", r"bench: MiniLM mean \+/- std:\s+EM\s+[\d.]+ \+/- [\d.]+\s+F1\s+([\d.]+ \+/- [\d.]+)"),
    ("11_question_answering", "held-out SQuAD dev articles: lexical baseline F1 (bench/qa.py)", r"bench: lexical baseline:\s+EM\s+[\d.]+\s+F1\s+([\d.]+)"),
    ("12_similarity_and_search", "verse retrieval recall@1, MiniLM mean pooling", r"MiniLM mean pooling\s+([\d.]+)"),
    ("12_similarity_and_search", "verse retrieval recall@1, BM25", r"BM25 \(k1=[\d.]+, b=[\d.]+\)\s+([\d.]+)"),
]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def load() -> float:
    return os.getloadavg()[0]


def high_load(value: float) -> bool:
    return value > (os.cpu_count() or 1) / 2


def test_count() -> str:
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/"],
                          cwd=ROOT, capture_output=True, text=True)
    found = re.search(r"(\d+) tests? collected", proc.stdout) or re.search(r"^(\d+) tests?", proc.stdout, re.M)
    if not found:
        return "? (pytest --collect-only failed: " + (proc.stdout + proc.stderr).strip().splitlines()[-1][:80] + ")"
    notebooks = len(sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    return f"{int(found.group(1)):,} tests + {notebooks} notebooks (nbval)"


def lesson_output(stem: str) -> str:
    path = ROOT / "notebooks" / f"{stem}.ipynb"
    if not path.is_file():
        return ""
    nb = json.loads(path.read_text(encoding="utf-8"))
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def lesson_figures() -> list[tuple[str, str, str]]:
    rows, cache = [], {}
    for stem, what, pattern in LESSON_FIGURES:
        text = cache.setdefault(stem, lesson_output(stem))
        found = re.search(pattern, text)
        rows.append((what, found.group(1) if found else "not found", f"lesson {stem[:2]}"))
    return rows


def tokenizer_bench() -> list[tuple[str, str, str]]:
    before = load()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "tokenizer_speed.py")], cwd=ROOT,
                          capture_output=True, text=True)
    after = load()
    note = f"bench/tokenizer_speed.py, load {before:.1f} -> {after:.1f}"
    if high_load(max(before, after)):
        note += ": high load: rerun"
    rows = []
    for label, pattern in (("fast (in-graph) tokenizer vs Hugging Face tokenizers", r"fast vs HF: ([\d.]+x)"),
                           ("pure-Python tokenizer vs the original BERT tokenizer", r"pure vs the original BERT Python tokenizer: ([\d.]+x)")):
        found = re.search(pattern, proc.stdout)
        rows.append((label, found.group(1) if found else f"failed (exit {proc.returncode})", note))
    return rows


def table(rows, stamp: str) -> str:
    lines = [SECTION, "", f"Regenerated by `python tools/figures.py{' --bench' if any('bench/' in r[2] for r in rows) else ''}` "
             f"({stamp}). Numbers from lessons come from the committed notebooks; benchmark ratios are measured by "
             "the run itself, and one made at a load average above half the core count is marked for a rerun.", "",
             "| figure | value | source |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    if not any("bench/" in r[2] for r in rows):
        lines += ["", "No benchmark was run for this table. The speed ratios in the sections below were measured at the "
                  "load averages they state (up to 7-10); issue #19's review measured the same scripts on an idle "
                  "machine at about 4x (in-graph tokenizer vs Hugging Face) and 1.02-1.11x (sentence encoder vs "
                  "transformers + torch). Quote a ratio only from `python tools/figures.py --bench` (or the "
                  "benchmark itself) at a load average below half the core count."]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    if SECTION in readme:
        start = readme.index(SECTION)
        nxt = readme.find("\n## ", start + len(SECTION))
        readme = readme[:start] + text + ("\n" + readme[nxt + 1:] if nxt >= 0 else "")
    else:  # after the title paragraph
        first = readme.find("\n## ")
        readme = readme[:first + 1] + text + "\n" + readme[first + 1:] if first >= 0 else readme + "\n" + text
    README.write_text(readme, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", action="store_true", help="also run the tokenizer benchmark")
    parser.add_argument("--no-tests", action="store_true", help="skip the test count (pytest --collect-only)")
    parser.add_argument("--write", action="store_true", help=f"replace the '{SECTION}' section of bench/README.md")
    args = parser.parse_args(argv)
    start_load = load()
    rows = []
    if not args.no_tests:
        rows.append(("test count", test_count(), "pytest --collect-only"))
    rows += lesson_figures()
    if args.bench:
        rows += tokenizer_bench()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    stamp = f"{now}; {machine()}; load average {start_load:.1f} at start, {load():.1f} at end"
    text = table(rows, stamp)
    print(text)
    if args.write:
        write_section(text)
        print(f"[figures] wrote the '{SECTION}' section of {README.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
