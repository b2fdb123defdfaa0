"""bertcourse.training.finetune: the orchestration (reading, labels, metrics and the model live in
bertcourse.data.labelled and bertcourse.tasks.classification, tested there)."""

import json

import numpy as np
import pytest

from bertcourse.data.labelled import LabelledTexts
from bertcourse.errors import DataFileError, RunDirectoryError
from bertcourse.models import BertBackbone
from bertcourse.text import WordPieceTokenizer
from bertcourse.training.finetune import encode_labelled, finetune_classifier
from bertcourse.training.run import RunDirectory

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "good", "bad", "film"]


def test_sentence_pairs_are_packed_by_the_preprocessor():
    from bertcourse.tasks.base import as_preprocessor

    pre = as_preprocessor(WordPieceTokenizer(VOCAB), sequence_length=8)
    x, y = encode_labelled(LabelledTexts(["a b", "c"], ["1", "0"], ["c", "a a"]), pre, {"0": 0, "1": 1})
    assert x["token_ids"][0].tolist() == [2, 5, 6, 3, 7, 3, 0, 0]
    assert x["segment_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    assert x["padding_mask"][1].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    assert y.tolist() == [1, 0] and x["token_ids"].dtype == np.int32


def test_bad_label_sets_are_refused(tmp_path):
    tok = WordPieceTokenizer(VOCAB)
    with pytest.raises(DataFileError, match=r"labels \['neutral'\] never occur"):
        finetune_classifier(lambda: BertBackbone("tiny", vocab_size=len(VOCAB)), tok,
                            LabelledTexts(["a", "b"], ["pos", "neg"]), tmp_path / "x",
                            validation=LabelledTexts(["a"], ["neutral"]))
    with pytest.raises(DataFileError, match="1 class"):
        finetune_classifier(lambda: BertBackbone("tiny", vocab_size=len(VOCAB)), tok,
                            LabelledTexts(["a", "b"], ["pos", "pos"]), tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # nothing written


def test_writes_a_classification_run_that_reloads_and_refuses_other_runs(tmp_path):
    tok = WordPieceTokenizer(VOCAB)
    train = LabelledTexts(["good film", "bad film", "a good film", "a bad film"] * 2, ["1", "0", "1", "0"] * 2)
    out = tmp_path / "clf"
    model, metrics = finetune_classifier(lambda: BertBackbone("tiny", vocab_size=len(VOCAB)), tok, train, out,
                                         validation=train, seq_len=8, batch_size=4, epochs=2, save_steps=1,
                                         verbose=0)
    run = RunDirectory(out)
    assert run.kind == "classification" and run.is_finished and not run.checkpoints.exists()
    assert json.loads(run.task_config.read_text())["labels"] == ["0", "1"]
    assert len(json.loads(run.history.read_text())["val_accuracy"]) == 2
    assert metrics["labels"] == {"0": 0, "1": 1} and 0.0 <= metrics["validation"]["accuracy"] <= 1.0
    reloaded = run.load_task()
    texts = ["good film", "a bad film"]
    a, b = reloaded.predict(texts, verbose=0), model.predict(texts, verbose=0)
    np.testing.assert_allclose(a, b, atol=1e-6)  # same weights; float summation order may differ (~1e-8)
    assert (a.argmax(-1) == b.argmax(-1)).all()
    with pytest.raises(RunDirectoryError, match="already holds a finished classification run"):
        finetune_classifier(lambda: BertBackbone("tiny", vocab_size=len(VOCAB)), tok, train, out, seq_len=8,
                            batch_size=4, epochs=1, verbose=0)
