"""`bertcourse finetune --task ner|qa` and `bertcourse predict` on their runs, through the real command (a
subprocess, as users run it), on small files in the real formats: sentences of the shipped WNUT-17 train file
(CoNLL columns, its lone-tab sentence breaks kept) and one article of the shipped SQuAD v1.1 dev file (its first
two paragraphs). A tiny fresh encoder (--preset tiny) and a vocabulary learned on those files keep it fast.
Checked: the runs reload (RunDirectory.load_task) with the settings given; predict writes what the reloaded model
predicts, with entity F1 / EM-F1 when the file has gold; bad files and flags end in one `error:` line, exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bertcourse.cli import main
from bertcourse.data.conll import read_conll, wnut17_path
from bertcourse.data.squad import read_squad, squad_path
from bertcourse.tasks.token_classification import predict_word_tags
from bertcourse.text import learn_vocabulary, save_vocabulary
from bertcourse.training.run import RunDirectory

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
TRAIN_SENTENCES, DEV_SENTENCES = 48, 12
TINY = ["--preset", "tiny", "--batch-size", "8", "--max-steps", "2", "--learning-rate", "1e-3", "--quiet"]


def conll_head(path: Path, first: int, count: int) -> str:
    """Sentences ``first .. first + count - 1`` of a CoNLL file, their lines byte for byte (breaks included)."""
    blocks, lines = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            lines.append(line)
        elif lines:
            blocks.append("\n".join(lines) + "\n" + line)
            lines = []
    return "\n".join(blocks[first:first + count]) + "\n"


def cli(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bertcourse.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def finish(process: subprocess.Popen) -> tuple[str, str]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return out, err


def one_error_line(capsys, *args) -> str:
    capsys.readouterr()
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip("\n").split("\n")
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    train = root / "train.conll"
    train.write_text(conll_head(wnut17_path("train"), 0, TRAIN_SENTENCES), encoding="utf-8")
    dev = root / "dev.conll"  # the next train sentences: their entity types are all in the training ones
    dev.write_text(conll_head(wnut17_path("train"), TRAIN_SENTENCES, DEV_SENTENCES), encoding="utf-8")
    raw = json.loads(squad_path("dev-v1.1.json").read_text(encoding="utf-8"))
    article = dict(raw["data"][0], paragraphs=raw["data"][0]["paragraphs"][:2])
    squad = root / "squad.json"
    squad.write_text(json.dumps({"version": raw["version"], "data": [article]}), encoding="utf-8")
    texts = read_conll(train).texts() + [t for ex in read_squad(squad).examples() for t in (ex.question, ex.context)]
    save_vocabulary(learn_vocabulary(texts, 400), root / "vocab.txt")
    return root


@pytest.fixture(scope="module")
def runs(files):
    """Every command a user would type, each a fresh Python: the two fine-tuning runs, then predict on each
    run as soon as it is written, and one bad file; the two chains run side by side (the commands' start-up
    is most of the time)."""
    common = [*TINY, "--vocab", files / "vocab.txt"]
    ner = cli("finetune", "--task", "ner", "--train", files / "train.conll", "--validation", files / "dev.conll",
              "--seq-len", "32", "--save-steps", "1", "--out", files / "ner", *common)
    qa = cli("finetune", "--task", "qa", "--train", files / "squad.json", "--validation", files / "squad.json",
             "--seq-len", "64", "--doc-stride", "16", "--max-answer-len", "10", "--out", files / "qa", *common)
    no_data = files / "no_data.json"
    no_data.write_text(json.dumps({"version": "1.1", "articles": []}))
    bad = cli("finetune", "--task", "qa", "--train", no_data, "--preset", "tiny", "--vocab", files / "vocab.txt",
              "--out", files / "never")
    done = {"ner": finish(ner)}
    predict_ner = cli("predict", files / "ner", files / "dev.conll", "--out", files / "tags.conll")
    done["qa"] = finish(qa)
    predict_qa = cli("predict", files / "qa", files / "squad.json", "--out", files / "answers.json")
    done["predict-ner"], done["predict-qa"] = finish(predict_ner), finish(predict_qa)
    out, err = bad.communicate(timeout=300)
    done["bad"] = (bad.returncode, err)
    return done


def test_finetune_ner_writes_a_run_that_reloads(files, runs):
    out, _ = runs["ner"]
    assert f"ner: {TRAIN_SENTENCES} training sentences, {DEV_SENTENCES} validation" in out
    assert "validation entity F1" in out
    run = RunDirectory(files / "ner")
    assert run.kind == "token-classification" and run.is_finished
    train = read_conll(files / "train.conll")
    assert len(train) == TRAIN_SENTENCES and train.num_entities > 0
    model = run.load_task()
    assert model.label_names == train.label_list
    assert run.read_json("task_config")["sequence_length"] == 32
    config = run.read_json("train_config")
    assert config["source"] == {"preset": "tiny"} and config["train"]["max_steps"] == 2
    assert not run.path_of("checkpoints").exists()  # --save-steps 1: kept only until the end


def test_finetune_qa_writes_a_run_that_reloads(files, runs):
    out, _ = runs["qa"]
    questions = len(read_squad(files / "squad.json").examples())
    assert f"qa: {questions} training questions, {questions} validation" in out
    assert "training windows" in out and "validation EM" in out
    run = RunDirectory(files / "qa")
    assert run.kind == "question-answering" and run.is_finished
    model = run.load_task()
    assert (model.doc_stride, model.max_answer_len, model.max_seq_length) == (16, 10, 64)
    assert run.read_json("train_config")["train"]["num_train_epochs"] == 2      # the QA engine's default


def test_predict_ner_and_qa(files, runs, tmp_path, capsys):
    _, ner_err = runs["predict-ner"]
    dev = read_conll(files / "dev.conll")
    want = predict_word_tags(RunDirectory(files / "ner").load_task(), dev.sentences)
    sentences = (files / "tags.conll").read_text(encoding="utf-8").strip("\n").split("\n\n")
    rows = [[line.split("\t") for line in s.split("\n")] for s in sentences]
    assert [[r[0] for r in s] for s in rows] == dev.sentences
    assert [[r[1] for r in s] for s in rows] == dev.tags          # gold, then predicted
    assert [[r[2] for r in s] for s in rows] == want
    assert f"{len(dev)} predictions; entity F1" in ner_err

    words_only = tmp_path / "words.conll"  # tokens only: predicted, not scored
    words_only.write_text("\n\n".join("\n".join(s) for s in dev.sentences) + "\n")
    capsys.readouterr()
    assert main(["predict", str(files / "ner"), str(words_only), "--out", str(tmp_path / "bare.jsonl")]) == 0
    bare = [json.loads(line) for line in (tmp_path / "bare.jsonl").read_text().splitlines()]
    assert [b["words"] for b in bare] == dev.sentences and [b["tags"] for b in bare] == want
    assert "gold" not in bare[0] and "entity F1" not in capsys.readouterr().err

    _, qa_err = runs["predict-qa"]
    examples = read_squad(files / "squad.json").examples()
    answers = json.loads((files / "answers.json").read_text(encoding="utf-8"))
    assert list(answers) == [ex.id for ex in examples]
    model = RunDirectory(files / "qa").load_task()
    best = [a[0]["answer"] for a, _ in model.answer([ex.question for ex in examples],
                                                    [ex.context for ex in examples])]
    assert list(answers.values()) == best
    assert all(answers[ex.id] in ex.context for ex in examples)
    assert f"{len(examples)} predictions; EM " in qa_err and ", F1 " in qa_err
    assert main(["predict", str(files / "qa"), str(files / "squad.json"), "--out", str(tmp_path / "a.tsv")]) == 0
    header, *lines = (tmp_path / "a.tsv").read_text(encoding="utf-8").splitlines()
    assert header.split("\t") == ["id", "question", "answer", "score", "start", "end", "gold"]
    assert [line.split("\t")[2] for line in lines] == best


def test_bad_files_give_one_line(files, runs, tmp_path, capsys):
    vocab = files / "vocab.txt"
    lines = (files / "train.conll").read_text(encoding="utf-8").split("\n")
    lines[4] = lines[4] + "\tNNP"                                     # a third column on line 5
    malformed = tmp_path / "bad.conll"
    malformed.write_text("\n".join(lines), encoding="utf-8")
    new = ["--preset", "tiny", "--vocab", vocab, "--out", tmp_path / "never"]
    line = one_error_line(capsys, "finetune", "--task", "ner", "--train", malformed, *new)
    assert "bad.conll, line 5: 3 column(s), expected 2" in line
    line = one_error_line(capsys, "predict", files / "ner", malformed)
    assert "line 5: 3 column(s)" in line
    empty = tmp_path / "empty.conll"
    empty.write_text("")
    assert "no sentences" in one_error_line(capsys, "predict", files / "ner", empty)
    assert "no sentences" in one_error_line(capsys, "finetune", "--task", "token-classification", "--train", empty,
                                            *new)
    unknown = tmp_path / "unknown.conll"
    unknown.write_text("Bath\tB-city\n")
    line = one_error_line(capsys, "predict", files / "ner", unknown)
    assert "unknown tag 'B-city'" in line

    no_data = files / "no_data.json"
    for command in (["finetune", "--task", "qa", "--train", no_data, *new], ["predict", files / "qa", no_data]):
        assert "not a SQuAD file: expected an object with a 'data' list" in one_error_line(capsys, *command)
    empty_json = tmp_path / "empty.json"
    empty_json.write_text("")
    for command in (["finetune", "--task", "qa", "--train", empty_json, *new], ["predict", files / "qa", empty_json]):
        assert "empty.json: the file is empty" in one_error_line(capsys, *command)
    no_questions = tmp_path / "none.json"
    no_questions.write_text(json.dumps({"version": "1.1", "data": []}))
    assert "has no questions" in one_error_line(capsys, "predict", files / "qa", no_questions)
    assert not (tmp_path / "never").exists()

    returncode, err = runs["bad"]                               # the real command: one line, status 2
    lines = err.strip("\n").split("\n")
    assert returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "'data'" in lines[0], err
    assert not (files / "never").exists()


def test_flags_an_engine_does_not_take_are_refused(files, runs, tmp_path, capsys):
    new = ["--preset", "tiny", "--vocab", files / "vocab.txt", "--out", tmp_path / "never"]
    line = one_error_line(capsys, "finetune", "--task", "qa", "--train", files / "squad.json", "--dropout", "0.2",
                          *new)
    assert "--dropout is not an option of --task qa" in line
    line = one_error_line(capsys, "finetune", "--task", "ner", "--train", files / "train.conll", "--doc-stride",
                          "16", *new)
    assert "--doc-stride is not an option of --task ner" in line
    line = one_error_line(capsys, "finetune", "--task", "ner", "--train", files / "train.conll", "--text-column",
                          "sentence", *new)
    assert "--text-column is not an option of --task ner" in line
    line = one_error_line(capsys, "finetune", "--task", "qa", "--train", files / "squad.json", "--seq-len", "64",
                          *new)
    assert "--doc-stride 128 leaves no room" in line
    line = one_error_line(capsys, "finetune", "--task", "qa", "--train", files / "squad.json", "--out", files / "ner",
                          "--preset", "tiny", "--vocab", files / "vocab.txt", "--seq-len", "64", "--doc-stride", "16")
    assert "holds a token-classification run; a question-answering run cannot be written there" in line
    line = one_error_line(capsys, "predict", files / "ner", files / "dev.conll", "--out", tmp_path / "x.json")
    assert "token-classification run to a .tsv, .conll or .jsonl file" in line
    line = one_error_line(capsys, "predict", files / "qa", files / "squad.json", "--label-column", "gold")
    assert "--label-column is for classification runs" in line
    assert not (tmp_path / "never").exists()
