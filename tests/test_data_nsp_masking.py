"""bertcourse.data.nsp / masking / pipeline on real Austen text: the statistics the BERT paper states, measured."""

import random

import numpy as np
import pytest
import tensorflow as tf

from bertcourse.data import corpora
from bertcourse.data.masking import (MaskingConfig, mask_tokens, mask_tokens_reference, num_predictions,
                                     whole_word_starts)
from bertcourse.data.nsp import NspPair, create_nsp_pairs, tokenize_documents, truncate_pair
from bertcourse.data.pipeline import (pack_pair, pack_pairs, pretraining_dataset, read_static_tfrecords,
                                      write_static_tfrecords)
from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path

SEQ = 128


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())


@pytest.fixture(scope="module")
def austen_ids(tokenizer):
    return list(tokenize_documents(corpora.load_corpus("austen"), tokenizer))


@pytest.fixture(scope="module")
def austen_pairs(austen_ids):
    return list(create_nsp_pairs(austen_ids, max_seq_length=SEQ, rng=random.Random(12345)))


def _find(haystack: list[int], needle: list[int]) -> int:
    """Index of needle as a contiguous run in haystack (or -1)."""
    h = "," + ",".join(map(str, haystack)) + ","
    pos = h.find("," + ",".join(map(str, needle)) + ",")
    return -1 if pos < 0 else h[:pos + 1].count(",") - 1


def test_nsp_label_balance(austen_pairs):
    labels = np.array([p.is_random_next for p in austen_pairs])
    assert len(labels) > 5000
    is_next = 1 - labels.mean()
    assert abs(is_next - 0.5) <= 0.02, f"IsNext fraction {is_next:.4f} over {len(labels)} pairs"


def test_lengths_never_exceed_target(austen_pairs):
    assert all(len(p.tokens_a) + len(p.tokens_b) + 3 <= SEQ for p in austen_pairs)
    assert all(p.tokens_a and p.tokens_b for p in austen_pairs)
    lengths = np.array([len(p.tokens_a) + len(p.tokens_b) + 3 for p in austen_pairs])
    # short_seq_prob = 0.1: some pairs are deliberately short, most fill the sequence
    assert 0.01 < np.mean(lengths < SEQ // 2) < 0.15  # measured: 2.4% with the default seed
    assert np.mean(lengths >= SEQ - 10) > 0.6


def test_is_next_pairs_are_consecutive_text(austen_pairs, austen_ids):
    checked = 0
    for pair in austen_pairs[:3000]:
        if pair.is_random_next:
            continue
        doc = [t for sentence in austen_ids[pair.document_index] for t in sentence]
        a, b = pair.tokens_a, pair.tokens_b
        starts = [i for i in range(len(doc) - len(a) + 1) if doc[i] == a[0] and doc[i:i + len(a)] == a]
        assert starts, "segment A is not contiguous text of its document"
        # B starts right after A; only truncation (which may cut A's back) can open a gap
        assert any(doc[s + len(a) + gap: s + len(a) + gap + len(b)] == b
                   for s in starts for gap in range(pair.num_truncated + 1)), "segment B does not follow A"
        checked += 1
    assert checked > 1000


def test_not_next_pairs_come_from_another_document(austen_pairs, austen_ids):
    checked = 0
    for pair in austen_pairs[:2000]:
        if not pair.is_random_next or len(pair.tokens_b) < 8:
            continue
        doc = [t for sentence in austen_ids[pair.document_index] for t in sentence]
        assert _find(doc, pair.tokens_b) == -1
        checked += 1
    assert checked > 500


def test_pairs_are_deterministic_per_seed(austen_ids):
    first = list(create_nsp_pairs(austen_ids[:20], SEQ, rng=random.Random(1)))
    again = list(create_nsp_pairs(austen_ids[:20], SEQ, rng=random.Random(1)))
    other = list(create_nsp_pairs(austen_ids[:20], SEQ, rng=random.Random(2)))
    assert first == again and first != other


def test_streaming_window_bounds_memory(austen_ids):
    seen = []

    def documents():
        for i, doc in enumerate(austen_ids[:30]):
            seen.append(i)
            yield doc

    pairs = create_nsp_pairs(documents(), SEQ, window=4, rng=random.Random(0))
    next(pairs)
    assert len(seen) == 4  # only the window has been read when the first pair comes out
    assert sum(1 for _ in pairs) > 100


def test_truncate_pair_matches_bert():
    rng = random.Random(0)
    a, b = list(range(10)), list(range(100, 104))
    truncate_pair(a, b, 8, rng)
    assert len(a) + len(b) == 8 and len(b) == 4  # only the longer one is cut
    assert a == list(range(a[0], a[0] + len(a)))  # still contiguous


def test_pack_pair_segments_and_mask():
    out = pack_pair(NspPair([5, 6], [7, 8, 9], True), 10, cls_id=101, sep_id=102)
    assert out["token_ids"].tolist() == [101, 5, 6, 102, 7, 8, 9, 102, 0, 0]
    assert out["segment_ids"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    assert out["padding_mask"].tolist() == [1] * 8 + [0, 0]
    assert out["next_sentence_label"] == 1
    with pytest.raises(ValueError, match="does not fit"):
        pack_pair(NspPair([5] * 8, [6], False), 10, 101, 102)


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_seq_length"):
        next(create_nsp_pairs([[[1, 2]]], max_seq_length=3))
    with pytest.raises(ValueError, match="rate"):
        MaskingConfig(rate=0.0)
    with pytest.raises(ValueError, match="sum to at most 1"):
        MaskingConfig(mask_token_rate=0.8, random_token_rate=0.3)
    with pytest.raises(TypeError, match="integers"):
        mask_tokens(tf.constant([1.0, 2.0]), 10, [0], 4, seed=[1, 2])
    with pytest.raises(ValueError, match="rank 1"):
        mask_tokens(tf.constant([[1, 2]]), 10, [0], 4, seed=[1, 2])


# ----------------------------------------------------------------------------- masking statistics
def _mask_many(tokenizer, packed, seed=0, word_starts=None):
    specials = [tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id]
    ds = tf.data.Dataset.from_tensor_slices(np.stack([p["token_ids"] for p in packed]))

    def apply(i, ids):
        return ids, mask_tokens(ids, tokenizer.vocabulary_size, specials, tokenizer.mask_id,
                                seed=tf.stack([tf.constant(seed, tf.int64), i]), max_predictions=20,
                                word_starts=word_starts)

    originals, outs = [], []
    for ids, out in ds.enumerate().map(apply).batch(256):
        originals.append(ids.numpy())
        outs.append({k: v.numpy() for k, v in out.items()})
    cat = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
    return np.concatenate(originals), cat


@pytest.fixture(scope="module")
def packed(austen_pairs, tokenizer):
    arrays = pack_pairs(austen_pairs[:1300], SEQ, tokenizer.cls_id, tokenizer.sep_id)  # one pack_inputs call
    return [{name: value[i] for name, value in arrays.items()} for i in range(1300)]


def test_masking_statistics(tokenizer, packed):
    original, out = _mask_many(tokenizer, packed, seed=7)
    specials = np.isin(original, [0, 100, 101, 102, 103])
    n_real = int((~specials).sum())
    assert n_real > 100_000
    weights = out["masked_weights"].astype(bool)
    selected = np.zeros_like(original, dtype=bool)
    rows = np.repeat(np.arange(len(original))[:, None], 20, axis=1)
    selected[rows[weights], out["masked_positions"][weights]] = True
    frac = selected.sum() / n_real
    assert abs(frac - 0.15) <= 0.005, f"selected {frac:.4f} of {n_real} real tokens"
    assert not (selected & specials).any(), "a special or padding position was selected"
    assert (out["masked_ids"][weights] == original[selected.nonzero()]).all()  # labels are the originals
    new = out["token_ids"][selected]
    old = original[selected]
    masked = new == tokenizer.mask_id
    kept = new == old
    rand = ~masked & ~kept
    n = selected.sum()
    for name, value, target in [("[MASK]", masked.sum() / n, 0.8), ("random", rand.sum() / n, 0.1),
                                ("kept", kept.sum() / n, 0.1)]:
        assert abs(value - target) <= 0.01, f"{name}: {value:.4f} of {n} selected (target {target})"
    assert not np.isin(new[rand], [0, 100, 101, 102, 103]).any(), "random replacement was a special token"
    assert (out["token_ids"][~selected] == original[~selected]).all(), "unselected tokens changed"


def test_masking_is_deterministic_per_seed(tokenizer, packed):
    _, a = _mask_many(tokenizer, packed[:50], seed=3)
    _, b = _mask_many(tokenizer, packed[:50], seed=3)
    _, c = _mask_many(tokenizer, packed[:50], seed=4)
    np.testing.assert_array_equal(a["token_ids"], b["token_ids"])
    assert (a["masked_positions"] != c["masked_positions"]).any()


def test_whole_word_masking_keeps_words_together(tokenizer, packed):
    starts = whole_word_starts(tokenizer.get_vocabulary())
    original, out = _mask_many(tokenizer, packed[:400], seed=5, word_starts=starts)
    weights = out["masked_weights"].astype(bool)
    multi_piece_words = 0
    for row in range(len(original)):
        pos = set(out["masked_positions"][row][weights[row]].tolist())
        n_pred = len(pos)
        for p in pos:
            if not starts[original[row, p]]:  # a ## piece: its word start must be selected too
                q = p
                while not starts[original[row, q]]:
                    q -= 1
                if original[row, q] in (101, 102):  # word start truncated away: the word begins at q + 1
                    q += 1
                assert q in pos or n_pred == 20
            # every following ## piece of the word is selected (unless the 20-prediction cap hit)
            q = p + 1
            while q < SEQ and original[row, q] not in (0, 102) and not starts[original[row, q]]:
                assert q in pos or n_pred == 20
                multi_piece_words += 1
                q += 1
    assert multi_piece_words > 20
    real = ~np.isin(original, [0, 100, 101, 102, 103])
    frac = weights.sum() / real.sum()
    assert 0.13 < frac <= 0.155, frac  # whole words can leave the budget slightly under 15%


def test_dynamic_masks_differ_across_epochs(tokenizer):
    docs = corpora.load_corpus("austen")[:3]
    ds = pretraining_dataset(docs, tokenizer, seq_len=64, batch_size=1, shuffle_buffer=0)
    n_pairs = sum(1 for _ in pretraining_dataset(docs, tokenizer, seq_len=64, batch_size=1, shuffle_buffer=0,
                                                 repeat=False))
    elements = list(ds.take(2 * n_pairs).as_numpy_iterator())
    epoch1, epoch2 = elements[:n_pairs], elements[n_pairs:]
    same_pairs = all((a[1]["nsp"] == b[1]["nsp"]).all() and (a[0]["segment_ids"] == b[0]["segment_ids"]).all()
                     for a, b in zip(epoch1, epoch2))
    assert same_pairs, "epoch 2 should revisit the same pairs"
    differ = np.mean([(a[0]["masked_positions"] != b[0]["masked_positions"]).any() for a, b in zip(epoch1, epoch2)])
    assert differ > 0.9, f"only {differ:.0%} of pairs got new masks in epoch 2"
    # and a rerun from scratch reproduces epoch 1 exactly
    rerun = list(pretraining_dataset(docs, tokenizer, seq_len=64, batch_size=1, shuffle_buffer=0)
                 .take(n_pairs).as_numpy_iterator())
    assert all((a[0]["token_ids"] == b[0]["token_ids"]).all() for a, b in zip(epoch1, rerun))


def test_dataset_structure(tokenizer):
    docs = corpora.load_corpus("austen")[:2]
    x, y, w = next(iter(pretraining_dataset(docs, tokenizer, seq_len=SEQ, batch_size=4)))
    assert x["token_ids"].shape == (4, SEQ) and x["masked_positions"].shape == (4, 20)
    assert y["mlm"].shape == (4, 20) and y["nsp"].shape == (4,)
    assert w["mlm"].dtype == tf.float32
    mask = x["padding_mask"].numpy().astype(bool)
    assert (x["token_ids"].numpy()[~mask] == 0).all() and (x["segment_ids"].numpy()[~mask] == 0).all()


def test_static_masking_tfrecords(tokenizer, tmp_path):
    docs = corpora.load_corpus("austen")[:2]
    path = str(tmp_path / "static.tfrecord")
    written = write_static_tfrecords(docs, tokenizer, path, seq_len=SEQ, dupe_factor=2, progress=False)
    batches = list(read_static_tfrecords(path, seq_len=SEQ, batch_size=1, shuffle_buffer=0).as_numpy_iterator())
    assert len(batches) == written > 10
    half = written // 2
    # the two duplicates hold different masks (and different pairs, as the original's dupe_factor)
    first = np.stack([b[0]["token_ids"][0] for b in batches[:half]])
    second = np.stack([b[0]["token_ids"][0] for b in batches[half:2 * half]])
    assert not np.array_equal(first, second)
    assert all(b[2]["mlm"].sum() >= 1 for b in batches)


# ----------------------------------------------------------------------------- the NumPy reference
class GraphDraws:
    """Stands in for the ``np.random.Generator`` of ``mask_tokens_reference`` and hands it the random
    numbers ``mask_tokens`` draws for the same seed: scores, actions, random-token indices."""

    def __init__(self, seed):
        self.seeds = tf.random.experimental.stateless_split(tf.cast(tf.constant(seed), tf.int32), num=4)
        self.calls = 0

    def random(self, size, dtype=np.float64):
        assert dtype == np.float32 and self.calls < 2
        self.calls += 1
        return tf.random.stateless_uniform([size], self.seeds[self.calls - 1]).numpy()

    def integers(self, low, high, size):
        assert low == 0 and self.calls == 2
        self.calls += 1
        return tf.random.stateless_uniform([size], self.seeds[2], minval=0, maxval=high, dtype=tf.int32).numpy()


def _specials(tokenizer):
    return [tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id]


@pytest.mark.parametrize("whole_word, max_predictions", [(False, 20), (True, 20), (False, 4), (True, 3)])
def test_reference_equals_graph_on_the_same_draws(tokenizer, packed, whole_word, max_predictions):
    starts = whole_word_starts(tokenizer.get_vocabulary()) if whole_word else None
    for row, features in enumerate(packed[:120]):
        ids = features["token_ids"]
        if row % 10 == 9:  # short sequences too (few candidates, budget 1)
            ids = np.concatenate([ids[:6], [tokenizer.sep_id], np.zeros(len(ids) - 7, np.int32)])
        seed = [11, row]
        graph = mask_tokens(tf.constant(ids), tokenizer.vocabulary_size, _specials(tokenizer), tokenizer.mask_id,
                            seed=seed, max_predictions=max_predictions, word_starts=starts)
        reference = mask_tokens_reference(ids, tokenizer.vocabulary_size, _specials(tokenizer), tokenizer.mask_id,
                                          rng=GraphDraws(seed), max_predictions=max_predictions, word_starts=starts)
        for name in ("token_ids", "masked_positions", "masked_ids", "masked_weights"):
            np.testing.assert_array_equal(reference[name], graph[name].numpy(), err_msg=f"row {row}: {name}")
            assert reference[name].dtype == graph[name].numpy().dtype, name


def _selection(original, out, max_predictions):
    weights = out["masked_weights"].astype(bool)
    selected = np.zeros_like(original, dtype=bool)
    rows = np.repeat(np.arange(len(original))[:, None], max_predictions, axis=1)
    selected[rows[weights], out["masked_positions"][weights]] = True
    return selected


def test_reference_statistics_match_the_graph(tokenizer, packed):
    """The plain-NumPy rule, fed NumPy's own generator: the same shares as the graph version."""
    original = np.stack([p["token_ids"] for p in packed])
    rng = np.random.default_rng(7)
    outs = [mask_tokens_reference(ids, tokenizer.vocabulary_size, _specials(tokenizer), tokenizer.mask_id, rng=rng)
            for ids in original]
    out = {k: np.stack([o[k] for o in outs]) for k in outs[0]}
    specials = np.isin(original, _specials(tokenizer))
    n_real = int((~specials).sum())
    assert n_real > 100_000
    selected = _selection(original, out, 20)
    _, graph = _mask_many(tokenizer, packed, seed=7)
    graph_selected = _selection(original, graph, 20)
    # how many is not random (round(0.15 * real tokens) per sequence): the very same count
    assert selected.sum(axis=1).tolist() == graph_selected.sum(axis=1).tolist()
    frac = selected.sum() / n_real
    assert abs(frac - 0.15) <= 0.005, frac  # measured: 0.1519
    assert not (selected & specials).any(), "a special or padding position was selected"
    assert (out["masked_weights"].sum(axis=1) <= 20).all()
    assert (out["masked_ids"][out["masked_weights"] > 0] == original[selected]).all()
    new, old = out["token_ids"][selected], original[selected]
    shares = {"[MASK]": np.mean(new == tokenizer.mask_id), "kept": np.mean(new == old),
              "random": np.mean((new != tokenizer.mask_id) & (new != old))}
    g_new = graph["token_ids"][graph_selected]
    graph_shares = {"[MASK]": np.mean(g_new == tokenizer.mask_id), "kept": np.mean(g_new == original[graph_selected]),
                    "random": np.mean((g_new != tokenizer.mask_id) & (g_new != original[graph_selected]))}
    for name, target in [("[MASK]", 0.8), ("random", 0.1), ("kept", 0.1)]:
        assert abs(shares[name] - target) <= 0.01, (name, shares[name])
        assert abs(shares[name] - graph_shares[name]) <= 0.015, (name, shares[name], graph_shares[name])
    assert not np.isin(new[(new != tokenizer.mask_id) & (new != old)], _specials(tokenizer)).any()
    assert (out["token_ids"][~selected] == original[~selected]).all(), "unselected tokens changed"


def test_reference_respects_max_predictions_and_whole_words(tokenizer, packed):
    starts = whole_word_starts(tokenizer.get_vocabulary())
    rng = np.random.default_rng(3)
    for features in packed[:200]:
        ids = features["token_ids"]
        out = mask_tokens_reference(ids, tokenizer.vocabulary_size, _specials(tokenizer), tokenizer.mask_id,
                                    rng=rng, max_predictions=5, word_starts=starts)
        positions = out["masked_positions"][out["masked_weights"] > 0]
        assert 1 <= len(positions) <= 5 and (np.diff(positions) > 0).all()
        changed = np.flatnonzero(out["token_ids"] != ids)
        assert set(changed) <= set(positions), "a token outside the predictions was changed"


def test_num_predictions_is_the_budget_rule():
    assert [num_predictions(n) for n in (1, 8, 20, 64, 128, 256, 384, 512)] == [1, 2, 4, 10, 20, 39, 58, 77]
    for n in range(1, 600):
        for rate in (0.1, 0.15, 0.2, 0.4):
            assert num_predictions(n, rate) == max(1, round(n * rate + 0.5))
    assert MaskingConfig.for_length(128).max_predictions == 20
    with pytest.raises(ValueError, match="rate"):
        num_predictions(128, rate=0.0)
