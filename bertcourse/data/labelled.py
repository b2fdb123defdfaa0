"""Labelled text files for fine-tuning (lessons 08-09, ``bertcourse finetune``), read strictly.

A ``.tsv`` or ``.csv`` file with a header row: a ``text`` column, a ``label`` column and, for
sentence-pair tasks, a ``text_b`` column. Any other columns are ignored.

* TSV: tab-separated, no quoting (a quote is just a character; a text cannot hold a tab).
* CSV: Excel's dialect (comma-separated, ``"..."`` quoting, ``""`` for a quote inside).
* UTF-8, with or without a byte-order mark.
* Labels are kept as the strings written: ``1`` and ``1.0`` are two different labels.

Anything else is a :class:`bertcourse.errors.DataFileError` naming the file and the line: a row
with too many or too few fields (a tab inside a TSV text), an empty label, a file that is not
UTF-8, no rows after the header, and -- for training data -- a single class.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "train.tsv"
>>> _ = path.write_text('text\\tlabel\\nA "fine" film\\tpos\\nDull\\tneg\\n', encoding="utf-8")
>>> data = read_labelled_texts(path, require_classes=2)
>>> data.texts, data.labels, len(data)
(['A "fine" film', 'Dull'], ['pos', 'neg'], 2)
>>> _ = path.write_text("text\\tlabel\\na good\\tfilm\\tpos\\n", encoding="utf-8")
>>> read_labelled_texts(path)
Traceback (most recent call last):
...
bertcourse.errors.DataFileError: .../train.tsv, line 2: 3 fields, expected 2 (text, label). ...
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import os
from pathlib import Path

from bertcourse.errors import DataFileError

__all__ = ["LabelledTexts", "read_labelled_texts", "check_training_labels", "DIALECTS"]


class _Tsv(csv.Dialect):
    """Tab-separated, no quoting: what spreadsheet and pandas TSV exports of plain text look like."""

    delimiter = "\t"
    quoting = csv.QUOTE_NONE
    quotechar = None
    escapechar = None
    doublequote = False
    skipinitialspace = False
    lineterminator = "\n"
    strict = True


class _Csv(csv.excel):
    """Excel's CSV, strict: a stray quote is an error, not a silently merged field."""

    strict = True


DIALECTS: dict[str, type[csv.Dialect]] = {".tsv": _Tsv, ".csv": _Csv}


@dataclasses.dataclass
class LabelledTexts:
    """Texts (and optional second texts) with their labels, as written in the file."""

    texts: list[str]
    labels: list[str]
    texts_b: list[str] | None = None
    source: str | None = None  # the file it was read from, for error messages

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def classes(self) -> list[str]:
        """The distinct labels, in order of first appearance."""
        return list(dict.fromkeys(self.labels))


def read_labelled_texts(path: str | os.PathLike, text_column: str = "text", label_column: str = "label",
                        text_b_column: str = "text_b", require_classes: int | None = None,
                        require_labels: bool = True) -> LabelledTexts:
    """Read a ``.tsv``/``.csv`` file with a header (see the module doc for the rules).

    Args:
        path: the file; its suffix (``.tsv`` or ``.csv``) declares the dialect.
        text_column, label_column: required columns.
        text_b_column: read as ``texts_b`` when the header has it (sentence pairs).
        require_classes: refuse a file with fewer distinct labels (``2`` for training data: a
            one-class file would train a model that is "100% accurate" at nothing).
        require_labels: ``False``: a file without the label column is read too (texts to predict);
            its ``labels`` are then ``[]``.

    Raises:
        FileNotFoundError: no such file.
        DataFileError: anything wrong in the file, with its name and line number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    dialect = DIALECTS.get(path.suffix.lower())
    if dialect is None:
        raise DataFileError(f"{path}: expected a .tsv or .csv file, got {path.suffix or 'no extension'!r}.")
    text = _decode(path)
    reader = csv.reader(io.StringIO(text, newline=""), dialect=dialect)
    try:
        header = next(reader, None)
        if header is None:
            raise DataFileError(f"{path}: the file is empty; expected a header row ({text_column}, {label_column}) "
                                "and one example per row.")
        header = [name.strip() for name in header]
        duplicates = [name for name, count in collections.Counter(header).items() if count > 1]
        if duplicates:
            raise DataFileError(f"{path}, line 1: column {duplicates[0]!r} appears twice in the header.")
        has_labels = require_labels or label_column in header
        for needed in (text_column, label_column) if has_labels else (text_column,):
            if needed not in header:
                hint = ""
                if len(header) == 1 and ("\t" in header[0] or "," in header[0]):  # the other dialect's file
                    kind, suffix = ("tab", ".tsv") if "\t" in header[0] else ("comma", ".csv")
                    hint = f" It looks {kind}-separated: name the file {suffix}."
                raise DataFileError(f"{path}: no {needed!r} column in the header (columns: {header}).{hint}")
        i_text, i_label = header.index(text_column), header.index(label_column) if has_labels else None
        i_b = header.index(text_b_column) if text_b_column in header else None
        texts, labels, texts_b = [], [], []
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            if len(row) != len(header):
                hint = (" A tab inside a text? TSV texts cannot hold tabs: remove them, or write a quoted CSV."
                        if dialect is _Tsv and len(row) > len(header) else "")
                raise DataFileError(f"{path}, line {reader.line_num}: {len(row)} fields, expected {len(header)} "
                                    f"({', '.join(header)}).{hint}")
            if i_label is not None:
                label = row[i_label].strip()
                if not label:
                    raise DataFileError(f"{path}, line {reader.line_num}: missing label (the {label_column!r} "
                                        "column is empty).")
                labels.append(label)
            texts.append(row[i_text])
            if i_b is not None:
                texts_b.append(row[i_b])
    except csv.Error as err:
        expected = "TSV: tab-separated, no quoting" if dialect is _Tsv else "CSV: comma-separated, quoted"
        raise DataFileError(f"{path}, line {reader.line_num}: {err} (expected {expected}).") from err
    if not texts:
        raise DataFileError(f"{path}: no examples after the header.")
    data = LabelledTexts(texts, labels, texts_b if i_b is not None else None, source=str(path))
    if require_classes:
        check_training_labels(data, require_classes)
    return data


def check_training_labels(data: LabelledTexts, min_classes: int = 2) -> None:
    """Refuse training data with fewer than ``min_classes`` distinct labels (DataFileError).

    >>> check_training_labels(LabelledTexts(["good", "great"], ["pos", "pos"], source="train.tsv"))
    Traceback (most recent call last):
    ...
    bertcourse.errors.DataFileError: train.tsv: every example has the label 'pos' (1 class); a classifier needs ...
    """
    classes = data.classes
    if len(classes) < min_classes:
        shown = f"the label {classes[0]!r}" if len(classes) == 1 else f"the labels {classes}"
        raise DataFileError(f"{data.source or 'training data'}: every example has {shown} ({len(classes)} "
                            f"class{'es' if len(classes) != 1 else ''}); a classifier needs at least {min_classes}.")


def _decode(path: Path) -> str:
    """The file as text: UTF-8 (a byte-order mark is dropped); anything else names the line to fix."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        offset = err.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, offset) + 1
        try:
            raw.decode("cp1252")
            guess = "it looks like latin-1/cp1252"
        except UnicodeDecodeError:
            guess = "its encoding is unknown"
        raise DataFileError(f"{path}, line {line}: byte 0x{raw[offset]:02x} is not UTF-8; try re-saving as UTF-8 "
                            f"({guess}).") from None
