#!/usr/bin/env python
"""Where the time of ``pipeline("question-answering")`` goes (issue 17): the figures behind bench/README's
"What the work found".

    .venv/bin/python bench/qa_profile.py --from-run runs/bench-qa-full/seed0 --questions 256

On the first ``--questions`` held-out SQuAD dev questions and a finished QA run (``bench/qa.py`` makes one):

1. the pipeline's stages: windows (tokenizing included), forward passes, decoding;
2. token positions the model computes with the windows batched in input order (each batch padded to its
   longest window, rounded up to 8) and shortest first (each batch cut to its longest), against the real
   tokens, and the forward time of each way (interleaved rounds, best kept);
3. one float32 forward pass per window, ours (Keras, TF) and torch (``transformers``, same weights), at a
   batch of 32 windows of ``max_seq_length`` tokens;
4. the exact GELU on a ``[1920, 1536]`` batch: ``tf.nn.gelu`` (divides by sqrt 2) against
   ``bertcourse.layers.gelu_exact`` (multiplies by 1/sqrt 2);
5. the dense layers on ``[tokens, hidden]`` (``bertcourse.layers.tokenwise.per_token``, which lets oneDNN
   fuse matmul, bias and GELU) against the same layers on ``[batch, seq, hidden]``: one forward pass of
   16 windows of 96, 160 and 192 tokens, the two models interleaved, same weights and outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from bertcourse.data.squad import read_squad, split_articles, squad_path
from bertcourse.layers import attention as attention_module
from bertcourse.layers import feedforward as feedforward_module
from bertcourse.layers import gelu_exact
from bertcourse.tasks.base import padded_batches
from bertcourse.tasks.question_answering import decode_answers, save_hf_question_answerer
from bertcourse.training.run import RunDirectory

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def unfused_dense_layers():
    """Models built and traced inside run their dense layers on ``[batch, seq, hidden]`` (as before
    ``per_token``): the layers' modules look ``per_token`` up at call time."""
    saved = attention_module.per_token, feedforward_module.per_token
    attention_module.per_token = feedforward_module.per_token = lambda layer, x: layer(x)
    try:
        yield
    finally:
        attention_module.per_token, feedforward_module.per_token = saved


def best_of(rounds: int, fn) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def positions(features, batch_size: int, grouped: bool) -> int:
    """Token positions the forward passes compute: the batches ``window_logits`` makes."""
    return sum(batch["token_ids"].size for _, batch in padded_batches(features.inputs, batch_size, grouped))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-run", default=str(ROOT / "runs" / "bench-qa-full" / "seed0"))
    parser.add_argument("--questions", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    args = parser.parse_args(argv)
    run = RunDirectory(args.from_run)
    if not run.is_finished:
        parser.error(f"--from-run {args.from_run}: not a finished run (bench/qa.py makes one)")
    print(f"start: load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)", flush=True)
    model = run.load_task()
    held = split_articles(read_squad(squad_path("dev-v1.1.json")))[1].examples()[:args.questions]
    questions, contexts = [e.question for e in held], [e.context for e in held]
    model.answer(questions[:32], contexts[:32])        # warm-up: traces
    features = model.features(questions, contexts)
    width = features.inputs["token_ids"].shape[1]

    # 1. stages
    t_windows = best_of(args.rounds, lambda: model.features(questions, contexts))
    logits = model.window_logits(features, batch_size=args.batch_size)
    t_decode = best_of(args.rounds, lambda: decode_answers(features, *logits, max_answer_len=30))
    # 2. padding: positions and forward time, the two orders interleaved
    real = int(features.inputs["padding_mask"].sum())
    computed = {g: positions(features, args.batch_size, g) for g in (False, True)}
    forward = {False: [], True: []}
    for _ in range(args.rounds):
        for grouped in (False, True):
            t = time.perf_counter()
            model.window_logits(features, batch_size=args.batch_size, group_by_length=grouped)
            forward[grouped].append(time.perf_counter() - t)
    print(f"{len(held)} questions, {len(features)} windows of up to {width} tokens, {real:,} real tokens")
    print(f"stages: windows {t_windows:.2f} s, forward passes (shortest first) {min(forward[True]):.2f} s, "
          f"decoding {t_decode:.2f} s")
    for grouped, name in ((False, "input order, padded to the batch's longest (x8)"),
                          (True, "shortest first, cut to the batch's longest")):
        print(f"  {name}: {computed[grouped]:,} positions ({computed[grouped] / real:.2f}x the real tokens), "
              f"forward {min(forward[grouped]):.2f} s")

    # 3. one forward pass per window, ours vs torch, same weights and shape
    ids = np.random.default_rng(0).integers(1000, 2000, (32, width)).astype("int32")
    batch = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
    model.predict_on_batch(batch)
    ours = best_of(args.rounds, lambda: model.predict_on_batch(batch)) / 32
    try:
        import torch  # lazy: the twin is optional (parity extra)
        import transformers  # lazy: the twin is optional (parity extra)
    except ImportError:
        print(f"forward, 32 windows of {width}: ours {ours * 1000:.1f} ms per window (torch not installed)")
    else:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        hf_dir = Path(args.from_run) / "hf"
        if not hf_dir.exists():
            save_hf_question_answerer(model, hf_dir)
        hf = transformers.BertForQuestionAnswering.from_pretrained(str(hf_dir)).eval()
        x = torch.tensor(ids, dtype=torch.long)
        with torch.inference_mode():
            hf(input_ids=x)
            theirs = best_of(args.rounds, lambda: hf(input_ids=x)) / 32
        print(f"forward, 32 windows of {width}: ours {ours * 1000:.1f} ms per window, torch {theirs * 1000:.1f} ms")

    # 4. the exact GELU
    h = tf.random.normal([1920, 1536], seed=0)
    divide = tf.function(lambda x: tf.nn.gelu(x, approximate=False))
    multiply = tf.function(gelu_exact)
    for f in (divide, multiply):
        f(h)
    t_div = best_of(20, lambda: divide(h))
    t_mul = best_of(20, lambda: multiply(h))
    diff = float(tf.reduce_max(tf.abs(divide(h) - multiply(h))))
    print(f"exact GELU on [1920, 1536]: tf.nn.gelu {t_div * 1000:.2f} ms, gelu_exact {t_mul * 1000:.2f} ms "
          f"(max |diff| {diff:.1e})")

    # 5. dense layers per token ([tokens, hidden], fused by oneDNN) against [batch, seq, hidden]
    flat = model                                   # built with per_token, as the package is
    with unfused_dense_layers():
        unfused = run.load_task()
        batches = []
        for width in (96, 160, 192):
            ids = np.random.default_rng(width).integers(1000, 2000, (16, width)).astype("int32")
            batches.append({"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)})
            unfused.predict_on_batch(batches[-1])      # traced while the layers use [batch, seq, hidden]
    line = []
    for batch in batches:
        a, b = flat.predict_on_batch(batch), unfused.predict_on_batch(batch)
        diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
        times = {"per token": [], "3-D": []}
        for _ in range(5 * args.rounds):
            for name, m in (("per token", flat), ("3-D", unfused)):
                t = time.perf_counter()
                m.predict_on_batch(batch)
                times[name].append(time.perf_counter() - t)
        fast, slow = min(times["per token"]), min(times["3-D"])
        line.append(f"[16, {batch['token_ids'].shape[1]}] {slow * 1000:.0f} -> {fast * 1000:.0f} ms "
                    f"({1 - fast / slow:.1%} less; max |diff| {diff:.1e})")
    print("dense layers on [batch, seq, hidden] -> per token: " + ", ".join(line))
    print(f"end: load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
