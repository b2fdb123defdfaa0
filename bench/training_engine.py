#!/usr/bin/env python
"""Training engine: tokens/s of one fine-tuning step, eager vs XLA, float32 vs mixed_bfloat16, 1 vs 2
logical devices, with keras-hub's BertClassifier under default Keras settings as the reference line.

    python bench/training_engine.py [--preset mini] [--rounds 5] [--steps 8]

Every setting trains the same model (BertClassifier, ``mini`` preset, batch 32 x 128, real Austen
sentence pairs, BERT's AdamW recipe) on the same in-memory batches. Timing is interleaved: each
round runs ``--steps`` steps of every setting in turn, and the table gives the median round, so a
busy machine slows all settings alike instead of the ones that happen to run last.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bertcourse.course import import_tensorflow_quietly  # noqa: E402

tf = import_tensorflow_quietly()
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from bertcourse import BertConfig  # noqa: E402
from bertcourse.convert.keras_hub import keras_hub_kwargs  # noqa: E402
from bertcourse.data import corpora  # noqa: E402
from bertcourse.models import BertBackbone  # noqa: E402
from bertcourse.tasks import BertClassifier  # noqa: E402
from bertcourse.text import BertPreprocessor, WordPieceTokenizer, bert_uncased_vocab_path  # noqa: E402
from bertcourse.training import bert_adamw, set_precision  # noqa: E402

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def real_batches(n_batches: int, batch_size: int, seq_len: int):
    """Consecutive Austen sentences packed as [CLS] A [SEP] B [SEP], with 0/1 labels."""
    tok = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
    sentences = corpora.sentences("austen")
    n = n_batches * batch_size
    pairs = (list(sentences[0: 2 * n: 2]), list(sentences[1: 2 * n: 2]))
    x = {k: v.numpy().astype("int32") for k, v in BertPreprocessor(tok, sequence_length=seq_len)(pairs).items()}
    y = (np.arange(n) % 2).astype("int32")
    fill = float(x["padding_mask"].mean())
    batches = [({k: v[i: i + batch_size] for k, v in x.items()}, y[i: i + batch_size]) for i in range(0, n, batch_size)]
    return batches, tok.vocabulary_size, fill


class Setting:
    def __init__(self, name, kind, precision, jit, devices):
        self.name, self.kind, self.precision, self.jit, self.devices = name, kind, precision, jit, devices
        self.seconds: list[float] = []

    def build(self, cfg: BertConfig, data):
        set_precision(self.precision)
        keras.utils.set_random_seed(0)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]) if self.devices == 2 \
            else tf.distribute.get_strategy()
        with strategy.scope():
            if self.kind == "keras-hub":
                backbone = keras_hub.models.BertBackbone(**keras_hub_kwargs(cfg))
                self.model = keras_hub.models.BertClassifier(backbone, num_classes=2, preprocessor=None)
                self.model.compile(optimizer=bert_adamw(5e-5, 10_000), loss=LOSS)  # Keras defaults otherwise
            else:
                self.model = BertClassifier(BertBackbone(cfg, dtype=self.precision), num_classes=2)
                self.model.compile(optimizer=bert_adamw(5e-5, 10_000), loss=LOSS, jit_compile=self.jit)
        set_precision("float32")
        self.batches = data
        for x, y in data[:2]:  # trace / compile
            self.model.train_on_batch(x, y)
        self.resolved_jit = getattr(self.model, "jit_compile", self.jit)

    def time_round(self, steps: int) -> None:
        # train_on_batch reuses one traced step; a fit() call per round would re-create (and, here,
        # retrace) its step function and time that instead.
        start = time.perf_counter()
        for i in range(steps):
            x, y = self.batches[i % len(self.batches)]
            loss = self.model.train_on_batch(x, y)
        self.seconds.append(time.perf_counter() - start)
        assert np.isfinite(np.asarray(loss, dtype="float64")).all(), f"{self.name}: loss is not finite"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="steps per setting per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    data, vocab_size, fill = real_batches(8, args.batch_size, args.seq_len)
    # keras-hub's BertBackbone uses the tanh-approximate GELU; ours is given the same for a like-for-like step
    cfg = BertConfig.preset(args.preset, vocab_size=vocab_size, hidden_act="gelu_approximate")
    settings = [
        Setting("keras-hub BertClassifier, Keras defaults", "keras-hub", "float32", None, 1),
        Setting("bertcourse float32 eager", "ours", "float32", False, 1),
        Setting("bertcourse float32 XLA", "ours", "float32", True, 1),
        Setting("bertcourse mixed_bfloat16 eager", "ours", "mixed_bfloat16", False, 1),
        Setting("bertcourse mixed_bfloat16 XLA", "ours", "mixed_bfloat16", True, 1),
        Setting("bertcourse float32 eager, 2 logical CPUs", "ours", "float32", False, 2),
        Setting("bertcourse mixed_bfloat16 eager, 2 logical CPUs", "ours", "mixed_bfloat16", False, 2),
    ]
    print(f"# preset={args.preset} batch={args.batch_size} x {args.seq_len} (real tokens {fill:.0%}), "
          f"{args.rounds} interleaved rounds of {args.steps} steps, {os.cpu_count()} cores", flush=True)
    for s in settings:
        s.build(cfg, data)
    for r in range(args.rounds):
        order = settings if r % 2 == 0 else settings[::-1]
        for s in order:
            s.time_round(args.steps)
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    tokens = args.steps * args.batch_size * args.seq_len
    ref = tokens / statistics.median(settings[0].seconds)
    print("\n| setting | jit_compile | tokens/s (median) | range over rounds | vs keras-hub |")
    print("|---|---|---|---|---|")
    for s in settings:
        rates = sorted(tokens / t for t in s.seconds)
        med = tokens / statistics.median(s.seconds)
        print(f"| {s.name} | {s.resolved_jit} | {med:,.0f} | {rates[0]:,.0f}-{rates[-1]:,.0f} | {med / ref:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
