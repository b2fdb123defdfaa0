#!/usr/bin/env python
"""The fine-tuning step of the course's tasks vs the same step written with keras-hub, at identical settings.

    .venv/bin/python bench/finetune_step.py                        # print the table
    .venv/bin/python bench/finetune_step.py --write-readme         # ... and put it in bench/README.md
    .venv/bin/python bench/finetune_step.py --tasks classification --steps 2 --precisions float32   # a quick look

Issues 15 and 16 (and 17 for QA) ask that our fine-tuning step be at least as fast (>= 1.0x) as keras-hub's
at the same settings. Per task and precision, one process builds two models on the same weights:

* **ours**: the task model and loss our engine trains: ``BertClassifier`` + ``BertClassifier.loss_and_metrics()``
  (``finetune_classifier``), ``BertTokenClassifier`` + ``token_loss()`` + ``EntityF1`` (``finetune_token_classifier``),
  ``BertQuestionAnswerer`` + ``span_loss()`` (``finetune_question_answerer``), on all-MiniLM-L6-v2 loaded with
  ``load_hf_bert`` (6 layers, 384 hidden, 12 heads, 1,536 feed-forward, 30,522 pieces), compiled as
  ``bertcourse.training.loop.train`` compiles: ``TrainConfig(...).optimizer(total_steps)`` (AdamW, warmup +
  linear decay, weight decay 0.01 except LayerNorm/bias, global-norm clipping 1.0), ``jit_compile=False``,
  after the engine's ``set_precision`` and ``enable_determinism``;
* **keras-hub**: ``keras_hub.models.BertBackbone`` of the same size, our weights copied in
  (``copy_weights_to_keras_hub``), with ``keras_hub.models.BertTextClassifier`` for classification and a
  ``Dropout`` + ``Dense`` head written on the backbone for token classification and for QA (``Dense(2)``:
  keras-hub has neither head); the head weights copied from ours; compiled with the same optimizer recipe,
  the same loss and metrics, ``jit_compile=False``.

Batches: the engine's own data path on real data. Classification: shipped sentiment sentences,
32 x 128 (padded to 128, as the brief fixes); token classification: WNUT-17 train tweets, the engine's
stream (``shuffled_batches(...).map(trim_batch)``, 32 rows cut to the longest); QA: SQuAD v1.1 dev training
articles, windows of 384 with stride 128 (the engine's defaults), 16 per batch (the course's QA batch).
Both models get the same batches in the same order. (The classification engine now also cuts each batch
to its longest row, ``trim_to_longest``; the fixed 32 x 128 here is the brief's setting: same work on
both sides either way.) One step = ``model.train_on_batch`` (forward, loss, gradients, AdamW update;
what ``fit`` runs per batch). The steps are INTERLEAVED (ours, keras-hub, keras-hub, ours, ...) after a
warm-up over every distinct batch, so that other load slows both alike; medians and the best step are
reported, the ratio is keras-hub's median / ours (> 1: ours is faster). Before training, both models'
loss on the first batch (``test_on_batch``) is printed: they differ only by keras-hub's tanh GELU (MiniLM
uses the exact erf GELU, which we compute; keras-hub has no option for it). So a third model, ours with the
tanh GELU and the same weights (``--no-tanh-gelu`` leaves it out), is timed in the same rounds: it shows
what the GELU alone costs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
# bench/ must not be first on sys.path (its scripts would shadow packages that keras-hub imports)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bertcourse.course import import_tensorflow_quietly  # noqa: E402

tf = import_tensorflow_quietly()

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from bertcourse.convert import copy_weights_to_keras_hub, keras_hub_kwargs  # noqa: E402
from bertcourse.convert.hf import load_hf_bert  # noqa: E402
from bertcourse.data.conll import load_wnut17  # noqa: E402
from bertcourse.data.labelled import read_labelled_texts  # noqa: E402
from bertcourse.data.squad import read_squad, split_articles, squad_path  # noqa: E402
from bertcourse.models import BertBackbone  # noqa: E402
from bertcourse.pretrained import model_path  # noqa: E402
from bertcourse.tasks.base import as_preprocessor  # noqa: E402
from bertcourse.tasks.classification import BertClassifier, label_map  # noqa: E402
from bertcourse.tasks.question_answering import BertQuestionAnswerer, qa_training_features  # noqa: E402
from bertcourse.tasks.token_classification import BertTokenClassifier, EntityF1, encode_tagged  # noqa: E402
from bertcourse.training.finetune import encode_labelled  # noqa: E402
from bertcourse.training.finetune_qa import span_loss  # noqa: E402
from bertcourse.training.finetune_tokens import token_loss, trim_batch  # noqa: E402
from bertcourse.training.loop import TrainConfig, enable_determinism, set_precision  # noqa: E402
from bertcourse.training.optim import weight_decay_split  # noqa: E402
from bertcourse.training.streams import shuffled_batches  # noqa: E402

README = ROOT / "bench" / "README.md"
START, END = "<!-- finetune-step:start -->", "<!-- finetune-step:end -->"
TASKS = ("classification", "token-classification", "question-answering")
PRECISIONS = ("float32", "mixed_bfloat16")
MODEL = "all-MiniLM-L6-v2"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def load_1min(line: str) -> float | None:
    match = re.search(r"load average: ([\d.]+)", line)
    return float(match.group(1)) if match else None


# ----------------------------------------------------------------------------- data: the engine's batches
def batches_for(task: str, tokenizer, args) -> tuple[list, dict]:
    """``(batches, task settings)``: ``args.distinct`` batches from the engine's own stream of real data."""
    seed, n = args.seed, args.distinct
    if task == "classification":
        data = read_labelled_texts(ROOT / "data" / "sentiment" / "train.tsv")
        preprocessor = as_preprocessor(tokenizer, sequence_length=args.seq_len)
        labels = label_map(data.labels)
        x, y = encode_labelled(data, preprocessor, labels)
        stream = shuffled_batches(x, y, batch_size=args.batch_size, seed=seed)
        settings = {"labels": sorted(labels, key=labels.get), "seq_len": args.seq_len, "preprocessor": preprocessor}
    elif task == "token-classification":
        data = load_wnut17("train")
        labels = data.label_list
        preprocessor = as_preprocessor(tokenizer, sequence_length=args.seq_len)
        x, y, _ = encode_tagged(preprocessor, data.sentences, data.tags, labels, args.seq_len)
        stream = shuffled_batches(x, y, batch_size=args.batch_size, seed=seed).map(trim_batch)
        settings = {"labels": labels, "seq_len": args.seq_len, "preprocessor": preprocessor}
    else:
        train, _ = split_articles(read_squad(squad_path("dev-v1.1.json")))
        examples = train.examples()[:args.qa_batch_size * n]  # each gives one window or more
        preprocessor = as_preprocessor(tokenizer, sequence_length=args.qa_seq_len, truncation="only_second")
        features, starts, ends = qa_training_features(preprocessor, examples, max_seq_length=args.qa_seq_len,
                                                      doc_stride=args.doc_stride)
        stream = shuffled_batches(features.inputs, {"start_logits": starts, "end_logits": ends},
                                  batch_size=args.qa_batch_size, seed=seed)
        settings = {"seq_len": args.qa_seq_len, "preprocessor": preprocessor}
    batches = [(x, y) for x, y in stream.take(n)]
    return batches, settings


# ----------------------------------------------------------------------------- the two models
def compile_like_the_engine(model, task: str, settings: dict, config: TrainConfig, total_steps: int) -> None:
    """``bertcourse.training.loop.train``'s compile with the task's ``compile_kwargs`` (fresh loss/metrics)."""
    if task == "classification":
        kwargs = BertClassifier.loss_and_metrics("single_label_classification")
    elif task == "token-classification":
        kwargs = {"loss": token_loss(), "metrics": [EntityF1(settings["labels"])]}
    else:
        kwargs = span_loss()
    model.compile(optimizer=config.optimizer(total_steps), jit_compile=config.jit_compile, **kwargs)


def build_ours(task: str, settings: dict, dtype: str | None, tanh_gelu: bool = False):
    """The task model exactly as the engine's ``build()`` makes it (finetune*.py), on MiniLM loaded as
    ``bertcourse finetune --hf`` loads it (``dtype``: ``"mixed_bfloat16"`` with ``--bf16``).
    ``tanh_gelu``: the same weights in a backbone with keras-hub's GELU (the one difference left)."""
    backbone, _ = load_hf_bert(model_path(MODEL), dtype=dtype)
    if tanh_gelu:
        weights = backbone.get_weights()
        backbone = BertBackbone(backbone.config.replace(hidden_act="gelu_approximate"), dtype=dtype)
        backbone.set_weights(weights)
    if task == "classification":
        return BertClassifier(backbone, num_classes=len(settings["labels"]), preprocessor=settings["preprocessor"],
                              dropout=0.1, labels=settings["labels"], problem_type="single_label_classification")
    if task == "token-classification":
        return BertTokenClassifier(backbone, labels=settings["labels"], preprocessor=settings["preprocessor"],
                                   dropout=0.1)
    model = BertQuestionAnswerer(backbone, preprocessor=settings["preprocessor"])
    model.backbone.pooler.trainable = False   # as finetune_question_answerer's build()
    return model


def build_keras_hub(task: str, ours, dtype: str | None):
    """The same step written with keras-hub: its BertBackbone (our weights copied in) + the head."""
    backbone = keras_hub.models.BertBackbone(**keras_hub_kwargs(ours.backbone.config), dtype=dtype)
    copy_weights_to_keras_hub(ours.backbone, backbone)
    if task == "classification":
        model = keras_hub.models.BertTextClassifier(backbone, num_classes=ours.num_classes, preprocessor=None,
                                                    dropout=0.1)
        model.output_dense.set_weights(ours.output_dense.get_weights())
        return model
    # keras-hub has no token-classification or span-QA head: BertBackbone + Dropout + Dense, as a user writes it
    backbone.pooled_dense.trainable = False   # feeds nothing (ours freezes its pooler the same way)
    inputs = backbone.input
    sequence = backbone(inputs)["sequence_output"]
    if task == "token-classification":
        dense = keras.layers.Dense(ours.num_labels, dtype="float32", name="token_logits")
        outputs = dense(keras.layers.Dropout(0.1, name="token_dropout")(sequence))
        dense.set_weights(ours.output_dense.get_weights())
    else:
        dense = keras.layers.Dense(2, dtype="float32", name="qa_outputs")
        logits = dense(sequence)
        outputs = {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}
        dense.set_weights(ours.span_dense.get_weights())
    return keras.Model(inputs, outputs)


# ----------------------------------------------------------------------------- one measurement
def measure(task: str, precision: str, tokenizer, args) -> dict:
    batch_size = args.qa_batch_size if task == "question-answering" else args.batch_size
    config = TrainConfig(learning_rate=args.learning_rate, per_device_train_batch_size=batch_size,
                         seed=args.seed, bf16=precision == "mixed_bfloat16")
    set_precision(config.precision_policy)   # what train() does before it builds the model
    enable_determinism(config.seed)
    batches, settings = batches_for(task, tokenizer, args)
    dtype = "mixed_bfloat16" if config.bf16 else None
    ours = build_ours(task, settings, dtype)
    models = {"ours": ours, "keras-hub": build_keras_hub(task, ours, dtype)}
    if args.tanh_gelu:
        models["ours-tanh"] = build_ours(task, settings, dtype, tanh_gelu=True)
        models["ours-tanh"].set_weights(ours.get_weights())
    total_steps = args.warmup_rounds * len(batches) + args.steps + 1
    for model in models.values():
        compile_like_the_engine(model, task, settings, config, total_steps)
    x0, y0 = batches[0]
    loss_before = {name: float(np.ravel(m.test_on_batch(x0, y0))[0]) for name, m in models.items()}
    params = {name: int(sum(np.prod(v.shape) for v in m.trainable_variables)) for name, m in models.items()}
    decayed = {name: len(weight_decay_split(m.optimizer, m.trainable_variables)[0]) for name, m in models.items()}
    for _ in range(args.warmup_rounds):   # traces every distinct shape on both sides
        for x, y in batches:
            for model in models.values():
                model.train_on_batch(x, y)
    times: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for step in range(args.steps):
        x, y = batches[step % len(batches)]
        order = names[step % len(names):] + names[:step % len(names)]   # each model leads in turn
        for name in order:
            start = time.perf_counter()
            models[name].train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)
    shapes = sorted({tuple(int(d) for d in x["token_ids"].shape) for x, _ in batches})
    tokens = statistics.mean(int(np.sum(x["padding_mask"])) for x, _ in batches)
    med = {name: statistics.median(t) for name, t in times.items()}
    best = {name: min(t) for name, t in times.items()}
    result = {"task": task, "precision": precision, "shapes": [list(s) for s in shapes],
              "real_tokens_per_batch": round(tokens, 1), "steps": args.steps,
              "median_s": med, "best_s": best, "times_s": times,
              "ratio_median": med["keras-hub"] / med["ours"], "ratio_best": best["keras-hub"] / best["ours"],
              **({"ratio_median_tanh": med["keras-hub"] / med["ours-tanh"],
                  "ratio_best_tanh": best["keras-hub"] / best["ours-tanh"]} if "ours-tanh" in med else {}),
              "loss_before": loss_before, "trainable_params": params, "decayed_tensors": decayed}
    print(f"{task:22s} {precision:15s} " + ", ".join(f"{n} {t:.3f} s" for n, t in med.items())
          + f" (median); {result['ratio_median']:.2f}x; loss before {loss_before['ours']:.4f} / "
          f"{loss_before['keras-hub']:.4f}", flush=True)
    keras.backend.clear_session()
    return result


# ----------------------------------------------------------------------------- report
def table(rows: list[dict]) -> str:
    tanh = any("ours-tanh" in r["median_s"] for r in rows)
    lines = ["| task | precision | batch x seq | ours: median s (best) | keras-hub: median s (best) | "
             "ours vs keras-hub: median (best) |" + (" ours, tanh GELU: median s | its ratio |" if tanh else "")
             + " loss before: ours / keras-hub |",
             "|---|---|---|---:|---:|---:|" + ("---:|---:|" if tanh else "") + "---:|"]
    for r in rows:
        shape = ", ".join(f"{b}x{s}" for b, s in r["shapes"])
        med, best = r["median_s"], r["best_s"]
        extra = f" {med['ours-tanh']:.3f} | {r['ratio_median_tanh']:.2f}x |" if tanh else ""
        lines.append(f"| {r['task']} | {r['precision']} | {shape} | {med['ours']:.3f} ({best['ours']:.3f}) | "
                     f"{med['keras-hub']:.3f} ({best['keras-hub']:.3f}) | **{r['ratio_median']:.2f}x** "
                     f"({r['ratio_best']:.2f}x) |{extra} {r['loss_before']['ours']:.4f} / "
                     f"{r['loss_before']['keras-hub']:.4f} |")
    return "\n".join(lines)


def report(result: dict, args) -> str:
    rows = result["rows"]
    f32 = [r for r in rows if r["precision"] == "float32"]
    target = ", ".join(f"{r['task']} {r['ratio_median']:.2f}x ({'met' if r['ratio_median'] >= 1.0 else 'not met'})"
                       for r in f32) or "no float32 row in this run"
    per_task = {r["task"]: r for r in rows}
    checks = "; ".join(f"{task}: {r['trainable_params']['ours']:,} / {r['trainable_params']['keras-hub']:,} "
                       f"trainable parameters, {r['decayed_tensors']['ours']} / {r['decayed_tensors']['keras-hub']} "
                       "weight-decayed tensors" for task, r in per_task.items())
    load_start, load_end = result["load_start"], result["load_end"]
    # the bench itself keeps both cores busy (the end load is mostly its own): judge the machine by the start
    busy = load_start is None or load_start >= 1.0
    return "\n".join([
        f"Made with: `.venv/bin/python bench/finetune_step.py --write-readme` ({result['date']}, 2 CPU cores; "
        f"TF {tf.__version__}, Keras {keras.__version__}, keras-hub {keras_hub.__version__}). {MODEL} on both sides "
        f"(ours loaded with `load_hf_bert`, keras-hub's `BertBackbone` of the same size with the same weights), "
        f"AdamW lr {args.learning_rate:g} (the engine's recipe on both), {args.steps} interleaved steps of each after "
        f"{args.warmup_rounds} warm-up round(s) over {args.distinct} distinct real batches; jit_compile off on both. "
        "Ratio: keras-hub's step time / ours (> 1: ours is faster).",
        "",
        table(rows),
        "",
        f"- target (issues 15, 16: our step >= 1.0x keras-hub's, float32, median): {target}",
        f"- the same model on both sides (ours / keras-hub): {checks}",
        "- the losses before training differ only by the GELU: MiniLM's exact (erf) GELU in ours (as trained), "
        "keras-hub's tanh approximation (it has no other)"
        + ("; the \"tanh GELU\" column is ours with keras-hub's GELU, the same weights" if args.tanh_gelu else ""),
        f"- load average (1 min) at start / end: {load_start} / {load_end}"
        + (" (other work shared the 2 cores: rerun at idle before quoting)" if busy
           else " (idle at the start; the end load is the bench's own)"),
    ])


def write_readme(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    section = f"{START}\n{text}\n{END}"
    if START in readme:
        readme = readme[:readme.index(START)] + section + readme[readme.index(END) + len(END):]
    else:
        readme = readme.rstrip("\n") + (
            "\n\n## Fine-tuning step vs keras-hub\n\n`bench/finetune_step.py` (issues 15-17): one training step of "
            "the course's classification, token-classification and QA models (the model, loss and optimizer "
            "their fine-tuning engines compile) against the same step written with keras-hub "
            "(`BertTextClassifier`; `BertBackbone` + a `Dense` head where keras-hub has no task head), same "
            "weights, batches and precision, timed interleaved in one process.\n\n" + section + "\n")
    README.write_text(readme, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--steps", type=int, default=8, help="timed steps of each model")
    parser.add_argument("--warmup-rounds", type=int, default=1, help="passes over the distinct batches first")
    parser.add_argument("--distinct", type=int, default=3, help="distinct batches (cycled)")
    parser.add_argument("--batch-size", type=int, default=32, help="classification and token classification")
    parser.add_argument("--qa-batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128, help="classification and token classification")
    parser.add_argument("--qa-seq-len", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-tanh-gelu", dest="tanh_gelu", action="store_false",
                        help="leave out the third model (ours with keras-hub's tanh GELU)")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--write-readme", action="store_true", help="update the marked block in bench/README.md")
    args = parser.parse_args()

    start = uptime()
    print(start, flush=True)
    _, tokenizer = load_hf_bert(model_path(MODEL))
    rows = [measure(task, precision, tokenizer, args) for precision in args.precisions for task in args.tasks]
    end = uptime()
    print(end, flush=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "uptime_start": start, "uptime_end": end,
              "load_start": load_1min(start), "load_end": load_1min(end), "model": MODEL,
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "rows": rows}
    text = report(result, args)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.write_readme:
        write_readme(text)


if __name__ == "__main__":
    main()
