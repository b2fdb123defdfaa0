"""The package's own error types: what the CLI turns into one clear line (exit status 2).

Every error a user can cause (a bad file, a run directory of the wrong kind, ids out of range)
is one of these, so a front end can catch them without catching programming errors. Each also
derives from the builtin a Python user would expect (``ValueError``, ``FileNotFoundError``...).

>>> try:
...     raise DataFileError("train.tsv, line 3: 4 columns, expected 2 (text, label).")
... except BertcourseError as err:
...     print(err)
train.tsv, line 3: 4 columns, expected 2 (text, label).
>>> issubclass(DataFileError, ValueError)
True
"""

from __future__ import annotations

__all__ = ["BertcourseError", "DataFileError", "RunDirectoryError", "CheckpointError", "ModelInputError",
           "ModelLoadError"]


class BertcourseError(Exception):
    """Base class of every error a user can cause; the message says what is wrong and what to do."""


class DataFileError(BertcourseError, ValueError):
    """An input file (labelled texts, vocabulary, corpus) is malformed: the message names file and line."""


class RunDirectoryError(BertcourseError, ValueError):
    """A run directory is of another kind, already finished, or has nothing to resume."""


class CheckpointError(BertcourseError, ValueError):
    """A checkpoint or weights file is missing, truncated, corrupt or belongs to another model."""


class ModelLoadError(BertcourseError, ValueError):
    """A model directory (ours or Hugging Face's) cannot be loaded: what is missing or wrong in it."""


class ModelInputError(BertcourseError, ValueError):
    """Model inputs out of range: token ids outside the vocabulary, segment ids outside the type table."""
