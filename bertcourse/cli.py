"""``bertcourse`` on the command line: pretrain a BERT, fine-tune it on a task, check the data, show the environment.

    bertcourse pretrain --preset mini --corpus austen --corpus moby_dick --steps 800 --out runs/mini
    bertcourse pretrain ... --out runs/mini --resume        # continue an interrupted run
    bertcourse finetune --task sentiment --train train.tsv --validation dev.tsv --init runs/mini --out runs/sst
    bertcourse finetune --task regression --train pairs.tsv --hf minilm/ --out runs/sts   # text, text_b, score
    bertcourse finetune --task ner --train wnut17train.conll --validation emerging.dev.conll --hf minilm/ --out runs/ner
    bertcourse finetune --task qa --train train-v1.1.json --validation dev-v1.1.json --hf minilm/ --out runs/qa
    bertcourse predict runs/sst test.tsv --out predictions.jsonl                          # or .tsv; stdout: tsv
    bertcourse predict runs/ner emerging.test.annotated --out tags.conll   # token [gold] predicted; entity F1
    bertcourse predict runs/qa dev-v1.1.json --out predictions.json        # {id: answer}; EM/F1
    bertcourse export runs/sst exports/sst                   # a SavedModel that takes raw strings
    bertcourse serve exports/sst                             # HTTP, TF Serving's REST format, 127.0.0.1:8501
    bertcourse data verify                                   # checksums of data/
    bertcourse info                                          # versions, devices, presets
    bertcourse --debug finetune ...                          # a traceback instead of the one-line error

Long runs print Keras progress bars and write TensorBoard logs to the run's ``logs/`` folder.

A mistake a user can make (a missing or truncated file, a folder that is not a model, a run of
another kind in ``--out``, ids out of range ...) ends the command with ONE line on stderr,
``error: <what is wrong, and what to do>``, and exit status 2. Arguments, input files, model folders
and ``--out`` are all checked before any corpus is read, vocabulary learned or model built.

>>> args = build_parser().parse_args(["pretrain", "--out", "runs/x", "--steps", "50"])
>>> args.steps, steps_per_epoch(args)           # an epoch is never longer than the run
(50, 50)
>>> canonical_task("ner"), canonical_task("qa"), canonical_task("sentiment")
('token-classification', 'question-answering', 'classification')
>>> one_line_error(CommandLineError("--seq-len 600 is longer than\\n the position table."))
'error: --seq-len 600 is longer than the position table.'
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import h5py
from safetensors import SafetensorError, safe_open

from bertcourse.course import import_tensorflow_quietly, quiet_tensorflow

tf = import_tensorflow_quietly()  # before the modules below load it: its C++ start-up lines would reach stderr

from bertcourse.config import PRESETS, BertConfig  # noqa: E402
from bertcourse.convert.hf import load_hf_bert  # noqa: E402
from bertcourse.data import corpora  # noqa: E402
from bertcourse.data.conll import DOCSTART, ConllData, read_conll  # noqa: E402
from bertcourse.data.squad import QAExample, read_squad  # noqa: E402
from bertcourse.data.labelled import read_labelled_texts  # noqa: E402
from bertcourse.errors import BertcourseError, DataFileError, ModelLoadError, RunDirectoryError  # noqa: E402
from bertcourse.layers import SequenceTooLongError  # noqa: E402
from bertcourse.serving.export import export_task  # noqa: E402
from bertcourse.serving.server import API_KEY_ENV, ServingConfig, check_bind, parse_model_arguments, serve  # noqa: E402
from bertcourse.models import BertBackbone  # noqa: E402
from bertcourse.text import WordPieceTokenizer, learn_vocabulary, load_vocabulary  # noqa: E402
from bertcourse.tasks import TASKS  # noqa: E402
from bertcourse.tasks.base import DTYPE_POLICIES  # noqa: E402
from bertcourse.tasks.classification import classification_metrics, regression_metrics  # noqa: E402
from bertcourse.tasks.question_answering import squad_metrics  # noqa: E402
from bertcourse.tasks.token_classification import check_tags, entity_metrics, predict_word_tags  # noqa: E402
from bertcourse.training.finetune import finetune_classifier, numeric_labels  # noqa: E402
from bertcourse.training.finetune_qa import finetune_question_answerer  # noqa: E402
from bertcourse.training.finetune_tokens import finetune_token_classifier  # noqa: E402
from bertcourse.training.pretrain import PretrainConfig, evaluate_mlm, pretrain, pretraining_train_config  # noqa: E402
from bertcourse.training.run import RunDirectory  # noqa: E402

__all__ = ["main", "build_parser", "FINETUNE_TASKS", "TASK_RUN_KINDS", "CommandLineError", "one_line_error",
           "steps_per_epoch", "canonical_task", "USER_ERRORS"]

# --task name -> the kind of run it writes (the engine that trains it); "sentiment", "regression", "ner" and
# "qa" are other names of these (regression: a classification run with one numeric output).
FINETUNE_TASKS = ("classification", "sentiment", "regression", "token-classification", "ner", "question-answering",
                  "qa")
_TASK_KINDS = {"classification": "classification", "sentiment": "classification", "regression": "classification",
               "token-classification": "token-classification", "ner": "token-classification",
               "question-answering": "question-answering", "qa": "question-answering"}
# The engine defaults per kind (finetune_classifier / finetune_token_classifier / finetune_question_answerer).
_SEQ_LEN = {"classification": 128, "token-classification": 128, "question-answering": 384}
_EPOCHS = {"classification": 3, "token-classification": 3, "question-answering": 2}
PREDICTION_FORMATS = (".tsv", ".jsonl")
# run kind -> the files `bertcourse predict` writes for it
_PREDICTION_FORMATS = {"classification": PREDICTION_FORMATS, "token-classification": (".tsv", ".conll", ".jsonl"),
                       "question-answering": (".tsv", ".jsonl", ".json")}
TASK_RUN_KINDS = tuple(_PREDICTION_FORMATS)  # runs `bertcourse predict` reads
DEFAULT_STEPS_PER_EPOCH = 100
# What a user can cause (shown as one line); anything else is a bug and keeps its traceback.
USER_ERRORS = (BertcourseError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
               SequenceTooLongError)
# The published Hugging Face file names (not a run directory's: those come from RunDirectory).
HF_CONFIG, HF_WEIGHTS, HF_VOCAB = "config.json", "model.safetensors", "vocab.txt"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class CommandLineError(BertcourseError, ValueError):
    """A flag or a combination of flags that cannot work (the message says which and what to use)."""


# ----------------------------------------------------------------------------- argument types
def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The ``bertcourse`` argument parser."""
    parser = argparse.ArgumentParser(prog="bertcourse", description="Build BERT from the ground up.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pretrain a BERT (MLM + NSP) on the shipped corpora")
    p.add_argument("--preset", choices=PRESETS, default="mini")
    p.add_argument("--corpus", action="append", choices=sorted(corpora.CORPORA), help="repeatable; default: all")
    p.add_argument("--vocab", type=Path, help="a vocab.txt to use (default: learn one on the training chapters)")
    p.add_argument("--vocab-size", type=_positive_int, default=8000)
    p.add_argument("--seq-len", type=_positive_int, default=128)
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--steps", type=_positive_int, default=800)
    p.add_argument("--steps-per-epoch", type=_positive_int,
                   help=f"updates per epoch (logs, probes); default: min(--steps, {DEFAULT_STEPS_PER_EPOCH})")
    p.add_argument("--save-steps", type=_positive_int,
                   help="checkpoint every N updates (default: once per epoch); --resume continues from the newest")
    p.add_argument("--learning-rate", type=_positive_float, default=1e-3)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--mlm-only", action="store_true", help="no NSP head (RoBERTa-style)")
    p.add_argument("--whole-word", action="store_true", help="whole-word masking")
    p.add_argument("--mask-rate", type=float, default=0.15, help="share of tokens masked in training (BERT: 0.15)")
    p.add_argument("--pre-ln", action="store_true", help="pre-LayerNorm blocks (not BERT's post-LN)")
    p.add_argument("--bf16", action="store_true", help="mixed_bfloat16 precision")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--out", type=Path, required=True, help="output directory (weights, vocab, logs)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of progress bars")

    f = sub.add_parser("finetune", help="fine-tune a BERT on labelled files: classification (.tsv/.csv), "
                                        "token classification (CoNLL columns), question answering (SQuAD json)")
    f.add_argument("--task", choices=FINETUNE_TASKS, default="classification",
                   help="sentiment and classification: one label per text (or text pair, with a text_b column); "
                        "regression: a numeric score per text or pair (MSE; Pearson/Spearman); "
                        "token-classification (ner): a BIO tag per word, CoNLL-column files (entity F1); "
                        "question-answering (qa): answer spans, SQuAD v1.1/v2.0 json (EM/F1)")
    f.add_argument("--train", type=Path, required=True,
                   help="classification: .tsv/.csv with a header: text, label [, text_b]; ner: a CoNLL-column "
                        "file (token ... tag, a blank line between sentences); qa: a SQuAD json file")
    f.add_argument("--validation", type=Path,
                   help="same format; classification and ner: evaluated every epoch, best epoch kept; "
                        "qa: EM/F1 of the final model")
    source = f.add_mutually_exclusive_group(required=True)
    source.add_argument("--init", type=Path, help="a `bertcourse pretrain` output directory (lesson 07)")
    source.add_argument("--hf", type=Path, help="a Hugging Face BERT directory (config.json, model.safetensors, "
                                                "vocab.txt)")
    source.add_argument("--preset", choices=PRESETS, help="a fresh, untrained encoder (needs --vocab)")
    f.add_argument("--vocab", type=Path, help="vocab.txt for --preset")
    f.add_argument("--text-column", help="classification: the text column (default: text)")
    f.add_argument("--label-column", help="classification: the label column (default: label)")
    f.add_argument("--text-b-column", help="classification: the second text of a pair, when the file has it "
                                           "(default: text_b)")
    f.add_argument("--seq-len", type=_positive_int,
                   help="pieces per example (default: 128; qa: 384, the window length)")
    f.add_argument("--batch-size", type=_positive_int, default=32)
    f.add_argument("--epochs", type=_positive_int, help="default: 3 (qa: 2)")
    f.add_argument("--max-steps", type=_positive_int, help="stop after this many updates (whole epochs)")
    f.add_argument("--learning-rate", type=_positive_float, default=5e-5)
    f.add_argument("--dropout", type=float, help="dropout of the head (default: 0.1; not for qa)")
    f.add_argument("--label-all-pieces", action="store_true",
                   help="ner: every piece of a word learns its label (default: only the first piece)")
    f.add_argument("--doc-stride", type=_positive_int, help="qa: tokens shared by consecutive windows (default: 128)")
    f.add_argument("--max-query-length", type=_positive_int, help="qa: question tokens kept (default: 64)")
    f.add_argument("--max-answer-len", type=_positive_int, help="qa: longest answer in tokens (default: 15)")
    f.add_argument("--bf16", action="store_true", help="mixed_bfloat16 precision")
    f.add_argument("--save-steps", type=_positive_int, help="checkpoint every N updates (needed for --resume)")
    f.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    f.add_argument("--seed", type=int, default=42)
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    f.add_argument("--quiet", action="store_true", help="one line per epoch instead of progress bars")

    e = sub.add_parser("export", help="a fine-tuning run -> a SavedModel that takes raw strings (tokenizer inside)")
    e.add_argument("run", type=Path, help="a `bertcourse finetune` output directory")
    e.add_argument("out", type=Path, help="the SavedModel folder to write")
    e.add_argument("--overwrite", action="store_true", help="replace an existing export in OUT")
    e.add_argument("--dtype", choices=DTYPE_POLICIES, help="serve the weights under this Keras dtype policy "
                                                          "(default: the run's; bfloat16 halves the file)")

    s = sub.add_parser("serve", help="serve exported models over HTTP (TF Serving's REST format)")
    s.add_argument("models", nargs="+", help="export folders, each PATH or NAME=PATH (name: the folder's)")
    s.add_argument("--host", default="127.0.0.1", help="any address but loopback needs --api-key")
    s.add_argument("--port", type=_positive_int, default=8501)
    s.add_argument("--api-key", help=f"required from every client when set (default: ${API_KEY_ENV})")
    s.add_argument("--max-batch-size", type=_positive_int, default=32, help="dynamic batching: instances per batch")
    s.add_argument("--max-wait-ms", type=float, default=5.0, help="dynamic batching: wait for more requests")
    s.add_argument("--no-batching", action="store_true", help="run every request on its own")
    s.add_argument("--no-length-groups", action="store_true",
                   help="run each gathered batch as one call instead of cutting it into groups of similar "
                        "length (faster where a call's fixed cost outweighs padding, e.g. bfloat16 exports)")
    s.add_argument("--max-instances", type=_positive_int, default=256, help="instances per request")
    s.add_argument("--max-body-bytes", type=_positive_int, default=1 << 20)
    s.add_argument("--timeout", type=_positive_float, default=30.0, help="seconds before a request gets 504")

    pr = sub.add_parser("predict", help="predictions of a fine-tuned run on a file of its task")
    pr.add_argument("run", type=Path, help="a `bertcourse finetune` output directory")
    pr.add_argument("file", type=Path,
                    help="classification: .tsv/.csv with a header: text [, text_b] [, label: then scored]; "
                         "ner: CoNLL columns, tokens only or token ... tag (then scored); qa: SQuAD json "
                         "(questions with answers are scored)")
    pr.add_argument("--out", type=Path,
                    help="predictions file: .tsv or .jsonl; ner also .conll (token [gold] predicted); qa also "
                         ".json ({id: answer}, the official evaluation's input) (default: tsv on stdout)")
    pr.add_argument("--text-column", help="classification (default: text)")
    pr.add_argument("--text-b-column", help="classification (default: text_b)")
    pr.add_argument("--label-column", help="classification (default: label)")
    pr.add_argument("--batch-size", type=_positive_int, default=32)

    d = sub.add_parser("data", help="the shipped corpora")
    d.add_argument("action", choices=["verify", "build", "stats"])

    sub.add_parser("info", help="versions, devices and preset sizes")
    return parser


# ----------------------------------------------------------------------------- checks before any work
def steps_per_epoch(args: argparse.Namespace) -> int:
    """``--steps-per-epoch``, defaulting to ``min(--steps, 100)``; refused if it does not divide ``--steps``."""
    if args.steps_per_epoch is None:  # the longest epoch up to 100 updates that divides the run
        return _largest_divisor(args.steps, DEFAULT_STEPS_PER_EPOCH)
    if args.steps_per_epoch > args.steps:
        raise CommandLineError(f"--steps-per-epoch {args.steps_per_epoch} is more than --steps {args.steps}: "
                               f"use --steps-per-epoch {args.steps} or less.")
    if args.steps % args.steps_per_epoch:
        raise CommandLineError(f"--steps {args.steps} is not a whole number of epochs of --steps-per-epoch "
                               f"{args.steps_per_epoch}: use --steps-per-epoch "
                               f"{_largest_divisor(args.steps, args.steps_per_epoch)} (or leave it out).")
    return args.steps_per_epoch


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def _check_input_file(flag: str, path: Path | None) -> None:
    if path is None:
        return
    if not path.exists():
        raise FileNotFoundError(f"{flag} {path} does not exist.")
    if path.is_dir():
        raise IsADirectoryError(f"{flag} {path} is a folder; give the file itself.")


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CommandLineError(f"--out {out} is a file, not a run folder: choose another --out (a new or run "
                               "folder).")


def _listing(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir())
    return (", ".join(names[:12]) + (" ..." if len(names) > 12 else "")) if names else "nothing"


def _check_weights_file(path: Path, what: str) -> None:
    """A weights file that exists, is not empty and is whole (its header or superblock says its length)."""
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: {what}")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path} is empty (0 bytes): the copy or download was interrupted; copy it again.")
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="numpy") as weights:
                weights.keys()
        else:
            with h5py.File(path, "r"):
                pass
    except (SafetensorError, OSError) as err:
        raise ModelLoadError(f"{path} is truncated or not a weights file ({' '.join(str(err).split())}); copy it "
                             "again, or retrain it.") from None


def _check_vocab(path: Path, where: str) -> None:
    if not path.is_file():
        raise ModelLoadError(f"{where} has no {path.name}: the weights cannot be used without the vocabulary they "
                             f"were trained with (found: {_listing(path.parent)}).")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path} is empty: copy the model's {path.name} again.")


def _read_model_config(path: Path, flag: str, hf: bool) -> BertConfig:
    """A model folder's config.json as a BertConfig (both formats), refused in one line if it is not BERT."""
    if not path.is_file():
        raise ModelLoadError(f"{flag} {path.parent} is not a "
                             + ("Hugging Face BERT folder" if hf else "`bertcourse pretrain` run")
                             + f": it has no {path.name} (found: {_listing(path.parent)}).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{path} is not valid JSON ({err}); copy the model's {path.name} again.") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} must hold a JSON object, got {type(data).__name__}.")
    if hf:
        model_type = data.get("model_type")
        archs = [str(a) for a in data.get("architectures") or []]
        if model_type not in (None, "bert") or (model_type is None and not any(a.startswith("Bert") for a in archs)):
            raise ModelLoadError(f"{path} describes a {model_type or 'non-BERT'!s} model (architectures {archs}), "
                                 "not BERT (model_type 'bert'): --hf reads BERT checkpoints only.")
        data = dict(data, model_type="bert")
    try:
        return BertConfig.from_dict(data)
    except (ValueError, TypeError) as err:
        raise ModelLoadError(f"{path}: {' '.join(str(err).split())}") from None


def _check_folder(flag: str, folder: Path, hf: bool) -> None:
    expected = "a Hugging Face BERT folder (config.json, model.safetensors, vocab.txt)" if hf \
        else "the --out folder of a `bertcourse pretrain` run"
    if not folder.exists():
        raise FileNotFoundError(f"{flag} {folder} does not exist: give {expected}.")
    if not folder.is_dir():
        hint = f" (its folder is {folder.parent})" if folder.name in (HF_CONFIG, HF_WEIGHTS, HF_VOCAB) or \
            folder.suffix in (".h5", ".safetensors", ".json", ".txt") else ""
        raise NotADirectoryError(f"{flag} {folder} is a file; give {expected}{hint}.")


def _check_model_folder(flag: str, folder: Path, run_files=None) -> BertConfig:
    """Everything about ``--init``/``--hf`` that can be checked without building a model; its BertConfig.

    ``run_files``: the :class:`~bertcourse.training.run.RunDirectory` of an ``--init`` run (None for ``--hf``,
    whose files have Hugging Face's names).
    """
    hf = run_files is None
    _check_folder(flag, folder, hf)
    config_path = folder / HF_CONFIG if hf else run_files.path_of("config")
    config = _read_model_config(config_path, flag, hf)
    if hf:
        _check_vocab(folder / HF_VOCAB, f"{flag} {folder}")
        weights = folder / HF_WEIGHTS
        if not weights.exists() and any(folder.glob("pytorch_model*.bin")):
            raise ModelLoadError(f"{folder} has pytorch_model.bin but no {HF_WEIGHTS}: convert it once with "
                                 "transformers (model.save_pretrained(dir, safe_serialization=True)).")
        _check_weights_file(weights, f"{flag} needs the model's weights next to its {HF_CONFIG}.")
    else:
        _check_vocab(run_files.path_of("vocab"), f"{flag} {folder}")
        if run_files.kind == "classification":  # a fine-tuned encoder, taken from the task model's weights
            _check_weights_file(run_files.path_of("model_weights"), f"{folder} holds no finished fine-tuning run.")
        else:
            _check_weights_file(run_files.path_of("backbone_weights"),
                                f"{folder} holds no finished pretraining run (resume it with `bertcourse pretrain "
                                f"--out {folder} --resume`, or give a finished run).")
    return config


# A run's setting -> the flag that sets it (for the "resumed with other settings" message).
_FLAGS = {"preset": "--preset", "seq_len": "--seq-len", "normalize_first": "--pre-ln", "mlm_only": "--mlm-only"}


def _check_run_folder(out: Path, kind: str, resume: bool, overwrite: bool, run_files, **settings) -> None:
    """Refuse (one line) to write a ``kind`` run into ``out`` where it would damage or mix runs.

    Writes nothing: the same rules as :meth:`RunDirectory.create <bertcourse.training.run.RunDirectory.create>`,
    checked before any model is built. ``settings``: values that must equal the interrupted run's to
    resume it (e.g. ``preset``).
    """
    manifest = run_files.manifest if out.is_dir() else {}
    if manifest and manifest.get("kind") != kind:
        raise RunDirectoryError(f"--out {out} holds a {manifest.get('kind')} run; a {kind} run cannot be written "
                                "there (it would replace that run's files): choose another --out.")
    finished = manifest.get("status") == "finished"
    if resume:
        if not manifest:
            raise RunDirectoryError(f"--resume given but {out} holds no {kind} run to continue.")
        if finished:
            raise RunDirectoryError(f"{out} is a finished {kind} run: nothing to resume, nothing was changed "
                                    "(pass --overwrite instead of --resume to train it again).")
        config = run_files.read_json("train_config", {}) or {}  # RunDirectoryError if corrupt
        saved = {**(run_files.read_json("pretrain_config", {}) or {}), **config, **(config.get("pretrain") or {})}
        for name, value in settings.items():
            if name in saved and saved[name] != value:
                raise RunDirectoryError(f"{out} was started with {name}={saved[name]!r}, this command asks for "
                                        f"{name}={value!r} ({_FLAGS.get(name, name)}): resume with the run's own "
                                        "settings, or pass --overwrite to start again.")
    elif manifest and not overwrite:
        if finished:
            raise RunDirectoryError(f"--out {out} already holds a finished {kind} run; choose another --out or pass "
                                    "--overwrite.")
        raise RunDirectoryError(f"--out {out} holds an interrupted {kind} run; pass --resume to continue it (or "
                                "--overwrite to start again).")


def _check_seq_len(seq_len: int, config: BertConfig, folder: Path) -> None:
    if seq_len > config.max_position_embeddings:
        raise CommandLineError(f"--seq-len {seq_len} is longer than the model's position table "
                               f"(max_position_embeddings={config.max_position_embeddings} in {folder}): "
                               f"use --seq-len {config.max_position_embeddings} or less.")


# ----------------------------------------------------------------------------- commands
def _pretrain(args) -> int:
    spe = steps_per_epoch(args)
    _check_input_file("--vocab", args.vocab)
    _check_out(args.out)
    if not 0.0 <= args.dropout < 1.0:
        raise CommandLineError(f"--dropout must be in [0, 1), got {args.dropout}.")
    if not 0.0 < args.mask_rate < 1.0:
        raise CommandLineError(f"--mask-rate must be in (0, 1), got {args.mask_rate}.")
    if args.resume and args.overwrite:
        raise CommandLineError("--resume continues a run and --overwrite starts it again: give one of them.")

    run = RunDirectory(args.out)
    _check_run_folder(args.out, "pretraining", args.resume, args.overwrite, run, preset=args.preset,
                      seq_len=args.seq_len, normalize_first=args.pre_ln, mlm_only=args.mlm_only)
    try:  # the configs validate the values given on the command line
        config = PretrainConfig(preset=args.preset, seq_len=args.seq_len, mlm_only=args.mlm_only,
                                whole_word=args.whole_word, mask_rate=args.mask_rate, normalize_first=args.pre_ln,
                                dropout=args.dropout)
        train_config = pretraining_train_config(steps=args.steps, steps_per_epoch=spe, batch_size=args.batch_size,
                                                learning_rate=args.learning_rate, seed=args.seed, bf16=args.bf16,
                                                **({"save_steps": args.save_steps} if args.save_steps else {}))
    except ValueError as err:
        raise CommandLineError(str(err)) from None
    documents = corpora.load_corpus(*(args.corpus or []))
    train_docs, heldout_docs = corpora.split_documents(documents)
    if args.resume and run.path_of("vocab").is_file():  # the run's own vocabulary, whatever --vocab says
        vocabulary = load_vocabulary(run.path_of("vocab"))
    elif args.vocab is not None:
        vocabulary = load_vocabulary(args.vocab)
    else:
        print(f"learning a {args.vocab_size:,}-piece vocabulary on {len(train_docs)} chapters ...", flush=True)
        vocabulary = learn_vocabulary([s for d in train_docs for s in d.sentences], args.vocab_size)
    tokenizer = WordPieceTokenizer(vocabulary)
    model, _ = pretrain(train_docs, tokenizer, config, train_config, out_dir=args.out, resume=args.resume,
                        overwrite=args.overwrite, verbose=2 if args.quiet else 1)
    held = evaluate_mlm(model, heldout_docs, tokenizer, seq_len=config.seq_len, batch_size=args.batch_size)
    print(f"held-out MLM accuracy {held['mlm_accuracy']:.1%}, perplexity {held['mlm_perplexity']:.0f}; "
          f"weights in {args.out}")
    return 0


def canonical_task(task: str) -> str:
    """The kind of run a ``--task`` name writes: ``"classification"``, ``"token-classification"`` or
    ``"question-answering"``."""
    return _TASK_KINDS[task]


# flag -> (args attribute, the run kinds whose engine takes it)
_TASK_FLAGS = {
    "--text-column": ("text_column", ("classification",)),
    "--label-column": ("label_column", ("classification",)),
    "--text-b-column": ("text_b_column", ("classification",)),
    "--dropout": ("dropout", ("classification", "token-classification")),
    "--label-all-pieces": ("label_all_pieces", ("token-classification",)),
    "--doc-stride": ("doc_stride", ("question-answering",)),
    "--max-query-length": ("max_query_length", ("question-answering",)),
    "--max-answer-len": ("max_answer_len", ("question-answering",)),
}


def _check_task_flags(args, kind: str) -> None:
    """A flag the task's engine does not take is refused (one line), never silently ignored."""
    for flag, (name, kinds) in _TASK_FLAGS.items():
        if kind not in kinds and getattr(args, name, None) not in (None, False):
            takes = " and ".join(kinds)
            raise CommandLineError(f"{flag} is not an option of --task {args.task} (its fine-tuning has no such "
                                   f"setting; {flag} is for {takes}): leave it out.")


def _check_not_empty(path: Path) -> None:
    if path.is_file() and path.stat().st_size == 0:
        raise DataFileError(f"{path}: the file is empty; expected SQuAD json ({{\"data\": [articles]}}).")


def _read_squad_examples(flag: str, path: Path) -> list[QAExample]:
    _check_not_empty(path)
    examples = read_squad(path).examples()
    if not examples:
        raise DataFileError(f"{flag} {path}: the SQuAD file has no questions (its 'data' list holds no "
                            "paragraph with 'qas').")
    return examples


def _load_source(args, seq_len: int):
    """``(backbone_fn, tokenizer, source)`` of ``--init``/``--hf``/``--preset``: a pretrained encoder is
    loaded once; a preset is built by ``backbone_fn`` after the engine sets the precision and seeds."""
    dtype = "mixed_bfloat16" if args.bf16 else None
    if args.init is not None:  # load the pretrained encoder once
        backbone, tokenizer = RunDirectory(args.init).load_backbone(dtype=dtype)
    elif args.hf is not None:
        backbone, tokenizer = load_hf_bert(args.hf, dtype=dtype)
    else:
        tokenizer = WordPieceTokenizer.from_vocab_file(args.vocab)
        backbone = None

    def backbone_fn():
        if backbone is not None:
            return backbone
        return BertBackbone(BertConfig.preset(args.preset, vocab_size=tokenizer.vocabulary_size,
                                              max_position_embeddings=max(seq_len, 128)))

    source = {"init": str(args.init)} if args.init is not None else {"hf": str(args.hf)} if args.hf is not None \
        else {"preset": args.preset}
    return backbone_fn, tokenizer, source


def _finetune(args) -> int:
    kind = canonical_task(args.task)
    for flag, path in (("--train", args.train), ("--validation", args.validation), ("--vocab", args.vocab)):
        _check_input_file(flag, path)
    _check_out(args.out)
    _check_task_flags(args, kind)
    if args.preset and args.vocab is None:
        raise CommandLineError("--preset needs --vocab (the vocabulary of the fresh encoder).")
    if args.resume and not args.save_steps:
        raise CommandLineError("--resume needs --save-steps (the checkpoint interval of the run to continue).")
    if args.resume and args.overwrite:
        raise CommandLineError("--resume continues a run and --overwrite starts it again: give one of them.")
    dropout = 0.1 if args.dropout is None else args.dropout
    if not 0.0 <= dropout < 1.0:
        raise CommandLineError(f"--dropout must be in [0, 1), got {dropout}.")
    seq_len = args.seq_len or _SEQ_LEN[kind]
    epochs = args.epochs or _EPOCHS[kind]
    regression = args.task == "regression"
    text_column, label_column = args.text_column or "text", args.label_column or "label"
    text_b_column = args.text_b_column or "text_b"
    if kind == "classification":
        train = read_labelled_texts(args.train, text_column, label_column, text_b_column,
                                    require_classes=None if regression else 2)
        validation = read_labelled_texts(args.validation, text_column, label_column, text_b_column) \
            if args.validation else None
    elif kind == "token-classification":
        train = read_conll(args.train)  # a malformed line: DataFileError with its line number
        validation = read_conll(args.validation) if args.validation else None
        if validation is not None:  # the engine's check, before the encoder is loaded
            check_tags(validation.tags, train.label_list, what=f"--validation {args.validation} (the labels are "
                                                               f"--train's)")
    else:
        train = _read_squad_examples("--train", args.train)
        validation = _read_squad_examples("--validation", args.validation) if args.validation else None
        stride = 128 if args.doc_stride is None else args.doc_stride  # the engine's default
        if stride >= seq_len - 4:  # a window: [CLS] question [SEP] context [SEP], the question >= 1 token
            raise CommandLineError(f"--doc-stride {stride} leaves no room to advance in a window of --seq-len "
                                   f"{seq_len} (question, 3 special tokens and context): use --doc-stride "
                                   f"{max(1, seq_len // 4)} or a longer --seq-len.")
    if args.hf is not None:
        _check_seq_len(seq_len, _check_model_folder("--hf", args.hf), args.hf)
    elif args.init is not None:  # a run's file names come from RunDirectory
        _check_seq_len(seq_len, _check_model_folder("--init", args.init, RunDirectory(args.init)), args.init)
    _check_run_folder(args.out, kind, args.resume, args.overwrite, RunDirectory(args.out))

    backbone_fn, tokenizer, source = _load_source(args, seq_len)
    unit = {"classification": "examples", "token-classification": "sentences",
            "question-answering": "questions"}[kind]
    print(f"{args.task}: {len(train):,} training {unit}"
          + (f", {len(validation):,} validation" if validation else ""), flush=True)
    common = dict(validation=validation, seq_len=seq_len, batch_size=args.batch_size, epochs=epochs,
                  max_steps=args.max_steps, learning_rate=args.learning_rate, bf16=args.bf16, seed=args.seed,
                  save_steps=args.save_steps, resume=args.resume, overwrite=args.overwrite, source=source,
                  verbose=2 if args.quiet else 1)
    if kind == "token-classification":
        _, metrics = finetune_token_classifier(backbone_fn, tokenizer, train, args.out, dropout=dropout,
                                               label_all_pieces=args.label_all_pieces, **common)
        if "validation" in metrics:
            v = metrics["validation"]
            print(f"validation entity F1 {v['f1']:.3f} (precision {v['precision']:.3f}, recall {v['recall']:.3f}); "
                  f"model in {args.out}")
        else:
            print(f"model in {args.out}")
        return 0
    if kind == "question-answering":
        options = {name: getattr(args, name) for name in ("doc_stride", "max_query_length", "max_answer_len")
                   if getattr(args, name) is not None}
        _, metrics = finetune_question_answerer(backbone_fn, tokenizer, train, args.out, **options, **common)
        print(f"{metrics['train_windows']:,} training windows")
        if "validation" in metrics:
            v = metrics["validation"]
            print(f"validation EM {v['exact_match']:.1f}, F1 {v['f1']:.1f}; model in {args.out}")
        else:
            print(f"model in {args.out}")
        return 0
    _, metrics = finetune_classifier(backbone_fn, tokenizer, train, args.out, dropout=dropout,
                                     problem_type="regression" if regression else "single_label_classification",
                                     **common)
    if "validation" in metrics and regression:
        v = metrics["validation"]
        print(f"validation Pearson {v['pearson']:.3f}, Spearman {v['spearman']:.3f}, MSE {v['mse']:.3f}; "
              f"model in {args.out}")
    elif "validation" in metrics:
        v = metrics["validation"]
        print(f"validation accuracy {v['accuracy']:.1%}, macro-F1 {v['macro_f1']:.3f}; model in {args.out}")
    else:
        print(f"model in {args.out}")
    return 0


def _export(args) -> int:
    out = export_task(args.run, args.out, overwrite=args.overwrite, dtype=args.dtype)
    print(f"SavedModel (raw strings in) in {out}; serve it with `bertcourse serve {out}`")
    return 0


def _serve(args) -> int:
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    check_bind(args.host, api_key)  # before any model is loaded
    config = ServingConfig(max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                           batching=not args.no_batching, max_instances=args.max_instances,
                           max_body_bytes=args.max_body_bytes, timeout_s=args.timeout, api_key=api_key,
                           group_by_length=not args.no_length_groups)
    serve(parse_model_arguments(args.models), host=args.host, port=args.port, config=config)
    return 0


def _predict(args) -> int:
    """``bertcourse predict RUN FILE``: the predictions of a fine-tuned run on a file of its task, tsv (default,
    stdout) or jsonl; with gold labels in the file, the metric on stderr.

    classification: one row per text (label, score; accuracy/macro-F1 or Pearson/Spearman);
    token classification: one predicted tag per word (CoNLL columns ``token [gold] predicted``, a blank line
    between sentences; entity F1); question answering: one answer per question (``.json``: ``{id: answer}``,
    the official evaluation script's input; EM/F1 over the questions that have answers)."""
    _check_input_file("FILE", args.file)
    if not args.run.is_dir():
        raise FileNotFoundError(f"RUN {args.run} is not a folder: give the --out folder of `bertcourse finetune`.")
    run = RunDirectory(args.run)
    if run.kind not in TASK_RUN_KINDS:
        raise RunDirectoryError(f"RUN {args.run} holds {'a ' + run.kind if run.kind else 'no'} run, not a fine-tuned "
                                "task model: give the --out folder of `bertcourse finetune`.")
    formats = _PREDICTION_FORMATS[run.kind]
    suffix = args.out.suffix.lower() if args.out is not None else ".tsv"
    if suffix not in formats:
        raise CommandLineError(f"--out {args.out}: write the predictions of a {run.kind} run to a "
                               + ", ".join(formats[:-1]) + f" or {formats[-1]} file.")
    if args.out is not None and args.out.is_dir():
        raise CommandLineError(f"--out {args.out} is a folder; give a file name ({', '.join(formats)}).")
    if run.kind != "classification":
        for flag, name in (("--text-column", "text_column"), ("--text-b-column", "text_b_column"),
                           ("--label-column", "label_column")):
            if getattr(args, name) is not None:
                raise CommandLineError(f"{flag} is for classification runs; {args.run} is a {run.kind} run "
                                       "(its file has no named columns): leave it out.")
    predict = {"classification": _predict_classification, "token-classification": _predict_tokens,
               "question-answering": _predict_answers}[run.kind]
    text, summary, count = predict(args, run, suffix)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    print(f"{count:,} predictions{summary}" + (f"; written to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def _tsv(rows: list[dict]) -> str:
    """A header and one line per row (a column a row lacks is empty); a value's tabs and line breaks become
    spaces."""
    columns = list(dict.fromkeys(c for row in rows for c in row))
    return "\t".join(columns) + "\n" + "".join(
        "\t".join(" ".join(str(row.get(c, "")).split()) for c in columns) + "\n" for row in rows)


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _predict_classification(args, run, suffix: str) -> tuple[str, str, int]:
    text_column, label_column = args.text_column or "text", args.label_column or "label"
    text_b_column = args.text_b_column or "text_b"
    data = read_labelled_texts(args.file, text_column, label_column, text_b_column, require_labels=False)
    settings = run.read_json("task_config", {}) or {}
    pairs = bool(settings.get("pairs", False))
    if pairs != (data.texts_b is not None):
        raise DataFileError(f"{args.file}: the model in {args.run} was trained on "
                            + ("text pairs, but the file has no " if pairs else "single texts, but the file has a ")
                            + f"{text_b_column!r} column.")
    model = run.load_task()
    regression = bool(getattr(model, "is_regression", False))
    gold = None
    if data.labels:
        if regression:
            gold = numeric_labels(data)
        else:
            unknown = sorted(set(data.labels) - set(model.class_names))
            if unknown:
                raise DataFileError(f"{args.file}: labels {unknown[:5]} are not labels of the model in {args.run} "
                                    f"(its labels: {model.class_names}).")
            gold = [model.class_names.index(label) for label in data.labels]
    items = data.texts if data.texts_b is None else [{"text": a, "text_pair": b}
                                                     for a, b in zip(data.texts, data.texts_b)]
    results = TASKS["text-classification"](model, batch_size=args.batch_size)(items)
    rows = []
    for i, result in enumerate(results):
        row = {"text": data.texts[i]}
        if data.texts_b is not None:
            row["text_b"] = data.texts_b[i]
        row.update(label=result["label"], score=result["score"])
        if data.labels:
            row["gold"] = data.labels[i]
        rows.append(row)
    summary = ""
    if gold is not None:
        if regression:
            m = regression_metrics(gold, [r["score"] for r in results])
            summary = f"; Pearson {m['pearson']:.4f}, Spearman {m['spearman']:.4f}, MSE {m['mse']:.4f}"
        else:
            m = classification_metrics(gold, [model.class_names.index(r["label"]) for r in results],
                                       len(model.class_names))
            summary = f"; accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}"
    return (_jsonl(rows) if suffix == ".jsonl" else _tsv(rows)), summary, len(rows)


def _read_words(path: Path) -> ConllData | None:
    """A CoNLL file of tokens only (one column; a blank line between sentences) -> ``ConllData`` whose tags
    are placeholders (``O``: there is no gold); ``None`` if its first token line has more columns (then
    :func:`~bertcourse.data.conll.read_conll` reads it, strictly, with its tags)."""
    try:
        lines = path.read_bytes().decode("utf-8-sig").split("\n")
    except UnicodeDecodeError:
        return None  # read_conll names the line
    first = next((line for line in lines if line.strip() and not line.startswith(DOCSTART)), None)
    if first is None or len(first.rstrip("\r").split("\t") if "\t" in first else first.split()) != 1:
        return None
    sentences, words = [], []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            if words:
                sentences.append(words)
                words = []
            continue
        if line.startswith(DOCSTART):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) != 1 or not fields[0].strip():
            raise DataFileError(f"{path}, line {number}: {len(fields)} column(s), expected 1 (a token) as on the "
                                f"first token line ({line!r:.80}).")
        words.append(fields[0].strip())
    if words:
        sentences.append(words)
    return ConllData(sentences, [["O"] * len(s) for s in sentences], str(path))


def _predict_tokens(args, run, suffix: str) -> tuple[str, str, int]:
    words_only = _read_words(args.file)
    data = words_only if words_only is not None else read_conll(args.file)
    model = run.load_task()
    gold = None if words_only is not None else data.tags
    if gold is not None:
        check_tags(gold, model.label_names, what=f"{args.file} (tags must be labels of the model in {args.run})")
    predicted = predict_word_tags(model, data.sentences, batch_size=args.batch_size)
    if suffix == ".jsonl":
        text = _jsonl([{"words": words, "tags": tags, **({"gold": gold[i]} if gold is not None else {})}
                       for i, (words, tags) in enumerate(zip(data.sentences, predicted))])
    else:  # CoNLL columns, as conlleval reads them: token [gold] predicted
        text = "\n".join("".join(f"{word}\t{gold[i][j]}\t{tag}\n" if gold is not None else f"{word}\t{tag}\n"
                                 for j, (word, tag) in enumerate(zip(words, tags)))
                         for i, (words, tags) in enumerate(zip(data.sentences, predicted)))
    summary = ""
    if gold is not None:
        m = entity_metrics(gold, predicted)
        summary = (f"; entity F1 {m['f1']:.4f} (precision {m['precision']:.4f}, recall {m['recall']:.4f}, "
                   f"{m['true_entities']:,} gold entities)")
    return text, summary, len(data)


def _read_questions(path: Path) -> tuple[list[QAExample], list[bool]]:
    """A SQuAD json file for prediction: :func:`~bertcourse.data.squad.read_squad`'s checks, except that a
    question without an ``answers`` field is a question to answer, not an error. Returns the questions and,
    for each, whether it has gold answers (SQuAD 2.0's unanswerable questions count as gold: "")."""
    _check_not_empty(path)
    examples = read_squad(path, answers_required=False).examples()
    if not examples:
        raise DataFileError(f"{path}: the SQuAD file has no questions (its 'data' list holds no paragraph with "
                            "'qas').")
    return examples, [bool(ex.answers) or ex.is_impossible for ex in examples]


def _predict_answers(args, run, suffix: str) -> tuple[str, str, int]:
    examples, labelled = _read_questions(args.file)
    model = run.load_task()
    results = model.answer([ex.question for ex in examples], [ex.context for ex in examples],
                           batch_size=args.batch_size)
    rows = []
    for ex, has_gold, (answers, _) in zip(examples, labelled, results):
        best = answers[0] if answers else {"answer": "", "score": 0.0, "start": 0, "end": 0}
        row = {"id": ex.id, "question": ex.question, "answer": best["answer"], "score": float(best["score"]),
               "start": int(best["start"]), "end": int(best["end"])}
        if has_gold:
            row["gold"] = ex.answer_texts
        rows.append(row)
    if suffix == ".json":
        text = json.dumps({row["id"]: row["answer"] for row in rows}, ensure_ascii=False, indent=1) + "\n"
    elif suffix == ".jsonl":
        text = _jsonl(rows)
    else:
        text = _tsv([{**row, "gold": " | ".join(row["gold"])} if "gold" in row else row for row in rows])
    scored = [ex for ex, has_gold in zip(examples, labelled) if has_gold]
    summary = ""
    if scored:
        m = squad_metrics({row["id"]: row["answer"] for row in rows}, scored)
        summary = (f"; EM {m['exact_match']:.2f}, F1 {m['f1']:.2f}"
                   + (f" on the {len(scored):,} questions with answers" if len(scored) < len(rows) else ""))
    return text, summary, len(rows)


def _data(args) -> int:
    if args.action == "stats":
        for name, stats in corpora.corpus_stats().items():
            print(name, " ".join(f"{k}={v:,}" for k, v in stats.items()))
        return 0
    script = corpora.data_dir() / "build.py"
    if not script.is_file():
        raise FileNotFoundError(f"{script} not found (run from a clone of the course repository).")
    cmd = [sys.executable, str(script)] + (["--force"] if args.action == "build" else [])
    return subprocess.call(cmd)


def _info(args) -> int:
    for package in ("bertcourse", "tensorflow", "tensorflow-text", "keras", "keras-hub"):
        print(f"{package:16s} {version(package)}")
    print("devices:", ", ".join(d.name for d in tf.config.list_logical_devices()))
    for name in PRESETS:
        print(f"preset {name:7s} {BertConfig.preset(name).num_parameters():>13,} parameters")
    return 0


# ----------------------------------------------------------------------------- errors
def one_line_error(err: BaseException) -> str:
    """``error: <message>`` on one line: ANSI colour codes and Keras' "Exception encountered when calling"
    frame removed, whitespace collapsed."""
    text = _ANSI.sub("", str(err))
    if "Exception encountered when calling" in text:  # Keras wraps errors raised inside a layer's call
        inner = text.split("Exception encountered when calling", 1)[1].split("\n", 1)[-1]
        text = inner.split("Arguments received by", 1)[0]
    text = " ".join(text.split()) or type(err).__name__
    return f"error: {text}"


def main(argv: list[str] | None = None) -> int:
    """Run one ``bertcourse`` command; a user's mistake prints one line to stderr and returns 2."""
    args = build_parser().parse_args(argv)
    quiet_tensorflow()
    handlers = {"pretrain": _pretrain, "finetune": _finetune, "export": _export, "serve": _serve,
                "predict": _predict, "data": _data, "info": _info}
    try:
        return handlers[args.command](args)
    except Exception as err:
        if args.debug or not isinstance(err, USER_ERRORS):
            raise
        print(one_line_error(err), file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
