"""load_google_checkpoint on a TF1 checkpoint written here with Google's exact variable names and shapes."""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from bertcourse.convert.google import google_variable_names, load_google_checkpoint  # noqa: E402
from bertcourse.convert.hf import CasingMismatchError, CheckpointError, load_hf_bert  # noqa: E402

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", "."]
H, I, L, P = 16, 32, 2, 24
GOOGLE_CONFIG = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
                 "hidden_size": H, "initializer_range": 0.02, "intermediate_size": I, "max_position_embeddings": P,
                 "num_attention_heads": 2, "num_hidden_layers": L, "type_vocab_size": 2, "vocab_size": len(VOCAB)}


def google_shapes(num_layers=L):
    """Google's names and shapes (kernels [in, out]), written out by hand from the original checkpoints."""
    shapes = {"bert/embeddings/word_embeddings": (len(VOCAB), H), "bert/embeddings/token_type_embeddings": (2, H),
              "bert/embeddings/position_embeddings": (P, H), "bert/embeddings/LayerNorm/gamma": (H,),
              "bert/embeddings/LayerNorm/beta": (H,)}
    for i in range(num_layers):
        p = f"bert/encoder/layer_{i}/"
        for n in ("query", "key", "value"):
            shapes[p + f"attention/self/{n}/kernel"] = (H, H)
            shapes[p + f"attention/self/{n}/bias"] = (H,)
        shapes[p + "attention/output/dense/kernel"] = (H, H)
        shapes[p + "attention/output/dense/bias"] = (H,)
        shapes[p + "attention/output/LayerNorm/gamma"] = (H,)
        shapes[p + "attention/output/LayerNorm/beta"] = (H,)
        shapes[p + "intermediate/dense/kernel"] = (H, I)
        shapes[p + "intermediate/dense/bias"] = (I,)
        shapes[p + "output/dense/kernel"] = (I, H)
        shapes[p + "output/dense/bias"] = (H,)
        shapes[p + "output/LayerNorm/gamma"] = (H,)
        shapes[p + "output/LayerNorm/beta"] = (H,)
    shapes["bert/pooler/dense/kernel"] = (H, H)
    shapes["bert/pooler/dense/bias"] = (H,)
    return shapes


def write_tf1_checkpoint(directory, values, extra=None):
    """tf.compat.v1 Saver, as Google's run_pretraining.py did; ``extra`` adds heads / optimizer slots."""
    prefix = str(directory / "bert_model.ckpt")
    with tf.Graph().as_default():
        variables = [tf.compat.v1.get_variable(name, initializer=tf.constant(value))
                     for name, value in {**values, **(extra or {})}.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, prefix, write_meta_graph=False)
    return prefix


def write_files(directory, values, extra=None, config=None, vocab=VOCAB):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bert_config.json").write_text(json.dumps(config or GOOGLE_CONFIG))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return write_tf1_checkpoint(directory, values, extra), directory / "bert_config.json", directory / "vocab.txt"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    rng = np.random.default_rng(0)
    values = {n: (rng.normal(size=s) * 0.2).astype(np.float32) for n, s in google_shapes().items()}
    extra = {"cls/predictions/output_bias": np.zeros(len(VOCAB), np.float32),
             "cls/seq_relationship/output_weights": np.zeros((2, H), np.float32),
             "bert/pooler/dense/kernel/adam_m": np.zeros((H, H), np.float32),
             "global_step": np.array(1000, np.int64)}
    files = write_files(tmp_path_factory.mktemp("uncased_L-2_H-16_A-2"), values, extra)
    return values, files


def test_loads_every_variable_without_transposing(checkpoint):
    values, files = checkpoint
    with pytest.warns(UserWarning, match=r"ignored 2 pretraining-head variable"):
        backbone, tok = load_google_checkpoint(*files)
    assert sorted(google_variable_names(backbone)) == sorted(google_shapes())
    q = backbone.encoder_layers[1].attention.query_dense.kernel
    np.testing.assert_array_equal(np.asarray(q), values["bert/encoder/layer_1/attention/self/query/kernel"])
    ff = backbone.encoder_layers[0].feedforward.intermediate_dense.kernel
    np.testing.assert_array_equal(np.asarray(ff), values["bert/encoder/layer_0/intermediate/dense/kernel"])
    assert tok.lowercase and tok.get_vocabulary() == VOCAB


def test_same_model_as_the_hugging_face_layout(checkpoint, tmp_path):
    """The same numbers written in the HF layout ([out, in] kernels) load to the same function."""
    from safetensors.numpy import save_file

    values, files = checkpoint
    with pytest.warns(UserWarning, match="pretraining-head"):
        backbone, _ = load_google_checkpoint(*files)
    rename = [("bert/", ""), ("/", "."), ("layer_", "layer."), ("word.embeddings", "word_embeddings"),
              ("token.type.embeddings", "token_type_embeddings"), ("position.embeddings", "position_embeddings")]
    hf = {}
    for name, value in values.items():
        new = name
        for a, b in rename:
            new = new.replace(a, b)
        new = new.replace("_embeddings", "_embeddings.weight").replace(".gamma", ".weight").replace(".beta", ".bias")
        if new.endswith(".kernel"):
            new, value = new[: -len(".kernel")] + ".weight", value.T
        hf[new] = np.ascontiguousarray(value)
    save_file(hf, str(tmp_path / "model.safetensors"))
    cfg = dict(GOOGLE_CONFIG, model_type="bert")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    hf_backbone, _ = load_hf_bert(tmp_path)
    inputs = {"token_ids": np.array([[2, 5, 6, 7, 3, 0]], "int32"), "segment_ids": np.zeros((1, 6), "int32"),
              "padding_mask": np.array([[1, 1, 1, 1, 1, 0]], "int32")}
    a, b = backbone(inputs), hf_backbone(inputs)
    np.testing.assert_array_equal(a["sequence_output"], b["sequence_output"])
    np.testing.assert_array_equal(a["pooled_output"], b["pooled_output"])


def test_errors(checkpoint, tmp_path):
    values, (prefix, cfg, vocab) = checkpoint
    with pytest.raises(CheckpointError, match=r"No TensorFlow checkpoint.*\.index does not exist"):
        load_google_checkpoint(tmp_path / "nothing.ckpt", cfg, vocab)
    with pytest.raises(CheckpointError, match=r"No vocabulary at"):
        load_google_checkpoint(prefix, cfg, tmp_path / "vocab.txt")
    with pytest.raises(CasingMismatchError, match="lowercase=False"):
        load_google_checkpoint(prefix, cfg, vocab, lowercase=False)
    # a config with one layer too many
    bad_cfg = tmp_path / "bert_config.json"
    bad_cfg.write_text(json.dumps(dict(GOOGLE_CONFIG, num_hidden_layers=3)))
    with pytest.raises(CheckpointError, match=r"missing 16 variable\(s\) \['bert/encoder/layer_2/"):
        load_google_checkpoint(prefix, bad_cfg, vocab)
    # wrong intermediate size: the kernel's shape is named
    bad_cfg.write_text(json.dumps(dict(GOOGLE_CONFIG, intermediate_size=48)))
    with pytest.raises(CheckpointError, match=r"'bert/encoder/layer_0/intermediate/dense/kernel' has shape "
                                              r"\(16, 32\).*needs \(16, 48\)"):
        load_google_checkpoint(prefix, bad_cfg, vocab)
    # another architecture's config
    bad_cfg.write_text(json.dumps(dict(GOOGLE_CONFIG, model_type="albert")))
    with pytest.raises(CheckpointError, match="Not a BERT config"):
        load_google_checkpoint(prefix, bad_cfg, vocab)
