"""NER bench (issue 16): fine-tune real MiniLM on WNUT-17, choose by dev, score test; speed of pipeline("ner")
against transformers' TokenClassificationPipeline on the same weights, interleaved.

    nice -n 5 .venv/bin/python bench/ner.py --seeds 42 --epochs 3           # quality (+ speed)
    nice -n 5 .venv/bin/python bench/ner.py --speed-only --run runs/ner-minilm-s42

Quality: ``finetune_token_classifier`` on wnut17train.conll (all 3,394 sentences), the epoch with the best
dev entity F1 kept, then test entity P/R/F1 (CoNLL, seqeval's default) per type; mean +/- std over the seeds.
Also the two baselines of lesson 10 (most frequent tag per word; gazetteer-from-train rule) and the course's own
model (``--course-run``: a lesson-07 pretraining run) when it exists.
Speed: the WNUT-17 test sentences, aggregation "simple", batch 32 on both sides (HF: batch 1 too, its default),
``rounds`` alternations of ours then HF's, sentences/s from the median round; float32, then a bf16 row
(our mixed_bfloat16 policy; torch ``.to(bfloat16)``). ``uptime`` is recorded before and after: the 2 cores
are shared, the load average says how much. Results go to bench/results/ner.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bertcourse.course import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bertcourse.convert import load_hf_bert  # noqa: E402
from bertcourse.data.conll import load_wnut17  # noqa: E402
from bertcourse.pretrained import model_path  # noqa: E402
from bertcourse.tasks.token_classification import (TokenClassificationPipeline, entity_metrics,  # noqa: E402
                                                   gazetteer_baseline, most_frequent_tag_baseline,
                                                   predict_word_tags, save_hf_token_classifier)
from bertcourse.training.finetune_tokens import finetune_token_classifier  # noqa: E402
from bertcourse.training.run import RunDirectory  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ner.json"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def score(tags, predicted) -> dict:
    m = entity_metrics(tags, predicted)
    return {"precision": m["precision"], "recall": m["recall"], "f1": m["f1"],
            "per_type": {k: round(v["f1"], 4) for k, v in m["per_type"].items()}}


def quality(args, train, dev, test) -> dict:
    out: dict = {"baselines": {}, "minilm": [], "course": None}
    for name, fn in (("most frequent tag", most_frequent_tag_baseline), ("gazetteer + capitals", gazetteer_baseline)):
        out["baselines"][name] = {"dev": score(dev.tags, fn(train, dev.sentences)),
                                  "test": score(test.tags, fn(train, test.sentences))}
        print(f"{name:22s} dev F1 {out['baselines'][name]['dev']['f1']:.4f}  test F1 "
              f"{out['baselines'][name]['test']['f1']:.4f}", flush=True)
    path = model_path("all-MiniLM-L6-v2")
    _, tokenizer = load_hf_bert(path)
    for seed in args.seeds:
        start = time.time()
        run_dir = Path(args.runs) / f"ner-minilm-s{seed}"
        if args.eval_only:  # score a finished run of an earlier invocation
            run = RunDirectory(run_dir)
            model, metrics = run.load_task(), run.read_json("metrics")
            minutes = None
        else:
            model, metrics = finetune_token_classifier(
                lambda: load_hf_bert(path)[0], tokenizer, train, run_dir, validation=dev, seq_len=args.seq_len,
                batch_size=args.batch_size, epochs=args.epochs, learning_rate=args.lr, seed=seed, overwrite=True,
                verbose=2, source={"model": "all-MiniLM-L6-v2"})
            minutes = (time.time() - start) / 60
        test_pred = predict_word_tags(model, test.sentences)
        history = metrics["history"].get("val_entity_f1", [])
        row = {"seed": seed, "minutes": None if minutes is None else round(minutes, 2), "val_entity_f1_by_epoch": [round(x, 4) for x in history],
               "best_epoch": int(np.argmax(history)) + 1 if history else None,
               "dev": score(dev.tags, predict_word_tags(model, dev.sentences)), "test": score(test.tags, test_pred),
               "run": str(run_dir)}
        out["minilm"].append(row)
        print(f"MiniLM seed {seed}: dev F1 {row['dev']['f1']:.4f} test F1 {row['test']['f1']:.4f} "
              f"({row['minutes']} min, epochs {row['val_entity_f1_by_epoch']})", flush=True)
    f1s = [r["test"]["f1"] for r in out["minilm"]]
    if f1s:
        out["minilm_test_f1_mean"] = statistics.mean(f1s)
        out["minilm_test_f1_std"] = statistics.stdev(f1s) if len(f1s) > 1 else None
    if args.course_run and args.course_run != "none" and RunDirectory(args.course_run).exists:
        backbone_run = RunDirectory(args.course_run)
        _, course_tok = backbone_run.load_backbone()
        start = time.time()
        model, _ = finetune_token_classifier(
            lambda: backbone_run.load_backbone()[0], course_tok, train, Path(args.runs) / "ner-course",
            validation=dev, seq_len=args.seq_len, batch_size=args.batch_size, epochs=args.epochs,
            learning_rate=args.lr, seed=args.seeds[0], overwrite=True, verbose=2)
        out["course"] = {"run": args.course_run, "minutes": round((time.time() - start) / 60, 2),
                         "test": score(test.tags, predict_word_tags(model, test.sentences))}
        print(f"course model: test F1 {out['course']['test']['f1']:.4f}", flush=True)
    else:
        out["course"] = f"course model not fine-tuned in this invocation (--course-run {args.course_run})"
    return out


def speed(args, run_dir: Path, texts: list[str]) -> dict:
    # lazy: the twin is optional (parity extra) and loads torch
    import torch
    import transformers
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    rows = {}
    for precision in ("float32", "bf16"):
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
        model = RunDirectory(run_dir).load_task()
        ours = TokenClassificationPipeline(model, aggregation_strategy="simple", batch_size=32)
        hf_dir = Path(args.runs) / "ner-hf-twin"
        keras.mixed_precision.set_global_policy("float32")
        if precision == "float32":
            save_hf_token_classifier(model, hf_dir)
        hf_model = transformers.AutoModelForTokenClassification.from_pretrained(str(hf_dir))
        if precision == "bf16":
            hf_model = hf_model.to(torch.bfloat16)
        tok = transformers.AutoTokenizer.from_pretrained(str(hf_dir))
        hf = transformers.pipeline("ner", model=hf_model, tokenizer=tok, framework="pt", device=-1,
                                   aggregation_strategy="simple")
        ours(texts)  # warm up both (ours traces its tokenizer graph on the first long call)
        hf(texts[:64], batch_size=32)
        times = {"ours_b32": [], "hf_b32": [], "hf_b1": []}
        with torch.inference_mode():
            for _ in range(args.rounds):
                for name, call in (("ours_b32", lambda: ours(texts)), ("hf_b32", lambda: hf(texts, batch_size=32)),
                                   ("hf_b1", lambda: hf(texts, batch_size=1))):
                    start = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - start)
        rate = {k: len(texts) / statistics.median(v) for k, v in times.items()}
        rows[precision] = {"sentences_per_s": {k: round(v, 1) for k, v in rate.items()},
                           "ratio_vs_hf_b32": round(rate["ours_b32"] / rate["hf_b32"], 2),
                           "ratio_vs_hf_b1": round(rate["ours_b32"] / rate["hf_b1"], 2)}
        print(precision, rows[precision], flush=True)
    keras.mixed_precision.set_global_policy("float32")
    return rows


def twin(args, run_dir: Path, texts: list[str]) -> dict:
    """The fine-tuned model and its Hugging Face export on the same texts, every aggregation strategy:
    sentences whose entity lists (group, word, start, end) differ, and the largest score difference."""
    # lazy: the twin is optional (parity extra) and loads torch
    import torch
    import transformers
    from transformers.pipelines.token_classification import AggregationStrategy
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)
    model = RunDirectory(run_dir).load_task()
    hf_dir = save_hf_token_classifier(model, Path(args.runs) / "ner-hf-twin")
    hf = transformers.pipeline("ner", model=str(hf_dir), framework="pt", device=-1)
    with torch.inference_mode():
        forwards = [[hf._forward(x) for x in hf.preprocess(t, is_split_into_words=False)] for t in texts]
    out = {}
    for strategy in ("none", "simple", "first", "max", "average"):
        ours = TokenClassificationPipeline(model, aggregation_strategy=strategy)(texts)
        theirs = [hf.postprocess(f, aggregation_strategy=AggregationStrategy[strategy.upper()]) for f in forwards]
        key = "entity" if strategy == "none" else "entity_group"
        differ, worst, entities = 0, 0.0, 0
        for a, b in zip(ours, theirs):
            if [(e[key], e["word"], e["start"], e["end"]) for e in a] != [(e[key], e["word"], e["start"], e["end"])
                                                                         for e in b]:
                differ += 1
            else:
                worst = max([worst] + [abs(x["score"] - float(y["score"])) for x, y in zip(a, b)])
            entities += len(a)
        out[strategy] = {"sentences": len(texts), "sentences_differing": differ, "max_score_diff": worst,
                         "entities": entities}
        print("twin", strategy, out[strategy], flush=True)
    return out


TYPES = ("person", "location", "group", "corporation", "creative-work", "product")


def table(results: dict) -> str:
    """The README's quality table, from bench/results/ner.json (``--table``)."""
    q = results["quality"]
    head = ("| model | dev F1 | test P | test R | **test F1** | " + " | ".join(TYPES) + " |\n"
            + "|---|" + "---:|" * (4 + len(TYPES)))
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731

    def row(name, dev, test, bold=True):
        f1 = f"**{pct(test['f1'])}**" if bold else pct(test["f1"])
        return (f"| {name} | {'' if dev is None else pct(dev['f1'])} | {pct(test['precision'])} | "
                f"{pct(test['recall'])} | {f1} | " + " | ".join(pct(test["per_type"].get(t, 0.0)) for t in TYPES) + " |")

    lines = [head]
    for name, b in q["baselines"].items():
        lines.append(row(name, b["dev"], b["test"], bold=False))
    for r in q["minilm"]:
        lines.append(row(f"MiniLM fine-tuned, seed {r['seed']} (best epoch {r['best_epoch']} of "
                         f"{len(r['val_entity_f1_by_epoch'])}, {r['minutes']:.0f} min)", r["dev"], r["test"]))
    if q.get("minilm_test_f1_std") is not None:
        lines.append(f"| **MiniLM, mean +/- std over seeds {', '.join(str(r['seed']) for r in q['minilm'])}** | | | | "
                     f"**{pct(q['minilm_test_f1_mean'])} +/- {pct(q['minilm_test_f1_std'])}** |" + " |" * len(TYPES))
    if isinstance(q.get("course"), dict):
        lines.append(row(f"the course's lesson-07 model, fine-tuned the same way ({q['course']['minutes']:.0f} min)",
                         None, q["course"]["test"], bold=False))
    lines.append("| WNUT-17 shared task best (2017) | | | | 41.9 |" + " |" * len(TYPES))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--runs", default=str(ROOT / "runs"))
    parser.add_argument("--course-run", default=str(ROOT / "runs" / "pretrain-course-mini"))
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--no-speed", action="store_true", help="quality only; keep the speed rows of the last run")
    parser.add_argument("--eval-only", action="store_true", help="score the finished runs of the seeds, no training")
    parser.add_argument("--twin-only", action="store_true", help="only the twin check of the first seed's run")
    parser.add_argument("--run", help="the fine-tuned run for the speed test (default: the first seed's)")
    parser.add_argument("--speed-sentences", type=int, default=1287)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (TensorFlow uses the 2 cores)")
    parser.add_argument("--table", action="store_true", help="print the README table of the last results and stop")
    args = parser.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if args.table:
        print(table(results))
        return 0
    results["uptime_start"] = uptime()
    print(results["uptime_start"], flush=True)
    started = time.time()
    train, dev, test = (load_wnut17(s) for s in ("train", "dev", "test"))
    run_dir = Path(args.run or Path(args.runs) / f"ner-minilm-s{args.seeds[0]}")
    if args.twin_only:  # its own file: it may run beside a speed or quality invocation
        twin_file = RESULTS.with_name("ner_twin.json")
        twin_file.parent.mkdir(parents=True, exist_ok=True)
        twin_file.write_text(json.dumps({"run": str(run_dir), "uptime_start": results["uptime_start"],
                                         "twin": twin(args, run_dir, test.texts()), "uptime_end": uptime()},
                                        indent=1) + "\n")
        return 0
    if not args.speed_only:
        results["quality"] = quality(args, train, dev, test)
        if not args.eval_only:
            results["settings"] = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
                                   "seq_len": args.seq_len, "seeds": args.seeds}
    if RunDirectory(run_dir).exists and not args.no_speed:
        results["speed"] = speed(args, run_dir, test.texts()[:args.speed_sentences])
        results["speed"]["sentences"] = args.speed_sentences
        results["speed"]["torch_threads"] = args.threads
    results["uptime_end"] = uptime()
    results["minutes"] = round((time.time() - started) / 60, 1)
    results["cpu"] = os.cpu_count()
    print(results["uptime_end"], flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
