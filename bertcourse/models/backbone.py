"""``BertBackbone``: the whole BERT encoder as one functional Keras model (lesson 04).

    token_ids, segment_ids --> BertEmbeddings --> EncoderBlock x num_layers --> sequence_output
                                                                  [CLS] row --> Dense + tanh --> pooled_output

>>> import numpy as np
>>> from bertcourse.models import BertBackbone
>>> backbone = BertBackbone("tiny")
>>> out = backbone({"token_ids": np.array([[101, 7592, 102, 0]]), "segment_ids": np.zeros((1, 4), "int32"),
...                 "padding_mask": np.array([[1, 1, 1, 0]])})
>>> tuple(out["sequence_output"].shape), tuple(out["pooled_output"].shape)
((1, 4, 128), (1, 128))
>>> backbone.count_params() == backbone.config.num_parameters()
True

Eager calls check the ids' values (one min/max per input; graph and symbolic calls skip it):

>>> backbone({"token_ids": np.array([[101, 30522]]), "segment_ids": np.zeros((1, 2), "int32"),
...           "padding_mask": np.ones((1, 2), "int32")})
Traceback (most recent call last):
...
bertcourse.errors.ModelInputError: 'token_ids' holds 30522 at [0, 1], outside the vocabulary: token ids must be in [0, 30522) (vocab_size=30522). Ids from another tokenizer? Use the vocabulary this model was trained with.
"""

from __future__ import annotations

from typing import Any, Mapping

import keras
import numpy as np
from keras import ops

from bertcourse.config import BertConfig
from bertcourse.errors import ModelInputError
from bertcourse.layers import BertEmbeddings, EncoderBlock, LayerNorm, bert_initializer, check_sequence_length

__all__ = ["BertBackbone", "INPUT_NAMES", "validate_inputs", "check_input_values", "causal_attention_mask"]

INPUT_NAMES = ("token_ids", "segment_ids", "padding_mask")
# What other libraries call the same inputs (for the error message).
_OTHER_NAMES = {"input_ids": "token_ids", "token_type_ids": "segment_ids", "attention_mask": "padding_mask",
                "input_mask": "padding_mask", "input_type_ids": "segment_ids", "input_word_ids": "token_ids"}


def _as_config(config: BertConfig | str | Mapping[str, Any] | None) -> BertConfig:
    if config is None:
        return BertConfig()
    if isinstance(config, BertConfig):
        return config
    if isinstance(config, str):
        return BertConfig.preset(config)
    if isinstance(config, Mapping):
        return BertConfig.from_dict(dict(config))
    raise TypeError(f"config must be a BertConfig, a preset name or a dict, got {type(config).__name__}.")


def _is_integer_dtype(x) -> bool:
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        x = np.asarray(x)
        dtype = x.dtype
    name = keras.backend.standardize_dtype(dtype)
    return name.startswith("int") or name.startswith("uint") or name == "bool"


def validate_inputs(inputs, max_position_embeddings: int) -> None:
    """Check the input dict a learner passes and explain what is wrong, before Keras does less clearly."""
    if not isinstance(inputs, Mapping):
        raise TypeError(
            f"BertBackbone takes a dict with keys {list(INPUT_NAMES)}; got a {type(inputs).__name__}. "
            f"Example: backbone({{'token_ids': ids, 'segment_ids': segs, 'padding_mask': mask}}).")
    keys = set(inputs)
    missing = [k for k in INPUT_NAMES if k not in keys]
    unexpected = sorted(keys - set(INPUT_NAMES))
    if missing or unexpected:
        hints = [f"'{k}' is called '{_OTHER_NAMES[k]}' here" for k in unexpected if k in _OTHER_NAMES]
        raise KeyError(
            f"BertBackbone inputs must be a dict with exactly the keys {list(INPUT_NAMES)}; "
            f"missing {missing}, unexpected {unexpected}." + (f" ({'; '.join(hints)}.)" if hints else ""))
    shapes = {}
    for name in INPUT_NAMES:
        value = inputs[name]
        shape = tuple(getattr(value, "shape", None) or np.shape(value))
        if len(shape) != 2:
            extra = " Add a batch axis, e.g. ids[None, :]." if len(shape) == 1 else ""
            raise ValueError(f"'{name}' must have shape [batch, seq_len] (rank 2); got shape {shape}.{extra}")
        if not _is_integer_dtype(value):
            dtype = getattr(value, "dtype", None) or np.asarray(value).dtype
            raise TypeError(f"'{name}' must hold integers (int32/int64); got dtype {dtype}. "
                            f"Token ids are indices into the vocabulary, not values: cast them with .astype('int32').")
        shapes[name] = shape
    ref = shapes["token_ids"]
    for name in INPUT_NAMES[1:]:
        for a, b in zip(ref, shapes[name]):
            if a is not None and b is not None and a != b:
                raise ValueError(f"'token_ids' has shape {ref} but '{name}' has shape {shapes[name]}: "
                                 f"all three inputs must have the same [batch, seq_len] shape.")
    check_sequence_length(ref[1], max_position_embeddings)


def causal_attention_mask(token_ids):
    """``[batch, seq, seq]`` booleans, True where query ``i`` may see key ``j``: ``j <= i`` (left-to-right).

    Built from ``token_ids``' shape with elementwise ops only, so it also works on symbolic inputs
    whose length is unknown (a functional model's ``keras.Input(shape=(None,))``).

    >>> np.asarray(causal_attention_mask(np.zeros((1, 3), "int32")))[0].astype(int).tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    position = ops.cumsum(ops.ones_like(token_ids, dtype="int32"), axis=1)  # [B, S]: 1, 2, ..., S
    return ops.less_equal(ops.expand_dims(position, 1), ops.expand_dims(position, 2))  # [B, Q, K]: k <= q


def _concrete(value) -> np.ndarray | None:
    """The values of an eager input as NumPy, or None for a symbolic one (KerasTensor, tf.function, jit)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, keras.KerasTensor):
        return None
    try:
        return keras.ops.convert_to_numpy(value)
    except Exception:  # a graph tensor (tf.function) or a tracer (jax.jit): values unknown, nothing to check
        return None


def check_input_values(inputs: Mapping[str, Any], config: BertConfig) -> None:
    """Raise ``ModelInputError`` if an eager input's ids fall outside the model's tables.

    Token ids must lie in ``[0, vocab_size)`` and segment ids in ``[0, type_vocab_size)``: out of
    range, TensorFlow on a CPU raises a raw ``InvalidArgumentError``, on a GPU it silently returns
    zeros, and ``-1`` silently reads the last row. Symbolic inputs (model building, ``fit``,
    ``predict``, ``tf.function``, ``jax.jit``) are not checked: their values are unknown.

    >>> check_input_values({"token_ids": np.array([[2, 5]]), "segment_ids": np.array([[0, 2]])},
    ...                    BertConfig.preset("tiny", vocab_size=6))
    Traceback (most recent call last):
    ...
    bertcourse.errors.ModelInputError: 'segment_ids' holds 2 at [0, 1], outside the segment table: segment ids must be in [0, 2) (type_vocab_size=2). BERT has two segments: 0 for sentence A (and [CLS]), 1 for sentence B.
    """
    limits = (("token_ids", config.vocab_size, "the vocabulary", "vocab_size",
               "Ids from another tokenizer? Use the vocabulary this model was trained with."),
              ("segment_ids", config.type_vocab_size, "the segment table", "type_vocab_size",
               "BERT has two segments: 0 for sentence A (and [CLS]), 1 for sentence B." if config.type_vocab_size == 2
               else "Segment ids count the sentences of a packed input, from 0."))
    for name, size, table, field, hint in limits:
        values = _concrete(inputs[name]) if name in inputs else None
        if values is None or values.size == 0:
            continue
        low, high = values.min(), values.max()
        if low >= 0 and high < size:
            continue
        where = np.argwhere((values < 0) | (values >= size))[0]
        bad = values[tuple(where)]
        raise ModelInputError(
            f"'{name}' holds {int(bad)} at {list(map(int, where))}, outside {table}: "
            f"{name.replace('_ids', '')} ids must be in [0, {size}) ({field}={size}). {hint}")


@keras.saving.register_keras_serializable(package="bertcourse")
class BertBackbone(keras.Model):
    """BERT's encoder: embeddings, ``num_layers`` encoder blocks and the [CLS] pooler.

    Args:
        config: a ``BertConfig``, a preset name (``"tiny"`` ... ``"large"``) or a config dict.
        output_hidden_states: also output ``hidden_states`` ``[batch, num_layers + 1, seq, hidden]``
            (the embeddings' output, then every block's output).
        output_attention_scores: also output ``attention_scores`` ``[batch, num_layers, heads, seq, seq]``,
            the attention probabilities of every layer and head.
        normalize_first: override ``config.normalize_first`` (pre-LN blocks, not BERT's, plus a final
            LayerNorm after the last block); the value is written into ``self.config``. ``None``: the config's.
        fused_qkv: compute Q, K, V with one matmul (same weights and results).
        causal: a left-to-right (GPT-style) encoder: position ``i`` attends only to positions ``<= i``
            (:func:`causal_attention_mask`), so its output never depends on tokens to its right. BERT is
            ``causal=False`` (every position sees both sides); lesson 07 compares the two.
        dtype: a dtype or dtype policy (e.g. ``"mixed_bfloat16"``); default: the global policy.

    Inputs: a dict ``token_ids``, ``segment_ids``, ``padding_mask``, each ``[batch, seq_len]`` int.
    Outputs: a dict ``sequence_output`` ``[batch, seq, hidden]``, ``pooled_output`` ``[batch, hidden]``
    (tanh(W h_[CLS] + b)), plus the optional outputs above.

    An eager call checks that token and segment ids fit the tables (``ModelInputError`` otherwise);
    one min/max per input: about 10 us against 290 ms for a ``mini`` forward pass on 32 x 128 ids
    (measured on a 2-core CPU), so it stays on.
    """

    def __init__(self, config: BertConfig | str | Mapping[str, Any] | None = None, output_hidden_states=False,
                 output_attention_scores=False, normalize_first: bool | None = None, fused_qkv=False,
                 causal: bool = False, dtype=None, **kwargs):
        cfg = _as_config(config)
        if normalize_first is not None and bool(normalize_first) != cfg.normalize_first:
            cfg = cfg.replace(normalize_first=bool(normalize_first))  # the override lives in the config
        normalize_first = cfg.normalize_first
        self.embeddings = BertEmbeddings(
            cfg.vocab_size, cfg.hidden_size, max_position_embeddings=cfg.max_position_embeddings,
            type_vocab_size=cfg.type_vocab_size, dropout=cfg.hidden_dropout,
            layer_norm_epsilon=cfg.layer_norm_epsilon, initializer_range=cfg.initializer_range,
            dtype=dtype, name="embeddings")
        self.encoder_layers = [
            EncoderBlock(cfg.num_heads, cfg.intermediate_size, hidden_act=cfg.hidden_act,
                         hidden_dropout=cfg.hidden_dropout, attention_dropout=cfg.attention_dropout,
                         layer_norm_epsilon=cfg.layer_norm_epsilon, initializer_range=cfg.initializer_range,
                         normalize_first=normalize_first, fused_qkv=fused_qkv, dtype=dtype, name=f"encoder_layer_{i}")
            for i in range(cfg.num_layers)
        ]
        # Pre-LN blocks leave the residual stream unnormalised: one LayerNorm after the last block
        # (Xiong et al. 2020; GPT-2). Post-LN blocks end in a LayerNorm already.
        self.final_layer_norm = LayerNorm(
            epsilon=cfg.layer_norm_epsilon, dtype=dtype, name="final_layer_norm") if normalize_first else None
        self.pooler = keras.layers.Dense(cfg.hidden_size, activation="tanh",
                                         kernel_initializer=bert_initializer(cfg.initializer_range),
                                         dtype=dtype, name="pooler")

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        x = self.embeddings(token_ids, segment_ids)
        attention_mask = causal_attention_mask(token_ids) if causal else None
        hidden_states, attention_scores = [x], []
        for block in self.encoder_layers:
            x, probs = block(x, padding_mask=padding_mask, attention_mask=attention_mask,
                             return_attention_scores=True)
            hidden_states.append(x)
            attention_scores.append(probs)
        if self.final_layer_norm is not None:
            x = self.final_layer_norm(x)
            hidden_states[-1] = x
        outputs = {"sequence_output": x, "pooled_output": self.pooler(x[:, 0, :])}
        if output_hidden_states:
            outputs["hidden_states"] = ops.stack(hidden_states, axis=1)
        if output_attention_scores:
            outputs["attention_scores"] = ops.stack(attention_scores, axis=1)
        super().__init__(inputs={"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask},
                         outputs=outputs, **kwargs)
        self._initialized = True
        if dtype is not None:  # a functional Model ignores dtype; record it for get_config (as keras-hub does)
            self.dtype_policy = keras.dtype_policies.get(dtype)
        self.config = cfg
        self.output_hidden_states = bool(output_hidden_states)
        self.output_attention_scores = bool(output_attention_scores)
        self.fused_qkv = bool(fused_qkv)
        self.causal = bool(causal)

    def attention_mask(self, token_ids):
        """The ``attention_mask`` the blocks get besides ``padding_mask``: the causal mask, or None."""
        return causal_attention_mask(token_ids) if self.causal else None

    def __setattr__(self, name, value):
        # On the PyTorch backend a Model is a torch Module, which refuses attributes set before
        # Module.__init__; the functional graph tracks the layers anyway (keras-hub does the same).
        if keras.config.backend() == "torch" and not hasattr(self, "_initialized"):
            return object.__setattr__(self, name, value)
        return super().__setattr__(name, value)

    @property
    def normalize_first(self) -> bool:
        """Pre-LN blocks + final LayerNorm (``config.normalize_first``)."""
        return self.config.normalize_first

    @property
    def token_embedding(self) -> keras.layers.Embedding:
        """The ``[vocab_size, hidden_size]`` token table (an MLM head ties its output to it)."""
        return self.embeddings.token_embedding

    def __call__(self, inputs, *args, **kwargs):
        validate_inputs(inputs, self.config.max_position_embeddings)
        check_input_values(inputs, self.config)
        return super().__call__(inputs, *args, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "config": self.config.to_dict(),
            "output_hidden_states": self.output_hidden_states,
            "output_attention_scores": self.output_attention_scores,
            "fused_qkv": self.fused_qkv,
            "causal": self.causal,
        }

    @classmethod
    def from_config(cls, config):
        # Configs saved before normalize_first moved into BertConfig carry it as a separate key (the override).
        config = dict(config)
        if "dtype" in config and isinstance(config["dtype"], dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
