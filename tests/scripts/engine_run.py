#!/usr/bin/env python
"""Run ``bertcourse`` (``bertcourse.cli.main``, the real command line) with two test-only hooks in the engine:
a pause after every training step (so that a test can SIGKILL the run at a chosen, mid-epoch step) and a
SIGKILL halfway through writing the final weights.

    python tests/scripts/engine_run.py cli [--sleep 0.3] [--crash-in-final-write] -- pretrain ... --out DIR
    python tests/scripts/engine_run.py cli [--sleep 0.3] -- finetune --train ... --out DIR
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


def main() -> int:
    argv = sys.argv[1:]
    cli_args = []
    if "--" in argv:
        cli_args = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["cli"])
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--crash-in-final-write", action="store_true")
    args = p.parse_args(argv)
    _hooks(args.sleep, args.crash_in_final_write)
    from bertcourse.cli import main as cli_main

    return cli_main(cli_args)


if __name__ == "__main__":
    sys.exit(main())
