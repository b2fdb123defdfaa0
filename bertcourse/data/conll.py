"""CoNLL-column files for token classification (lesson 10): WNUT-17, CoNLL-2003 and their kin.

One token per line, its columns separated by a tab (WNUT-17) or by spaces (CoNLL-2003:
``EU NNP B-NP B-ORG``); a blank line (or a line of only whitespace: WNUT-17's train file has
2,394 lines holding a lone tab) ends a sentence; ``-DOCSTART-`` lines are skipped. The token is
column ``token_column`` (0), the tag column ``tag_column`` (-1, the last: the NER column of
CoNLL-2003's four). Tags are ``O`` or ``<prefix>-<TYPE>`` with prefix ``B``, ``I`` (IOB1/IOB2),
``E`` or ``S`` (IOBES).

Anything else is a :class:`bertcourse.errors.DataFileError` naming the file and the line number: a
line with another number of columns than the file's first token line, a tag that is not of that
form, a file that is not UTF-8, a file without a sentence.

The shipped WNUT-17 copy (``data/wnut17/``, CC BY 4.0, Derczynski et al. 2017) is
:func:`load_wnut17` (``"train"``, ``"dev"``, ``"test"``), verified against :data:`WNUT17_SHA256`.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.conll"
>>> _ = path.write_text("-DOCSTART- -X- -X- O\\n\\nJane NNP B-NP B-PER\\nAusten NNP I-NP I-PER\\n"
...                     "wrote VBD B-VP O\\n\\nBath NNP B-NP B-LOC\\n", encoding="utf-8")
>>> data = read_conll(path)
>>> data.sentences, data.tags[0]
([['Jane', 'Austen', 'wrote'], ['Bath']], ['B-PER', 'I-PER', 'O'])
>>> len(data), data.num_tokens, data.num_entities, data.entity_types
(2, 4, 2, ['LOC', 'PER'])
>>> read_conll(path, tag_column=2).tags[0]
['B-NP', 'I-NP', 'B-VP']
>>> entity_chunks(["B-PER", "I-PER", "O", "I-LOC"])
[('PER', 0, 2), ('LOC', 3, 4)]
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path
from typing import Sequence

from bertcourse.data.corpora import data_dir
from bertcourse.errors import DataFileError

__all__ = ["ConllData", "read_conll", "entity_chunks", "load_wnut17", "wnut17_path", "verify_wnut17",
           "WNUT17_FILES", "WNUT17_SHA256", "WNUT17_COUNTS", "TAG_PATTERN"]

TAG_PATTERN = re.compile(r"O|[BIES]-\S+")
DOCSTART = "-DOCSTART-"

# split -> file name in data/wnut17/ (the names of leondz/emerging_entities_17)
WNUT17_FILES = {"train": "wnut17train.conll", "dev": "emerging.dev.conll", "test": "emerging.test.annotated"}
WNUT17_SHA256 = {
    "wnut17train.conll": "731820e13f71af324c6b55a1575ec2ce59fbaa2a0806f8f0400b98d56cd6a7a5",
    "emerging.dev.conll": "e053b752b8155113ca66e7db08af5f2f5f43ab993694e4774f1ec5bad42312d8",
    "emerging.test.annotated": "2aa79b764e56ec9264a1b30fdd9b70195bd00ff400b62edd8f399d5f13c178f0",
}
# split -> (sentences, tokens, entities), as published (dev: 836, one more than the paper after a BIO fix)
WNUT17_COUNTS = {"train": (3394, 62730, 1975), "dev": (1009, 15733, 836), "test": (1287, 23394, 1079)}


def entity_chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """``(type, start, end)`` word spans (``end`` exclusive) of the entities in one sentence's tags,
    the CoNLL definition (``conlleval``, seqeval's default mode): an entity starts at a ``B-``/``S-``
    tag, at an ``I-``/``E-`` tag whose type differs from the previous tag's, or at an ``I-``/``E-``
    after ``O`` or after an ``E-``/``S-`` tag; it runs over the following tags of its type.

    >>> entity_chunks(["I-PER", "I-PER", "B-PER", "I-LOC", "E-LOC", "O"])
    [('PER', 0, 2), ('PER', 2, 3), ('LOC', 3, 5)]
    """
    chunks: list[tuple[str, int, int]] = []
    prev_prefix, prev_type, start = "O", "", None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, kind = tag.partition("-") if tag != "O" else ("O", "", "")
        # the chunk before ends here?
        if start is not None and (prefix in ("O", "B", "S") or kind != prev_type or prev_prefix in ("E", "S")):
            chunks.append((prev_type, start, i))
            start = None
        if prefix != "O" and start is None:
            start = i
        prev_prefix, prev_type = prefix, kind
    return chunks


@dataclasses.dataclass
class ConllData:
    """Sentences of tokens and their tags, read from a CoNLL-column file.

    ``sentences[i][j]`` is token ``j`` of sentence ``i`` and ``tags[i][j]`` its tag; ``source`` the file.
    """

    sentences: list[list[str]]
    tags: list[list[str]]
    source: str | None = None

    def __post_init__(self) -> None:
        if len(self.sentences) != len(self.tags) or any(len(s) != len(t) for s, t in zip(self.sentences, self.tags)):
            raise ValueError("sentences and tags must have the same shape (one tag per token).")

    def __len__(self) -> int:
        return len(self.sentences)

    @property
    def num_tokens(self) -> int:
        return sum(len(s) for s in self.sentences)

    @property
    def num_entities(self) -> int:
        """Entities by the CoNLL definition (:func:`entity_chunks`)."""
        return sum(len(entity_chunks(t)) for t in self.tags)

    @property
    def entity_types(self) -> list[str]:
        """The entity types of the tags, sorted (``["corporation", "creative-work", ...]``)."""
        return sorted({t.split("-", 1)[1] for tags in self.tags for t in tags if t != "O"})

    @property
    def label_list(self) -> list[str]:
        """``O`` then ``B-``/``I-`` of each type (sorted): the label order of the course's NER models."""
        return ["O"] + [f"{p}-{t}" for t in self.entity_types for p in ("B", "I")]

    def texts(self) -> list[str]:
        """Each sentence's tokens joined by one space (the text a model reads)."""
        return [" ".join(s) for s in self.sentences]

    def select(self, indices: Sequence[int]) -> "ConllData":
        """The sentences at ``indices`` (a subset for a smaller run)."""
        return ConllData([self.sentences[i] for i in indices], [self.tags[i] for i in indices], self.source)


def read_conll(path: str | os.PathLike, token_column: int = 0, tag_column: int = -1,
               delimiter: str | None = None) -> ConllData:
    """Read a CoNLL-column file strictly (see the module doc).

    ``delimiter``: ``"\\t"``, ``" "`` (runs of spaces), or ``None``: a tab if the first token line has
    one, else spaces. Columns are counted from 0 (``tag_column=-1``: the last column).
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file.") from None
    except UnicodeDecodeError as err:
        line = path.read_bytes()[:err.start].count(b"\n") + 1
        raise DataFileError(f"{path}, line {line}: not UTF-8 ({err.reason}); save the file as UTF-8.") from None
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    words: list[str] = []
    labels: list[str] = []
    columns = None
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            if words:
                sentences.append(words)
                tags.append(labels)
                words, labels = [], []
            continue
        if line.startswith(DOCSTART):
            continue
        if delimiter is None:
            delimiter = "\t" if "\t" in line else " "
        fields = line.split("\t") if delimiter == "\t" else line.split()
        if columns is None:
            columns = len(fields)
            for name, index in (("token_column", token_column), ("tag_column", tag_column)):
                if not -columns <= index < columns:
                    raise DataFileError(f"{path}, line {number}: {name}={index} but the file has {columns} "
                                        f"column(s) ({line!r:.80}).")
            if columns < 2:
                raise DataFileError(f"{path}, line {number}: one column ({line!r:.80}); a CoNLL file has a "
                                    f"token and a tag on each line, separated by "
                                    f"{'a tab' if delimiter == chr(9) else 'spaces'}.")
        if len(fields) != columns:
            raise DataFileError(f"{path}, line {number}: {len(fields)} column(s), expected {columns} as on the "
                                f"first token line ({line!r:.80}).")
        token, tag = fields[token_column], fields[tag_column].strip()
        if not token.strip():
            raise DataFileError(f"{path}, line {number}: empty token ({line!r:.80}).")
        if not TAG_PATTERN.fullmatch(tag):
            raise DataFileError(f"{path}, line {number}: tag {tag!r} is not 'O' or B-/I-/E-/S-<type> "
                                f"({line!r:.80}); is tag_column={tag_column} the tag column?")
        words.append(token)
        labels.append(tag)
    if words:
        sentences.append(words)
        tags.append(labels)
    if not sentences:
        raise DataFileError(f"{path}: no sentences (an empty file, or only -DOCSTART- lines).")
    return ConllData(sentences, tags, str(path))


def wnut17_path(split: str, directory: str | os.PathLike | None = None) -> Path:
    """The path of a WNUT-17 split (``"train"``, ``"dev"``, ``"test"``) in ``directory``
    (default: ``data/wnut17/`` of the data directory)."""
    if split not in WNUT17_FILES:
        raise ValueError(f"WNUT-17 split must be one of {sorted(WNUT17_FILES)}, got {split!r}.")
    root = Path(directory) if directory is not None else data_dir() / "wnut17"
    path = root / WNUT17_FILES[split]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the WNUT-17 copy ships in data/wnut17/ (restore it with "
                                f"git checkout data/wnut17, then run: make data).")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_wnut17(directory: str | os.PathLike | None = None) -> dict[str, str]:
    """Check the three WNUT-17 files against :data:`WNUT17_SHA256`; ``{file: sha256}`` or a
    :class:`DataFileError` naming the file that differs."""
    out = {}
    for split in WNUT17_FILES:
        path = wnut17_path(split, directory)
        digest = _sha256(path)
        if digest != WNUT17_SHA256[path.name]:
            raise DataFileError(f"{path}: sha256 {digest} differs from the published {WNUT17_SHA256[path.name]}; "
                                "restore the file with git checkout data/wnut17.")
        out[path.name] = digest
    return out


def load_wnut17(split: str, directory: str | os.PathLike | None = None) -> ConllData:
    """One WNUT-17 split as :class:`ConllData` (tags ``O`` + B-/I- of corporation, creative-work, group,
    location, person, product)."""
    return read_conll(wnut17_path(split, directory))
