"""The training engine: exact resume after SIGKILL, corrupted checkpoints, best weights, mixed
precision, XLA, and distribution (MirroredStrategy, MultiWorkerMirroredStrategy) on CPU."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "train_tiny.py"


def _run(out, *args, env=None, wait=True):
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), *map(str, args)]
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    if not wait:
        return subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _weights(out):
    with np.load(Path(out) / "final.npz") as data:
        return [data[k] for k in sorted(data.files, key=lambda k: int(k.split("_")[1]))]


def _losses(out):
    return json.loads((Path(out) / "losses.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    _run(out, "--steps", 40, "--save-steps", 5)
    return out


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted_run(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    proc = _run(out, "--steps", 40, "--save-steps", 5, "--sleep", 0.3, wait=False)
    target = out / "checkpoints" / "step-25"  # mid-epoch: 20 steps per epoch
    deadline = time.time() + 300
    while not target.exists():
        assert proc.poll() is None, "training ended before it could be killed: " + proc.stdout.read()[-2000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "final.npz").exists()
    done = sorted(int(p.name[5:]) for p in (out / "checkpoints").glob("step-*") if not p.name.endswith(".tmp"))
    assert 25 <= max(done) < 40, done
    result = _run(out, "--steps", 40, "--save-steps", 5, "--resume")
    assert f"resumed from" in result.stdout
    diffs = [float(np.abs(a - b).max()) for a, b in zip(_weights(uninterrupted), _weights(out))]
    assert max(diffs) == 0.0, f"resumed run differs from the uninterrupted one: max abs diff {max(diffs):.3e}"


def test_corrupted_checkpoint_falls_back_to_previous(uninterrupted, tmp_path, capsys):
    import keras

    from bertcourse.training import ResumableCheckpoint

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    model.fit(np.ones((8, 3)), np.ones((8, 2)), epochs=1, verbose=0)
    ckpt = ResumableCheckpoint(str(tmp_path), every_steps=1)
    ckpt.set_model(model)
    ckpt.save(1)
    first = [w.copy() for w in model.get_weights()]
    model.fit(np.ones((8, 3)), np.ones((8, 2)), epochs=1, verbose=0)
    ckpt.save(2)
    # corrupt the newest: a truncated write that still has its state.json
    target = tmp_path / "step-2" / "model.npz"
    target.write_bytes(target.read_bytes()[:100])
    # and leave a half-written temporary directory, as a crash during save would
    (tmp_path / "step-3.tmp").mkdir()
    assert ckpt.restore(model) == 1
    assert "step-2 is incomplete or corrupted" in capsys.readouterr().out
    for a, b in zip(model.get_weights(), first):
        np.testing.assert_array_equal(a, b)


def _tiny_compiled(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    model.fit(np.ones((8, 3)), np.ones((8, 2)), epochs=1, verbose=0)
    return model


def test_all_corrupt_checkpoints_stop_with_a_message(tmp_path):
    from bertcourse.errors import RunDirectoryError
    from bertcourse.training import ResumableCheckpoint

    model = _tiny_compiled()
    ckpt = ResumableCheckpoint(str(tmp_path), every_steps=1, verbose=False)
    ckpt.set_model(model)
    for step in (1, 2):
        ckpt.save(step)
        (tmp_path / f"step-{step}" / "optimizer.npz").write_bytes(b"truncated")
    with pytest.raises(RunDirectoryError, match=r"every checkpoint in .* is corrupt \(step-2, step-1\): nothing to "
                                                r"resume from; pass --overwrite to start over"):
        ckpt.restore(model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-1", "step-2"]  # nothing changed
    assert ResumableCheckpoint(str(tmp_path / "none")).restore(model) == 0  # no checkpoint at all: step 0


def test_corrupt_checkpoints_do_not_count_toward_keep(tmp_path, capsys):
    """Issue 14 item 4: stale corrupt step-N dirs counted as the newest, so each new good checkpoint was
    deleted right after it was written."""
    from bertcourse.training import ResumableCheckpoint

    model = _tiny_compiled()
    ckpt = ResumableCheckpoint(str(tmp_path), every_steps=1, keep=2, verbose=False)
    ckpt.set_model(model)
    for step in (1, 2, 3):
        ckpt.save(step)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-2", "step-3"]
    for step in (3,):
        (tmp_path / f"step-{step}" / "model.npz").write_bytes(b"x")
    assert ckpt.restore(model) == 2
    assert "step-3 is incomplete or corrupted" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-2", "step-3.corrupt"]
    ckpt.save(3)
    ckpt.save(4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-3", "step-4"]  # the new good ones are kept
    assert ckpt._valid(str(tmp_path / "step-4")) is not None


def test_checkpoint_carries_best_weights_and_history(tmp_path):
    from bertcourse.training import BestWeights, ResumableCheckpoint

    model = _tiny_compiled()
    best = BestWeights("val_loss", verbose=False)
    best.set_model(model)
    best.on_epoch_end(0, {"val_loss": 0.5})
    kept = [w.copy() for w in best.best_weights]
    ckpt = ResumableCheckpoint(str(tmp_path), every_steps=1, verbose=False, best=best)
    ckpt.set_model(model)
    ckpt.history = {"loss": [1.0], "val_loss": [0.5]}
    ckpt.save(5)
    fresh_best = BestWeights("val_loss", verbose=False)
    fresh = ResumableCheckpoint(str(tmp_path), every_steps=1, verbose=False, best=fresh_best)
    assert fresh.restore(model) == 5
    assert fresh.history == {"loss": [1.0], "val_loss": [0.5]}
    assert fresh_best.best == 0.5 and fresh_best.best_epoch == 1
    for a, b in zip(fresh_best.best_weights, kept):
        np.testing.assert_array_equal(a, b)


def test_shuffled_batches_are_a_pure_function_of_the_step():
    import tensorflow as tf

    from bertcourse.training import shuffled_batches

    x = np.arange(10, dtype="int32")
    full = [b.numpy().tolist() for b in shuffled_batches(x, batch_size=3, seed=5).take(10)]
    flat = sum(full, [])
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert flat[:10] != flat[10:20]  # a new order every epoch
    for start in (1, 3, 4, 7):  # inside epochs and across their boundaries
        ds = shuffled_batches(x, batch_size=3, seed=5, start_step=start)
        iter(ds)  # another iterator first must not change anything (it did with reshuffle_each_iteration)
        assert [b.numpy().tolist() for b in ds.take(3)] == full[start:start + 3]
    assert [b.numpy().tolist() for b in shuffled_batches(x, batch_size=3, seed=6).take(2)] != full[:2]
    assert isinstance(shuffled_batches(x, batch_size=3), tf.data.Dataset)


def test_best_weights_restored_at_end():
    import keras

    from bertcourse.training import BestWeights

    class Scripted(keras.callbacks.Callback):  # validation loss is best at epoch 2
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = [3.0, 1.0, 2.0, 5.0][epoch]

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    snapshots = []

    class Snap(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append([w.copy() for w in self.model.get_weights()])

    best = BestWeights("val_loss", verbose=False)
    x, y = np.random.default_rng(0).normal(size=(16, 2)), np.ones((16, 1))
    model.fit(x, y, epochs=4, verbose=0, callbacks=[Scripted(), Snap(), best])
    assert best.best_epoch == 2
    for a, b in zip(model.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="logs only have"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[BestWeights("val_accuracy")])


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_like_float32(uninterrupted, precision, tmp_path):
    _run(tmp_path, "--steps", 40, "--precision", precision)
    ref = np.array(_losses(uninterrupted)["batch_losses"])
    got = np.array(_losses(tmp_path)["batch_losses"])
    assert np.isfinite(got).all(), f"NaN/inf under {precision}"
    # bfloat16 keeps 8 bits of mantissa: losses agree to a few percent, not bit for bit
    # (measured: bf16 mean 2%, max 6.6%). Tolerance: mean < 5%, max < 10% of the float32 loss.
    rel = np.abs(got - ref) / ref
    assert rel.mean() < 0.05 and rel.max() < 0.10, \
        f"{precision}: relative loss difference vs float32 mean {rel.mean():.3f}, max {rel.max():.3f}"
    assert got[-1] < got[0]


def test_xla_and_eager_steps_agree(uninterrupted, tmp_path):
    _run(tmp_path, "--steps", 40, "--jit")
    ref = np.array(_losses(uninterrupted)["batch_losses"])
    got = np.array(_losses(tmp_path)["batch_losses"])
    assert np.abs(got - ref).max() < 1e-4, f"XLA vs eager max loss diff {np.abs(got - ref).max():.2e}"


def test_mirrored_two_logical_cpus_matches_one_device(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _run(one, "--steps", 20, "--dropout", 0.0)
    _run(two, "--steps", 20, "--dropout", 0.0, "--logical-cpus", 2)
    assert _losses(two)["replicas"] == 2 and _losses(one)["replicas"] == 1
    a, b = np.array(_losses(one)["batch_losses"]), np.array(_losses(two)["batch_losses"])
    # same global batch split over 2 replicas: the same trajectory up to float summation order
    assert np.abs(a - b).max() < 1e-4, f"1 vs 2 devices: max loss diff {np.abs(a - b).max():.2e}"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_workers(tmp_path, *args):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(_run(tmp_path / f"worker{index}", *args, env=env, wait=False))
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
    return [tmp_path / f"worker{index}" for index in range(2)]


def _max_weight_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(_weights(a), _weights(b)))


@pytest.fixture(scope="module")
def single_no_dropout(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    _run(out, "--steps", 10, "--steps-per-epoch", 10, "--dropout", 0.0, "--loop", "fit")
    return out


@pytest.mark.parametrize("logical_cpus", [1, 2])
def test_custom_loop_matches_fit(single_no_dropout, tmp_path, logical_cpus):
    _run(tmp_path, "--steps", 10, "--steps-per-epoch", 10, "--dropout", 0.0, "--loop", "custom",
         "--logical-cpus", logical_cpus)
    assert _losses(tmp_path)["replicas"] == logical_cpus
    a = np.array(_losses(single_no_dropout)["batch_losses"])
    b = np.array(_losses(tmp_path)["batch_losses"])
    # measured: 0.0 on one device, 1.2e-7 on two (float summation order). Tolerance 1e-6.
    assert np.abs(a - b).max() < 1e-6, f"custom loop vs fit: max loss diff {np.abs(a - b).max():.2e}"
    assert _max_weight_diff(single_no_dropout, tmp_path) < 1e-6


@pytest.mark.slow
def test_two_worker_processes_train_to_the_same_result(single_no_dropout, tmp_path):
    """Two processes on 127.0.0.1 with TF_CONFIG: train() picks MultiWorkerMirroredStrategy and its
    custom loop; each worker takes half of every global batch of 16. Measured: 1.2e-7."""
    workers = _two_workers(tmp_path, "--steps", 10, "--steps-per-epoch", 10, "--dropout", 0.0)
    assert _losses(workers[0])["replicas"] == 2
    assert _max_weight_diff(workers[0], workers[1]) == 0.0, "the two workers hold different weights"
    diff = _max_weight_diff(single_no_dropout, workers[0])
    assert diff < 1e-5, f"two workers vs single process: max abs weight diff {diff:.2e}"


@pytest.mark.slow
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="Keras 3 model.fit does not run under MultiWorkerMirroredStrategy (keras-team/keras#20585, "
                          "open since TF 2.16): 'Attempt to convert a value (PerReplica...)' in _maybe_symbolic_build. "
                          "train() therefore uses its custom loop there; strict: this test starts failing the suite "
                          "the day Keras fixes fit, so that the workaround can be reviewed.")
def test_two_workers_with_keras_fit(tmp_path):
    _two_workers(tmp_path, "--steps", 10, "--steps-per-epoch", 10, "--dropout", 0.0, "--loop", "fit")


def test_train_rejects_bad_loop_and_custom_loop_with_validation(tmp_path):
    import keras
    import tensorflow as tf

    from bertcourse.training import TrainConfig, train
    from bertcourse.training.custom_loop import fit_custom_loop

    data = tf.data.Dataset.from_tensor_slices((np.ones((8, 2), "float32"), np.ones((8, 1), "float32"))).batch(4)

    def build():
        return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])

    config = TrainConfig(output_dir=str(tmp_path), max_steps=2)
    with pytest.raises(ValueError, match="loop must be"):
        train(build, data.repeat(), config, steps_per_epoch=2, loop="jax", compile_kwargs={"loss": "mse"})
    with pytest.raises(ValueError, match="custom loop trains only"):
        train(build, data.repeat(), config, steps_per_epoch=2, validation_data=data, loop="custom",
              compile_kwargs={"loss": "mse"})
    with pytest.raises(ValueError, match="compiled model"):
        fit_custom_loop(build(), data.repeat(), epochs=1, steps_per_epoch=1)


def test_get_strategy_default_on_one_cpu():
    from bertcourse.training import get_strategy

    strategy = get_strategy(verbose=False)
    assert strategy.num_replicas_in_sync == 1


def test_train_config_maps_hugging_face_arguments():
    from bertcourse.training import TrainConfig
    from bertcourse.training.loop import HF_TO_KERAS

    cfg = TrainConfig(learning_rate=2e-5, bf16=True, gradient_accumulation_steps=4, max_grad_norm=0.5)
    assert cfg.precision_policy == "mixed_bfloat16"
    opt = cfg.optimizer(total_steps=100)
    assert opt.gradient_accumulation_steps == 4 and opt.global_clipnorm == 0.5
    assert float(opt.learning_rate_schedule(10 * 4)) == pytest.approx(2e-5)  # warmup ends at update 10
    for key in ("learning_rate", "warmup_ratio", "weight_decay", "gradient_accumulation_steps", "fp16 / bf16",
                "load_best_model_at_end + metric_for_best_model", "seed"):
        assert key in HF_TO_KERAS
    with pytest.raises(ValueError, match="fp16 and bf16"):
        TrainConfig(fp16=True, bf16=True)
    with pytest.raises(ValueError, match="needs evaluation"):
        TrainConfig(load_best_model_at_end=True, eval_strategy="no")


def test_train_step_is_traced_once(tmp_path):
    """The optimizer's slots are created before the first step (``build_optimizer_eagerly``): a step that
    creates variables is traced twice by ``tf.function``, which costs seconds per fine-tuning run."""
    import keras
    import tensorflow as tf

    from bertcourse.training import TrainConfig, train
    from bertcourse.training.loop import build_optimizer_eagerly

    data = tf.data.Dataset.from_tensor_slices((np.ones((8, 2), "float32"), np.ones((8, 1), "float32"))).batch(4)

    class Counting(keras.Sequential):
        traces = 0

        def train_step(self, data):  # its Python body runs once per trace
            Counting.traces += 1
            return super().train_step(data)

    def build():
        return Counting([keras.Input((2,)), keras.layers.Dense(3), keras.layers.Dense(1)])

    config = TrainConfig(output_dir=str(tmp_path), max_steps=4, logging_dir=None)
    model, _ = train(build, data.repeat(), config, steps_per_epoch=2, compile_kwargs={"loss": "mse"}, verbose=0)
    assert model.optimizer.built
    assert Counting.traces == 1
    assert not build_optimizer_eagerly(model)  # already built: nothing to do
    unbuilt = keras.Sequential([keras.layers.Dense(1)])  # no Input: Keras builds it (and the slots) at step 1
    unbuilt.compile(keras.optimizers.AdamW(), "mse")
    assert not build_optimizer_eagerly(unbuilt) and not unbuilt.optimizer.built
