# %% [markdown]
# # 00 · Setup and tour
#
# **What you will do:** check that your environment is complete, see the road map of the course,
# meet the two objects every later lesson starts from (`BertConfig` and the corpus) and look at the
# text we will pretrain on.
#
# The course builds BERT (Devlin et al., 2019) from the ground up in Keras 3. Each lesson imports the
# piece it teaches from the `bertcourse` package, runs it on real text and proves it against a
# production implementation (Hugging Face `tokenizers`, `tensorflow_text`, `keras_hub`).
#
# | # | lesson | what you build |
# |---|---|---|
# | 00 | setup and tour | this notebook |
# | 01 | text to WordPiece | normaliser, greedy longest-match WordPiece, a vocabulary learned on Austen |
# | 02 | embeddings | token + segment + position embeddings |
# | 03 | self-attention | multi-head attention from scratch, checked against `MultiHeadAttention` |
# | 04 | encoder block and backbone | `BertBackbone`, presets tiny → large, parameter counts |
# | 05 | real weights | all-MiniLM-L6-v2 running in your own encoder |
# | 06 | MLM and NSP data | 15% masking, 80/10/10, sentence pairs |
# | 07 | pretraining | L = L_MLM + L_NSP on real text |
# | 08 | training recipes | AdamW, warmup, accumulation, mixed precision, XLA, distribution |
# | 09-14 | tasks | sentiment, NER, extractive QA, similarity, long documents, serving |
#
# Every notebook has one switch: the environment variable `BERTCOURSE_SCALE` (`ci`, `course` or `full`).
# `course` (the default) fits a laptop CPU; `full` is for a GPU or TPU; `ci` is what the tests run.

# %% tags=["parameters"]
import os

SCALE = os.environ.get("BERTCOURSE_SCALE", "course")  # ci | course | full

# %%
from bertcourse.course import setup

info = setup(seed=42, scale=SCALE)
print(info)

# %% [markdown]
# ## 1. Is everything installed?
#
# The versions the course is pinned to, and the devices TensorFlow sees. On a laptop you will see one
# CPU; on Colab with a GPU runtime a `GPU:0` appears, and the same notebooks run unchanged.

# %%
from importlib.metadata import version

import tensorflow as tf

for package in ["tensorflow", "tensorflow-text", "keras", "keras-hub", "numpy", "matplotlib", "bertcourse"]:
    print(f"{package:16s} {version(package)}")
print("devices:", [d.device_type + ":" + d.name.split(":")[-1] for d in tf.config.list_logical_devices()])

# %%
# NBVAL_CHECK_OUTPUT
import keras

expected = {"tensorflow": "2.21.0", "tensorflow-text": "2.21.1", "keras-hub": "0.32.0"}
for package, pinned in expected.items():
    assert version(package) == pinned, f"{package} {version(package)} != {pinned}: run `make install`"
assert version("keras").startswith("3.15."), version("keras")
print("pins ok; keras backend:", keras.backend.backend())

# %% [markdown]
# ## 2. `BertConfig`: the numbers that fix a BERT
#
# A BERT encoder is fully described by a dozen integers and rates. The presets follow Google's
# published models: the 24 "BERT miniatures" of Turc et al. (tiny, mini, small, medium) and the
# original Base and Large. `num_parameters()` counts weights from shapes alone, without building
# anything; lesson 04 builds each model and checks the count against `keras_hub`.
#
# Two things to know when comparing with published sizes. First, the miniatures' published counts are
# of their *pretraining* checkpoints: the encoder **plus the MLM and NSP heads** (lesson 04 counts the
# heads from a built model); the encoder alone is the `parameters` column. Second, bytes: a float32 weight
# is 4 bytes, so BERT-Base's 110M parameters are about 440 MB on disk (Hugging Face's `bert-base-uncased`
# weights file is 440 MB), not the "140 MB" that some introductions quote.

# %%
import inspect

from bertcourse import PRESETS, BertConfig

print(inspect.getsource(BertConfig.parameter_breakdown))

# %%
# NBVAL_CHECK_OUTPUT
# published: Turc et al. (2019) for the miniatures (encoder + MLM/NSP heads), Devlin et al. (2019) for Base/Large
published = {"tiny": "4.4M", "mini": "11.3M", "small": "29.1M", "medium": "41.7M", "base": "110M", "large": "340M"}
print(f"{'preset':8s} {'layers':>6s} {'hidden':>6s} {'heads':>5s} {'parameters':>12s} {'+ heads':>12s} "
      f"{'published':>10s} {'float32 MB':>10s}")
for name in PRESETS:
    cfg = BertConfig.preset(name)
    h = cfg.hidden_size
    heads = (h * h + h) + 2 * h + cfg.vocab_size + (2 * h + 2)  # MLM transform + LayerNorm + bias, NSP
    print(f"{name:8s} {cfg.num_layers:6d} {h:6d} {cfg.num_heads:5d} {cfg.num_parameters():12,d} "
          f"{cfg.num_parameters() + heads:12,d} {published[name]:>10s} {cfg.num_parameters() * 4 / 1e6:10,.0f}")

# %% [markdown]
# Configs reject shapes that cannot work, with a message that says why:

# %%
# NBVAL_CHECK_OUTPUT
try:
    BertConfig(hidden_size=100, num_heads=12)
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## 3. The corpus
#
# We pretrain on real prose that ships with the course: Jane Austen's six novels and Melville's
# *Moby Dick*, both public domain, extracted from Debian packages by `data/build.py` (see
# `data/README.md` for provenance). A corpus reads as documents (chapters) → paragraphs → sentences,
# exactly the structure BERT's next-sentence prediction needs.

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.data import corpora

stats = corpora.corpus_stats()
print(f"{'corpus':10s} {'documents':>9s} {'paragraphs':>10s} {'sentences':>9s} {'words':>9s}")
for name, s in stats.items():
    print(f"{name:10s} {s['documents']:9,d} {s['paragraphs']:10,d} {s['sentences']:9,d} {s['words']:9,d}")

# %%
# NBVAL_CHECK_OUTPUT
docs = corpora.load_corpus("austen")
first = docs[0]
print(first.id, "-", len(first.paragraphs), "paragraphs")
for sentence in first.paragraphs[0][:3]:
    print("  ", sentence)

# %% [markdown]
# How long are the sentences? BERT packs two *segments* of sentences into at most 512 tokens (128 in
# most of its pretraining), so the sentence-length distribution decides how many sentences fit in a
# segment. Austen writes long periodic sentences; Melville varies more.

# %%
import matplotlib.pyplot as plt
import numpy as np

lengths = {name: np.array([len(s.split()) for s in corpora.sentences(name)]) for name in corpora.CORPORA}
fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
bins = np.arange(0, 120, 4)
for name, values in lengths.items():
    ax.hist(values, bins=bins, alpha=0.6, density=True, label=f"{name} (median {np.median(values):.0f})")
ax.set_xlabel("words per sentence")
ax.set_ylabel("fraction")
ax.legend()
plt.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for name, values in lengths.items():
    print(f"{name:10s} mean {values.mean():5.1f}  median {np.median(values):4.0f}  "
          f"95th pct {np.percentile(values, 95):5.0f}  longest {values.max()}")

# %% [markdown]
# ## 4. Held-out text
#
# Lessons that measure a model (tokenizer `[UNK]` rate, MLM accuracy) use chapters the model never saw.
# The split is by whole chapter, every 10th one.

# %%
# NBVAL_CHECK_OUTPUT
train_docs, heldout_docs = corpora.split_documents(docs)
print(len(train_docs), "training chapters,", len(heldout_docs), "held-out chapters, e.g.",
      [d.id for d in heldout_docs[:3]])

# %% [markdown]
# ## Exercises
#
# 1. Which preset has the most parameters in its embeddings *relative* to its total? Why does that
#    matter for small models?
# 2. Which Austen novel has the longest average chapter, in sentences?
#
# ### Solutions

# %% tags=["solution"] jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
# 1. The embedding share falls as models grow: a 30,522-word table dominates tiny models.
for name in PRESETS:
    b = BertConfig.preset(name).parameter_breakdown()
    print(f"{name:7s} embeddings are {b['embeddings'] / sum(b.values()):5.1%} of the parameters")

# %% tags=["solution"] jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
# 2. Sentences per chapter, averaged per novel.
per_book = {}
for d in docs:
    per_book.setdefault(d.source, []).append(len(d.sentences))
for book, counts in sorted(per_book.items(), key=lambda kv: -np.mean(kv[1])):
    print(f"{book:22s} {np.mean(counts):6.1f} sentences per chapter over {len(counts)} chapters")
