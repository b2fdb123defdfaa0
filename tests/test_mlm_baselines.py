"""Count baselines for MLM accuracy: each back-off level by hand, and the order unigram <= left <= both sides on
real text, scored on evaluate_mlm's own masked positions."""

import numpy as np
import pytest

from bertcourse.data import corpora
from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path
from bertcourse.training.mlm_baselines import METHODS, NeighbourCounts, count_baselines
from bertcourse.training.pretrain import heldout_mlm_dataset, unigram_baseline

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIALS = [PAD, CLS, SEP, MASK]

# Centres (left, right): r1: 5 (1,6), 6 (5,7), 7 (6,2); r2 and r3: 5 (1,8), 8 (5,9), 9 (8,2).
#   unigram: 5 (3 times). after 5: 8 (2) over 6 (1). before 7: 6. between 5 and 7: 6.
TRAIN = np.array([[CLS, 5, 6, 7, SEP],
                  [CLS, 5, 8, 9, SEP],
                  [CLS, 5, 8, 9, SEP]])


@pytest.fixture(scope="module")
def counts():
    return NeighbourCounts.fit(TRAIN, vocab_size=20, ignore_ids=SPECIALS)


def _guess(counts, row, position, method, padding_mask=None):
    mask = None if padding_mask is None else np.array([padding_mask])
    return int(counts.predict(np.array([row]), np.array([[position]]), method, mask)[0, 0])


def test_unigram_is_the_most_frequent_non_special_token(counts):
    assert counts.unigram == 5
    assert _guess(counts, [CLS, 6, 4, 7, SEP], 2, "unigram") == 5
    # a tie goes to the smaller id; specials are never counted as centres even when most frequent
    tied = NeighbourCounts.fit(np.array([[CLS, 9, 7, SEP, SEP, SEP]]), vocab_size=20, ignore_ids=SPECIALS)
    assert tied.unigram == 7


def test_every_back_off_level_gives_its_own_answer(counts):
    # both neighbours seen together: (5, 7) -> 6, although "after 5" alone says 8
    row = [CLS, 5, 4, 7, SEP]
    assert {m: _guess(counts, row, 2, m) for m in METHODS} == \
        {"unigram": 5, "left": 8, "right": 6, "bidirectional": 6}
    # (5, 17) never seen -> left only: after 5 -> 8
    assert _guess(counts, [CLS, 5, 4, 17, SEP], 2, "bidirectional") == 8
    # left neighbour is [MASK] (never in the training counts) -> right only: before 7 -> 6
    row = [CLS, MASK, 4, 7, SEP]
    assert _guess(counts, row, 2, "bidirectional") == 6
    assert _guess(counts, row, 2, "left") == 5  # the left model has nothing to go on: unigram
    # neither side known -> unigram
    assert _guess(counts, [CLS, 17, 4, 18, SEP], 2, "bidirectional") == 5


def test_the_centre_token_itself_is_never_read(counts):
    a = counts.predict(np.array([[CLS, 5, 6, 7, SEP]]), np.array([[2]]), "bidirectional")
    b = counts.predict(np.array([[CLS, 5, 19, 7, SEP]]), np.array([[2]]), "bidirectional")
    assert a.tolist() == b.tolist() == [[6]]


def test_padding_and_sequence_ends_are_boundaries(counts):
    ids = np.array([[5, 8, 9, 0]])
    left, right = NeighbourCounts.neighbours(ids, np.array([[0, 2]]), np.array([[1, 1, 1, 0]]), boundary=20)
    assert left.tolist() == [[20, 8]] and right.tolist() == [[8, 20]]
    # a real right neighbour that is padding is not "token 0": (8, boundary) is unseen, so back off to left
    assert _guess(counts, [CLS, 8, 4, PAD], 2, "bidirectional", padding_mask=[1, 1, 1, 0]) == 9
    fitted = NeighbourCounts.fit(np.array([[5, 6, 0, 0]]), vocab_size=20, padding_mask=np.array([[1, 1, 0, 0]]),
                                 ignore_ids=SPECIALS)
    assert fitted.unigram == 5 and fitted.right_keys.tolist() == [6, 20]  # 5 before 6; 6 before the boundary


@pytest.fixture(scope="module")
def real_text():
    tokenizer = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
    train, heldout = corpora.split_documents(corpora.load_corpus("austen")[:60])
    return tokenizer, train, heldout


def test_both_sides_beat_one_side_beat_no_context_on_real_text(real_text):
    tokenizer, train, heldout = real_text
    result = count_baselines(train, heldout, tokenizer, seq_len=64, batch_size=16, seed=7)
    assert result["unigram"] <= result["left"] <= result["bidirectional"]
    assert result["bidirectional"] >= result["right"]
    assert result["bidirectional"] > result["unigram"] + 0.05  # context helps a lot, not by a rounding error
    assert sum(result[f"backoff_{k}"] for k in ("both", "left", "right", "unigram")) == pytest.approx(1.0)
    assert result["backoff_both"] > 0.2 and result["most_frequent_token"] in {",", ".", "the"}
    # the same masked positions as evaluate_mlm / unigram_baseline: same count, same unigram accuracy
    weights = sum(float(w["mlm"].sum()) for _, _, w in
                  heldout_mlm_dataset(heldout, tokenizer, 64, 16, None, 7).as_numpy_iterator())
    assert result["predictions"] == int(weights)
    base = unigram_baseline(train, heldout, tokenizer, seq_len=64, batch_size=16, seed=7)
    assert result["unigram"] == pytest.approx(base["mlm_accuracy"])
    # deterministic: the same call gives the same numbers
    assert count_baselines(train, heldout, tokenizer, seq_len=64, batch_size=16, seed=7) == result
