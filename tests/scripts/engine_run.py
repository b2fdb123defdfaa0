#!/usr/bin/env python
"""Run a real pretraining or fine-tuning job the way a user does, with two test-only hooks: a pause after
every training step (so a test can SIGKILL it at a chosen, mid-epoch step) and a crash while the final
weights are being written.

    python tests/scripts/engine_run.py pretrain --out DIR [--steps 12 --steps-per-epoch 4 --save-steps 2]
           [--resume] [--overwrite] [--sleep 0.3] [--crash-in-final-write]
    python tests/scripts/engine_run.py cli [--sleep 0.3] [--crash-in-final-write] -- finetune --train ... --out DIR

``pretrain`` calls :func:`bertcourse.training.pretrain.pretrain` on the shipped Austen corpus exactly as
``bertcourse pretrain`` does (tiny preset, short sequences). ``cli`` runs ``bertcourse.cli.main`` itself
with the given arguments. Exit status 2 and one ``error:`` line for a refused run, as the CLI.
"""

import argparse
import os
import signal
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _hooks(sleep: float, crash_in_final_write: bool) -> None:
    """Patch the engine: a pause per step; a SIGKILL halfway through writing the final weights."""
    import keras

    import bertcourse.training.finetune as finetune
    import bertcourse.training.loop as loop
    import bertcourse.training.pretrain as pretrain

    class Pause(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(sleep)

    original_train = loop.train

    def train(*args, callbacks=(), **kwargs):
        return original_train(*args, callbacks=list(callbacks) + ([Pause()] if sleep else []), **kwargs)

    finetune.train_loop = train
    pretrain.train = train
    if crash_in_final_write:
        original_save = pretrain.atomic_save_weights

        def save_then_die(model, path):
            original_save(model, path)  # the first final file is complete; the run is not finished
            partial = str(path).replace(".weights.h5", ".partial.weights.h5")
            with open(partial, "wb") as f:
                f.write(b"\x89HDF half a file")
            print("crashing while the final weights are written", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        pretrain.atomic_save_weights = save_then_die
        finetune.atomic_save_weights = save_then_die


def _pretrain(args) -> int:
    from bertcourse.data import corpora
    from bertcourse.errors import BertcourseError
    from bertcourse.text import WordPieceTokenizer, learn_vocabulary
    from bertcourse.training.pretrain import PretrainConfig, pretrain, pretraining_train_config

    docs = corpora.load_corpus("austen")[:4]
    tokenizer = WordPieceTokenizer(learn_vocabulary([s for d in docs for s in d.sentences], 400))
    config = PretrainConfig(preset="tiny", seq_len=args.seq_len)
    train_config = pretraining_train_config(steps=args.steps, steps_per_epoch=args.steps_per_epoch,
                                            batch_size=args.batch_size, save_steps=args.save_steps, seed=7)
    try:
        pretrain(docs, tokenizer, config, train_config, out_dir=args.out, resume=args.resume,
                 overwrite=args.overwrite, verbose=0)
    except BertcourseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("finished", flush=True)
    return 0


def main() -> int:
    argv = sys.argv[1:]
    cli_args = []
    if "--" in argv:
        cli_args = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["pretrain", "cli"])
    p.add_argument("--out")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--steps-per-epoch", type=int, default=4)
    p.add_argument("--save-steps", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--crash-in-final-write", action="store_true")
    args = p.parse_args(argv)
    _hooks(args.sleep, args.crash_in_final_write)
    if args.mode == "pretrain":
        return _pretrain(args)
    from bertcourse.cli import main as cli_main

    return cli_main(cli_args)


if __name__ == "__main__":
    sys.exit(main())
