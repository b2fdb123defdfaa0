"""Extractive question answering (SQuAD): a start and an end score for every context token (lesson 11).

    [CLS] question [SEP] context window [SEP] --BertBackbone--> h_t --Dense(2)--> (start_t, end_t)

The answer is the context span ``(s, e)``, ``s <= e < s + max_answer_len``, with the highest
``p_start(s) * p_end(e)``. The same head as Hugging Face's ``BertForQuestionAnswering`` (``qa_outputs``:
one dense layer with two outputs), and the same decoding as ``transformers.QuestionAnsweringPipeline``
(a test runs both on the same weights and real SQuAD questions):

1. **Windows** (:func:`qa_features`): the question (at most ``max_query_length`` tokens) and as much of the
   context as fits in ``max_seq_length``; a longer context becomes several windows that share
   ``doc_stride`` tokens (Hugging Face's meaning of the word: :func:`bertcourse.text.windows.window_spans`),
   so an answer cut by one window's edge is whole in the next. Each window keeps its tokens' character
   offsets in the context.
2. **Scores per window**: logits outside the context (question, ``[SEP]``, padding) are set to -10000, a
   softmax over the window gives ``p_start``/``p_end``; the null score is ``p_start([CLS]) * p_end([CLS])``
   (its minimum over the windows), then ``[CLS]`` is removed.
3. **n-best**: the outer product ``p_start p_end^T`` keeps ``s <= e < s + max_answer_len`` (a band of the
   upper triangle); its top ``2 top_k + 10`` entries are the candidates. Only the band over the context
   tokens is computed (``max_answer_len`` products per token, not ``width``): everything else is 0.
4. **Answer text**: a span is widened to whole words (a word is a token and the ``##`` pieces that follow
   it), then cut from the context by character offsets: always an exact substring of the context.
   Candidates with the same text (case-insensitive) from several windows add their scores (Hugging
   Face's rule). ``max_context=True`` instead keeps a span only from the window where its first token has
   the most context on both sides (Google BERT's ``run_squad.py`` rule,
   :func:`bertcourse.text.windows.max_context_windows`).
5. **No answer**: ``handle_impossible_answer=True`` adds ``{"answer": "", "start": 0, "end": 0}`` with the
   null score; :func:`best_null_threshold` picks, on validation data, the margin
   ``null_score - best_span_score`` above which "no answer" wins (SQuAD 2.0's ``find_best_thresh``).

The metric is the official SQuAD v1.1 one, written out: :func:`normalize_answer`, :func:`exact_match`,
:func:`f1_score` (token overlap), the max over the gold answers, averaged x100 (:func:`squad_metrics`).
A question without gold answers (SQuAD 2.0 style) counts as right only for the empty prediction.

>>> normalize_answer("The  Denver Broncos!")
'denver broncos'
>>> round(f1_score("the Denver Broncos", "Broncos"), 3), exact_match("Broncos.", "broncos")
(0.667, True)
>>> from bertcourse.models import BertBackbone
>>> from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer
>>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "where", "is", "bath", "in", "england", "."]
>>> pre = BertPreprocessor(FastWordPieceTokenizer(vocab), sequence_length=16)
>>> qa = BertQuestionAnswerer(BertBackbone("tiny", vocab_size=len(vocab)), preprocessor=pre)
>>> answer = QuestionAnsweringPipeline(qa)(question="Where is Bath?", context="Bath is in England.")
>>> sorted(answer), "Bath is in England."[answer["start"]:answer["end"]] == answer["answer"]
(['answer', 'end', 'score', 'start'], True)
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import string
import weakref
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from safetensors.numpy import load_file, save_file

from bertcourse.convert.hf import CONFIG_FILE, WEIGHTS_FILE, save_hf_bert
from bertcourse.data.squad import QAExample
from bertcourse.errors import ModelInputError
from bertcourse.tasks.base import GROUP_BATCHES, Task, TaskPipeline, as_preprocessor, padded_batches
from bertcourse.text.windows import max_context_windows, window_spans

__all__ = ["BertQuestionAnswerer", "QuestionAnsweringPipeline", "QAFeatures", "qa_features", "qa_training_features",
           "decode_answers", "normalize_answer", "exact_match", "f1_score", "squad_metrics", "best_null_threshold",
           "lexical_baseline", "question_type", "save_hf_question_answerer", "QUESTION_TYPES"]

NULL_LOGIT = -10000.0   # what Hugging Face writes over the logits of tokens that cannot be in an answer
WINDOW_BATCH = 16       # windows per forward pass: on a CPU, small length-ordered batches waste the least padding


# ============================================================================ windows
@dataclasses.dataclass
class QAFeatures:
    """The windows of a batch of (question, context) pairs, ready for the model, and what decoding needs.

    ``inputs``: the backbone's dict, int32 ``[windows, max_seq_length]``. Per window: ``example`` (which
    pair it came from), ``context_start`` (the sequence position of its first context token) and ``span``
    (its context tokens ``[a, b)``). Per pair: the context, its tokens' character ``offsets`` ``[n, 2]`` and
    ``word_start`` (token begins a word, i.e. is not a ``##`` piece glued to the previous one).
    """

    inputs: dict[str, np.ndarray]
    example: np.ndarray
    context_start: np.ndarray
    spans: list[tuple[int, int]]
    contexts: list[str]
    offsets: list[np.ndarray]
    word_start: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.example)

    def windows_of(self, index: int) -> np.ndarray:
        """The window numbers of pair ``index``, in order."""
        return np.flatnonzero(self.example == index)


def _check_pairs(questions: Any, contexts: Any) -> tuple[list[str], list[str]]:
    if isinstance(questions, str):
        questions = [questions]
    if isinstance(contexts, str):
        contexts = [contexts]
    questions, contexts = list(questions), list(contexts)
    if len(questions) != len(contexts):
        raise ModelInputError(f"{len(questions)} questions but {len(contexts)} contexts: give one context per "
                              "question (or one context for all).")
    for i, (q, c) in enumerate(zip(questions, contexts)):
        if not isinstance(q, str):
            raise ModelInputError(f"question {i} must be a string, got {type(q).__name__}.")
        if not isinstance(c, str):
            raise ModelInputError(f"context {i} must be a string, got {type(c).__name__}.")
        if not q.strip():
            raise ModelInputError(f"question {i} is empty.")
        if not c.strip():
            raise ModelInputError(f"context {i} is empty: there is nothing to take an answer from.")
    return questions, contexts


_TOKENIZER_TOOLS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _tokenizer_tools(tokenizer) -> tuple[np.ndarray, Any]:
    """Per tokenizer, built once: ``table[id]`` (the vocabulary entry is a ``##`` piece, i.e. continues a
    word) and ``tokenize_with_offsets`` traced as a ``tf.function`` (its eager ragged ops cost more than
    the tokenizing itself)."""
    if tokenizer not in _TOKENIZER_TOOLS:
        prefix = getattr(tokenizer, "suffix_indicator", "##")
        table = np.array([t.startswith(prefix) for t in tokenizer.get_vocabulary()], bool)
        traced = tf.function(tokenizer.tokenize_with_offsets, input_signature=[tf.TensorSpec([None], tf.string)])
        _TOKENIZER_TOOLS[tokenizer] = (table, traced)
    return _TOKENIZER_TOOLS[tokenizer]


def _tokenize(tokenizer, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every text -> ``(ids [n], offsets [n, 2])``: all its tokens (no truncation), character offsets."""
    tokenize_with_offsets = _tokenizer_tools(tokenizer)[1]
    out = []
    for begin in range(0, len(texts), 1024):
        chunk = list(texts[begin:begin + 1024])
        ids, starts, ends = tokenize_with_offsets(tf.constant(chunk, dtype=tf.string, shape=[len(chunk)]))
        bounds = np.concatenate([[0], np.cumsum(ids.row_lengths().numpy())])
        flat_ids, flat_s, flat_e = (t.flat_values.numpy().astype(np.int64) for t in (ids, starts, ends))
        for a, b in zip(bounds[:-1], bounds[1:]):
            out.append((flat_ids[a:b], np.stack([flat_s[a:b], flat_e[a:b]], axis=1)))
    return out


def qa_features(preprocessor, questions: Sequence[str] | str, contexts: Sequence[str] | str,
                max_seq_length: int | None = None, doc_stride: int = 128, max_query_length: int = 64) -> QAFeatures:
    """(question, context) pairs -> the windows ``[CLS] question [SEP] context[a:b] [SEP]`` (see the module doc).

    ``max_seq_length`` (default: the preprocessor's ``sequence_length``) counts every token of a window;
    the context room is ``max_seq_length - len(question) - 3``; ``doc_stride`` tokens are shared by
    consecutive windows and must be smaller than that room. A question longer than ``max_query_length``
    tokens is cut (Hugging Face's fast pipeline does not cut it; no SQuAD question comes near 64).
    The first window equals ``preprocessor((question, context))`` with ``truncation="only_second"``.
    """
    questions, contexts = _check_pairs(questions, contexts)
    tokenizer = preprocessor.tokenizer
    length = int(max_seq_length or preprocessor.sequence_length)
    if isinstance(doc_stride, bool) or not isinstance(doc_stride, int) or doc_stride < 0:
        raise ValueError(f"doc_stride must be an int >= 0, got {doc_stride!r}.")
    if isinstance(max_query_length, bool) or not isinstance(max_query_length, int) or max_query_length < 1:
        raise ValueError(f"max_query_length must be an int >= 1, got {max_query_length!r}.")
    suffix = _tokenizer_tools(tokenizer)[0]
    cls_id, sep_id, pad_id = tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id
    unique = {context: k for k, context in enumerate(dict.fromkeys(contexts))}   # several questions, one text:
    tokens = _tokenize(tokenizer, questions + list(unique))                      # tokenized once
    rows, example, context_start, spans, offsets, word_start = [], [], [], [], [], []
    for i in range(len(questions)):
        q_ids = tokens[i][0][:max_query_length]
        c_ids, c_offsets = tokens[len(questions) + unique[contexts[i]]]
        room = length - len(q_ids) - 3
        if room < 1:
            raise ModelInputError(f"question {i} has {len(q_ids)} tokens: no room for the context in "
                                  f"max_seq_length={length}; lower max_query_length.")
        if doc_stride >= room:
            raise ModelInputError(f"doc_stride={doc_stride} must be smaller than the room for context in a window "
                                  f"({room} tokens = max_seq_length {length} - question {len(q_ids)} - 3 special "
                                  "tokens): the windows would not advance.")
        starts = np.ones(len(c_ids), bool)
        if len(c_ids):  # a ## piece that touches the previous token continues its word
            starts[1:] = ~(suffix[c_ids[1:]] & (c_offsets[1:, 0] == c_offsets[:-1, 1]))
        offsets.append(c_offsets)
        word_start.append(starts)
        head = np.concatenate([[cls_id], q_ids, [sep_id]])
        for a, b in window_spans(len(c_ids), room, doc_stride):
            rows.append(np.concatenate([head, c_ids[a:b], [sep_id]]))
            example.append(i)
            context_start.append(len(head))
            spans.append((a, b))
    token_ids = np.full((len(rows), length), pad_id, np.int32)
    segment_ids = np.zeros((len(rows), length), np.int32)
    padding_mask = np.zeros((len(rows), length), np.int32)
    for r, (row, start) in enumerate(zip(rows, context_start)):
        token_ids[r, :len(row)] = row
        segment_ids[r, start:len(row)] = 1
        padding_mask[r, :len(row)] = 1
    return QAFeatures({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask},
                      np.array(example, np.int64), np.array(context_start, np.int64), spans, contexts, offsets,
                      word_start)


def qa_training_features(preprocessor, examples: Sequence[QAExample], max_seq_length: int | None = None,
                         doc_stride: int = 128, max_query_length: int = 64) -> tuple[QAFeatures, np.ndarray, np.ndarray]:
    """Windows of SQuAD examples with their labels ``(features, start_positions, end_positions)``.

    As Hugging Face's ``run_qa.py``: the first gold answer; its first token is the token holding its first
    character, its last token the one holding its last character. A window that does not hold the whole
    answer (or an unanswerable example) points both positions at ``[CLS]`` (0): "no answer here"."""
    examples = list(examples)
    features = qa_features(preprocessor, [ex.question for ex in examples], [ex.context for ex in examples],
                           max_seq_length=max_seq_length, doc_stride=doc_stride, max_query_length=max_query_length)
    start_positions = np.zeros(len(features), np.int32)
    end_positions = np.zeros(len(features), np.int32)
    for w, (i, (a, b)) in enumerate(zip(features.example, features.spans)):
        ex = examples[i]
        if ex.is_impossible or not ex.answers:
            continue
        answer = ex.answers[0]
        offs = features.offsets[i]
        first = int(np.searchsorted(offs[:, 0], answer.start, side="right")) - 1
        last = int(np.searchsorted(offs[:, 1], answer.start + len(answer.text), side="left"))
        if first < 0 or last >= len(offs):
            continue  # the answer is whitespace the tokenizer dropped: no token holds it
        if a <= first and last < b:
            start_positions[w] = features.context_start[w] + first - a
            end_positions[w] = features.context_start[w] + last - a
    return features, start_positions, end_positions


# ============================================================================ decoding
def _decode_spans(start: np.ndarray, end: np.ndarray, topk: int, max_answer_len: int,
                  desired: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``topk`` best ``(s, e)`` of ``start[s] * end[e]`` with ``s <= e < s + max_answer_len``, both
    in ``desired`` (Hugging Face's ``decode_spans``, written for one window).

    ``desired`` is one run of positions (a window's context tokens), so the candidates are first looked
    for in the band of ``max_answer_len`` diagonals over that run (``len(run) * max_answer_len`` products
    instead of ``width ** 2``). When the band holds ``topk`` positive scores, they are the best ``topk``
    of the whole matrix, every other entry being 0 (:func:`decode_answers` zeroes ``start`` and ``end``
    outside ``desired``); otherwise (a context of a few tokens) the whole
    matrix is ranked as Hugging Face does, zero-score pairs included."""
    run = np.flatnonzero(desired)
    if len(run) and run[-1] - run[0] + 1 == len(run):
        c0, n = int(run[0]), len(run)
        span = min(max_answer_len, n)
        ends_padded = np.concatenate([end[c0:c0 + n], np.zeros(span - 1, end.dtype)])
        band = start[c0:c0 + n, None] * np.lib.stride_tricks.sliding_window_view(ends_padded, span)
        flat = band.ravel()
        if flat.size >= topk:
            part = np.argpartition(-flat, topk - 1)[:topk]
            if flat[part].min() > 0:
                order = part[np.argsort(-flat[part])]
                rows, diagonals = np.divmod(order, span)
                return rows + c0, rows + c0 + diagonals, flat[order]
    outer = np.matmul(start[:, None], end[None, :])
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    flat = candidates.flatten()
    if topk == 1:
        order = np.array([np.argmax(flat)])
    elif len(flat) < topk:
        order = np.argsort(-flat)
    else:
        part = np.argpartition(-flat, topk)[0:topk]
        order = part[np.argsort(-flat[part])]
    starts, ends = np.unravel_index(order, candidates.shape)
    keep = desired[starts] & desired[ends]
    starts, ends = starts[keep], ends[keep]
    return starts, ends, candidates[starts, ends]


def _masked_softmax(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``logits`` ``[windows, width]`` with the positions not ``allowed`` set to
    ``NULL_LOGIT`` first (as Hugging Face's pipeline does), float32."""
    x = np.where(allowed, logits, np.float32(NULL_LOGIT))
    x = np.exp(x - x.max(axis=1, keepdims=True))
    return x / x.sum(axis=1, keepdims=True)


def decode_answers(features: QAFeatures, start_logits: np.ndarray, end_logits: np.ndarray, top_k: int = 1,
                   max_answer_len: int = 15, handle_impossible_answer: bool = False,
                   max_context: bool = False) -> list[tuple[list[dict], float]]:
    """Logits of every window -> per pair ``(answers, null_score)``: up to ``top_k`` dicts
    ``{"score", "start", "end", "answer"}`` best first (the null answer among them when
    ``handle_impossible_answer``), and the null score (see the module doc; scores are probabilities)."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an int >= 1, got {top_k!r}.")
    if isinstance(max_answer_len, bool) or not isinstance(max_answer_len, int) or max_answer_len < 1:
        raise ValueError(f"max_answer_len must be an int >= 1, got {max_answer_len!r}.")
    start_logits, end_logits = np.asarray(start_logits, np.float32), np.asarray(end_logits, np.float32)
    # Every window's softmax over its [CLS] and context tokens, at once; the loop below decodes.
    width = start_logits.shape[1]
    first = np.asarray(features.context_start, np.int64)
    lengths = np.array([b - a for a, b in features.spans], np.int64)
    columns = np.arange(width)
    allowed = (columns >= first[:, None]) & (columns < (first + lengths)[:, None])
    allowed[:, 0] = True                         # [CLS] stays in the softmax (the null answer)
    start_probs, end_probs = (_masked_softmax(x[:, :width], allowed) for x in (start_logits, end_logits))
    results = []
    for i, context in enumerate(features.contexts):
        windows = features.windows_of(i)
        offsets, word_start = features.offsets[i], features.word_start[i]
        home = max_context_windows([features.spans[w] for w in windows], len(offsets)) if max_context else None
        min_null, answers = 1e6, []
        for k, w in enumerate(windows):
            a, b = features.spans[w]
            c0 = int(features.context_start[w])
            start, end, desired = start_probs[w], end_probs[w], allowed[w]
            min_null = min(min_null, float(start[0] * end[0]))
            start[0] = end[0] = 0.0
            desired[0] = False                   # a span through [CLS] is never an answer
            starts, ends, scores = _decode_spans(start, end, top_k * 2 + 10, max_answer_len, desired)
            for s, e, score in zip(starts, ends, scores):
                first, last = int(s) - c0 + a, int(e) - c0 + a   # context token indices
                if home is not None and home[first] != k:
                    continue
                while first > a and not word_start[first]:      # whole words, inside the window
                    first -= 1
                while last + 1 < b and not word_start[last + 1]:
                    last += 1
                char_start, char_end = int(offsets[first, 0]), int(offsets[last, 1])
                text = context[char_start:char_end]
                same = next((x for x in answers if x["answer"].lower() == text.lower()), None)
                if same is not None:
                    same["score"] += float(score)
                else:
                    answers.append({"score": float(score), "start": char_start, "end": char_end, "answer": text})
        if handle_impossible_answer:
            answers.append({"score": min_null, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]
        results.append((answers, min_null))
    return results


# ============================================================================ the model
@keras.saving.register_keras_serializable(package="bertcourse")
class BertQuestionAnswerer(Task):
    """``BertBackbone`` + one ``Dense(2)`` over every token: start and end logits of the answer span.

    Args:
        backbone: a :class:`~bertcourse.models.BertBackbone`.
        preprocessor: a :class:`~bertcourse.text.BertPreprocessor` (its ``sequence_length`` is the window
            length, ``max_seq_length``) or a tokenizer (wrapped with ``sequence_length=384`` or the
            backbone's position table if shorter, ``truncation="only_second"``).
        doc_stride: tokens shared by consecutive windows of a long context (default as Hugging Face's:
            ``min(max_seq_length // 2, 128)``).
        max_query_length: question tokens kept (64).
        max_answer_len: longest answer in tokens (15).

    Outputs: ``{"start_logits", "end_logits"}``, float32 ``[batch, sequence]`` (all positions, as
    ``BertForQuestionAnswering``; decoding masks what cannot be an answer).

    ``RUN_KIND = "question-answering"``: a fine-tuning run
    (:func:`bertcourse.training.finetune_qa.finetune_question_answerer`) is rebuilt by
    :meth:`from_run_settings`.
    """

    RUN_KIND = "question-answering"

    def __init__(self, backbone, preprocessor=None, doc_stride: int | None = None, max_query_length: int = 64,
                 max_answer_len: int = 15, **kwargs):
        self.backbone = backbone
        self.preprocessor = as_preprocessor(preprocessor, sequence_length=min(384, backbone.config.max_position_embeddings),
                                            truncation="only_second")
        if doc_stride is None and self.preprocessor is not None:   # Hugging Face's default
            doc_stride = min(self.preprocessor.sequence_length // 2, 128)
        doc_stride = 128 if doc_stride is None else doc_stride
        for name, value in (("doc_stride", doc_stride), ("max_query_length", max_query_length),
                            ("max_answer_len", max_answer_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "doc_stride" else 1):
                raise ValueError(f"{name} must be a non-negative int, got {value!r}.")
        self.span_dense = keras.layers.Dense(
            2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=backbone.config.initializer_range),
            dtype="float32", name="qa_outputs")
        inputs = backbone.input
        logits = self.span_dense(backbone(inputs)["sequence_output"])
        outputs = {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.doc_stride = doc_stride
        self.max_query_length = max_query_length
        self.max_answer_len = max_answer_len

    @classmethod
    def from_run_settings(cls, backbone, preprocessor, settings: dict) -> "BertQuestionAnswerer":
        """The task of a ``"question-answering"`` run from its ``task.json`` (``doc_stride``,
        ``max_query_length``, ``max_answer_len``; ``sequence_length``/``lowercase`` are the preprocessor's)."""
        return cls(backbone, preprocessor=preprocessor, doc_stride=int(settings.get("doc_stride", 128)),
                   max_query_length=int(settings.get("max_query_length", 64)),
                   max_answer_len=int(settings.get("max_answer_len", 15)))

    def get_config(self) -> dict:
        return {**super().get_config(), "doc_stride": self.doc_stride, "max_query_length": self.max_query_length,
                "max_answer_len": self.max_answer_len}

    @property
    def max_seq_length(self) -> int:
        return self._require_preprocessor().sequence_length

    def features(self, questions, contexts, max_seq_length: int | None = None, doc_stride: int | None = None,
                 max_query_length: int | None = None) -> QAFeatures:
        """:func:`qa_features` with this model's preprocessor and settings (arguments override them)."""
        return qa_features(self._require_preprocessor(), questions, contexts,
                           max_seq_length=max_seq_length or self.max_seq_length,
                           doc_stride=self.doc_stride if doc_stride is None else doc_stride,
                           max_query_length=max_query_length or self.max_query_length)

    def window_logits(self, features: QAFeatures, batch_size: int = WINDOW_BATCH,
                      group_by_length: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Start and end logits ``[windows, max_seq_length]`` (float32) of every window, in batches with the
        all-padding columns cut (:func:`~bertcourse.tasks.base.trim_padding`; those positions get -10000).

        ``group_by_length``: batch the windows shortest first, each batch cut to its longest window exactly
        (a SQuAD paragraph's windows range from 40 to ``max_seq_length`` tokens, so batches in input order
        pay for padding); the logits come back in window order, equal up to float32 rounding."""
        n, width = features.inputs["token_ids"].shape
        start = np.full((n, width), NULL_LOGIT, np.float32)
        end = np.full((n, width), NULL_LOGIT, np.float32)
        for rows, batch in padded_batches(features.inputs, batch_size, by_length=group_by_length):
            out = self.predict_on_batch(batch)
            w = out["start_logits"].shape[1]
            start[rows, :w] = np.asarray(out["start_logits"], np.float32)
            end[rows, :w] = np.asarray(out["end_logits"], np.float32)
        return start, end

    def postprocess(self, outputs: Any, features: QAFeatures | None = None, top_k: int = 1,
                    max_answer_len: int | None = None, handle_impossible_answer: bool = False,
                    max_context: bool = False) -> list[tuple[list[dict], float]]:
        """``outputs`` (the model's dict, or ``(start_logits, end_logits)``) of ``features``' windows ->
        :func:`decode_answers`."""
        if features is None:
            raise ValueError("postprocess needs the QAFeatures the outputs were computed from (features=...).")
        start, end = (outputs["start_logits"], outputs["end_logits"]) if isinstance(outputs, Mapping) else outputs
        return decode_answers(features, start, end, top_k=top_k, max_answer_len=max_answer_len or self.max_answer_len,
                              handle_impossible_answer=handle_impossible_answer, max_context=max_context)

    def answer(self, questions, contexts, top_k: int = 1, max_answer_len: int | None = None,
               handle_impossible_answer: bool = False, max_context: bool = False, batch_size: int = WINDOW_BATCH,
               group_by_length: bool = True, **window_options) -> list[tuple[list[dict], float]]:
        """Questions and contexts (strings) -> per pair ``(answers, null_score)`` (:func:`decode_answers`);
        ``batch_size`` windows per forward pass (see :meth:`window_logits`)."""
        features = self.features(questions, contexts, **window_options)
        logits = self.window_logits(features, batch_size=batch_size, group_by_length=group_by_length)
        return self.postprocess(logits, features, top_k=top_k, max_answer_len=max_answer_len,
                                handle_impossible_answer=handle_impossible_answer, max_context=max_context)

    def predict_answers(self, examples: Sequence[QAExample], null_threshold: float | None = None,
                        batch_size: int = WINDOW_BATCH, **options) -> tuple[dict[str, str], dict[str, float]]:
        """SQuAD examples -> ``(predictions, null_margins)`` by id: the best span's text, or ``""`` where
        ``null_threshold`` is given and ``null_score - best_score > null_threshold``. ``null_margins`` holds
        that difference for every example (for :func:`best_null_threshold`)."""
        examples = list(examples)
        results = self.answer([ex.question for ex in examples], [ex.context for ex in examples],
                              batch_size=batch_size, **options)
        predictions, margins = {}, {}
        for ex, (answers, null) in zip(examples, results):
            best = answers[0] if answers else {"answer": "", "score": 0.0}
            margins[ex.id] = null - best["score"]
            predictions[ex.id] = "" if null_threshold is not None and margins[ex.id] > null_threshold \
                else best["answer"]
        return predictions, margins


def save_hf_question_answerer(model: BertQuestionAnswerer, path: str | Path) -> Path:
    """Write ``model`` as a Hugging Face ``BertForQuestionAnswering`` folder (``config.json``,
    ``model.safetensors`` with ``qa_outputs``, ``vocab.txt``): what
    ``transformers.pipeline("question-answering", model=path)`` loads (the parity twin)."""
    pre = model._require_preprocessor()
    root = save_hf_bert(model.backbone, pre.tokenizer, path, prefix="bert.")
    tensors = load_file(str(root / WEIGHTS_FILE))
    for key in [k for k in tensors if k.startswith("bert.pooler.")]:
        del tensors[key]   # BertForQuestionAnswering has no pooler
    tensors["qa_outputs.weight"] = np.ascontiguousarray(np.asarray(model.span_dense.kernel.numpy()).T)
    tensors["qa_outputs.bias"] = np.asarray(model.span_dense.bias.numpy())
    save_file(tensors, str(root / WEIGHTS_FILE), metadata={"format": "pt"})
    config = json.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
    config["architectures"] = ["BertForQuestionAnswering"]
    (root / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return root


# ============================================================================ the pipeline
class QuestionAnsweringPipeline(TaskPipeline):
    """``pipeline("question-answering")``, shaped as ``transformers.QuestionAnsweringPipeline``.

    Call with ``question=`` and ``context=`` (strings, or lists of equal length, or a list of questions
    and one context), or with ``{"question", "context"}`` dicts. Per pair: ``{"score", "start", "end",
    "answer"}`` when one answer comes out (``top_k=1``), else a list of them, best first; a list of pairs
    gives a list of those. ``start``/``end`` are character offsets in the context,
    ``context[start:end] == answer``.

    Options (defaults as Hugging Face's): ``top_k=1``, ``max_answer_len=15``,
    ``handle_impossible_answer=False``, ``doc_stride`` (the model's, 128), ``max_seq_len`` (the
    preprocessor's ``sequence_length``), ``max_question_len`` (64).

    Args:
        model: a :class:`BertQuestionAnswerer` with a preprocessor.
        batch_size: windows per forward pass (16).
        group_by_length: the windows of a call (up to ``GROUP_BATCHES`` batches' worth of pairs at a time)
            run shortest first, each batch cut to its longest window: a SQuAD paragraph's windows range
            from 40 to ``max_seq_len`` tokens, so batches in input order pay for padding. Same answers;
            scores equal up to float32 rounding. ``False``: batches of pairs in input order.
        **defaults: default call options (``top_k``, ``max_answer_len``, ...).
    """

    def __init__(self, model: BertQuestionAnswerer, batch_size: int = WINDOW_BATCH, group_by_length: bool = True,
                 **defaults: Any):
        if not isinstance(model, BertQuestionAnswerer):
            raise TypeError(f"question-answering needs a bertcourse.tasks.BertQuestionAnswerer, got "
                            f"{type(model).__name__}.")
        model._require_preprocessor()
        super().__init__(model, batch_size=batch_size)
        self.group_by_length = group_by_length
        self.defaults = self._options(**defaults)

    @staticmethod
    def _options(top_k: int | None = None, max_answer_len: int | None = None,
                 handle_impossible_answer: bool | None = None, doc_stride: int | None = None,
                 max_seq_len: int | None = None, max_question_len: int | None = None) -> dict:
        options = {"top_k": top_k, "max_answer_len": max_answer_len,
                   "handle_impossible_answer": handle_impossible_answer, "doc_stride": doc_stride,
                   "max_seq_length": max_seq_len, "max_query_length": max_question_len}
        return {k: v for k, v in options.items() if v is not None}

    def _inputs(self, raw: Any) -> tuple[list, bool]:
        question, context = raw
        if question is None and context is None:
            raise ModelInputError("question-answering needs question= and context=.")
        if isinstance(question, dict) or (isinstance(question, list) and question
                                          and all(isinstance(x, dict) for x in question)):
            items = [question] if isinstance(question, dict) else question
            bad = next((x for x in items if set(x) != {"question", "context"}), None)
            if bad is not None:
                raise ModelInputError(f"A question-answering input dict has the keys 'question' and 'context', "
                                      f"got {sorted(bad)}.")
            return [(x["question"], x["context"]) for x in items], isinstance(question, dict)
        if question is None or context is None:
            raise ModelInputError("question-answering needs both question= and context=.")
        if isinstance(question, str) and isinstance(context, str):
            return [(question, context)], True
        if isinstance(question, (list, tuple)) and isinstance(context, str):
            return [(q, context) for q in question], False
        if isinstance(question, (list, tuple)) and isinstance(context, (list, tuple)):
            if len(question) != len(context):
                raise ModelInputError(f"{len(question)} questions but {len(context)} contexts.")
            return list(zip(question, context)), False
        raise ModelInputError(f"question must be a string or a list of strings and context a string or a list, "
                              f"got {type(question).__name__} and {type(context).__name__}.")

    def _run(self, items: list, top_k: int = 1, max_answer_len: int = 15, handle_impossible_answer: bool = False,
             batch_size: int = WINDOW_BATCH, **window_options: Any) -> list:
        results = self.model.answer([q for q, _ in items], [c for _, c in items], top_k=top_k,
                                    max_answer_len=max_answer_len, handle_impossible_answer=handle_impossible_answer,
                                    batch_size=batch_size, group_by_length=self.group_by_length, **window_options)
        return [answers[0] if len(answers) == 1 else answers for answers, _ in results]

    def __call__(self, *args: Any, question: Any = None, context: Any = None, batch_size: int | None = None,
                 **options: Any):
        if args:
            if len(args) != 1 or question is not None:
                raise ModelInputError("Give question= and context=, or one {'question', 'context'} dict or a list "
                                      "of them.")
            question = args[0]
        items, single = self._inputs((question, context))
        opts = {**{"top_k": 1, "max_answer_len": 15, "handle_impossible_answer": False},
                **self.defaults, **self._options(**options)}
        size = batch_size or self.batch_size
        results: list = []
        for chunk in self.batches(items, size * GROUP_BATCHES if self.group_by_length else size):
            results.extend(self._run(list(chunk), batch_size=size, **opts))
        return results[0] if single else results


# ============================================================================ the official metric
def normalize_answer(s: str) -> str:
    """The official SQuAD normalisation: lowercase, drop punctuation, drop the articles a/an/the, squeeze
    whitespace (in that order)."""
    s = s.lower()
    exclude = set(string.punctuation)
    s = "".join(ch for ch in s if ch not in exclude)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1_score(prediction: str, ground_truth: str) -> float:
    """Token F1 of the normalised strings (bag of words: ``2 P R / (P + R)`` over shared tokens)."""
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def exact_match(prediction: str, ground_truth: str) -> bool:
    """The normalised strings are equal."""
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def _score(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    if not golds:  # an unanswerable question (SQuAD 2.0's rule): only the empty answer is right
        return float(prediction == ""), float(prediction == "")
    return (max(float(exact_match(prediction, g)) for g in golds), max(f1_score(prediction, g) for g in golds))


def squad_metrics(predictions: Mapping[str, str], examples: Iterable[QAExample]) -> dict[str, float]:
    """``{"exact_match", "f1"}`` x100 over ``examples`` (the max over each one's gold answers), and
    ``count``. A question with no prediction scores 0, as in the official script."""
    em = f1 = 0.0
    count = 0
    for ex in examples:
        count += 1
        if ex.id not in predictions:
            continue
        e, f = _score(predictions[ex.id], ex.answer_texts)
        em += e
        f1 += f
    if not count:
        raise ValueError("squad_metrics needs at least one example.")
    return {"exact_match": 100.0 * em / count, "f1": 100.0 * f1 / count, "count": count}


def best_null_threshold(null_margins: Mapping[str, float], predictions: Mapping[str, str],
                        examples: Iterable[QAExample]) -> tuple[float, float]:
    """``(threshold, f1)``: the null margin above which "no answer" is predicted that maximises F1 on these
    (validation) examples, as SQuAD 2.0's ``find_best_thresh``: every observed margin is tried, from
    "never null" up. ``predictions`` are the best non-null answers."""
    examples = list(examples)
    ids = [ex.id for ex in examples]
    if not ids:
        raise ValueError("best_null_threshold needs at least one example.")
    span_f1 = {ex.id: _score(predictions.get(ex.id, ""), ex.answer_texts)[1] for ex in examples}
    null_f1 = {ex.id: _score("", ex.answer_texts)[1] for ex in examples}
    margins = sorted(float(null_margins[i]) for i in ids)
    best_total, best_threshold = -1.0, 0.0
    for t in [margins[0] - 1.0] + margins:     # null iff margin > t: from "always null" to "never null"
        total = sum(null_f1[i] if null_margins[i] > t else span_f1[i] for i in ids)
        if total > best_total:
            best_total, best_threshold = total, t
    return best_threshold, 100.0 * best_total / len(ids)


# ============================================================================ baselines and analysis
_STOPWORDS = frozenset("""a an the of in on at to for by with from and or but is are was were be been being do does
did what which who whom whose when where why how that this these those it its as into than then there their they he
she his her him i you we our your not no yes can could would should will shall may might must has have had if about
over under after before between during""".split())
_WORD = re.compile(r"\w+", re.UNICODE)


def lexical_baseline(question: str, context: str, max_answer_words: int = 3, radius: int = 8) -> tuple[int, int]:
    """A sliding-window lexical-overlap answerer (no learning): the character span ``(start, end)`` of the
    context words that best fit the question by word overlap.

    Candidates: runs of 1..``max_answer_words`` context words that are not question words and not all
    stopwords. Score: the distinct question content words (lowercased) found in the ``radius`` words on
    either side of the candidate; ties -> the closer total distance of those words, then the shorter and
    earlier candidate. The baseline of the SQuAD paper's spirit (Rajpurkar et al. 2016, section 5.1).

    >>> c = "Bath is a city in Somerset, England. Its Roman baths are famous."
    >>> s, e = lexical_baseline("Which county is the city of Bath in?", c)
    >>> c[s:e]
    'Somerset'
    """
    words = [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(context)]
    if not words:
        return 0, 0
    q_words = {w.lower() for w in _WORD.findall(question)}
    q_content = q_words - _STOPWORDS
    n = len(words)
    positions = collections.defaultdict(list)
    for i, (w, _, _) in enumerate(words):
        if w in q_content:
            positions[w].append(i)
    best, best_key = None, None
    for length in range(1, max_answer_words + 1):
        for s in range(0, n - length + 1):
            span = words[s:s + length]
            if any(w in q_words for w, _, _ in span) or all(w in _STOPWORDS for w, _, _ in span):
                continue
            e = s + length - 1
            found, distance = 0, 0
            for plist in positions.values():
                near = [min(abs(p - s), abs(p - e)) for p in plist if s - radius <= p <= e + radius]
                if near:
                    found += 1
                    distance += min(near)
            key = (found, -distance, -length, -s)
            if best_key is None or key > best_key:
                best, best_key = (span[0][1], span[-1][2]), key
    return best if best is not None else (words[0][1], words[0][2])


QUESTION_TYPES = ("what", "which", "who", "when", "where", "why", "how many", "how", "other")


def question_type(question: str) -> str:
    """The question's wh-word (``"what"``, ``"who"``, ``"when"``, ``"how many"``...), else ``"other"``: its
    first wh-word anywhere in the question ("In which year..." -> ``"which"``).

    >>> question_type("In which year did it open?"), question_type("How many people live there?")
    ('which', 'how many')
    """
    words = [w.lower() for w in _WORD.findall(question)]
    for i, w in enumerate(words):
        if w == "how":
            return "how many" if i + 1 < len(words) and words[i + 1] in ("many", "much") else "how"
        if w in ("what", "which", "who", "whom", "whose", "when", "where", "why"):
            return "who" if w in ("whom", "whose") else w
    return "other"
