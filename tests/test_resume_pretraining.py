"""A pretraining run that survives (issues 13 and 14), on the command line a user runs: ``bertcourse pretrain``
SIGKILLed in the middle of an epoch, then ``--resume``, gives the uninterrupted run's weights bit for bit; a
crash while the final weights are written leaves a resumable run; a finished run is never touched by
``--resume``; when every checkpoint is corrupt the run says so and stops.

tests/scripts/engine_run.py runs ``bertcourse.cli.main`` itself and only adds a pause per training step (so
that the kill lands at a chosen step) or a SIGKILL halfway through writing the final weights. The shipped
Austen corpus, tiny preset, 32 tokens, 12 steps of 4 per epoch, a checkpoint every 2 steps.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from weight_files import max_weight_diff

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "engine_run.py"
STEPS, PER_EPOCH = 12, 4


ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    from bertcourse.data import corpora
    from bertcourse.text import learn_vocabulary, save_vocabulary

    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    save_vocabulary(learn_vocabulary(corpora.sentences("austen")[:400], 300), path)
    return path


def _args(vocab: Path, out: Path, *extra) -> list[str]:
    return ["pretrain", "--preset", "tiny", "--corpus", "austen", "--vocab", str(vocab), "--seq-len", "32",
            "--batch-size", "8", "--steps", str(STEPS), "--steps-per-epoch", str(PER_EPOCH), "--save-steps", "2",
            "--seed", "7", "--quiet", "--out", str(out), *extra]


def _start(args: list[str], *hooks: str):
    return subprocess.Popen([sys.executable, str(SCRIPT), "cli", *hooks, "--", *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _kill_when(proc, path: Path, timeout: float = 300):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, "the run ended before it could be killed:\n" + proc.stdout.read()[-3000:]
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _steps(run: Path) -> list[int]:
    return sorted(int(p.name[5:]) for p in (run / "checkpoints").iterdir() if p.name[5:].isdigit())


def _status(run: Path) -> str:
    return json.loads((run / "run.json").read_text())["status"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, vocab):
    """An uninterrupted run and a run SIGKILLed right after checkpoint step-6 (epoch 2 is steps 5-8), in parallel."""
    base = tmp_path_factory.mktemp("pretrain")
    full, killed = base / "full", base / "killed"
    proc_full = _start(_args(vocab, full))
    proc_killed = _start(_args(vocab, killed), "--sleep", "0.5")
    _kill_when(proc_killed, killed / "checkpoints" / "step-6")
    out, _ = proc_full.communicate(timeout=600)
    assert proc_full.returncode == 0, out[-3000:]
    return full, killed


def test_sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run(runs, vocab, tmp_path, capsys):
    from bertcourse.cli import main

    full, killed = runs
    assert _status(full) == "finished" and not (full / "checkpoints").exists()
    assert _status(killed) == "running" and not (killed / "pretrainer.weights.h5").exists()
    assert _steps(killed)[-1] == 6 and 6 % PER_EPOCH != 0, "the kill must land inside an epoch"
    shutil.copytree(killed, tmp_path / "all_corrupt")

    # 1) resume, and crash (SIGKILL) while the final weights are being written
    crash = subprocess.run([sys.executable, str(SCRIPT), "cli", "--crash-in-final-write", "--",
                            *_args(vocab, killed, "--resume")], capture_output=True, text=True, timeout=600, env=ENV)
    assert crash.returncode == -signal.SIGKILL, crash.stdout[-2000:] + crash.stderr[-2000:]
    assert "resumed from" in crash.stdout and "step 6" in crash.stdout
    assert _status(killed) == "running" and STEPS in _steps(killed), "the final checkpoint must survive"
    # 2) resume again (bertcourse.cli.main in this process): nothing left to train, the final weights are
    #    written, the run is finished
    assert main(_args(vocab, killed, "--resume")) == 0
    assert f"(step {STEPS})" in capsys.readouterr().out
    assert _status(killed) == "finished" and not (killed / "checkpoints").exists()
    diff = max_weight_diff(full / "pretrainer.weights.h5", killed / "pretrainer.weights.h5")
    with capsys.disabled():
        print(f"\npretraining, SIGKILL at step 6 of {STEPS} (mid-epoch) + resume: max abs weight diff {diff}")
    assert diff == 0.0, f"resumed pretraining run differs from the uninterrupted one by {diff:.3e}"
    assert max_weight_diff(full / "backbone.weights.h5", killed / "backbone.weights.h5") == 0.0
    # history.json keeps every epoch, the interrupted one included (its mean loss recombined)
    h_full = json.loads((full / "history.json").read_text())
    h_killed = json.loads((killed / "history.json").read_text())
    assert len(h_killed["loss"]) == STEPS // PER_EPOCH
    np.testing.assert_allclose(h_killed["loss"], h_full["loss"], rtol=1e-6)
    assert (killed / "log.csv").read_text().count("\n") == 1 + STEPS // PER_EPOCH

    # 3) every checkpoint corrupt (truncated files): say so, stop, change nothing (a single truncated
    #    checkpoint falls back to the previous one: test_training_engine.py)
    broken = tmp_path / "all_corrupt"
    for npz in (broken / "checkpoints").rglob("model.npz"):
        npz.write_bytes(npz.read_bytes()[:1000])
    before = sorted(p.name for p in broken.rglob("*"))
    assert main(_args(vocab, broken, "--resume")) == 2
    assert re.search(r"error: every checkpoint in .* is corrupt \(step-6, step-4, step-2\): nothing to resume "
                     r"from; pass --overwrite to start over", capsys.readouterr().err)
    assert sorted(p.name for p in broken.rglob("*")) == before and _status(broken) == "running"


def test_resume_of_a_finished_run_says_so_and_changes_nothing(runs, vocab, capsys):
    from bertcourse.cli import main

    full, _ = runs
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in full.rglob("*")}
    assert main(_args(vocab, full, "--resume")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is a finished pretraining run: nothing to resume" in err
    assert main(_args(vocab, full)) == 2  # and a new run over it needs --overwrite
    assert "finished pretraining run" in capsys.readouterr().err
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in full.rglob("*")} == before
