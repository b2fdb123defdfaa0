"""The CoNLL-column reader on the real WNUT-17 files (exact published counts) and on small bad files."""

import hashlib

import pytest

from bertcourse.data.conll import (WNUT17_COUNTS, WNUT17_FILES, WNUT17_SHA256, entity_chunks, load_wnut17,
                                   read_conll, verify_wnut17, wnut17_path)
from bertcourse.errors import DataFileError


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_wnut17_counts_are_the_published_ones(split):
    data = load_wnut17(split)
    sentences, tokens, entities = WNUT17_COUNTS[split]
    assert (len(data), data.num_tokens, data.num_entities) == (sentences, tokens, entities)
    assert data.entity_types == ["corporation", "creative-work", "group", "location", "person", "product"]
    assert all(sentence for sentence in data.sentences)


def test_wnut17_shipped_copy_is_byte_identical():
    digests = verify_wnut17()
    assert digests == {name: WNUT17_SHA256[name] for name in WNUT17_FILES.values()}
    for split, name in WNUT17_FILES.items():
        assert hashlib.sha256(wnut17_path(split).read_bytes()).hexdigest() == WNUT17_SHA256[name]


def test_verify_names_a_changed_file(tmp_path):
    for split in WNUT17_FILES:
        (tmp_path / WNUT17_FILES[split]).write_bytes(wnut17_path(split).read_bytes())
    (tmp_path / WNUT17_FILES["dev"]).write_bytes(wnut17_path("dev").read_bytes() + b"x\tO\n")
    with pytest.raises(DataFileError, match="emerging.dev.conll: sha256"):
        verify_wnut17(tmp_path)


def test_train_file_tab_only_lines_end_sentences():
    first = load_wnut17("train")
    assert first.sentences[0][:3] == ["@paulwalk", "It", "'s"]
    assert first.tags[0][14:17] == ["B-location", "I-location", "I-location"]
    assert len(first.sentences[0]) == 27


def test_conll2003_four_columns_pick_the_tag_column(tmp_path):
    path = tmp_path / "eng.train"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n"
                    "\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n\n-DOCSTART- -X- -X- O\n\n"
                    "BRUSSELS NNP B-NP B-LOC\n",
                    encoding="utf-8")
    data = read_conll(path)
    assert data.sentences == [["EU", "rejects", "German"], ["Peter", "Blackburn"], ["BRUSSELS"]]
    assert data.tags == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"], ["B-LOC"]]
    assert read_conll(path, tag_column=3).tags == data.tags
    assert read_conll(path, tag_column=2).tags[0] == ["B-NP", "B-VP", "B-NP"]
    assert data.label_list == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    with pytest.raises(DataFileError, match=r"line 3: tag 'NNP' is not 'O'"):
        read_conll(path, tag_column=1)
    with pytest.raises(DataFileError, match="tag_column=4 but the file has 4 column"):
        read_conll(path, tag_column=4)


@pytest.mark.parametrize("content, message", [
    ("a\tO\nb\tB-person\tx\n", r"line 2: 3 column\(s\), expected 2"),
    ("a\tO\nb\n", r"line 2: 1 column\(s\), expected 2"),
    ("a\tO\nb\tB_person\n", r"line 2: tag 'B_person' is not 'O'"),
    ("a\tO\n\n\nb\tperson\n", r"line 4: tag 'person'"),
    ("alone\n", r"line 1: one column"),
    ("\n\n-DOCSTART-\tO\n\n", "no sentences"),
    ("\tO\n", r"line 1: empty token"),
])
def test_bad_files_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.conll"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFileError, match=message) as err:
        read_conll(path)
    assert str(path) in str(err.value)


def test_not_utf8_and_missing_file(tmp_path):
    path = tmp_path / "latin1.conll"
    path.write_bytes("a\tO\n\nSão\tB-location\n".encode("latin-1"))
    with pytest.raises(DataFileError, match="line 3: not UTF-8"):
        read_conll(path)
    with pytest.raises(DataFileError, match="no such file"):
        read_conll(tmp_path / "missing.conll")


def test_entity_chunks_is_seqeval_default():
    seqeval = pytest.importorskip("seqeval.metrics.sequence_labeling")
    cases = [["O", "I-a", "I-a", "B-a", "I-b", "O", "B-b"], ["B-a", "E-a", "I-a", "S-b", "E-b"],
             ["I-a", "B-a", "I-a", "O", "I-a"], ["B-creative-work", "I-creative-work", "I-group"]]
    for tags in cases:
        expected = [(t, s, e + 1) for t, s, e in seqeval.get_entities(tags)]
        assert entity_chunks(tags) == expected, tags
    for split in ("dev", "test"):
        for tags in load_wnut17(split).tags:
            assert entity_chunks(tags) == [(t, s, e + 1) for t, s, e in seqeval.get_entities(tags)]
