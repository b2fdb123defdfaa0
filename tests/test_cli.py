"""The command line end to end: a real (tiny) pretraining run, fine-tuning from it, the run rules on real runs.

The one-line errors for bad flags, files and folders are in test_cli_errors.py.
"""

import os
import subprocess
import sys

import pytest

from bertcourse.cli import build_parser, main
from bertcourse.training.run import RunDirectory


def test_bad_flags_are_clear(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["pretrain", "--out", "x", "--steps", "-3"])
    assert exit_info.value.code == 2
    assert "expected a positive integer, got '-3'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pretrain", "--out", "x", "--preset", "giant"])
    assert "invalid choice: 'giant'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pretrain", "--out", "x", "--corpus", "shakespeare"])
    assert "invalid choice: 'shakespeare'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pretrain"])
    assert "--out" in capsys.readouterr().err


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain") / "run"
    cmd = [sys.executable, "-m", "bertcourse.cli", "pretrain", "--preset", "tiny", "--corpus", "austen",
           "--vocab-size", "1000", "--seq-len", "32", "--batch-size", "8", "--steps", "4", "--steps-per-epoch", "2",
           "--save-steps", "1", "--out", str(out), "--quiet"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "held-out MLM accuracy" in result.stdout
    run = RunDirectory(out)
    assert run.kind == "pretraining" and run.is_finished
    assert run.read_json("train_config")["train"]["save_steps"] == 1
    assert not run.path_of("checkpoints").exists()  # kept only until the final weights were written
    for name in ("pretrainer_weights", "backbone_weights", "config", "vocab"):
        assert run.path_of(name).is_file(), name
    assert any(run.path_of("logs").rglob("*tfevents*")), "no TensorBoard logs"
    assert len(run.path_of("vocab").read_text().split("\n")) >= 900
    return out


def test_pretrain_tiny_end_to_end(pretrained_run, capsys):
    run = RunDirectory(pretrained_run)
    assert run.path_of("backbone_weights").stat().st_size > 100_000
    backbone, tokenizer = run.load_backbone()
    assert backbone.config.vocab_size == tokenizer.vocabulary_size and not backbone.config.normalize_first
    before = {p: p.stat().st_mtime_ns for p in pretrained_run.rglob("*")}
    assert main(["pretrain", "--preset", "tiny", "--out", str(pretrained_run), "--resume"]) == 2
    assert "is a finished pretraining run: nothing to resume, nothing was changed" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in pretrained_run.rglob("*")} == before


def _write_austen_melville(path, n, offset):
    """A real two-class file: Austen sentences labelled 'austen', Moby Dick sentences 'melville'."""
    from bertcourse.data import corpora

    austen, melville = corpora.sentences("austen"), corpora.sentences("moby_dick")
    rows = ["text\tlabel"]
    for i in range(offset, offset + n):
        rows += [f"{austen[i]}\tausten", f"{melville[i]}\tmelville"]
    path.write_text("\n".join(r.replace('"', "'") for r in rows) + "\n")
    return path


def test_finetune_from_pretrained_run_end_to_end(pretrained_run, tmp_path, capsys):
    train = _write_austen_melville(tmp_path / "train.tsv", 64, 0)
    dev = _write_austen_melville(tmp_path / "dev.tsv", 16, 1000)
    out = tmp_path / "ft"
    cmd = [sys.executable, "-m", "bertcourse.cli", "finetune", "--task", "sentiment", "--train", str(train),
           "--validation", str(dev), "--init", str(pretrained_run), "--seq-len", "32", "--batch-size", "16",
           "--epochs", "2", "--learning-rate", "1e-3", "--save-steps", "4", "--out", str(out), "--quiet"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "128 training examples, 32 validation" in result.stdout
    assert "validation accuracy" in result.stdout
    run = RunDirectory(out)
    assert run.kind == "classification" and run.is_finished
    metrics = run.read_json("metrics")
    assert 0.0 <= metrics["validation"]["accuracy"] <= 1.0
    assert any(run.path_of("logs").rglob("*tfevents*")), "no TensorBoard logs"
    model = run.load_task()
    assert set(model.labels) == {"austen", "melville"}
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["finetune", "--train", str(train), "--init", str(pretrained_run), "--out", str(out)]) == 2
    assert "already holds a finished classification run" in capsys.readouterr().err
    assert main(["finetune", "--train", str(train), "--init", str(pretrained_run), "--out", str(out), "--resume",
                 "--save-steps", "4"]) == 2
    assert "is a finished classification run: nothing to resume, nothing was changed" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_finetune_bad_flags_and_files(tmp_path, capsys):
    train = _write_austen_melville(tmp_path / "train.tsv", 4, 0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["finetune", "--train", str(train), "--out", "x"])
    assert "one of the arguments --init --hf --preset is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["finetune", "--task", "summarize", "--train", str(train), "--preset", "tiny",
                                   "--out", "x"])
    assert "invalid choice: 'summarize'" in capsys.readouterr().err
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\nhello\tpos\n")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n")
    assert main(["finetune", "--train", str(bad), "--preset", "tiny", "--vocab", str(vocab),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "'text'" in err and "bad.tsv" in err


def test_info_and_data_stats(capsys):
    assert main(["data", "stats"]) == 0
    assert "austen documents=269" in capsys.readouterr().out
    assert main(["info"]) == 0
    assert "preset base" in capsys.readouterr().out
