"""Feature extraction: sentence embeddings (:class:`SentenceEncoder`, lessons 05 and 12) and token
vectors (:class:`FeatureExtractionPipeline`, Hugging Face's ``pipeline("feature-extraction")``).

``SentenceEncoder``: one fixed-size vector per sentence, sentence-transformers style::

    strings --BertPreprocessor (in graph)--> [CLS] ids [SEP] --BertBackbone--> h [B, S, H]
      "mean": sum_t mask_t h_t / sum_t mask_t      (attention-mask mean pooling: padding never counts)
      "cls":  h_[CLS], the raw first vector         (for comparison: strongly anisotropic)
      "pooler": tanh(W h_[CLS] + b), BERT's NSP pooler
    then x / ||x||  (normalize=True), so a dot product is the cosine.

Its metric is :func:`cosine_similarity` (``retrieval`` ranks with it; STS-B scores Spearman's rho of it).

>>> from bertcourse.models import BertBackbone
>>> from bertcourse.text import FastWordPieceTokenizer
>>> enc = SentenceEncoder(BertBackbone("tiny"), FastWordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"]))
>>> enc.encode(["a a", "a"]).shape
(2, 128)
>>> enc.tokenize(["a a", "a"])
[[2, 4, 4, 3], [2, 4, 3]]
>>> vectors = FeatureExtractionPipeline(enc)("a a")     # Hugging Face's shape: [1][tokens][hidden]
>>> len(vectors), len(vectors[0]), len(vectors[0][0])
(1, 4, 128)
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from bertcourse.tasks.base import Task, TaskPipeline, as_preprocessor

__all__ = ["SentenceEncoder", "FeatureExtractionPipeline", "POOLING_MODES", "cosine_similarity", "pool_outputs"]

POOLING_MODES = ("mean", "cls", "pooler")
_PREPROCESS_CHUNK = 4096


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of every row of ``a`` with every row of ``b``: ``[len(a), len(b)]``.

    >>> cosine_similarity(np.array([[1.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 3.0]])).tolist()
    [[1.0, 0.0]]
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return a @ b.T


def pool_outputs(outputs: dict, padding_mask, pooling: str = "mean", normalize: bool = True):
    """The backbone's outputs -> ``[batch, hidden]`` sentence vectors (``pooling`` in ``POOLING_MODES``),
    divided by their L2 norm if ``normalize``. Padding never counts in the mean."""
    if pooling == "mean":
        h = outputs["sequence_output"]
        mask = ops.cast(padding_mask, h.dtype)[:, :, None]
        summed = ops.sum(h * mask, axis=1)
        count = ops.maximum(ops.sum(mask, axis=1), 1e-9)
        x = summed / count
    elif pooling == "cls":
        x = outputs["sequence_output"][:, 0, :]
    elif pooling == "pooler":
        x = outputs["pooled_output"]
    else:
        raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}.")
    if normalize:
        norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))
        x = x / ops.maximum(norm, 1e-12)
    return x


@keras.saving.register_keras_serializable(package="bertcourse")
class SentenceEncoder(Task):
    """A ``BertBackbone`` + pooling + L2 normalisation: sentences in, unit vectors out.

    Args:
        backbone: a :class:`~bertcourse.models.BertBackbone`.
        preprocessor: a :class:`~bertcourse.text.BertPreprocessor` with the backbone's vocabulary, or
            a tokenizer (:class:`~bertcourse.text.FastWordPieceTokenizer`), wrapped in one with
            ``sequence_length=max_seq_length``. Needed by ``encode``; ``call`` takes ids.
        pooling: ``"mean"`` (attention-mask mean of the last layer, as all-MiniLM-L6-v2 was trained),
            ``"cls"`` (the raw ``[CLS]`` vector) or ``"pooler"`` (BERT's tanh pooler output).
        normalize: divide by the L2 norm (``max(||x||, 1e-12)``, as ``torch.nn.functional.normalize``).
        max_seq_length: longer inputs are cut to ``[CLS]`` + the first ``max_seq_length - 2`` tokens
            + ``[SEP]`` (the preprocessor's ``sequence_length``). Default: the preprocessor's, else
            ``min(256, max_position_embeddings)``. all-MiniLM-L6-v2 uses 256 (its
            ``sentence_bert_config.json``); its ``tokenizer.json`` carries a truncation of 128, which
            sentence-transformers overrides with 256, and so do we.

    As a Keras model (functional, like every task) it takes the backbone's input dict and returns
    ``[batch, hidden]`` embeddings;
    ``encode(list_of_strings)`` preprocesses, batches by length and returns numpy;
    ``predict(list_of_strings)`` is the plain Keras path (every batch padded to ``max_seq_length``).
    """

    def __init__(self, backbone, preprocessor=None, pooling: str = "mean", normalize: bool = True,
                 max_seq_length: int | None = None, tokenizer=None, **kwargs):
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}.")
        if preprocessor is not None and tokenizer is not None:
            raise ValueError("Pass preprocessor= or tokenizer=, not both.")
        preprocessor = preprocessor if preprocessor is not None else tokenizer
        max_pos = backbone.config.max_position_embeddings
        own_length = getattr(preprocessor, "sequence_length", None)
        if max_seq_length is None:
            max_seq_length = own_length if own_length is not None else min(256, max_pos)
        if isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int) \
                or not 3 <= max_seq_length <= max_pos:
            raise ValueError(f"max_seq_length must be an int in [3, {max_pos}] (the backbone's position table), "
                             f"got {max_seq_length!r}.")
        if own_length is not None and own_length != max_seq_length:
            raise ValueError(f"max_seq_length={max_seq_length} differs from the preprocessor's sequence_length="
                             f"{own_length}: give one of them.")
        self.backbone = backbone
        self.preprocessor = as_preprocessor(preprocessor, sequence_length=max_seq_length)
        inputs = backbone.input
        outputs = pool_outputs(backbone(inputs), inputs["padding_mask"], pooling, bool(normalize))
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.pooling = pooling
        self.normalize = bool(normalize)
        self.max_seq_length = max_seq_length
        self._encode_fns: dict = {}

    @property
    def tokenizer(self):
        """The preprocessor's tokenizer (``None`` without a preprocessor)."""
        return None if self.preprocessor is None else self.preprocessor.tokenizer

    @property
    def embedding_size(self) -> int:
        return self.backbone.config.hidden_size

    # ------------------------------------------------------------------ tensors
    def pool(self, outputs, padding_mask, pooling: str | None = None):
        """Pool backbone ``outputs`` (its dict) to ``[batch, hidden]`` and normalise.

        ``pooling`` overrides ``self.pooling`` (one forward pass can feed several poolings)."""
        return pool_outputs(outputs, padding_mask, pooling or self.pooling, self.normalize)

    # ------------------------------------------------------------------ strings
    def _packed(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(token_ids [n, max_seq_length], lengths [n])`` from the preprocessor, in chunks."""
        if isinstance(sentences, str):
            raise TypeError("encode takes a list of strings; wrap a single sentence in a list: encode([text]).")
        sentences = list(sentences)
        bad = next((s for s in sentences if not isinstance(s, str)), None)
        if bad is not None:
            raise TypeError(f"encode takes strings, got an element of type {type(bad).__name__}.")
        pre = self._require_preprocessor()
        ids, lengths = [np.zeros((0, self.max_seq_length), np.int32)], [np.zeros((0,), np.int64)]
        for start in range(0, len(sentences), _PREPROCESS_CHUNK):
            packed = pre(sentences[start:start + _PREPROCESS_CHUNK])
            ids.append(np.asarray(packed["token_ids"], np.int32))
            lengths.append(np.asarray(packed["padding_mask"]).astype(bool).sum(axis=1))
        return np.concatenate(ids), np.concatenate(lengths)

    def tokenize(self, sentences: Sequence[str]) -> list[list[int]]:
        """The ids the model sees for each sentence: ``[CLS] ... [SEP]``, truncated to ``max_seq_length``."""
        ids, lengths = self._packed(sentences)
        return [row[:n].tolist() for row, n in zip(ids, lengths)]

    def _forward(self, jit_compile: bool, modes: tuple[str, ...]):
        key = (jit_compile, modes)
        if key not in self._encode_fns:
            spec = tf.TensorSpec([None, None], tf.int32)

            @tf.function(input_signature=[spec, spec], jit_compile=jit_compile, reduce_retracing=True)
            def forward(token_ids, padding_mask):
                inputs = {"token_ids": token_ids, "segment_ids": tf.zeros_like(token_ids),
                          "padding_mask": padding_mask}
                outputs = self.backbone(inputs, training=False)
                return {m: self.pool(outputs, padding_mask, pooling=m) for m in modes}

            self._encode_fns[key] = forward
        return self._encode_fns[key]

    def encode(self, sentences: Sequence[str], batch_size: int = 32, jit_compile: bool = False,
               pad_to_multiple_of: int = 8, progress: bool = False, pooling: str | Sequence[str] | None = None):
        """Embed a list of strings: ``np.ndarray [n, hidden]`` float32, rows in input order.

        ``pooling`` overrides the encoder's pooling; a list of modes (e.g. ``("mean", "cls")``) returns
        ``{mode: array}`` from ONE forward pass over the data.

        The preprocessor packs every sentence (in the TensorFlow graph, padded to ``max_seq_length``).
        Sentences are then sorted by token length so a batch holds similar lengths, and each batch
        keeps only the columns up to its longest member (rounded up to ``pad_to_multiple_of``, which
        bounds the number of shapes ``jit_compile=True`` compiles): the columns cut are padding only.
        Rows are put back in the input order. Results do not depend on the batch: padding is masked
        out of attention and pooling.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        single = pooling is None or isinstance(pooling, str)
        modes = (pooling or self.pooling,) if single else tuple(pooling)
        bad = [m for m in modes if m not in POOLING_MODES]
        if bad or not modes:
            raise ValueError(f"pooling must be among {POOLING_MODES}, got {pooling!r}.")
        ids, lengths = self._packed(sentences)
        if len(ids) == 0:
            empty = {m: np.zeros((0, self.embedding_size), np.float32) for m in modes}
            return empty[modes[0]] if single else empty
        order = np.argsort(-lengths, kind="stable")
        forward = self._forward(bool(jit_compile), modes)
        outs = {m: np.empty((len(order), self.embedding_size), np.float32) for m in modes}
        steps = range(0, len(order), batch_size)
        if progress:
            from tqdm.auto import tqdm  # lazy: optional progress bar

            steps = tqdm(steps, desc="encode", unit="batch")
        columns = np.arange(self.max_seq_length)
        for start in steps:
            rows = order[start:start + batch_size]
            longest = int(lengths[rows].max())
            seq_len = min(self.max_seq_length, pad_to_multiple_of * math.ceil(longest / pad_to_multiple_of))
            token_ids = ids[rows, :seq_len]
            padding_mask = (columns[None, :seq_len] < lengths[rows, None]).astype(np.int32)
            emb = forward(tf.constant(token_ids), tf.constant(padding_mask))
            for m in modes:
                outs[m][rows] = np.asarray(emb[m], np.float32)
        return outs[modes[0]] if single else outs

    def token_vectors(self, sentences: Sequence[str]) -> list[np.ndarray]:
        """The backbone's last-layer vector of every token (``[CLS]``/``[SEP]`` included, padding not):
        one ``[tokens, hidden]`` float32 array per sentence."""
        ids, lengths = self._packed(sentences)
        if len(ids) == 0:
            return []
        seq_len = int(lengths.max())
        columns = np.arange(seq_len)
        token_ids = ids[:, :seq_len]
        inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
                  "padding_mask": (columns[None, :] < lengths[:, None]).astype(np.int32)}
        h = np.asarray(self.backbone(inputs, training=False)["sequence_output"], np.float32)
        return [h[i, :n] for i, n in enumerate(lengths)]

    def postprocess(self, outputs: Any) -> list[list[float]]:
        """Embeddings ``[batch, hidden]`` -> one list of floats per sentence."""
        return np.asarray(outputs, np.float32).tolist()

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        return {**super().get_config(), "pooling": self.pooling, "normalize": self.normalize,
                "max_seq_length": self.max_seq_length}


class FeatureExtractionPipeline(TaskPipeline):
    """``pipeline("feature-extraction")``: token vectors in Hugging Face's shape, or sentence vectors.

    Calling it on one string returns ``[[v_CLS, v_1, ..., v_SEP]]`` (nested lists: 1 x tokens x hidden,
    the backbone's last layer, as ``transformers.FeatureExtractionPipeline``); on a list, a list of
    those. ``pooled=True`` returns the encoder's sentence embedding instead (its pooling and
    normalisation): one list of ``hidden`` floats per string. ``return_tensors=True`` gives NumPy
    arrays in place of lists.

    Args:
        model: a :class:`SentenceEncoder` with a preprocessor.
        batch_size: texts per forward pass.
    """

    def __init__(self, model: SentenceEncoder, batch_size: int = 32):
        if not isinstance(model, SentenceEncoder):
            raise TypeError(f"feature-extraction needs a bertcourse.tasks.SentenceEncoder, got {type(model).__name__}.")
        model._require_preprocessor()
        super().__init__(model, batch_size=batch_size)

    def _inputs(self, raw: Any) -> tuple[list, bool]:
        items, single = super()._inputs(raw)
        if items and isinstance(items[0], tuple):
            raise TypeError("feature-extraction takes single texts, not pairs.")
        return items, single

    def _run(self, items: list, pooled: bool = False, return_tensors: bool = False) -> list:
        if pooled:
            vectors = self.model.encode(items, batch_size=len(items))
            return list(vectors) if return_tensors else vectors.tolist()
        per_text = self.model.token_vectors(items)
        if return_tensors:
            return [v[None] for v in per_text]
        return [[v.tolist()] for v in per_text]
