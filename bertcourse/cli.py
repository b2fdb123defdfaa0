"""``bertcourse`` on the command line: pretrain a BERT, check the data, show the environment.

    bertcourse pretrain --preset mini --corpus austen --corpus moby_dick --steps 800 --out runs/mini
    bertcourse pretrain ... --out runs/mini --resume        # continue an interrupted run
    bertcourse finetune --task sentiment --train train.tsv --validation dev.tsv --init runs/mini --out runs/sst
    bertcourse data verify                                   # checksums of data/
    bertcourse info                                          # versions, devices, presets

Long runs print Keras progress bars and write TensorBoard logs to ``<out>/logs``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main", "build_parser", "FINETUNE_TASKS"]

# Token classification (NER), extractive QA and similarity get their own heads in lessons 10-12.
FINETUNE_TASKS = ("classification", "sentiment")


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
    from bertcourse.config import PRESETS
    from bertcourse.data.corpora import CORPORA

    parser = argparse.ArgumentParser(prog="bertcourse", description="Build BERT from the ground up.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pretrain a BERT (MLM + NSP) on the shipped corpora")
    p.add_argument("--preset", choices=PRESETS, default="mini")
    p.add_argument("--corpus", action="append", choices=sorted(CORPORA), help="repeatable; default: all")
    p.add_argument("--vocab", type=Path, help="a vocab.txt to use (default: learn one on the training chapters)")
    p.add_argument("--vocab-size", type=_positive_int, default=8000)
    p.add_argument("--seq-len", type=_positive_int, default=128)
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--steps", type=_positive_int, default=800)
    p.add_argument("--steps-per-epoch", type=_positive_int, default=100)
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

    f = sub.add_parser("finetune", help="fine-tune a BERT classifier on labelled .tsv/.csv files")
    f.add_argument("--task", choices=FINETUNE_TASKS, default="classification",
                   help="sentiment and classification: one label per text (or text pair, with a text_b column)")
    f.add_argument("--train", type=Path, required=True, help=".tsv/.csv with a header: text, label [, text_b]")
    f.add_argument("--validation", type=Path, help="same format; evaluated every epoch, best epoch kept")
    source = f.add_mutually_exclusive_group(required=True)
    source.add_argument("--init", type=Path, help="a `bertcourse pretrain` output directory (lesson 07)")
    source.add_argument("--hf", type=Path, help="a Hugging Face BERT directory (config.json, model.safetensors, "
                                                "vocab.txt)")
    source.add_argument("--preset", choices=PRESETS, help="a fresh, untrained encoder (needs --vocab)")
    f.add_argument("--vocab", type=Path, help="vocab.txt for --preset")
    f.add_argument("--text-column", default="text")
    f.add_argument("--label-column", default="label")
    f.add_argument("--seq-len", type=_positive_int, default=128)
    f.add_argument("--batch-size", type=_positive_int, default=32)
    f.add_argument("--epochs", type=_positive_int, default=3)
    f.add_argument("--max-steps", type=_positive_int, help="stop after this many updates (whole epochs)")
    f.add_argument("--learning-rate", type=_positive_float, default=5e-5)
    f.add_argument("--dropout", type=float, default=0.1)
    f.add_argument("--bf16", action="store_true", help="mixed_bfloat16 precision")
    f.add_argument("--save-steps", type=_positive_int, help="checkpoint every N updates (needed for --resume)")
    f.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    f.add_argument("--seed", type=int, default=42)
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    f.add_argument("--quiet", action="store_true", help="one line per epoch instead of progress bars")

    d = sub.add_parser("data", help="the shipped corpora")
    d.add_argument("action", choices=["verify", "build", "stats"])

    sub.add_parser("info", help="versions, devices and preset sizes")
    return parser


def _pretrain(args) -> int:
    from bertcourse.course import quiet_tensorflow

    quiet_tensorflow()
    out: Path = args.out
    finished = out / "pretrainer.weights.h5"
    backup = out / "backup"
    if finished.exists() and not args.overwrite:
        raise SystemExit(f"error: {out} already holds a finished run; choose another --out or pass --overwrite.")
    if backup.exists() and not (args.resume or args.overwrite):
        raise SystemExit(f"error: {out} holds an interrupted run; pass --resume to continue it "
                         "(or --overwrite to start again).")
    if args.resume and not backup.exists():
        raise SystemExit(f"error: --resume given but {out} has no interrupted run to continue.")
    if args.overwrite and backup.exists():
        import shutil

        shutil.rmtree(backup)
    if args.vocab is not None and not args.vocab.is_file():
        raise SystemExit(f"error: --vocab {args.vocab} does not exist.")
    if not 0.0 <= args.dropout < 1.0:
        raise SystemExit(f"error: --dropout must be in [0, 1), got {args.dropout}.")
    if not 0.0 < args.mask_rate < 1.0:
        raise SystemExit(f"error: --mask-rate must be in (0, 1), got {args.mask_rate}.")

    import keras

    from bertcourse.data import corpora
    from bertcourse.text import WordPieceTokenizer, learn_vocabulary, load_vocabulary
    from bertcourse.training import set_precision
    from bertcourse.training.pretrain import PretrainConfig, evaluate_mlm, pretrain

    config = PretrainConfig(preset=args.preset, seq_len=args.seq_len, batch_size=args.batch_size, steps=args.steps,
                            steps_per_epoch=args.steps_per_epoch, learning_rate=args.learning_rate,
                            mlm_only=args.mlm_only, whole_word=args.whole_word, dropout=args.dropout, seed=args.seed,
                            mask_rate=args.mask_rate, normalize_first=args.pre_ln,
                            precision="mixed_bfloat16" if args.bf16 else "float32")
    set_precision("mixed_bfloat16" if args.bf16 else "float32")
    documents = corpora.load_corpus(*(args.corpus or []))
    train_docs, heldout_docs = corpora.split_documents(documents)
    if args.vocab is not None:
        vocabulary = load_vocabulary(args.vocab)
    elif args.resume and (out / "vocab.txt").exists():
        vocabulary = load_vocabulary(out / "vocab.txt")
    else:
        print(f"learning a {args.vocab_size:,}-piece vocabulary on {len(train_docs)} chapters ...", flush=True)
        vocabulary = learn_vocabulary([s for d in train_docs for s in d.sentences], args.vocab_size)
    out.mkdir(parents=True, exist_ok=True)
    from bertcourse.text import save_vocabulary

    save_vocabulary(vocabulary, out / "vocab.txt")  # before training, so --resume uses the same one
    tokenizer = WordPieceTokenizer(vocabulary)
    callbacks = [keras.callbacks.TensorBoard(str(out / "logs"))]
    model, history = pretrain(train_docs, tokenizer, config, out_dir=out, callbacks=callbacks,
                              verbose=2 if args.quiet else 1)
    held = evaluate_mlm(model, heldout_docs, tokenizer, seq_len=config.seq_len, batch_size=config.batch_size)
    print(f"held-out MLM accuracy {held['mlm_accuracy']:.1%}, perplexity {held['mlm_perplexity']:.0f}; "
          f"weights in {out}")
    return 0


def _finetune(args) -> int:
    from bertcourse.course import quiet_tensorflow

    quiet_tensorflow()
    out: Path = args.out
    if (out / "classifier.weights.h5").exists() and not (args.overwrite or args.resume):
        raise SystemExit(f"error: {out} already holds a fine-tuned model; choose another --out or pass --overwrite.")
    if args.resume and not args.save_steps:
        raise SystemExit("error: --resume needs --save-steps (the checkpoint interval of the run to continue).")
    if args.resume and not (out / "checkpoints").is_dir():
        raise SystemExit(f"error: --resume given but {out} has no checkpoints to continue from.")
    for flag, path in (("--train", args.train), ("--validation", args.validation), ("--init", args.init),
                       ("--hf", args.hf), ("--vocab", args.vocab)):
        if path is not None and not path.exists():
            raise SystemExit(f"error: {flag} {path} does not exist.")
    if args.preset and args.vocab is None:
        raise SystemExit("error: --preset needs --vocab (the vocabulary of the fresh encoder).")
    if not 0.0 <= args.dropout < 1.0:
        raise SystemExit(f"error: --dropout must be in [0, 1), got {args.dropout}.")

    from bertcourse.training.finetune import finetune_classifier, read_labelled_texts

    try:
        train = read_labelled_texts(args.train, args.text_column, args.label_column)
        validation = read_labelled_texts(args.validation, args.text_column, args.label_column) \
            if args.validation else None
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None

    dtype = "mixed_bfloat16" if args.bf16 else None
    if args.init is not None or args.hf is not None:  # load the pretrained encoder once
        if args.init is not None:
            from bertcourse.pretrained import load_course_backbone

            backbone, tokenizer = load_course_backbone(args.init, dtype=dtype)
        else:
            from bertcourse.convert import load_hf_bert

            backbone, tokenizer = load_hf_bert(args.hf, dtype=dtype)

        def backbone_fn():
            return backbone
    else:
        from bertcourse import BertConfig
        from bertcourse.models import BertBackbone
        from bertcourse.text import WordPieceTokenizer

        tokenizer = WordPieceTokenizer.from_vocab_file(args.vocab)

        def backbone_fn():
            return BertBackbone(BertConfig.preset(args.preset, vocab_size=tokenizer.vocabulary_size,
                                                  max_position_embeddings=max(args.seq_len, 128)))
    print(f"{args.task}: {len(train):,} training examples"
          + (f", {len(validation):,} validation" if validation else ""), flush=True)
    try:
        _, metrics = finetune_classifier(
            backbone_fn, tokenizer, train, out, validation=validation, seq_len=args.seq_len,
            batch_size=args.batch_size, epochs=args.epochs, max_steps=args.max_steps,
            learning_rate=args.learning_rate, dropout=args.dropout, bf16=args.bf16, seed=args.seed,
            save_steps=args.save_steps, resume=args.resume, verbose=2 if args.quiet else 1)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    if "validation" in metrics:
        v = metrics["validation"]
        print(f"validation accuracy {v['accuracy']:.1%}, macro-F1 {v['macro_f1']:.3f}; model in {out}")
    else:
        print(f"model in {out}")
    return 0


def _data(args) -> int:
    from bertcourse.data import corpora

    if args.action == "stats":
        for name, stats in corpora.corpus_stats().items():
            print(name, " ".join(f"{k}={v:,}" for k, v in stats.items()))
        return 0
    script = corpora.data_dir() / "build.py"
    if not script.is_file():
        raise SystemExit(f"error: {script} not found (run from a clone of the course repository).")
    import subprocess

    cmd = [sys.executable, str(script)] + (["--force"] if args.action == "build" else [])
    return subprocess.call(cmd)


def _info(args) -> int:
    from importlib.metadata import version

    from bertcourse.config import PRESETS, BertConfig
    from bertcourse.course import import_tensorflow_quietly, quiet_tensorflow

    quiet_tensorflow()
    tf = import_tensorflow_quietly()
    for package in ("bertcourse", "tensorflow", "tensorflow-text", "keras", "keras-hub"):
        print(f"{package:16s} {version(package)}")
    print("devices:", ", ".join(d.name for d in tf.config.list_logical_devices()))
    for name in PRESETS:
        print(f"preset {name:7s} {BertConfig.preset(name).num_parameters():>13,} parameters")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    handlers = {"pretrain": _pretrain, "finetune": _finetune, "data": _data, "info": _info}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
