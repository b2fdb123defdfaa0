"""The BERT hyper-parameters as one typed dataclass, with the standard presets.

Lesson 00 tours it; lesson 04 builds every preset and checks the counts below
against keras-hub's ``BertBackbone``.

>>> from bertcourse import BertConfig
>>> cfg = BertConfig.preset("base")
>>> cfg.num_layers, cfg.hidden_size, cfg.num_heads
(12, 768, 12)
>>> round(cfg.num_parameters() / 1e6, 1)   # the "110M" of the BERT paper
109.5
>>> pre_ln = BertConfig.preset("tiny", normalize_first=True)   # architecture travels with the config
>>> BertConfig.from_json(pre_ln.to_json()).normalize_first
True
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

__all__ = ["BertConfig", "PRESETS"]

_ACTIVATIONS = ("gelu", "gelu_approximate", "relu", "tanh")

# name -> (layers, hidden, heads). Intermediate size is 4 * hidden, as in every
# published BERT; heads = hidden / 64 as in Google's 24 "BERT miniatures"
# (Turc et al. 2019), whose names tiny/mini/small/medium these follow.
_PRESET_SHAPES: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
}
PRESETS: tuple[str, ...] = tuple(_PRESET_SHAPES)

# Hugging Face config.json key -> BertConfig field.
_HF_KEYS = {
    "vocab_size": "vocab_size",
    "num_hidden_layers": "num_layers",
    "hidden_size": "hidden_size",
    "num_attention_heads": "num_heads",
    "intermediate_size": "intermediate_size",
    "max_position_embeddings": "max_position_embeddings",
    "type_vocab_size": "type_vocab_size",
    "hidden_dropout_prob": "hidden_dropout",
    "attention_probs_dropout_prob": "attention_dropout",
    "layer_norm_eps": "layer_norm_epsilon",
    "hidden_act": "hidden_act",
    "initializer_range": "initializer_range",
}
# Hugging Face spells the tanh-approximated GELU "gelu_new" (or "gelu_pytorch_tanh").
_HF_ACT_IN = {"gelu": "gelu", "gelu_new": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate",
              "relu": "relu", "tanh": "tanh"}
_HF_ACT_OUT = {"gelu": "gelu", "gelu_approximate": "gelu_new", "relu": "relu", "tanh": "tanh"}


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Every number that fixes the shape of a BERT encoder.

    Defaults are BERT-Base uncased (Devlin et al. 2019, Table/Appendix A).

    Example:
        >>> BertConfig(num_layers=2, hidden_size=128, num_heads=2, intermediate_size=512).head_size
        64
    """

    vocab_size: int = 30522
    num_layers: int = 12
    hidden_size: int = 768
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_epsilon: float = 1e-12
    hidden_act: str = "gelu"  # exact erf GELU, as in BERT; "gelu_approximate" is keras-hub's
    initializer_range: float = 0.02
    # Pre-LayerNorm blocks plus a final LayerNorm (Xiong et al. 2020; GPT-2), not BERT's post-LN.
    # Hugging Face's BertModel cannot express it: to_hf_dict refuses it.
    normalize_first: bool = False

    def __post_init__(self) -> None:
        positive_ints = ("vocab_size", "num_layers", "hidden_size", "num_heads", "intermediate_size",
                         "max_position_embeddings", "type_vocab_size")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BertConfig.{name} must be a positive integer, got {value!r}.")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads}): "
                f"each head gets hidden_size / num_heads dimensions. "
                f"Try num_heads={self._divisor_hint()}."
            )
        for name in ("hidden_dropout", "attention_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"BertConfig.{name} must be in [0, 1), got {value!r}.")
        if not self.layer_norm_epsilon > 0:
            raise ValueError(f"layer_norm_epsilon must be > 0, got {self.layer_norm_epsilon!r}.")
        if not self.initializer_range > 0:
            raise ValueError(f"initializer_range must be > 0, got {self.initializer_range!r}.")
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {_ACTIVATIONS}, got {self.hidden_act!r}.")
        if not isinstance(self.normalize_first, bool):
            raise ValueError(f"BertConfig.normalize_first must be True or False, got {self.normalize_first!r}.")

    def _divisor_hint(self) -> int:
        return max(d for d in range(1, min(self.hidden_size, 64) + 1) if self.hidden_size % d == 0)

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "BertConfig":
        """One of ``PRESETS`` (tiny, mini, small, medium, base, large), fields overridable.

        >>> BertConfig.preset("mini", vocab_size=8000).vocab_size
        8000
        """
        key = str(name).lower()
        if key not in _PRESET_SHAPES:
            raise ValueError(f"Unknown preset {name!r}. Valid presets: {', '.join(PRESETS)}.")
        layers, hidden, heads = _PRESET_SHAPES[key]
        fields = dict(num_layers=layers, hidden_size=hidden, num_heads=heads, intermediate_size=4 * hidden)
        fields.update(overrides)
        return cls(**fields)

    def replace(self, **changes: Any) -> "BertConfig":
        """A copy with some fields changed (the dataclass is frozen)."""
        return dataclasses.replace(self, **changes)

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    # ------------------------------------------------------------------ counting
    def parameter_breakdown(self, include_pooler: bool = True) -> dict[str, int]:
        """Parameters by where they live, counted from the shapes (no model built).

        >>> b = BertConfig.preset("base").parameter_breakdown()
        >>> b["embeddings"], b["attention"], b["feedforward"]
        (23837184, 28366848, 56687616)
        """
        h, i, n = self.hidden_size, self.intermediate_size, self.num_layers
        embeddings = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * h + 2 * h
        attention = n * (4 * (h * h + h) + 2 * h)      # Q, K, V, output projections + their LayerNorm
        feedforward = n * ((h * i + i) + (i * h + h) + 2 * h)  # two dense layers + their LayerNorm
        out = {"embeddings": embeddings, "attention": attention, "feedforward": feedforward}
        if include_pooler:
            out["pooler"] = h * h + h
        return out

    def num_parameters(self, include_pooler: bool = True) -> int:
        """Total trainable parameters of the encoder (plus the [CLS] pooler by default)."""
        return sum(self.parameter_breakdown(include_pooler).values())

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """Our field names (what ``from_dict`` and ``BertBackbone(config=...)`` read back).

        >>> BertConfig.from_dict(BertConfig.preset("tiny").to_dict()) == BertConfig.preset("tiny")
        True
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BertConfig":
        """From our own field names or from a Hugging Face ``config.json`` dict (auto-detected)."""
        if "num_hidden_layers" in data or "model_type" in data:
            return cls.from_hf_dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown BertConfig fields {unknown}; valid fields: {sorted(known)}.")
        return cls(**data)

    @classmethod
    def from_hf_dict(cls, data: dict[str, Any]) -> "BertConfig":
        """Read a Hugging Face BERT ``config.json`` dict (other keys are ignored; always post-LN)."""
        model_type = data.get("model_type", "bert")
        if model_type != "bert":
            raise ValueError(f"Not a BERT config: model_type is {model_type!r} (expected 'bert').")
        if data.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("Only absolute position embeddings are supported, got "
                             f"{data['position_embedding_type']!r}.")
        fields: dict[str, Any] = {}
        for hf_key, field in _HF_KEYS.items():
            if hf_key in data:
                fields[field] = data[hf_key]
        if "hidden_act" in fields:
            act = fields["hidden_act"]
            if act not in _HF_ACT_IN:
                raise ValueError(f"Unsupported hidden_act {act!r} in config.json; supported: {sorted(_HF_ACT_IN)}.")
            fields["hidden_act"] = _HF_ACT_IN[act]
        return cls(**fields)

    def to_hf_dict(self) -> dict[str, Any]:
        """The Hugging Face ``config.json`` form of this config (post-LN only).

        >>> BertConfig.preset("tiny").to_hf_dict()["num_hidden_layers"]
        2
        >>> BertConfig.preset("tiny", normalize_first=True).to_hf_dict()
        Traceback (most recent call last):
        ...
        ValueError: This BertConfig has normalize_first=True (pre-LN blocks + a final LayerNorm), which Hugging Face's BertModel cannot express (it is post-LN only); keep it in bertcourse's own format (to_json() / a run directory).
        """
        if self.normalize_first:
            raise ValueError("This BertConfig has normalize_first=True (pre-LN blocks + a final LayerNorm), which "
                             "Hugging Face's BertModel cannot express (it is post-LN only); keep it in bertcourse's "
                             "own format (to_json() / a run directory).")
        out: dict[str, Any] = {"architectures": ["BertModel"], "model_type": "bert",
                               "position_embedding_type": "absolute", "pad_token_id": 0}
        for hf_key, field in _HF_KEYS.items():
            out[hf_key] = getattr(self, field)
        out["hidden_act"] = _HF_ACT_OUT[self.hidden_act]
        return out

    def to_json(self, path: str | os.PathLike | None = None, hf: bool = False) -> str:
        """JSON text (ours or, with ``hf=True``, Hugging Face's); written to ``path`` if given."""
        text = json.dumps(self.to_hf_dict() if hf else self.to_dict(), indent=2, sort_keys=True) + "\n"
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return text

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike) -> "BertConfig":
        """From a JSON file path or JSON text, in either our format or Hugging Face's."""
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            if not os.path.isfile(text):
                raise FileNotFoundError(f"No config file at {text!r}.")
            with open(text, encoding="utf-8") as f:
                text = f.read()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"Config is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ValueError("Config JSON must be an object.")
        return cls.from_dict(data)
