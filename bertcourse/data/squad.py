"""SQuAD JSON files (v1.1 and v2.0), read strictly; the course's fixed article split; made-up null questions.

The format (Rajpurkar et al. 2016, 2018)::

    {"version": "1.1", "data": [{"title": ..., "paragraphs": [{"context": ...,
        "qas": [{"id": ..., "question": ..., "answers": [{"text": ..., "answer_start": <char>}],
                 "is_impossible": false, "plausible_answers": [...]}]}]}]}

``is_impossible`` and ``plausible_answers`` are SQuAD 2.0's (an unanswerable question has no
``answers``; ``plausible_answers`` are the spans a crowd worker wrote as distractors).

:func:`read_squad` checks every record and names the file, the article, the paragraph and the question
of the first problem (:class:`~bertcourse.errors.DataFileError`): a context or question that is not a
string, an empty question, an ``answer_start`` outside the context, answer text that is not the context
at ``answer_start``, a duplicate id, an answerable question without answers.

Where the data comes from (:func:`squad_path`): the course ships the official v1.1 dev file, byte for
byte, in ``data/squad/dev-v1.1.json`` (CC BY-SA 4.0). The train split (and v2.0) is not shipped:
with ``download=True`` it is fetched once from the official URL into a cache directory
(``$BERTCOURSE_CACHE/squad`` or ``~/.cache/bertcourse/squad``) and its sha256 checked.

The course trains on the dev file only, so it splits the 48 dev ARTICLES (never questions of one
article across the split): :data:`HELD_OUT_TITLES` (12 articles, made by :func:`held_out_titles`: the
sorted titles shuffled by ``random.Random(2016)``, the first 12) are scored, the other 36 train. Every
number measured on them is "held-out SQuAD dev articles", never a SQuAD dev score.

>>> data = read_squad(squad_path("dev-v1.1.json"))            # doctest: +SKIP
>>> data.counts()                                               # doctest: +SKIP
{'articles': 48, 'paragraphs': 2067, 'questions': 10570, 'answers': 34726}
>>> import json, pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.json"
>>> record = {"id": "q1", "question": "Where?", "answers": [{"text": "Bath", "answer_start": 7}]}
>>> _ = path.write_text(json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [
...     {"context": "She is Bath's.", "qas": [record]}]}]}))
>>> ex = read_squad(path).examples()[0]
>>> ex.question, ex.answers[0], ex.answer_texts
('Where?', SquadAnswer(text='Bath', start=7), ['Bath'])
>>> record["answers"][0]["answer_start"] = 3
>>> _ = path.write_text(json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [
...     {"context": "She is Bath's.", "qas": [record]}]}]}))
>>> read_squad(path)
Traceback (most recent call last):
...
bertcourse.errors.DataFileError: ...tiny.json: article 'T', paragraph 0, question 'q1': answer 0 'Bath' is not the context at answer_start=3 (the context there reads ' is '). ...
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Iterable, Sequence

from bertcourse.data.benchmarks import cache_dir as benchmark_cache_dir, sha256_of
from bertcourse.data.corpora import data_dir
from bertcourse.errors import DataFileError

__all__ = ["SquadAnswer", "QAExample", "SquadParagraph", "SquadArticle", "SquadData", "read_squad", "squad_path",
           "sha256_of", "verify_file", "cache_dir", "SQUAD_FILES", "HELD_OUT_TITLES", "held_out_titles",
           "split_articles", "make_unanswerable"]

_BASE_URL = "https://rajpurkar.github.io/SQuAD-explorer/dataset/"
# name -> (official URL, sha256, size in bytes): the published files, as every mirror lists them
SQUAD_FILES: dict[str, tuple[str, str, int]] = {
    "train-v1.1.json": (_BASE_URL + "train-v1.1.json",
                        "3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955", 30_288_272),
    "dev-v1.1.json": (_BASE_URL + "dev-v1.1.json",
                      "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9", 4_854_279),
    "train-v2.0.json": (_BASE_URL + "train-v2.0.json",
                        "68dcfbb971bd3e96d5b46c7177b16c1a4e7d4bdef19fb204502738552dede002", 42_123_633),
    "dev-v2.0.json": (_BASE_URL + "dev-v2.0.json",
                      "80a5225e94905956a6446d296ca1093975c4d3b3260f1d6c8f68bc2ab77182d8", 4_370_528),
}
SHIPPED = ("dev-v1.1.json",)   # in data/squad/ (CC BY-SA 4.0, see data/README.md)
SPLIT_SEED = 2016              # the year of the SQuAD paper: any fixed number would do, this one is written down
NUM_HELD_OUT = 12

# held_out_titles(dev-v1.1 titles) -- pinned here so the split never moves (a test recomputes it)
HELD_OUT_TITLES = ("Jacksonville,_Florida", "Apollo_program", "Southern_California", "Sky_(United_Kingdom)",
                   "Teacher", "Victoria_(Australia)", "European_Union_law", "Victoria_and_Albert_Museum",
                   "Steam_engine", "Imperialism", "Kenya", "Islamism")


@dataclasses.dataclass(frozen=True)
class SquadAnswer:
    """One gold (or plausible) answer: its text and the character where it starts in the context."""

    text: str
    start: int

    @property
    def end(self) -> int:
        """One past the answer's last character: ``context[start:end] == text``."""
        return self.start + len(self.text)


@dataclasses.dataclass(frozen=True)
class QAExample:
    """One question about one context (the unit a QA model reads and the metric scores)."""

    id: str
    question: str
    context: str
    answers: tuple[SquadAnswer, ...] = ()
    title: str = ""
    is_impossible: bool = False
    plausible_answers: tuple[SquadAnswer, ...] = ()

    @property
    def answer_texts(self) -> list[str]:
        """The gold answer strings (``[]`` for an unanswerable question), as the official metric takes them."""
        return [a.text for a in self.answers]


@dataclasses.dataclass(frozen=True)
class SquadParagraph:
    context: str
    examples: tuple[QAExample, ...]


@dataclasses.dataclass(frozen=True)
class SquadArticle:
    title: str
    paragraphs: tuple[SquadParagraph, ...]

    def examples(self) -> list[QAExample]:
        return [ex for p in self.paragraphs for ex in p.examples]


@dataclasses.dataclass(frozen=True)
class SquadData:
    """A whole SQuAD file: ``version`` and its articles in file order; ``source`` is the path read."""

    version: str
    articles: tuple[SquadArticle, ...]
    source: str = ""

    def examples(self, titles: Iterable[str] | None = None) -> list[QAExample]:
        """All questions in file order (only those of ``titles`` if given)."""
        keep = None if titles is None else set(titles)
        return [ex for a in self.articles if keep is None or a.title in keep for ex in a.examples()]

    @property
    def titles(self) -> list[str]:
        return [a.title for a in self.articles]

    def counts(self) -> dict[str, int]:
        """Articles, paragraphs, questions and gold answers (answers counted with repeats, as listed)."""
        examples = self.examples()
        return {"articles": len(self.articles), "paragraphs": sum(len(a.paragraphs) for a in self.articles),
                "questions": len(examples), "answers": sum(len(ex.answers) for ex in examples)}

    def subset(self, titles: Iterable[str]) -> "SquadData":
        """The same data with only the articles named (in file order)."""
        keep = set(titles)
        missing = keep - set(self.titles)
        if missing:
            raise KeyError(f"No article titled {sorted(missing)[:3]} in {self.source or 'this SQuAD data'}.")
        return dataclasses.replace(self, articles=tuple(a for a in self.articles if a.title in keep))


# ----------------------------------------------------------------------------- reading
def _answers(raw: Any, context: str, where: str, field: str) -> tuple[SquadAnswer, ...]:
    if not isinstance(raw, list):
        raise DataFileError(f"{where}: '{field}' must be a list, got {type(raw).__name__}.")
    out = []
    for i, ans in enumerate(raw):
        if not isinstance(ans, dict) or "text" not in ans or "answer_start" not in ans:
            raise DataFileError(f"{where}: {field[:-1]} {i} must be an object with 'text' and 'answer_start', "
                                f"got {ans!r:.80}.")
        text, start = ans["text"], ans["answer_start"]
        if not isinstance(text, str) or not text:
            raise DataFileError(f"{where}: {field[:-1]} {i} has no text (got {text!r:.40}).")
        if isinstance(start, bool) or not isinstance(start, int):
            raise DataFileError(f"{where}: {field[:-1]} {i} answer_start must be an int, got {start!r:.40}.")
        if not 0 <= start or start + len(text) > len(context):
            raise DataFileError(f"{where}: {field[:-1]} {i} {text!r:.40} at answer_start={start} ends outside "
                                f"the context ({len(context)} characters).")
        if context[start:start + len(text)] != text:
            raise DataFileError(f"{where}: {field[:-1]} {i} {text!r:.40} is not the context at answer_start="
                                f"{start} (the context there reads {context[start:start + len(text)]!r:.40}). "
                                f"answer_start counts characters of the context from 0.")
        out.append(SquadAnswer(text, start))
    return tuple(out)


def parse_squad(raw: Any, source: str = "<squad>", answers_required: bool = True) -> SquadData:
    """Validate a loaded SQuAD JSON object (see the module doc) -> :class:`SquadData`.
    ``answers_required=False`` (questions to answer, e.g. ``bertcourse predict``): a question with no
    ``answers`` field at all is read with no answers instead of refused; an empty ``answers`` list on an
    answerable question is still an error."""
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise DataFileError(f"{source}: not a SQuAD file: expected an object with a 'data' list of articles.")
    version = str(raw.get("version", ""))
    articles, seen = [], set()
    for a, article in enumerate(raw["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise DataFileError(f"{source}: article {a} has no 'paragraphs' list.")
        title = article.get("title", f"#{a}")
        if not isinstance(title, str):
            raise DataFileError(f"{source}: article {a} has a title that is not a string ({title!r:.40}).")
        paragraphs = []
        for p, paragraph in enumerate(article["paragraphs"]):
            where_p = f"{source}: article {title!r}, paragraph {p}"
            if not isinstance(paragraph, dict):
                raise DataFileError(f"{where_p}: must be an object with 'context' and 'qas'.")
            context = paragraph.get("context")
            if not isinstance(context, str):
                raise DataFileError(f"{where_p}: 'context' must be a string, got {type(context).__name__}.")
            qas = paragraph.get("qas", [])
            if not isinstance(qas, list):
                raise DataFileError(f"{where_p}: 'qas' must be a list, got {type(qas).__name__}.")
            examples = []
            for q, qa in enumerate(qas):
                if not isinstance(qa, dict):
                    raise DataFileError(f"{where_p}, question {q}: must be an object.")
                qid = qa.get("id", f"{title}-{p}-{q}")
                where = f"{where_p}, question {qid!r}"
                question = qa.get("question")
                if not isinstance(question, str):
                    raise DataFileError(f"{where}: 'question' must be a string, got {type(question).__name__}.")
                if not question.strip():
                    raise DataFileError(f"{where}: the question is empty.")
                if qid in seen:
                    raise DataFileError(f"{where}: duplicate question id.")
                seen.add(qid)
                impossible = qa.get("is_impossible", False)
                if not isinstance(impossible, bool):
                    raise DataFileError(f"{where}: 'is_impossible' must be true or false, got {impossible!r:.20}.")
                answers = _answers(qa.get("answers", []), context, where, "answers")
                plausible = _answers(qa.get("plausible_answers", []), context, where, "plausible_answers")
                if impossible and answers:
                    raise DataFileError(f"{where}: is_impossible is true but the question has answers.")
                if not impossible and not answers and (answers_required or "answers" in qa):
                    raise DataFileError(f"{where}: no answers (an unanswerable question needs "
                                        "\"is_impossible\": true, as in SQuAD 2.0).")
                examples.append(QAExample(str(qid), question, context, answers, title, impossible, plausible))
            paragraphs.append(SquadParagraph(context, tuple(examples)))
        articles.append(SquadArticle(title, tuple(paragraphs)))
    return SquadData(version, tuple(articles), source)


def read_squad(path: str | os.PathLike, sha256: str | None = None, answers_required: bool = True) -> SquadData:
    """Read and validate a SQuAD v1.1 / v2.0 JSON file. ``sha256``: check the file's digest first
    (a file named as a known SQuAD file, e.g. ``dev-v1.1.json``, is not checked unless asked:
    a user may keep a modified copy)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    if sha256 is not None:
        verify_file(path, sha256)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise DataFileError(f"{path}: not UTF-8 ({err.reason} at byte {err.start}).") from None
    except ValueError as err:
        raise DataFileError(f"{path}: not valid JSON ({err}).") from None
    return parse_squad(raw, str(path), answers_required=answers_required)


# ----------------------------------------------------------------------------- files, checksums, cache
def verify_file(path: str | os.PathLike, sha256: str) -> Path:
    """Raise :class:`DataFileError` unless ``path``'s sha256 is ``sha256``; returns the path."""
    actual = sha256_of(path)
    if actual != sha256:
        raise DataFileError(f"{path}: sha256 {actual} differs from the published {sha256}: the file is "
                            "truncated or not the official one; delete it and fetch it again.")
    return Path(path)


def cache_dir() -> Path:
    """``squad/`` in the course's one cache folder (:func:`bertcourse.data.benchmarks.cache_dir`:
    ``$BERTCOURSE_CACHE`` or ``~/.cache/bertcourse``), created when a download needs it."""
    return benchmark_cache_dir() / "squad"


def squad_path(name: str = "dev-v1.1.json", download: bool = False, cache: str | os.PathLike | None = None) -> Path:
    """Path of an official SQuAD file, its sha256 checked.

    ``dev-v1.1.json`` is shipped in ``data/squad/``; the others are looked up in the cache directory
    (:func:`cache_dir`, or ``cache``) and, only with ``download=True``, fetched from the official URL
    (:data:`SQUAD_FILES`) into it first (written to a temporary file, checked, then renamed)."""
    if name not in SQUAD_FILES:
        raise KeyError(f"Unknown SQuAD file {name!r}; known: {sorted(SQUAD_FILES)}.")
    url, digest, _ = SQUAD_FILES[name]
    if name in SHIPPED:
        shipped = data_dir() / "squad" / name
        if shipped.is_file():
            return verify_file(shipped, digest)
    folder = Path(cache) if cache is not None else cache_dir()
    target = folder / name
    if target.is_file():
        return verify_file(target, digest)
    if not download:
        raise FileNotFoundError(f"{target} is not here and the course does not download by default: call "
                                f"squad_path({name!r}, download=True) (needs the internet) or put the official "
                                f"file there ({url}).")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{name}.", delete=False) as tmp:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (a fixed https URL)
            shutil.copyfileobj(response, tmp)
    try:
        verify_file(tmp.name, digest)
    except DataFileError:
        os.unlink(tmp.name)
        raise
    os.replace(tmp.name, target)
    return target


# ----------------------------------------------------------------------------- the course's split
def held_out_titles(titles: Sequence[str], n: int = NUM_HELD_OUT, seed: int = SPLIT_SEED) -> tuple[str, ...]:
    """The rule behind :data:`HELD_OUT_TITLES`: the titles sorted, shuffled by ``random.Random(seed)``,
    the first ``n``.

    >>> held_out_titles(["a", "b", "c", "d"], n=2, seed=0)
    ('c', 'a')
    """
    order = sorted(titles)
    random.Random(seed).shuffle(order)
    return tuple(order[:n])


def split_articles(data: SquadData, held_out: Iterable[str] = HELD_OUT_TITLES) -> tuple[SquadData, SquadData]:
    """``(training articles, held-out articles)`` of one SQuAD file: whole articles, file order kept.

    The default is the course's fixed split of the v1.1 dev file (:data:`HELD_OUT_TITLES`)."""
    held = set(held_out)
    return data.subset([t for t in data.titles if t not in held]), data.subset([t for t in data.titles if t in held])


def make_unanswerable(data: SquadData, fraction: float = 0.5, seed: int = 0,
                      examples: Sequence[QAExample] | None = None) -> list[QAExample]:
    """Unanswerable questions made from answerable ones (for the null-answer lessons and tests).

    How they are made: a ``random.Random(seed)`` draw picks ``round(fraction * n)`` of the ``n``
    questions (``examples``, default all of ``data``); each is paired with a paragraph drawn at random from
    ANOTHER article of ``data``, so its answer cannot be there (a paragraph of the same article could
    mention it). The new example keeps the question, gets that paragraph as context, no answers,
    ``is_impossible=True``, id ``<id>-null``, and the other article's title. Not SQuAD 2.0's
    adversarial questions: these are easier (off-topic), and the lesson says so.

    >>> ctx = "Bath is in England."
    >>> a = SquadArticle("A", (SquadParagraph(ctx, (QAExample("q1", "Where is Bath?", ctx,
    ...     (SquadAnswer("England", 11),), "A"),)),))
    >>> b = SquadArticle("B", (SquadParagraph("Cats purr.", ()),))
    >>> made = make_unanswerable(SquadData("1.1", (a, b)), fraction=1.0)
    >>> made[0].context, made[0].is_impossible, made[0].answers, made[0].id
    ('Cats purr.', True, (), 'q1-null')
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}.")
    if len(data.articles) < 2:
        raise ValueError("make_unanswerable needs at least two articles (the other paragraph comes from another one).")
    pool = list(data.examples() if examples is None else examples)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(pool)), round(fraction * len(pool))))
    made = []
    for i in chosen:
        ex = pool[i]
        others = [a for a in data.articles if a.title != ex.title and a.paragraphs]
        article = others[rng.randrange(len(others))]
        paragraph = article.paragraphs[rng.randrange(len(article.paragraphs))]
        made.append(QAExample(f"{ex.id}-null", ex.question, paragraph.context, (), article.title, True, ()))
    return made
