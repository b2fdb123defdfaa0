# %% [markdown]
# # 08 · Training recipes
#
# **What you will do:** take apart the recipe that turns "a model" into "a model trained right": the
# learning-rate schedule, which weights get weight decay, gradient accumulation, mixed precision, XLA,
# distribution and reproducibility, each measured on this machine. Every piece lives in
# `bertcourse.training`; lesson 07 already used it.

# %% tags=["parameters"]
import os

SCALE = os.environ.get("BERTCOURSE_SCALE", "course")  # ci | course | full

# %%
from bertcourse.course import scale_value, setup

info = setup(seed=8, scale=SCALE)
SIZES = scale_value({
    # timing: the precision x XLA settings measured in section 4 (ci: one of each, in half the time)
    "ci": dict(timing_preset="tiny", timing_seq=64, timing_steps=2, timing="two", seeds=2, finetune_steps=10,
               sentences=400),
    "course": dict(timing_preset="mini", timing_seq=128, timing_steps=10, timing="all", seeds=5, finetune_steps=150,
                   sentences=4000),
    "full": dict(timing_preset="mini", timing_seq=128, timing_steps=50, timing="all", seeds=5, finetune_steps=500,
                 sentences=20000),
})
print(info, SIZES)

# %% [markdown]
# ## 1. The learning-rate schedule
#
# BERT warms the learning rate up linearly from 0 over the first 10% of the updates, then decays it
# linearly to 0 (Hugging Face's default too). Warmup protects the freshly initialised post-LayerNorm
# network from huge early updates; the decay anneals it at the end.

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np

from bertcourse.training.optim import WarmupPolynomialDecay, bert_adamw

print(inspect.getsource(WarmupPolynomialDecay.__call__))

# %%
# NBVAL_CHECK_OUTPUT
total = 1000
steps = np.arange(total + 1)
fig, ax = plt.subplots(figsize=(6, 2.8), dpi=80)
for power in (1.0, 2.0):
    schedule = WarmupPolynomialDecay(1e-4, total, warmup_steps=100, power=power)
    ax.plot(steps, [float(schedule(s)) for s in steps], label=f"warmup 10%, power {power:g}")
ax.set_xlabel("optimizer update"); ax.set_ylabel("learning rate"); ax.legend()
plt.tight_layout(); plt.show()
opt = bert_adamw(1e-4, total_steps=total)
print("lr at updates 0, 50, 100, 550, 1000:",
      [f"{float(opt.learning_rate_schedule(s)):.1e}" for s in (0, 50, 100, 550, 1000)])

# %% [markdown]
# ## 2. Weight decay, but not on LayerNorm and biases
#
# AdamW shrinks every weight a little at each update (`w -= lr * weight_decay * w`), which regularises
# the big matrices. BERT excludes LayerNorm's scale/shift and all biases: shrinking a LayerNorm scale
# towards 0 switches the layer off instead of regularising it. `bert_adamw` matches the exclusions
# against each variable's *path*:

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse import BertConfig
from bertcourse.models import BertBackbone
from bertcourse.models.pretraining import BertPretrainer
from bertcourse.training import weight_decay_split

model = BertPretrainer(BertBackbone(BertConfig.preset("tiny", vocab_size=1000, num_layers=1)))
decayed, excluded = weight_decay_split(bert_adamw(1e-4, 100), model.trainable_variables)
print(f"decayed ({len(decayed)}):", *decayed, sep="\n  ")
print(f"not decayed ({len(excluded)}):", *excluded, sep="\n  ")

# %% [markdown]
# What the exclusion protects, measured: 1,000 updates with zero gradients (only decay acts), learning
# rate 1e-3, weight decay 0.1 (the values in the cell). Each update multiplies a decayed weight by
# (1 - 1e-3 × 0.1) = (1 - 1e-4), so after 1,000 updates it is (1 - 1e-4)^1000 = e^-0.1 ≈ 0.905 of its
# start: the kernel below in both runs, and the LayerNorm scale too when nothing is excluded. BERT's own
# setting is weight decay 0.01 at a learning rate of 1e-4, a factor (1 - 1e-6) per update; over its
# 1,000,000 updates that compounds to e^-1 ≈ 0.37 for a weight no gradient defends: a LayerNorm scale
# left in the decay would be pulled a long way towards switching its layer off.

# %%
# NBVAL_CHECK_OUTPUT
import keras

for no_decay, label in ((None, "BERT exclusions"), ((), "decay everything")):
    gamma = keras.Variable(np.ones(4, "float32"), name="gamma")
    kernel = keras.Variable(np.ones(4, "float32"), name="kernel")
    kwargs = {} if no_decay is None else {"no_decay": no_decay}
    optimizer = bert_adamw(1e-3, total_steps=1000, warmup_ratio=0.0, weight_decay=0.1, end_learning_rate=1e-3,
                           **kwargs)
    for _ in range(1000):
        optimizer.apply([np.zeros(4, "float32")] * 2, [gamma, kernel])
    print(f"{label:17s}: LayerNorm-like gamma {float(gamma[0]):.4f}, kernel {float(kernel[0]):.4f}")

# %% [markdown]
# ## 3. Gradient accumulation: a big batch on a small GPU
#
# The original BERT README lists the largest batch that fits on a 12 GB GPU (Titan X):
#
# | model | seq 64 | 128 | 256 | 320 | 384 | 512 |
# |---|---|---|---|---|---|---|
# | BERT-Base | 64 | 32 | 16 | 14 | 12 | 6 |
# | BERT-Large | 12 | 6 | 2 | 1 | 0 | 0 |
#
# Fine-tuning recipes want batch 32. Accumulation sums the gradients of several micro-batches and
# updates once, with the average: 4 micro-batches of 8 make one update of 32. It is exact (up to float
# rounding) when the loss is a mean over examples and nothing depends on the batch (BERT has no batch
# norm):

# %%
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(0)
x = rng.normal(size=(32, 6)).astype("float32")
y = rng.normal(size=(32, 1)).astype("float32")
final = {}
for accumulation, batch in ((None, 32), (4, 8)):
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="tanh"),
                            keras.layers.LayerNormalization(), keras.layers.Dense(1)])
    net.compile(bert_adamw(1e-2, total_steps=3, warmup_ratio=0.0, gradient_accumulation_steps=accumulation), "mse")
    for _ in range(3):
        for start in range(0, 32, batch):
            net.train_on_batch(x[start:start + batch], y[start:start + batch])
    final[batch] = net.get_weights()
diff = max(float(np.abs(a - b).max()) for a, b in zip(final[32], final[8]))
print(f"3 updates: batch 32 vs 4 x 8 accumulated, max abs weight difference {diff:.1e}")

# %% [markdown]
# ## 4. Precision and XLA, measured on this CPU
#
# `mixed_bfloat16` computes in bfloat16 and keeps float32 weights; CPUs with AVX512-BF16 (this one) and
# TPUs run it natively. `mixed_float16` is for GPUs and needs loss scaling (Keras adds a
# `LossScaleOptimizer` at `compile`). `jit_compile=True` compiles the whole train step with XLA.
# Tokens per second of one training step (`mini`, batch 32 x 128 at `course` scale) and the memory the
# process needs. Peak memory only ever grows within a process, so `measure_training` runs each setting
# in a fresh Python process and reports its peak resident memory; "training adds" is that peak minus the
# same process right after importing TensorFlow (the runtime itself):

# %%
from bertcourse.training.measure import measure_training

settings = [(policy, jit) for policy in ("float32", "mixed_bfloat16") for jit in (False, True)]
if SIZES["timing"] == "two":   # ci: float32 eager and bf16 with XLA still run every code path
    settings = [("float32", False), ("mixed_bfloat16", True)]
speeds = {}
for policy, jit in settings:
    speeds[(policy, jit)] = measure_training(SIZES["timing_preset"], policy, jit_compile=jit,
                                             steps=SIZES["timing_steps"], seq_len=SIZES["timing_seq"])
base = speeds[("float32", False)]["tokens_per_second"]
print(f"{'preset':6s} {'precision':15s} {'XLA':5s} {'tokens/s':>9s} {'vs fp32':>8s} {'peak MiB':>9s} "
      f"{'training adds':>14s}")
for (policy, jit), r in speeds.items():
    print(f"{SIZES['timing_preset']:6s} {policy:15s} {jit!s:5s} {r['tokens_per_second']:9,.0f} "
          f"{r['tokens_per_second'] / base:7.2f}x {r['peak_rss_mib']:9,.0f} "
          f"{r['peak_rss_mib'] - r['baseline_rss_mib']:10,.0f} MiB")

# %% [markdown]
# On this 2-core CPU XLA does not pay for the training step (see `bench/README.md` for the full table
# against keras-hub); on a GPU or TPU it usually does. bfloat16 halves the activations but not the
# weights: the variables, their gradients and Adam's two moments stay float32 (16 bytes per parameter),
# so for a model this small the saving in memory is modest; it grows with batch and sequence length.
# bfloat16's speed depends on the CPU's bf16 units and on oneDNN, and these are single 10-step
# measurements, one setting after the other: on a shared machine they move by 20-40% between runs
# (bf16 came out 0.89x-1.64x float32 in this lesson's runs). `bench/training_engine.py` interleaves the
# settings for steadier ratios (bf16 1.27x there). bfloat16 costs about 2-3 digits of precision in
# activations (the loss curves of the precision test in `tests/test_training_engine.py` stay within a
# few percent of float32).
#
# ## 5. Distribution
#
# `get_strategy()` picks `TPUStrategy` when a TPU is reachable, `MultiWorkerMirroredStrategy` when
# `TF_CONFIG` describes a cluster, `MirroredStrategy` for several GPUs, or the default strategy. Build
# and compile the model inside `strategy.scope()`; `fit` splits each global batch over the replicas.

# %%
from bertcourse.training import get_strategy

strategy = get_strategy()

# %% [markdown]
# Two things this course found when it tested "2 replicas train like 1 device" (the test builds 2
# logical CPU devices in a subprocess):
#
# * Keras clips gradients **inside each replica**, before they are summed, so `global_clipnorm` clips
#   two half-batch gradients by their own norms and training drifts from the single-device run.
#   `BertAdamW` all-reduces first and clips the global gradient: 1 and 2 replicas then agree to 1e-8.
# * A seeded `Dataset.shuffle` yields a different order once `tf.distribute` rewrites the pipeline;
#   shuffle with NumPy (or a stateless index shuffle) when runs must match exactly.
#
# Multi-worker training (`MultiWorkerMirroredStrategy`, one process per machine, `TF_CONFIG` naming the
# cluster) is the same code, except that Keras 3's `fit` currently fails under it
# (keras-team/keras#20585). `train()` then switches to `fit_custom_loop`, a loop that does what
# `fit`'s train step does with `strategy.run`: forward, `compute_loss`, gradients, `optimizer.apply`
# (which all-reduces over every replica of every worker). The test starts two worker processes on
# 127.0.0.1: both end with the weights of a single-process run, to 1.2e-7. A strict expected-failure
# test keeps watching `fit` under two workers for the day Keras fixes it. On the JAX backend the
# alternative is Keras' distribution API: `keras.distribution.set_distribution(
# keras.distribution.DataParallel(devices=keras.distribution.list_devices()))` before building the model,
# which shards each batch over all devices of all hosts with the same `fit` call.
#
# ## 6. Reproducibility and seed variance
#
# `enable_determinism(seed)` seeds Python, NumPy and the backend and turns on TensorFlow's deterministic
# ops: the resume test kills a run with SIGKILL mid-epoch, resumes from the checkpoint and ends with
# weights *bit-identical* to an uninterrupted run. But a different seed is a different run: fine-tuning
# results can vary with the seed, which is why papers report several. A small fine-tuning task from our
# own corpus, "Austen or Melville?", with a fresh `tiny` encoder, one run per seed:

# %%
import tensorflow as tf

from bertcourse.data import corpora
from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path
from bertcourse.training import TrainConfig, train

tokenizer = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
rng = np.random.default_rng(1)
austen = rng.permutation(corpora.sentences("austen"))[: SIZES["sentences"] // 2]
melville = rng.permutation(corpora.sentences("moby_dick"))[: SIZES["sentences"] // 2]
texts = np.concatenate([austen, melville])
labels = np.array([0] * len(austen) + [1] * len(melville), "int32")
order = rng.permutation(len(texts))
texts, labels = texts[order], labels[order]
split = int(0.8 * len(texts))


from bertcourse.text import BertPreprocessor

preprocessor = BertPreprocessor(tokenizer, sequence_length=48)   # [CLS] sentence [SEP], cut and padded to 48


def encode(batch_texts):
    return {k: np.asarray(v).astype("int32") for k, v in preprocessor(list(batch_texts)).items()}


train_x, valid_x = encode(texts[:split]), encode(texts[split:])
train_ds = tf.data.Dataset.from_tensor_slices((train_x, labels[:split])).repeat().batch(32)


from bertcourse.tasks import BertClassifier


def build():
    """A fresh 2-layer encoder with BERT's classification head: [CLS] pooled -> dropout -> logits."""
    backbone = BertBackbone(BertConfig.preset("tiny", vocab_size=tokenizer.vocabulary_size, num_layers=2,
                                              max_position_embeddings=64))
    return BertClassifier(backbone, num_classes=2)


accuracies = []
for seed in range(SIZES["seeds"]):
    config = TrainConfig(learning_rate=5e-4, max_steps=SIZES["finetune_steps"], seed=seed, eval_strategy="no")
    clf, _ = train(build, train_ds, config, steps_per_epoch=SIZES["finetune_steps"], verbose=0,
                   compile_kwargs={"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)})
    predictions = clf.predict(valid_x, verbose=0).argmax(-1)
    accuracies.append(float((predictions == labels[split:]).mean()))
    print(f"seed {seed}: validation accuracy {accuracies[-1]:.3f}")
print(f"{len(accuracies)} seeds: {np.mean(accuracies):.3f} +/- {np.std(accuracies):.3f}")

# %% [markdown]
# Read the spread printed above before drawing a conclusion. On this task (an easy one: style and
# vocabulary separate the two authors, with thousands of training sentences and validation sentences) the
# seeds agree closely, far closer than the uncertainty of one validation score itself (a binomial standard
# error of about one point at this accuracy with a validation set a fifth of the sentences), so here the
# seed barely matters. That is not a contradiction of the advice: seed variance grows on *small, hard*
# data sets. The BERT paper reports that BERT-Large fine-tuning "was sometimes unstable on small datasets",
# and it picked the best of several random restarts on the dev set; Dodge et al. (2020) found that some
# seeds fail outright on GLUE's small tasks (a few thousand examples). Report several seeds whenever the
# data is small; exercise 3 makes this task hard enough to see the spread grow.
#
# ## 7. Hugging Face `TrainingArguments` in Keras
#
# `TrainConfig` uses the names people know from the Hugging Face `Trainer`; `train()` turns them into
# plain Keras: an optimizer, `compile` options and callbacks.

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.training.loop import HF_TO_KERAS

for hf, keras_side in HF_TO_KERAS.items():
    print(f"{hf:48s} -> {keras_side}")

# %% [markdown]
# The same recipe is a command: `bertcourse finetune` reads `.tsv`/`.csv` files with `text` and `label`
# columns (and `text_b` for sentence pairs), starts from lesson 07's run (`--init`), a Hugging Face
# directory (`--hf`) or a fresh preset, evaluates every epoch, keeps the best epoch, checkpoints with
# `--save-steps` and continues with `--resume`:
#
# ```
# bertcourse finetune --task sentiment --train train.tsv --validation dev.tsv \
#     --init runs/pretrain-course-mini --epochs 3 --learning-rate 5e-5 --save-steps 100 --out runs/sentiment
# ```
#
# ## 8. The same notebook on a GPU or TPU
#
# Set `BERTCOURSE_SCALE=full` and run on Colab or a cloud VM. For a GPU add `set_precision("mixed_float16")`
# (or `TrainConfig(fp16=True)`) and `jit_compile=True`; for a TPU, `strategy = get_strategy()` returns a
# `TPUStrategy` and the models are built inside `strategy.scope()`. Nothing else changes.
#
# ## Exercises
#
# 1. With 4 accumulation steps, what learning rate does the schedule give at micro-batch 7?
# 2. How many parameters of the `base` preset are excluded from weight decay?
# 3. Make the seed study hard: keep 100 training sentences (`texts[:100]`) and 30 steps, run 5 seeds,
#    and compare the spread with the one above. (A run of a few minutes, left to you: no solution cell.)
#
# ### Solutions

# %% tags=["solution"] jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
# 1. The schedule counts optimizer updates, not micro-batches: micro-batch 7 is still update 1.
opt = bert_adamw(1e-3, total_steps=100, warmup_ratio=0.1, gradient_accumulation_steps=4)
print(f"lr at micro-batch 7 = update {7 // 4}: {float(opt.learning_rate_schedule(7)):.0e}")

# %% tags=["solution"] jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
# 2. LayerNorm gamma/beta and biases: small in count, but they are the ones decay would break.
base = BertBackbone(BertConfig.preset("base"))
_, excluded = weight_decay_split(bert_adamw(1e-4, 100), base.trainable_variables)
n_excluded = sum(int(np.prod(v.shape)) for v in base.trainable_variables if v.path in excluded)
print(f"{n_excluded:,} of {base.count_params():,} parameters ({n_excluded / base.count_params():.2%}) get no decay")
