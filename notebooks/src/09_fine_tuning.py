# %% [markdown]
# # 09 · Fine-tuning and transfer learning
#
# **What you will do:** test the central claim of BERT, *pretrain once, then fine-tune with little labelled
# data*, on real human-labelled sentences. The same classification head, trained with the same steps, starts
# from three encoders:
#
# * **(a) random weights** (the architecture of lesson 07's model, nothing learned);
# * **(b) the small BERT you pretrained in lesson 07** (4 layers, 256 wide, on Austen and Melville);
# * **(c) all-MiniLM-L6-v2** (lesson 05: 6 layers, 384 wide, distilled from a large model trained on
#   billions of words and sentence pairs).
#
# You will draw the learning curve (accuracy against the number of labelled examples), compare it with two
# baselines that need no neural network, sweep the learning rate, watch validation accuracy epoch by epoch,
# measure seed-to-seed variation, save and reload the best model, look at its errors (and at its attention on
# one of them), and finally fine-tune on **sentence pairs**: a cross-encoder.

# %% tags=["parameters"]
import os

SCALE = os.environ.get("BERTCOURSE_SCALE", "course")  # ci | course | full

# %%
import time

from bertcourse.course import runs_dir, scale_value, setup

lesson_start = time.time()
info = setup(seed=9, scale=SCALE)
ALL_SIZES = {
    # train sizes of the learning curve; examples scored per run (validation picks the epoch, test reports)
    # sweep: the lesson-07 model at the curve's size `sweep_size`, the curve's run (lr 1e-4) + these rates
    # pairs / sts: training and test pairs of the verse-pair and STS-B cross-encoders, and their epochs
    "ci": dict(curve=[32], epochs={32: 2}, seq_len=32, batch=16, n_valid=64, n_test=96, sweep_size=32,
               sweep_lrs=[1e-3], seeds=1, pairs=48, pair_test=64, pair_epochs=1, sts_train=48, sts_test=64,
               sts_epochs=1),
    "course": dict(curve=[100, 400], epochs={100: 4, 400: 3}, seq_len=32, batch=16, n_valid=200, n_test=400,
                   sweep_size=400, sweep_lrs=[3e-5, 3e-4], seeds=3, pairs=200, pair_test=200, pair_epochs=2,
                   sts_train=400, sts_test=400, sts_epochs=2),
    "full": dict(curve=[100, 1000, 15474], epochs={100: 10, 1000: 6, 15474: 3}, seq_len=64, batch=32,
                 n_valid=1937, n_test=1937, sweep_size=1000, sweep_lrs=[2e-5, 5e-5, 3e-4], seeds=3, pairs=4000,
                 pair_test=2000, pair_epochs=2, sts_train=5749, sts_test=1379, sts_epochs=3),
}
SIZES = scale_value(ALL_SIZES)
print(info, SIZES)

# %% [markdown]
# **Scales.** `course` (the default) is cut to fit in about ten minutes on a 2-core CPU: two small
# learning-curve sizes, short texts, each run scored on the first part of the validation and test sets, a few
# hundred sentence pairs. `BERTCOURSE_SCALE=full` runs the same cells with the big settings: the curve goes up
# to every training sentence, longer texts, the whole validation and test sets, thousands of verse pairs and
# all of STS-B's training pairs (hours on a CPU).

# %%
for key in ("curve", "seq_len", "n_valid", "n_test", "pairs", "sts_train"):
    print(f"{key:10s} course {str(ALL_SIZES['course'][key]):12s} full {ALL_SIZES['full'][key]}")

# %% [markdown]
# ## 1. The data: sentences rated by people
#
# `data/sentiment/` holds 19,348 sentences rated by at least 20 people each on a -4..+4 scale (Hutto and
# Gilbert's VADER study, 2014; shipped in the `vadersentiment` package's source distribution, MIT license;
# `data/README.md` says how the files were built). A sentence is **positive** when its mean rating is at least
# +0.5 and **negative** when at most -0.5; the near-neutral ones are left out. Four kinds of text: tweets,
# *New York Times* editorial sentences, movie-review snippets (Rotten Tomatoes, the source of SST-2 too) and
# Amazon product-review sentences. The split is fixed and stratified by domain and label.

# %%
# NBVAL_CHECK_OUTPUT
import collections

import numpy as np

from bertcourse.data.corpora import data_dir
from bertcourse.data.labelled import LabelledTexts, read_labelled_texts

SENTIMENT = data_dir() / "sentiment"
splits = {name: read_labelled_texts(SENTIMENT / f"{name}.tsv", require_classes=2)
          for name in ("train", "validation", "test")}
domains = {name: read_labelled_texts(SENTIMENT / f"{name}.tsv", label_column="domain").labels for name in splits}
for name, data in splits.items():
    counts = collections.Counter(data.labels)
    print(f"{name:10s} {len(data):6,} sentences: {counts['negative']:,} negative, {counts['positive']:,} positive; "
          + ", ".join(f"{d} {n:,}" for d, n in sorted(collections.Counter(domains[name]).items())))

# %%
train_all, valid_all, test_all = splits["train"], splits["validation"], splits["test"]
for i in range(4):
    print(f"{train_all.labels[i]:8s} [{domains['train'][i]}] {train_all.texts[i][:110]}")


# %% [markdown]
# The split files are already shuffled, so their first rows are a mixed sample: the learning curve below takes
# the first *n* training sentences, and each run is scored on the first validation and test sentences (the whole
# test set for the final model).

# %%
def head(data: LabelledTexts, n: int) -> LabelledTexts:
    return LabelledTexts(data.texts[:n], data.labels[:n], source=data.source)


valid = head(valid_all, SIZES["n_valid"])
test = head(test_all, SIZES["n_test"])
print(f"validation subset {len(valid)}, test subset {len(test)}; "
      f"positive share in the test subset: {test.labels.count('positive') / len(test):.3f}")

# %% [markdown]
# ## 2. Baselines that need no BERT
#
# Any model must beat **the majority class** (always say the most frequent training label) and a
# **bag of words**: TF-IDF weighted word and word-pair counts fed to a logistic regression (scikit-learn),
# the strong classical baseline for sentiment. Both are trained on the same first *n* sentences as the
# BERTs below.

# %%
# NBVAL_IGNORE_OUTPUT
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

results = []  # one row per (method, train size, seed): test accuracy


def accuracy(predicted, gold) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(gold)))


for n in SIZES["curve"]:
    sample = head(train_all, n)
    majority = collections.Counter(sample.labels).most_common(1)[0][0]
    results.append(dict(method="majority class", n=n, seed=0, test=accuracy([majority] * len(test), test.labels)))
    tfidf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                          LogisticRegression(C=10.0, max_iter=2000))
    tfidf.fit(sample.texts, sample.labels)
    results.append(dict(method="TF-IDF + logistic regression", n=n, seed=0, test=accuracy(tfidf.predict(test.texts),
                                                                                           test.labels)))
tfidf_all = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(C=10.0, max_iter=2000))
tfidf_all.fit(train_all.texts, train_all.labels)
tfidf_all_acc = accuracy(tfidf_all.predict(test.texts), test.labels)
for row in results:
    print(f"{row['method']:30s} n={row['n']:>6,}  test accuracy {row['test']:.3f}")
print(f"{'TF-IDF + logistic regression':30s} n={len(train_all):>6,}  test accuracy {tfidf_all_acc:.3f} (all training data)")

# %% [markdown]
# ## 3. Three starting points, one head, the same steps
#
# `finetune_classifier` (lesson 08's engine) puts `BertClassifier`'s head (pooled `[CLS]` → dropout →
# dense) on a backbone, trains everything with AdamW, 10% warmup and linear decay, keeps the epoch with the
# best validation accuracy and writes a run directory. The three backbones:

# %%
from bertcourse import BertConfig
from bertcourse.convert import load_hf_bert
from bertcourse.models import BertBackbone
from bertcourse.pretrained import load_course_backbone, model_path

minilm_dir = model_path("all-MiniLM-L6-v2")
course_run = runs_dir() / ("pretrain-ci-tiny" if SCALE == "ci" else "pretrain-course-mini")
if not (course_run / "backbone.weights.h5").exists():
    # No lesson-07 run on this machine: pretrain a tiny BERT for a few steps (lesson 07's ci recipe), so the
    # lesson runs; its row then shows what a barely pretrained model gives, not what lesson 07 gives.
    from bertcourse.data import corpora
    from bertcourse.text import WordPieceTokenizer, learn_vocabulary
    from bertcourse.training.pretrain import PretrainConfig, pretrain, pretraining_train_config

    print(f"{course_run.name}/backbone.weights.h5 not found (run lesson 07 at {SCALE} scale to create it); "
          "pretraining a tiny BERT for 20 steps instead.")
    course_run = runs_dir("pretrain-09-fallback")  # lesson 13 makes its own (they may run at the same time)
    if not (course_run / "backbone.weights.h5").exists():
        docs, _ = corpora.split_documents(corpora.load_corpus("austen", "moby_dick"))
        fallback_tok = WordPieceTokenizer(learn_vocabulary([s for d in docs for s in d.sentences][:4000], vocab_size=2000))
        pretrain(docs, fallback_tok, PretrainConfig(preset="tiny", seq_len=64),
                 pretraining_train_config(steps=20, steps_per_epoch=10, batch_size=16, learning_rate=1e-3, seed=7),
                 out_dir=course_run, overwrite=True, verbose=0)
course_backbone, course_tok = load_course_backbone(course_run)
minilm_backbone, minilm_tok = load_hf_bert(minilm_dir)
course_config = course_backbone.config

STARTS = {  # name -> (a function that builds the backbone fresh, its tokenizer)
    "(a) random init": (lambda: BertBackbone(course_config), course_tok),
    "(b) lesson-07 BERT": (lambda: load_course_backbone(course_run)[0], course_tok),
    "(c) MiniLM": (lambda: load_hf_bert(minilm_dir)[0], minilm_tok),
}
for name, backbone in (("lesson-07 BERT / random init", course_backbone), ("MiniLM", minilm_backbone)):
    cfg = backbone.config
    print(f"{name:29s} {cfg.num_layers} layers, hidden {cfg.hidden_size}, vocabulary {cfg.vocab_size:,}, "
          f"{backbone.count_params():,} parameters")
print("lesson-07 run:", course_run.name)

# %% [markdown]
# One helper runs one fine-tuning and scores it; every run of the lesson goes through it. Learning rate 1e-4:
# small models want more than Base's 2e-5..5e-5 (section 4 measures it).

# %%
from bertcourse.training.finetune import finetune_classifier

run_times = {}


def finetune(start: str, train: LabelledTexts, epochs: int, learning_rate: float = 1e-4, seed: int = 42,
             tag: str = "curve"):
    """Fine-tune from one of STARTS; returns (model, metrics, test accuracy, seconds)."""
    build, tokenizer = STARTS[start]
    out = runs_dir(f"09-{tag}-{start.split()[0].strip('()')}-n{len(train)}-lr{learning_rate:g}-s{seed}")
    t0 = time.time()
    model, metrics = finetune_classifier(build, tokenizer, train, out, validation=valid, seq_len=SIZES["seq_len"],
                                         batch_size=SIZES["batch"], epochs=epochs, learning_rate=learning_rate,
                                         seed=seed, overwrite=True, verbose=0)
    predicted = model.predict(test.texts, batch_size=64, verbose=0).argmax(-1)
    test_acc = accuracy(np.asarray(model.class_names)[predicted], test.labels)
    seconds = time.time() - t0
    run_times[(tag, start, len(train), learning_rate, seed)] = seconds
    return model, metrics, test_acc, seconds, out


# %% [markdown]
# ### The learning curve

# %%
curve_runs = {}
for n in SIZES["curve"]:
    sample = head(train_all, n)
    for start in STARTS:
        model, metrics, test_acc, seconds, out = finetune(start, sample, SIZES["epochs"][n])
        curve_runs[start, n] = dict(out=out, valid=metrics["validation"]["accuracy"], test=test_acc)
        results.append(dict(method=start, n=n, seed=42, test=test_acc))
        print(f"{start:20s} n={n:>6,}: validation {metrics['validation']['accuracy']:.3f}, test {test_acc:.3f} "
              f"({seconds:.0f}s)")
        del model

# %%
import matplotlib.pyplot as plt

methods = ["majority class", "TF-IDF + logistic regression", *STARTS]
fig, ax = plt.subplots(figsize=(6, 3.4), dpi=80)
for method in methods:
    rows = [r for r in results if r["method"] == method and r["seed"] in (0, 42)]
    ax.plot([r["n"] for r in rows], [r["test"] for r in rows], "o-" if "(" in method else "s--", label=method)
ax.set_xscale("log")
ax.set_xlabel("labelled training sentences")
ax.set_ylabel("test accuracy")
ax.legend(fontsize=7)
plt.tight_layout()
plt.show()

# %%
print(f"{'method':30s}" + "".join(f"{'n=' + format(n, ','):>10s}" for n in SIZES["curve"]))
for method in methods:
    accs = {r["n"]: r["test"] for r in results if r["method"] == method and r["seed"] in (0, 42)}
    print(f"{method:30s}" + "".join(f"{accs[n]:10.3f}" for n in SIZES["curve"]))

# %% [markdown]
# Read the curve from left to right:
#
# * **Random init** does not move from the majority class with a few hundred sentences: a transformer
#   learns nothing about language from so little data, and even the bag of words does better.
# * **Our lesson-07 BERT** has read about a million words of 19th-century novels. On tweets and movie
#   reviews that helps far less than you might hope: a small model, a short pretraining, another kind of
#   text. It barely leaves the majority class either.
# * **MiniLM** is the transfer-learning claim made visible. With the smallest set it is fragile (a hundred
#   sentences are only a few dozen steps, often not enough to leave the majority class), but a few hundred
#   labelled sentences later it is far ahead of every other row, and close to the bag of words trained on
#   *all* the training sentences (section 2's last line): what it knows about English came from pretraining,
#   not from our labels.
#
# With all the training sentences (`full` scale) the gap between the curves narrows: labels can
# replace some of what pretraining gives, but you rarely have that many.

# %% [markdown]
# ## 4. Learning rate and epochs
#
# The BERT paper fine-tuned Base with learning rates 2e-5..5e-5 and 2-4 epochs. Smaller models usually want a
# larger rate. Here the lesson-07 model is fine-tuned at several rates (the learning curve's run at 1e-4 is
# one of them); `history.json` of each run holds the validation accuracy after every epoch.

# %%
# NBVAL_IGNORE_OUTPUT
import json

sweep_train = head(train_all, SIZES["sweep_size"])
sweep_runs = {1e-4: curve_runs["(b) lesson-07 BERT", SIZES["sweep_size"]]}
for lr in SIZES["sweep_lrs"]:
    _, _, test_acc, seconds, out = finetune("(b) lesson-07 BERT", sweep_train, SIZES["epochs"][SIZES["sweep_size"]],
                                            learning_rate=lr, tag="sweep")
    sweep_runs[lr] = dict(out=out, test=test_acc)
sweep = {}
for lr in sorted(sweep_runs):
    history = json.loads((sweep_runs[lr]["out"] / "history.json").read_text())
    sweep[lr] = dict(val=history["val_accuracy"], test=sweep_runs[lr]["test"])
    print(f"learning rate {lr:g}: validation accuracy by epoch {[round(v, 3) for v in history['val_accuracy']]}, "
          f"test (best epoch) {sweep[lr]['test']:.3f}")

# %%
fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
for lr, row in sweep.items():
    ax.plot(range(1, len(row["val"]) + 1), row["val"], "o-", label=f"lr {lr:g}")
ax.set_xlabel("epoch")
ax.set_ylabel("validation accuracy")
ax.set_title(f"lesson-07 BERT, {len(sweep_train):,} training sentences", fontsize=9)
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
best_lr = max(sweep, key=lambda lr: max(sweep[lr]["val"]))
print(f"best learning rate by validation: {best_lr:g} (peak epoch "
      f"{int(np.argmax(sweep[best_lr]['val'])) + 1} of {len(sweep[best_lr]['val'])})")

# %% [markdown]
# In general: too small a rate and the model has barely moved when the schedule ends; too large and the first
# updates wreck what pretraining put into the weights. Epochs: validation accuracy rises, then flattens or drops
# while the training loss keeps falling (overfitting on a few hundred sentences starts within a few epochs).
# Here, with a model that barely learns this task, the curves mostly wobble: one validation sentence is worth
# 1/`n_valid` of accuracy (`SIZES` at the top), so differences of a point or two are noise. Look
# at the spread (next section) before believing a winner. That is also why `finetune_classifier` keeps the
# **best epoch by validation**, never the last one, and never chooses by the test set.

# %% [markdown]
# ## 5. How much is luck? Three seeds
#
# A seed fixes the head's initial weights, dropout masks and the order of the training sentences. With small
# training sets, different seeds give visibly different models: report a mean and a spread, never one run.
# MiniLM is run again with two more seeds at the learning-curve size of section 4 (`sweep_size`), where it
# learns the task; at the smallest size it may stay at the majority class for every seed, which says nothing
# about luck.

# %%
# NBVAL_IGNORE_OUTPUT
n_seed = SIZES["sweep_size"]  # a curve size where MiniLM learns in the steps it gets
seed_accs = {42: curve_runs["(c) MiniLM", n_seed]["test"]}
for seed in range(1, SIZES["seeds"]):
    _, _, seed_accs[seed], seconds, _ = finetune("(c) MiniLM", head(train_all, n_seed), SIZES["epochs"][n_seed],
                                                 seed=seed, tag="seeds")
    results.append(dict(method="(c) MiniLM", n=n_seed, seed=seed, test=seed_accs[seed]))
values = np.array(list(seed_accs.values()))
spread = f" ± {values.std(ddof=1):.3f} (standard deviation)" if len(values) > 1 else ""
print(f"MiniLM, n={n_seed}: test accuracy {values.mean():.3f}{spread} over {len(values)} seed(s) "
      f"({', '.join(f'{v:.3f}' for v in values)})")

# %% [markdown]
# ## 6. The best model: saved, reloaded, the same predictions
#
# Choose by **validation** accuracy among all the runs above, reload it from its run directory (a new
# process could do the same: `RunDirectory(path).load_task()`), and check that the reloaded model predicts
# exactly what the saved one did. Only now is it scored on the **whole** test set.

# %%
from bertcourse.tasks.classification import classification_metrics
from bertcourse.training.run import RunDirectory

(best_start, best_n), best = max(curve_runs.items(), key=lambda kv: kv[1]["valid"])
print(f"best by validation: {best_start}, n={best_n:,} (validation accuracy {best['valid']:.3f}); run {best['out'].name}")
clf = RunDirectory(best["out"]).load_task()
first = clf.predict(test.texts, batch_size=64, verbose=0)
again = RunDirectory(best["out"]).load_task().predict(test.texts, batch_size=64, verbose=0)
print(f"reloaded twice: max |logit difference| = {np.abs(first - again).max():.1e}; "
      f"same labels: {bool((first.argmax(-1) == again.argmax(-1)).all())}")

# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.time()
logits = clf.predict(test_all.texts, batch_size=64, verbose=0)
names = np.asarray(clf.class_names)
predicted = names[logits.argmax(-1)]
gold = np.asarray(test_all.labels)
ids = {name: i for i, name in enumerate(clf.class_names)}
full = classification_metrics([ids[g] for g in gold], logits.argmax(-1), len(names))
print(f"whole test set ({len(gold):,} sentences, {time.time() - t0:.0f}s): accuracy {full['accuracy']:.3f}, "
      f"macro-F1 {full['macro_f1']:.3f}; TF-IDF on all training data: "
      f"{accuracy(tfidf_all.predict(test_all.texts), gold):.3f}")
for domain in sorted(set(domains["test"])):
    mask = np.asarray(domains["test"]) == domain
    print(f"  {domain:7s} {mask.sum():4d} sentences: accuracy {np.mean(predicted[mask] == gold[mask]):.3f}")

# %% [markdown]
# ## 7. What it gets wrong
#
# The confusion matrix counts, for each true label, what the model said; the most confident errors show
# *why*. Many are not the model's fault alone: sarcasm, mixed sentences ("good actors, bad film"), or
# ratings that sit near the ±0.5 cut.

# %%
from sklearn.metrics import confusion_matrix

matrix = confusion_matrix(gold, predicted, labels=list(names))
fig, ax = plt.subplots(figsize=(3.2, 3), dpi=80)
ax.imshow(matrix, cmap="Blues")
for (i, j), v in np.ndenumerate(matrix):
    ax.text(j, i, f"{v:,}", ha="center", va="center", color="white" if v > matrix.max() / 2 else "black")
ax.set_xticks(range(len(names)), names)
ax.set_yticks(range(len(names)), names)
ax.set_xlabel("predicted")
ax.set_ylabel("true")
plt.tight_layout()
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
probs = np.exp(logits - logits.max(-1, keepdims=True))
probs /= probs.sum(-1, keepdims=True)
means = np.asarray(read_labelled_texts(SENTIMENT / "test.tsv", label_column="mean").labels, float)
wrong = np.flatnonzero(predicted != gold)
wrong = wrong[np.argsort(-probs[wrong].max(-1))]
for i in wrong[:6]:
    print(f"true {gold[i]} (mean rating {means[i]:+.2f}), said {predicted[i]} with p={probs[i].max():.2f} "
          f"[{domains['test'][i]}]: {test_all.texts[i][:120]}")

# %% [markdown]
# ### Attention on one error
#
# Which words did the `[CLS]` position look at in the last layer? A backbone built with
# `output_attention_scores=True` and the fine-tuned weights gives every layer's attention probabilities.
# Attention is not an explanation (it shows where information was read from, not how it was used), but it
# often shows the word the model latched on to.

# %%
error = int(wrong[0])
seen = BertBackbone(clf.backbone.config, output_attention_scores=True)
seen.set_weights(clf.backbone.get_weights())
inputs = clf.preprocess([test_all.texts[error]])
n_tokens = int(np.asarray(inputs["padding_mask"]).sum())
attention = np.asarray(seen(inputs)["attention_scores"])[0]  # [layers, heads, query, key]
vocabulary = clf.preprocessor.tokenizer.get_vocabulary()
tokens = [vocabulary[t] for t in np.asarray(inputs["token_ids"])[0, :n_tokens]]
cls_row = attention[-1, :, 0, :n_tokens].mean(0)  # last layer, [CLS] as the query, mean over heads
fig, ax = plt.subplots(figsize=(min(12, 0.35 * n_tokens + 1), 2.2), dpi=80)
ax.bar(range(n_tokens), cls_row)
ax.set_xticks(range(n_tokens), tokens, rotation=70, fontsize=8)
ax.set_ylabel("attention from [CLS]")
ax.set_title(f"true {gold[error]}, predicted {predicted[error]}", fontsize=9)
plt.tight_layout()
plt.show()
top = np.argsort(-cls_row)[:5]
print("most attended:", [(tokens[k], round(float(cls_row[k]), 3)) for k in top])

# %% [markdown]
# ## 8. Sentence pairs: a cross-encoder
#
# BERT's input can hold two texts, `[CLS] A [SEP] B [SEP]`, and the same head then classifies the **pair**.
# Every token of A attends to every token of B: a *cross-encoder*. Our task: is a modern verse (the WEB) a
# paraphrase of a King James verse (`data/bible_kjv_web.tsv`, lesson 12)? Positives are the aligned verses,
# negatives the same verses paired at random with another one. Train and test verses are disjoint. Short
# verses only (at most 20 words each), so a pair fits in 64 tokens.

# %%
# NBVAL_IGNORE_OUTPUT
from bertcourse.data.bible import load_verse_pairs

rng = np.random.default_rng(9)
verses = [(ref, k, w) for ref, k, w in load_verse_pairs() if len(k.split()) <= 20 and len(w.split()) <= 20]
order = rng.permutation(len(verses))
n_pair_train, n_pair_test = SIZES["pairs"] // 2, SIZES["pair_test"] // 2


def make_pairs(rows):
    """Half aligned (paraphrase), half shuffled (different): (kjv, web, label) lists."""
    kjv, web = [k for _, k, _ in rows], [w for _, _, w in rows]
    half = len(rows) // 2
    shuffled = np.roll(np.arange(half, len(rows)), 1)  # each of the second half gets its neighbour's WEB text
    a = kjv[:half] + [kjv[i] for i in range(half, len(rows))]
    b = web[:half] + [web[j] for j in shuffled]
    labels = ["paraphrase"] * half + ["different"] * (len(rows) - half)
    return LabelledTexts(a, labels, texts_b=b)


pair_train = make_pairs([verses[i] for i in order[:2 * n_pair_train]])
pair_test = make_pairs([verses[i] for i in order[2 * n_pair_train:2 * (n_pair_train + n_pair_test)]])
print(f"{len(verses):,} short verse pairs; {len(pair_train)} training pairs, {len(pair_test)} test pairs")
print("paraphrase:", pair_train.texts[0], "|", pair_train.texts_b[0])
print("different: ", pair_train.texts[-1], "|", pair_train.texts_b[-1])

# %%
# NBVAL_IGNORE_OUTPUT
t0 = time.time()
cross, cross_metrics = finetune_classifier(STARTS["(c) MiniLM"][0], minilm_tok, pair_train, runs_dir("09-pairs-minilm"),
                                           validation=pair_test, seq_len=64, batch_size=SIZES["batch"],
                                           epochs=SIZES["pair_epochs"], learning_rate=5e-5, overwrite=True, verbose=0)
pair_logits = cross.predict((pair_test.texts, pair_test.texts_b), batch_size=64, verbose=0)
cross_acc = accuracy(np.asarray(cross.class_names)[pair_logits.argmax(-1)], pair_test.labels)
print(f"MiniLM cross-encoder, {len(pair_train)} training pairs: test accuracy {cross_acc:.3f} ({time.time() - t0:.0f}s)")

# %% [markdown]
# The other way to compare two texts is the **bi-encoder** of lesson 12: encode each text alone into a vector and
# compare the vectors by cosine. Here it needs no training at all (MiniLM was trained for exactly this), only a
# cosine threshold, chosen on the training pairs:

# %%
# NBVAL_IGNORE_OUTPUT
from bertcourse.pretrained import load_sentence_encoder

encoder = load_sentence_encoder("all-MiniLM-L6-v2")


def cosines(a, b):
    return (encoder.encode(a, batch_size=64) * encoder.encode(b, batch_size=64)).sum(-1)


train_cos = cosines(pair_train.texts, pair_train.texts_b)
is_para = np.asarray(pair_train.labels) == "paraphrase"
threshold = max(np.unique(train_cos), key=lambda t: np.mean((train_cos >= t) == is_para))
test_cos = cosines(pair_test.texts, pair_test.texts_b)
bi_acc = float(np.mean((test_cos >= threshold) == (np.asarray(pair_test.labels) == "paraphrase")))
print(f"MiniLM bi-encoder, cosine >= {threshold:.2f}: test accuracy {bi_acc:.3f}")

# %% [markdown]
# Aligned-or-shuffled is easy for the bi-encoder, which was trained on similarity: a random verse is rarely about
# the same thing. The cross-encoder starts from the same weights but with a new head that must learn the task
# from a few hundred pairs, so it needs more data to catch up here. The interesting comparison
# needs graded similarity: the **STS Benchmark** (sentence pairs rated 0-5 by people). It is not shipped with the
# course (its license is for research); if you have the files, point `BERTCOURSE_EVAL_DIR` at them and the next
# cell trains a MiniLM cross-encoder as a **regression** (one output, mean squared error) and compares it with the
# bi-encoder's cosine on the same test pairs, by Spearman correlation with the human scores.

# %%
# NBVAL_IGNORE_OUTPUT
from bertcourse.data.benchmarks import load_stsb
from bertcourse.tasks.classification import regression_metrics

try:
    sts_train, sts_test = load_stsb("train"), load_stsb("test")
except FileNotFoundError as err:
    sts_train = sts_test = None
    print("STS-B skipped:", str(err).split(" (looked")[0], "(set BERTCOURSE_EVAL_DIR to the folder with sts-*.csv)")
if sts_train is not None:
    pick = np.random.default_rng(9).permutation(len(sts_train))[: SIZES["sts_train"]]
    sts_small = LabelledTexts([sts_train.texts[i] for i in pick], [sts_train.labels[i] for i in pick],
                              texts_b=[sts_train.texts_b[i] for i in pick])
    sts_eval = LabelledTexts(sts_test.texts[: SIZES["sts_test"]], sts_test.labels[: SIZES["sts_test"]],
                             texts_b=sts_test.texts_b[: SIZES["sts_test"]])
    t0 = time.time()
    sts_model, _ = finetune_classifier(STARTS["(c) MiniLM"][0], minilm_tok, sts_small, runs_dir("09-stsb-minilm"),
                                       seq_len=64, batch_size=SIZES["batch"], epochs=SIZES["sts_epochs"],
                                       learning_rate=5e-5, overwrite=True, verbose=0, problem_type="regression")
    gold_scores = np.asarray(sts_eval.labels, float)
    cross_scores = sts_model.predict((sts_eval.texts, sts_eval.texts_b), batch_size=64, verbose=0)[:, 0]
    sts_rows = {f"cross-encoder (MiniLM fine-tuned on {len(sts_small):,} pairs)": regression_metrics(gold_scores,
                                                                                                       cross_scores),
                "bi-encoder (MiniLM cosine, lesson 12)": regression_metrics(gold_scores,
                                                                            cosines(sts_eval.texts, sts_eval.texts_b))}
    print(f"STS-B test, first {len(sts_eval):,} pairs ({time.time() - t0:.0f}s):")
    for name, m in sts_rows.items():
        print(f"  {name:48s} Spearman x100 {100 * m['spearman']:.1f}, Pearson x100 {100 * m['pearson']:.1f}")

# %% [markdown]
# A cross-encoder reads both sentences together, so it can compare them word by word; it is usually the more
# accurate of the two when trained on enough pairs. But it must run the whole network once **per pair**: to rank
# 10,000 candidates for a query it needs 10,000 forward passes, where a bi-encoder encodes the query once and
# takes 10,000 dot products with vectors computed in advance. Search systems therefore retrieve with a
# bi-encoder and re-rank the top few with a cross-encoder. With only a few hundred training pairs (course scale)
# the cross-encoder may not yet beat MiniLM's cosine, which was trained on about a billion pairs.

# %% [markdown]
# ## Summary
#
# * Pretraining is what makes fine-tuning work with little data: the same head and steps give a far better
#   classifier from MiniLM's weights than from random weights, and the gap is largest when labels are few.
# * Always compare with the majority class and a bag-of-words baseline; choose learning rate and epoch on
#   validation data; report the spread over seeds; score the test set once, at the end.
# * A sentence pair in one input is a cross-encoder: accurate, but one forward pass per pair.

# %%
total = time.time() - lesson_start
print(f"lesson run time: {total / 60:.1f} min at {SCALE} scale; fine-tuning runs: {len(run_times)}, "
      f"{sum(run_times.values()) / 60:.1f} min of it")

# %% [markdown]
# ## Exercises
#
# 1. **A frozen encoder.** Encode the first 400 training sentences with MiniLM's sentence vectors
#    (`load_sentence_encoder`, no fine-tuning) and fit a logistic regression on them. How far is it from the
#    fine-tuned MiniLM of the learning curve, and from TF-IDF?
# 2. **Domain shift.** Train the TF-IDF baseline on the movie snippets only and test it on each domain. Which
#    domain suffers most, and why might a pretrained encoder suffer less?
# 3. **Confidence and rating.** Is the best model more confident on sentences that people rated more
#    strongly? Correlate its probability of the *true* label with |mean rating| on the test set.

# %% [markdown]
# ### Solutions

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 1: a frozen encoder + a linear head (no backpropagation into BERT)
n_frozen = min(400, len(train_all))
frozen = LogisticRegression(C=10.0, max_iter=2000).fit(encoder.encode(train_all.texts[:n_frozen], batch_size=64),
                                                       train_all.labels[:n_frozen])
frozen_acc = accuracy(frozen.predict(encoder.encode(test.texts, batch_size=64)), test.labels)
print(f"frozen MiniLM vectors + logistic regression, n={n_frozen}: test accuracy {frozen_acc:.3f}")
print("learning-curve rows at the closest size:",
      {r["method"]: round(r["test"], 3) for r in results if r["n"] == max(n for n in SIZES["curve"] if n <= n_frozen)
       and r["seed"] in (0, 42)})

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 2: trained on movies, tested on every domain
movies = [i for i, d in enumerate(domains["train"]) if d == "movies"]
movie_model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                            LogisticRegression(C=10.0, max_iter=2000))
movie_model.fit([train_all.texts[i] for i in movies], [train_all.labels[i] for i in movies])
movie_pred = movie_model.predict(test_all.texts)
for domain in sorted(set(domains["test"])):
    mask = np.asarray(domains["test"]) == domain
    print(f"TF-IDF trained on {len(movies):,} movie snippets -> {domain:7s}: accuracy "
          f"{np.mean(movie_pred[mask] == gold[mask]):.3f}")
# Words carry domain-specific sentiment ("unpredictable" plot vs "unpredictable" battery); a bag of words
# only knows the words it was trained on, a pretrained encoder has seen every domain's words in context.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 3: confidence in the true label against the strength of the human rating
p_true = probs[np.arange(len(gold)), [ids[g] for g in gold]]
strength = np.abs(means)
print(f"correlation of p(true label) with |mean rating|: {np.corrcoef(p_true, strength)[0, 1]:.2f}")
for low, high in ((0.5, 1.0), (1.0, 2.0), (2.0, 4.0)):
    band = (strength >= low) & (strength < high)
    print(f"|rating| in [{low}, {high}): {band.sum():4d} sentences, accuracy {np.mean(predicted[band] == gold[band]):.3f}")
