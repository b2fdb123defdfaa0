"""Task models on top of ``BertBackbone``.

``SentenceEncoder`` (lessons 05 and 12): one fixed-size vector per sentence, sentence-transformers
style::

    strings --FastWordPieceTokenizer (in graph)--> [CLS] ids [SEP] --BertBackbone--> h [B, S, H]
      "mean": sum_t mask_t h_t / sum_t mask_t      (attention-mask mean pooling: padding never counts)
      "cls":  h_[CLS], the raw first vector         (for comparison: strongly anisotropic)
      "pooler": tanh(W h_[CLS] + b), BERT's NSP pooler
    then x / ||x||  (normalize=True), so a dot product is the cosine.

>>> from bertcourse.models import BertBackbone
>>> from bertcourse.text import FastWordPieceTokenizer
>>> enc = SentenceEncoder(BertBackbone("tiny"), FastWordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"]))
>>> enc.encode(["a a", "a"]).shape
(2, 128)
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
from keras import ops

__all__ = ["SentenceEncoder", "POOLING_MODES"]

POOLING_MODES = ("mean", "cls", "pooler")


@keras.saving.register_keras_serializable(package="bertcourse")
class SentenceEncoder(keras.Model):
    """A ``BertBackbone`` + pooling + L2 normalisation: sentences in, unit vectors out.

    Args:
        backbone: a :class:`~bertcourse.models.BertBackbone`.
        tokenizer: a :class:`~bertcourse.text.FastWordPieceTokenizer` with the backbone's vocabulary
            (needed by ``encode``; ``call`` takes ids).
        pooling: ``"mean"`` (attention-mask mean of the last layer, as all-MiniLM-L6-v2 was trained),
            ``"cls"`` (the raw ``[CLS]`` vector) or ``"pooler"`` (BERT's tanh pooler output).
        normalize: divide by the L2 norm (``max(||x||, 1e-12)``, as ``torch.nn.functional.normalize``).
        max_seq_length: longer inputs are cut to ``[CLS]`` + the first ``max_seq_length - 2`` tokens
            + ``[SEP]``. all-MiniLM-L6-v2 uses 256 (its ``sentence_bert_config.json``); note that its
            ``tokenizer.json`` carries a truncation of 128, which sentence-transformers overrides
            with 256, and so do we.

    ``call`` takes the backbone's input dict and returns ``[batch, hidden]`` embeddings;
    ``encode(list_of_strings)`` does tokenization, length-sorted batching and returns numpy.
    """

    def __init__(self, backbone, tokenizer=None, pooling: str = "mean", normalize: bool = True,
                 max_seq_length: int = 256, **kwargs):
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}.")
        max_pos = backbone.config.max_position_embeddings
        if not isinstance(max_seq_length, int) or not 3 <= max_seq_length <= max_pos:
            raise ValueError(f"max_seq_length must be an int in [3, {max_pos}] (the backbone's position table), "
                             f"got {max_seq_length!r}.")
        super().__init__(**kwargs)
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = bool(normalize)
        self.max_seq_length = max_seq_length
        self._encode_fns: dict[bool, object] = {}

    @property
    def embedding_size(self) -> int:
        return self.backbone.config.hidden_size

    # ------------------------------------------------------------------ tensors
    def pool(self, outputs, padding_mask, pooling: str | None = None):
        """Pool backbone ``outputs`` (its dict) to ``[batch, hidden]`` and normalise.

        ``pooling`` overrides ``self.pooling`` (one forward pass can feed several poolings)."""
        pooling = pooling or self.pooling
        if pooling == "mean":
            h = outputs["sequence_output"]
            mask = ops.cast(padding_mask, h.dtype)[:, :, None]
            summed = ops.sum(h * mask, axis=1)
            count = ops.maximum(ops.sum(mask, axis=1), 1e-9)
            x = summed / count
        elif pooling == "cls":
            x = outputs["sequence_output"][:, 0, :]
        else:
            x = outputs["pooled_output"]
        if self.normalize:
            norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))
            x = x / ops.maximum(norm, 1e-12)
        return x

    def call(self, inputs, training=None):
        outputs = self.backbone(inputs, training=training)
        return self.pool(outputs, inputs["padding_mask"])

    # ------------------------------------------------------------------ strings
    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError("This SentenceEncoder has no tokenizer: pass tokenizer=FastWordPieceTokenizer(...) "
                             "to encode strings, or call it on token ids.")
        return self.tokenizer

    def _ragged_ids(self, sentences: Sequence[str]):
        """Token ids without specials, cut to ``max_seq_length - 2``, as a ``tf.RaggedTensor``."""
        import tensorflow as tf

        tok = self._require_tokenizer()
        if isinstance(sentences, str):
            raise TypeError("encode takes a list of strings; wrap a single sentence in a list: encode([text]).")
        sentences = list(sentences)
        bad = next((s for s in sentences if not isinstance(s, str)), None)
        if bad is not None:
            raise TypeError(f"encode takes strings, got an element of type {type(bad).__name__}.")
        if not sentences:
            return tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([0], tf.int64))
        chunks = [tok(tf.constant(sentences[i:i + 4096])) for i in range(0, len(sentences), 4096)]
        ids = chunks[0] if len(chunks) == 1 else tf.concat(chunks, axis=0)
        return ids[:, : self.max_seq_length - 2]

    def tokenize(self, sentences: Sequence[str]) -> list[list[int]]:
        """The ids the model sees for each sentence: ``[CLS] ... [SEP]``, truncated to ``max_seq_length``."""
        tok = self._require_tokenizer()
        ids = self._ragged_ids(sentences).to_list()
        return [[tok.cls_id] + row + [tok.sep_id] for row in ids]

    def _forward(self, jit_compile: bool, modes: tuple[str, ...]):
        key = (jit_compile, modes)
        if key not in self._encode_fns:
            import tensorflow as tf

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

        Tokenization runs in the TensorFlow graph (``FastWordPieceTokenizer``). Sentences are
        sorted by token length so a batch holds similar lengths and little padding, then put back
        in the input order. Each batch is padded to its longest member (rounded up to
        ``pad_to_multiple_of``, which bounds the number of shapes ``jit_compile=True`` compiles).
        Results do not depend on the batch: padding is masked out of attention and pooling.
        """
        import tensorflow as tf

        from bertcourse.text.packing import pack_inputs

        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        tok = self._require_tokenizer()
        single = pooling is None or isinstance(pooling, str)
        modes = (pooling or self.pooling,) if single else tuple(pooling)
        bad = [m for m in modes if m not in POOLING_MODES]
        if bad or not modes:
            raise ValueError(f"pooling must be among {POOLING_MODES}, got {pooling!r}.")
        if len(sentences) == 0:
            empty = {m: np.zeros((0, self.embedding_size), np.float32) for m in modes}
            return empty[modes[0]] if single else empty
        ids = self._ragged_ids(sentences)
        lengths = ids.row_lengths().numpy()
        order = np.argsort(-lengths, kind="stable")
        forward = self._forward(bool(jit_compile), modes)
        outs = {m: np.empty((len(order), self.embedding_size), np.float32) for m in modes}
        steps = range(0, len(order), batch_size)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="encode", unit="batch")
        for start in steps:
            rows = order[start:start + batch_size]
            longest = int(lengths[rows].max()) + 2
            seq_len = min(self.max_seq_length, pad_to_multiple_of * math.ceil(longest / pad_to_multiple_of))
            packed = pack_inputs(tf.gather(ids, rows), seq_len, cls_id=tok.cls_id, sep_id=tok.sep_id,
                                 pad_id=tok.pad_id, max_position_embeddings=self.backbone.config.max_position_embeddings)
            emb = forward(tf.cast(packed["token_ids"], tf.int32), tf.cast(packed["padding_mask"], tf.int32))
            for m in modes:
                outs[m][rows] = np.asarray(emb[m], np.float32)
        return outs[modes[0]] if single else outs

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "tokenizer": None if self.tokenizer is None else keras.saving.serialize_keras_object(self.tokenizer),
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_seq_length": self.max_seq_length,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if config.get("tokenizer") is not None:
            config["tokenizer"] = keras.saving.deserialize_keras_object(config["tokenizer"])
        return cls(**config)
