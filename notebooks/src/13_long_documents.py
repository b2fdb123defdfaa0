# %% [markdown]
# # 13 · Long documents
#
# **What you will do:** classify texts far longer than a BERT can read at once. A BERT has a position table
# of fixed size (512 for BERT and MiniLM, 128 for the model you pretrained in lesson 07): anything longer must
# be cut. You will fine-tune lesson 07's model to tell which novel a passage comes from, then classify
# **whole held-out chapters** (thousands of tokens each) in five ways, and put accuracy and cost side by side:
#
# * **head**: the first tokens only (what a plain pipeline does, Hugging Face's default truncation);
# * **head+tail**: the first quarter of the budget from the start, the rest from the end (Sun et al. 2019);
# * **windows**: every token, in overlapping windows (the `stride` of Hugging Face's tokenizers), one forward
#   pass per window, the window logits aggregated by their **mean** or their **max**.

# %% tags=["parameters"]
import os

SCALE = os.environ.get("BERTCOURSE_SCALE", "course")  # ci | course | full

# %%
import time

from bertcourse.course import runs_dir, scale_value, setup

lesson_start = time.time()
info = setup(seed=13, scale=SCALE)
SIZES = scale_value({
    "ci": dict(passages_per_novel=12, passage_words=60, epochs=1, test_chapters=10, strides=[0]),
    "course": dict(passages_per_novel=150, passage_words=90, epochs=3, test_chapters=None, strides=[0, 64]),
    "full": dict(passages_per_novel=600, passage_words=90, epochs=4, test_chapters=None, strides=[0, 32, 64]),
})
print(info, SIZES)

# %% [markdown]
# ## 1. Documents longer than the model
#
# The course corpus (`data/austen.txt`, `data/moby_dick.txt`; `bertcourse.data.corpora`) is split into
# chapters. Lesson 07 pretrained on the training chapters and held out every 10th chapter; we keep that
# split, so the test chapters are text the model has never read. The label is the novel: six by Austen and
# *Moby Dick*.

# %%
# NBVAL_CHECK_OUTPUT
import collections

import numpy as np

from bertcourse.data import corpora

documents = corpora.load_corpus("austen", "moby_dick")
train_docs, test_docs = corpora.split_documents(documents)
novels = sorted({d.source for d in documents})
print(f"{len(novels)} novels: {', '.join(novels)}")
print(f"{len(train_docs)} training chapters, {len(test_docs)} held-out chapters")
print("held-out chapters per novel:", dict(collections.Counter(d.source for d in test_docs)))

# %% [markdown]
# The model: lesson 07's BERT (or, if you have not run lesson 07 at this scale, a tiny one pretrained here
# for a few steps, as lesson 09 does). Its tokenizer tells how long the chapters are in tokens:

# %%
from bertcourse.pretrained import load_course_backbone

course_run = runs_dir() / ("pretrain-ci-tiny" if SCALE == "ci" else "pretrain-course-mini")
if not (course_run / "backbone.weights.h5").exists():
    from bertcourse.text import WordPieceTokenizer, learn_vocabulary
    from bertcourse.training.pretrain import PretrainConfig, pretrain, pretraining_train_config

    print(f"{course_run.name}/backbone.weights.h5 not found (run lesson 07 at {SCALE} scale to create it); "
          "pretraining a tiny BERT for 20 steps instead.")
    course_run = runs_dir("pretrain-13-fallback")
    if not (course_run / "backbone.weights.h5").exists():
        fallback_tok = WordPieceTokenizer(learn_vocabulary([s for d in train_docs for s in d.sentences][:4000],
                                                           vocab_size=2000))
        pretrain(train_docs, fallback_tok, PretrainConfig(preset="tiny", seq_len=64),
                 pretraining_train_config(steps=20, steps_per_epoch=10, batch_size=16, learning_rate=1e-3, seed=7),
                 out_dir=course_run, overwrite=True, verbose=0)
backbone, tokenizer = load_course_backbone(course_run)
SEQ_LEN = backbone.config.max_position_embeddings  # the longest input this model can take
print(f"{course_run.name}: {backbone.config.num_layers} layers, hidden {backbone.config.hidden_size}, "
      f"at most {SEQ_LEN} positions = {SEQ_LEN - 2} text tokens between [CLS] and [SEP]")

# %%
# NBVAL_IGNORE_OUTPUT
test_docs = sorted(test_docs, key=lambda d: d.id)[: SIZES["test_chapters"]]
chapter_texts = [" ".join(s for p in d.paragraphs for s in p) for d in test_docs]
chapter_labels = [d.source for d in test_docs]
lengths = np.array([len(tokenizer.encode(t)) for t in chapter_texts])
print(f"{len(test_docs)} test chapters: {lengths.min():,} to {lengths.max():,} tokens (median {int(np.median(lengths)):,}); "
      f"{int((lengths > 512).sum())} of them longer than 512 tokens, {int((lengths > SEQ_LEN - 2).sum())} longer "
      f"than this model's {SEQ_LEN - 2}")

# %% [markdown]
# ## 2. Training on passages
#
# A chapter is too long to train on, and there are only a few hundred of them. But its label holds for every
# part of it, so we train on **passages**: runs of consecutive sentences of about 90 words, drawn from the
# training chapters, each labelled with its novel; the same number per novel (the novels differ a lot in
# length). Each fits in one input.

# %%
# NBVAL_IGNORE_OUTPUT
from bertcourse.data.labelled import LabelledTexts


def passages(docs, words: int):
    """Consecutive sentences joined until about `words` words: (text, novel) pairs, in order."""
    out = []
    for d in docs:
        current = []
        for p in d.paragraphs:
            for s in p:
                current.append(s)
                if sum(len(x.split()) for x in current) >= words:
                    out.append((" ".join(current), d.source))
                    current = []
    return out


rng = np.random.default_rng(13)
pool = passages(train_docs, SIZES["passage_words"])
by_novel = collections.defaultdict(list)
for text, novel in pool:
    by_novel[novel].append(text)
train_rows, valid_rows = [], []
for novel in novels:
    picked = rng.permutation(len(by_novel[novel]))[: SIZES["passages_per_novel"] + 20]
    rows = [(by_novel[novel][i], novel) for i in picked]
    train_rows += rows[:-20]
    valid_rows += rows[-20:]
order = rng.permutation(len(train_rows))
train = LabelledTexts([train_rows[i][0] for i in order], [train_rows[i][1] for i in order])
valid = LabelledTexts([t for t, _ in valid_rows], [n for _, n in valid_rows])
print(f"{len(pool):,} passages in the training chapters; {len(train):,} for training, {len(valid):,} for validation "
      f"({SIZES['passages_per_novel']} + 20 per novel)")
print(f"[{train.labels[0]}] {train.texts[0][:200]}...")

# %%
# NBVAL_IGNORE_OUTPUT
from bertcourse.training.finetune import finetune_classifier

t0 = time.time()
clf, metrics = finetune_classifier(lambda: load_course_backbone(course_run)[0], tokenizer, train,
                                   runs_dir(f"13-novels-{SCALE}"), validation=valid, seq_len=SEQ_LEN, batch_size=32,
                                   epochs=SIZES["epochs"], learning_rate=2e-4, seed=13, overwrite=True, verbose=0)
train_minutes = (time.time() - t0) / 60
print(f"fine-tuned in {train_minutes:.1f} min; passage validation accuracy {metrics['validation']['accuracy']:.3f} "
      f"(chance {1 / len(novels):.3f})")

# %% [markdown]
# ## 3. Five ways to read a chapter
#
# `bertcourse.tasks.classification` does the cutting (`long_text_inputs`), the forward passes and the
# aggregation (`classify_long`; the text-classification pipeline takes the same `truncation=`, `stride=` and
# `aggregation=` options). Windows come from `bertcourse.text.windows.window_spans`, with Hugging Face's meaning
# of `stride`: the number of tokens two consecutive windows **share**. Every token is covered; the last window
# ends at the last token:

# %%
# NBVAL_CHECK_OUTPUT
import inspect

from bertcourse.tasks.classification import aggregate_windows, classification_metrics, long_text_inputs
from bertcourse.text.windows import window_spans

print("10 tokens, windows of 4 sharing 2:", window_spans(10, window=4, stride=2))
print("10 tokens, windows of 4 sharing 0:", window_spans(10, window=4, stride=0))
print(inspect.getsource(aggregate_windows).split('"""')[0] + '"""..."""')

# %% [markdown]
# Each method below builds its inputs once, runs them through the model in batches and aggregates. Cost is
# counted in **forward passes** (model inputs of up to SEQ_LEN tokens) and seconds. The window logits are computed once per
# stride; the mean and the max are two aggregations of the same logits.

# %%
# NBVAL_IGNORE_OUTPUT
from bertcourse.tasks.base import trim_padding

ids = {name: i for i, name in enumerate(clf.class_names)}
gold = np.array([ids[label] for label in chapter_labels])


def run_inputs(inputs, batch_size=64):
    outputs = [np.asarray(clf.predict_on_batch(trim_padding({k: v[i:i + batch_size] for k, v in inputs.items()})))
               for i in range(0, len(inputs["token_ids"]), batch_size)]
    return np.concatenate(outputs)


table = []
window_logits = {}
for truncation, strides in (("head", [0]), ("head+tail", [0]), ("windows", SIZES["strides"])):
    for stride in strides:
        t0 = time.time()
        inputs, owner = long_text_inputs(clf.preprocessor, chapter_texts, truncation, stride=stride)
        logits = run_inputs(inputs)
        seconds = time.time() - t0
        if truncation == "windows":
            window_logits[stride] = (logits, owner)
        for aggregation in (("mean", "max") if truncation == "windows" else ("mean",)):
            per_text = aggregate_windows(logits, owner, len(chapter_texts), aggregation)
            m = classification_metrics(gold, per_text.argmax(-1), len(clf.class_names))
            name = truncation if truncation != "windows" else f"windows, stride {stride}, {aggregation}"
            table.append(dict(method=name, accuracy=m["accuracy"], macro_f1=m["macro_f1"], passes=len(owner),
                              seconds=seconds))

# %%
print(f"{len(chapter_texts)} held-out chapters, {int(lengths.sum()):,} tokens; inputs of at most {SEQ_LEN} tokens")
print(f"{'method':28s} {'accuracy':>9s} {'macro-F1':>9s} {'forward passes':>15s} {'seconds':>8s}")
for row in table:
    print(f"{row['method']:28s} {row['accuracy']:9.3f} {row['macro_f1']:9.3f} {row['passes']:15,} {row['seconds']:8.1f}")

# %% [markdown]
# How to read it:
#
# * **head** and **head+tail** cost one forward pass per chapter, but see a small fraction of it (the model's
#   window divided by the chapter's length, a few percent here). A chapter's first lines are often a scene
#   change, a date, a place: little that says *which* novel.
# * **windows** read everything, for a cost that grows with the length (one pass per window, more with
#   overlap). Whether that pays depends on each window's vote: averaging many votes only helps if they are
#   right more often than wrong *for the right reason*. Our passage classifier is weak (compare its passage
#   validation accuracy with chance above), and its mistakes are not independent: a chapter of dialogue in
#   one Austen novel reads like a chapter of dialogue in another. Every method tells Austen from Melville
#   (solution 1 below); the novels of one author are the hard part.
# * **mean vs max**: the mean lets every window vote; the max lets one very confident window decide (good when
#   the evidence sits in one place, fragile when a single window is confidently wrong: with hundreds of
#   windows, some window is always confidently wrong about something).
# * **stride** (overlap) mostly buys robustness at the window edges: a sentence cut in half by one window is
#   whole in the next. For classification it rarely changes much, and it costs extra passes; for span tasks
#   (QA, NER, lessons 10-11) it matters more, because an answer cut at an edge is lost.

# %% [markdown]
# ## 4. Inside one chapter
#
# The windows' own predictions, along one held-out chapter: where is the model sure, and where does it
# hesitate?

# %%
import matplotlib.pyplot as plt

logits, owner = window_logits[SIZES["strides"][0]]
k = int(np.argmax(lengths))  # the longest chapter
rows = np.flatnonzero(owner == k)
probs = np.exp(logits[rows] - logits[rows].max(-1, keepdims=True))
probs /= probs.sum(-1, keepdims=True)
fig, ax = plt.subplots(figsize=(7, 2.8), dpi=80)
for c in np.argsort(-probs.mean(0))[:3]:
    ax.plot(range(1, len(rows) + 1), probs[:, c], "o-", ms=3, label=clf.class_names[c])
ax.set_xlabel(f"window along the chapter (stride {SIZES['strides'][0]})")
ax.set_ylabel("probability")
ax.set_title(f"{test_docs[k].id} ({lengths[k]:,} tokens, true: {chapter_labels[k]})", fontsize=9)
ax.legend(fontsize=7)
plt.tight_layout()
plt.show()
print(f"windows voting for the true novel: {np.mean(probs.argmax(-1) == gold[k]):.2f} of {len(rows)}")

# %% [markdown]
# ## 5. The same through the pipeline
#
# The options are also those of `pipeline("text-classification")`, which returns Hugging Face's output shape:

# %%
# NBVAL_IGNORE_OUTPUT
from bertcourse.pipelines import pipeline

classify = pipeline("text-classification", model=clf, truncation="windows", stride=0, aggregation="mean")
for text, label in list(zip(chapter_texts, chapter_labels))[:3]:
    print(f"true {label:22s} -> {classify(text)}")

# %% [markdown]
# ## Summary
#
# * A BERT reads a fixed number of positions. For longer texts, choose what it sees: the head, the head and
#   the tail, or everything in windows whose logits are aggregated.
# * Truncation is cheap (one pass) and fine when the label is decided early (a review's first lines, a
#   news lead); windows cost one pass per window and win when evidence is spread through the text.
# * Hierarchical models (a second network over the window vectors) and long-context transformers
#   (Longformer, BigBird: sparse attention over 4,096 tokens) go further; they start from the same idea.

# %%
print(f"lesson run time: {(time.time() - lesson_start) / 60:.1f} min at {SCALE} scale "
      f"(fine-tuning {train_minutes:.1f} min)")

# %% [markdown]
# ## Exercises
#
# 1. **Author instead of novel.** Count a prediction as right when it names a novel by the right author
#    (Austen or Melville). Which methods still differ?
# 2. **Which end says more?** `head+tail` takes a quarter of the budget from the start by default. Try the tail
#    only (`long_text_inputs(..., "head+tail", head_tokens=0)`).
# 3. **Fewer windows.** Instead of every window, aggregate only 3 windows spread evenly through each chapter
#    (use the stride-0 window logits above). How close to all windows do you get, at what fraction of the cost?

# %% [markdown]
# ### Solutions

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 1: author-level accuracy from the same predictions
author = np.array(["melville" if name == "moby-dick" else "austen" for name in clf.class_names])
for truncation, stride, aggregation in (("head", 0, "mean"), ("windows", SIZES["strides"][0], "mean")):
    if truncation == "windows":
        logits, owner = window_logits[stride]
    else:
        inputs, owner = long_text_inputs(clf.preprocessor, chapter_texts, truncation)
        logits = run_inputs(inputs)
    per_text = aggregate_windows(logits, owner, len(chapter_texts), aggregation).argmax(-1)
    print(f"{truncation:8s} author accuracy {np.mean(author[per_text] == author[gold]):.3f}, "
          f"novel accuracy {np.mean(per_text == gold):.3f}")

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 2: the tail only
inputs, owner = long_text_inputs(clf.preprocessor, chapter_texts, "head+tail", head_tokens=0)
tail_pred = run_inputs(inputs).argmax(-1)
print(f"tail only: accuracy {np.mean(tail_pred == gold):.3f} (head only: "
      f"{next(r['accuracy'] for r in table if r['method'] == 'head'):.3f})")

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 3: three evenly spread windows per chapter
logits, owner = window_logits[SIZES["strides"][0]]
keep = np.concatenate([np.flatnonzero(owner == t)[np.linspace(0, (owner == t).sum() - 1, 3).round().astype(int)]
                       for t in range(len(chapter_texts))])
three = aggregate_windows(logits[keep], owner[keep], len(chapter_texts), "mean").argmax(-1)
print(f"3 windows per chapter ({len(keep)} passes instead of {len(owner)}): accuracy {np.mean(three == gold):.3f}")
