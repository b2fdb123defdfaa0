"""bertcourse.training.finetune: file reading with clear errors, label maps, metrics, sentence pairs."""

import numpy as np
import pytest

from bertcourse.training.finetune import (LabelledTexts, classification_metrics, encode_texts, finetune_classifier,
                                          label_map, read_labelled_texts)


def test_read_tsv_and_csv(tmp_path):
    (tmp_path / "a.tsv").write_text("text\tlabel\nI loved it\tpos\nDull, \"very\" dull\tneg\n")
    (tmp_path / "b.csv").write_text('label,text,text_b\n1,"a, b",c\n0,d,e\n')
    a = read_labelled_texts(tmp_path / "a.tsv")
    assert a.texts == ["I loved it", 'Dull, "very" dull'] and a.labels == ["pos", "neg"] and a.texts_b is None
    b = read_labelled_texts(tmp_path / "b.csv")
    assert b.texts == ["a, b", "d"] and b.texts_b == ["c", "e"] and b.labels == ["1", "0"]


@pytest.mark.parametrize("name, content, match", [
    ("x.txt", "text\tlabel\n", "expected a .tsv or .csv"),
    ("x.tsv", "sentence\tlabel\na\tb\n", "no 'text' column"),
    ("x.tsv", "text\tlabel\n", "no examples"),
    ("x.tsv", "text\tlabel\nhello\t\n", "line 2: missing"),
])
def test_bad_files_are_clear_errors(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=match):
        read_labelled_texts(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        read_labelled_texts(tmp_path / "missing.tsv")


def test_label_map_orders_numbers_numerically():
    assert label_map(["10", "2", "2", "-1"]) == {"-1": 0, "2": 1, "10": 2}
    assert label_map(["positive", "negative"]) == {"negative": 0, "positive": 1}


def test_classification_metrics_by_hand():
    # class 0: tp 2, fp 1, fn 0 -> F1 0.8; class 1: tp 1, fp 0, fn 1 -> F1 2/3
    m = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1]), 2)
    assert m["accuracy"] == 0.75 and m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)


def test_sentence_pairs_are_packed_with_segments():
    from bertcourse.text import WordPieceTokenizer

    tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"])
    x = encode_texts(LabelledTexts(["a b", "c"], ["1", "0"], ["c", "a a"]), tok, 8)
    assert x["token_ids"][0].tolist() == [2, 5, 6, 3, 7, 3, 0, 0]
    assert x["segment_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    assert x["padding_mask"][1].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]


def test_validation_label_not_in_training_is_an_error(tmp_path):
    from bertcourse.models import BertBackbone
    from bertcourse.text import WordPieceTokenizer

    tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])
    with pytest.raises(ValueError, match=r"validation labels \['neutral'\] never occur"):
        finetune_classifier(lambda: BertBackbone("tiny"), tok, LabelledTexts(["a"], ["pos"]), tmp_path,
                            validation=LabelledTexts(["a"], ["neutral"]))
