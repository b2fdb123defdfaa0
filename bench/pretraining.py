#!/usr/bin/env python
"""Pretraining: BertPretrainer (MLM-only) vs keras_hub.models.BertMaskedLM, same work, one run.

    python bench/pretraining.py [--preset mini] [--steps 300] [--timing-steps 10] [--rounds 4]

1. Throughput (tokens/s) of one training step, same preset, sequence length, batch, masking rate and
   optimizer, with and without XLA (``jit_compile``), in float32 and mixed_bfloat16, on the same
   in-memory batches; timed in interleaved rounds (median), so load on the machine hits all alike.
2. Quality: both models trained on the same dynamic-masking stream for the same number of steps (each
   with its own architecture defaults), then held-out MLM accuracy on the same fixed 15% masks, next
   to the unigram baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bertcourse.course import setup  # noqa: E402

setup(seed=0, scale="course")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bertcourse import BertConfig  # noqa: E402
from bertcourse.data import corpora  # noqa: E402
from bertcourse.data.masking import MaskingConfig, num_predictions  # noqa: E402
from bertcourse.data.pipeline import pretraining_dataset  # noqa: E402
from bertcourse.models import BertBackbone  # noqa: E402
from bertcourse.models.pretraining import BertPretrainer  # noqa: E402
from bertcourse.text import WordPieceTokenizer, learn_vocabulary  # noqa: E402
from bertcourse.training.optim import bert_adamw  # noqa: E402
from bertcourse.training.pretrain import unigram_baseline  # noqa: E402


def keras_hub_mlm(cfg: BertConfig):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=cfg.vocab_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
        hidden_dim=cfg.hidden_size, intermediate_dim=cfg.intermediate_size, dropout=cfg.hidden_dropout,
        max_sequence_length=cfg.max_position_embeddings, num_segments=cfg.type_vocab_size)
    return keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None)


def ours_mlm(cfg: BertConfig, sparse_last_layer: bool = False, normalize_first: bool = False):
    return BertPretrainer(BertBackbone(cfg, normalize_first=normalize_first), mlm_only=True,
                          sparse_last_layer=sparse_last_layer)


def to_keras_hub(x, y, w):
    inputs = {"token_ids": x["token_ids"], "segment_ids": x["segment_ids"], "padding_mask": x["padding_mask"],
              "mask_positions": x["masked_positions"]}
    return inputs, y["mlm"], w["mlm"]


def to_ours(x, y, w):
    return x, {"mlm": y["mlm"]}, {"mlm": w["mlm"]}


def compile_model(model, kind, steps, jit, learning_rate=1e-3):
    opt = bert_adamw(learning_rate, steps, warmup_ratio=0.1)
    if kind == "keras-hub":
        model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], jit_compile=jit)
    else:
        model.compile(optimizer=opt, jit_compile=jit)


class Timed:
    """One model + setting, timed in interleaved rounds (median of the rounds is reported)."""

    def __init__(self, kind, cfg, batches, jit, precision):
        from bertcourse.training import set_precision

        self.kind, self.jit, self.precision = kind, jit, precision
        set_precision(precision)
        keras.utils.set_random_seed(0)
        self.model = keras_hub_mlm(cfg) if kind == "keras-hub" else ours_mlm(cfg, kind == "bertcourse-sparse")
        set_precision("float32")
        compile_model(self.model, kind, 10_000, jit)
        adapt = to_keras_hub if kind == "keras-hub" else to_ours
        self.batches = [adapt(*tf.nest.map_structure(lambda t, i=i: t[i].numpy(), batches)) for i in range(8)]
        for x, y, w in self.batches[:2]:  # trace / compile
            self.model.train_on_batch(x, y, sample_weight=w)
        self.seconds = []

    def round(self, steps):
        # train_on_batch reuses one traced step; a fit() call per round re-creates its step function.
        start = time.perf_counter()
        for i in range(steps):
            x, y, w = self.batches[i % len(self.batches)]
            self.model.train_on_batch(x, y, sample_weight=w)
        self.seconds.append(time.perf_counter() - start)

    def tokens_per_second(self, steps, batch_size, seq_len):
        return steps * batch_size * seq_len / statistics.median(self.seconds)


def held_out_accuracy(model, kind, heldout):
    adapt = to_keras_hub if kind == "keras-hub" else to_ours
    logs = model.evaluate(heldout.map(adapt), verbose=0, return_dict=True)
    return float(logs["accuracy"] if kind == "keras-hub" else logs["mlm_accuracy"])


def print_throughput(rows, settings, args):
    print(f"\n# {args.rounds} interleaved rounds of {args.timing_steps} steps per setting; median round")
    print("| precision | jit_compile | keras-hub BertMaskedLM | bertcourse, full last layer | ratio "
          "| bertcourse, sparse last layer (default) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for p, jit in settings:
        kh, dense, sparse = (rows[(k, p, jit)] for k in ("keras-hub", "bertcourse", "bertcourse-sparse"))
        print(f"| {p} | {jit} | {kh:,.0f} | {dense:,.0f} | {dense / kh:.2f}x | {sparse:,.0f} | {sparse / kh:.2f}x |")
    best = {k: max(v for (kind, _, _), v in rows.items() if kind == k)
            for k in ("keras-hub", "bertcourse", "bertcourse-sparse")}
    print(f"| best of each | | {best['keras-hub']:,.0f} | {best['bertcourse']:,.0f} | "
          f"{best['bertcourse'] / best['keras-hub']:.2f}x | {best['bertcourse-sparse']:,.0f} | "
          f"{best['bertcourse-sparse'] / best['keras-hub']:.2f}x |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--timing-steps", type=int, default=10, help="steps per setting per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=800, help="training steps for the quality comparison")
    parser.add_argument("--recipe", choices=["bert", "short"], default="bert",
                        help="quality run: 'bert' = lesson 07 (post-LN, dropout 0.1, 15%%, lr 1e-3) for both models; "
                             "'short' = ours pre-LN, dropout 0, 30%%, lr 2e-3 (keras-hub: same stream and lr)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--precision", default="mixed_bfloat16")
    args = parser.parse_args(argv)
    args.train_mask_rate, args.learning_rate = (0.15, 1e-3) if args.recipe == "bert" else (0.3, 2e-3)

    documents = corpora.load_corpus("austen", "moby_dick")
    train_docs, heldout_docs = corpora.split_documents(documents)
    tokenizer = WordPieceTokenizer(learn_vocabulary([s for d in train_docs for s in d.sentences], args.vocab))
    cfg = BertConfig.preset(args.preset, vocab_size=tokenizer.vocabulary_size)
    masking = MaskingConfig(max_predictions=num_predictions(args.seq_len, 0.15))
    stream = pretraining_dataset(train_docs, tokenizer, seq_len=args.seq_len, batch_size=args.batch_size,
                                 masking=masking, seed=1)
    batches = next(iter(stream.unbatch().batch(args.batch_size * 8)))  # 8 batches in memory
    batches = tf.nest.map_structure(lambda t: tf.reshape(t, [8, args.batch_size] + t.shape[1:].as_list()), batches)

    print(f"# preset={args.preset} seq_len={args.seq_len} batch={args.batch_size} vocab={tokenizer.vocabulary_size} "
          f"masking=15% (MLM only) threads={tf.config.threading.get_inter_op_parallelism_threads()}/"
          f"{os.cpu_count()} cores", flush=True)
    settings = [] if args.skip_throughput else \
        [(precision, jit) for precision in ("float32", "mixed_bfloat16") for jit in (False, True)]
    timed = {(kind, p, jit): Timed(kind, cfg, batches, jit, p) for p, jit in settings
             for kind in ("keras-hub", "bertcourse", "bertcourse-sparse")}
    order = list(timed.values())
    for r in range(args.rounds):  # interleaved: a busy machine slows every setting alike
        for t in (order if r % 2 == 0 else order[::-1]):
            t.round(args.timing_steps)
    rows = {key: t.tokens_per_second(args.timing_steps, args.batch_size, args.seq_len) for key, t in timed.items()}
    if not settings:
        print("(throughput skipped)")
    else:
        print_throughput(rows, settings, args)
    heldout = pretraining_dataset(heldout_docs, tokenizer, seq_len=args.seq_len, batch_size=args.batch_size,
                                  masking=masking, seed=2024, shuffle_buffer=0, repeat=False)
    # Same data for both: the stream lesson 07 trains on (masking rate --train-mask-rate); same optimizer
    # and steps. Each model keeps its own architecture: keras-hub's defaults (post-LN, dropout 0.1) and
    # the course's short-budget recipe (pre-LN + final LayerNorm, dropout 0, sparse last layer).
    train_masking = MaskingConfig(rate=args.train_mask_rate,
                                  max_predictions=num_predictions(args.seq_len, args.train_mask_rate))
    train_stream = pretraining_dataset(train_docs, tokenizer, seq_len=args.seq_len, batch_size=args.batch_size,
                                       masking=train_masking, seed=1)
    print(f"\n# quality: {args.steps} steps each on the same stream ({args.train_mask_rate:.0%} masking, "
          f"lr {args.learning_rate:g}, {args.precision}), held-out chapters, fixed 15% masks", flush=True)
    from bertcourse.training import set_precision

    results = {}
    for kind in ("keras-hub", "bertcourse"):
        set_precision(args.precision)
        keras.utils.set_random_seed(0)
        if kind == "keras-hub":
            model = keras_hub_mlm(cfg)
        elif args.recipe == "bert":
            model = ours_mlm(cfg, sparse_last_layer=True)
        else:
            model = ours_mlm(cfg.replace(hidden_dropout=0.0, attention_dropout=0.0), sparse_last_layer=True,
                             normalize_first=True)
        set_precision("float32")
        compile_model(model, kind, args.steps, False, learning_rate=args.learning_rate)
        adapt = to_keras_hub if kind == "keras-hub" else to_ours
        start = time.perf_counter()
        model.fit(train_stream.map(adapt), steps_per_epoch=args.steps, epochs=1, verbose=0)
        minutes = (time.perf_counter() - start) / 60
        results[kind] = (held_out_accuracy(model, kind, heldout), minutes)
        print(f"{kind:10s} held-out MLM accuracy {results[kind][0]:.1%} ({minutes:.1f} min)", flush=True)
    base = unigram_baseline(train_docs, heldout_docs, tokenizer, seq_len=args.seq_len, batch_size=args.batch_size)
    print("\n| model | held-out MLM accuracy | minutes |")
    print("|---|---|---|")
    print(f"| unigram baseline (always {base['most_frequent_token']!r}) | {base['mlm_accuracy']:.1%} | - |")
    for kind, (acc, minutes) in results.items():
        name = "keras-hub BertMaskedLM (defaults)" if kind == "keras-hub" else \
            "bertcourse (lesson 07: BERT's recipe, sparse last layer)" if args.recipe == "bert" else \
            "bertcourse (short-budget recipe: pre-LN, dropout 0, sparse last layer)"
        print(f"| {name} ({args.preset}, {args.steps} steps, MLM only) | {acc:.1%} | {minutes:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
