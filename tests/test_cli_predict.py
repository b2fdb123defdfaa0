"""`bertcourse finetune` for pairs and regression, and `bertcourse predict RUN FILE`: runs that reload, predictions
equal to the reloaded model's pipeline (tsv, jsonl, stdout), the metric when the file has labels, and bad files
ending in one `error:` line with exit status 2 (in this process, and once through the real command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bertcourse.cli import main
from bertcourse.pipelines import pipeline
from bertcourse.training.run import RunDirectory

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "good", "bad", "film", "plot", "##s", "cat", "dog"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

SINGLE = "text\tlabel\n" + "good film\tpos\nbad film\tneg\na good plot\tpos\nthe bad films\tneg\n" * 2
PAIRS = "text\ttext_b\tlabel\n" + ("a cat\ta cat\t5.0\na cat\tthe dog\t1.0\ngood film\tgood films\t4.5\n"
                                    "bad plot\ta dog\t0.0\n") * 2


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def one_error_line(capsys, *args) -> str:
    capsys.readouterr()
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip("\n").split("\n")
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    vocab = write(root / "vocab.txt", "\n".join(VOCAB) + "\n")
    common = ["--preset", "tiny", "--vocab", vocab, "--seq-len", "16", "--batch-size", "8", "--epochs", "1",
              "--learning-rate", "1e-3", "--quiet"]
    single = write(root / "single.tsv", SINGLE)
    pairs = write(root / "pairs.tsv", PAIRS)
    assert main([str(a) for a in ["finetune", "--train", single, "--out", root / "clf", *common]]) == 0
    assert main([str(a) for a in ["finetune", "--task", "regression", "--train", pairs, "--validation", pairs,
                                  "--out", root / "sts", *common]]) == 0
    return root


def test_finetune_writes_pair_and_regression_runs_that_reload(runs):
    run = RunDirectory(runs / "sts")
    task = json.loads(run.task_config.read_text())
    assert run.kind == "classification" and task["problem_type"] == "regression" and task["pairs"] is True
    model = run.load_task()
    assert model.is_regression and model.num_classes == 1
    metrics = json.loads(run.metrics.read_text())
    assert set(metrics["validation"]) == {"pearson", "spearman", "mse"}
    pred = model.predict((["a cat", "bad plot"], ["a cat", "a dog"]), verbose=0)
    assert pred.shape == (2, 1) and np.isfinite(pred).all()
    clf = RunDirectory(runs / "clf").load_task()
    assert clf.class_names == ["neg", "pos"] and not clf.is_regression


def test_predict_writes_tsv_jsonl_and_stdout(runs, tmp_path, capsys):
    file = write(tmp_path / "test.tsv", "text\tlabel\ngood film\tpos\nthe bad plot\tneg\na\tneg\n")
    assert main(["predict", str(runs / "clf"), str(file), "--out", str(tmp_path / "p.tsv")]) == 0
    err = capsys.readouterr().err
    assert "3 predictions; accuracy" in err
    lines = (tmp_path / "p.tsv").read_text().splitlines()
    assert lines[0] == "text\tlabel\tscore\tgold" and len(lines) == 4
    want = pipeline("text-classification", model=RunDirectory(runs / "clf").load_task())(
        ["good film", "the bad plot", "a"])
    for line, w in zip(lines[1:], want):
        text, label, score, gold = line.split("\t")
        assert label == w["label"] and abs(float(score) - w["score"]) < 1e-6
    assert main(["predict", str(runs / "clf"), str(file), "--out", str(tmp_path / "p.jsonl")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["label"] for r in rows] == [w["label"] for w in want] and rows[0]["gold"] == "pos"
    unlabelled = write(tmp_path / "new.csv", 'text\n"good, good film"\n')  # no label column: predictions only
    capsys.readouterr()
    assert main(["predict", str(runs / "clf"), str(unlabelled)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "text\tlabel\tscore" and out[1].startswith("good, good film\t")


def test_predict_pairs_with_scores(runs, tmp_path, capsys):
    file = write(tmp_path / "pairs.tsv", "text\ttext_b\tlabel\na cat\ta cat\t5\nbad plot\ta dog\t0\n"
                                         "good film\tgood films\t4.5\n")
    assert main(["predict", str(runs / "sts"), str(file), "--out", str(tmp_path / "s.jsonl")]) == 0
    assert "Pearson" in capsys.readouterr().err
    rows = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    model = RunDirectory(runs / "sts").load_task()
    want = model.predict((["a cat", "bad plot", "good film"], ["a cat", "a dog", "good films"]), verbose=0)[:, 0]
    np.testing.assert_allclose([r["score"] for r in rows], want, atol=1e-5)
    assert rows[0]["text_b"] == "a cat" and rows[0]["label"] == "LABEL_0"


@pytest.mark.parametrize("name,content,words", [
    ("empty.tsv", "", ["empty"]),
    ("header_only.tsv", "text\tlabel\n", ["no examples"]),
    ("no_text.tsv", "sentence\tlabel\ngood\tpos\n", ["no 'text' column"]),
    ("unknown.tsv", "text\tlabel\ngood film\tpos\nbad\tmeh\n", ["labels ['meh'] are not labels of the model",
                                                                "['neg', 'pos']"]),
    ("pairs.tsv", "text\ttext_b\tlabel\na\tb\tpos\n", ["trained on single texts", "'text_b' column"]),
])
def test_bad_files_one_line(runs, tmp_path, capsys, name, content, words):
    line = one_error_line(capsys, "predict", runs / "clf", write(tmp_path / name, content))
    for word in words:
        assert word in line, line


def test_bad_regression_files_and_arguments(runs, tmp_path, capsys):
    line = one_error_line(capsys, "predict", runs / "sts", write(tmp_path / "x.tsv", "text\tlabel\na\t1\n"))
    assert "trained on text pairs" in line
    line = one_error_line(capsys, "predict", runs / "sts", write(tmp_path / "y.tsv", "text\ttext_b\tlabel\na\tb\thigh\n"))
    assert "'high'" in line and "not a finite number" in line
    good = write(tmp_path / "z.tsv", "text\nfine\n")
    assert "not a folder" in one_error_line(capsys, "predict", tmp_path / "nothing", good)
    assert "holds no run" in one_error_line(capsys, "predict", tmp_path, good)
    assert ".tsv or .jsonl" in one_error_line(capsys, "predict", runs / "clf", good, "--out", tmp_path / "p.csv")
    assert "does not exist" in one_error_line(capsys, "predict", runs / "clf", tmp_path / "missing.tsv")
    line = one_error_line(capsys, "finetune", "--task", "regression", "--train",
                          write(tmp_path / "w.tsv", "text\tlabel\na\t1\nb\tlots\n"), "--preset", "tiny",
                          "--vocab", runs / "vocab.txt", "--out", tmp_path / "never")
    assert "'lots'" in line and not (tmp_path / "never").exists()


def test_the_real_command_prints_one_line(runs, tmp_path):
    result = subprocess.run([sys.executable, "-m", "bertcourse.cli", "predict", str(runs / "clf"),
                             str(write(tmp_path / "empty.csv", ""))], capture_output=True, text=True, env=ENV,
                            timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: ") and "empty" in lines[0], result.stderr
