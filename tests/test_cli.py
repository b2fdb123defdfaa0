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
    with pytest.raises(SystemExit, match="no interrupted run"):
        main(["pretrain", "--out", str(tmp_path / "b"), "--resume"])
    (tmp_path / "c" / "backup").mkdir(parents=True)
    with pytest.raises(SystemExit, match="pass --resume"):
        main(["pretrain", "--out", str(tmp_path / "c")])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "pretrainer.weights.h5").write_bytes(b"")
    with pytest.raises(SystemExit, match="already holds a finished run"):
        main(["pretrain", "--out", str(tmp_path / "d")])


def test_pretrain_tiny_end_to_end(tmp_path):
    out = tmp_path / "run"
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


def test_info_and_data_stats(capsys):
    assert main(["data", "stats"]) == 0
    assert "austen documents=269" in capsys.readouterr().out
    assert main(["info"]) == 0
    assert "preset base" in capsys.readouterr().out
