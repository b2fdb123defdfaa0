"""SentenceEncoder as a task on a tiny backbone: its length-sorted `encode` = the plain Keras path on raw
strings, the ids it reads are the preprocessor's, `.keras` round trip, and FeatureExtractionPipeline's
Hugging Face shapes with values equal to the backbone's outputs. (The real-weights parity against
transformers is tests/test_pretrained_minilm.py.)"""

import numpy as np
import pytest

import keras

from bertcourse import BertConfig
from bertcourse.models import BertBackbone
from bertcourse.pipelines import pipeline
from bertcourse.tasks import FeatureExtractionPipeline, SentenceEncoder, Task, cosine_similarity
from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "sea", "was", "calm", "rough", "a", "ship", "##s",
         ",", "."]
TEXTS = ["The sea was calm.", "ships", "a ship, a sea, the ships, the sea was rough.", "", "calm calm"]


@pytest.fixture(scope="module")
def encoder():
    keras.utils.set_random_seed(1)
    cfg = BertConfig(vocab_size=len(VOCAB), num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32,
                     max_position_embeddings=64)
    return SentenceEncoder(BertBackbone(cfg), BertPreprocessor(FastWordPieceTokenizer(VOCAB), sequence_length=32))


def test_encode_equals_the_keras_path(encoder):
    assert isinstance(encoder, Task) and encoder.max_seq_length == 32
    fast = encoder.encode(TEXTS, batch_size=2)
    keras_path = encoder.predict(TEXTS, verbose=0)   # every text padded to 32, input order
    diff = float(np.abs(fast - keras_path).max())
    assert diff < 1e-6, diff
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-6)
    both = encoder.encode(TEXTS, pooling=("mean", "cls"))
    np.testing.assert_allclose(both["mean"], fast, atol=1e-6)


def test_tokenize_is_the_preprocessor(encoder):
    packed = encoder.preprocessor(TEXTS)
    ids, mask = packed["token_ids"].numpy(), packed["padding_mask"].numpy()
    assert encoder.tokenize(TEXTS) == [row[m].tolist() for row, m in zip(ids, mask)]
    assert encoder.tokenize([""]) == [[2, 3]]
    long = encoder.tokenize(["the sea " * 40])[0]
    assert len(long) == 32 and long[0] == 2 and long[-1] == 3


def test_keras_file_round_trip(encoder, tmp_path):
    path = tmp_path / "enc.keras"
    encoder.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SentenceEncoder) and loaded.pooling == "mean" and loaded.max_seq_length == 32
    np.testing.assert_array_equal(loaded.encode(TEXTS), encoder.encode(TEXTS))


def test_pipeline_token_vectors_in_hf_shape(encoder):
    extract = FeatureExtractionPipeline(encoder, batch_size=2)
    one = extract(TEXTS[0])
    n_tokens = len(encoder.tokenize([TEXTS[0]])[0])
    assert np.asarray(one).shape == (1, n_tokens, 16)
    ids = np.array(encoder.tokenize([TEXTS[0]]), "int32")
    h = encoder.backbone({"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)})
    np.testing.assert_allclose(np.asarray(one)[0], np.asarray(h["sequence_output"])[0], atol=1e-5)
    many = extract(TEXTS)
    assert len(many) == len(TEXTS) and [len(m[0]) for m in many] == [len(t) for t in encoder.tokenize(TEXTS)]
    tensors = extract(TEXTS[:2], return_tensors=True)
    assert tensors[0].shape == (1, n_tokens, 16) and isinstance(tensors[0], np.ndarray)
    pooled = extract(TEXTS, pooled=True)
    np.testing.assert_allclose(np.array(pooled), encoder.encode(TEXTS), atol=1e-6)
    assert pipeline("feature-extraction", model=encoder)(TEXTS[1], pooled=True) == pytest.approx(pooled[1], abs=1e-6)
    with pytest.raises(TypeError, match="pairs"):
        extract([("a", "b")])


def test_cosine_similarity():
    a = np.array([[3.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(cosine_similarity(a, a), [[1.0, 0.6], [0.6, 1.0]])
