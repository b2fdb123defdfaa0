#!/usr/bin/env python
"""Extractive QA on held-out SQuAD dev articles: fine-tuned MiniLM vs a lexical baseline, the Hugging Face
twin on the fine-tuned weights, and pipeline speed (issue 17).

    nice -n 5 .venv/bin/python bench/qa.py                    # a quick look: 32 steps, far from converged
    # the issue-17 quality run: every training and held-out question, 3 seeds (2 h idle on 2 CPU cores)
    .venv/bin/python bench/qa.py --train-questions 0 --eval-questions 0 --seeds 3 --epochs 2 --seq-len 192 \
        --doc-stride 64 --batch-size 32 --learning-rate 1e-4 --json bench/results/qa-full.json

1. Data: the shipped SQuAD v1.1 dev file split by article (``bertcourse.data.squad.HELD_OUT_TITLES``): the
   model trains on a seeded sample of the 36 training articles' questions and is scored on a seeded sample of
   the 12 held-out articles' questions (0 = all). Numbers are "held-out SQuAD dev articles", never a SQuAD
   dev score.
2. Quality: all-MiniLM-L6-v2 (``bertcourse.pretrained``) + ``BertQuestionAnswerer``, fine-tuned with
   ``finetune_question_answerer`` (the one engine) once per seed; the official EM/F1 next to
   ``lexical_baseline`` (sliding-window word overlap).
3. Twin: the first seed's model written as ``BertForQuestionAnswering`` (``save_hf_question_answerer``), run
   by ``transformers.QuestionAnsweringPipeline`` (torch, CPU, float32) with the same ``max_seq_len``,
   ``doc_stride``, ``max_answer_len``, ``top_k``: same answer text and offsets, score difference; every
   difference is listed.
4. Speed: questions/s of ``pipeline("question-answering")`` (one call with the list) and of the HF pipeline
   on the same weights and questions, called both ways (one question per call; the whole list in one call
   with ``batch_size``), interleaved (one pass of each in turn, best pass kept, medians in the JSON), float32
   and bfloat16. The ratio that counts is against HF's faster way.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path


from bertcourse.convert import load_hf_bert
from bertcourse.data.squad import read_squad, split_articles, squad_path
from bertcourse.models import BertBackbone
from bertcourse.pretrained import model_path
from bertcourse.tasks.question_answering import (BertQuestionAnswerer, QuestionAnsweringPipeline, lexical_baseline,
                                                 save_hf_question_answerer, squad_metrics)
from bertcourse.training.finetune_qa import finetune_question_answerer
from bertcourse.training.loop import set_precision
from bertcourse.training.run import RunDirectory

ROOT = Path(__file__).resolve().parents[1]
PAUSE_S = 0.5   # before each timed pass of the speed rounds


def load_average() -> float:
    return os.getloadavg()[0]


def sample(items: list, n: int, seed: int) -> list:
    if n <= 0 or n >= len(items):
        return list(items)
    return random.Random(seed).sample(items, n)


def hf_pipeline(path: Path, bf16: bool = False):
    import torch  # lazy: the twin is optional (parity extra)
    import transformers  # lazy: the twin is optional (parity extra)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = transformers.BertForQuestionAnswering.from_pretrained(str(path)).eval()
    if bf16:
        model = model.to(torch.bfloat16)
    tokenizer = transformers.BertTokenizerFast.from_pretrained(str(path))
    return transformers.QuestionAnsweringPipeline(model=model, tokenizer=tokenizer, framework="pt", device=-1)


def score(model, held: list) -> dict:
    """Official EM/F1 of ``model`` on the held-out questions, with the seconds it took."""
    t = time.time()
    predictions, _ = model.predict_answers(held)
    return {"eval_questions": len(held), **squad_metrics(predictions, held), "eval_s": time.time() - t}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-questions", type=int, default=400, help="0: all 8,181")
    parser.add_argument("--eval-questions", type=int, default=300, help="0: all 2,389 held-out questions")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=192)
    parser.add_argument("--doc-stride", type=int, default=64)
    parser.add_argument("--max-answer-len", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--twin-questions", type=int, default=100, help="0: every held-out question")
    parser.add_argument("--from-run", help="skip fine-tuning: score, twin and time this finished QA run instead")
    parser.add_argument("--speed-questions", type=int, default=256)
    parser.add_argument("--speed-rounds", type=int, default=3)
    parser.add_argument("--hf-batch-size", type=int, default=16, help="HF pipeline batch_size for its list call")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-qa"))
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args(argv)
    t_start, load_start = time.time(), load_average()
    print(f"start: load average {load_start:.1f} ({os.cpu_count()} cores)", flush=True)
    report: dict = {"args": vars(args), "load_start": load_start}

    data = read_squad(squad_path("dev-v1.1.json"))
    train_articles, held_articles = split_articles(data)
    held = sample(held_articles.examples(), args.eval_questions, seed=0)
    print(f"held-out SQuAD dev articles: {len(held)} questions of {len(held_articles.examples())}", flush=True)

    # ---- the lexical baseline
    t = time.time()
    baseline = {}
    for ex in held:
        s, e = lexical_baseline(ex.question, ex.context)
        baseline[ex.id] = ex.context[s:e]
    report["baseline"] = squad_metrics(baseline, held)
    print(f"lexical baseline: EM {report['baseline']['exact_match']:.1f} F1 {report['baseline']['f1']:.1f} "
          f"({time.time() - t:.0f} s)", flush=True)

    # ---- fine-tuned MiniLM, per seed
    runs = []
    first_model = None
    for seed in range(0 if args.from_run else args.seeds):
        train = sample(train_articles.examples(), args.train_questions, seed=100 + seed)
        t = time.time()
        model, metrics = finetune_question_answerer(
            lambda: load_hf_bert(model_path())[0], load_hf_bert(model_path())[1], train, f"{args.out}/seed{seed}",
            seq_len=args.seq_len, doc_stride=args.doc_stride, max_answer_len=args.max_answer_len,
            batch_size=args.batch_size, epochs=args.epochs, learning_rate=args.learning_rate, seed=seed,
            overwrite=True, verbose=2, source={"model": "all-MiniLM-L6-v2"})
        train_s = time.time() - t
        scores = score(model, held)
        runs.append({"seed": seed, "train_questions": len(train), "train_windows": metrics["train_windows"],
                     "train_s": train_s, **scores})
        print(f"seed {seed}: {len(train)} questions ({metrics['train_windows']} windows) trained in {train_s:.0f} s; "
              f"EM {scores['exact_match']:.1f} F1 {scores['f1']:.1f} (eval {scores['eval_s']:.0f} s)", flush=True)
        if first_model is None:
            first_model = model
    if args.from_run:
        run = RunDirectory(args.from_run)
        if not run.is_finished:
            parser.error(f"--from-run {args.from_run}: not a finished run")
        first_model = run.load_task()
        runs.append({"seed": run.config["train"]["seed"], "from_run": args.from_run, **score(first_model, held)})
        print(f"{args.from_run}: EM {runs[-1]['exact_match']:.1f} F1 {runs[-1]['f1']:.1f}", flush=True)
    report["runs"] = runs
    f1s = [r["f1"] for r in runs]
    ems = [r["exact_match"] for r in runs]
    report["f1_mean"], report["em_mean"] = statistics.mean(f1s), statistics.mean(ems)
    report["f1_std"] = statistics.stdev(f1s) if len(f1s) > 1 else 0.0
    report["em_std"] = statistics.stdev(ems) if len(ems) > 1 else 0.0

    # ---- the twin
    model = first_model
    hf_dir = save_hf_question_answerer(model, Path(args.out) / "hf")
    hf = hf_pipeline(hf_dir)
    ours = QuestionAnsweringPipeline(model)
    twin = held[:args.twin_questions] if args.twin_questions > 0 else held
    options = {"top_k": 1, "max_answer_len": args.max_answer_len}
    mine = ours(question=[e.question for e in twin], context=[e.context for e in twin], **options)
    differences, max_score_diff = [], 0.0
    for ex, a in zip(twin, mine):
        b = hf(question=ex.question, context=ex.context, max_seq_len=args.seq_len, doc_stride=args.doc_stride,
               **options)
        if (a["answer"], a["start"], a["end"]) != (b["answer"], b["start"], b["end"]):
            differences.append({"id": ex.id, "ours": a, "hf": b})
        else:
            max_score_diff = max(max_score_diff, abs(a["score"] - b["score"]))
    report["twin"] = {"questions": len(twin), "same": len(twin) - len(differences), "max_score_diff": max_score_diff,
                      "differences": differences}
    print(f"twin: {len(twin) - len(differences)}/{len(twin)} same answer and offsets; max score difference "
          f"{max_score_diff:.2e}", flush=True)
    for d in differences:
        print("  differs:", json.dumps(d), flush=True)

    # ---- speed, interleaved
    speed_q = held[:args.speed_questions]
    qs, cs = [e.question for e in speed_q], [e.context for e in speed_q]
    speed = {}
    report["load_speed_start"] = load_average()
    for precision in ("float32", "bfloat16") if speed_q and args.speed_rounds > 0 else ():
        if precision == "bfloat16":
            set_precision("mixed_bfloat16")
            bf = BertQuestionAnswerer(BertBackbone(model.backbone.config, dtype="mixed_bfloat16"),
                                      preprocessor=model.preprocessor, doc_stride=model.doc_stride,
                                      max_answer_len=model.max_answer_len)
            bf.set_weights(model.get_weights())
            pipe_ours, pipe_hf = QuestionAnsweringPipeline(bf), hf_pipeline(hf_dir, bf16=True)
        else:
            pipe_ours, pipe_hf = ours, hf
        pipe_ours(question=qs[:32], context=cs[:32], **options)    # warm-up (traces: a few shapes, then one generic)
        hf_options = {"max_seq_len": args.seq_len, "doc_stride": args.doc_stride, **options}
        pipe_hf(question=qs[0], context=cs[0], **hf_options)
        pipe_hf(question=qs[:4], context=cs[:4], batch_size=args.hf_batch_size, **hf_options)
        seconds: dict[str, list[float]] = {"ours": [], "hf": [], "hf_batched": []}
        for _ in range(args.speed_rounds):
            # Each timed pass starts after a pause, so neither framework's idle worker threads (torch's
            # OpenMP spin-wait, TensorFlow's thread pool) are still spinning into the next one's time.
            time.sleep(PAUSE_S)
            t = time.perf_counter()
            pipe_ours(question=qs, context=cs, **options)
            seconds["ours"].append(time.perf_counter() - t)
            time.sleep(PAUSE_S)
            t = time.perf_counter()
            for q, c in zip(qs, cs):          # one question per call, as HF's docs and most users do
                pipe_hf(question=q, context=c, **hf_options)
            seconds["hf"].append(time.perf_counter() - t)
            time.sleep(PAUSE_S)
            t = time.perf_counter()           # the whole list in one call, windows batched
            pipe_hf(question=qs, context=cs, batch_size=args.hf_batch_size, **hf_options)
            seconds["hf_batched"].append(time.perf_counter() - t)
        qps = {k: len(qs) / min(v) for k, v in seconds.items()}
        speed[precision] = {"questions": len(qs), "rounds_s": seconds, **{f"{k}_qps": v for k, v in qps.items()},
                            "ratio": qps["ours"] / qps["hf"], "ratio_vs_batched": qps["ours"] / qps["hf_batched"],
                            "ratio_vs_best_hf": qps["ours"] / max(qps["hf"], qps["hf_batched"]),
                            "median_ratio_vs_best_hf": min(statistics.median(seconds["hf"]),
                                                           statistics.median(seconds["hf_batched"]))
                            / statistics.median(seconds["ours"])}
        print(f"speed {precision} ({len(qs)} questions, best of {args.speed_rounds} interleaved rounds): ours "
              f"{qps['ours']:.1f} q/s, HF one call per question {qps['hf']:.1f} q/s, HF one call with batch_size="
              f"{args.hf_batch_size} {qps['hf_batched']:.1f} q/s; ratio vs HF's faster way "
              f"{speed[precision]['ratio_vs_best_hf']:.2f}x (medians "
              f"{speed[precision]['median_ratio_vs_best_hf']:.2f}x)", flush=True)
    set_precision("float32")
    report["speed"] = speed
    report["load_end"] = load_average()
    report["total_s"] = time.time() - t_start

    # ---- the table
    b = report["baseline"]
    print("\n| system (held-out SQuAD dev articles) | EM | F1 |\n|---|---:|---:|")
    print(f"| lexical baseline (sliding-window overlap) | {b['exact_match']:.1f} | {b['f1']:.1f} |")
    for r in runs:
        print(f"| MiniLM-L6 fine-tuned, seed {r['seed']} | {r['exact_match']:.1f} | {r['f1']:.1f} |")
    print(f"| MiniLM-L6 mean +/- std over {len(runs)} seed(s) | {report['em_mean']:.1f} +/- {report['em_std']:.1f} | "
          f"{report['f1_mean']:.1f} +/- {report['f1_std']:.1f} |")
    print(f"\nF1 / baseline F1: {report['f1_mean'] / max(b['f1'], 1e-9):.2f}x")
    print(f"end: load average {report['load_end']:.1f}; total {report['total_s'] / 60:.1f} min", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
