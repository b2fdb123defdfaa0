"""A fine-tuning run that survives (issue 14 items 1 and 4), on the command line a user runs:
``bertcourse finetune ... --save-steps 2``, SIGKILL in the middle of epoch 2 (the epoch is reshuffled), then
``--resume``: the final weights equal the uninterrupted run's bit for bit (before: up to 0.027 apart, because
the resumed epoch saw another shuffle order). ``--resume`` on a finished run says so and changes nothing.

tests/scripts/engine_run.py runs ``bertcourse.cli.main`` itself and only adds a pause per training step, so
that the kill lands at a chosen step. Real files: Austen vs Melville sentences from the shipped corpora.
"""

import os
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
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from bertcourse.data import corpora
    from bertcourse.text import learn_vocabulary, save_vocabulary

    base = tmp_path_factory.mktemp("finetune")
    austen, melville = corpora.sentences("austen"), corpora.sentences("moby_dick")
    save_vocabulary(learn_vocabulary(austen[:300] + melville[:300], 300), base / "vocab.txt")
    rows = ["text\tlabel"]
    for i in range(24):  # 48 examples, batch 8: 6 steps per epoch
        rows += [f"{austen[i]}\tausten", f"{melville[i]}\tmelville"]
    (base / "train.tsv").write_text("\n".join(r.replace('"', "'") for r in rows) + "\n")
    return base


def _args(files: Path, out: Path, *extra) -> list[str]:
    return ["finetune", "--train", str(files / "train.tsv"), "--preset", "tiny", "--vocab", str(files / "vocab.txt"),
            "--epochs", "2", "--save-steps", "2", "--seq-len", "32", "--batch-size", "8", "--learning-rate", "1e-3",
            "--quiet", "--out", str(out), *extra]


def _start(args: list[str], sleep: float = 0.0):
    cmd = [sys.executable, str(SCRIPT), "cli"] + (["--sleep", str(sleep)] if sleep else []) + ["--"] + args
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def runs(files):
    full, killed = files / "full", files / "killed"
    proc_full = _start(_args(files, full))
    proc_killed = _start(_args(files, killed), sleep=0.5)
    target, deadline = killed / "checkpoints" / "step-8", time.time() + 300  # epoch 2 is steps 7-12
    while not target.exists():
        assert proc_killed.poll() is None, "ended before the kill:\n" + proc_killed.stdout.read()[-3000:]
        assert time.time() < deadline, f"{target} never appeared"
        time.sleep(0.02)
    os.kill(proc_killed.pid, signal.SIGKILL)
    proc_killed.wait()
    out, _ = proc_full.communicate(timeout=600)
    assert proc_full.returncode == 0, out[-3000:]
    return full, killed


def test_sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run(files, runs):
    full, killed = runs
    done = sorted(int(p.name[5:]) for p in (killed / "checkpoints").iterdir() if p.name[5:].isdigit())
    assert done[-1] == 8 and 8 % 6 != 0, f"the kill must land inside epoch 2, checkpoints: {done}"
    assert not (killed / "model.weights.h5").exists()
    resumed = subprocess.run([sys.executable, str(SCRIPT), "cli", "--"] + _args(files, killed, "--resume"),
                             env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "(step 8)" in resumed.stdout
    diff = max_weight_diff(full / "model.weights.h5", killed / "model.weights.h5")
    print(f"fine-tuning, SIGKILL at step 8 of 12 (mid-epoch, reshuffled) + --resume: max abs weight diff {diff}")
    assert diff == 0.0, f"resumed fine-tuning run differs from the uninterrupted one by {diff:.3e}"
    import json

    h_full, h_killed = (json.loads((d / "history.json").read_text()) for d in (full, killed))
    assert len(h_killed["loss"]) == 2
    np.testing.assert_allclose(h_killed["loss"], h_full["loss"], rtol=1e-6)

    from bertcourse.training.run import RunDirectory

    texts = ["It is a truth universally acknowledged.", "Call me Ishmael."]
    a, b = RunDirectory(full).load_task(), RunDirectory(killed).load_task()
    assert a.labels == ["austen", "melville"]
    np.testing.assert_allclose(a.predict(texts, verbose=0), b.predict(texts, verbose=0), atol=1e-6)


def test_resume_of_a_finished_run_says_so_and_changes_nothing(files, runs, capsys):
    from bertcourse.cli import main

    full, _ = runs
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in full.rglob("*")}
    assert main(_args(files, full, "--resume")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "finished" in err and "nothing to resume" in err
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in full.rglob("*")} == before
