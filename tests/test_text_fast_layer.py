"""FastWordPieceTokenizer as a Keras layer: config round-trip, assets, tf.data, SavedModel."""

import os

import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from bertcourse.text import FastWordPieceTokenizer, WordPieceTokenizer, bert_uncased_vocab_path  # noqa: E402
from bertcourse.text.fast import VOCAB_ASSET  # noqa: E402

TEXTS = ["The Dashwoods of Norland Park.", "Mr. Darcy's ten thousand a year!", "", "Fußball, café, 北京"]


@pytest.fixture(scope="module")
def vocab():
    from bertcourse.text import load_vocabulary

    return load_vocabulary(bert_uncased_vocab_path())


@pytest.fixture(scope="module")
def layer(vocab):
    return FastWordPieceTokenizer(vocab)


@pytest.fixture(scope="module")
def expected(vocab):
    pure = WordPieceTokenizer(vocab)
    return [pure.encode(t) for t in TEXTS]


def test_call_shapes_and_dtype(layer, expected):
    ids = layer(tf.constant(TEXTS))
    assert isinstance(ids, tf.RaggedTensor) and ids.dtype == tf.int32
    assert ids.to_list() == expected
    assert layer(TEXTS[0]).numpy().tolist() == expected[0]       # a Python str -> 1-D ids
    assert layer(tf.constant(TEXTS[1])).numpy().tolist() == expected[1]
    assert layer(TEXTS).to_list() == expected                     # a Python list works too
    assert layer(tf.constant([], tf.string)).to_list() == []


def test_get_config_round_trip(layer, expected):
    config = layer.get_config()
    assert config["vocabulary"][:3] == ["[PAD]", "[unused0]", "[unused1]"] and config["lowercase"] is True
    clone = FastWordPieceTokenizer.from_config(config)
    assert clone.get_config() == config
    assert clone(tf.constant(TEXTS)).to_list() == expected
    # Through Keras' registry (package "bertcourse").
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, FastWordPieceTokenizer)
    assert restored(tf.constant(TEXTS)).to_list() == expected


def test_vocabulary_as_asset(vocab, expected, tmp_path):
    layer = FastWordPieceTokenizer(vocab, vocabulary_in_config=False, lowercase=True)
    config = layer.get_config()
    assert config["vocabulary"] is None
    layer.save_assets(str(tmp_path))
    assert (tmp_path / VOCAB_ASSET).is_file()
    clone = FastWordPieceTokenizer.from_config(config)
    with pytest.raises(ValueError, match="no vocabulary yet"):
        clone(tf.constant(TEXTS))
    clone.load_assets(str(tmp_path))
    assert clone(tf.constant(TEXTS)).to_list() == expected


def test_keras_file_carries_the_vocabulary(vocab, expected, tmp_path):
    """A .keras file with the vocabulary stored as an asset, not in the config."""
    inputs = keras.Input(shape=(), dtype="string")
    layer = FastWordPieceTokenizer(vocab, vocabulary_in_config=False)
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "tok.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    tok = restored.layers[-1]
    assert isinstance(tok, FastWordPieceTokenizer) and tok.get_config()["vocabulary"] is None
    assert tok(tf.constant(TEXTS)).to_list() == expected


def test_inside_tf_data(layer, expected):
    ds = tf.data.Dataset.from_tensor_slices(TEXTS).batch(2).map(layer)
    got = [row for batch in ds for row in batch.to_list()]
    assert got == expected
    ds = tf.data.Dataset.from_tensor_slices(TEXTS).map(lambda s: layer(s))  # unbatched: 1-D ids
    assert [x.numpy().tolist() for x in ds] == expected


def test_offsets_inside_tf_function(layer):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def fn(x):
        return layer.tokenize_with_offsets(x)

    ids, starts, ends = fn(tf.constant(TEXTS))
    eager = layer.tokenize_with_offsets(tf.constant(TEXTS))
    for a, b in zip((ids, starts, ends), eager):
        assert a.to_list() == b.to_list()


def test_exported_saved_model_takes_raw_strings(layer, expected, tmp_path):
    class Serving(tf.Module):
        def __init__(self, tokenizer):
            super().__init__()
            self.tokenizer = tokenizer

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, text):
            ids = self.tokenizer(text)
            return {"token_ids": ids.to_tensor(default_value=-1), "lengths": ids.row_lengths()}

    export_dir = os.fspath(tmp_path / "tokenizer")
    tf.saved_model.save(Serving(layer), export_dir)
    del Serving
    loaded = tf.saved_model.load(export_dir)
    out = loaded(tf.constant(TEXTS))
    got = [row[:n] for row, n in zip(out["token_ids"].numpy().tolist(), out["lengths"].numpy().tolist())]
    assert got == expected


def test_detokenize(layer):
    ids = layer(tf.constant(["Unaffable persons, unwanted!"]))
    assert layer.detokenize(ids).numpy().tolist() == [b"unaffable persons , unwanted !"]


def test_special_ids(layer):
    assert (layer.pad_id, layer.unk_id, layer.cls_id, layer.sep_id, layer.mask_id) == (0, 100, 101, 102, 103)
    assert layer.vocabulary_size() == 30522
