"""TFLite: the fine-tuned classifier with its tokenizer in the graph (tensorflow-text's TFLite kernels), float32
and dynamic-range quantised, against the SavedModel export; the exact BertPreprocessor's blocking ops named."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from bertcourse.serving.export import export_task
from bertcourse.serving.tflite import (TFLiteClassifier, convert_classifier, exact_preprocessor_blockers,
                                       tflite_tokenizer_ids)
from bertcourse.training.run import RunDirectory
from serving_support import CHECK, NEGATIVE, POSITIVE, finetune_tiny_run

TEXTS = [t for t, _ in CHECK] + POSITIVE[:3] + NEGATIVE[:3] + [
    "Café CRÈME was, frankly, GREAT, naïve but wonderful!", " ".join(["a great film with a wonderful cast"] * 12)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tflite")
    run = finetune_tiny_run(root)
    model = RunDirectory(run).load_task()
    saved = tf.saved_model.load(str(export_task(model, root / "saved"))).signatures["serving_default"]
    reference = {k: v.numpy() for k, v in saved(text=tf.constant(TEXTS)).items()}
    files = {"none": convert_classifier(model, root / "clf-none.tflite"),
             "dynamic": convert_classifier(run, root / "clf-dynamic.tflite", quantize="dynamic")}
    bare = convert_classifier(model, root / "bare.tflite", with_tokenizer=False)
    return {"model": model, "reference": reference, "files": files, "bare": bare}


def test_the_tflite_tokenizer_gives_the_exact_ids_on_ordinary_text(built):
    model = built["model"]
    exact = model.preprocess(TEXTS)["token_ids"].numpy()
    np.testing.assert_array_equal(tflite_tokenizer_ids(model, TEXTS), exact)
    # where it differs (documented): FastBertNormalizer case-folds ß, and [MASK] in the text is not one token
    for text in ("Straße", "the [MASK] film"):
        assert not np.array_equal(tflite_tokenizer_ids(model, [text]), model.preprocess([text])["token_ids"].numpy())


def test_float32_with_tokenizer_matches_the_savedmodel(built):
    lite = TFLiteClassifier(built["files"]["none"])
    assert lite.input_names == ["text"] and lite.labels == ["neg", "pos"]
    out = lite(TEXTS)
    np.testing.assert_allclose(out["logits"], built["reference"]["logits"], atol=1e-4)
    np.testing.assert_allclose(out["probabilities"], built["reference"]["probabilities"], atol=1e-5)
    assert [lite.labels[i] for i in out["probabilities"].argmax(-1)][:len(CHECK)] == [label for _, label in CHECK]


def test_dynamic_range_quantised_is_smaller_and_within_tolerance(built):
    files = built["files"]
    assert files["dynamic"].stat().st_size < 0.45 * files["none"].stat().st_size
    out = TFLiteClassifier(files["dynamic"])(TEXTS)
    np.testing.assert_allclose(out["probabilities"], built["reference"]["probabilities"], atol=0.05)
    np.testing.assert_array_equal(out["probabilities"].argmax(-1), built["reference"]["label_id"])


def test_model_without_tokenizer_takes_the_exact_ids(built):
    lite = TFLiteClassifier(built["bare"])
    assert lite.input_names == ["padding_mask", "segment_ids", "token_ids"]
    inputs = {k: v.numpy() for k, v in built["model"].preprocess(TEXTS).items()}
    np.testing.assert_allclose(lite(inputs)["logits"], built["reference"]["logits"], atol=1e-4)


@pytest.mark.slow  # a second conversion, with Flex ops, only to list them (about 15 s of CPU)
def test_the_exact_preprocessor_is_blocked_by_named_ops(built):
    blockers = exact_preprocessor_blockers(built["model"])
    assert "FlexUnicodeTranscode" in blockers and "FlexNormalizeUTF8" in blockers
    assert "FlexRegexSplitWithOffsets" in blockers and "FastWordpieceTokenizeWithOffsets" not in blockers
