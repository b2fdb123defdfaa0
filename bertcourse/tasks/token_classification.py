"""Token classification (named entities, lesson 10): a label for every WordPiece, entities for words.

    [CLS] Empire State Building = ESB . [SEP] --BertBackbone--> h_1 ... h_n
        --Dropout(0.1)--> Dense(num_labels) --> logits [batch, seq, num_labels] (float32)

The head of Hugging Face's ``BertForTokenClassification`` (keras-hub has none). The data are words with
BIO tags (:mod:`bertcourse.data.conll`); the model sees WordPieces. The bridge, both ways:

* **words -> pieces** (:func:`encode_tagged`): the words are joined by spaces, tokenized with character
  offsets, and each piece is given the word whose characters it covers (:func:`word_ids_of_pieces`, HF's
  ``word_ids()``). :func:`align_labels` puts the word's label on its FIRST piece and ``-100`` (ignored by
  the loss and the metric) on the others and on ``[CLS]``/``[SEP]``/padding; ``label_all_pieces=True``
  labels every piece instead (a ``B-X`` word's later pieces get ``I-X``, as HF's ``run_ner.py``).
* **pieces -> words** (:func:`word_labels_from_pieces`): each word takes its first piece's label. A word
  with no piece at all (a lone U+FE0F, which BERT's normalisation deletes: 7 words of WNUT-17, all ``O``)
  gets ``O``; that is the documented repair, and the round trip is the identity on all of WNUT-17.
* **pieces -> entities in the text** (:meth:`BertTokenClassifier.postprocess`, the pipeline): Hugging
  Face's ``aggregation_strategy`` rules, re-implemented from ``transformers``' ``TokenClassificationPipeline``
  and tested against it: ``"none"`` (one result per piece not labelled ``O``), ``"simple"`` (adjacent pieces
  of one type grouped), ``"first"``/``"max"``/``"average"`` (a word's pieces first agree on one label: the
  first piece's, the most confident piece's, or the mean of the pieces' scores). Each entity has
  ``start``/``end`` character offsets into the original text: ``text[start:end]`` is the entity.

Texts longer than the model's window are cut into overlapping windows
(:func:`bertcourse.text.windows.window_spans`); every piece takes its scores from the window where it has
the most context (:func:`~bertcourse.text.windows.max_context_windows`), and entities are formed once
over the whole text, so a window border never cuts an entity.

The metric (:func:`entity_metrics`) is the CoNLL entity-level precision/recall/F1, per type and micro: an
entity counts only when its type and both its ends are right. ``mode="default"`` is ``conlleval``'s (and
seqeval's default) chunking; ``mode="strict"`` is seqeval's strict IOB2, where an ``I-X`` with no ``B-X``
before it is no entity at all (``on_invalid="raise"`` makes that an error, ``"repair"`` turns it into
``B-X`` first: :func:`repair_iob2`).

>>> from bertcourse.models import BertBackbone
>>> from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer
>>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "jane", "austen", "wrote", "em", "##ma"]
>>> pre = BertPreprocessor(FastWordPieceTokenizer(vocab), sequence_length=16)
>>> x, y, word_ids = encode_tagged(pre, [["Jane", "Austen", "wrote", "Emma"]],
...                                [["B-person", "I-person", "O", "B-creative-work"]],
...                                labels=["O", "B-creative-work", "I-creative-work", "B-person", "I-person"])
>>> x["token_ids"][0, :7].tolist(), y[0, :7].tolist(), word_ids[0]
([2, 5, 6, 7, 8, 9, 3], [-100, 3, 4, 0, 1, -100, -100], [0, 1, 2, 3, 3])
>>> word_labels_from_pieces(word_ids[0], y[0, 1:6].tolist(), num_words=4)
[3, 4, 0, 1]
>>> model = BertTokenClassifier(BertBackbone("tiny", vocab_size=len(vocab)), labels=["O", "B-person", "I-person"],
...                             preprocessor=pre)
>>> model.predict(x, verbose=0).shape
(1, 16, 3)
>>> ner = TokenClassificationPipeline(model, aggregation_strategy="simple")
>>> all(set(e) == {"entity_group", "score", "word", "start", "end"} for e in ner("Jane Austen wrote Emma"))
True
>>> r = entity_metrics([["B-person", "I-person", "O"]], [["B-person", "O", "O"]])
>>> r["precision"], r["recall"], r["f1"], r["per_type"]["person"]["support"]
(0.0, 0.0, 0.0, 1)
"""

from __future__ import annotations

import bisect
import collections
import json
import weakref
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf
from safetensors.numpy import load_file, save_file

from bertcourse.convert.hf import save_hf_bert
from bertcourse.data.conll import ConllData, entity_chunks
from bertcourse.errors import DataFileError, ModelInputError
from bertcourse.tasks.base import Task, TaskPipeline, as_preprocessor
from bertcourse.text.windows import max_context_windows, window_spans

__all__ = ["BertTokenClassifier", "TokenClassificationPipeline", "EntityF1", "AGGREGATION_STRATEGIES",
           "IGNORE_INDEX", "word_spans", "word_ids_of_pieces", "align_labels", "word_labels_from_pieces",
           "encode_tagged", "predict_word_tags", "entity_metrics", "strict_entities", "repair_iob2",
           "decode_wordpieces", "aggregate_entities", "save_hf_token_classifier", "most_frequent_tag_baseline",
           "gazetteer_baseline", "check_tags"]

IGNORE_INDEX = -100
GRAPH_TOKENIZE_FROM = 1000  # texts per call from which the pipeline tokenizes in a traced graph
AGGREGATION_STRATEGIES = ("none", "simple", "first", "max", "average")


# ----------------------------------------------------------------------------- labels and words
def check_tags(tags: Sequence[Sequence[str]], labels: Sequence[str], what: str = "tags") -> None:
    """Every tag must be one of ``labels``: otherwise a :class:`DataFileError` naming the sentence, the
    position and the tag (an unknown tag is never silently mapped to ``O``)."""
    known = set(labels)
    for i, sentence in enumerate(tags):
        for j, tag in enumerate(sentence):
            if tag not in known:
                raise DataFileError(f"{what}: sentence {i}, word {j}: unknown tag {tag!r}; the model's labels are "
                                    f"{list(labels)}.")


def word_spans(words: Sequence[str], delimiter: str = " ") -> tuple[str, list[tuple[int, int]]]:
    """``(text, spans)``: the words joined by ``delimiter`` and each word's ``(start, end)`` in that text.

    >>> word_spans(["New", "York"])
    ('New York', [(0, 3), (4, 8)])
    """
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + len(delimiter)
    return delimiter.join(words), spans


def word_ids_of_pieces(starts: Sequence[int], spans: Sequence[tuple[int, int]]) -> list[int | None]:
    """For each piece (its start offset in the text), the index of the word holding it (``None`` for a
    piece outside every word): Hugging Face's ``encoding.word_ids()`` without the special tokens.

    >>> word_ids_of_pieces([0, 3, 6], [(0, 5), (6, 8)])
    [0, 0, 1]
    """
    word_starts = [s for s, _ in spans]
    out: list[int | None] = []
    for start in starts:
        k = bisect.bisect_right(word_starts, int(start)) - 1
        out.append(k if k >= 0 and spans[k][0] <= start < spans[k][1] else None)
    return out


def _b_to_i(labels: Sequence[str]) -> list[int]:
    index = {label: i for i, label in enumerate(labels)}
    return [index.get("I-" + label[2:], i) if label.startswith("B-") else i for i, label in enumerate(labels)]


def align_labels(word_ids: Sequence[int | None], word_labels: Sequence[int], label_all_pieces: bool = False,
                 b_to_i: Sequence[int] | None = None) -> list[int]:
    """Word label ids -> one label id per piece: the first piece of each word gets the word's label, the
    other pieces ``IGNORE_INDEX`` (-100), or with ``label_all_pieces`` the word's label too (``b_to_i[id]``
    for a ``B-`` label: its ``I-`` twin). A word label list shorter or longer than the words is an error.

    >>> align_labels([0, 0, 1, None], [3, 0])
    [3, -100, 0, -100]
    >>> align_labels([0, 0, 1], [3, 0], label_all_pieces=True, b_to_i=[0, 1, 2, 4, 4])
    [3, 4, 0]
    """
    out, previous = [], None
    for word in word_ids:
        if word is None:
            out.append(IGNORE_INDEX)
        elif word >= len(word_labels):
            raise ModelInputError(f"A piece belongs to word {word} but only {len(word_labels)} labels were given.")
        elif word != previous:
            out.append(int(word_labels[word]))
        elif label_all_pieces:
            label = int(word_labels[word])
            out.append(b_to_i[label] if b_to_i is not None else label)
        else:
            out.append(IGNORE_INDEX)
        previous = word
    return out


def word_labels_from_pieces(word_ids: Sequence[int | None], piece_labels: Sequence[Any], num_words: int,
                            fill: Any = 0) -> list:
    """Per word, the label of its first piece; a word with no piece (deleted by normalisation, or cut off
    by truncation) gets ``fill`` (``O``'s id, 0). The inverse of :func:`align_labels`.

    >>> word_labels_from_pieces([0, 0, 2], ["B-x", "I-x", "O"], num_words=3, fill="O")
    ['B-x', 'O', 'O']
    """
    if len(piece_labels) != len(word_ids):
        raise ModelInputError(f"{len(piece_labels)} piece labels for {len(word_ids)} pieces.")
    out = [fill] * num_words
    seen = set()
    for word, label in zip(word_ids, piece_labels):
        if word is not None and word not in seen:
            seen.add(word)
            if word >= num_words:
                raise ModelInputError(f"A piece belongs to word {word} but there are only {num_words} words.")
            out[word] = label
    return out


_OFFSET_FUNCTIONS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def _offsets_function(tokenizer):
    """``tokenizer.tokenize_with_offsets`` as one traced graph per tokenizer (eager op dispatch was half the
    pipeline's time on short texts)."""
    if tokenizer not in _OFFSET_FUNCTIONS:
        _OFFSET_FUNCTIONS[tokenizer] = tf.function(tokenizer.tokenize_with_offsets,
                                                   input_signature=[tf.TensorSpec([None], tf.string)])
    return _OFFSET_FUNCTIONS[tokenizer]


def _tokenize(tokenizer, texts: Sequence[str], graph: bool = False
              ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every text -> ``(ids, starts, ends)`` of ALL its pieces (no truncation), character offsets. ``graph``:
    through a traced graph (tracing costs seconds once; then each call saves the eager op dispatch)."""
    out = []
    offsets = _offsets_function(tokenizer) if graph else tokenizer.tokenize_with_offsets
    for begin in range(0, len(texts), 2048):
        chunk = list(texts[begin:begin + 2048])
        ids, starts, ends = offsets(tf.constant(chunk, dtype=tf.string, shape=[len(chunk)]))
        lengths = ids.row_lengths().numpy()
        flat = [t.flat_values.numpy() for t in (ids, starts, ends)]
        position = 0
        for n in lengths:
            out.append(tuple(f[position:position + n].astype(np.int64) for f in flat))
            position += n
    return out


def _tokenizer_of(preprocessor_or_tokenizer, sequence_length: int | None = None):
    pre = as_preprocessor(preprocessor_or_tokenizer, sequence_length=sequence_length or 128)
    return pre, pre.tokenizer


def encode_tagged(preprocessor, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]] | None,
                  labels: Sequence[str], sequence_length: int | None = None, label_all_pieces: bool = False
                  ) -> tuple[dict[str, np.ndarray], np.ndarray | None, list[list[int | None]]]:
    """Words (+ their tags) -> ``(inputs, piece_labels, word_ids)`` for training or scoring.

    ``inputs``: ``token_ids``/``segment_ids``/``padding_mask`` int32 ``[n, sequence_length]`` (the
    preprocessor's, ``[CLS] pieces [SEP]``, cut to the length); ``piece_labels``: int32 ``[n,
    sequence_length]`` from :func:`align_labels` (``None`` without ``tags``); ``word_ids``: per sentence,
    the word of each piece that fits (words past the length lose their pieces: choose the length from the
    longest sentence, or predict with :func:`predict_word_tags`, which windows). Tags not in ``labels``,
    or a tag list longer or shorter than its sentence, are a :class:`DataFileError`.
    """
    pre, tokenizer = _tokenizer_of(preprocessor, sequence_length)
    length = sequence_length or pre.sequence_length
    if tags is not None:
        if len(tags) != len(sentences):
            raise DataFileError(f"{len(tags)} tag sequences for {len(sentences)} sentences.")
        for i, (words, sentence_tags) in enumerate(zip(sentences, tags)):
            if len(words) != len(sentence_tags):
                raise DataFileError(f"sentence {i}: {len(sentence_tags)} tags for {len(words)} words "
                                    f"({' '.join(words)[:60]!r}).")
        check_tags(tags, labels)
    label_index = {label: i for i, label in enumerate(labels)}
    b_to_i = _b_to_i(labels)
    texts_spans = [word_spans(words) for words in sentences]
    pieces = _tokenize(tokenizer, [text for text, _ in texts_spans])
    n = len(sentences)
    token_ids = np.full((n, length), pre.pad_id, np.int32)
    mask = np.zeros((n, length), np.int32)
    piece_labels = np.full((n, length), IGNORE_INDEX, np.int32) if tags is not None else None
    all_word_ids = []
    for i, ((_, spans), (ids, starts, _)) in enumerate(zip(texts_spans, pieces)):
        keep = min(len(ids), length - 2)
        token_ids[i, 0], token_ids[i, 1:keep + 1], token_ids[i, keep + 1] = pre.cls_id, ids[:keep], pre.sep_id
        mask[i, :keep + 2] = 1
        ids_of_words = word_ids_of_pieces(starts[:keep], spans)
        all_word_ids.append(ids_of_words)
        if tags is not None:
            word_labels = [label_index[t] for t in tags[i]]
            piece_labels[i, 1:keep + 1] = align_labels(ids_of_words, word_labels, label_all_pieces, b_to_i)
    inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": mask}
    return inputs, piece_labels, all_word_ids


# ----------------------------------------------------------------------------- the model
@keras.saving.register_keras_serializable(package="bertcourse")
class BertTokenClassifier(Task):
    """``BertBackbone`` + dropout + a dense layer on every token: per-token label logits.

    Args:
        backbone: a :class:`~bertcourse.models.BertBackbone`.
        num_labels: number of labels; or give ``labels`` (its length is used).
        preprocessor: a :class:`~bertcourse.text.BertPreprocessor` (or a tokenizer, wrapped with
            ``sequence_length=128``) to read raw strings; ``None`` for tensors only.
        dropout: dropout on the token vectors before the dense layer (BERT: 0.1).
        labels: label names in id order, e.g. ``ConllData.label_list`` (``O``, ``B-x``, ``I-x`` ...);
            ``None`` -> ``LABEL_0``... as Hugging Face names them.

    ``RUN_KIND = "token-classification"``: a fine-tuning run of this task
    (:func:`bertcourse.training.finetune_tokens.finetune_token_classifier`) is rebuilt by
    :meth:`from_run_settings`. Output: ``[batch, seq, num_labels]`` float32 logits.
    """

    RUN_KIND = "token-classification"

    def __init__(self, backbone, num_labels: int | None = None, preprocessor=None, dropout: float = 0.1,
                 labels: Sequence[str] | None = None, **kwargs):
        if labels is not None:
            labels = list(labels)
            if num_labels is None:
                num_labels = len(labels)
            if len(labels) != num_labels or len(set(labels)) != num_labels \
                    or not all(isinstance(x, str) for x in labels):
                raise ValueError(f"labels must be {num_labels} distinct strings (one per label id), got {labels!r}.")
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
            raise ValueError(f"num_labels must be a positive integer (or give labels=[...]), got {num_labels!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.backbone = backbone
        self.preprocessor = as_preprocessor(preprocessor, sequence_length=128)
        # the [CLS] pooler feeds nothing here (HF's BertForTokenClassification has none): frozen, so the
        # optimizer does not warn that it gets no gradient; its weights stay in the files
        backbone.pooler.trainable = False
        self.output_dropout = keras.layers.Dropout(dropout, dtype=backbone.dtype_policy, name="token_dropout")
        self.output_dense = keras.layers.Dense(
            num_labels, kernel_initializer=keras.initializers.TruncatedNormal(stddev=backbone.config.initializer_range),
            dtype="float32", name="token_logits")
        inputs = backbone.input
        sequence = backbone(inputs)["sequence_output"]
        outputs = self.output_dense(self.output_dropout(sequence))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.num_labels = num_labels
        self.dropout = float(dropout)
        self.labels = labels

    @property
    def label_names(self) -> list[str]:
        return list(self.labels) if self.labels is not None else [f"LABEL_{i}" for i in range(self.num_labels)]

    @classmethod
    def from_run_settings(cls, backbone, preprocessor, settings: dict) -> "BertTokenClassifier":
        """The task of a ``"token-classification"`` run from its ``task.json`` (``labels``, ``dropout``)."""
        labels = list(settings["labels"])
        return cls(backbone, num_labels=len(labels), preprocessor=preprocessor,
                   dropout=float(settings.get("dropout", 0.1)), labels=labels)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_labels": self.num_labels, "dropout": self.dropout, "labels": self.labels}

    # ------------------------------------------------------------------ inference over any length
    def piece_logits(self, texts: Sequence[str], stride: int | None = None, batch_size: int = 32
                     ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per text ``(ids, starts, ends, logits)`` for ALL its pieces (``logits`` ``[pieces, num_labels]``).

        A text longer than ``sequence_length - 2`` pieces is cut into windows sharing ``stride`` pieces
        (default: a quarter of the window); each piece keeps the logits of its max-context window.
        """
        pre = self._require_preprocessor()
        window = pre.sequence_length - 2
        stride = window // 4 if stride is None else stride
        pieces = _tokenize(pre.tokenizer, list(texts), graph=len(texts) >= GRAPH_TOKENIZE_FROM)
        jobs = []  # (text index, window index, start, end)
        spans_of = []
        for t, (ids, _, _) in enumerate(pieces):
            spans = window_spans(len(ids), window, stride)
            spans_of.append(spans)
            jobs.extend((t, w, s, e) for w, (s, e) in enumerate(spans))
        jobs.sort(key=lambda job: job[3] - job[2])  # similar lengths together: less padding
        window_logits: dict[tuple[int, int], np.ndarray] = {}
        for begin in range(0, len(jobs), batch_size):
            batch = jobs[begin:begin + batch_size]
            longest = max(e - s for _, _, s, e in batch) + 2
            width = min(pre.sequence_length, -(-longest // 8) * 8)
            token_ids = np.full((len(batch), width), pre.pad_id, np.int32)
            mask = np.zeros((len(batch), width), np.int32)
            for row, (t, _, s, e) in enumerate(batch):
                token_ids[row, 0], token_ids[row, 1:e - s + 1], token_ids[row, e - s + 1] = \
                    pre.cls_id, pieces[t][0][s:e], pre.sep_id
                mask[row, :e - s + 2] = 1
            logits = np.asarray(self.predict_on_batch({"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
                                                       "padding_mask": mask}), np.float32)
            for row, (t, w, s, e) in enumerate(batch):
                window_logits[(t, w)] = logits[row, 1:e - s + 1]
        out = []
        for t, (ids, starts, ends) in enumerate(pieces):
            spans = spans_of[t]
            logits = np.zeros((len(ids), self.num_labels), np.float32)
            if len(spans) == 1:
                logits = window_logits[(t, 0)][:len(ids)].reshape(len(ids), self.num_labels)
            else:
                for position, w in enumerate(max_context_windows(spans, len(ids))):
                    logits[position] = window_logits[(t, w)][position - spans[w][0]]
            out.append((ids, starts, ends, logits))
        return out

    def postprocess(self, outputs: Any, texts: Sequence[str] | None = None, aggregation_strategy: str = "none",
                    ignore_labels: Sequence[str] = ("O",)) -> list[list[dict]]:
        """``piece_logits`` results (or ``(ids, starts, ends, logits)`` tuples) + their texts -> per text the
        entities, as Hugging Face's ``TokenClassificationPipeline`` returns them (see
        :func:`aggregate_entities`)."""
        if texts is None or len(texts) != len(outputs):
            raise ModelInputError("postprocess needs the texts, one per output (offsets point into them).")
        vocab = self._require_preprocessor().tokenizer.get_vocabulary()
        unk = self.preprocessor.unk_id
        return [aggregate_entities(text, ids, starts, ends, logits, self.label_names, vocab, unk,
                                   aggregation_strategy, ignore_labels)
                for text, (ids, starts, ends, logits) in zip(texts, outputs)]


# ----------------------------------------------------------------------------- Hugging Face's aggregation
def _cleanup(text: str) -> str:
    # tokenizers' WordPiece decoder, cleanup=True (decoders/wordpiece.rs), applied to each token
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                 (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(a, b)
    return text


def decode_wordpieces(tokens: Sequence[str], prefix: str = "##") -> str:
    """Pieces -> a string, as Hugging Face's fast BERT tokenizer's ``convert_tokens_to_string`` (the
    ``tokenizers`` WordPiece decoder: ``##`` pieces glued on, others after a space, then its cleanup of
    spaces before punctuation).

    >>> decode_wordpieces(["em", "##ma", "wood", "##house", "."])
    'emma woodhouse.'
    """
    out = []
    for i, token in enumerate(tokens):
        if i:
            token = token.replace(prefix, "", 1) if token.startswith(prefix) else " " + token
        out.append(_cleanup(token))
    return "".join(out)


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, np.float32)
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def _get_tag(name: str) -> tuple[str, str]:
    if name.startswith("B-"):
        return "B", name[2:]
    if name.startswith("I-"):
        return "I", name[2:]
    return "I", name


def _group(entities: list[dict]) -> dict:
    scores = np.nanmean([e["score"] for e in entities])
    return {"entity_group": entities[0]["entity"].split("-", 1)[-1], "score": float(np.mean(scores)),
            "word": decode_wordpieces([e["word"] for e in entities]), "start": entities[0]["start"],
            "end": entities[-1]["end"]}


def _group_entities(entities: list[dict]) -> list[dict]:
    groups, current = [], []
    for entity in entities:
        if not current:
            current.append(entity)
            continue
        bi, tag = _get_tag(entity["entity"])
        _, last_tag = _get_tag(current[-1]["entity"])
        if tag == last_tag and bi != "B":
            current.append(entity)
        else:
            groups.append(_group(current))
            current = [entity]
    if current:
        groups.append(_group(current))
    return groups


def _aggregate_word(pieces: list[dict], strategy: str, labels: Sequence[str]) -> dict:
    if strategy == "first":
        scores = pieces[0]["scores"]
        idx = int(scores.argmax())
        score = scores[idx]
    elif strategy == "max":
        scores = max(pieces, key=lambda p: p["scores"].max())["scores"]
        idx = int(scores.argmax())
        score = scores[idx]
    else:  # average
        mean = np.nanmean(np.stack([p["scores"] for p in pieces]), axis=0)
        idx = int(mean.argmax())
        score = mean[idx]
    return {"entity": labels[idx], "score": float(score), "word": decode_wordpieces([p["word"] for p in pieces]),
            "start": pieces[0]["start"], "end": pieces[-1]["end"]}


def aggregate_entities(text: str, ids: Sequence[int], starts: Sequence[int], ends: Sequence[int],
                       logits: np.ndarray, labels: Sequence[str], vocabulary: Sequence[str], unk_id: int,
                       aggregation_strategy: str = "none", ignore_labels: Sequence[str] = ("O",)) -> list[dict]:
    """One text's pieces (ids, character offsets, logits; no ``[CLS]``/``[SEP]``) -> its entities, by
    Hugging Face's rules (``transformers.TokenClassificationPipeline.postprocess``, fast tokenizer):

    * scores: softmax of the logits; a piece's ``word`` is its vocabulary string (``##ma``), except an
      ``[UNK]`` piece, which shows the text it covers; a piece is a *subword* when that string's length
      differs from the text it covers (``##ma`` vs ``ma``);
    * ``"none"``: one dict per piece, ``{"entity", "score", "index", "word", "start", "end"}`` (``index``:
      the piece's position in the model input, ``[CLS]`` being 0);
    * ``"simple"``: pieces grouped while the type stays the same and the next tag is not ``B-``;
      ``{"entity_group", "score" (mean), "word", "start", "end"}``;
    * ``"first"``/``"max"``/``"average"``: a word (a piece and the subwords after it) first takes one
      label (its first piece's; its most confident piece's; the argmax of the mean of its pieces'
      scores), then words are grouped as in ``"simple"``.

    Results whose label (or group) is in ``ignore_labels`` are dropped.
    """
    if aggregation_strategy not in AGGREGATION_STRATEGIES:
        raise ValueError(f"aggregation_strategy must be one of {AGGREGATION_STRATEGIES}, got {aggregation_strategy!r}.")
    scores = _softmax(logits) if len(ids) else np.zeros((0, len(labels)), np.float32)
    pre_entities = []
    for i, (token_id, start, end) in enumerate(zip(ids, starts, ends)):
        token_id, start, end = int(token_id), int(start), int(end)
        word = vocabulary[token_id]
        reference = text[start:end]
        is_subword = len(word) != len(reference)
        if token_id == unk_id:
            word, is_subword = reference, False
        pre_entities.append({"word": word, "scores": scores[i], "start": start, "end": end, "index": i + 1,
                             "is_subword": is_subword})
    if aggregation_strategy in ("none", "simple"):
        entities = []
        for p in pre_entities:
            idx = int(p["scores"].argmax())
            entities.append({"entity": labels[idx], "score": float(p["scores"][idx]), "index": p["index"],
                             "word": p["word"], "start": p["start"], "end": p["end"]})
    else:
        entities, group = [], None
        for p in pre_entities:
            if group is None:
                group = [p]
            elif p["is_subword"]:
                group.append(p)
            else:
                entities.append(_aggregate_word(group, aggregation_strategy, labels))
                group = [p]
        if group is not None:
            entities.append(_aggregate_word(group, aggregation_strategy, labels))
    if aggregation_strategy != "none":
        entities = _group_entities(entities)
    ignore = set(ignore_labels)
    return [e for e in entities if e.get("entity") not in ignore and e.get("entity_group") not in ignore]


# ----------------------------------------------------------------------------- word-level prediction
def predict_word_tags(model: BertTokenClassifier, sentences: Sequence[Sequence[str]], batch_size: int = 32,
                      stride: int | None = None) -> list[list[str]]:
    """Per sentence of words, one predicted tag per word: the argmax label of the word's first piece
    (the label the model was trained on); any length (windows). A word with no piece gets ``O``.
    These are the tags :func:`entity_metrics` scores against the gold ones."""
    labels = model.label_names
    outside = "O" if "O" in labels else labels[0]
    texts_spans = [word_spans(words) for words in sentences]
    results = model.piece_logits([text for text, _ in texts_spans], stride=stride, batch_size=batch_size)
    tags = []
    for (_, spans), (_, starts, _, logits) in zip(texts_spans, results):
        piece_tags = [labels[i] for i in logits.argmax(-1)] if len(starts) else []
        tags.append(word_labels_from_pieces(word_ids_of_pieces(starts, spans), piece_tags, len(spans),
                                            fill=outside))
    return tags


# ----------------------------------------------------------------------------- metric
def repair_iob2(tags: Sequence[str]) -> list[str]:
    """IOB2 repair: an ``I-X`` that does not follow ``B-X``/``I-X`` becomes ``B-X`` (what the default
    CoNLL chunking assumes anyway).

    >>> repair_iob2(["O", "I-person", "I-person", "I-location", "B-group"])
    ['O', 'B-person', 'I-person', 'B-location', 'B-group']
    """
    out, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def strict_entities(tags: Sequence[str], on_invalid: str = "ignore", where: str = "") -> list[tuple[str, int, int]]:
    """``(type, start, end)`` entities of IOB2 tags in seqeval's strict mode: ``B-X`` then its run of
    ``I-X``. An ``I-X`` not continuing an ``X`` entity is invalid: ``on_invalid="ignore"`` (seqeval) skips it,
    ``"raise"`` is a :class:`ModelInputError`, ``"repair"`` reads it as ``B-X`` (:func:`repair_iob2`).
    Prefixes other than ``B``/``I``/``O`` are an error in strict IOB2.

    >>> strict_entities(["I-person", "B-person", "I-person", "O", "I-group"])
    [('person', 1, 3)]
    """
    if on_invalid not in ("ignore", "raise", "repair"):
        raise ValueError(f"on_invalid must be 'ignore', 'raise' or 'repair', got {on_invalid!r}.")
    tags = list(tags)
    for i, tag in enumerate(tags):
        if tag != "O" and tag[:2] not in ("B-", "I-"):
            raise ModelInputError(f"{where}tag {i} {tag!r} is not IOB2 (O, B-X, I-X): strict mode reads IOB2 only.")
    if on_invalid == "repair":
        tags = repair_iob2(tags)
    entities, i = [], 0
    while i < len(tags):
        tag = tags[i]
        if tag.startswith("B-"):
            end = i + 1
            while end < len(tags) and tags[end] == "I-" + tag[2:]:
                end += 1
            entities.append((tag[2:], i, end))
            i = end
            continue
        if tag.startswith("I-") and on_invalid == "raise":
            raise ModelInputError(f"{where}tag {i} {tag!r} starts an entity without B-{tag[2:]} (invalid IOB2); "
                                  f"pass on_invalid='repair' to read it as B-{tag[2:]}, or 'ignore' (seqeval).")
        i += 1
    return entities


def entity_metrics(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]], mode: str = "default",
                   on_invalid: str = "ignore") -> dict[str, Any]:
    """Entity-level precision, recall and F1 (CoNLL): an entity is right when its type, first and last word
    are all right. Micro over all entities, and per type; the same numbers as ``seqeval``
    (``mode="default"``: its default; ``mode="strict"``: ``mode="strict", scheme=IOB2``).

    Returns ``{"precision", "recall", "f1", "true_entities", "pred_entities", "correct", "per_type":
    {type: {"precision", "recall", "f1", "support"}}}`` (0.0 where a ratio is 0/0, as seqeval).
    Sentences and their tag lists must pair up one to one.
    """
    if mode not in ("default", "strict"):
        raise ValueError(f"mode must be 'default' or 'strict', got {mode!r}.")
    if len(true_tags) != len(pred_tags):
        raise ModelInputError(f"{len(true_tags)} gold sentences but {len(pred_tags)} predicted.")
    true_set, pred_set = set(), set()
    for s, (gold, pred) in enumerate(zip(true_tags, pred_tags)):
        if len(gold) != len(pred):
            raise ModelInputError(f"sentence {s}: {len(gold)} gold tags but {len(pred)} predicted.")
        for source, target in ((gold, true_set), (pred, pred_set)):
            if mode == "default":
                chunks = entity_chunks(source)
            else:
                chunks = strict_entities(source, on_invalid=on_invalid, where=f"sentence {s}: ")
            target.update((s,) + chunk for chunk in chunks)

    def prf(true: set, pred: set) -> tuple[float, float, float]:
        correct = len(true & pred)
        p = correct / len(pred) if pred else 0.0
        r = correct / len(true) if true else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    per_type = {}
    for kind in sorted({e[1] for e in true_set | pred_set}):
        t = {e for e in true_set if e[1] == kind}
        p = {e for e in pred_set if e[1] == kind}
        precision, recall, f1 = prf(t, p)
        per_type[kind] = {"precision": precision, "recall": recall, "f1": f1, "support": len(t)}
    precision, recall, f1 = prf(true_set, pred_set)
    return {"precision": precision, "recall": recall, "f1": f1, "true_entities": len(true_set),
            "pred_entities": len(pred_set), "correct": len(true_set & pred_set), "per_type": per_type}


class EntityF1(keras.metrics.Metric):
    """Entity-level micro F1 (CoNLL default chunking) as a Keras metric, for ``fit``'s validation logs
    (``val_entity_f1``: the fine-tuning run keeps the epoch where it is best).

    ``y_true``: piece label ids with ``-100`` on ignored pieces; ``y_pred``: logits. The labelled pieces of
    each row, in order, are its words. Counting runs in NumPy (``tf.numpy_function``): not under XLA.
    """

    def __init__(self, labels: Sequence[str], name: str = "entity_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_list = list(labels)
        self.counts = self.add_variable(shape=(3,), initializer="zeros", name="counts", dtype="float64")

    def _count(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        tp = fp = fn = 0
        for gold_row, pred_row in zip(y_true, y_pred):
            keep = gold_row != IGNORE_INDEX
            gold = set(entity_chunks([self.label_list[i] for i in gold_row[keep]]))
            pred = set(entity_chunks([self.label_list[i] for i in pred_row[keep]]))
            tp, fp, fn = tp + len(gold & pred), fp + len(pred - gold), fn + len(gold - pred)
        return np.array([tp, fp, fn], np.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        pred_ids = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
        counts = tf.numpy_function(self._count, [tf.cast(y_true, tf.int32), pred_ids], tf.float64)
        self.counts.assign_add(tf.reshape(counts, [3]))

    def result(self):
        tp, fp, fn = self.counts[0], self.counts[1], self.counts[2]
        return tf.math.divide_no_nan(2 * tp, 2 * tp + fp + fn)

    def reset_state(self):
        self.counts.assign(tf.zeros([3], tf.float64))

    def get_config(self) -> dict:
        return {**super().get_config(), "labels": self.label_list}


# ----------------------------------------------------------------------------- baselines (lesson 10)
def most_frequent_tag_baseline(train: ConllData, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    """Each word gets the tag it had most often in ``train`` (exact string; ties: the first seen), ``O``
    for a word never seen: the baseline every NER model must beat.

    >>> train = ConllData([["Bath", "is", "Bath"]], [["B-location", "O", "B-location"]])
    >>> most_frequent_tag_baseline(train, [["Bath", "Leeds"]])
    [['B-location', 'O']]
    """
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for words, tags in zip(train.sentences, train.tags):
        for word, tag in zip(words, tags):
            counts[word][tag] += 1
    return [[counts[w].most_common(1)[0][0] if w in counts else "O" for w in words] for words in sentences]


def gazetteer_baseline(train: ConllData, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    """A capitalisation + gazetteer rule, no learning beyond counting ``train``:

    1. gazetteer: every entity of ``train`` (its words, lower-cased -> its most frequent type), matched longest
       first where the first word is capitalised or starts with ``@``/``#``;
    2. capitals: elsewhere, a run of Title-case words (not the sentence's first word, not ALL CAPS, never seen
       capitalised outside an entity in ``train``) is one entity of ``train``'s most frequent type.

    >>> train = ConllData([["I", "love", "New", "York"], ["Hi", "Bob"], ["Hi", "Sue"]],
    ...                   [["O", "O", "B-location", "I-location"], ["O", "B-person"], ["O", "B-person"]])
    >>> gazetteer_baseline(train, [["Hi", "new", "york", "and", "New", "York", "says", "Ann", "Lee"]])
    [['O', 'O', 'O', 'O', 'B-location', 'I-location', 'O', 'B-person', 'I-person']]
    """
    types: dict[tuple[str, ...], collections.Counter] = collections.defaultdict(collections.Counter)
    all_types: collections.Counter = collections.Counter()
    capitalised_outside: set[str] = set()
    for words, tags in zip(train.sentences, train.tags):
        for kind, start, end in entity_chunks(tags):
            types[tuple(w.lower() for w in words[start:end])][kind] += 1
            all_types[kind] += 1
        capitalised_outside.update(w.lower() for w, t in zip(words, tags) if t == "O" and w[:1].isupper())
    gazetteer = {k: c.most_common(1)[0][0] for k, c in types.items()}
    default = all_types.most_common(1)[0][0] if all_types else "O"
    longest = max((len(k) for k in gazetteer), default=0)

    def title_case(words: Sequence[str], j: int) -> bool:
        w = words[j]
        return j > 0 and w[:1].isupper() and not w.isupper() and w.lower() not in capitalised_outside

    out = []
    for words in sentences:
        tags, i = ["O"] * len(words), 0
        lowered = [w.lower() for w in words]
        while i < len(words):
            match = 0
            if words[i][:1].isupper() or words[i][:1] in "@#":
                match = next((n for n in range(min(longest, len(words) - i), 0, -1)
                              if tuple(lowered[i:i + n]) in gazetteer), 0)
            if match:
                kind = gazetteer[tuple(lowered[i:i + match])]
            elif default != "O" and title_case(words, i):
                kind, match = default, 1
                while i + match < len(words) and title_case(words, i + match):
                    match += 1
            else:
                i += 1
                continue
            tags[i:i + match] = ["B-" + kind] + ["I-" + kind] * (match - 1)
            i += match
        out.append(tags)
    return out


# ----------------------------------------------------------------------------- the pipeline
class TokenClassificationPipeline(TaskPipeline):
    """``pipeline("ner")`` (alias ``"token-classification"``), shaped as Hugging Face's.

    Per text a list of entities: with ``aggregation_strategy="none"`` (the default, as in HF)
    ``{"entity", "score", "index", "word", "start", "end"}`` per piece not labelled ``O``; otherwise
    ``{"entity_group", "score", "word", "start", "end"}`` per entity. One string in -> one list out; a list
    in -> a list of lists. Any length: windows of the preprocessor's length sharing ``stride`` pieces.

    Args:
        model: a :class:`BertTokenClassifier` with a preprocessor.
        aggregation_strategy: ``"none"``, ``"simple"``, ``"first"``, ``"max"`` or ``"average"``.
        ignore_labels: labels left out of the results (``["O"]``).
        stride: pieces shared by consecutive windows of a long text (default: a quarter of the window).
        batch_size: windows per forward pass.
    """

    def __init__(self, model: BertTokenClassifier, aggregation_strategy: str = "none",
                 ignore_labels: Sequence[str] = ("O",), stride: int | None = None, batch_size: int = 32):
        if not isinstance(model, BertTokenClassifier):
            raise TypeError(f"ner needs a bertcourse.tasks.BertTokenClassifier, got {type(model).__name__}.")
        model._require_preprocessor()
        if aggregation_strategy not in AGGREGATION_STRATEGIES:
            raise ValueError(f"aggregation_strategy must be one of {AGGREGATION_STRATEGIES}, got "
                             f"{aggregation_strategy!r}.")
        super().__init__(model, batch_size=batch_size)
        self.aggregation_strategy = aggregation_strategy
        self.ignore_labels = tuple(ignore_labels)
        self.stride = stride

    def _inputs(self, raw: Any) -> tuple[list, bool]:
        if isinstance(raw, str):
            return [raw], True
        if isinstance(raw, (list, tuple)) and all(isinstance(x, str) for x in raw):
            return list(raw), False
        raise TypeError(f"ner takes a string or a list of strings, got {type(raw).__name__}.")

    def _run(self, items: list, aggregation_strategy: str | None = None, ignore_labels=None,
             stride: int | None = None, batch_size: int | None = None) -> list:
        outputs = self.model.piece_logits(items, stride=self.stride if stride is None else stride,
                                          batch_size=batch_size or self.batch_size)
        return self.model.postprocess(outputs, texts=items,
                                      aggregation_strategy=aggregation_strategy or self.aggregation_strategy,
                                      ignore_labels=self.ignore_labels if ignore_labels is None else ignore_labels)

    def __call__(self, inputs: Any, aggregation_strategy: str | None = None, ignore_labels=None,
                 stride: int | None = None, batch_size: int | None = None):
        items, single = self._inputs(inputs)
        results: list = []
        # up to 1024 texts per step: their windows are sorted by length, then batched (less padding)
        for chunk in self.batches(items, 1024):
            results.extend(self._run(list(chunk), aggregation_strategy=aggregation_strategy,
                                     ignore_labels=ignore_labels, stride=stride, batch_size=batch_size))
        return results[0] if single else results


# ----------------------------------------------------------------------------- Hugging Face export
def save_hf_token_classifier(model: BertTokenClassifier, path) -> Path:
    """Write ``model`` as a Hugging Face ``BertForTokenClassification`` directory (``bert.*`` encoder
    tensors, ``classifier.weight``/``classifier.bias``, ``id2label``/``label2id`` in ``config.json``), for
    ``transformers.pipeline("ner", model=path)``: the twin of :class:`TokenClassificationPipeline`.
    (HF's BERT for tokens has no pooler, so it ignores the ``bert.pooler`` tensors written here.)"""
    pre = model._require_preprocessor()
    root = save_hf_bert(model.backbone, pre.tokenizer, path, prefix="bert.")
    weights = root / "model.safetensors"
    tensors = load_file(str(weights))
    kernel, bias = (np.asarray(v.numpy() if hasattr(v, "numpy") else v) for v in model.output_dense.weights)
    tensors["classifier.weight"] = np.ascontiguousarray(kernel.T.astype(np.float32))
    tensors["classifier.bias"] = bias.astype(np.float32)
    save_file(tensors, str(weights), metadata={"format": "pt"})
    config = json.loads((root / "config.json").read_text(encoding="utf-8"))
    labels = model.label_names
    config.update({"architectures": ["BertForTokenClassification"],
                   "id2label": {str(i): label for i, label in enumerate(labels)},
                   "label2id": {label: i for i, label in enumerate(labels)}})
    (root / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return root
