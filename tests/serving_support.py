"""Shared by the serving tests: a tiny sentiment classifier fine-tuned by ``bertcourse finetune`` on a
few labelled review sentences, and the texts to check it on.

The set is small and easy on purpose (cue words ``great``/``terrible``...), so a 2-layer model learns
it in a few seconds and every served answer can be checked against the label as written.
"""

from __future__ import annotations

from pathlib import Path

POSITIVE = ["A great film, I loved every minute of it.", "Wonderful acting and a great story.",
            "I loved it, a wonderful evening.", "Great music, great cast, great fun.",
            "A wonderful, moving film.", "The best film I have seen this year, great.",
            "Loved the ending, wonderful work.", "Simply great: funny, warm and clever."]
NEGATIVE = ["A terrible film, I hated every minute of it.", "Awful acting and a terrible story.",
            "I hated it, an awful evening.", "Terrible music, terrible cast, no fun.",
            "An awful, boring film.", "The worst film I have seen this year, terrible.",
            "Hated the ending, awful work.", "Simply terrible: dull, cold and stupid."]
# unseen at training time, with the cue words the model learnt
CHECK = [("What a great and wonderful film!", "pos"), ("Terrible, awful and boring.", "neg"),
         ("I loved the great cast.", "pos"), ("I hated the awful plot.", "neg")]


def write_training_file(folder: Path) -> Path:
    path = folder / "train.tsv"
    rows = [f"{t}\tpos" for t in POSITIVE] + [f"{t}\tneg" for t in NEGATIVE]
    path.write_text("text\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def finetune_tiny_run(folder: Path) -> Path:
    """``bertcourse finetune --preset tiny`` on the 16 sentences (the real uncased vocabulary);
    returns the run directory."""
    from bertcourse.cli import main  # lazy: the CLI loads TensorFlow
    from bertcourse.text import bert_uncased_vocab_path  # lazy: the CLI loads TensorFlow

    folder.mkdir(parents=True, exist_ok=True)
    run = folder / "run"
    status = main(["finetune", "--preset", "tiny", "--vocab", str(bert_uncased_vocab_path()),
                   "--train", str(write_training_file(folder)), "--seq-len", "32", "--batch-size", "4",
                   "--epochs", "10", "--learning-rate", "3e-3", "--dropout", "0.0", "--seed", "7",
                   "--out", str(run), "--quiet"])
    assert status == 0
    return run
