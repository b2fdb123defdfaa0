"""Course models shipped in bfloat16 (``make pretrain-long``): the save/load round trip on real short runs
(MLM and causal), checksums and clear errors, and the verse split they are trained on."""

import json

import ml_dtypes
import numpy as np
import pytest

from bertcourse.data.bible import load_verse_pairs, split_verse_chapters
from bertcourse.errors import ModelLoadError
from bertcourse.models.pretraining import BertPretrainer, CausalLMPretrainer
from bertcourse.pretrained import load_shipped_pretrainer, save_shipped_pretrainer, shipped_path
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
        pretrain(train, tokenizer, config, pretraining_train_config(steps=2, steps_per_epoch=2, batch_size=8),
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


@pytest.fixture(scope="module")
def committed():
    mlm, tokenizer = load_shipped_pretrainer("verses-tiny-mlm")  # sha256 checked against results.json
    causal, causal_tok = load_shipped_pretrainer("verses-tiny-causal")
    assert causal_tok.get_vocabulary() == tokenizer.get_vocabulary()  # one vocabulary: the same masks
    return mlm, causal, tokenizer


def test_committed_masked_lm_reads_both_sides(committed):
    """Lesson 07's claim on its shipped models, re-measured: on the same held-out masked positions (the first
    60 batches, ~1,900 masks) the masked LM beats the both-neighbours counts and the left-to-right model."""
    from bertcourse.training.mlm_baselines import count_baselines

    mlm, causal, tokenizer = committed
    train, heldout = split_verse_chapters()
    score = dict(seq_len=64, batch_size=32, max_batches=60)
    counts = count_baselines(train, heldout, tokenizer, **score)
    mlm_acc = evaluate_mlm(mlm, heldout, tokenizer, **score)["mlm_accuracy"]
    causal_acc = evaluate_mlm(causal, heldout, tokenizer, **score)["mlm_accuracy"]
    assert counts["predictions"] > 1500
    assert counts["unigram"] < counts["left"] < counts["bidirectional"]
    assert mlm_acc > counts["bidirectional"] + 0.01, (mlm_acc, counts)
    assert mlm_acc > causal_acc + 0.01, (mlm_acc, causal_acc)
    stored = json.loads((shipped_path("verses-tiny-mlm") / "results.json").read_text())
    assert abs(stored["heldout_accuracy_bf16"] - stored["heldout_accuracy"]) < 0.005  # bf16 costs < 0.5 points


def test_committed_models_answer_the_right_hand_side(committed):
    """Same left context, different right: the masked LM's best filler changes, the causal model's cannot."""
    from bertcourse.pipelines import pipeline

    mlm, causal, tokenizer = committed
    texts = ["And the LORD [MASK] unto Moses, saying,",
             "And the LORD [MASK] Pharaoh’s heart, so that he would not let the children of Israel go."]
    by_mlm = [r[0]["token_str"] for r in pipeline("fill-mask", model=mlm, tokenizer=tokenizer)(texts)]
    by_causal = [[c["token"] for c in r] for r in pipeline("fill-mask", model=causal, tokenizer=tokenizer)(texts)]
    assert by_mlm[0] == "spake" and by_mlm[1] != "spake", by_mlm  # the held-out verse's word, then another
    assert by_causal[0] == by_causal[1]
