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


class EchoModel:
    """A stand-in for :class:`bertcourse.serving.server.ServedModel` with no TensorFlow: each answer is
    computed from its own text (so a mixed-up batch shows), every batch it is called with is recorded,
    a text containing ``boom`` makes the whole call raise, and ``slow`` makes it sleep ``delay_s``.

    Outputs: ``label`` (the text reversed), ``length`` (its characters) and, ``[batch, pieces]`` padded to
    the batch's longest text as an exported token classifier's, ``piece`` (its words) and ``mask``.
    """

    def __init__(self, name: str = "echo", delay_s: float = 0.0, inputs: tuple[str, ...] = ("text",)):
        import threading

        self.name, self.delay_s = name, delay_s
        self.inputs, self.outputs = list(inputs), ["label", "length", "piece", "mask"]
        self.ragged_outputs = {"piece", "mask"}
        self.metadata = {"inputs": self.inputs, "outputs": self.outputs, "labels": []}
        self.signature_name = "serving_default"
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    @staticmethod
    def answer(text: str) -> dict:
        """What a request for ``text`` alone must get back."""
        return {"label": text[::-1], "length": len(text), "piece": text.split(), "mask": [True] * len(text.split())}

    def run(self, columns: dict[str, list[str]]) -> dict:
        import time

        import numpy as np

        texts = [" ".join(parts) for parts in zip(*(columns[k] for k in self.inputs))]
        with self.lock:
            self.batches.append(texts)
        if any("boom" in t for t in texts):
            raise RuntimeError("boom")
        if any("slow" in t for t in texts):
            time.sleep(self.delay_s)
        words = [t.split() for t in texts]
        width = max(len(w) for w in words)
        return {"label": np.array([t[::-1] for t in texts]), "length": np.array([len(t) for t in texts], np.int32),
                "piece": np.array([w + [""] * (width - len(w)) for w in words], dtype=object).astype(str),
                "mask": np.array([[j < len(w) for j in range(width)] for w in words], bool)}

    def rows(self, outputs: dict, start: int, size: int) -> dict:
        from bertcourse.serving.server import ServedModel

        return ServedModel.rows(self, outputs, start, size)

    def status(self) -> dict:
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE"}]}

    def describe(self) -> dict:
        return {"model_spec": {"name": self.name}}
