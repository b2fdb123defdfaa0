# %% [markdown]
# # 14 · Export and serving: raw strings in, answers out
#
# **What you will do:** take a fine-tuned sentiment classifier and ship it.
#
# 1. **Export** it as a TensorFlow SavedModel whose signature takes a batch of *raw strings*: the WordPiece
#    tokenizer and the packing run inside the graph, the vocabulary travels with the model as an asset.
# 2. Load it in a **fresh process** that imports only `tensorflow` and `tensorflow_text` (no `bertcourse`) and
#    check that it answers exactly as the Python pipeline does.
#    The same export ships the lesson-10 entity tagger and the lesson-11 question answerer: windows over long
#    texts and the answer-span decoding run inside the graph too.
# 3. **Serve** it over HTTP with `bertcourse serve` (FastAPI + uvicorn, TF Serving's REST format, dynamic
#    batching, limits, an API key off loopback) and call it with a plain `httpx` client.
# 4. Convert it to **TFLite**, float32 and quantised, with the tokenizer inside where the ops allow.
# 5. Measure **size and latency** of each, and put **BERT-Base** next to them: 110 million float32
#    parameters are about 440 MB, not the "140 MB" you may have read.
# 6. List what a production deployment adds.

# %% tags=["parameters"]
import os

SCALE = os.environ.get("BERTCOURSE_SCALE", "course")  # ci | course | full

# %%
import time

from bertcourse.course import runs_dir, scale_value, setup

info = setup(seed=14, scale=SCALE)
print(info)
N_TRAIN = scale_value({"ci": 0, "course": 2000, "full": 15473})    # sentences to fine-tune on (ci: none)
N_EVAL = scale_value({"ci": 64, "course": 500, "full": 1937})      # test sentences for the accuracy table
SEQ_LEN = 64
TIMING_REPEATS = scale_value({"ci": 3, "course": 20, "full": 50})

# %% [markdown]
# ## 1. A sentiment classifier to ship
#
# all-MiniLM-L6-v2 (lesson 05: 6 layers, 384 wide, real pretrained weights) with a classification head,
# fine-tuned on the shipped sentiment sentences (lesson 09's data: human ratings, positive/negative) for one
# epoch. The run directory is reused when this lesson has already made it. At `ci` scale (the automatic
# check of the notebook) nothing is trained: the head stays as initialised, so everything below runs and
# its accuracy means nothing.

# %%
from bertcourse.convert.hf import load_hf_bert
from bertcourse.data.corpora import data_dir
from bertcourse.data.labelled import LabelledTexts, read_labelled_texts
from bertcourse.pretrained import model_path
from bertcourse.tasks import BertClassifier
from bertcourse.text import BertPreprocessor
from bertcourse.training.finetune import finetune_classifier
from bertcourse.training.run import RunDirectory

SENTIMENT = data_dir() / "sentiment"
train_all = read_labelled_texts(SENTIMENT / "train.tsv", require_classes=2)
test_all = read_labelled_texts(SENTIMENT / "test.tsv", require_classes=2)
train = LabelledTexts(train_all.texts[:N_TRAIN], train_all.labels[:N_TRAIN])
test = LabelledTexts(test_all.texts[:N_EVAL], test_all.labels[:N_EVAL])

run_dir = runs_dir(f"14-minilm-sentiment-{SCALE}")
run = RunDirectory(run_dir)
if N_TRAIN == 0:  # ci: the classifier as built, not trained
    backbone, tokenizer = load_hf_bert(model_path("all-MiniLM-L6-v2"))
    model = BertClassifier(backbone, 2, preprocessor=BertPreprocessor(tokenizer, sequence_length=SEQ_LEN),
                           labels=sorted(set(train_all.labels)))
    print("ci scale: MiniLM + an untrained head (no fine-tuning)")
else:
    if run.is_finished and run.kind == "classification":
        print(f"reusing the fine-tuned run in {run_dir}")
    else:
        backbone, tokenizer = load_hf_bert(model_path("all-MiniLM-L6-v2"))
        start = time.time()
        _, metrics = finetune_classifier(lambda: backbone, tokenizer, train, run_dir, seq_len=SEQ_LEN,
                                         batch_size=32, epochs=1, learning_rate=5e-5, overwrite=True, verbose=0)
        print(f"fine-tuned on {len(train):,} sentences in {time.time() - start:.0f} s -> {run_dir}")
    model = run.load_task()
print(model.class_names, f"{model.count_params():,} parameters")

# %% [markdown]
# ## 2. Export: a SavedModel that takes strings
#
# `export_task` wraps the model and its `BertPreprocessor` in one `tf.function` with a string input and
# saves it. Inside the graph: normalisation, WordPiece (`tensorflow_text.FastWordpieceTokenizer`),
# `[CLS] ... [SEP]` packing, the padding cut to the batch's longest text (a multiple of 8), the encoder,
# the head, softmax and the label names. Its serving function:

# %%
import tensorflow as tf

from bertcourse.serving import export_task, read_serving_metadata

source = model if N_TRAIN == 0 else run_dir  # a run directory: serving.json records its settings
export_dir = export_task(source, runs_dir("14-exports") / f"sentiment-{SCALE}", overwrite=True)
signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
print("inputs: ", signature.structured_input_signature[1])
print("outputs:", signature.structured_outputs)
for path in sorted(export_dir.rglob("*")):
    if path.is_file():
        print(f"{path.relative_to(export_dir)!s:45s} {path.stat().st_size / 1e6:8.2f} MB")
meta = read_serving_metadata(export_dir)
print({k: meta[k] for k in ("task", "inputs", "outputs", "labels", "sequence_length", "lowercase")})

# %% [markdown]
# ## 3. A fresh process, no `bertcourse`
#
# The consumer of a SavedModel is often another program: a TF Serving container, a batch job, a colleague's
# script. It needs `tensorflow` and `tensorflow_text` (the tokenizer's ops live there: importing it
# registers them), nothing else. The script below runs in a new Python process; it prints whether any
# `bertcourse` module was imported, and its answers, which we compare with the Python pipeline's.

# %%
import json
import subprocess
import sys

import numpy as np

from bertcourse.tasks import TextClassificationPipeline

FRESH = r"""
import json, sys, time
t0 = time.perf_counter()
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
loaded = time.perf_counter() - t0
out = serve(text=tf.constant(json.loads(sys.argv[2])))
print(json.dumps({"bertcourse_imported": any(m.startswith("bertcourse") for m in sys.modules),
                  "load_s": loaded, "label": out["label"].numpy().astype(str).tolist(),
                  "probabilities": out["probabilities"].numpy().tolist()}))
"""
examples = test.texts[:5] + ["What a wonderful, moving film.", "The battery died after two days. Useless."]
proc = subprocess.run([sys.executable, "-c", FRESH, str(export_dir), json.dumps(examples)], capture_output=True,
                      text=True, check=True)
fresh = json.loads(proc.stdout.strip().splitlines()[-1])
pipeline = TextClassificationPipeline(model)
python = pipeline(examples, top_k=None)
python_probs = np.array([[next(r["score"] for r in row if r["label"] == name) for name in model.class_names]
                         for row in python])
print(f"bertcourse imported in the fresh process: {fresh['bertcourse_imported']}; "
      f"import + load took {fresh['load_s']:.1f} s")
for text, label, probs in zip(examples, fresh["label"], fresh["probabilities"]):
    print(f"{label:9s} {max(probs):.3f}  {text[:80]}")
print(f"same labels as the Python pipeline: {fresh['label'] == [row[0]['label'] for row in python]}; "
      f"max |probability difference|: {np.abs(np.array(fresh['probabilities']) - python_probs).max():.1e}")

# %% [markdown]
# ## 4. Named entities and answers, exported the same way
#
# `export_task` reads the task from the model (or the run directory): the lesson-10 token classifier and the
# lesson-11 question answerer export the same way, and everything their Python pipelines do after the
# tokenizer runs in the graph too:
#
# * **Entities** (`pipeline("ner")`): input `text`; per WordPiece its label (`entity`), `score`, the piece
#   (`word`) and its `start`/`end` *character* offsets in the text, padded to the batch's longest text with
#   a `mask`. A tweet longer than the window is cut into overlapping windows in the graph, and each piece
#   keeps the window where it has the most context (lesson 13's rule).
# * **Answers** (`pipeline("question-answering")`): inputs `question` and `context`; the best `answer`, its
#   `start`/`end` in the context, its `score` and the `null_score` ("no answer" is the client's call). In
#   the graph: the context's windows sharing `doc_stride` tokens, the softmax over context tokens, the best
#   spans no longer than `max_answer_len` tokens, widened to whole words, equal texts added up.
#
# The models are the fine-tuned runs of lessons 10 and 11 when they are there (`runs/10-ner-minilm-<scale>`,
# `runs/qa-<scale>`); otherwise MiniLM with an untrained head, which exports and answers just the same (its
# answers mean nothing).

# %%
import random

from bertcourse.data.conll import load_wnut17
from bertcourse.data.squad import read_squad, split_articles, squad_path
from bertcourse.tasks import (BertQuestionAnswerer, BertTokenClassifier, QuestionAnsweringPipeline,
                              TokenClassificationPipeline)


def fine_tuned_or_untrained(run_name, kind, build):
    task_run = RunDirectory(runs_dir(run_name))
    if task_run.is_finished and task_run.kind == kind:
        return task_run.load_task(), f"the fine-tuned run {run_name}"
    return build(), f"MiniLM + an untrained head ({run_name} not found)"


wnut_test = load_wnut17("test")


def untrained_tagger():
    minilm, minilm_tokenizer = load_hf_bert(model_path("all-MiniLM-L6-v2"))
    return BertTokenClassifier(minilm, labels=load_wnut17("train").label_list,
                               preprocessor=BertPreprocessor(minilm_tokenizer, sequence_length=64))


def untrained_answerer():
    minilm, minilm_tokenizer = load_hf_bert(model_path("all-MiniLM-L6-v2"))
    return BertQuestionAnswerer(minilm, preprocessor=BertPreprocessor(minilm_tokenizer, sequence_length=128,
                                                                      truncation="only_second"),
                                doc_stride=48, max_answer_len=30)


tagger, tagger_source = fine_tuned_or_untrained(f"10-ner-minilm-{SCALE}", "token-classification", untrained_tagger)
answerer, answerer_source = fine_tuned_or_untrained(f"qa-{SCALE}", "question-answering", untrained_answerer)
ner_dir = export_task(tagger, runs_dir("14-exports") / f"ner-{SCALE}", overwrite=True)
qa_dir = export_task(answerer, runs_dir("14-exports") / f"qa-{SCALE}", overwrite=True)
for path, source_name in ((ner_dir, tagger_source), (qa_dir, answerer_source)):
    task_meta = read_serving_metadata(path)
    settings = {k: task_meta[k] for k in ("sequence_length", "window", "stride", "doc_stride", "max_answer_len")
                if k in task_meta}
    print(f"{task_meta['task']}, from {source_name}:\n  inputs {task_meta['inputs']}, outputs {task_meta['outputs']}"
          f"\n  {settings}")

# %% [markdown]
# The fresh process again, on WNUT-17 test tweets (some with entities, and the tweet with the most pieces,
# longer than one window) and on questions from the held-out SQuAD articles (one with the longest context,
# several windows). The Python pipelines give the reference: every piece's label, score and offsets for the
# entities, the answer and its offsets for the questions. Each tweet is printed as a client would show it:
# words (a piece and the `is_subword` pieces after it) with their first piece's tag.

# %%
FRESH_TASKS = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)
args = json.loads(sys.argv[1])
ner = tf.saved_model.load(args["ner"]).signatures["serving_default"]
qa = tf.saved_model.load(args["qa"]).signatures["serving_default"]
entities = ner(text=tf.constant(args["texts"]))
answers = qa(question=tf.constant(args["questions"]), context=tf.constant(args["contexts"]))
print(json.dumps({"bertcourse_imported": any(m.startswith("bertcourse") for m in sys.modules),
                  "ner": {k: v.numpy().tolist() for k, v in entities.items()},
                  "qa": {k: v.numpy().tolist() for k, v in answers.items()}},
                 default=lambda b: b.decode("utf-8")))  # strings come back as UTF-8 bytes
"""
tweets = [" ".join(words) for words in wnut_test.sentences]
with_entities = [t for t, tags in zip(tweets, wnut_test.tags) if any(tag != "O" for tag in tags)][:3]
pieces = tagger.preprocessor.tokenizer(tweets).row_lengths().numpy()
tweet_texts = with_entities + [tweets[int(pieces.argmax())]]
held_questions = split_articles(read_squad(squad_path("dev-v1.1.json")))[1].examples()
questions = random.Random(14).sample(held_questions, 3) + [max(held_questions[:300], key=lambda e: len(e.context))]
args = {"ner": str(ner_dir), "qa": str(qa_dir), "texts": tweet_texts,
        "questions": [q.question for q in questions], "contexts": [q.context for q in questions]}
proc = subprocess.run([sys.executable, "-c", FRESH_TASKS, json.dumps(args)], capture_output=True, text=True,
                      check=True)
served = json.loads(proc.stdout.strip().splitlines()[-1])
print("bertcourse imported in the fresh process:", served["bertcourse_imported"])

ner_out = served["ner"]
python_entities = TokenClassificationPipeline(tagger, aggregation_strategy="none")(tweet_texts)
same_entities, score_gap = True, 0.0


def word_tags(out, i, text):
    """A client's word-level view: a word is a piece and the subword pieces after it; it takes its first
    piece's tag (the "first" strategy; the tag the model was trained on)."""
    words = []
    for j in range(out["num_pieces"][i]):
        if out["is_subword"][i][j] and words:
            words[-1][1] = out["end"][i][j]
        else:
            words.append([out["start"][i][j], out["end"][i][j], out["entity"][i][j]])
    return " ".join(f"{text[a:b]}/{tag}" for a, b, tag in words if tag != "O") or "(no entity)"


for i, text in enumerate(tweet_texts):
    mine = [{"entity": ner_out["entity"][i][j], "index": j + 1, "word": ner_out["word"][i][j],
             "start": ner_out["start"][i][j], "end": ner_out["end"][i][j]}
            for j in range(ner_out["num_pieces"][i]) if ner_out["entity"][i][j] != "O"]
    scores = [ner_out["score"][i][j] for j in range(ner_out["num_pieces"][i]) if ner_out["entity"][i][j] != "O"]
    same_entities &= mine == [{k: e[k] for k in ("entity", "index", "word", "start", "end")}
                              for e in python_entities[i]]
    score_gap = max([score_gap] + [abs(a - e["score"]) for a, e in zip(scores, python_entities[i])])
    print(f"{ner_out['num_pieces'][i]:3d} pieces | {text[:70]}\n            -> {word_tags(ner_out, i, text)[:110]}")
print(f"window {tagger.preprocessor.sequence_length - 2} pieces; same entities as pipeline('ner'): {same_entities}; "
      f"max |score difference|: {score_gap:.1e}")

qa_out = served["qa"]
python_answers = QuestionAnsweringPipeline(answerer)(question=args["questions"], context=args["contexts"],
                                                     max_answer_len=answerer.max_answer_len)
for i, q in enumerate(questions):
    print(f"{q.question[:60]:60s} -> {qa_out['answer'][i][:40]!r} ({qa_out['num_windows'][i]} windows; "
          f"gold {q.answer_texts[0][:30]!r})")
same_answers = all((a["answer"], a["start"], a["end"]) == (qa_out["answer"][i], qa_out["start"][i], qa_out["end"][i])
                   for i, a in enumerate(python_answers))
qa_gap = max(abs(a["score"] - s) for a, s in zip(python_answers, qa_out["score"]))
print(f"same answers and offsets as pipeline('question-answering'): {same_answers}; "
      f"max |score difference|: {qa_gap:.1e}")

# %% [markdown]
# ## 5. Over HTTP
#
# `bertcourse serve EXPORT_DIR` starts the same service from the command line. Here we start it inside the
# notebook on a free port of `127.0.0.1` (a thread), and call it as any client would, with `httpx`. The
# request and response are TF Serving's REST format, so clients written for TF Serving work unchanged.

# %%
import httpx

from bertcourse.serving.server import ServingConfig, create_app, start_in_thread

config = ServingConfig(max_batch_size=16, max_wait_ms=5)
server = start_in_thread(create_app({"sentiment": export_dir}, config))
url = f"{server.url}/v1/models/sentiment:predict"
with httpx.Client(timeout=60) as http:
    print("GET /v1/models/sentiment ->", http.get(f"{server.url}/v1/models/sentiment").json())
    request = {"instances": examples[-2:]}
    response = http.post(url, json=request)
    print("POST", json.dumps(request))
    print("  ->", response.status_code, json.dumps(response.json())[:400])
    for bad in ({"instances": []}, {"instances": [42]}, {"texts": ["a"]}):
        r = http.post(url, json=bad)
        print("POST", json.dumps(bad), "->", r.status_code, r.json())
    r = http.post(f"{server.url}/v1/models/nosuch:predict", json={"instances": ["a"]})
    print("unknown model ->", r.status_code, r.json())
    http_ms = []
    for i in range(TIMING_REPEATS):
        t0 = time.perf_counter()
        http.post(url, json={"instances": [test.texts[i % len(test)]]}).raise_for_status()
        http_ms.append((time.perf_counter() - t0) * 1000)
server.stop()
print(f"one sentence over HTTP, one client: median {np.median(http_ms):.1f} ms over {len(http_ms)} requests")

# %% [markdown]
# Binding any address other than loopback needs an API key, and then every request must carry it:

# %%
from bertcourse.serving.server import ServingError, check_bind

try:
    check_bind("0.0.0.0", None)
except ServingError as err:
    print("refused:", err)
keyed = start_in_thread(create_app({"sentiment": export_dir}, ServingConfig(api_key="lesson-14-secret")))
with httpx.Client(timeout=60) as http:
    no_key = http.post(f"{keyed.url}/v1/models/sentiment:predict", json={"instances": ["fine"]})
    with_key = http.post(f"{keyed.url}/v1/models/sentiment:predict", json={"instances": ["fine"]},
                         headers={"Authorization": "Bearer lesson-14-secret"})
keyed.stop()
print("without the key:", no_key.status_code, no_key.json(), "| with it:", with_key.status_code)

# %% [markdown]
# Under load, the service's **dynamic batching** gathers concurrent requests (up to `max_batch_size`
# instances, waiting at most `max_wait_ms`) into one call of the model. `bench/serving.py` measures it with
# 16 concurrent clients against the same model without batching and against a transformers + PyTorch twin
# in the same web framework; its table is in `bench/README.md` (section "Serving"). On a CPU that computes
# bfloat16 natively, `bertcourse export RUN OUT --dtype bfloat16` serves the same weights in bf16 (section 7
# below measures its size and latency); there a call's fixed cost weighs more than padding, so
# `bertcourse serve OUT --no-length-groups` (each gathered batch one call) is the faster setting: the only one
# in which the bench's batching reached twice the requests/s of one-at-a-time serving.

# %% [markdown]
# ## 6. TFLite: which ops convert
#
# TFLite runs its own kernels. `tensorflow_text` ships TFLite kernels for `FastBertNormalizer` and
# `FastWordpieceTokenizer`, but not for the string ops our exact preprocessor uses (its BERT normalisation
# and special-token splitting). `exact_preprocessor_blockers` converts the exact graph and lists what the
# interpreter cannot run (this takes a while, so only at `course` scale):

# %%
from bertcourse.serving.tflite import (TFLiteClassifier, convert_classifier, exact_preprocessor_blockers,
                                       tflite_tokenizer_ids)

if SCALE != "ci":
    print("ops blocking the exact preprocessor in TFLite:", ", ".join(exact_preprocessor_blockers(model)))

# %% [markdown]
# So the TFLite model uses `FastBertNormalizer` + `FastWordpieceTokenizer` and builds the packing from
# builtin ops. On ordinary English the ids are the exact ones; they differ where the TFLite normaliser
# case-folds or decomposes more than BERT does, and a `[MASK]` written in the text is split:

# %%
ids_exact = model.preprocess(test.texts)["token_ids"].numpy()
ids_lite = tflite_tokenizer_ids(model, test.texts)
same = (ids_exact == ids_lite).all(axis=1)
print(f"identical token ids on {same.sum()} of {len(same)} test sentences")
for text in ["Straße", "the [MASK] film"]:
    print(f"{text!r}: exact {model.preprocessor.tokenizer(text).numpy().tolist()}, "
          f"TFLite {tflite_tokenizer_ids(model, [text])[0][1:5].tolist()}...")

# %%
lite_dir = runs_dir("14-exports")
tflite_files = {q: convert_classifier(model, lite_dir / f"sentiment-{SCALE}-{q}.tflite", quantize=q)
                for q in ("none", "dynamic")}
lite_models = {q: TFLiteClassifier(path) for q, path in tflite_files.items()}
for q, path in tflite_files.items():
    print(f"{path.name:35s} {path.stat().st_size / 1e6:6.1f} MB")

# %% [markdown]
# ## 7. Size, latency and accuracy side by side
#
# Each format on the same test sentences: accuracy, agreement with the SavedModel's labels, the file size,
# and the latency of one sentence (median of several calls, this CPU, other work may share it). For the
# quantised model, *dynamic-range* quantisation stores the weights as int8 and computes in float. Where the
# CPU computes bfloat16 natively (AVX512-BF16 or AMX), two more SavedModels of the same weights: Keras'
# `mixed_bfloat16` policy (float32 weights on disk, bf16 matrix products) and `bfloat16` (the weights stored
# in bf16 too: half the file). bf16 keeps float32's range with 8 bits of mantissa, so its labels may differ
# from float32's on the closest calls: the `= SavedModel` column counts how often.

# %%
saved = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
labels = np.array(model.class_names)
gold = np.array(test.labels)


def median_ms(fn, text, repeats=TIMING_REPEATS):
    fn(text)  # warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(text)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def dir_size(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def saved_labels(signature):
    return np.concatenate([signature(text=tf.constant(test.texts[i:i + 64]))["label"].numpy().astype(str)
                           for i in range(0, len(test), 64)])


saved_pred = saved_labels(saved)
rows = [("SavedModel float32 (tokenizer inside)", dir_size(export_dir), saved_pred,
         median_ms(lambda t: saved(text=tf.constant([t])), test.texts[0]))]
# bfloat16 where this CPU computes it natively (AVX512-BF16 or AMX): the same weights in a bf16 twin,
# "mixed_bfloat16" (float32 weights, bf16 matrix products) and "bfloat16" (the weights stored in bf16 too)
cpu_flags = open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else []
BF16_CPU = bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags))
if BF16_CPU:
    for policy, title in (("mixed_bfloat16", "SavedModel mixed bf16 (f32 weights)"),
                          ("bfloat16", "SavedModel bfloat16 (bf16 weights)")):
        twin = model.with_dtype(policy)  # the same weights under another policy (bertcourse export --dtype)
        twin_dir = export_task(twin, runs_dir("14-exports") / f"sentiment-{SCALE}-{policy}", overwrite=True)
        twin_saved = tf.saved_model.load(str(twin_dir)).signatures["serving_default"]
        rows.append((title, dir_size(twin_dir), saved_labels(twin_saved),
                     median_ms(lambda t, f=twin_saved: f(text=tf.constant([t])), test.texts[0])))
else:
    print("this CPU has no native bfloat16 (avx512_bf16 / amx_bf16 flags): no bf16 rows")
for q, title in (("none", "TFLite float32 (tokenizer inside)"), ("dynamic", "TFLite dynamic-range int8")):
    lite = lite_models[q]
    pred = np.concatenate([labels[lite(test.texts[i:i + 64])["probabilities"].argmax(-1)]
                           for i in range(0, len(test), 64)])
    rows.append((title, tflite_files[q].stat().st_size, pred, median_ms(lambda t: lite([t]), test.texts[0])))
print(f"{'format':40s} {'size MB':>8s} {'accuracy':>9s} {'= SavedModel':>13s} {'1 sentence ms':>14s}")
for title, size, pred, ms in rows:
    print(f"{title:40s} {size / 1e6:8.1f} {np.mean(pred == gold):9.1%} {np.mean(pred == saved_pred):13.1%} "
          f"{ms:14.1f}")
print(f"(accuracy on the first {len(test):,} sentences of the shipped test split"
      + ("; ci scale: an untrained head, the accuracy means nothing)" if N_TRAIN == 0 else ")"))

# %% [markdown]
# ## 8. BERT-Base: its real size
#
# A model's size on disk is its parameter count times the bytes per parameter (4 for float32), plus a
# little metadata. Count BERT-Base's parameters from its config (built, not trained): embeddings, 12 blocks
# of attention + feed-forward, the pooler.

# %%
from bertcourse import BertConfig
from bertcourse.models import BertBackbone

base = BertConfig.preset("base")
H, F, V, P, L = base.hidden_size, base.intermediate_size, base.vocab_size, base.max_position_embeddings, \
    base.num_layers
embeddings = V * H + P * H + base.type_vocab_size * H + 2 * H           # token, position, segment tables + LayerNorm
block = 4 * (H * H + H) + 2 * H + (H * F + F) + (F * H + H) + 2 * H      # Q K V O, LayerNorm, FFN in/out, LayerNorm
pooler = H * H + H
total = embeddings + L * block + pooler
base_backbone = BertBackbone(base)
print(f"embeddings {embeddings:,} + {L} x {block:,} per block + pooler {pooler:,} = {total:,} parameters")
print(f"built BertBackbone('base'): {base_backbone.count_params():,} parameters")
print(f"float32: {total:,} x 4 bytes = {total * 4 / 1e6:.0f} MB ({total * 4 / 2**20:.0f} MiB); "
      f"bfloat16/float16: {total * 2 / 1e6:.0f} MB; int8 weights: {total / 1e6:.0f} MB")
print(f"'140 MB' would be {140e6 / 4 / 1e6:.0f}M float32 parameters: a third of BERT-Base")

# %% [markdown]
# And its latency next to the models above: one sentence through the encoder (random weights: the speed of
# a matrix product does not depend on the values), the same for a fresh MiniLM-sized encoder and for the
# fine-tuned model's encoder, all in the same process.

# %%
tok_ids = model.preprocess([test.texts[0]])
sentence = {k: tf.cast(v, tf.int32)[:, :32] for k, v in tok_ids.items()}
encoders = {"BERT-Base (12 x 768)": base_backbone, "all-MiniLM-L6-v2 (6 x 384), fine-tuned": model.backbone,
            "tiny (2 x 128)": BertBackbone(BertConfig.preset("tiny", vocab_size=V))}
print(f"{'encoder':42s} {'parameters':>12s} {'float32 MB':>11s} {'1 sentence ms':>14s}")
for name, encoder in encoders.items():
    call = tf.function(lambda x, encoder=encoder: encoder(x)["pooled_output"])
    ms = median_ms(lambda x: call(x), sentence)
    n = encoder.count_params()
    print(f"{name:42s} {n:12,} {n * 4 / 1e6:11.0f} {ms:14.1f}")

# %% [markdown]
# ## 9. What a production deployment adds
#
# What you built runs and refuses bad input, but a public service needs more around it:
#
# * **TLS and identity**: HTTPS at a reverse proxy or load balancer; per-client keys or OAuth, rotated, and
#   rate limits per client (the single API key here is the minimum).
# * **A model server built for it**: TF Serving, NVIDIA Triton or KServe load the same SavedModel, batch on
#   the accelerator, serve several versions side by side (`/versions/N`) and swap them without downtime.
# * **Capacity**: several replicas behind the load balancer, autoscaling on queue length or latency, CPU
#   pinning (one inference thread per core set) or a GPU; the `503 overloaded` answer is the signal to add
#   replicas.
# * **Observability**: request logs (without storing users' text unless allowed), latency histograms,
#   batch sizes, error rates, a readiness probe (the model loaded) next to the liveness one (`/healthz`).
# * **Model lifecycle**: the export is versioned with the run that made it (`serving.json` records the run
#   settings), evaluated on a fixed test set before release, rolled out to a small share of traffic first
#   (canary), monitored for drift in the inputs and in the predicted label mix.
# * **Input policy**: the limits here (body size, instances, characters) plus timeouts at every hop; long
#   documents are windowed (lesson 13) rather than silently truncated.
#
# **Summary.** The tokenizer inside the graph makes the model self-contained: strings in, labels out, in any
# process with TensorFlow; for entities and answers the windows and the decoding go into the graph as well. Serving adds a contract (TF Serving's format), limits and batching; TFLite runs the
# same model without TensorFlow's string ops, with a tokenizer that matches on ordinary text; and size is
# arithmetic: parameters x bytes.

# %% [markdown]
# ## Exercises
#
# 1. **BERT-Large's size.** With the same arithmetic as in section 8, count the parameters of
#    `BertConfig.preset("large")` (24 blocks, 1024 wide, feed-forward 4096), check your count against
#    `config.num_parameters()`, and give its float32, bfloat16 and int8 sizes in MB.
# 2. **Columnar requests.** Start the service again and send the same two sentences as
#    `{"inputs": [...]}` instead of `{"instances": [...]}`: what changes in the response's shape, and are
#    the probabilities the same?

# %% tags=["solution"] jupyter={"source_hidden": true}
large = BertConfig.preset("large")
H, F, V, P, L = large.hidden_size, large.intermediate_size, large.vocab_size, large.max_position_embeddings, \
    large.num_layers
count = (V * H + P * H + large.type_vocab_size * H + 2 * H) \
    + L * (4 * (H * H + H) + 2 * H + (H * F + F) + (F * H + H) + 2 * H) + (H * H + H)
print(f"BERT-Large: {count:,} parameters (config says {large.num_parameters():,}); float32 {count * 4 / 1e6:.0f} MB, "
      f"bfloat16 {count * 2 / 1e6:.0f} MB, int8 {count / 1e6:.0f} MB")

# %% tags=["solution"] jupyter={"source_hidden": true}
again = start_in_thread(create_app({"sentiment": export_dir}))
with httpx.Client(timeout=60) as http:
    rows_format = http.post(f"{again.url}/v1/models/sentiment:predict", json={"instances": examples[-2:]}).json()
    columns = http.post(f"{again.url}/v1/models/sentiment:predict", json={"inputs": examples[-2:]}).json()
again.stop()
print("rows:   ", [p["label"] for p in rows_format["predictions"]])
print("columns:", columns["outputs"]["label"])
print("same probabilities:", [p["probabilities"] for p in rows_format["predictions"]]
      == columns["outputs"]["probabilities"])
