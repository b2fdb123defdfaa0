"""bertcourse.data.labelled: label files read strictly (issue 14, defect 6), with real defective files."""

import pytest

from bertcourse.data import LabelledTexts, check_training_labels, read_labelled_texts
from bertcourse.errors import BertcourseError, DataFileError


def write(tmp_path, name, content, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(content.encode(encoding) if isinstance(content, str) else content)
    return path


def test_tsv_and_csv_dialects(tmp_path):
    a = read_labelled_texts(write(tmp_path, "a.tsv", 'text\tlabel\nI loved it\tpos\nDull, "very" dull\tneg\n'))
    assert a.texts == ["I loved it", 'Dull, "very" dull'] and a.labels == ["pos", "neg"] and a.texts_b is None
    assert a.source == str(tmp_path / "a.tsv")
    b = read_labelled_texts(write(tmp_path, "b.csv", 'label,text,text_b\n1,"a, b",c\n0,"say ""hi""\nthere",e\n'))
    assert b.texts == ["a, b", 'say "hi"\nthere'] and b.texts_b == ["c", "e"] and b.labels == ["1", "0"]


def test_windows_line_endings_and_blank_lines(tmp_path):
    data = read_labelled_texts(write(tmp_path, "w.tsv", "text\tlabel\r\ngood\tpos\r\n\r\nbad\tneg\r\n\r\n"))
    assert data.texts == ["good", "bad"] and data.labels == ["pos", "neg"]


@pytest.mark.parametrize("name", ["bom.tsv", "bom.csv"])
def test_utf8_byte_order_mark_is_accepted(tmp_path, name):
    sep = "\t" if name.endswith("tsv") else ","
    path = write(tmp_path, name, f"text{sep}label\ncafé{sep}pos\nnaïve{sep}neg\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    data = read_labelled_texts(path)
    assert data.texts == ["café", "naïve"] and data.labels == ["pos", "neg"]


def test_embedded_tab_is_an_error_with_file_and_line(tmp_path):
    path = write(tmp_path, "train.tsv", "text\tlabel\nloved it\tpos\na good\tfilm\tpos\n")
    with pytest.raises(DataFileError) as err:
        read_labelled_texts(path)
    message = str(err.value)
    assert str(path) in message and "line 3" in message and "3 fields, expected 2" in message
    assert "tab inside a text" in message


def test_missing_field_is_an_error_with_line(tmp_path):
    path = write(tmp_path, "t.tsv", "text\tlabel\tsource\nfine\tpos\tweb\nno source here\tneg\n")
    with pytest.raises(DataFileError, match=r"t\.tsv, line 3: 2 fields, expected 3 \(text, label, source\)"):
        read_labelled_texts(path)


def test_line_numbers_count_lines_of_the_file_not_rows(tmp_path):
    path = write(tmp_path, "m.csv", 'text,label\n"two\nlines",pos\nthree,fields,neg\n')
    with pytest.raises(DataFileError, match=r"m\.csv, line 4: 3 fields"):
        read_labelled_texts(path)


def test_latin1_file_names_file_line_and_encoding(tmp_path):
    path = write(tmp_path, "latin.tsv", "text\tlabel\nfine\tpos\nun café crème\tneg\n", encoding="latin-1")
    with pytest.raises(DataFileError) as err:
        read_labelled_texts(path)
    message = str(err.value)
    assert str(path) in message and "line 3" in message and "0xe9" in message
    assert "try re-saving as UTF-8" in message and "latin-1/cp1252" in message


def test_latin1_after_a_bom_still_counts_lines(tmp_path):
    path = write(tmp_path, "x.tsv", b"\xef\xbb\xbftext\tlabel\nok\tpos\nok\tneg\ncaf\xe9\tneg\n")
    with pytest.raises(DataFileError, match=r"x\.tsv, line 4: byte 0xe9"):
        read_labelled_texts(path)


def test_labels_are_kept_as_written(tmp_path):
    path = write(tmp_path, "n.csv", "text,label\na,1\nb,1.0\nc,0\nd,00\ne, 1 \n")
    data = read_labelled_texts(path)
    assert data.labels == ["1", "1.0", "0", "00", "1"]  # four classes, as written (surrounding blanks dropped)
    assert data.classes == ["1", "1.0", "0", "00"]


def test_empty_label_names_the_line(tmp_path):
    with pytest.raises(DataFileError, match=r"line 3: missing label"):
        read_labelled_texts(write(tmp_path, "e.tsv", "text\tlabel\ngood\tpos\nhello\t \n"))


@pytest.mark.parametrize("content, match", [
    ("", "the file is empty"),
    ("text\tlabel\n", "no examples after the header"),
    ("text\tlabel\n\n\n", "no examples after the header"),
    ("sentence\tlabel\na\tb\n", "no 'text' column"),
    ("text\tlabel\ttext\na\tb\tc\n", "line 1: column 'text' appears twice"),
])
def test_bad_files(tmp_path, content, match):
    with pytest.raises(DataFileError, match=match):
        read_labelled_texts(write(tmp_path, "bad.tsv", content))


def test_csv_stray_quote_is_an_error_with_line(tmp_path):
    path = write(tmp_path, "q.csv", 'text,label\nfine,pos\n"quoted" then more,neg\n')
    with pytest.raises(DataFileError, match=r"q\.csv, line 3: .*comma-separated, quoted"):
        read_labelled_texts(path)


def test_single_class_training_file_is_refused(tmp_path):
    path = write(tmp_path, "one.tsv", "text\tlabel\ngreat\tpos\nsuperb\tpos\n")
    assert read_labelled_texts(path).labels == ["pos", "pos"]  # fine as evaluation data
    with pytest.raises(DataFileError, match=r"one\.tsv: every example has the label 'pos' \(1 class\)"):
        read_labelled_texts(path, require_classes=2)
    check_training_labels(LabelledTexts(["a", "b"], ["x", "y"]))
    with pytest.raises(DataFileError, match="at least 3"):
        check_training_labels(LabelledTexts(["a", "b"], ["x", "y"]), min_classes=3)


def test_tab_separated_file_named_csv_says_so(tmp_path):
    with pytest.raises(DataFileError, match=r"no 'text' column .* It looks tab-separated: name the file \.tsv"):
        read_labelled_texts(write(tmp_path, "t.csv", "text\tlabel\na\tb\n"))


def test_wrong_suffix_and_missing_file(tmp_path):
    with pytest.raises(DataFileError, match="expected a .tsv or .csv"):
        read_labelled_texts(write(tmp_path, "x.txt", "text\tlabel\na\tb\n"))
    with pytest.raises(FileNotFoundError):
        read_labelled_texts(tmp_path / "missing.tsv")


def test_every_file_error_is_a_bertcourse_error_and_a_value_error(tmp_path):
    with pytest.raises(BertcourseError):
        read_labelled_texts(write(tmp_path, "v.tsv", "text\tlabel\n"))
    with pytest.raises(ValueError):
        read_labelled_texts(write(tmp_path, "v.tsv", "text\tlabel\n"))
