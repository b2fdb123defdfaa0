"""``make pretrain-long``: the long masked-LM run lesson 07 loads, and its causal twin, shipped in bfloat16.

    .venv/bin/python tools/pretrain_long.py                 # both objectives, 10,000 steps each
    .venv/bin/python tools/pretrain_long.py --objectives mlm --steps 4000 --out runs/pl-short --ship ''

Data: the KJV + web verses (``bertcourse.data.bible.split_verse_chapters``: one document per chapter per
translation, every 10th chapter held out in both), a WordPiece vocabulary of 4,000 learned on the training
chapters, sequences of 64, the ``tiny`` preset (2 layers, hidden 128), batch 32, learning rate 1e-3 with
10% warmup and linear decay, no dropout, no NSP. The same sequences in the same order train a masked LM
(BERT: 15% masked, 80/10/10) and a causal LM (``PretrainConfig(objective="causal")``: predict the next
token). Each run is a resumable run directory under ``--out`` (rerun the command after a crash: it
continues from the last checkpoint). Both models and the count baselines (unigram, left, right, both
neighbours) are then scored on the SAME held-out masked positions, and each model is written to
``data/pretrained/verses-tiny-<objective>/`` in bfloat16 (``bertcourse.pretrained.save_shipped_pretrainer``)
with its scores, minutes and ``uptime`` in ``results.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bertcourse.data.bible import split_verse_chapters  # noqa: E402  (after the path set-up above)
from bertcourse.pretrained import load_shipped_pretrainer, save_shipped_pretrainer  # noqa: E402
from bertcourse.text import WordPieceTokenizer, learn_vocabulary  # noqa: E402
from bertcourse.training.mlm_baselines import count_baselines  # noqa: E402
from bertcourse.training.pretrain import (PretrainConfig, evaluate_mlm, pretrain,  # noqa: E402
                                          pretraining_train_config)
from bertcourse.training.run import RunDirectory  # noqa: E402


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objectives", default="mlm,causal")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--steps-per-epoch", type=int, default=500)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--vocab", type=int, default=4000)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--out", default=str(ROOT / "runs" / "pretrain-long"), help="run directories go here")
    parser.add_argument("--ship", default=str(ROOT / "data" / "pretrained"),
                        help="write the bf16 models here ('' to skip)")
    args = parser.parse_args(argv)

    start, started = time.time(), uptime()
    print(f"start: {started}", flush=True)
    train_docs, heldout_docs = split_verse_chapters()
    out = Path(args.out)
    vocab_file = out / "vocab.txt"
    if vocab_file.is_file():  # a rerun after a crash: the vocabulary the runs were started with
        tokenizer = WordPieceTokenizer.from_vocab_file(vocab_file)
    else:
        sentences = [s for d in train_docs for s in d]
        tokenizer = WordPieceTokenizer(learn_vocabulary(sentences, vocab_size=args.vocab))
        out.mkdir(parents=True, exist_ok=True)
        vocab_file.write_text("\n".join(tokenizer.get_vocabulary()) + "\n", encoding="utf-8")
    scoring = dict(seq_len=args.seq_len, batch_size=args.batch_size)
    counts = count_baselines(train_docs, heldout_docs, tokenizer, train_seed=args.seed, **scoring)
    print(f"count baselines on {counts['predictions']:,} held-out masked positions: unigram {counts['unigram']:.1%}, "
          f"left {counts['left']:.1%}, right {counts['right']:.1%}, both {counts['bidirectional']:.1%}", flush=True)
    summary = {"data": {"corpus": "KJV + web verses (data/bible_kjv_web.tsv)", "train_documents": len(train_docs),
                        "heldout_documents": len(heldout_docs), "vocabulary": tokenizer.vocabulary_size},
               "counts": counts, "models": {}}
    for objective in [o.strip() for o in args.objectives.split(",") if o.strip()]:
        config = PretrainConfig(preset=args.preset, seq_len=args.seq_len, mlm_only=True, objective=objective,
                                dropout=0.0)
        train_config = pretraining_train_config(steps=args.steps, steps_per_epoch=args.steps_per_epoch,
                                                batch_size=args.batch_size, learning_rate=args.learning_rate,
                                                seed=args.seed)
        run_dir = out / objective
        run = RunDirectory(run_dir)
        t = time.time()
        if run.path_of("pretrainer_weights").is_file() and (run.read_json("run", {}) or {}).get("finished"):
            print(f"--- {objective}: {run_dir} is finished; scoring it", flush=True)
            train_minutes = (run.read_json("history", {}) or {}).get("train_minutes")
        else:
            resume = run_dir.is_dir() and any(run_dir.iterdir())
            print(f"--- {objective}: {args.preset}, {args.steps:,} steps x {args.batch_size} x {args.seq_len} "
                  f"({'resuming' if resume else 'from scratch'}; {uptime()})", flush=True)
            pretrain(train_docs, tokenizer, config, train_config, out_dir=run_dir, resume=resume, verbose=2)
            train_minutes = (time.time() - t) / 60
        model, _ = run.load_pretrainer()
        held = evaluate_mlm(model, heldout_docs, tokenizer, **scoring)
        result = {"objective": objective, "steps": args.steps, "heldout_accuracy": held["mlm_accuracy"],
                  "heldout_perplexity": held["mlm_perplexity"], "train_minutes": train_minutes,
                  "pretrain_config": dataclasses.asdict(config),
                  "train_config": {"learning_rate": args.learning_rate, "batch_size": args.batch_size,
                                   "steps": args.steps, "warmup_ratio": train_config.warmup_ratio,
                                   "seed": args.seed}}
        print(f"    {objective}: held-out accuracy {held['mlm_accuracy']:.1%} (float32)", flush=True)
        if args.ship:
            target = Path(args.ship) / f"verses-tiny-{objective}"
            shipped_result = dict(result, counts=counts, uptime_start=started, uptime_end=uptime())
            save_shipped_pretrainer(run_dir, target, shipped_result)
            shipped, _ = load_shipped_pretrainer(str(target))
            result["heldout_accuracy_bf16"] = evaluate_mlm(shipped, heldout_docs, tokenizer, **scoring)["mlm_accuracy"]
            save_shipped_pretrainer(run_dir, target, dict(shipped_result, **result))
            print(f"    shipped {target} (bf16 held-out accuracy {result['heldout_accuracy_bf16']:.1%})", flush=True)
        summary["models"][objective] = result
    summary.update(minutes=(time.time() - start) / 60, uptime_start=started, uptime_end=uptime())
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v.get("heldout_accuracy") for k, v in summary["models"].items()}), f"\nend: {uptime()}")
    return summary


if __name__ == "__main__":
    main()
