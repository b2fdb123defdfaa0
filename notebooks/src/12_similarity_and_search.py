# %% [markdown]
# # 12 · Sentence similarity and semantic search
#
# **What you will do:** turn a BERT into a search engine. With all-MiniLM-L6-v2 (lesson 05) you will
# search Jane Austen by *meaning* with the questions a reader would ask, then **measure** retrieval on a
# real task with a known answer: the same Bible verse in two English translations, the King James
# Version (1611/1769) and a modern one (the WEB). For each modern verse, can the model find its KJV
# counterpart among all the others? You will compare four ways of getting a sentence vector:
#
# * MiniLM **mean pooling + L2 normalisation** (what the model was trained for);
# * the **raw `[CLS]`** vector of the same model (what many first attempts use);
# * **BM25**, the classic lexical baseline (word overlap, no neural network);
# * **our own small BERT** pretrained in lesson 07 (if you ran it), mean-pooled.
#
# and see why raw `[CLS]` vectors fail: they all point the same way ("anisotropy").

# %% tags=["parameters"]
import os

SCALE = os.environ.get("BERTCOURSE_SCALE", "course")  # ci | course | full

# %%
import time

from bertcourse.course import scale_value, setup

info = setup(seed=12, scale=SCALE)
print(info)
# Verses in the retrieval task (queries = their WEB text, candidates = the same verses in KJV) and
# Austen paragraphs in the search demo. "full" is every verse (31,095): about 40 minutes of encoding on
# a 2-core CPU, minutes on a GPU.
N_VERSES = scale_value({"ci": 300, "course": 2000, "full": 31095})
N_PARAGRAPHS = scale_value({"ci": 150, "course": 1000, "full": 1545})
BATCH = 64

# %% [markdown]
# ## 1. The encoder
#
# `SentenceEncoder` = `BertBackbone` + pooling + normalisation, with tokenization inside the TensorFlow
# graph. `encode` sorts the sentences by length so each batch carries little padding:

# %%
import inspect

import numpy as np

from bertcourse.pretrained import load_sentence_encoder
from bertcourse.tasks.feature_extraction import pool_outputs

encoder = load_sentence_encoder("all-MiniLM-L6-v2")
print(inspect.getsource(pool_outputs))

# %% [markdown]
# How good is it on the standard benchmark? `bench/sts_benchmark.py` measures the Spearman correlation
# between the model's cosine and human similarity ratings (0-5) on the 1,379 sentence pairs of the
# STS Benchmark test set (the file is not shipped with the course; see `bench/README.md`):
#
# | sentence vector | STS-B test Spearman × 100 |
# |---|---|
# | all-MiniLM-L6-v2, mean pooling (ours) | **82.0** (published: about 82) |
# | all-MiniLM-L6-v2, raw `[CLS]` (ours) | 73.5 |
# | our lesson-07 BERT (4 layers, 256 wide, MLM + NSP on Austen), mean pooling | 42.6 |
#
# (numbers from `bench/README.md`, measured with this package; lesson 12 itself does not need the file.)

# %% [markdown]
# ## 2. Searching Austen by meaning
#
# The paragraphs of *Pride and Prejudice* (at least 20 words each) become unit vectors; a question
# becomes one too; the best answers are the largest dot products. `exact_search` does that with one
# matrix product per chunk of queries: exact, and fast enough for tens of thousands of vectors.

# %%
from bertcourse.data.corpora import load_corpus
from bertcourse.retrieval import exact_search

paragraphs = [" ".join(p) for d in load_corpus("austen") if d.source == "pride-and-prejudice"
              for p in d.paragraphs if len(" ".join(p).split()) >= 20][:N_PARAGRAPHS]
start = time.time()
para_vectors = encoder.encode(paragraphs, batch_size=BATCH)
print(f"{len(paragraphs):,} paragraphs -> {para_vectors.shape} in {time.time() - start:.0f}s")

# %%
questions = [
    "Why does Elizabeth refuse Mr. Darcy's first proposal?",
    "What does Mrs. Bennet want for her daughters?",
    "Who is the new tenant at Netherfield?",
    "What does Mr. Collins say when he proposes?",
    "Is Jane in love with Mr. Bingley?",
]
hits, scores = exact_search(encoder.encode(questions), para_vectors, k=2)
for q, row, srow in zip(questions, hits, scores):
    print(f"\nQ: {q}")
    for j, s in zip(row, srow):
        print(f"  {s:.2f}  {paragraphs[j][:150]}{'...' if len(paragraphs[j]) > 150 else ''}")

# %% [markdown]
# Were those the right paragraphs? For three questions the novel has paragraphs that *are* the answer:
# Darcy's first proposal and Elizabeth's refusal, Mr. Collins's proposal, and Mrs. Bennet's news about
# Netherfield. The cell finds them by a phrase each holds and prints where the search ranked the best of
# them among all indexed paragraphs (at `ci` scale only the first chapters are indexed, so some are not
# in the index at all).

# %%
ANSWERS = {  # question -> phrases found only in the paragraphs that answer it
    questions[0]: ["In vain I have struggled", "From the very beginning--from the first moment",
                   "had you behaved in a more gentlemanlike manner"],
    questions[3]: ["Believe me, my dear Miss Elizabeth, that your modesty", "My reasons for marrying are"],
    questions[2]: ["Mrs. Long says that Netherfield is taken", "Netherfield Park is let at last"],
}
order, order_scores = exact_search(encoder.encode(list(ANSWERS)), para_vectors, k=len(paragraphs))
found_in_top2 = {}
for (question, phrases), row, srow in zip(ANSWERS.items(), order, order_scores):
    answers = {j for j, p in enumerate(paragraphs) if any(ph.lower() in p.lower() for ph in phrases)}
    if not answers:
        print(f"{question}\n  its answer paragraphs are not in the {len(paragraphs):,} indexed at this scale")
        continue
    rank = next(r for r, j in enumerate(row) if j in answers)
    found_in_top2[question] = rank < 2
    print(f"{question}\n  best answer paragraph ranked {rank + 1} of {len(paragraphs):,} "
          f"(score {srow[rank]:.2f}; top hit {srow[0]:.2f}): {paragraphs[row[rank]][:90]}...")
print(f"\nanswer in the top 2 for {sum(found_in_top2.values())} of {len(found_in_top2)} answerable questions")

# %% [markdown]
# Read the ranks before calling this a success. The search finds paragraphs *about* the question's
# people and subject (Darcy asking for Elizabeth's hand at a dance, Charlotte on Mr. Collins's wish to
# marry), with no word of the question in them: that part is real, and no keyword search would do it.
# But a passage that *answers* a question is not the same as a passage *similar* to it, and this model was
# trained for similarity between sentences of the same kind, not for question → passage retrieval. Where a
# proposal paragraph is in the index, it can rank below paragraphs that merely share its topic (the ranks
# above). Models trained on question-passage pairs (the "msmarco" family of sentence encoders), or BM25
# with the right names in the query, or an extractive QA model (lesson 11) reading the top hits, do
# better; section 4 measures retrieval on verse pairs, where the answer to every query is known.
# A real system also sets a score threshold: when the answer is not indexed, the search still returns
# its nearest neighbours.

# %% [markdown]
# ## 3. Anisotropy: why raw `[CLS]` vectors disappoint
#
# Take random pairs of *unrelated* Austen sentences and look at their cosine. For a useful embedding
# it should sit near 0. Raw `[CLS]` vectors of the same model all point in a similar direction, so
# every cosine is high and the differences that matter are squeezed into a narrow band.
# `encode(..., pooling=("mean", "cls"))` computes both from one forward pass.

# %%
# NBVAL_CHECK_OUTPUT
import matplotlib.pyplot as plt

rng = np.random.default_rng(0)
sample = [s for d in load_corpus("austen") for s in d.sentences if 8 <= len(s.split()) <= 40]
sample = [sample[i] for i in rng.choice(len(sample), 200, replace=False)]
vecs = encoder.encode(sample, batch_size=BATCH, pooling=("mean", "cls"))
i, j = np.triu_indices(len(sample), k=1)
cos = {name: ((v[i] * v[j]).sum(1) / (np.linalg.norm(v[i], axis=1) * np.linalg.norm(v[j], axis=1)))
       for name, v in vecs.items()}
for name, c in cos.items():
    print(f"{name:5s} random-pair cosine: mean {c.mean():.1f}, 5th-95th percentile {np.percentile(c, 5):.1f} .. "
          f"{np.percentile(c, 95):.1f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
for name, c in cos.items():
    ax.hist(c, bins=60, alpha=0.6, label={"mean": "mean pooling + normalise", "cls": "raw [CLS]"}[name])
ax.set_xlabel("cosine of two unrelated sentences")
ax.set_ylabel("pairs")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The whole `[CLS]` cloud lives in a narrow cone (Ethayarajh 2019 showed the same for BERT's token
# vectors). Two things fix it here: **mean pooling** over all tokens, which is what this model was
# trained to produce (a contrastive objective pushes unrelated sentences apart), and **normalisation**,
# which makes a dot product equal to the cosine so an exact or approximate inner-product index can be
# used directly. (Normalising alone does not change a cosine: it cannot rescue `[CLS]`.) A cheap partial
# fix for an untrained pooling is to subtract the mean vector (centring):

# %%
# NBVAL_CHECK_OUTPUT
centred = vecs["cls"] - vecs["cls"].mean(0)
c = (centred[i] * centred[j]).sum(1) / (np.linalg.norm(centred[i], axis=1) * np.linalg.norm(centred[j], axis=1))
print("centred [CLS] random-pair cosine: mean", round(float(c.mean()), 1) + 0.0)  # + 0.0 turns -0.0 into 0.0

# %% [markdown]
# ## 4. A measured retrieval task: KJV ↔ WEB
#
# `data/bible_kjv_web.tsv` holds 31,095 verses in both translations, aligned by reference (built from
# Debian's `sword-text-kjv` and `sword-text-web` packages; see `data/README.md`). Queries are the modern
# (WEB) verses, the index is the KJV text of the same verses, and the right answer is known. We report
#
# * **recall@k**: the share of queries whose counterpart is among the top k results;
# * **MRR**: the mean of 1/rank of the counterpart (1 = always first).
#
# Below `full` scale we use a random (seeded) sample of verses from the whole Bible; the search runs
# among the sampled verses only, so numbers are not comparable across scales (more candidates = harder).

# %%
from bertcourse.data.bible import load_verse_pairs

pairs = load_verse_pairs()
pick = np.sort(np.random.default_rng(12).choice(len(pairs), min(N_VERSES, len(pairs)), replace=False))
refs = [pairs[k][0] for k in pick]
kjv = [pairs[k][1] for k in pick]
web = [pairs[k][2] for k in pick]
gold = np.arange(len(pick))
print(f"{len(pick):,} verse pairs of {len(pairs):,}, e.g. {refs[0]}:\n  KJV: {kjv[0]}\n  WEB: {web[0]}")

# %%
from bertcourse.retrieval import BM25, ranking_metrics

results, timings = {}, {}
start = time.time()
kjv_vecs = encoder.encode(kjv, batch_size=BATCH, pooling=("mean", "cls"))
web_vecs = encoder.encode(web, batch_size=BATCH, pooling=("mean", "cls"))
timings["MiniLM (both poolings)"] = time.time() - start
for pooling, label in (("mean", "MiniLM mean pooling"), ("cls", "MiniLM raw [CLS]")):
    _, _, ranks = exact_search(web_vecs[pooling], kjv_vecs[pooling], k=10, gold=gold)
    results[label] = ranking_metrics(ranks)

start = time.time()
bm25 = BM25(kjv)
_, _, ranks = bm25.search(web, k=10, gold=gold)
results["BM25 (k1=1.5, b=0.75)"] = ranking_metrics(ranks)
timings["BM25"] = time.time() - start
print({k: f"{v:.0f}s" for k, v in timings.items()})

# %% [markdown]
# And our own small BERT from lesson 07, pretrained on Austen with MLM + NSP only (no sentence-pair
# training): the same `SentenceEncoder` around it, mean pooling.

# %%
from bertcourse import BertConfig
from bertcourse.course import runs_dir
from bertcourse.pretrained import load_course_encoder

run = runs_dir() / "pretrain-course-mini"
if (run / "backbone.weights.h5").exists():
    ours = load_course_encoder(run)
    ours_cfg = ours.backbone.config
    _, _, ranks = exact_search(ours.encode(web, batch_size=BATCH), ours.encode(kjv, batch_size=BATCH), k=10, gold=gold)
    results[f"our lesson-07 BERT ({ours_cfg.num_layers}/{ours_cfg.hidden_size}), mean"] = ranking_metrics(ranks)
else:
    print(f"Skipped: {run}/backbone.weights.h5 not found (run lesson 07 at course scale to create it).")

# %%
print(f"{len(pick):,} WEB queries, each against {len(pick):,} KJV verses")
print(f"{'method':42s} {'recall@1':>9s} {'recall@10':>10s} {'MRR':>6s}")
for name, m in results.items():
    print(f"{name:42s} {m['recall@1']:9.3f} {m['recall@10']:10.3f} {m['mrr']:6.3f}")

# %% [markdown]
# Read the table with the task in mind:
#
# * **BM25 is very strong here** (on the course-scale sample it edges out MiniLM). Two translations of the
#   same verse share rare names and content words (*Jehoiada*, *cubits*, *shekels*), exactly what BM25's
#   idf rewards. Lexical baselines belong in every retrieval evaluation: cheap, and on keyword-heavy text
#   hard to beat.
# * **MiniLM mean pooling** is close behind without ever having seen a KJV verse: it matches on meaning
#   (*thee/you*, *begat/became the father of*). Where it fails, the neighbours are usually verses about the
#   same thing (see below), which BM25 separates by names.
# * **Raw `[CLS]`** of the same network is clearly worse on every metric: the anisotropy of section 3
#   squeezes the scores together, so near-misses overtake the right verse more often.
# * A small BERT pretrained only with MLM + NSP (lesson 07) finds the right verse far more often than
#   chance (1 in the number of verses) because similar words give similar token vectors, but it is far
#   behind: sentence similarity has to be *trained* (exercise 3 and the sentence-transformers recipe).

# %%
_, _, ranks = exact_search(web_vecs["mean"], kjv_vecs["mean"], k=10, gold=gold)
hits, _ = exact_search(web_vecs["mean"], kjv_vecs["mean"], k=1)
misses = np.flatnonzero(ranks > 1)[:3]
for q in misses:
    print(f"{refs[q]} (true answer ranked {ranks[q]}):\n  WEB query: {web[q][:120]}\n"
          f"  found {refs[hits[q, 0]]}: {kjv[hits[q, 0]][:120]}\n  wanted:   {kjv[q][:120]}")

# %% [markdown]
# Some misses are not errors: "Yahweh spoke to Moses, saying," stands for dozens of identical KJV verses
# ("And the LORD spake unto Moses, saying,"), and any of them is as good an answer as the one with the
# same reference. A task with duplicates caps every method's recall@1 below 1.

# %% [markdown]
# ## 5. Nearest-neighbour search at scale
#
# `exact_search` is a brute-force matrix product: O(queries × index × dim). For 31,095 × 31,095 × 384 that
# is about 0.4 TFLOP, seconds on a CPU. Beyond millions of vectors you would switch to an approximate
# index (HNSW, IVF-PQ; e.g. FAISS or ScaNN) that trades a little recall for speed. Because our vectors
# are unit length, the inner product *is* the cosine, which every such library supports.

# %%
start = time.time()
_ = exact_search(web_vecs["mean"], kjv_vecs["mean"], k=10)
print(f"exact top-10 for {len(web):,} queries over {len(kjv):,} vectors: {time.time() - start:.2f}s")

# %% [markdown]
# ## Summary
#
# * A sentence encoder = a BERT + a pooling that was *trained* for similarity + normalisation.
# * Raw `[CLS]` vectors are anisotropic: all cosines are high. Mean pooling of a contrastively trained
#   model spreads them out; normalising makes the dot product the cosine.
# * Measure retrieval with recall@k and MRR on a task with known answers, and always include a lexical
#   baseline such as BM25: on name-heavy text it can win.
#
# ## Exercises
#
# 1. Hybrid search: add the min-max-normalised BM25 and MiniLM scores. Does recall@1 beat both?
# 2. Make the task harder: take the verses of one book, Proverbs (contiguous verses in one style on
#    one theme: every distractor is a hard negative), as queries and candidates. Which method suffers most?
# 3. Why can't the lesson-07 model's `[CLS]` vector (trained by NSP) find paraphrases? Look at what NSP
#    asks the model to decide.

# %% [markdown]
# ### Solutions

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 1 (argmax breaks ties in favour of the lower index, so duplicate verses can make it read a
# little higher than the table's pessimistic ranks)
def minmax(x):
    return (x - x.min(1, keepdims=True)) / (x.max(1, keepdims=True) - x.min(1, keepdims=True) + 1e-9)


dense = web_vecs["mean"] @ kjv_vecs["mean"].T
lexical = bm25.scores(web)
for name, s in (("MiniLM", dense), ("BM25", lexical), ("hybrid", minmax(dense) + minmax(lexical))):
    print(f"{name:7s} recall@1 {float((s.argmax(1) == gold).mean()):.3f}")

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 2
prov = load_verse_pairs(books=["Prov"])[: min(N_VERSES, 915)]
p_kjv, p_web = [k for _, k, _ in prov], [w for _, _, w in prov]
p_gold = np.arange(len(prov))
_, _, r_dense = exact_search(encoder.encode(p_web, batch_size=BATCH), encoder.encode(p_kjv, batch_size=BATCH),
                             gold=p_gold)
_, _, r_bm25 = BM25(p_kjv).search(p_web, gold=p_gold)
print(f"Proverbs, {len(prov)} verses: MiniLM recall@1 {ranking_metrics(r_dense)['recall@1']:.3f}, "
      f"BM25 recall@1 {ranking_metrics(r_bm25)['recall@1']:.3f}")

# %% [markdown]
# Solution 3: NSP asks "does B follow A in the same document?" Topic and style answer it, not meaning:
# the `[CLS]` vector learns "which book is this from", not "what does it say". Sentence similarity needs
# a similarity objective (contrastive pairs, as all-MiniLM-L6-v2 was trained on ~1 billion of them).
