"""Issue 14 item 8 (and 5): every mistake a user can make on the command line ends in ONE line on stderr,
``error: <file / what is wrong / what to do>``, exit status 2, no traceback; ``--debug`` shows it.

Written as the CLI is used: real files written here (a truncated ``model.safetensors``, a ``config.json``
that is not BERT, a file where a folder is expected ...), each passed to ``main()`` exactly as the
command line passes it (TensorFlow loads once, in this process); a few cases also run the real command,
``python -m bertcourse.cli``, in a subprocess (each pays TensorFlow's start-up), where stderr must hold
that one line and nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bertcourse import BertConfig
from bertcourse.cli import build_parser, main, steps_per_epoch

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "good", "bad", "film", "##s"]
TINY = BertConfig(vocab_size=len(VOCAB), num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32,
                  max_position_embeddings=128)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bertcourse.cli", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def assert_one_line(stderr: str, *words: str) -> str:
    lines = stderr.strip("\n").split("\n")
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("error: ") and "Traceback" not in stderr and "\x1b[" not in line, stderr
    for word in words:
        assert word in line, (word, line)
    return line


def run_main(capsys, *args) -> str:
    """``main()`` in this process: exit status 2 and one line on stderr; returns the line."""
    capsys.readouterr()
    assert main([str(a) for a in args]) == 2
    return assert_one_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- files written as users have them
def write_labels(path: Path) -> Path:
    path.write_text("text\tlabel\ngood film\tpos\nbad film\tneg\na good film\tpos\nthe bad films\tneg\n",
                    encoding="utf-8")
    return path


def write_hf_folder(folder: Path) -> Path:
    """A Hugging Face BERT folder with real (tiny, random) weights, written without TensorFlow."""
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(TINY.to_json(hf=True), encoding="utf-8")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    save_file({"embeddings.word_embeddings.weight": np.zeros((len(VOCAB), 16), "float32"),
               "embeddings.position_embeddings.weight": np.zeros((128, 16), "float32")},
              str(folder / "model.safetensors"))
    return folder


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


HF_BREAKAGES = {
    # name: (how to break the folder, flag value suffix, words the one line must hold)
    "missing_folder": (lambda d: None, "nope", ["--hf", "does not exist", "Hugging Face BERT folder"]),
    "file_not_folder": (lambda d: None, "model.safetensors", ["is a file", "its folder is"]),
    "corrupt_config": (lambda d: (d / "config.json").write_text("{not json"), "",
                       ["config.json is not valid JSON", "copy the model's config.json again"]),
    "non_bert_config": (lambda d: (d / "config.json").write_text(json.dumps(
        {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 2})), "",
        ["config.json describes a gpt2 model", "not BERT"]),
    "config_missing": (lambda d: (d / "config.json").unlink(), "", ["has no config.json", "found: model.safetensors"]),
    "weights_missing": (lambda d: (d / "model.safetensors").unlink(), "", ["model.safetensors is missing"]),
    "weights_empty": (lambda d: (d / "model.safetensors").write_bytes(b""), "", ["model.safetensors is empty"]),
    "weights_truncated": (lambda d: _truncate(d / "model.safetensors"), "",
                          ["model.safetensors is truncated", "copy it again"]),
    "vocab_missing": (lambda d: (d / "vocab.txt").unlink(), "", ["has no vocab.txt", "vocabulary"]),
}


@pytest.mark.parametrize("breakage", list(HF_BREAKAGES))
def test_broken_hf_folder_is_one_line(tmp_path, capsys, breakage):
    """Issue 14 item 8: every --hf load failure printed a 16-25 line traceback."""
    folder = write_hf_folder(tmp_path / "model")
    how, suffix, words = HF_BREAKAGES[breakage]
    how(folder)
    target = folder / suffix if suffix else folder
    line = run_main(capsys, "finetune", "--train", write_labels(tmp_path / "train.tsv"), "--hf", target,
                    "--out", tmp_path / "out")
    for word in words:
        assert word in line, (word, line)
    assert not (tmp_path / "out").exists()  # nothing written


def test_truncated_hf_weights_through_the_real_command(tmp_path):
    folder = write_hf_folder(tmp_path / "model")
    _truncate(folder / "model.safetensors")
    result = run_cli("finetune", "--train", write_labels(tmp_path / "train.tsv"), "--hf", folder,
                     "--out", tmp_path / "out")
    assert result.returncode == 2, result.stderr
    assert_one_line(result.stderr, "model.safetensors is truncated")


def test_seq_len_over_the_hf_models_positions(tmp_path, capsys):
    """Issue 14 item 8: --seq-len past the position table gave a Keras-wrapped message with ANSI codes."""
    line = run_main(capsys, "finetune", "--train", write_labels(tmp_path / "train.tsv"), "--hf",
                    write_hf_folder(tmp_path / "model"), "--seq-len", "129", "--out", tmp_path / "out")
    assert "--seq-len 129 is longer than the model's position table (max_position_embeddings=128" in line
    assert "use --seq-len 128 or less" in line


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_out_is_an_existing_file(tmp_path, capsys, command):
    (tmp_path / "out").write_text("my notes\n")
    extra = ["--train", write_labels(tmp_path / "train.tsv"), "--hf", write_hf_folder(tmp_path / "m")] \
        if command == "finetune" else []
    line = run_main(capsys, command, *extra, "--out", tmp_path / "out")
    assert f"--out {tmp_path / 'out'} is a file" in line and "choose another --out" in line
    assert (tmp_path / "out").read_text() == "my notes\n"


@pytest.mark.parametrize("args,words", [
    (["pretrain", "--steps", "50", "--steps-per-epoch", "30"],
     ["--steps 50 is not a whole number of epochs of --steps-per-epoch 30", "use --steps-per-epoch 25"]),
    (["pretrain", "--steps", "50", "--steps-per-epoch", "100"], ["--steps-per-epoch 100 is more than --steps 50"]),
    (["pretrain", "--mask-rate", "1.5"], ["--mask-rate must be in (0, 1)"]),
    (["pretrain", "--vocab", "{tmp}/missing.txt"], ["--vocab", "missing.txt does not exist"]),
    (["pretrain", "--resume", "--overwrite"], ["give one of them"]),
    (["finetune", "--train", "{tmp}/nope.tsv", "--preset", "tiny", "--vocab", "{tmp}/v.txt"],
     ["--train", "nope.tsv does not exist"]),
    (["finetune", "--train", "{tmp}/train.tsv", "--preset", "tiny"], ["--preset needs --vocab"]),
    (["finetune", "--train", "{tmp}/train.tsv", "--init", "{tmp}", "--resume"], ["--resume needs --save-steps"]),
    (["finetune", "--train", "{tmp}/train.tsv", "--init", "{tmp}/nothing"],
     ["--init", "does not exist", "bertcourse pretrain"]),
    (["finetune", "--train", "{tmp}/train.tsv", "--init", "{tmp}/train.tsv"], ["--init", "is a file"]),
    (["finetune", "--train", "{tmp}/one_class.tsv", "--preset", "tiny", "--vocab", "{tmp}/v.txt"],
     ["one_class.tsv", "1 class"]),
], ids=["steps_not_multiple", "epoch_longer_than_run", "mask_rate", "vocab_missing", "resume_and_overwrite",
        "train_missing", "preset_without_vocab", "resume_without_save_steps", "init_missing", "init_is_a_file",
        "one_class"])
def test_bad_flags_and_files_are_one_line(tmp_path, capsys, args, words):
    write_labels(tmp_path / "train.tsv")
    (tmp_path / "one_class.tsv").write_text("text\tlabel\ngood\tpos\nfine\tpos\n", encoding="utf-8")
    (tmp_path / "v.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    line = run_main(capsys, *[a.format(tmp=tmp_path) for a in args], "--out", tmp_path / "out")
    for word in words:
        assert word in line, (word, line)
    assert not (tmp_path / "out").exists()


def test_default_steps_per_epoch_fits_the_run():
    """Issue 14 item 8: `pretrain --steps 50` with the default --steps-per-epoch 100 was refused."""
    parse = build_parser().parse_args
    assert steps_per_epoch(parse(["pretrain", "--out", "x", "--steps", "50"])) == 50
    assert steps_per_epoch(parse(["pretrain", "--out", "x", "--steps", "800"])) == 100
    assert steps_per_epoch(parse(["pretrain", "--out", "x", "--steps", "150"])) == 75  # whole epochs
    assert steps_per_epoch(parse(["pretrain", "--out", "x", "--steps", "60", "--steps-per-epoch", "20"])) == 20


def test_debug_shows_the_traceback(tmp_path):
    """``--debug`` lets the error through, so Python prints its traceback (exit status 1)."""
    from bertcourse.cli import CommandLineError

    with pytest.raises(CommandLineError, match="--mask-rate must be in"):
        main(["--debug", "pretrain", "--mask-rate", "1.5", "--out", str(tmp_path / "out")])
    with pytest.raises(FileNotFoundError, match="nope.tsv does not exist"):
        main(["--debug", "finetune", "--train", str(tmp_path / "nope.tsv"), "--preset", "tiny", "--out", "o"])


# ----------------------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished pretraining run written as lesson 07 wrote it (config.json, backbone.weights.h5, vocab.txt)."""
    import keras

    from bertcourse.models import BertBackbone
    from bertcourse.training.run import RunDirectory

    root = tmp_path_factory.mktemp("runs")
    pre = RunDirectory(root / "pretrained")
    pre.path.mkdir()
    keras.utils.set_random_seed(0)
    TINY.to_json(pre.path_of("config"))
    BertBackbone(TINY).save_weights(str(pre.path_of("backbone_weights")))
    pre.path_of("vocab").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return root, pre


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


INIT_BREAKAGES = {
    "config_missing": (lambda run: run.path_of("config").unlink(), ["is not a `bertcourse pretrain` run",
                                                                    "has no config.json"]),
    "corrupt_config": (lambda run: run.path_of("config").write_text("{\"num_layers\": "),
                       ["config.json is not valid JSON"]),
    "non_bert_config": (lambda run: run.path_of("config").write_text(json.dumps({"n_layer": 2, "n_embd": 16})),
                        ["config.json", "Unknown BertConfig fields ['n_embd', 'n_layer']"]),
    "without_weights": (lambda run: run.path_of("backbone_weights").unlink(),
                        ["backbone.weights.h5 is missing", "no finished pretraining run", "--resume"]),
    "truncated_weights": (lambda run: _truncate(run.path_of("backbone_weights")),
                          ["backbone.weights.h5 is truncated"]),
    "vocab_missing": (lambda run: run.path_of("vocab").unlink(), ["has no vocab.txt"]),
}


@pytest.mark.parametrize("breakage", list(INIT_BREAKAGES))
def test_broken_init_run_is_one_line(runs, tmp_path, capsys, breakage):
    """Issue 14 item 8: every --init load failure printed a traceback."""
    from bertcourse.training.run import RunDirectory

    root, pre = runs
    run = RunDirectory(_copy_run(pre.path, tmp_path / "run"))
    how, words = INIT_BREAKAGES[breakage]
    how(run)
    line = run_main(capsys, "finetune", "--train", write_labels(tmp_path / "train.tsv"), "--init", run.path,
                    "--out", tmp_path / "out")
    for word in words:
        assert word in line, (word, line)
    assert not (tmp_path / "out").exists()


def test_init_from_an_unfinished_finetuning_run_is_one_line(runs, tmp_path, capsys):
    from bertcourse.training.run import RunDirectory

    root, pre = runs
    run = RunDirectory.create(tmp_path / "ft", "classification", {"seq_len": 32})
    for name in ("config", "vocab"):
        run.path_of(name).write_bytes(pre.path_of(name).read_bytes())
    line = run_main(capsys, "finetune", "--train", write_labels(tmp_path / "train.tsv"), "--init", run.path,
                    "--out", tmp_path / "out")
    assert "model.weights.h5 is missing" in line and "no finished fine-tuning run" in line


def test_seq_len_over_the_init_runs_positions(runs, tmp_path, capsys):
    root, pre = runs
    line = run_main(capsys, "finetune", "--train", write_labels(tmp_path / "train.tsv"), "--init", pre.path,
                    "--seq-len", "512", "--out", tmp_path / "out")
    assert "--seq-len 512 is longer than the model's position table (max_position_embeddings=128" in line


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_finetune_out_into_a_pretraining_run_is_refused(runs, tmp_path, capsys):
    """Issue 14 item 5: `finetune --out` into a pretraining run replaced its config.json and vocab.txt."""
    root, pre = runs
    target = _copy_run(pre.path, tmp_path / "pre")
    before = _snapshot(target)
    for extra in ([], ["--overwrite"]):
        line = run_main(capsys, "finetune", "--train", write_labels(tmp_path / "train.tsv"), "--init", pre.path,
                        "--out", target, *extra)
        assert "holds a pretraining run; a classification run cannot be written there" in line
    assert _snapshot(target) == before


def test_pretrain_out_into_a_finetuning_run_is_refused(tmp_path, capsys):
    from bertcourse.training.run import RunDirectory

    run = RunDirectory.create(tmp_path / "ft", "classification", {"seq_len": 32})
    run.mark_finished()
    before = _snapshot(run.path)
    line = run_main(capsys, "pretrain", "--preset", "tiny", "--out", run.path)
    assert "holds a classification run; a pretraining run cannot be written there" in line
    assert _snapshot(run.path) == before


def test_pretrain_over_a_finished_run_needs_overwrite_and_resume_changes_nothing(runs, tmp_path, capsys):
    """A finished run is never replaced silently; --resume on it says so and changes nothing."""
    root, pre = runs
    target = _copy_run(pre.path, tmp_path / "pre")
    before = _snapshot(target)
    line = run_main(capsys, "pretrain", "--preset", "tiny", "--out", target)
    assert "already holds a finished pretraining run" in line and "--overwrite" in line
    line = run_main(capsys, "pretrain", "--preset", "tiny", "--out", target, "--resume")
    assert "is a finished pretraining run: nothing to resume, nothing was changed" in line
    assert _snapshot(target) == before


def test_resume_with_another_preset_is_one_line(tmp_path, capsys):
    """Issue 14 item 8: resuming with a different --preset gave a Keras traceback."""
    from bertcourse.training.run import RunDirectory

    run = RunDirectory.create(tmp_path / "pre", "pretraining", {"preset": "tiny", "seq_len": 128})
    before = _snapshot(run.path)
    line = run_main(capsys, "pretrain", "--preset", "mini", "--out", run.path, "--resume")
    assert "was started with preset='tiny', this command asks for preset='mini' (--preset)" in line
    assert _snapshot(run.path) == before
    line = run_main(capsys, "pretrain", "--preset", "tiny", "--out", run.path)
    assert "holds an interrupted pretraining run; pass --resume" in line


def test_resume_of_a_run_with_a_corrupt_manifest_or_config_is_one_line(tmp_path, capsys):
    from bertcourse.training.run import RunDirectory

    run = RunDirectory.create(tmp_path / "pre", "pretraining", {"preset": "tiny"})
    run.path_of("train_config").write_text("{\"preset\": ")
    line = run_main(capsys, "pretrain", "--preset", "tiny", "--out", run.path, "--resume")
    assert "train_config.json is corrupt" in line
    run.path_of("manifest").write_text("")
    line = run_main(capsys, "pretrain", "--preset", "tiny", "--out", run.path, "--resume")
    assert "run.json is corrupt" in line and "choose another --out" in line


def test_run_refusal_through_the_real_command(runs, tmp_path):
    """The same refusal as the user sees it: a subprocess, one line, exit status 2."""
    root, pre = runs
    result = run_cli("finetune", "--train", write_labels(tmp_path / "train.tsv"), "--init", pre.path,
                     "--out", pre.path)
    assert result.returncode == 2, result.stderr
    assert_one_line(result.stderr, "holds a pretraining run; a classification run cannot be written there")


def test_keras_wrapped_message_becomes_one_plain_line():
    """Errors raised inside a nested layer's call reach the CLI wrapped by Keras, in ANSI bold."""
    from bertcourse.cli import one_line_error
    from bertcourse.layers import SequenceTooLongError

    wrapped = SequenceTooLongError(
        "Exception encountered when calling BertEmbeddings.call().\n\n\x1b[1mInput sequence length 600 is longer "
        "than the position-embedding table\n(max_position_embeddings=512).\x1b[0m\n\nArguments received by "
        "BertEmbeddings.call():\n  • token_ids=tf.Tensor(shape=(32, 600), dtype=int32)\n")
    assert one_line_error(wrapped) == ("error: Input sequence length 600 is longer than the position-embedding "
                                       "table (max_position_embeddings=512).")
