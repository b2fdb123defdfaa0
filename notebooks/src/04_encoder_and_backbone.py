# %% [markdown]
# # 04 · The encoder block and `BertBackbone`
#
# **What you will do:** put attention (lesson 03) and a feed-forward network into a residual block,
# stack blocks on top of the embeddings (lesson 02) into `BertBackbone`, prove the whole model equals
# `keras_hub.models.BertBackbone` weight for weight, count the parameters of every BERT size from
# Tiny to Large against the published numbers, see where those parameters live, and time a forward
# pass as the sequence grows (the quadratic cost of attention made visible).
#
# One BERT block (post-LayerNorm, as in the paper):
#
# $$h = \mathrm{LayerNorm}(x + \mathrm{Attention}(x)) \qquad y = \mathrm{LayerNorm}(h + \mathrm{FFN}(h))$$
#
# with $\mathrm{FFN}(h) = \mathrm{GELU}(hW_1 + b_1)W_2 + b_2$, $W_1$ of shape `hidden × 4·hidden`.

# %% tags=["parameters"]
import os

SCALE = os.environ.get("BERTCOURSE_SCALE", "course")  # ci | course | full

# %%
from bertcourse.course import scale_value, setup

info = setup(seed=4, scale=SCALE)
print(info)
PRESET = scale_value({"ci": "tiny", "course": "mini", "full": "base"})
BUILD_UP_TO = scale_value({"ci": "small", "course": "large", "full": "large"})  # largest preset actually built
LENGTHS = scale_value({"ci": [16, 32, 64, 128], "course": [64, 128, 256, 512, 1024, 2048],
                       "full": [128, 256, 512, 1024, 2048, 4096]})
TIMING_BATCH = scale_value({"ci": 2, "course": 2, "full": 16})

# %% [markdown]
# ## 1. The block

# %%
import inspect

from bertcourse.layers import EncoderBlock, FeedForward

print(inspect.getsource(EncoderBlock.call))
print(inspect.getsource(FeedForward.call))

# %% [markdown]
# The feed-forward network acts on each token alone, so its two dense layers take the tokens as one
# `[batch * seq, hidden]` matrix (`per_token`, lesson 03): then TensorFlow fuses the first matmul, its
# bias and the GELU into one CPU kernel instead of three passes over the widest tensor of the block.
#
# The LayerNorms are `bertcourse.layers.LayerNorm`: Keras's `LayerNormalization` (same weights, same
# numbers) that, at inference on TensorFlow's CPU kernels, is written as a pattern TensorFlow rewrites
# into one fused kernel (`_MklLayerNorm`) instead of five passes for the mean, the variance and the
# scaling: about 4% of a forward pass. The check below gives both layers the same weights.

# %%
import keras
import numpy as np

from bertcourse.layers import LayerNorm

ours, theirs = LayerNorm(epsilon=1e-12), keras.layers.LayerNormalization(epsilon=1e-12)
x = np.random.default_rng(0).normal(size=(2, 16, 64)).astype("float32")
for layer in (ours, theirs):
    layer.build(x.shape)
    layer.set_weights([np.linspace(0.5, 1.5, 64, dtype="float32"), np.linspace(-1, 1, 64, dtype="float32")])
print(f"LayerNorm vs keras.layers.LayerNormalization: max |diff| = "
      f"{np.abs(np.asarray(ours(x)) - np.asarray(theirs(x))).max():.1e}")

# %% [markdown]
# The block as a diagram, with the shapes of the `PRESET` model's first block on a batch of 2 sequences
# of 128 tokens (read from the layers themselves, not typed in): two sub-layers, each wrapped in a
# residual sum and a LayerNorm; only the feed-forward's inner layer is wider.

# %%
import matplotlib.pyplot as plt

from bertcourse import BertConfig
from bertcourse.models import BertBackbone

demo = BertBackbone(BertConfig.preset(PRESET)).encoder_layers[0]
Bd, Sd, Hd = 2, 128, demo.attention.hidden_size
Id = demo.feedforward.intermediate_size
boxes = [("input x", (Bd, Sd, Hd)), (f"self-attention, {demo.num_heads} heads x {demo.attention.head_size}", (Bd, Sd, Hd)),
         ("h = LayerNorm(x + attention)", (Bd, Sd, Hd)), (f"dense {Hd}->{Id} + GELU", (Bd, Sd, Id)),
         (f"dense {Id}->{Hd}", (Bd, Sd, Hd)), ("y = LayerNorm(h + FFN(h))", (Bd, Sd, Hd))]
fig, ax = plt.subplots(figsize=(5, 3.6), dpi=80)
for k, (name, shape) in enumerate(boxes):
    y = len(boxes) - 1 - k
    width = 2.9 + 0.8 * (shape[-1] == Id)
    ax.add_patch(plt.Rectangle((-width / 2, y - 0.3), width, 0.6, fc="#fde0c5" if shape[-1] == Id else "#dbe9f6",
                               ec="#555"))
    ax.text(0, y + 0.05, name, ha="center", fontsize=7)
    ax.text(0, y - 0.2, str(list(shape)), ha="center", fontsize=7, color="#555")
    if k:
        ax.annotate("", xy=(0, y + 0.3), xytext=(0, y + 0.7), arrowprops=dict(arrowstyle="->", lw=0.8))
for top, bottom in ((5, 3), (3, 0)):  # the residual connections skip each sub-layer
    ax.annotate("", xy=(1.9, bottom + 0.05), xytext=(1.9, top - 0.05),
                arrowprops=dict(arrowstyle="->", color="tab:red", lw=0.8, connectionstyle="arc3,rad=-0.3"))
ax.text(2.35, 2.5, "residual", color="tab:red", fontsize=7, rotation=90)
ax.set_xlim(-2.1, 2.6)
ax.set_ylim(-0.6, len(boxes) - 0.4)
ax.axis("off")
ax.set_title(f"one post-LN encoder block of '{PRESET}'", fontsize=9)
plt.show()

# %% [markdown]
# `normalize_first=True` moves each LayerNorm *before* its sub-layer (pre-LN) and adds one final
# LayerNorm after the last block. That is not BERT, but almost every model since GPT-2 uses it because
# deep stacks train more stably (exercise 1).
#
# BERT's GELU is the exact one, $x\,\Phi(x)$; keras-hub uses the tanh approximation. The two differ by
# less than 0.0005 everywhere:

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np

from bertcourse.layers import gelu_approximate, gelu_exact

grid = np.linspace(-5, 5, 2001).astype("float32")
gap = np.abs(np.asarray(gelu_exact(grid)) - np.asarray(gelu_approximate(grid)))
print(f"max |exact - approximate| = {gap.max():.5f} at x = {grid[gap.argmax()]:.1f}")

# %% [markdown]
# ## 2. Proof: one block equals keras-hub's `TransformerEncoder`
#
# Real sentences, embedded; one of our blocks; `encoder_block_to_keras_hub` builds keras-hub's block
# with the same weights. Post-LN and pre-LN both agree to float32 round-off.

# %%
from bertcourse import BertConfig
from bertcourse.data.corpora import load_corpus
from bertcourse.layers import BertEmbeddings
from bertcourse.text import BertPreprocessor, WordPieceTokenizer, bert_uncased_vocab_path

tokenizer = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path(), lowercase=True)
texts = [s for s in load_corpus("austen")[3].sentences if 5 < len(s.split()) < 30][:4]
batch = BertPreprocessor(tokenizer, sequence_length=32)(texts)
batch = {k: np.asarray(v).astype("int32") for k, v in batch.items()}
print("real tokens per sentence:", batch["padding_mask"].sum(1).tolist(), "of", batch["token_ids"].shape[1])

cfg = BertConfig.preset(PRESET, hidden_act="gelu_approximate")  # keras-hub's GELU, for the comparison
x = BertEmbeddings(cfg.vocab_size, cfg.hidden_size)(batch["token_ids"], batch["segment_ids"])

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.convert import encoder_block_to_keras_hub

for normalize_first in (False, True):
    block = EncoderBlock(cfg.num_heads, cfg.intermediate_size, hidden_act="gelu_approximate",
                         normalize_first=normalize_first)
    ours = np.asarray(block(x, padding_mask=batch["padding_mask"]))
    theirs = np.asarray(encoder_block_to_keras_hub(block)(x, padding_mask=batch["padding_mask"]))
    print(f"{'pre-LN ' if normalize_first else 'post-LN'}: max |ours - keras_hub| <= 1e-5:",
          bool(np.abs(ours - theirs).max() <= 1e-5))

# %% [markdown]
# ## 3. `BertBackbone`
#
# Embeddings, `num_layers` blocks, and the pooler: a dense layer with tanh on the `[CLS]` vector,
# which BERT's next-sentence objective trains as a summary of the input. It is a functional Keras
# model, built from a `BertConfig` (or a preset name), with the inputs and outputs keras-hub uses.

# %%
from bertcourse.models import BertBackbone

print(inspect.getsource(BertBackbone.__init__))

# %%
backbone = BertBackbone(PRESET, output_hidden_states=True, output_attention_scores=True)
out = backbone(batch)
for key, value in out.items():
    print(f"{key:17s} {tuple(value.shape)}")

# %% [markdown]
# `hidden_states` stacks the embeddings' output and each block's output (`num_layers + 1` of them);
# `attention_scores` holds every layer's and head's attention probabilities, for the heatmaps of
# lesson 03 at any depth. Both are off by default: they cost memory.
#
# ## 4. Proof: the whole model equals `keras_hub.models.BertBackbone`
#
# `bertcourse.convert.from_keras_hub` reads a keras-hub model's configuration and weights into ours;
# `to_keras_hub` goes the other way. Same sentences, same outputs, both directions:

# %%
# NBVAL_CHECK_OUTPUT
import keras_hub

from bertcourse.convert import from_keras_hub, keras_hub_kwargs, to_keras_hub

kh = keras_hub.models.BertBackbone(**keras_hub_kwargs(cfg))
ours = from_keras_hub(kh)
want, got = kh(batch), ours(batch)
for key in ("sequence_output", "pooled_output"):
    print(f"keras_hub -> ours, {key:15s}: max |diff| <= 1e-5:",
          bool(np.abs(np.asarray(want[key]) - np.asarray(got[key])).max() <= 1e-5))
back = to_keras_hub(ours)
print("ours -> keras_hub, sequence_output: max |diff| <= 1e-5:",
      bool(np.abs(np.asarray(back(batch)["sequence_output"]) - np.asarray(got["sequence_output"])).max() <= 1e-5))

# %% [markdown]
# The model saves to one `.keras` file (config + weights) and comes back identical:

# %%
# NBVAL_CHECK_OUTPUT
import tempfile

import keras

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "backbone.keras")
    ours.save(path)
    reloaded = keras.saving.load_model(path)
print(type(reloaded).__name__, "identical after reload:",
      bool((np.asarray(reloaded(batch)["sequence_output"]) == np.asarray(got["sequence_output"])).all()))

# %% [markdown]
# ## 5. Parameters: every preset, against the papers and keras-hub
#
# BERT-Base is "110M" and BERT-Large "340M" in Devlin et al. (2019); the miniatures (Turc et al.,
# 2019) are published as 4.4M, 11.3M, 29.1M and 41.7M. Those published miniature counts are of the
# *pretraining* checkpoints: encoder **plus the MLM head** (a `hidden × hidden` transform, its LayerNorm
# and one output bias per vocabulary entry; the output matrix is the token embedding, shared) and the
# NSP head. `BertConfig.num_parameters()` counts the encoder alone (with the pooler); the table adds the
# heads, counted from a built `BertPretrainer`, and matches the published figures. Lesson 00's table uses
# the same numbers. Below it, each preset is also *built*, ours and keras-hub's, and counted with
# `count_params()` (at `ci` scale only up to `small`).

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse import PRESETS

from bertcourse.models.pretraining import BertPretrainer

PUBLISHED = {"tiny": "4.4M", "mini": "11.3M", "small": "29.1M", "medium": "41.7M", "base": "110M", "large": "340M"}


def head_parameters(c):
    """MLM head (transform H x H + bias, LayerNorm, output bias per vocabulary entry) + NSP head (H x 2 + 2)."""
    return (c.hidden_size ** 2 + c.hidden_size) + 2 * c.hidden_size + c.vocab_size + (2 * c.hidden_size + 2)


tiny_cfg = BertConfig.preset("tiny")
built = BertPretrainer(BertBackbone(tiny_cfg))
assert built.count_params() == tiny_cfg.num_parameters() + head_parameters(tiny_cfg), "head count formula"
print(f"{'preset':7s} {'L/H/A':>11s} {'encoder':>13s} {'+ MLM/NSP heads':>16s} {'published':>10s}")
for name in PRESETS:
    c = BertConfig.preset(name)
    shape = f"{c.num_layers}/{c.hidden_size}/{c.num_heads}"
    with_heads = c.num_parameters() + head_parameters(c)
    print(f"{name:7s} {shape:>11s} {c.num_parameters():13,d} {with_heads:16,d} {PUBLISHED[name]:>10s}")

# %%
import gc
import time

rows = []
for name in PRESETS[: PRESETS.index(BUILD_UP_TO) + 1]:
    c = BertConfig.preset(name)
    start = time.perf_counter()
    n_ours = BertBackbone(c).count_params()
    gc.collect()
    n_kh = keras_hub.models.BertBackbone(**keras_hub_kwargs(c)).count_params()
    gc.collect()
    rows.append((name, c.num_parameters(), n_ours, n_kh, time.perf_counter() - start))
print(f"{'preset':7s} {'config':>13s} {'BertBackbone':>13s} {'keras_hub':>13s} {'equal':>6s} {'build s':>8s}")
for name, n_cfg, n_ours, n_kh, secs in rows:
    print(f"{name:7s} {n_cfg:13,d} {n_ours:13,d} {n_kh:13,d} {str(n_cfg == n_ours == n_kh):>6s} {secs:8.1f}")
assert all(r[1] == r[2] == r[3] for r in rows)

# %% [markdown]
# Base comes to 109.5M ("110M") and Large to 335.1M: the paper's "340M" was a rounded estimate.
#
# ## 6. Where do the parameters live?
#
# Per layer, attention has $4(H^2 + H)$ weights (Q, K, V and output projections) and the
# feed-forward network $2 \cdot 4H^2 + 5H$: twice as many. The embeddings are a fixed
# $30{,}522 \times H$ table, which dominates the small models and shrinks to a tenth of Large.

# %%
# NBVAL_CHECK_OUTPUT
import matplotlib.pyplot as plt

parts = ["embeddings", "attention", "feedforward", "pooler"]
shares = {name: BertConfig.preset(name).parameter_breakdown() for name in PRESETS}
print(f"{'preset':7s}" + "".join(f"{p:>13s}" for p in parts))
for name, b in shares.items():
    total = sum(b.values())
    print(f"{name:7s}" + "".join(f"{b[p] / total:13.1%}" for p in parts))

# %%
fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
left = np.zeros(len(PRESETS))
for part in parts:
    frac = np.array([shares[n][part] / sum(shares[n].values()) for n in PRESETS])
    ax.barh(PRESETS, frac, left=left, label=part)
    left += frac
ax.set_xlabel("share of parameters")
ax.invert_yaxis()
ax.legend(fontsize=8, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 7. Time and memory of one forward pass vs sequence length
#
# Projections and feed-forward cost the same per token however long the input: their total grows
# *linearly* with the sequence length $n$. Attention compares every token with every other: its
# score matrices have $n^2$ entries per head, so its cost and memory grow *quadratically*. We time one
# inference forward pass (compiled with `tf.function`, best of 5; of 2 past 512 tokens) of the `PRESET` model at several
# lengths and divide by $n$: a flat line would be linear cost; a rise is the $n^2$ term. At short lengths
# a second effect shows first: every call pays a fixed overhead (launching the ops of a small batch),
# spread over more tokens as $n$ grows, so the time per token *falls* until the $n^2$ term takes over.
# The figure's title says where the minimum was in this run. To look past
# 512 tokens we give this one model a longer position table (`max_position_embeddings`); nothing
# else changes.

# %%
import tensorflow as tf

model = BertBackbone(BertConfig.preset(PRESET, max_position_embeddings=max(512, max(LENGTHS))))
forward = tf.function(lambda inputs: model(inputs, training=False)["sequence_output"])
timings = []
for n in LENGTHS:
    ids = np.random.default_rng(0).integers(1000, cfg.vocab_size, size=(TIMING_BATCH, n)).astype("int32")
    inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
    forward(inputs).numpy()  # trace and warm up
    runs = []
    for _ in range(5 if n <= 512 else 2):  # long inputs are slow enough to time reliably
        t0 = time.perf_counter()
        forward(inputs).numpy()
        runs.append(time.perf_counter() - t0)
    best = min(runs)
    timings.append(best)
    print(f"n = {n:4d}: {best * 1e3:8.1f} ms per batch of {TIMING_BATCH}, {best / (TIMING_BATCH * n) * 1e6:7.2f} µs per token")

# %%
c = BertConfig.preset(PRESET)
L, H, A, I = c.num_layers, c.hidden_size, c.num_heads, c.intermediate_size
ns = np.array(LENGTHS, dtype=float)
linear_flops = L * (2 * 4 * H * H + 2 * 2 * H * I) * ns          # per sequence: projections + FFN
quadratic_flops = L * (2 * 2 * H) * ns ** 2                      # QK^T and probs·V
attention_mib = L * A * ns ** 2 * 4 / 2 ** 20                    # all layers' probabilities, float32
hidden_mib = L * ns * (6 * H + I) * 4 / 2 ** 20                  # the main per-token activations

fig, axes = plt.subplots(1, 2, figsize=(6, 3), dpi=80)
per_token = np.array(timings) / (TIMING_BATCH * ns) * 1e6
axes[0].plot(ns, per_token, "o-", label="measured")
axes[0].set_xlabel("sequence length n")
axes[0].set_ylabel("µs per token")
n_best = LENGTHS[int(np.argmin(per_token))]
title = ("time / token falls with n (fixed overhead)" if n_best == LENGTHS[-1] else
         "time / token grows with n" if n_best == LENGTHS[0] else f"time / token: lowest at n = {n_best}, then grows")
axes[0].set_title(title, fontsize=9)
axes[1].plot(ns, attention_mib, "o-", label="attention probs (n²)")
axes[1].plot(ns, hidden_mib, "s-", label="hidden activations (n)")
axes[1].set_xlabel("sequence length n")
axes[1].set_ylabel("MiB per sequence")
axes[1].set_title("activation memory, all layers", fontsize=9)
axes[1].legend(fontsize=7)
plt.tight_layout()
plt.show()
for n, lin, quad in zip(LENGTHS, linear_flops, quadratic_flops):
    print(f"n = {n:4d}: attention's n² matmuls are {quad / (lin + quad):5.1%} of the FLOPs")
print(f"measured: time per token is lowest at n = {n_best}; at n = {LENGTHS[-1]} a token costs "
      f"{per_token[-1] / per_token.min():.1f}x that; at n = {LENGTHS[0]}, {per_token[0] / per_token.min():.1f}x "
      f"(the fixed overhead)")

# %% [markdown]
# By FLOPs, attention's quadratic part overtakes the linear part at $n = 6H$ (exercise 3); in
# practice the softmax, masking and dropout over the $n^2$ scores are memory-bound and make it bite
# earlier than the FLOP count suggests. This is why BERT stops at 512 tokens, and why lesson 13 splits long documents into windows.
#
# ## Exercises
#
# 1. Build `BertBackbone(PRESET)` and `BertBackbone(PRESET, normalize_first=True)` with the same
#    weights. Multiply the embeddings' LayerNorm `gamma` by 10 in both (a stand-in for a residual
#    stream that has grown during training) and print the per-token standard deviation of
#    `sequence_output`. Which model re-normalises its output, and why do pre-LN models (GPT-2 and
#    later) add one final LayerNorm after the last block?
# 2. all-MiniLM-L6-v2 has 6 layers, hidden 384, 12 heads, intermediate 1536. Predict its parameter
#    count with `BertConfig(...).num_parameters()`, then build it and check.
# 3. Show that attention's $n^2$ FLOPs equal the linear FLOPs at $n = 6H$, whatever the number of
#    layers: for BERT-Base, at what length is that?
# 4. **Write the encoder block yourself.** `my_block(block, x, padding_mask)` gets a real `EncoderBlock`
#    and must compute its output from its sub-layers only: `block.attention(x, padding_mask=...)`,
#    `block.attention_layer_norm`, `block.feedforward`, `block.feedforward_layer_norm` (no dropout: this
#    is inference). `check_encoder_block` compares yours with the block itself on a padded batch and
#    recognises the usual slips (pre-LN instead of post-LN, a missing residual, the mask left out).

# %%
from bertcourse.exercises import check_encoder_block


def my_block(block, x, padding_mask):
    # your code here: two sub-layers, each with a residual sum and a LayerNorm
    return None


check_encoder_block(my_block)

# %% [markdown]
# ### Solutions

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 1: post-LN ends every block with a LayerNorm, so its output has std 1 per token whatever
# comes in; pre-LN only normalises the *inputs* of its sub-layers and passes the residual stream
# through untouched: its output keeps the stream's scale, hence the extra final LayerNorm.
# `BertBackbone(normalize_first=True)` has that final LayerNorm built in; the blocks alone show why.
post = BertBackbone(PRESET)
pre = BertBackbone(PRESET, normalize_first=True)  # the same weights, plus its final LayerNorm
pre.embeddings.set_weights(post.embeddings.get_weights())
for pre_block, post_block in zip(pre.encoder_layers, post.encoder_layers):
    pre_block.set_weights(post_block.get_weights())
for m in (post, pre):
    m.embeddings.layer_norm.gamma.assign(m.embeddings.layer_norm.gamma * 10.0)
x = pre.embeddings(batch["token_ids"], batch["segment_ids"])
for block in pre.encoder_layers:
    x = block(x, padding_mask=batch["padding_mask"])
rows = (("post-LN, sequence_output", post(batch)["sequence_output"]), ("pre-LN, after the last block", x),
        ("pre-LN, sequence_output (final LayerNorm)", pre(batch)["sequence_output"]))
for name, h in rows:
    print(f"{name:42s} per-token std {np.asarray(h).std(-1).mean():.2f}")

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 2
minilm = BertConfig(num_layers=6, hidden_size=384, num_heads=12, intermediate_size=1536)
print(f"predicted {minilm.num_parameters():,d}; built {BertBackbone(minilm).count_params():,d}")

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 3: per layer, linear = 2·(4H² + 2·H·4H)·n = 24·H²·n and quadratic = 4·H·n², equal at n = 6H.
for name in ("mini", "base"):
    print(f"{name}: n = 6H = {6 * BertConfig.preset(name).hidden_size}")

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 4: post-LN: normalise the residual sum after each sub-layer.
def my_block(block, x, padding_mask):
    h = block.attention_layer_norm(x + block.attention(x, padding_mask=padding_mask))
    return block.feedforward_layer_norm(h + block.feedforward(h))


check_encoder_block(my_block)
