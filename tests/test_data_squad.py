"""bertcourse.data.squad: the shipped SQuAD v1.1 dev file (exact counts), strict reading of bad files,
v2.0 fields, the course's fixed article split and the made-up unanswerable questions (issue 17)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bertcourse.data import squad
from bertcourse.data.squad import (HELD_OUT_TITLES, SQUAD_FILES, held_out_titles, make_unanswerable, read_squad,
                                   parse_squad, split_articles, squad_path)
from bertcourse.errors import DataFileError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "squad" / "dev-v1.1.json"


@pytest.fixture(scope="module")
def dev():
    return read_squad(SHIPPED, sha256=SQUAD_FILES["dev-v1.1.json"][1])


def test_shipped_file_is_the_official_one_with_exact_counts(dev):
    assert squad.sha256_of(SHIPPED) == "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9"
    assert SHIPPED.stat().st_size == SQUAD_FILES["dev-v1.1.json"][2]
    assert dev.version == "1.1"
    assert dev.counts() == {"articles": 48, "paragraphs": 2067, "questions": 10570, "answers": 34726}
    examples = dev.examples()
    assert len({ex.id for ex in examples}) == 10570
    for ex in examples:   # every gold span is the context at its offset (what the loader checks)
        assert all(ex.context[a.start:a.end] == a.text for a in ex.answers)
    first = examples[0]
    assert first.title == "Super_Bowl_50" and first.question == "Which NFL team represented the AFC at Super Bowl 50?"
    assert first.answer_texts == ["Denver Broncos"] * 3 and first.answers[0].start == 177


def test_squad_path_finds_the_shipped_file_and_never_downloads_by_default(tmp_path, monkeypatch):
    assert squad_path("dev-v1.1.json") == SHIPPED
    monkeypatch.setenv("BERTCOURSE_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not download by default.*download=True"):
        squad_path("train-v1.1.json")
    with pytest.raises(KeyError, match="Unknown SQuAD file"):
        squad_path("train-v3.json")
    # a cached copy with the wrong bytes is refused
    (tmp_path / "squad").mkdir()
    (tmp_path / "squad" / "dev-v2.0.json").write_text("{}")
    with pytest.raises(DataFileError, match="sha256 .* differs from the published"):
        squad_path("dev-v2.0.json")


def test_fixed_split_follows_its_documented_rule(dev):
    assert held_out_titles(dev.titles) == HELD_OUT_TITLES
    train, held = split_articles(dev)
    assert set(train.titles).isdisjoint(held.titles) and len(train.titles) + len(held.titles) == 48
    assert held.counts() == {"articles": 12, "paragraphs": 500, "questions": 2389, "answers": 8135}
    assert train.counts()["questions"] == 8181


def test_make_unanswerable_pairs_questions_with_other_articles(dev):
    train, _ = split_articles(dev)
    made = make_unanswerable(train, fraction=0.1, seed=3)
    assert len(made) == round(0.1 * 8181)
    by_id = {ex.id: ex for ex in train.examples()}
    for ex in made:
        orig = by_id[ex.id[:-len("-null")]]
        assert ex.is_impossible and ex.answers == () and ex.question == orig.question
        assert ex.title != orig.title and ex.context in {p.context for a in train.articles for p in a.paragraphs}
    assert [ex.id for ex in make_unanswerable(train, fraction=0.1, seed=3)] == [ex.id for ex in made]


def write(tmp_path, obj, name="bad.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path


def one(context="Bath is in England.", **qa):
    record = {"id": "q1", "question": "Where is Bath?", "answers": [{"text": "England", "answer_start": 11}]}
    record.update(qa)
    return {"version": "1.1", "data": [{"title": "Bath", "paragraphs": [{"context": context, "qas": [record]}]}]}


def test_a_good_tiny_file_reads(tmp_path):
    ex = read_squad(write(tmp_path, one())).examples()[0]
    assert (ex.id, ex.title, ex.answer_texts, ex.is_impossible) == ("q1", "Bath", ["England"], False)


@pytest.mark.parametrize("obj, message", [
    (one(answers=[{"text": "England", "answer_start": 40}]), "ends outside the context"),
    (one(answers=[{"text": "England", "answer_start": -1}]), "ends outside the context"),
    (one(answers=[{"text": "England", "answer_start": 10}]), "is not the context at answer_start=10"),
    (one(answers=[{"text": "England", "answer_start": "11"}]), "answer_start must be an int"),
    (one(answers=[{"text": "", "answer_start": 1}]), "has no text"),
    (one(answers=[{"answer_start": 1}]), "must be an object with 'text' and 'answer_start'"),
    (one(context=["Bath is in England."]), "'context' must be a string, got list"),
    (one(context=None), "'context' must be a string, got NoneType"),
    (one(question="   "), "the question is empty"),
    (one(question=7), "'question' must be a string"),
    (one(answers=[]), "no answers"),
    (one(is_impossible=True), "is_impossible is true but the question has answers"),
    ({"version": "1.1"}, "not a SQuAD file"),
    ([1, 2], "not a SQuAD file"),
    ("{not json", "not valid JSON"),
])
def test_bad_files_get_a_clear_error_naming_the_place(tmp_path, obj, message):
    with pytest.raises(DataFileError, match=message) as info:
        read_squad(write(tmp_path, obj))
    assert "bad.json" in str(info.value)
    if isinstance(obj, dict) and "data" in obj:
        assert "article 'Bath', paragraph 0" in str(info.value)


def test_duplicate_ids_and_non_utf8_are_errors(tmp_path):
    obj = one()
    qas = obj["data"][0]["paragraphs"][0]["qas"]
    qas.append(dict(qas[0]))
    with pytest.raises(DataFileError, match="question 'q1': duplicate question id"):
        read_squad(write(tmp_path, obj))
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps(one(context="Bath is in England. é")).encode().replace(b"\\u00e9", b"\xe9"))
    with pytest.raises(DataFileError, match="not UTF-8"):
        read_squad(path)
    with pytest.raises(FileNotFoundError):
        read_squad(tmp_path / "absent.json")


def test_v2_unanswerable_questions_and_plausible_answers(tmp_path):
    obj = one(answers=[], is_impossible=True, plausible_answers=[{"text": "Bath", "answer_start": 0}])
    obj["version"] = "v2.0"
    ex = read_squad(write(tmp_path, obj)).examples()[0]
    assert ex.is_impossible and ex.answers == () and ex.plausible_answers[0].text == "Bath"
    obj = one(answers=[], is_impossible=True, plausible_answers=[{"text": "Bath", "answer_start": 3}])
    with pytest.raises(DataFileError, match="plausible_answer 0 'Bath' is not the context"):
        read_squad(write(tmp_path, obj))


def test_sha256_check_on_read(tmp_path):
    path = write(tmp_path, one())
    with pytest.raises(DataFileError, match="differs from the published"):
        read_squad(path, sha256="0" * 64)


def test_verify_step_of_make_data():
    out = subprocess.run([sys.executable, str(ROOT / "data" / "build_squad.py")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok dev-v1.1.json" in out.stdout and "10,570 questions" in out.stdout


def test_questions_without_an_answers_field_are_read_when_answers_are_not_required():
    # `bertcourse predict` reads files of questions to answer: no "answers" field is not an error there
    raw = {"data": [{"title": "t", "paragraphs": [{"context": "In Bath.", "qas": [
        {"id": "a", "question": "Where?"},
        {"id": "b", "question": "Where again?", "answers": [{"text": "Bath", "answer_start": 3}]}]}]}]}
    with pytest.raises(DataFileError, match="no answers"):
        parse_squad(raw)
    a, b = parse_squad(raw, answers_required=False).examples()
    assert (a.answers, a.is_impossible) == ((), False) and b.answer_texts == ["Bath"]
    raw["data"][0]["paragraphs"][0]["qas"][0]["answers"] = []  # an empty list is still a mistake
    with pytest.raises(DataFileError, match="no answers"):
        parse_squad(raw, answers_required=False)


def test_download_path_from_a_local_file(tmp_path, monkeypatch):
    """``squad_path(..., download=True)`` runs on a file:// URL (never the network in tests): fetched into
    the cache, its sha256 checked, then found there without downloading again; a download with the wrong
    bytes raises and leaves neither the file nor a temporary copy behind."""
    source = write(tmp_path, one(), name="published.json")
    digest = squad.sha256_of(source)
    cache = tmp_path / "cache"
    monkeypatch.setitem(SQUAD_FILES, "train-v1.1.json", (source.as_uri(), digest, source.stat().st_size))
    path = squad_path("train-v1.1.json", download=True, cache=cache)
    assert path == cache / "train-v1.1.json" and path.read_bytes() == source.read_bytes()
    assert read_squad(path).examples()[0].id == "q1"
    source.unlink()                                           # the cached copy is used from now on
    assert squad_path("train-v1.1.json", download=True, cache=cache) == path
    bad = write(tmp_path, one(context="Bath is in England!"), name="tampered.json")
    monkeypatch.setitem(SQUAD_FILES, "dev-v2.0.json", (bad.as_uri(), digest, bad.stat().st_size))
    with pytest.raises(DataFileError, match="differs"):
        squad_path("dev-v2.0.json", download=True, cache=cache)
    assert sorted(p.name for p in cache.iterdir()) == ["train-v1.1.json"]
