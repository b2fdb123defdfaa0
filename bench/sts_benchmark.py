"""STS Benchmark: Spearman x 100 of sentence-embedding cosine against human similarity scores.

    BERTCOURSE_EVAL_DIR=../shared/eval .venv/bin/python bench/sts_benchmark.py
    .venv/bin/python bench/sts_benchmark.py /path/to/dir/with/sts-test.csv [--split dev]

The STS-B files are not part of the course: the directory comes from the argument or from
``$BERTCOURSE_EVAL_DIR``; without it the script prints how to get it and exits 0 (skipped).
``sts-test.csv``: tab-separated ``genre file year id score sent1 sent2`` (+2 source fields on some
lines); lines contain ``"`` so they are split on tabs only (csv.QUOTE_NONE), never parsed as CSV.

Measured: all-MiniLM-L6-v2 with mean pooling (the published figure is about 82), the raw ``[CLS]``
vector of the same model, and, when ``runs/pretrain-course-mini/backbone.weights.h5`` exists (lesson 07
at course scale), the course's own small pretrained BERT with mean pooling.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]  # bench/tokenizers.py shadows
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def read_sts(path: Path) -> tuple[list[str], list[str], list[float]]:
    a, b, gold = [], [], []
    with open(path, encoding="utf-8", newline="") as f:
        for fields in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(fields) < 7:
                raise ValueError(f"{path}: expected >= 7 tab-separated fields, got {len(fields)}: {fields[:3]}")
            gold.append(float(fields[4]))
            a.append(fields[5])
            b.append(fields[6])
    return a, b, gold


def _ranks(x):
    import numpy as np

    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    s = np.sort(x)
    for value in np.unique(s[1:][np.diff(s) == 0]):  # tied values share their average rank
        ranks[x == value] = ranks[x == value].mean()
    return ranks


def spearman(x, y) -> float:
    """Spearman's rho (Pearson of average ranks), as scipy.stats.spearmanr."""
    import numpy as np

    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def evaluate(encoder, a, b, gold, batch_size: int = 64, pooling=None) -> dict:
    import numpy as np

    start = time.time()
    ea = encoder.encode(a, batch_size=batch_size, pooling=pooling)
    eb = encoder.encode(b, batch_size=batch_size, pooling=pooling)
    modes = [pooling] if pooling is None or isinstance(pooling, str) else list(pooling)
    if len(modes) == 1:
        ea, eb = {modes[0]: ea}, {modes[0]: eb}
    out = {}
    for m in modes:
        x, y = ea[m], eb[m]
        cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
        out[m] = round(100 * spearman(cos, gold), 2)
    out["seconds"] = round(time.time() - start, 1)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("eval_dir", nargs="?", default=os.environ.get("BERTCOURSE_EVAL_DIR"))
    parser.add_argument("--split", default="test", choices=("test", "dev"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not args.eval_dir or not (Path(args.eval_dir) / f"sts-{args.split}.csv").is_file():
        print(f"[sts] skipped: no sts-{args.split}.csv. Pass the directory that holds the STS Benchmark files "
              "(sts-dev.csv, sts-test.csv) as an argument or in BERTCOURSE_EVAL_DIR; they are not shipped "
              "with the course.")
        return 0
    a, b, gold = read_sts(Path(args.eval_dir) / f"sts-{args.split}.csv")
    print(f"[sts] STS-B {args.split}: {len(gold):,} pairs", flush=True)

    from bertcourse.pretrained import load_sentence_encoder

    results = {}
    minilm = evaluate(load_sentence_encoder("all-MiniLM-L6-v2"), a, b, gold, args.batch_size, ("mean", "cls"))
    results["all-MiniLM-L6-v2 mean pooling"] = minilm["mean"]
    results["all-MiniLM-L6-v2 raw [CLS]"] = minilm["cls"]
    print(f"[sts] MiniLM: mean {minilm['mean']}, raw [CLS] {minilm['cls']} ({minilm['seconds']}s)", flush=True)

    run = ROOT / "runs" / "pretrain-course-mini"
    if (run / "backbone.weights.h5").exists():
        from bertcourse.pretrained import load_course_encoder

        ours = load_course_encoder(run)
        cfg = ours.backbone.config
        r = evaluate(ours, a, b, gold, args.batch_size, ("mean", "cls"))
        results[f"course pretrain-course-mini ({cfg.num_layers}/{cfg.hidden_size}) mean pooling"] = r["mean"]
        results[f"course pretrain-course-mini ({cfg.num_layers}/{cfg.hidden_size}) raw [CLS]"] = r["cls"]
        print(f"[sts] course model: mean {r['mean']}, raw [CLS] {r['cls']}", flush=True)
    else:
        print(f"[sts] course model skipped: {run / 'backbone.weights.h5'} not found (lesson 07 at course scale).")

    print(f"\n| sentence vector | STS-B {args.split} Spearman x100 |\n|---|---|")
    for name, value in results.items():
        print(f"| {name} | {value:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
