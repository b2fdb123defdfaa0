"""Course models shipped in bfloat16 (``make pretrain-long``): the save/load round trip on real short runs
(MLM and causal), checksums and clear errors, and the verse split they are trained on."""

import json

import ml_dtypes
import numpy as np
import pytest

from bertcourse.data.bible import load_verse_pairs, split_verse_chapters
from bertcourse.errors import ModelLoadError
from bertcourse.models.pretraining import BertPretrainer, CausalLMPretrainer
from bertcourse.pretrained import load_shipped_pretrainer, save_shipped_pretrainer
from bertcourse.text import WordPieceTokenizer, learn_vocabulary
from bertcourse.training.pretrain import PretrainConfig, evaluate_mlm, pretrain, pretraining_train_config
from bertcourse.training.run import RunDirectory


def test_verse_split_holds_out_whole_chapters_in_both_translations():
    train, heldout = split_verse_chapters(heldout_every=10)
    pairs = load_verse_pairs()
    assert sum(map(len, train)) + sum(map(len, heldout)) == 2 * len(pairs)
    assert len(heldout) * 9 <= len(train) <= len(heldout) * 10  # one chapter in 10, two documents each
    chapters: dict[str, tuple[list, list]] = {}
    for ref, kjv, web in pairs:
        chapter = chapters.setdefault(ref.rsplit(":", 1)[0], ([], []))
        chapter[0].append(kjv)
        chapter[1].append(web)
    held, trained = {tuple(d) for d in heldout}, {tuple(d) for d in train}
    held_chapters = [c for c, (kjv, web) in chapters.items() if tuple(kjv) in held]
    assert len(held_chapters) == len(heldout) // 2 == len(chapters) // 10
    for c in held_chapters:  # the other translation of a held-out chapter is held out too, never trained on
        kjv, web = chapters[c]
        assert tuple(web) in held and tuple(kjv) not in trained and tuple(web) not in trained
    with pytest.raises(ValueError, match="heldout_every"):
        split_verse_chapters(heldout_every=1)


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    train, heldout = split_verse_chapters()
    train = train[:40]
    tokenizer = WordPieceTokenizer(learn_vocabulary([v for d in train for v in d], 500))
    runs = {}
    for objective in ("mlm", "causal"):
        out = tmp_path_factory.mktemp(objective)
        config = PretrainConfig(preset="tiny", seq_len=32, mlm_only=True, objective=objective, dropout=0.0)
        pretrain(train, tokenizer, config, pretraining_train_config(steps=4, steps_per_epoch=2, batch_size=8),
                 out_dir=out, verbose=0)
        runs[objective] = out
    return runs, tokenizer, heldout[:3]


@pytest.mark.parametrize("objective, kind", [("mlm", BertPretrainer), ("causal", CausalLMPretrainer)])
def test_bf16_round_trip_keeps_the_model(short_runs, tmp_path, objective, kind):
    runs, tokenizer, heldout = short_runs
    original, _ = RunDirectory(runs[objective]).load_pretrainer()  # a causal run loads as a causal model
    assert isinstance(original, kind)
    checksums = save_shipped_pretrainer(runs[objective], tmp_path, {"note": "test"})
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["note"] == "test" and results["sha256"] == checksums
    shipped, shipped_tok = load_shipped_pretrainer(str(tmp_path))
    assert isinstance(shipped, kind) and shipped_tok.get_vocabulary() == tokenizer.get_vocabulary()
    for a, b in zip(original.get_weights(), shipped.get_weights()):  # exactly float32 -> bf16 -> float32
        assert (a.astype(ml_dtypes.bfloat16).astype(np.float32) == b).all()
    # the same predictions up to bf16 rounding: held-out accuracy within 1 point on the same masks
    score = dict(seq_len=32, batch_size=8, max_batches=4)
    assert abs(evaluate_mlm(original, heldout, tokenizer, **score)["mlm_accuracy"]
               - evaluate_mlm(shipped, heldout, tokenizer, **score)["mlm_accuracy"]) <= 0.01
    assert (tmp_path / "weights.bf16.npz").stat().st_size < 0.6 * sum(w.nbytes for w in original.get_weights())


def test_changed_or_missing_files_are_clear_errors(short_runs, tmp_path):
    runs, _, _ = short_runs
    save_shipped_pretrainer(runs["mlm"], tmp_path)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(vocab.read_text() + "extra\n")
    with pytest.raises(ModelLoadError, match="vocab.txt: sha256 differs"):
        load_shipped_pretrainer(str(tmp_path))
    vocab.unlink()
    with pytest.raises(FileNotFoundError, match="make pretrain-long"):
        load_shipped_pretrainer(str(tmp_path))
    with pytest.raises(ModelLoadError, match="Unknown shipped course model"):
        load_shipped_pretrainer("verses-huge")
