#!/usr/bin/env python
"""Which pretraining recipe learns most in a short CPU budget? (the choices behind lesson 07)

    python bench/pretraining_recipe.py [--steps 400] [--only NAME ...]

Each row pretrains the ``mini`` preset from the same seed on the same stream (Austen + Moby Dick
training chapters, an 8k vocabulary learned on them, batch 32 x 128, mixed_bfloat16) and reports
held-out MLM accuracy (BERT's 15% masking, fixed masks) next to the unigram baseline, and minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bertcourse.course import setup  # noqa: E402

setup(seed=7, scale="course")

from bertcourse.data import corpora  # noqa: E402
from bertcourse.text import WordPieceTokenizer, learn_vocabulary  # noqa: E402
from bertcourse.training.pretrain import (PretrainConfig, evaluate_mlm, pretrain,  # noqa: E402
                                         pretraining_train_config, unigram_baseline)

BERT = dict(normalize_first=False, dropout=0.1, mask_rate=0.15, learning_rate=1e-3)
RECIPES = {
    "BERT's recipe (post-LN, dropout 0.1, 15% masking, lr 1e-3)": BERT,
    "+ 30% masking in training": {**BERT, "mask_rate": 0.3},
    "pre-LN + final LayerNorm, dropout 0": {**BERT, "normalize_first": True, "dropout": 0.0},
    "pre-LN, dropout 0, 30% masking": {**BERT, "normalize_first": True, "dropout": 0.0, "mask_rate": 0.3},
    "pre-LN, dropout 0, 30% masking, lr 2e-3": {**BERT, "normalize_first": True, "dropout": 0.0,
                                                             "mask_rate": 0.3, "learning_rate": 2e-3},
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--only", nargs="*", type=int, help="row numbers (0-based) to run")
    args = parser.parse_args(argv)

    train_docs, heldout_docs = corpora.split_documents(corpora.load_corpus("austen", "moby_dick"))
    tokenizer = WordPieceTokenizer(learn_vocabulary([s for d in train_docs for s in d.sentences], 8000))
    base = unigram_baseline(train_docs, heldout_docs, tokenizer)
    rows = []
    for i, (name, knobs) in enumerate(RECIPES.items()):
        if args.only and i not in args.only:
            continue
        knobs = dict(knobs)
        train_config = pretraining_train_config(steps=args.steps, steps_per_epoch=100, batch_size=32, bf16=True,
                                                seed=7, learning_rate=knobs.pop("learning_rate"))
        config = PretrainConfig(preset="mini", seq_len=128, **knobs)
        start = time.perf_counter()
        model, _ = pretrain(train_docs, tokenizer, config, train_config, verbose=0)
        minutes = (time.perf_counter() - start) / 60
        held = evaluate_mlm(model, heldout_docs, tokenizer)
        rows.append((name, held["mlm_accuracy"], held["mlm_perplexity"], minutes))
        print(f"{name}: {held['mlm_accuracy']:.1%} ({minutes:.1f} min)", flush=True)
    print(f"\n| recipe ({args.steps} steps, mini, bf16) | held-out MLM accuracy | perplexity | minutes |")
    print("|---|---|---|---|")
    print(f"| unigram baseline | {base['mlm_accuracy']:.1%} | {base['mlm_perplexity']:.0f} | - |")
    for name, acc, ppl, minutes in rows:
        print(f"| {name} | {acc:.1%} | {ppl:.0f} | {minutes:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
