"""Benchmark: bertcourse BertBackbone vs keras_hub.models.BertBackbone, same preset, batch and weights.

    .venv/bin/python bench/backbone.py                      # tiny, mini, small; batch 32 x seq 128
    .venv/bin/python bench/backbone.py --presets mini --steps-seconds 3

Speed. For every preset and setting (float32 / mixed_bfloat16, XLA off / on) one subprocess builds
three models with the same weights: keras-hub's, ours, and ours with ``fused_qkv=True``. It compiles
an inference forward pass and a training step (AdamW, a simple loss on both outputs) for each, then
times them *interleaved* (keras-hub, ours, ours-fused, keras-hub, ...), so that whatever else runs on
the machine slows all three alike. Tokens/s comes from the fastest step of each (other processes only
ever add time, so the minimum is the most repeatable estimate; medians are in the JSON).

Memory. One more subprocess per preset and implementation (float32, no XLA) runs one forward pass and
one training step and reports its peak resident set size, ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
(which includes ~0.7 GB of TensorFlow runtime: compare rows, not absolutes).
``tf.config.experimental.get_memory_info`` only exists for GPUs and ``tracemalloc`` does not see
TensorFlow's allocator.

FLOP/s are counted analytically (the matmuls: projections, attention, feed-forward; a training step is
3x the forward) and shown as a fraction of this machine's float32 matmul peak, measured in the same run
(fastest 2048x2048 tf.matmul, at the start and the end of the run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Run as a script, Python puts bench/ first on sys.path, where sibling scripts (bench/tokenizer_speed.py)
# would shadow real packages that keras-hub imports. Only the repository root belongs there.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
MODELS = ("keras_hub", "ours", "ours_fused")


def _flops_per_token(cfg, seq_len: int) -> float:
    """Forward matmul FLOPs per token (multiply-add = 2)."""
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_layers
    per_layer = 2 * 4 * h * h + 2 * 2 * seq_len * h + 2 * 2 * h * i
    return n * per_layer + 2 * h * h / seq_len  # pooler once per sequence


# ---------------------------------------------------------------------------- workers
def _setup(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)
    import numpy as np
    import tensorflow as tf

    from bertcourse import BertConfig

    cfg = BertConfig.preset(args.preset, hidden_act="gelu_approximate")  # the same function as keras-hub's
    rng = np.random.default_rng(0)
    b, s = args.batch, args.seq
    ids = rng.integers(1000, cfg.vocab_size, size=(b, s)).astype("int32")
    lengths = rng.integers(s // 2, s + 1, size=b)  # realistic padding
    mask = (np.arange(s)[None, :] < lengths[:, None]).astype("int32")
    ids[:, 0] = 101
    ids = ids * mask
    batch = {"token_ids": tf.constant(ids), "segment_ids": tf.zeros((b, s), tf.int32),
             "padding_mask": tf.constant(mask)}
    return cfg, batch, mask


def _build(name, cfg, dtype):
    import keras_hub

    from bertcourse.convert import keras_hub_kwargs
    from bertcourse.models import BertBackbone

    if name == "keras_hub":
        return keras_hub.models.BertBackbone(**keras_hub_kwargs(cfg), dtype=dtype)
    return BertBackbone(cfg, dtype=dtype, fused_qkv=(name == "ours_fused"))


def _functions(model, xla):
    import keras
    import tensorflow as tf

    @tf.function(jit_compile=xla)
    def forward(x):
        out = model(x, training=False)
        return out["sequence_output"]

    optimizer = keras.optimizers.AdamW(1e-4)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=xla)
    def train_step(x):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            seq = tf.cast(out["sequence_output"], "float32")
            pooled = tf.cast(out["pooled_output"], "float32")
            loss = tf.reduce_mean(tf.square(seq[:, :, :8])) + tf.reduce_mean(tf.square(pooled))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return forward, train_step


def worker_speed(args) -> dict:
    cfg, batch, mask = _setup(args)
    import keras
    import numpy as np
    import tensorflow as tf

    from bertcourse.convert import copy_weights_from_keras_hub

    keras.utils.set_random_seed(0)
    models = {name: _build(name, cfg, args.precision) for name in MODELS}
    copy_weights_from_keras_hub(models["keras_hub"], models["ours"])
    models["ours_fused"].set_weights(models["ours"].get_weights())
    if args.extra_precision:  # the same three models under a second policy, timed in the same rounds
        for name in MODELS:
            models[f"{name}@{args.extra_precision}"] = extra = _build(name, cfg, args.extra_precision)
            extra.set_weights(models[name].get_weights())
    fns = {name: _functions(m, args.xla) for name, m in models.items()}
    result = {"preset": args.preset, "precision": args.precision, "xla": args.xla, "models": {}}
    if args.precision != "float32":  # the accuracy cost of this precision: same weights, float32 forward
        ref = _build("ours", cfg, "float32")
        ref.set_weights(models["ours"].get_weights())
        m = mask.astype(bool)
        want = np.asarray(ref(batch)["sequence_output"])[m]
        got = np.asarray(tf.cast(models["ours"](batch)["sequence_output"], "float32"))[m]
        result["max_abs_diff_vs_fp32"] = float(np.abs(want - got).max())
        result["mean_abs_diff_vs_fp32"] = float(np.abs(want - got).mean())
        result["fp32_output_std"] = float(want.std())
        del ref
    if args.extra_precision:
        m = mask.astype(bool)
        want = np.asarray(models["ours"](batch)["sequence_output"], "float32")[m]
        got = np.asarray(tf.cast(models[f"ours@{args.extra_precision}"](batch)["sequence_output"], "float32"))[m]
        result["max_abs_diff_vs_fp32"] = float(np.abs(want - got).max())
        result["mean_abs_diff_vs_fp32"] = float(np.abs(want - got).mean())
        result["fp32_output_std"] = float(want.std())
    tokens = args.batch * args.seq
    flops = _flops_per_token(cfg, args.seq) * tokens
    for phase, index in (("fwd", 0), ("train", 1)):
        first, times = {}, {name: [] for name in models}
        for name in models:  # compile + warm up
            t0 = time.perf_counter()
            np.asarray(fns[name][index](batch))
            first[name] = time.perf_counter() - t0
        start = time.perf_counter()
        while True:
            for name in models:
                t0 = time.perf_counter()
                np.asarray(fns[name][index](batch))
                times[name].append(time.perf_counter() - t0)
            rounds = len(times["ours"])
            if rounds >= args.min_steps and (time.perf_counter() - start > args.steps_seconds * len(models)
                                             or rounds >= 40):
                break
        for name in models:
            r = result["models"].setdefault(name, {})
            best, med = float(np.min(times[name])), float(np.median(times[name]))
            r[f"{phase}_tok_s"] = tokens / best
            r[f"{phase}_tok_s_median"] = tokens / med
            r[f"{phase}_gflops"] = (1 if phase == "fwd" else 3) * flops / best / 1e9
            r[f"{phase}_first_s"] = first[name]
            r[f"{phase}_steps"] = len(times[name])
    return result


def worker_memory(args) -> dict:
    import resource

    cfg, batch, _ = _setup(args)
    import keras
    import numpy as np

    def rss_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    keras.utils.set_random_seed(0)
    model = _build(args.impl, cfg, args.precision)
    forward, train_step = _functions(model, args.xla)
    base = rss_mb()
    for _ in range(2):
        np.asarray(forward(batch))
    fwd = rss_mb()
    for _ in range(2):
        np.asarray(train_step(batch))
    return {"preset": args.preset, "impl": args.impl, "base_rss_mb": base, "fwd_peak_rss_mb": fwd,
            "train_peak_rss_mb": rss_mb()}


def matmul_peak(n: int = 2048, seconds: float = 3.0) -> dict:
    """float32 and bfloat16 GFLOP/s of a square tf.matmul on this machine (fastest repetition)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    out = {}
    for dtype in ("float32", "bfloat16"):
        a = tf.cast(tf.random.normal((n, n), dtype="float32"), dtype)
        f = tf.function(lambda x: tf.matmul(x, x))
        f(a).numpy()
        best, start = float("inf"), time.perf_counter()
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            f(a).numpy()
            best = min(best, time.perf_counter() - t0)
        out[dtype] = 2 * n ** 3 / best / 1e9
    return out


# ---------------------------------------------------------------------------- driver
def _run(extra, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--batch", str(args.batch), "--seq", str(args.seq),
           "--steps-seconds", str(args.steps_seconds), "--min-steps", str(args.min_steps)] + extra
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()
        print(proc.stderr[-2000:], file=sys.stderr)
        return {"error": tail[-1] if tail else f"rc={proc.returncode}"}
    return json.loads(lines[-1])


def _setting(precision, xla):
    return ("fp32" if precision == "float32" else "bf16") + (" XLA" if xla else "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "mini", "small"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps-seconds", type=float, default=0.5, help="time budget per model and phase")
    p.add_argument("--min-steps", type=int, default=3)
    p.add_argument("--settings", nargs="+", default=["fp32", "fp32-xla", "bf16"],
                   choices=["fp32", "fp32-xla", "bf16", "bf16-xla"],
                   help="precision/XLA settings to time (bf16 = mixed_bfloat16)")
    p.add_argument("--json", help="also write all results to this file")
    p.add_argument("--worker", choices=["speed", "memory"], help=argparse.SUPPRESS)
    p.add_argument("--preset", default="tiny", help=argparse.SUPPRESS)
    p.add_argument("--impl", default="ours", choices=MODELS, help=argparse.SUPPRESS)
    p.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--xla", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--extra-precision", help=argparse.SUPPRESS)
    p.add_argument("--interleave-precision", metavar="POLICY",
                   help="time POLICY (e.g. mixed_bfloat16) in the same process and rounds as float32, no XLA")
    args = p.parse_args(argv)
    if args.worker:
        out = worker_speed(args) if args.worker == "speed" else worker_memory(args)
        print(json.dumps(out), flush=True)
        return 0

    start = time.time()
    load_start = os.getloadavg()[0]
    peak = matmul_peak()
    print(f"matmul peak (2048x2048): float32 {peak['float32']:.0f} GFLOP/s, bfloat16 {peak['bfloat16']:.0f} GFLOP/s",
          flush=True)
    speed, memory = [], []
    for preset in args.presets:
        for setting in args.settings:
            precision = "float32" if setting.startswith("fp32") else "mixed_bfloat16"
            xla = setting.endswith("-xla")
            extra = ["--worker", "speed", "--preset", preset, "--precision", precision] + (["--xla"] if xla else [])
            if args.interleave_precision and precision == "float32" and not xla:
                extra += ["--extra-precision", args.interleave_precision]
            r = _run(extra, args)
            r.update(preset=preset, precision=precision, xla=xla,
                     extra_precision=args.interleave_precision if "--extra-precision" in extra else None)
            speed.append(r)
            print(json.dumps(r), flush=True)
        for impl in ("keras_hub", "ours"):
            r = _run(["--worker", "memory", "--preset", preset, "--impl", impl], args)
            r.update(preset=preset, impl=impl)
            memory.append(r)
            print(json.dumps(r), flush=True)
    again = matmul_peak()
    peak = {k: max(peak[k], again[k]) for k in peak}
    load_end = os.getloadavg()[0]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"matmul_peak_gflops": peak, "speed": speed, "memory": memory,
                       "load_average": [load_start, load_end]}, f, indent=1)
    report(speed, memory, peak, args, (load_start, load_end), time.time() - start)
    return 0


def report(speed, memory, peak, args, load, seconds) -> None:
    fp32 = peak["float32"]
    print()
    print(f"batch {args.batch} x seq {args.seq}; float32 matmul peak {fp32:.0f} GFLOP/s (bfloat16 {peak['bfloat16']:.0f}); "
          f"load average {load[0]:.1f} -> {load[1]:.1f} on {os.cpu_count()} cores; {seconds / 60:.1f} min")
    print()
    print("| preset | setting | model | fwd tok/s | fwd vs kh | train tok/s | train vs kh | fwd % fp32 peak | "
          "train % fp32 peak |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    best = {}
    for r in speed:
        label = _setting(r["precision"], r["xla"])
        if "error" in r:
            print(f"| {r['preset']} | {label} | error: {r['error']} | | | | | | |")
            continue
        for key, m in r["models"].items():
            name, _, other = key.partition("@")
            kh = r["models"]["keras_hub" + ("@" + other if other else "")]
            row_label = _setting(other, r["xla"]) + " (same rounds)" if other else label
            print(f"| {r['preset']} | {row_label} | {name} | {m['fwd_tok_s']:,.0f} | {m['fwd_tok_s'] / kh['fwd_tok_s']:.2f}x | "
                  f"{m['train_tok_s']:,.0f} | {m['train_tok_s'] / kh['train_tok_s']:.2f}x | "
                  f"{100 * m['fwd_gflops'] / fp32:.0f}% | {100 * m['train_gflops'] / fp32:.0f}% |")
            key = (r["preset"], "keras_hub" if name == "keras_hub" else "ours")
            if m["train_tok_s"] > best.get(key, (0, None))[0]:
                best[key] = (m["train_tok_s"], f"{name} {row_label}")
    print()
    print("| preset | model | peak RSS after forward (MB) | peak RSS after training step (MB) |")
    print("|---|---|---:|---:|")
    for r in memory:
        if "error" in r:
            print(f"| {r['preset']} | {r['impl']} | error: {r['error']} | |")
            continue
        print(f"| {r['preset']} | {r['impl']} | {r['fwd_peak_rss_mb']:,.0f} | {r['train_peak_rss_mb']:,.0f} |")
    print()
    print("bf16 accuracy cost (ours, same weights, sequence_output at the non-padded positions of the benchmark "
          "batch vs float32):")
    for r in speed:
        if "max_abs_diff_vs_fp32" in r:
            print(f"  {r['preset']} {_setting(r.get('extra_precision') or r['precision'], r['xla'])}: max |diff| {r['max_abs_diff_vs_fp32']:.3f}, "
                  f"mean |diff| {r['mean_abs_diff_vs_fp32']:.4f} (output std {r['fp32_output_std']:.2f})")
    print()
    print("Training throughput, fastest setting of each implementation:")
    for preset in args.presets:
        if (preset, "ours") in best and (preset, "keras_hub") in best:
            o, k = best[(preset, "ours")], best[(preset, "keras_hub")]
            print(f"  {preset}: ours [{o[1]}] {o[0]:,.0f} tok/s vs keras-hub [{k[1]}] {k[0]:,.0f} tok/s = {o[0] / k[0]:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
