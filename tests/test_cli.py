"""The command line: clear errors on bad flags and paths, a real (tiny) pretraining run, resume rules."""

import os
import subprocess
import sys

import pytest

from bertcourse.cli import build_parser, main


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


def test_bad_paths_and_resume_rules(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        main(["pretrain", "--out", str(tmp_path / "a"), "--vocab", str(tmp_path / "missing.txt")])
    with pytest.raises(SystemExit, match="--mask-rate must be in"):
        main(["pretrain", "--out", str(tmp_path / "a"), "--mask-rate", "1.5"])
    with pytest.raises(SystemExit, match="no interrupted run"):
        main(["pretrain", "--out", str(tmp_path / "b"), "--resume"])
    (tmp_path / "c" / "backup").mkdir(parents=True)
    with pytest.raises(SystemExit, match="pass --resume"):
        main(["pretrain", "--out", str(tmp_path / "c")])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "pretrainer.weights.h5").write_bytes(b"")
    with pytest.raises(SystemExit, match="already holds a finished run"):
        main(["pretrain", "--out", str(tmp_path / "d")])


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain") / "run"
    cmd = [sys.executable, "-m", "bertcourse.cli", "pretrain", "--preset", "tiny", "--corpus", "austen",
           "--vocab-size", "1000", "--seq-len", "32", "--batch-size", "8", "--steps", "4", "--steps-per-epoch", "2",
           "--out", str(out), "--quiet"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "held-out MLM accuracy" in result.stdout
    for name in ("pretrainer.weights.h5", "backbone.weights.h5", "config.json", "vocab.txt", "log.csv"):
        assert (out / name).exists(), name
    assert any((out / "logs").rglob("*tfevents*")), "no TensorBoard logs"
    assert len((out / "vocab.txt").read_text().split("\n")) >= 900
    return out


def test_pretrain_tiny_end_to_end(pretrained_run):
    assert (pretrained_run / "backbone.weights.h5").stat().st_size > 100_000


def _write_austen_melville(path, n, offset):
    """A real two-class file: Austen sentences labelled 'austen', Moby Dick sentences 'melville'."""
    from bertcourse.data import corpora

    austen, melville = corpora.sentences("austen"), corpora.sentences("moby_dick")
    rows = ["text\tlabel"]
    for i in range(offset, offset + n):
        rows += [f"{austen[i]}\tausten", f"{melville[i]}\tmelville"]
    path.write_text("\n".join(r.replace('"', "'") for r in rows) + "\n")
    return path


def test_finetune_from_pretrained_run_end_to_end(pretrained_run, tmp_path):
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
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == {"austen": 0, "melville": 1}
    assert len(metrics["history"]["val_accuracy"]) == 2 and metrics["steps_per_epoch"] == 8
    assert 0.0 <= metrics["validation"]["accuracy"] <= 1.0
    for name in ("classifier.weights.h5", "config.json", "vocab.txt", "labels.json", "train_config.json"):
        assert (out / name).exists(), name
    assert any((out / "checkpoints").iterdir()), "no checkpoints written with --save-steps"
    assert any((out / "logs").rglob("*tfevents*")), "no TensorBoard logs"
    with pytest.raises(SystemExit, match="already holds a fine-tuned model"):
        main(["finetune", "--train", str(train), "--init", str(pretrained_run), "--out", str(out)])


def test_finetune_bad_flags_and_files(tmp_path, capsys):
    train = _write_austen_melville(tmp_path / "train.tsv", 4, 0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["finetune", "--train", str(train), "--out", "x"])
    assert "one of the arguments --init --hf --preset is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["finetune", "--task", "ner", "--train", str(train), "--preset", "tiny",
                                   "--out", "x"])
    assert "invalid choice: 'ner'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--train .* does not exist"):
        main(["finetune", "--train", str(tmp_path / "nope.tsv"), "--preset", "tiny", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="--preset needs --vocab"):
        main(["finetune", "--train", str(train), "--preset", "tiny", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="--resume needs --save-steps"):
        main(["finetune", "--train", str(train), "--init", str(tmp_path), "--out", str(tmp_path / "o"), "--resume"])
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\nhello\tpos\n")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n")
    with pytest.raises(SystemExit, match="no 'text' column"):
        main(["finetune", "--train", str(bad), "--preset", "tiny", "--vocab", str(vocab), "--out", str(tmp_path / "o")])


def test_info_and_data_stats(capsys):
    assert main(["data", "stats"]) == 0
    assert "austen documents=269" in capsys.readouterr().out
    assert main(["info"]) == 0
    assert "preset base" in capsys.readouterr().out
