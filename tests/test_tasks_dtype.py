"""``Task.with_dtype``: each task model rebuilt under another Keras dtype policy keeps its class, settings,
preprocessor and weights (to bf16 rounding), computes in that dtype, keeps float32 outputs, and gives the
float32 model's outputs within bf16's precision. What ``bertcourse export --dtype`` serves."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bertcourse.errors import ModelInputError
from bertcourse.models import BertBackbone
from bertcourse.tasks import BertClassifier, BertQuestionAnswerer, BertTokenClassifier
from bertcourse.text import BertPreprocessor, bert_uncased_vocab_path

TEXTS = ["A fine film, really.", "The worst evening of my life.", "Paris is in France."]


def _models():
    keras.utils.set_random_seed(0)
    pre = BertPreprocessor.from_vocab_file(bert_uncased_vocab_path(), sequence_length=24)
    qa_pre = BertPreprocessor.from_vocab_file(bert_uncased_vocab_path(), sequence_length=24, truncation="only_second")
    backbone = lambda: BertBackbone("tiny", vocab_size=30522)  # noqa: E731
    return {
        "classifier": BertClassifier(backbone(), 3, preprocessor=pre, labels=["a", "b", "c"]),
        "tokens": BertTokenClassifier(backbone(), labels=["O", "B-loc", "I-loc"], preprocessor=pre),
        "qa": BertQuestionAnswerer(backbone(), preprocessor=qa_pre, doc_stride=8, max_answer_len=5),
    }


@pytest.mark.parametrize("policy", ["bfloat16", "mixed_bfloat16"])
def test_with_dtype_keeps_the_task_and_its_weights(policy):
    for name, model in _models().items():
        twin = model.with_dtype(policy)
        assert type(twin) is type(model) and twin.preprocessor is model.preprocessor, name
        assert twin.backbone.dtype_policy.name == policy and model.backbone.dtype_policy.name == "float32"
        same = {k: v for k, v in model.get_config().items() if k != "backbone"}
        assert {k: v for k, v in twin.get_config().items() if k != "backbone"} == same, name
        for a, b in zip(twin.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_allclose(np.asarray(a, np.float32), b, rtol=1 / 128, atol=1e-6)
        x = model.preprocess(TEXTS if name != "qa" else (["Where is Paris?"] * 3, TEXTS))
        want, got = model.predict_on_batch(x), twin.predict_on_batch(x)
        want = want if isinstance(want, dict) else {"logits": want}
        got = got if isinstance(got, dict) else {"logits": got}
        for key in want:
            assert np.asarray(got[key]).dtype == np.float32, (name, key)  # the heads keep float32 outputs
            np.testing.assert_allclose(got[key], want[key], atol=0.05, err_msg=f"{name} {key}")


def test_with_dtype_refuses_an_unknown_policy():
    model = _models()["classifier"]
    with pytest.raises(ModelInputError, match="dtype must be one of"):
        model.with_dtype("int8")
