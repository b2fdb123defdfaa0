"""The one named-weight map of the backbone that all three converters read."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bertcourse import BertConfig  # noqa: E402
from bertcourse.convert import GOOGLE_NAMES, HF_NAMES, KERAS_HUB_NAMES, CheckpointError, hf_weight_names  # noqa: E402
from bertcourse.convert.weight_map import backbone_weights, split_layer  # noqa: E402
from bertcourse.models import BertBackbone  # noqa: E402

pytestmark = pytest.mark.backend_agnostic

CFG = BertConfig.preset("tiny", vocab_size=50, num_layers=3)


@pytest.fixture(scope="module")
def backbone():
    return BertBackbone(CFG)


def test_every_variable_exactly_once(backbone):
    weights = backbone_weights(backbone)
    assert len(weights) == len(backbone.weights) == 5 + 16 * CFG.num_layers + 2
    assert {id(w.variable) for w in weights} == {id(v) for v in backbone.weights}
    assert len({w.name for w in weights}) == len(weights)
    for w in weights:
        assert w.shape == tuple(w.variable.shape), w.name


def test_names_and_shapes(backbone):
    by_name = {w.name: w for w in backbone_weights(backbone)}
    h, i = CFG.hidden_size, CFG.intermediate_size
    assert by_name["embeddings.token"].shape == (CFG.vocab_size, h)
    assert by_name["encoder.2.attention.output.kernel"].shape == (h, h)
    assert by_name["encoder.1.feedforward.intermediate.kernel"].shape == (h, i)   # Keras [in, out]
    assert by_name["encoder.1.feedforward.output.kernel"].shape == (i, h)
    assert by_name["encoder.1.feedforward.output.kernel"].is_kernel
    assert not by_name["encoder.1.feedforward_layer_norm.gamma"].is_kernel
    assert split_layer("encoder.12.attention.key.bias") == ("encoder.{i}.attention.key.bias", 12)


@pytest.mark.parametrize("table", [HF_NAMES, GOOGLE_NAMES, KERAS_HUB_NAMES], ids=["hf", "google", "keras_hub"])
def test_each_format_maps_exactly_the_canonical_names(backbone, table):
    patterns = {w.pattern for w in backbone_weights(backbone)}
    assert set(table) == patterns
    assert len(set(table.values())) == len(table)


def test_pre_ln_final_layer_norm_has_no_hugging_face_name():
    pre_ln = BertBackbone(BertConfig.preset("tiny", vocab_size=50, num_layers=1), normalize_first=True)
    names = [w.name for w in backbone_weights(pre_ln)]
    assert names[-4:-2] == ["final_layer_norm.gamma", "final_layer_norm.beta"]
    with pytest.raises(CheckpointError, match="final_layer_norm.gamma has no place in a Hugging Face"):
        hf_weight_names(pre_ln)
