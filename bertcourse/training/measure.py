"""Measure a training step: speed and peak memory, each setting in a fresh process (lesson 08).

Peak memory of a process only grows, so comparing float32, bfloat16 and XLA fairly needs one process
per setting; :func:`measure_training` starts ``python -m bertcourse.training.measure`` and reads its
JSON answer. On a CPU the number is the peak resident set size (RSS) of the whole process: the
TensorFlow runtime, the model, its optimizer state and the step's activations.

>>> from bertcourse.training.measure import measure_training                       # doctest: +SKIP
>>> measure_training("mini", "mixed_bfloat16", jit_compile=False, steps=10)         # doctest: +SKIP
{'tokens_per_second': 12044.0, 'peak_rss_mib': 1210.5, 'baseline_rss_mib': 702.3, ...}

The memory number is the process's high-water mark, which only grows:

>>> before = peak_rss_mib()
>>> block = bytearray(64 * 1024 * 1024)
>>> peak_rss_mib() >= before
True
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import keras
import numpy as np

from bertcourse.config import BertConfig
from bertcourse.data.masking import num_predictions
from bertcourse.models import BertBackbone
from bertcourse.models.pretraining import BertPretrainer
from bertcourse.training.loop import set_precision
from bertcourse.training.optim import bert_adamw

__all__ = ["measure_training", "peak_rss_mib"]


def measure_training(preset: str = "mini", precision: str = "float32", jit_compile: bool = False, steps: int = 10,
                     batch_size: int = 32, seq_len: int = 128, vocab_size: int = 8000, timeout: float = 900) -> dict:
    """Train ``steps`` pretraining steps (MLM + NSP, random ids) in a fresh process; return its speed
    (``tokens_per_second`` after two warm-up steps), ``peak_rss_mib`` and ``baseline_rss_mib`` (the
    process after importing TensorFlow and Keras, before building the model)."""
    cmd = [sys.executable, "-m", "bertcourse.training.measure", "--preset", preset, "--precision", precision,
           "--steps", str(steps), "--batch-size", str(batch_size), "--seq-len", str(seq_len),
           "--vocab-size", str(vocab_size)] + (["--jit"] if jit_compile else [])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"measuring {preset}/{precision}/jit={jit_compile} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_rss_mib() -> float:
    """This process's peak resident memory. Linux: ``VmHWM`` of /proc/self/status, which starts afresh
    with the new program; ``ru_maxrss`` would still hold the parent's peak from before ``exec``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="one training measurement (used by measure_training)")
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=8000)
    args = parser.parse_args(argv)
    baseline = peak_rss_mib()
    set_precision(args.precision)
    keras.utils.set_random_seed(0)
    cfg = BertConfig.preset(args.preset, vocab_size=args.vocab_size, max_position_embeddings=max(args.seq_len, 128))
    model = BertPretrainer(BertBackbone(cfg))
    model.compile(bert_adamw(1e-4, 1000), jit_compile=args.jit)
    rng = np.random.default_rng(0)
    b, s = args.batch_size, args.seq_len
    ids = rng.integers(5, args.vocab_size, (b, s)).astype("int32")
    predictions = num_predictions(s)
    positions = np.sort(rng.integers(1, s, (b, predictions)), axis=1).astype("int32")
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids),
         "masked_positions": positions}
    y = {"mlm": np.take_along_axis(ids, positions, 1), "nsp": np.zeros(b, "int32")}
    for _ in range(2):  # trace / compile
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = model.train_on_batch(x, y)
    elapsed = time.perf_counter() - start
    if not np.isfinite(np.asarray(loss, dtype="float64")).all():
        raise SystemExit("loss is not finite")
    print(json.dumps({"preset": args.preset, "precision": args.precision, "jit_compile": args.jit,
                      "tokens_per_second": round(args.steps * b * s / elapsed, 1),
                      "peak_rss_mib": round(peak_rss_mib(), 1), "baseline_rss_mib": round(baseline, 1),
                      "parameters": int(model.count_params())}))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
