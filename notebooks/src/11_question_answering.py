# %% [markdown]
# # 11 · Extractive question answering
#
# **What you will do:** teach a BERT to answer a question by *pointing* at the answer in a paragraph, as in
# SQuAD (Rajpurkar et al. 2016): "Which NFL team represented the AFC at Super Bowl 50?" -> the span
# *Denver Broncos* of a Wikipedia paragraph. You will
#
# * pack a question and a context into one input, `[CLS] question [SEP] context [SEP]`;
# * split a context too long for one input into **strided windows** and find an answer that only the second
#   window holds whole;
# * fine-tune all-MiniLM-L6-v2 (lesson 05) on SQuAD questions about some Wikipedia articles and score it on
#   questions about **other** articles, with the official SQuAD metric (exact match and F1), next to a
#   baseline that only counts shared words;
# * draw a small learning curve, use a **null threshold** to say "no answer", and look at which kinds of
#   questions (who / when / what / why...) go wrong.
#
# **About the numbers.** The course ships only SQuAD's *dev* file (the train file is 30 MB and not shipped),
# so it trains on 36 of the 48 dev articles and scores on the other 12 (`data/README.md`). Every number here
# is "held-out SQuAD dev articles": it is not comparable with published SQuAD dev scores, which train on the
# 87,599 train questions.

# %% tags=["parameters"]
import os

SCALE = os.environ.get("BERTCOURSE_SCALE", "course")  # ci | course | full

# %%
import time

from bertcourse.course import runs_dir, scale_value, setup

lesson_start = time.time()
info = setup(seed=11, scale=SCALE)
SIZES = scale_value({
    # train: questions from the training articles (+ made-up unanswerable ones, a fifth as many);
    # curve: smaller training sets for the learning curve (ci: none, the loop runs section 2's code again);
    # test: held-out questions scored
    "ci": dict(train=32, curve=[], test=24, seq_len=96, stride=32, batch=8, epochs=1),
    "course": dict(train=240, curve=[60], test=120, seq_len=128, stride=48, batch=16, epochs=1),
    "full": dict(train=8181, curve=[500, 2000], test=2389, seq_len=384, stride=128, batch=32, epochs=2),
})
LEARNING_RATE = 2e-4
print(info, SIZES)

# %% [markdown]
# ## 1. The data
#
# `bertcourse.data.squad.read_squad` reads the official JSON and checks every record (an answer must be the
# context's text at its `answer_start`; a bad file gets an error naming the article and the question).
# `split_articles` gives the course's fixed split: whole articles, so no paragraph is on both sides.

# %%
# NBVAL_CHECK_OUTPUT
import random

from bertcourse.data.squad import HELD_OUT_TITLES, make_unanswerable, read_squad, split_articles, squad_path

squad = read_squad(squad_path("dev-v1.1.json"))
train_articles, held_articles = split_articles(squad)
print("all       ", squad.counts())
print("training  ", train_articles.counts())
print("held-out  ", held_articles.counts())
print("held-out articles:", ", ".join(HELD_OUT_TITLES))
example = squad.examples()[0]
print(f"\n{example.title}: {example.question!r}\n  gold answers: {example.answer_texts}\n"
      f"  context: {example.context[:160]}...")

# %% [markdown]
# Each question has up to three gold answers written by different people (here all three say "Denver
# Broncos"); the metric takes the best match over them.

# %% [markdown]
# ## 2. Packing a question and a context
#
# The model sees `[CLS] question [SEP] context [SEP]`: segment 0 for the question, segment 1 for the context,
# exactly as BERT's sentence pairs (lesson 06). The preprocessor's `truncation="only_second"` cuts only the
# context when the pair is too long, never the question.

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np

from bertcourse.pretrained import model_path
from bertcourse.convert import load_hf_bert
from bertcourse.tasks.base import as_preprocessor

_, tokenizer = load_hf_bert(model_path("all-MiniLM-L6-v2"))
short = as_preprocessor(tokenizer, sequence_length=40, truncation="only_second")
packed = short((example.question, example.context))
tokens = tokenizer.convert_ids_to_tokens(packed["token_ids"].numpy().tolist())
for segment in (0, 1):
    print(f"segment {segment}:", " ".join(t for t, s in zip(tokens, packed["segment_ids"].numpy()) if s == segment))

# %% [markdown]
# ## 3. A long context becomes strided windows
#
# A Wikipedia paragraph can be longer than the model's input. `qa_features` cuts the context into windows
# that **share `doc_stride` tokens** with the next one (Hugging Face's meaning of `doc_stride`; the windows
# come from `bertcourse.text.windows.window_spans`), so an answer that the edge of one window cuts in two is
# whole in the next. Each token keeps its character offsets in the context, so a predicted span becomes an
# exact substring of the original text.
#
# Below, windows of 64 tokens (the question included) with a stride of 16, on a held-out question whose
# answer only the **second** window holds whole. Training labels (`qa_training_features`) point at the
# answer's first and last token in the window that holds it, and at `[CLS]` ("not here") elsewhere.

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.tasks.question_answering import qa_features, qa_training_features

window_pre = as_preprocessor(tokenizer, sequence_length=64, truncation="only_second")
for candidate in held_articles.examples():
    feats, starts, ends = qa_training_features(window_pre, [candidate], doc_stride=16)
    if len(feats) >= 3 and starts[0] == 0 and starts[1] > 0:
        break
vocab = tokenizer.get_vocabulary()
print("question:", candidate.question, "| gold:", candidate.answers[0].text)
print("context tokens:", len(feats.offsets[0]), "| windows (context tokens [a, b)):", feats.spans)
for w, (a, b) in enumerate(feats.spans[:3]):
    c0 = feats.context_start[w]
    ids = feats.inputs["token_ids"][w, c0:c0 + b - a]
    text = " ".join(vocab[i] for i in ids)
    label = "[CLS] (no whole answer here)" if starts[w] == 0 else \
        " ".join(vocab[i] for i in feats.inputs["token_ids"][w, starts[w]:ends[w] + 1])
    print(f"\nwindow {w} tokens {a}-{b}: ...{text[-90:]}\n  label: {label}")

# %% [markdown]
# ## 4. Fine-tuning MiniLM
#
# `BertQuestionAnswerer` puts one `Dense(2)` layer on every token's vector: a start logit and an end logit
# (Hugging Face's `BertForQuestionAnswering` is the same). The loss is the mean of two cross-entropies,
# "which token starts the answer" and "which token ends it", over the window's positions.
# `finetune_question_answerer` runs the package's one training engine (AdamW with warm-up and linear decay,
# step-indexed shuffling, exact resume) and writes a run directory that `RunDirectory(...).load_task()` and
# `pipeline("question-answering", model=<run>)` reload.
#
# A fifth of the training set are made-up **unanswerable** questions (`make_unanswerable`: a training
# question paired with a paragraph of *another* article, label `[CLS]`), so the model also learns to say
# "not here" (section 7). They are off-topic, so easier than SQuAD 2.0's hand-written unanswerable questions.

# %%
from bertcourse.training.finetune_qa import finetune_question_answerer

pool = train_articles.examples()
random.Random(0).shuffle(pool)
held = random.Random(1).sample(held_articles.examples(), SIZES["test"])


def train_set(n):
    answerable = pool[:n]
    return answerable + make_unanswerable(train_articles, fraction=0.2, seed=n, examples=answerable)


def finetune(n, name):
    return finetune_question_answerer(
        lambda: load_hf_bert(model_path("all-MiniLM-L6-v2"))[0], tokenizer, train_set(n), runs_dir(f"qa-{name}"),
        seq_len=SIZES["seq_len"], doc_stride=SIZES["stride"], max_answer_len=30, batch_size=SIZES["batch"],
        epochs=SIZES["epochs"], learning_rate=LEARNING_RATE, seed=11, overwrite=True, verbose=0,
        source={"model": "all-MiniLM-L6-v2"})


start = time.time()
model, metrics = finetune(SIZES["train"], SCALE)
train_seconds = time.time() - start
print(f"{metrics['train_examples']} training examples -> {metrics['train_windows']} windows, "
      f"{metrics['steps_per_epoch']} steps/epoch, {train_seconds:.0f} s")
print("loss per epoch:", [round(x, 2) for x in metrics["history"]["loss"]])

# %% [markdown]
# ## 5. Exact match and F1 on the held-out articles
#
# The official SQuAD v1.1 metric, written out in `bertcourse.tasks.question_answering` (a test checks it
# against the official script's logic on all 10,570 dev questions). Both strings are normalised (lowercase,
# no punctuation, no articles, single spaces); **EM** is 1 if they are then equal, **F1** is the token
# overlap. Each question takes its best gold answer.

# %%
import inspect

from bertcourse.tasks.question_answering import f1_score, normalize_answer

print(inspect.getsource(normalize_answer))
print(inspect.getsource(f1_score))

# %% [markdown]
# The baseline knows no language model: `lexical_baseline` slides over the context and picks the 1-3 words,
# not in the question, that have the most question words near them. Decoding in the model follows Hugging
# Face's pipeline: a softmax per window over the context tokens, the best `p_start * p_end` among spans of at
# most `max_answer_len` tokens, widened to whole words.

# %%
from bertcourse.tasks.question_answering import lexical_baseline, squad_metrics

start = time.time()
predictions, null_margins = model.predict_answers(held)
scores = squad_metrics(predictions, held)
eval_seconds = time.time() - start
baseline = {}
for ex in held:
    s, e = lexical_baseline(ex.question, ex.context)
    baseline[ex.id] = ex.context[s:e]
base_scores = squad_metrics(baseline, held)
print(f"held-out SQuAD dev articles, {len(held)} questions (scored in {eval_seconds:.0f} s)")
print(f"{'system':38s} {'EM':>6s} {'F1':>6s}")
print(f"{'lexical baseline':38s} {base_scores['exact_match']:6.1f} {base_scores['f1']:6.1f}")
print(f"{'MiniLM fine-tuned on ' + str(SIZES['train']) + ' questions':38s} {scores['exact_match']:6.1f} "
      f"{scores['f1']:6.1f}")
for ex in held[:5]:
    print(f"\nQ: {ex.question}\n   model: {predictions[ex.id]!r} | baseline: {baseline[ex.id]!r} | "
          f"gold: {ex.answer_texts[0]!r}")

# %% [markdown]
# The same model through the pipeline front end, with Hugging Face's output shape (`bench/qa.py` checks it
# answer for answer against `transformers.QuestionAnsweringPipeline` on the same weights, over every held-out
# question). Give it a list rather than one question at a time: it runs all the windows of a call shortest
# first, in batches cut to their longest window, so it computes little padding (`bench/README.md` times it):

# %%
from bertcourse.pipelines import pipeline

qa = pipeline("question-answering", model=model)
print(qa(question="Which NFL team represented the AFC at Super Bowl 50?", context=example.context))
print(qa(question="Who won Super Bowl 50?", context=example.context, top_k=3))

# %% [markdown]
# ## 6. A learning curve
#
# The same recipe on fewer training questions. Mind the budget: below `full` scale the largest training set
# is a few hundred questions (SQuAD's train split has 87,599), i.e. a few dozen optimizer steps. A pretrained
# encoder needs on the order of a thousand steps to learn to point at answers; with a few dozen, its F1 can
# stay below the word-overlap baseline. Read the curve for its slope; the cell after the plot shows where it
# goes with all the training questions.

# %%
import matplotlib.pyplot as plt

curve = {}
for n in SIZES["curve"]:
    curve_model, _ = finetune(n, f"{SCALE}-{n}")
    curve[n] = squad_metrics(curve_model.predict_answers(held)[0], held)["f1"]
    del curve_model
curve[SIZES["train"]] = scores["f1"]
for n, f1 in sorted(curve.items()):
    print(f"{n:5d} training questions: F1 {f1:5.1f}")

fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
ax.plot(sorted(curve), [curve[n] for n in sorted(curve)], "o-", label="MiniLM fine-tuned")
ax.axhline(base_scores["f1"], color="gray", ls="--", label="lexical baseline")
ax.set_xscale("log")
ax.set_xlabel("training questions")
ax.set_ylabel("F1, held-out articles")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The right end of the curve, far beyond this budget: `bench/qa.py` ran the same engine
# (`finetune_question_answerer`) on **all** the training articles' questions, three times with different seeds,
# and scored every held-out question. Its numbers, committed in `bench/results/qa-full.json` (rerun the bench
# to replace them), are printed below with the minutes each seed trained on a 2-core CPU.

# %%
import json
from pathlib import Path

bench_file = Path(runs_dir()).parent / "bench" / "results" / "qa-full.json"
bench = json.loads(bench_file.read_text()) if bench_file.is_file() else {}
if bench:
    a = bench["args"]
    print(f"bench: seq {a['seq_len']}, doc_stride {a['doc_stride']}, {a['epochs']} epochs, batch {a['batch_size']}, "
          f"lr {a['learning_rate']:g}; {len(bench['runs'])} seeds; {bench['baseline']['count']} held-out "
          f"questions")
    b = bench["baseline"]
    print(f"bench: lexical baseline:      EM {b['exact_match']:5.1f}  F1 {b['f1']:5.1f}")
    for r in bench["runs"]:
        print(f"bench: MiniLM seed {r['seed']} ({r['train_questions']} questions, {r['train_windows']} windows, "
              f"{r['train_s'] / 60:.0f} min): EM {r['exact_match']:5.1f}  F1 {r['f1']:5.1f}")
    print(f"bench: MiniLM mean +/- std:   EM {bench['em_mean']:5.1f} +/- {bench['em_std']:.1f}  "
          f"F1 {bench['f1_mean']:5.1f} +/- {bench['f1_std']:.1f}  "
          f"({bench['f1_mean'] / b['f1']:.1f}x the baseline's F1)")
else:
    print("bench/results/qa-full.json not found: run  .venv/bin/python bench/qa.py --train-questions 0 "
          "--eval-questions 0 --seeds 3 --epochs 2")

# %% [markdown]
# ## 7. Saying "no answer": the null threshold
#
# SQuAD 2.0 adds questions whose answer is not in the paragraph. The model's "no answer" score is
# `p_start([CLS]) * p_end([CLS])`; the best span has its own score; the answer is empty when
# `null_score - best_span_score > threshold`. The threshold is chosen on validation questions
# (`best_null_threshold`) and then applied to test questions. Here half of the held-out questions get an
# off-topic paragraph (`make_unanswerable`), and the held-out set is cut in two: validation and test.

# %%
from bertcourse.tasks.question_answering import best_null_threshold

mixed = held + make_unanswerable(held_articles, fraction=0.5, seed=7, examples=held)
random.Random(2).shuffle(mixed)
valid_part, test_part = mixed[: len(mixed) // 2], mixed[len(mixed) // 2:]
spans, margins = model.predict_answers(mixed)
threshold, valid_f1 = best_null_threshold(margins, spans, valid_part)
thresholds = np.linspace(-1.0, 1.0, 41)
f1_at = [squad_metrics({i: ("" if margins[i] > t else spans[i]) for i in spans}, test_part)["f1"] for t in thresholds]
never = squad_metrics(spans, test_part)["f1"]
chosen = squad_metrics({i: ("" if margins[i] > threshold else spans[i]) for i in spans}, test_part)["f1"]
print(f"{len(test_part)} test questions, {sum(ex.is_impossible for ex in test_part)} of them unanswerable")
print(f"never say 'no answer':           F1 {never:5.1f}")
print(f"threshold {threshold:+.3f} (from validation): F1 {chosen:5.1f}")

fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
ax.plot(thresholds, f1_at)
ax.axvline(threshold, color="gray", ls="--", label="chosen on validation")
ax.set_xlabel("null threshold (null score - best span score)")
ax.set_ylabel("F1, test half")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Left of the curve, almost everything is "no answer" (the answerable questions score 0); right, nothing is
# (the unanswerable ones score 0). The peak is where the model's null score separates the two best.

# %% [markdown]
# ## 8. Which questions go wrong?
#
# F1 by the question's wh-word (`question_type`). Things to look for: "when" and "how many" questions ask
# for a date or a number, of which a paragraph holds few, so they tend to be easier once a model has learned
# the answer type; "why" and "how" questions want a longer explanation whose boundaries the annotators drew
# in different places, which costs exact match more than F1. The groups are small below `full` scale.

# %%
import collections

from bertcourse.tasks.question_answering import question_type

by_type = collections.defaultdict(list)
for ex in held:
    by_type[question_type(ex.question)].append(ex)
print(f"{'type':10s} {'n':>4s} {'model F1':>9s} {'baseline F1':>12s}")
for kind, group in sorted(by_type.items(), key=lambda kv: -len(kv[1])):
    model_f1 = squad_metrics(predictions, group)["f1"]
    base_f1 = squad_metrics(baseline, group)["f1"]
    print(f"{kind:10s} {len(group):4d} {model_f1:9.1f} {base_f1:12.1f}")
wrong = [ex for ex in held if f1_score(predictions[ex.id], ex.answer_texts[0]) == 0][:4]
for ex in wrong:
    print(f"\n[{question_type(ex.question)}] {ex.question}\n   model: {predictions[ex.id]!r}  gold: {ex.answer_texts}")

# %% [markdown]
# ## Summary
#
# * QA packs `[CLS] question [SEP] context [SEP]` and scores every context token as a start and as an end.
# * Long contexts become windows that share `doc_stride` tokens; character offsets turn the best span back
#   into an exact substring of the context.
# * The official metric normalises, then takes exact match and token F1, best over the gold answers.
# * How far fine-tuning gets is a matter of steps: the printout below compares the model with the word-overlap
#   baseline at this scale. SQuAD's train split (`squad_path("train-v1.1.json", download=True)`, `full` scale
#   on a GPU) gives the thousands of steps the recipe needs. `bench/qa.py` measures the same recipe and
#   compares the pipeline with Hugging Face's on the same weights.

# %% [markdown]
# ## Exercises
#
# 1. **Decode a span yourself.** Write `best_span(p_start, p_end, max_len)` that returns the `(s, e)` with
#    the largest `p_start[s] * p_end[e]` among `s <= e < s + max_len`, then check it on the Super Bowl
#    question with a context short enough for one window, against the pipeline's answer (the solution is
#    hidden below).
# 2. In section 3, set `doc_stride=0` and `doc_stride=40`: how many windows, and does the answer still have a
#    window that holds it whole? (With `doc_stride=0` nothing is shared: an answer on an edge is lost.)

# %% tags=["solution"] jupyter={"source_hidden": true}
def best_span(p_start, p_end, max_len):
    best, where = -1.0, (0, 0)
    for s in range(len(p_start)):
        for e in range(s, min(s + max_len, len(p_end))):
            if p_start[s] * p_end[e] > best:
                best, where = p_start[s] * p_end[e], (s, e)
    return where, best


short_context = example.context[:300]                # one window
feats = model.features(example.question, short_context)
start_logits, end_logits = model.window_logits(feats)
c0, (a, b) = feats.context_start[0], feats.spans[0]
context_part = slice(c0, c0 + b - a)                 # only context tokens can be an answer


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


(s, e), score = best_span(softmax(start_logits[0][context_part]), softmax(end_logits[0][context_part]), 30)
offsets = feats.offsets[0]
print("mine:    ", repr(short_context[offsets[a + s, 0]:offsets[a + e, 1]]))
print("pipeline:", repr(qa(question=example.question, context=short_context, max_answer_len=30)["answer"]))

# %% [markdown]
# (The two can differ by a word piece: the pipeline widens a span to whole words, and its softmax also
# includes `[CLS]`.)

# %%
verdict = "above" if scores["f1"] > base_scores["f1"] else "not above"
print(f"lesson 11 at scale {SCALE!r}: {time.time() - lesson_start:.0f} s; MiniLM after "
      f"{metrics['steps_per_epoch'] * SIZES['epochs']} steps on {SIZES['train']} questions: held-out F1 "
      f"{scores['f1']:.1f}, {verdict} the lexical baseline's {base_scores['f1']:.1f}")
