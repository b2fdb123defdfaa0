"""Left-to-right vs bidirectional, measured: count baselines, a causal LM and a masked LM on the same masks.

    nice -n 19 .venv/bin/python bench/mlm_objectives.py --corpus verses --preset tiny --vocab 4000 \\
        --seq-len 64 --steps 2000 --json runs/bench-mlm-objectives/verses.json

One vocabulary is learned on the training documents (every 10th document held out, vocabulary included).
Then, on the SAME held-out masked positions (``bertcourse.training.pretrain.heldout_mlm_dataset``: BERT's
15%, fixed seed; the positions ``evaluate_mlm`` scores):

* count baselines (``bertcourse.training.mlm_baselines.count_baselines``): unigram (the most frequent
  token), left neighbour, right neighbour, both neighbours (backing off to left, right, unigram);
* a causal LM (``PretrainConfig(objective="causal")``: the same backbone with a causal attention mask,
  trained to predict the next token), scored at a masked position ``i`` by its logits at ``i - 1`` of the
  clean sequence: it reads only the left context;
* a masked LM (BERT, MLM only: no NSP, so the two models differ only in objective and attention mask).

Both models: the same preset, sequence length, batch size, steps, learning-rate schedule, seed and the
same training sequences in the same order. ``--corpus novels``: Austen's six novels + Moby Dick (lesson 07),
documents are chapters. ``--corpus verses``: ``data/bible_kjv_web.tsv``, one document per chapter per
translation (KJV and the WEB-derived text), held out by chapter reference so a held-out chapter's other
translation is never in training. Prints one table (and ``--json``) with minutes and ``uptime`` at start
and end.
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
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]  # bench/tokenizers.py shadows
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bertcourse.data import corpora  # noqa: E402  (after the path set-up above)
from bertcourse.data.bible import split_verse_chapters  # noqa: E402
from bertcourse.text import WordPieceTokenizer, learn_vocabulary  # noqa: E402
from bertcourse.training.mlm_baselines import count_baselines  # noqa: E402
from bertcourse.training.pretrain import (PretrainConfig, evaluate_mlm, pretrain,  # noqa: E402
                                          pretraining_train_config)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "n/a"


def load_documents(corpus: str, heldout_every: int = 10) -> tuple[list, list]:
    """``(train, heldout)`` documents (lists of sentence strings or ``corpora.Document``)."""
    if corpus == "novels":
        return corpora.split_documents(corpora.load_corpus("austen", "moby_dick"), heldout_every)
    if corpus == "verses":
        return split_verse_chapters(heldout_every)
    raise ValueError(f"--corpus must be novels or verses, got {corpus!r}.")


def _sentences(documents) -> list[str]:
    return [s for d in documents for s in (d.sentences if hasattr(d, "sentences") else d)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", choices=("novels", "verses"), default="verses")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--vocab", type=int, default=4000, help="WordPiece vocabulary size (learned on train)")
    parser.add_argument("--vocab-sentences", type=int, default=0, help="learn it on the first N (0: all)")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--steps-per-epoch", type=int, default=0, help="0: steps / 10 (or steps if < 10)")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--dropout", type=float, default=0.1, help="both models")
    parser.add_argument("--pre-ln", action="store_true", help="pre-LayerNorm blocks (both models)")
    parser.add_argument("--mask-rate", type=float, default=0.15,
                        help="MLM training only; held-out scoring always masks BERT's 15%%")
    parser.add_argument("--eval-batches", type=int, default=0, help="held-out batches scored (0: all)")
    parser.add_argument("--objectives", default="causal,mlm", help="which models to train (comma-separated)")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)

    results: dict = {"argv": sys.argv[1:] if argv is None else argv, "uptime_start": uptime(),
                     "settings": vars(args)}
    start = time.time()
    train_docs, heldout_docs = load_documents(args.corpus)
    sentences = _sentences(train_docs)
    words = sum(len(s.split()) for s in sentences)
    vocab_sentences = sentences[: args.vocab_sentences] if args.vocab_sentences else sentences
    t = time.time()
    tokenizer = WordPieceTokenizer(learn_vocabulary(vocab_sentences, vocab_size=args.vocab))
    results["data"] = {"corpus": args.corpus, "train_documents": len(train_docs),
                       "heldout_documents": len(heldout_docs), "train_sentences": len(sentences),
                       "train_words": words, "vocabulary": tokenizer.vocabulary_size,
                       "vocab_minutes": (time.time() - t) / 60}
    print(f"{args.corpus}: {len(train_docs)} training / {len(heldout_docs)} held-out documents, {words:,} training "
          f"words; vocabulary {tokenizer.vocabulary_size} in {(time.time() - t) / 60:.1f} min", flush=True)
    scoring = dict(seq_len=args.seq_len, batch_size=args.batch_size, max_batches=args.eval_batches or None)

    t = time.time()
    counts = count_baselines(train_docs, heldout_docs, tokenizer, train_seed=args.seed, **scoring)
    results["counts"] = dict(counts, minutes=(time.time() - t) / 60)
    print(f"count baselines in {(time.time() - t) / 60:.1f} min ({counts['predictions']:,} masked positions)",
          flush=True)

    steps_per_epoch = args.steps_per_epoch or (args.steps // 10 if args.steps >= 10 else args.steps)
    results["models"] = {}
    for objective in [o.strip() for o in args.objectives.split(",") if o.strip()]:
        config = PretrainConfig(preset=args.preset, seq_len=args.seq_len, mlm_only=True, objective=objective,
                                dropout=args.dropout, mask_rate=args.mask_rate, normalize_first=args.pre_ln)
        train_config = pretraining_train_config(steps=args.steps, steps_per_epoch=steps_per_epoch,
                                                batch_size=args.batch_size, learning_rate=args.learning_rate,
                                                seed=args.seed)
        print(f"--- {objective}: {args.preset}, {args.steps} steps x {args.batch_size} x {args.seq_len} "
              f"({uptime()})", flush=True)
        t = time.time()
        model, history = pretrain(train_docs, tokenizer, config, train_config, verbose=0)
        train_minutes = (time.time() - t) / 60
        t = time.time()
        held = evaluate_mlm(model, heldout_docs, tokenizer, **scoring)
        loss_key = "lm_loss" if objective == "causal" else "mlm_loss"
        results["models"][objective] = {"mlm_accuracy": held["mlm_accuracy"], "mlm_perplexity": held["mlm_perplexity"],
                                        "train_loss_first_epoch": history[loss_key][0],
                                        "train_loss_last_epoch": history[loss_key][-1],
                                        "train_loss_per_epoch": history[loss_key],
                                        "train_minutes": train_minutes, "eval_minutes": (time.time() - t) / 60,
                                        "config": dataclasses.asdict(config)}
        print(f"    trained in {train_minutes:.1f} min; held-out accuracy {held['mlm_accuracy']:.1%}", flush=True)

    results["minutes"] = (time.time() - start) / 60
    results["uptime_end"] = uptime()
    rows = [("unigram counts (always %r)" % counts["most_frequent_token"], counts["unigram"], None, None),
            ("left-neighbour counts", counts["left"], None, None),
            ("right-neighbour counts", counts["right"], None, None),
            ("both-neighbours counts (back-off)", counts["bidirectional"], None, None)]
    names = {"causal": "causal model (left context only)", "mlm": "MLM model (both sides)"}
    for objective, r in results["models"].items():
        rows.append((names.get(objective, objective), r["mlm_accuracy"], r["mlm_perplexity"], r["train_minutes"]))
    print(f"\nheld-out masked-token accuracy, {args.corpus}, vocabulary {tokenizer.vocabulary_size}, {args.preset}, "
          f"seq_len {args.seq_len}, {args.steps} steps x {args.batch_size}; {counts['predictions']:,} masked "
          f"positions (the same for every row)")
    print(f"{'':36s} {'accuracy':>9s} {'perplexity':>11s} {'train min':>10s}")
    for name, acc, ppl, minutes in rows:
        print(f"{name:36s} {acc:9.1%} {'' if ppl is None else f'{ppl:11.1f}':>11s} "
              f"{'' if minutes is None else f'{minutes:10.1f}':>10s}")
    print(f"back-off of the both-neighbours counts: both {counts['backoff_both']:.0%}, left {counts['backoff_left']:.0%}, "
          f"right {counts['backoff_right']:.0%}, unigram {counts['backoff_unigram']:.0%}")
    print(f"total {results['minutes']:.1f} min\nuptime at start: {results['uptime_start']}\n"
          f"uptime at end:   {results['uptime_end']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
