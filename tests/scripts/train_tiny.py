#!/usr/bin/env python
"""A tiny BERT classifier trained with bertcourse.training.train: the subject of the resume,
precision and distribution tests. Writes the final weights to <out>/final.npz.

    python tests/scripts/train_tiny.py --out DIR [--resume] [--save-steps 5] [--sleep 0.0]
           [--precision float32] [--logical-cpus 1] [--jit] [--steps 40] [--loop auto|fit|custom]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--steps-per-epoch", type=int, default=20)
    p.add_argument("--save-steps", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--precision", default="float32")
    p.add_argument("--logical-cpus", type=int, default=1)
    p.add_argument("--global-batch", type=int, default=16)
    p.add_argument("--jit", action="store_true")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--loop", default="auto", choices=["auto", "fit", "custom"])
    args = p.parse_args()

    import tensorflow as tf

    if args.logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)
    from bertcourse.training import TrainConfig, get_strategy, shuffled_batches, train

    strategy = get_strategy(verbose=False)  # first: collective ops must be configured before any TF op

    import keras
    import numpy as np

    from bertcourse import BertConfig
    from bertcourse.models import BertBackbone

    rng = np.random.default_rng(0)
    ids = rng.integers(5, 60, size=(256, 16)).astype("int32")
    ids[:, 0] = 2
    labels = (ids == 7).any(axis=1).astype("int32")
    # reshuffled every epoch from (seed, epoch): a step-indexed stream, so a resumed run sees the same batches
    inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}

    def data(start_step):
        return shuffled_batches(inputs, labels, batch_size=args.global_batch, seed=11, start_step=start_step)
    config = TrainConfig(output_dir=args.out, learning_rate=3e-3, max_steps=args.steps, warmup_ratio=0.1,
                         save_steps=args.save_steps or None, bf16=args.precision == "mixed_bfloat16",
                         fp16=args.precision == "mixed_float16", eval_strategy="no", seed=3,
                         jit_compile=args.jit)
    def build():
        cfg = BertConfig(vocab_size=64, num_layers=1, hidden_size=32, num_heads=2, intermediate_size=64,
                         max_position_embeddings=16, hidden_dropout=args.dropout,
                         attention_dropout=args.dropout)
        backbone = BertBackbone(cfg)
        pooled = backbone(backbone.input)["pooled_output"]
        logits = keras.layers.Dense(2, name="classifier", dtype="float32")(keras.layers.Dropout(args.dropout)(pooled))
        return keras.Model(backbone.input, logits)

    class Slow(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if args.sleep:
                time.sleep(args.sleep)

    losses = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))

    with strategy.scope():
        model, history = train(build, data, config, steps_per_epoch=args.steps_per_epoch,
                               compile_kwargs={"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
                               callbacks=[Slow(), Record()], resume=args.resume, verbose=0,
                               loop=args.loop)
    os.makedirs(args.out, exist_ok=True)
    np.savez(os.path.join(args.out, "final.npz"), *[v.numpy() for v in model.weights])
    with open(os.path.join(args.out, "losses.json"), "w") as f:
        json.dump({"batch_losses": losses, "history": history, "replicas": strategy.num_replicas_in_sync}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
