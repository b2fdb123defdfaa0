"""Export a fine-tuned task as a SavedModel that takes raw strings (lesson 14; ``bertcourse export``).

The tokenizer and the packing run inside the graph (:class:`~bertcourse.text.BertPreprocessor`, on
``tensorflow_text`` ops), so a client sends text and gets the task's outputs back; nothing of
``bertcourse`` is needed to load it, only ``tensorflow`` and ``tensorflow_text`` (whose ops the graph
uses: ``import tensorflow_text`` registers them)::

    import tensorflow as tf, tensorflow_text  # noqa: F401  (registers the tokenizer's ops)
    model = tf.saved_model.load("export/sentiment")
    out = model.signatures["serving_default"](text=tf.constant(["a fine film"]))
    out["label"], out["probabilities"]

The serving signature (``serving_default``) follows the task (:data:`bertcourse.tasks.RUN_TASKS`); every
input is a ``[batch]`` ``tf.string`` and every output has the batch first (a server can cut a batch of
requests apart):

* **classification** (:class:`~bertcourse.tasks.BertClassifier`): input ``text`` (and ``text_pair`` for a
  sentence-pair model); outputs ``logits`` ``[batch, classes]`` float32, ``probabilities`` (softmax;
  sigmoid for a single output, as Hugging Face's pipeline), ``label_id`` ``[batch]`` int32 and ``label``
  ``[batch]`` string (the class name).
* **token-classification** (:class:`~bertcourse.tasks.BertTokenClassifier`, ``pipeline("ner")``): input
  ``text``; outputs per WordPiece, ``[batch, pieces]`` padded to the batch's longest text: ``entity``
  (the label, ``""`` on padding), ``label_id`` (int32, -1 on padding), ``score`` (its softmax probability),
  ``start``/``end`` (int32 CHARACTER offsets into the text: ``text[start:end]`` is the piece), ``word``
  (the vocabulary piece, ``##ma``; an ``[UNK]`` shows the text it covers), ``is_subword`` (Hugging Face's
  rule, for word-level aggregation by the client), ``mask`` (a real piece); and ``num_pieces`` ``[batch]``.
  The pieces not labelled ``O`` are ``pipeline("ner", aggregation_strategy="none")``'s entities, with
  ``index`` = piece position + 1. Texts of any length: a text longer than the window
  (``sequence_length - 2`` pieces) is cut in the graph into windows sharing ``stride`` pieces, and each
  piece keeps the logits of the window where it has the most context, as the Python pipeline does.
* **question-answering** (:class:`~bertcourse.tasks.BertQuestionAnswerer`): inputs ``question`` and
  ``context``; outputs ``[batch]``: ``answer`` (string), ``start``/``end`` (int32 character offsets in the
  context, ``context[start:end] == answer``), ``score`` (``p_start * p_end``, summed over candidates with
  the same text), ``null_score`` (``p_start([CLS]) * p_end([CLS])``, the minimum over the windows: compare
  it with ``score`` for "no answer") and ``num_windows``. All in the graph, as the Python pipeline
  (``top_k=1``, ``handle_impossible_answer=False``): the question cut to ``max_query_length`` tokens, the
  context in windows sharing ``doc_stride`` tokens, logits outside the context set to -10000 and a
  softmax per window, spans ``s <= e < s + max_answer_len`` (the model's setting unless given at export),
  the best ``2 + 10`` per window widened to whole words, equal texts (case-insensitive) added up. A
  context with no token gets the empty answer with score 0 (the Python pipeline refuses it); a question
  too long to leave more than ``doc_stride`` context tokens in a window is an ``InvalidArgumentError``
  that says so (the Python pipeline's ``ModelInputError``).

String outputs (``label``, ``entity``, ``word``, ``answer``) are UTF-8 bytes: decode them as UTF-8
(``b.decode("utf-8")``; NumPy's ``astype(str)`` decodes ASCII only and fails on "café").

Inside the graph each batch is cut to its longest row (or window) rounded up to a multiple of 8 before
the encoder runs (as the Python pipeline's :func:`~bertcourse.tasks.base.trim_padding`): a batch of short
texts does not pay for ``sequence_length`` positions.

Assets (``assets/`` of the SavedModel, referenced by the graph, so they move with it):
``vocab.txt`` (the WordPiece vocabulary, one token per line, line number = id) and ``serving.json``
(task, input and output names, each output's shape and meaning under ``output_shapes``, labels, sequence
length, windows, lower-casing: what a server or client needs).

>>> import json, tempfile
>>> from bertcourse.models import BertBackbone
>>> from bertcourse.tasks import BertClassifier
>>> from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer
>>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
>>> pre = BertPreprocessor(FastWordPieceTokenizer(vocab), sequence_length=8)
>>> clf = BertClassifier(BertBackbone("tiny", vocab_size=len(vocab)), 2, preprocessor=pre, labels=["neg", "pos"])
>>> out = export_task(clf, tempfile.mkdtemp() + "/clf")
>>> json.loads((out / "assets" / "serving.json").read_text())["inputs"]
['text']
>>> served = tf.saved_model.load(str(out)).signatures["serving_default"](text=tf.constant(["good film"]))
>>> sorted(served), served["label"].shape
(['label', 'label_id', 'logits', 'probabilities'], TensorShape([1]))
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import tensorflow as tf

from bertcourse.errors import ModelInputError, RunDirectoryError
from bertcourse.tasks.base import Task
from bertcourse.tasks.classification import BertClassifier
from bertcourse.tasks.question_answering import NULL_LOGIT, BertQuestionAnswerer
from bertcourse.tasks.token_classification import BertTokenClassifier
from bertcourse.training.run import RunDirectory

__all__ = ["export_task", "read_serving_metadata", "load_task_model", "SERVING_METADATA", "VOCAB_ASSET",
           "PAD_TO_MULTIPLE_OF", "SUPPORTED", "CLASSIFIER_OUTPUTS", "TOKEN_OUTPUTS", "QA_OUTPUTS"]

SERVING_METADATA = "serving.json"
VOCAB_ASSET = "vocab.txt"
PAD_TO_MULTIPLE_OF = 8
FORMAT_VERSION = 1


def load_task_model(model_or_run_dir: Any) -> tuple[Task, dict]:
    """``(task model, the run's task.json settings)`` from a task model (settings ``{}``) or a fine-tuning
    run directory; one line (``RunDirectoryError``) for a folder that holds no fine-tuned task."""
    if isinstance(model_or_run_dir, Task):
        return model_or_run_dir, {}
    if not isinstance(model_or_run_dir, (str, os.PathLike)):
        raise TypeError(f"export_task takes a task model (e.g. BertClassifier) or a run directory, got "
                        f"{type(model_or_run_dir).__name__}.")
    run = RunDirectory(model_or_run_dir)
    if not run.path.is_dir():
        raise RunDirectoryError(f"{run.path} is not a directory: give a fine-tuning run (`bertcourse finetune "
                                f"--out ...`) or pass the model itself.")
    if not run.exists:
        raise RunDirectoryError(f"{run.path} holds no run (no run.json): give a `bertcourse finetune` output.")
    if run.kind == "pretraining":
        raise RunDirectoryError(f"{run.path} is a pretraining run: fine-tune a task on it first "
                                f"(`bertcourse finetune --init {run.path} ...`), then export that run.")
    model = run.load_task()
    return model, dict(run.read_json("task_config", {}) or {})


def _trim(inputs: dict[str, tf.Tensor], multiple: int) -> dict[str, tf.Tensor]:
    """Graph twin of ``tasks.base.trim_padding``: columns past the longest row (rounded up) are cut."""
    mask = tf.cast(inputs["padding_mask"], tf.int32)
    width = tf.shape(mask)[1]
    longest = tf.maximum(tf.reduce_max(tf.reduce_sum(mask, axis=1)), 1)  # empty batch: 1
    keep = tf.minimum(width, (longest + multiple - 1) // multiple * multiple)
    return {"token_ids": tf.cast(inputs["token_ids"], tf.int32)[:, :keep],
            "segment_ids": tf.cast(inputs["segment_ids"], tf.int32)[:, :keep],
            "padding_mask": mask[:, :keep]}


def _classifier_outputs(model: BertClassifier, encoded: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    logits = tf.cast(model(encoded, training=False), tf.float32)
    function = model.default_function()
    if function == "softmax":
        probabilities = tf.nn.softmax(logits, axis=-1)
    elif function == "sigmoid":
        probabilities = tf.sigmoid(logits)
    else:
        probabilities = tf.identity(logits)
    if model.num_classes == 1:  # one sigmoid output: class 1 when p > 0.5 (names as in postprocess)
        label_id = tf.zeros(tf.shape(logits)[:1], tf.int32)
    else:
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    names = tf.constant(model.class_names)
    return {"logits": logits, "probabilities": probabilities, "label_id": label_id,
            "label": tf.gather(names, label_id)}


class _ServingModule(tf.Module):
    """What is saved: the task model, its preprocessor and the assets; one serving function."""

    def __init__(self, model: Task, pairs: bool, assets: dict[str, Path], multiple: int):
        super().__init__(name="bertcourse_serving")
        self.model = model
        self.preprocessor = model.preprocessor
        self.assets = {name: tf.saved_model.Asset(str(path)) for name, path in assets.items()}
        self.multiple = multiple
        text = tf.TensorSpec([None], tf.string, name="text")
        if pairs:
            pair = tf.TensorSpec([None], tf.string, name="text_pair")
            self.serve = tf.function(self._serve_pairs, input_signature=[text, pair])
        else:
            self.serve = tf.function(self._serve, input_signature=[text])

    def _run(self, segments) -> dict[str, tf.Tensor]:
        encoded = _trim(self.preprocessor(segments), self.multiple)
        return _classifier_outputs(self.model, encoded)

    def _serve(self, text):
        return self._run(text)

    def _serve_pairs(self, text, text_pair):
        return self._run((text, text_pair))


# ----------------------------------------------------------------------------- graph helpers
def _round_up_width(longest: tf.Tensor, multiple: int, cap: int) -> tf.Tensor:
    """``min(cap, longest rounded up to multiple)``, at least ``multiple`` wide (an empty batch)."""
    longest = tf.maximum(longest, 1)
    return tf.minimum(tf.cast(cap, longest.dtype), (longest + multiple - 1) // multiple * multiple)


def _windows(lengths: tf.Tensor, room: tf.Tensor, stride: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Graph twin of :func:`bertcourse.text.windows.window_spans` for a batch: per text ``lengths[i]``
    tokens, windows of ``room[i]`` tokens sharing ``stride[i]``. Returns, per window (text-major, in
    order), ``(text index, start, end)``, int64."""
    step = room - stride
    count = tf.where(lengths > room, (lengths - room + step - 1) // step + 1, tf.ones_like(lengths))
    text_of = tf.repeat(tf.range(tf.size(lengths, out_type=tf.int64)), count)
    number = tf.ragged.range(count).flat_values
    start = number * tf.gather(step, text_of)
    end = tf.minimum(start + tf.gather(room, text_of), tf.gather(lengths, text_of))
    return text_of, start, end


def _dense(ragged: tf.RaggedTensor, default) -> tf.Tensor:
    return ragged.to_tensor(default_value=default)


class _TokenServingModule(tf.Module):
    """Token classification: one text in, a label per WordPiece out (windows over long texts in graph)."""

    def __init__(self, model: BertTokenClassifier, assets: dict[str, Path], multiple: int, stride: int):
        super().__init__(name="bertcourse_token_serving")
        self.model = model
        self.preprocessor = model.preprocessor
        self.assets = {name: tf.saved_model.Asset(str(path)) for name, path in assets.items()}
        self.multiple = multiple
        pre = model.preprocessor
        self.window = pre.sequence_length - 2
        self.stride = stride
        self.cls_id, self.sep_id, self.pad_id, self.unk_id = pre.cls_id, pre.sep_id, pre.pad_id, pre.unk_id
        self.vocab = tf.constant(pre.tokenizer.get_vocabulary())
        self.labels = tf.constant(model.label_names)
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec([None], tf.string, name="text")])

    def _serve(self, text):
        tokenizer = self.preprocessor.tokenizer
        ids, starts, ends = tokenizer.tokenize_with_offsets(text)       # character offsets
        n = ids.row_lengths()                                           # int64 [batch]
        row_start = ids.row_starts()
        flat_ids = tf.cast(ids.flat_values, tf.int32)
        window = tf.fill(tf.shape(n), tf.constant(self.window, tf.int64))
        text_of, a, b = _windows(n, window, tf.fill(tf.shape(n), tf.constant(self.stride, tf.int64)))
        size = b - a
        positions = tf.ragged.range(a, b) + tf.expand_dims(tf.gather(row_start, text_of), 1)
        pieces = tf.gather(flat_ids, positions)
        k = tf.shape(size, out_type=tf.int64)[0]
        cls = tf.fill(tf.stack([k, 1]), self.cls_id)
        sep = tf.fill(tf.stack([k, 1]), self.sep_id)
        rows = tf.concat([cls, pieces, sep], axis=1)
        width = _round_up_width(tf.reduce_max(tf.concat([size, [0]], 0)) + 2, self.multiple,
                                self.window + 2)
        token_ids = rows.to_tensor(default_value=self.pad_id, shape=tf.stack([k, width]))
        mask = tf.sequence_mask(size + 2, width, dtype=tf.int32)
        logits = tf.cast(self.model({"token_ids": token_ids, "segment_ids": tf.zeros_like(token_ids),
                                     "padding_mask": mask}, training=False), tf.float32)
        # every (window, piece) entry; each piece keeps the window where it has the most context
        entry_window = tf.ragged.range(size).value_rowids()
        offset = tf.ragged.range(size).flat_values
        entry_logits = tf.gather_nd(logits, tf.stack([entry_window, offset + 1], axis=1))
        length = tf.gather(size, entry_window)
        context = tf.cast(tf.minimum(offset, length - 1 - offset), tf.float64) + 0.01 * tf.cast(length, tf.float64)
        piece = tf.gather(row_start, tf.gather(text_of, entry_window)) + tf.gather(a, entry_window) + offset
        total = tf.size(flat_ids, out_type=tf.int64)
        best = tf.math.unsorted_segment_max(context, piece, total)
        entry = tf.range(tf.size(offset, out_type=tf.int64))
        chosen = tf.math.unsorted_segment_min(tf.where(context == tf.gather(best, piece), entry,
                                                       tf.size(offset, out_type=tf.int64)), piece, total)
        probabilities = tf.nn.softmax(tf.gather(entry_logits, chosen), axis=-1)
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        score = tf.reduce_max(probabilities, axis=-1)
        # Hugging Face's "word" of a piece: its vocabulary string; an [UNK] shows the text it covers
        flat_start, flat_end = starts.flat_values, ends.flat_values
        covered = tf.strings.substr(tf.gather(text, ids.value_rowids()), flat_start, flat_end - flat_start,
                                    unit="UTF8_CHAR")
        token = tf.gather(self.vocab, flat_ids)
        unknown = tf.equal(flat_ids, self.unk_id)
        word = tf.where(unknown, covered, token)
        is_subword = tf.logical_and(tf.logical_not(unknown), tf.not_equal(
            tf.cast(tf.strings.length(token, unit="UTF8_CHAR"), tf.int64), flat_end - flat_start))

        def dense(values, default):
            return _dense(tf.RaggedTensor.from_row_lengths(values, n), default)

        return {"entity": dense(tf.gather(self.labels, label_id), ""),
                "label_id": dense(label_id, -1),
                "score": dense(score, 0.0),
                "start": dense(tf.cast(flat_start, tf.int32), 0),
                "end": dense(tf.cast(flat_end, tf.int32), 0),
                "word": dense(word, ""),
                "is_subword": dense(is_subword, False),
                "mask": dense(tf.ones_like(label_id, tf.bool), False),
                "num_pieces": tf.cast(n, tf.int32)}


class _QAServingModule(tf.Module):
    """Extractive QA: question + context in, the best answer span out (windows and decoding in graph)."""

    def __init__(self, model: BertQuestionAnswerer, assets: dict[str, Path], multiple: int,
                 max_answer_len: int, candidates: int):
        super().__init__(name="bertcourse_qa_serving")
        self.model = model
        self.preprocessor = model.preprocessor
        self.assets = {name: tf.saved_model.Asset(str(path)) for name, path in assets.items()}
        self.multiple = multiple
        pre = model.preprocessor
        self.length = pre.sequence_length
        self.doc_stride = model.doc_stride
        self.max_query_length = model.max_query_length
        self.max_answer_len = max_answer_len
        self.candidates = candidates
        self.cls_id, self.sep_id, self.pad_id = pre.cls_id, pre.sep_id, pre.pad_id
        prefix = getattr(pre.tokenizer, "suffix_indicator", "##")
        self.is_suffix = tf.constant([t.startswith(prefix) for t in pre.tokenizer.get_vocabulary()])
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec([None], tf.string, name="question"),
                                                               tf.TensorSpec([None], tf.string, name="context")])

    def _serve(self, question, context):
        tf.debugging.assert_equal(tf.size(question), tf.size(context),
                                  message="question and context must be batches of the same size")
        batch = tf.size(question, out_type=tf.int64)
        ids, starts, ends = self.preprocessor.tokenizer.tokenize_with_offsets(tf.concat([question, context], 0))
        q_ids, c_ids = ids[:batch], ids[batch:]
        c_start, c_end = starts[batch:].flat_values, ends[batch:].flat_values
        q_ids = q_ids[:, :self.max_query_length]
        q_len, n = q_ids.row_lengths(), c_ids.row_lengths()
        c_row = c_ids.row_starts()
        flat_c = tf.cast(c_ids.flat_values, tf.int32)
        room = self.length - q_len - 3
        tf.debugging.assert_greater(room, tf.cast(self.doc_stride, tf.int64), message=(
            f"a question is too long: a window of {self.length} tokens must hold [CLS] question [SEP] and more "
            f"than doc_stride={self.doc_stride} context tokens [SEP] (questions are cut to "
            f"{self.max_query_length} tokens)"))
        text_of, a, b = _windows(n, room, tf.fill(tf.shape(n), tf.constant(self.doc_stride, tf.int64)))
        size = b - a
        k = tf.shape(size, out_type=tf.int64)[0]
        context_ids = tf.gather(flat_c, tf.ragged.range(a, b) + tf.expand_dims(tf.gather(c_row, text_of), 1))
        question_ids = tf.gather(tf.cast(q_ids, tf.int32), text_of)
        cls = tf.fill(tf.stack([k, 1]), self.cls_id)
        sep = tf.fill(tf.stack([k, 1]), self.sep_id)
        rows = tf.concat([cls, question_ids, sep, context_ids, sep], axis=1)
        segments = tf.concat([tf.zeros_like(cls), tf.zeros_like(question_ids), tf.zeros_like(sep),
                              tf.ones_like(context_ids), tf.ones_like(sep)], axis=1)
        row_len = rows.row_lengths()
        width = _round_up_width(tf.reduce_max(tf.concat([row_len, [0]], 0)), self.multiple, self.length)
        shape = tf.stack([k, width])
        out = self.model({"token_ids": rows.to_tensor(self.pad_id, shape=shape),
                          "segment_ids": segments.to_tensor(0, shape=shape),
                          "padding_mask": tf.sequence_mask(row_len, width, dtype=tf.int32)}, training=False)
        # scores per window: logits outside [CLS] + the context -> -10000, softmax (Hugging Face's rule)
        c0 = tf.gather(q_len, text_of) + 2                              # first context position
        position = tf.range(width, dtype=tf.int64)[tf.newaxis, :]
        in_context = (position >= c0[:, tf.newaxis]) & (position < (c0 + size)[:, tf.newaxis])
        desired = in_context | tf.equal(position, 0)
        p_start = tf.nn.softmax(tf.where(desired, tf.cast(out["start_logits"], tf.float32), NULL_LOGIT), -1)
        p_end = tf.nn.softmax(tf.where(desired, tf.cast(out["end_logits"], tf.float32), NULL_LOGIT), -1)
        null = tf.math.unsorted_segment_min(p_start[:, 0] * p_end[:, 0], text_of, batch)
        # spans s <= e < s + max_answer_len inside the context; the best few per window
        outer = p_start[:, :, tf.newaxis] * p_end[:, tf.newaxis, :]
        span = tf.range(width)[tf.newaxis, :] - tf.range(width)[:, tf.newaxis]   # [s, e] -> e - s
        band = ((span >= 0) & (span < self.max_answer_len))[tf.newaxis] \
            & in_context[:, :, tf.newaxis] & in_context[:, tf.newaxis, :]
        flat = tf.reshape(tf.where(band, outer, -1.0), tf.stack([k, width * width]))
        values, index = tf.math.top_k(flat, tf.minimum(tf.cast(self.candidates, tf.int32),
                                                       tf.cast(width * width, tf.int32)))
        keep = values >= 0.0
        cand_window = tf.boolean_mask(tf.broadcast_to(tf.range(k)[:, tf.newaxis], tf.shape(index, tf.int64)), keep)
        cand_score = tf.boolean_mask(values, keep)
        index = tf.cast(tf.boolean_mask(index, keep), tf.int64)
        window_a = tf.gather(a, cand_window)
        base = tf.gather(c_row, tf.gather(text_of, cand_window)) - tf.gather(c0, cand_window) + window_a
        first, last = index // width + base, index % width + base   # flat context token indices
        # whole words, inside the window: a word is a token and the ## pieces glued to it
        glued = tf.gather(self.is_suffix, flat_c) & tf.equal(c_start, tf.concat([[-1], c_end[:-1]], 0))
        word_start = tf.logical_not(glued) | tf.equal(tf.range(tf.size(flat_c, out_type=tf.int64)),
                                                      tf.gather(c_row, c_ids.value_rowids()))
        word = tf.cumsum(tf.cast(word_start, tf.int64)) - 1
        token = tf.range(tf.size(flat_c, out_type=tf.int64))
        words = tf.reduce_max(tf.concat([word, [-1]], 0)) + 1
        word_first = tf.math.unsorted_segment_min(token, word, words)
        word_last = tf.math.unsorted_segment_max(token, word, words)
        window_start = tf.gather(c_row, tf.gather(text_of, cand_window)) + window_a
        window_last = window_start + tf.gather(size, cand_window) - 1
        first = tf.maximum(window_start, tf.gather(word_first, tf.gather(word, first)))
        last = tf.minimum(window_last, tf.gather(word_last, tf.gather(word, last)))
        char_start, char_end = tf.gather(c_start, first), tf.gather(c_end, last)
        example = tf.gather(text_of, cand_window)
        answer = tf.strings.substr(tf.gather(context, example), char_start, char_end - char_start, unit="UTF8_CHAR")
        # the same text (case-insensitive) from several candidates adds up their scores
        key = tf.strings.join([tf.strings.as_string(example), tf.strings.lower(answer, encoding="utf-8")], "\x00")
        group = tf.unique(key).idx
        totals = tf.math.unsorted_segment_sum(tf.cast(cand_score, tf.float64), group, tf.reduce_max(
            tf.concat([group, [-1]], 0)) + 1)
        cand_total = tf.gather(totals, group)
        best = tf.math.unsorted_segment_max(cand_total, example, batch)
        count = tf.size(example, out_type=tf.int64)
        pick = tf.math.unsorted_segment_min(tf.where(cand_total == tf.gather(best, example),
                                                     tf.range(count), count), example, batch)
        pick = tf.minimum(pick, count)                                  # no candidate -> the empty answer
        return {"answer": tf.gather(tf.concat([answer, [""]], 0), pick),
                "start": tf.cast(tf.gather(tf.concat([char_start, [0]], 0), pick), tf.int32),
                "end": tf.cast(tf.gather(tf.concat([char_end, [0]], 0), pick), tf.int32),
                "score": tf.cast(tf.gather(tf.concat([cand_total, [0.0]], 0), pick), tf.float32),
                "null_score": null,
                "num_windows": tf.cast(tf.math.bincount(tf.cast(text_of, tf.int32), minlength=tf.cast(batch, tf.int32),
                                                         maxlength=tf.cast(batch, tf.int32)),
                                       tf.int32)}


def _own_version() -> str:
    try:
        return version("bertcourse")
    except Exception:  # running from a source tree that is not installed
        return "unknown"


SUPPORTED = {BertClassifier: "classification", BertTokenClassifier: "token-classification",
             BertQuestionAnswerer: "question-answering"}
CLASSIFIER_OUTPUTS = ["logits", "probabilities", "label_id", "label"]
TOKEN_OUTPUTS = ["entity", "label_id", "score", "start", "end", "word", "is_subword", "mask", "num_pieces"]
QA_OUTPUTS = ["answer", "start", "end", "score", "null_score", "num_windows"]
OUTPUT_DOC = {
    "classification": {"logits": "[batch, classes] float32", "probabilities": "[batch, classes] float32",
                       "label_id": "[batch] int32", "label": "[batch] string"},
    "token-classification": {
        "entity": "[batch, pieces] string: the label of each WordPiece ('' on padding)",
        "label_id": "[batch, pieces] int32 (-1 on padding)",
        "score": "[batch, pieces] float32: the label's softmax probability",
        "start": "[batch, pieces] int32: character offset of the piece in the text",
        "end": "[batch, pieces] int32: character end (exclusive); text[start:end] is the piece",
        "word": "[batch, pieces] string: the vocabulary piece ('##ma'); an [UNK] piece shows the text it covers",
        "is_subword": "[batch, pieces] bool: Hugging Face's rule (word's length != the covered text's)",
        "mask": "[batch, pieces] bool: a real piece (rows are padded to the batch's longest)",
        "num_pieces": "[batch] int32"},
    "question-answering": {
        "answer": "[batch] string: the best span, whole words, an exact substring of the context",
        "start": "[batch] int32: character offset of the answer in the context",
        "end": "[batch] int32: character end (exclusive); context[start:end] == answer",
        "score": "[batch] float32: p_start * p_end, summed over candidates with the same text",
        "null_score": "[batch] float32: p_start([CLS]) * p_end([CLS]), its minimum over the windows",
        "num_windows": "[batch] int32: windows the context was cut into"},
}


def _task_of(model: Task) -> str:
    for cls, name in SUPPORTED.items():
        if isinstance(model, cls):
            return name
    raise ModelInputError(f"Export supports {', '.join(SUPPORTED.values())} models; got a "
                          f"{type(model).__name__} (fine-tune one of those tasks, then export the run).")


def _metadata(model: Task, task: str, pairs: bool, settings: dict, extra: dict) -> dict[str, Any]:
    pre = model.preprocessor
    if task == "classification":
        inputs, outputs = (["text", "text_pair"] if pairs else ["text"]), CLASSIFIER_OUTPUTS
        specific = {"labels": model.class_names, "function_to_apply": model.default_function(),
                    "truncation": pre.truncation}
    elif task == "token-classification":
        inputs, outputs = ["text"], TOKEN_OUTPUTS
        specific = {"labels": model.label_names, "aggregation_strategy": "none", "window": pre.sequence_length - 2,
                    "truncation": None, **extra}
    else:
        inputs, outputs = ["question", "context"], QA_OUTPUTS
        specific = {"doc_stride": model.doc_stride, "max_query_length": model.max_query_length,
                    "top_k": 1, "handle_impossible_answer": False, "truncation": None, **extra}
    return {"format_version": FORMAT_VERSION, "task": task, "signature": "serving_default",
            "inputs": inputs, "outputs": outputs, "output_shapes": OUTPUT_DOC[task], **specific,
            "sequence_length": pre.sequence_length, "dtype": model.backbone.dtype_policy.name,
            "lowercase": pre.tokenizer.lowercase,
            "vocab_size": pre.tokenizer.vocabulary_size(), "num_parameters": int(model.count_params()),
            "pad_to_multiple_of": PAD_TO_MULTIPLE_OF,
            "tensorflow": tf.__version__, "tensorflow_text": version("tensorflow-text"),
            "bertcourse": _own_version(), "run_settings": settings}


def export_task(model_or_run_dir: Any, out_dir: str | os.PathLike, pairs: bool | None = None,
                overwrite: bool = False, stride: int | None = None, max_answer_len: int | None = None,
                dtype: str | None = None) -> Path:
    """Write ``model_or_run_dir`` (a task model with a preprocessor, or a fine-tuning run directory) to
    ``out_dir`` as a SavedModel that takes raw strings (see the module doc for the signatures).

    The task follows the model: a :class:`~bertcourse.tasks.BertClassifier`, a
    :class:`~bertcourse.tasks.BertTokenClassifier` or a :class:`~bertcourse.tasks.BertQuestionAnswerer`
    (any other model, e.g. a pretraining run, is refused with a message saying what can be exported).
    ``pairs`` (classification): a sentence-pair model (inputs ``text`` and ``text_pair``); ``None`` reads
    it from the run's ``task.json`` (``False`` for a model passed in). ``stride`` (token classification):
    pieces shared by consecutive windows of a long text (default: a quarter of the window, as
    ``pipeline("ner")``). ``max_answer_len`` (question answering): the longest answer in tokens (default:
    the model's setting, the one its run was evaluated with). ``dtype``: serve the weights under another
    Keras dtype policy (:meth:`~bertcourse.tasks.Task.with_dtype`; e.g. ``"bfloat16"`` on a CPU that
    computes it natively: half the file, cheaper tokens; labels may differ from float32's on the closest
    calls). ``overwrite``: replace an existing export.
    The SavedModel is written to a temporary folder next to ``out_dir`` and renamed into place, so a
    crash never leaves half an export. Returns ``Path(out_dir)``.
    """
    model, settings = load_task_model(model_or_run_dir)
    task = _task_of(model)
    model._require_preprocessor()
    if dtype is not None and dtype != model.backbone.dtype_policy.name:  # the task's own policy stays float32
        model = model.with_dtype(dtype)
    if task != "classification" and pairs:
        raise ModelInputError(f"pairs=True is for sentence-pair classifiers; a {task} model has its own inputs.")
    if task != "token-classification" and stride is not None:
        raise ModelInputError(f"stride is for token classification; this is a {task} model.")
    if task != "question-answering" and max_answer_len is not None:
        raise ModelInputError(f"max_answer_len is for question answering; this is a {task} model.")
    if pairs is None:
        pairs = bool(settings.get("pairs", False)) if task == "classification" else False
    out = Path(out_dir)
    if out.exists() and not (overwrite and (out / "saved_model.pb").is_file()):
        what = "an export" if (out / "saved_model.pb").is_file() else "something else"
        hint = " (pass overwrite=True / --overwrite to replace it)" if what == "an export" else ""
        raise RunDirectoryError(f"{out} already exists and holds {what}{hint}; choose another output folder.")
    extra: dict[str, Any] = {}
    if task == "token-classification":
        window = model.preprocessor.sequence_length - 2
        stride = window // 4 if stride is None else stride
        if isinstance(stride, bool) or not isinstance(stride, int) or not 0 <= stride < window:
            raise ModelInputError(f"stride must be an int in [0, {window}) (the window holds {window} pieces), "
                                  f"got {stride!r}.")
        extra = {"stride": stride}
    elif task == "question-answering":
        max_answer_len = model.max_answer_len if max_answer_len is None else max_answer_len
        if isinstance(max_answer_len, bool) or not isinstance(max_answer_len, int) or max_answer_len < 1:
            raise ModelInputError(f"max_answer_len must be an int >= 1, got {max_answer_len!r}.")
        extra = {"max_answer_len": max_answer_len, "candidates_per_window": 2 * 1 + 10}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        source = staging / "source-assets"
        source.mkdir()
        vocab = source / VOCAB_ASSET
        vocab.write_text("".join(t + "\n" for t in model.preprocessor.tokenizer.get_vocabulary()), encoding="utf-8")
        meta = source / SERVING_METADATA
        meta.write_text(json.dumps(_metadata(model, task, pairs, settings, extra), indent=2, default=str) + "\n",
                        encoding="utf-8")
        assets = {"vocab": vocab, "metadata": meta}
        if task == "classification":
            module = _ServingModule(model, pairs, assets, PAD_TO_MULTIPLE_OF)
        elif task == "token-classification":
            module = _TokenServingModule(model, assets, PAD_TO_MULTIPLE_OF, stride)
        else:
            module = _QAServingModule(model, assets, PAD_TO_MULTIPLE_OF, max_answer_len,
                                      extra["candidates_per_window"])
        saved = staging / "saved"
        tf.saved_model.save(module, str(saved), signatures={"serving_default": module.serve})
        if out.exists():
            shutil.rmtree(out)
        os.replace(saved, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def read_serving_metadata(export_dir: str | os.PathLike) -> dict[str, Any]:
    """``assets/serving.json`` of an export (what :func:`export_task` wrote)."""
    path = Path(export_dir) / "assets" / SERVING_METADATA
    if not (Path(export_dir) / "saved_model.pb").is_file():
        raise RunDirectoryError(f"{export_dir} is not a SavedModel (no saved_model.pb): export a run with "
                                f"`bertcourse export RUN OUT` first.")
    if not path.is_file():
        raise RunDirectoryError(f"{path} is missing: {export_dir} was not written by bertcourse export.")
    return json.loads(path.read_text(encoding="utf-8"))
