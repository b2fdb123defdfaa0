"""RunDirectory: a run knows what it is (run.json), refuses to be overwritten by another kind of run or over a
finished run, names its files in one place, and loads runs written before the manifest existed (lesson 07)."""

import json

import numpy as np
import pytest

from bertcourse import BertConfig
from bertcourse.errors import ModelLoadError, RunDirectoryError
from bertcourse.models import BertBackbone
from bertcourse.models.pretraining import BertPretrainer
from bertcourse.text import save_vocabulary
from bertcourse.training.run import FILES, RunDirectory, atomic_write_text, config_sha256

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "mat", "##s"]


def test_manifest_and_file_names(tmp_path):
    run = RunDirectory.create(tmp_path / "r", "pretraining", {"preset": "tiny", "steps": 4})
    manifest = json.loads((tmp_path / "r" / "run.json").read_text())
    assert manifest["kind"] == "pretraining" and manifest["status"] == "running" and manifest["format_version"] == 1
    assert manifest["config_sha256"] == config_sha256({"steps": 4, "preset": "tiny"})  # key order does not matter
    assert manifest["bertcourse"]
    assert run.path_of("config") == run.config_json == tmp_path / "r" / "config.json"
    assert {run.path_of(k).name for k in FILES} == set(FILES.values())
    assert run.config == {"preset": "tiny", "steps": 4}
    with pytest.raises(KeyError, match="not a run file"):
        run.path_of("weights")
    run.checkpoints.mkdir()
    run.mark_finished()
    assert run.is_finished and not run.checkpoints.exists()


@pytest.mark.parametrize("first, second, resume, overwrite, match", [
    ("pretraining", "classification", False, False, "is a pretraining run; a classification run cannot"),
    ("classification", "pretraining", False, True, "is a classification run; a pretraining run cannot"),
    ("pretraining", "pretraining", False, False, "already holds a finished pretraining run"),
    ("pretraining", "pretraining", True, False, "is a finished pretraining run: nothing to resume"),
])
def test_refusals_are_one_line(tmp_path, first, second, resume, overwrite, match):
    RunDirectory.create(tmp_path, first, {"a": 1}).mark_finished()
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    with pytest.raises(RunDirectoryError, match=match) as err:
        RunDirectory.create(tmp_path, second, {"a": 1}, resume=resume, overwrite=overwrite)
    assert "\n" not in str(err.value)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before  # nothing changed


def test_interrupted_runs_resume_only_with_the_same_configuration(tmp_path):
    RunDirectory.create(tmp_path, "pretraining", {"preset": "tiny", "seq_len": 32})
    with pytest.raises(RunDirectoryError, match="holds an interrupted pretraining run; pass --resume"):
        RunDirectory.create(tmp_path, "pretraining", {"preset": "tiny", "seq_len": 32})
    with pytest.raises(RunDirectoryError, match=r"another configuration \(differs in: preset\)"):
        RunDirectory.create(tmp_path, "pretraining", {"preset": "mini", "seq_len": 32}, resume=True)
    nested = RunDirectory.create(tmp_path / "n", "pretraining", {"train": {"seed": 1, "lr": 2}})
    with pytest.raises(RunDirectoryError, match=r"differs in: train.seed\)"):
        RunDirectory.create(nested.path, "pretraining", {"train": {"seed": 2, "lr": 2}}, resume=True)
    assert RunDirectory.create(tmp_path, "pretraining", {"preset": "tiny", "seq_len": 32}, resume=True).kind
    with pytest.raises(RunDirectoryError, match="holds no run to continue"):
        RunDirectory.create(tmp_path / "empty", "pretraining", {}, resume=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file"):
        RunDirectory.create(tmp_path / "file", "pretraining", {})


def test_overwrite_removes_only_the_runs_files(tmp_path):
    run = RunDirectory.create(tmp_path, "pretraining", {"a": 1})
    run.history.write_text("{}")
    (run.checkpoints / "step-2").mkdir(parents=True)
    (tmp_path / "notes.md").write_text("mine")
    run.mark_finished(remove_checkpoints=False)
    RunDirectory.create(tmp_path, "pretraining", {"a": 2}, overwrite=True)
    assert (tmp_path / "notes.md").read_text() == "mine"
    assert not run.history.exists() and not run.checkpoints.exists() and not run.is_finished


def test_corrupt_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "run.json").write_text('{"kind": "pretr')
    with pytest.raises(RunDirectoryError, match="run.json is corrupt"):
        RunDirectory(tmp_path).kind


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    atomic_write_text(tmp_path / "a.json", "1")
    atomic_write_text(tmp_path / "a.json", "2")
    assert (tmp_path / "a.json").read_text() == "2" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.fixture(scope="module")
def lesson07_run(tmp_path_factory):
    """A run as lesson 07 wrote it before run.json existed: pre-LN recorded only in pretrain_config.json,
    a config.json without normalize_first, the sparse last layer's weight layout."""
    path = tmp_path_factory.mktemp("lesson07")
    config = BertConfig.preset("tiny", vocab_size=len(VOCAB), max_position_embeddings=32, normalize_first=True)
    model = BertPretrainer(BertBackbone(config), sparse_last_layer=True)
    model.save_weights(str(path / "pretrainer.weights.h5"))
    model.backbone.save_weights(str(path / "backbone.weights.h5"))
    old_config = {k: v for k, v in config.to_dict().items() if k != "normalize_first"}
    (path / "config.json").write_text(json.dumps(old_config))
    save_vocabulary(VOCAB, path / "vocab.txt")
    (path / "pretrain_config.json").write_text(json.dumps({"preset": "tiny", "normalize_first": True,
                                                           "mlm_only": False, "sparse_last_layer": True}))
    (path / "history.json").write_text("{}")
    return path, model


def test_runs_written_before_the_manifest_still_load(lesson07_run, tmp_path):
    path, model = lesson07_run
    run = RunDirectory(path)
    assert run.kind == "pretraining" and run.is_finished and run.manifest["format_version"] == 0
    backbone, tokenizer = run.load_backbone()
    assert backbone.config.normalize_first and tokenizer.get_vocabulary() == VOCAB
    pretrainer, _ = run.load_pretrainer()
    assert pretrainer.sparse_last_layer
    for a, b in zip(pretrainer.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(RunDirectoryError, match="is a pretraining run; a classification run cannot"):
        RunDirectory.create(path, "classification", {})
    with pytest.raises(RunDirectoryError, match="not a fine-tuned task model"):
        run.load_task()
    with pytest.raises(FileNotFoundError, match="config.json is missing .* holds no run"):
        RunDirectory(tmp_path).load_pretrainer()
    (tmp_path / "backbone.weights.h5").write_bytes((path / "backbone.weights.h5").read_bytes()[:500])
    for name in ("config.json", "vocab.txt"):
        (tmp_path / name).write_bytes((path / name).read_bytes())
    with pytest.raises(ModelLoadError, match="backbone.weights.h5 cannot be loaded"):
        RunDirectory(tmp_path).load_backbone()


def test_classification_runs_written_before_the_manifest_still_load(tmp_path):
    """bertcourse finetune used to write classifier.weights.h5 + labels.json (no run.json, no task.json)."""
    from bertcourse.tasks.classification import BertClassifier

    config = BertConfig.preset("tiny", vocab_size=len(VOCAB), max_position_embeddings=32)
    model = BertClassifier(BertBackbone(config), num_classes=2)
    model.save_weights(str(tmp_path / "classifier.weights.h5"))
    config.to_json(tmp_path / "config.json")
    save_vocabulary(VOCAB, tmp_path / "vocab.txt")
    (tmp_path / "labels.json").write_text(json.dumps({"neg": 0, "pos": 1}))
    run = RunDirectory(tmp_path)
    assert run.kind == "classification" and run.is_finished
    task = run.load_task()
    assert task.labels == ["neg", "pos"]
    for a, b in zip(task.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert task.predict(["the cat sat"], verbose=0).shape == (1, 2)
    with pytest.raises(RunDirectoryError, match="is a classification run; a pretraining run cannot"):
        RunDirectory.create(tmp_path, "pretraining", {}, overwrite=True)


def test_saved_weights_leave_the_optimizer_out_unless_asked(tmp_path):
    import h5py
    import keras

    from bertcourse.training.run import atomic_save_weights

    def build():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
        model.compile(keras.optimizers.AdamW(1e-2), "mse")
        return model

    model = build()
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    model.fit(x, x.sum(1, keepdims=True), epochs=2, verbose=0)  # the optimizer has state now
    lean = atomic_save_weights(model, tmp_path / "model.weights.h5")
    full = atomic_save_weights(model, tmp_path / "full.weights.h5", include_optimizer=True)
    with h5py.File(lean) as f, h5py.File(full) as g:
        assert "optimizer" not in f and "optimizer" in g
    assert lean.stat().st_size < full.stat().st_size
    assert not list(tmp_path.glob("*.partial.*"))
    fresh = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    fresh.load_weights(lean)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))
