"""bertcourse.data.pipeline.pretraining_dataset is a seeded stream: the same batches in any process, and
``skip(N)`` (or ``start_batch=N``) gives exactly batch N -- what an exact resume relies on."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from bertcourse.data import corpora
from bertcourse.data.masking import mask_tokens, num_predictions
from bertcourse.data.pipeline import nsp_pair_dataset, pack_pairs, pretraining_dataset
from bertcourse.data.nsp import NspPair
from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path

SEQ, BATCH, SEED = 64, 4, 5
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())


@pytest.fixture(scope="module")
def docs():
    return corpora.load_corpus("austen")[:3]


def stream(docs, tokenizer, **kw):
    kw = {"seq_len": SEQ, "batch_size": BATCH, "seed": SEED, **kw}
    return pretraining_dataset(docs, tokenizer, **kw)


def flat(batches):
    """A list of (x, y, w) numpy batches -> one dict of stacked arrays, keys like 'x/token_ids'."""
    out = {}
    for x, y, w in batches:
        for part, d in (("x", x), ("y", y), ("w", w)):
            for k, v in d.items():
                out.setdefault(f"{part}/{k}", []).append(v)
    return {k: np.stack(v) for k, v in out.items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def reference(docs, tokenizer):
    """The first batches of the full stream (more than one epoch of pairs)."""
    n_batches = sum(1 for _ in stream(docs, tokenizer, repeat=False))
    return n_batches, flat(stream(docs, tokenizer).take(2 * n_batches + 3).as_numpy_iterator())


def test_fresh_builds_give_the_same_batches(docs, tokenizer, reference):
    _, full = reference
    tf.random.set_seed(1234)  # the tf global seed must not matter
    again = flat(stream(docs, tokenizer).take(6).as_numpy_iterator())
    assert_same(again, {k: v[:6] for k, v in full.items()})
    other = flat(stream(docs, tokenizer, seed=SEED + 1).take(6).as_numpy_iterator())
    assert not np.array_equal(other["x/token_ids"], again["x/token_ids"])


@pytest.mark.parametrize("where", ["first epoch", "second epoch", "across the boundary"])
def test_skip_and_start_batch_give_batch_n(docs, tokenizer, reference, where):
    n_batches, full = reference
    n = {"first epoch": 3, "second epoch": n_batches + 2, "across the boundary": n_batches - 1}[where]
    skipped = flat(stream(docs, tokenizer).skip(n).take(3).as_numpy_iterator())
    started = flat(stream(docs, tokenizer, start_batch=n).take(3).as_numpy_iterator())
    expected = {k: v[n:n + 3] for k, v in full.items()}
    assert_same(skipped, expected)
    assert_same(started, expected)


def test_every_epoch_is_a_new_order_of_the_same_pairs(docs, tokenizer):
    one = flat(stream(docs, tokenizer, batch_size=1, repeat=False).as_numpy_iterator())
    n = len(one["y/nsp"])
    two = flat(stream(docs, tokenizer, batch_size=1).take(2 * n).as_numpy_iterator())

    def pairs(d, sl):  # a pair is known by its segments and label (its mask changes)
        return sorted((d["x/segment_ids"][i, 0].tobytes(), int(d["y/nsp"][i, 0])) for i in range(sl.start, sl.stop))

    assert pairs(two, slice(0, n)) == pairs(two, slice(n, 2 * n)) == pairs(one, slice(0, n))
    assert not np.array_equal(two["x/segment_ids"][:n], two["x/segment_ids"][n:])
    unshuffled = flat(stream(docs, tokenizer, batch_size=1, shuffle=False, repeat=False).as_numpy_iterator())
    assert not np.array_equal(unshuffled["x/segment_ids"], one["x/segment_ids"])
    assert pairs(unshuffled, slice(0, n)) == pairs(one, slice(0, n))


SCRIPT = """
import sys
import numpy as np
import tensorflow as tf
from bertcourse.data import corpora
from bertcourse.data.masking import mask_tokens, num_predictions
from bertcourse.data.pipeline import pretraining_dataset
from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path

tf.random.set_seed(int(sys.argv[3]))
tok = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
ds = pretraining_dataset(corpora.load_corpus("austen")[:3], tok, seq_len=%d, batch_size=%d, seed=%d)
batches = list(ds.skip(int(sys.argv[2])).take(3).as_numpy_iterator())
np.savez(sys.argv[1], **{f"{p}/{k}": np.stack([b[i][k] for b in batches])
                         for i, p in enumerate("xyw") for k in batches[0][i]})
""" % (SEQ, BATCH, SEED)


def test_the_stream_is_the_same_in_another_process(docs, tokenizer, reference, tmp_path):
    """Another PYTHONHASHSEED (set and dict order) and tf global seed: still batch N of this process."""
    n_batches, full = reference
    n = n_batches + 1
    env = {**os.environ, "PYTHONHASHSEED": "4321", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = tmp_path / "batches.npz"
    subprocess.run([sys.executable, "-c", SCRIPT, str(out), str(n), "99"], check=True, cwd=ROOT, env=env,
                   timeout=300)
    with np.load(out) as theirs:
        assert_same(dict(theirs), {k: v[n:n + 3] for k, v in full.items()})


def test_pack_pairs_goes_through_pack_inputs_and_refuses_overlong_pairs():
    pairs = [NspPair([5, 6], [7, 8, 9], True), NspPair([4], [3], False)]
    out = pack_pairs(pairs, 10, cls_id=101, sep_id=102)
    assert out["token_ids"].tolist() == [[101, 5, 6, 102, 7, 8, 9, 102, 0, 0], [101, 4, 102, 3, 102, 0, 0, 0, 0, 0]]
    assert out["segment_ids"].tolist()[0] == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    assert out["padding_mask"].dtype == np.int32 and out["padding_mask"].sum(axis=1).tolist() == [8, 5]
    assert out["next_sentence_label"].tolist() == [1, 0]
    with pytest.raises(ValueError, match="does not fit"):
        pack_pairs([NspPair([5] * 8, [6], False)], 10, 101, 102)


def test_nsp_pair_dataset_packs_in_the_graph_as_pack_pairs(docs, tokenizer):
    lazy = list(nsp_pair_dataset(docs[:1], tokenizer, seq_len=SEQ, seed=SEED).as_numpy_iterator())
    eager = flat((x, {}, {}) for x in lazy)
    streamed = flat(stream(docs[:1], tokenizer, batch_size=1, shuffle=False, repeat=False).as_numpy_iterator())
    np.testing.assert_array_equal(eager["x/segment_ids"], streamed["x/segment_ids"][:, 0])
    np.testing.assert_array_equal(eager["x/padding_mask"], streamed["x/padding_mask"][:, 0])
    np.testing.assert_array_equal(eager["x/next_sentence_label"], streamed["y/nsp"][:, 0])


def test_bad_arguments(docs, tokenizer):
    with pytest.raises(ValueError, match="No NSP pairs"):
        pretraining_dataset([[]], tokenizer, seq_len=SEQ)
    with pytest.raises(ValueError, match="start_batch"):
        pretraining_dataset(docs, tokenizer, start_batch=-1)


@pytest.mark.parametrize("shuffle", [False, True])
def test_element_k_is_the_documented_pair_and_mask(docs, tokenizer, shuffle):
    """Element k = pair (k mod n, or index_shuffle(k mod n, seed=(seed, k div n))), masked with seed (seed, k):
    the definition the module states, so an evaluation stream (shuffle=False) is reproducible by hand."""
    pairs = list(nsp_pair_dataset(docs[:1], tokenizer, seq_len=SEQ, seed=SEED).as_numpy_iterator())
    n = len(pairs)
    got = list(stream(docs[:1], tokenizer, batch_size=1, shuffle=shuffle).take(n + 5).as_numpy_iterator())
    specials = sorted({tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id})
    for k, (x, y, w) in enumerate(got):
        i = k % n
        if shuffle:
            i = int(tf.random.experimental.index_shuffle(tf.constant(i, tf.int64), seed=tf.constant([SEED, k // n],
                                                         tf.int64), max_index=tf.constant(n - 1, tf.int64)))
        masked = mask_tokens(tf.constant(pairs[i]["token_ids"]), tokenizer.vocabulary_size, specials, tokenizer.mask_id,
                             seed=tf.constant([SEED, k], tf.int32), max_predictions=num_predictions(SEQ))
        np.testing.assert_array_equal(x["token_ids"][0], masked["token_ids"].numpy(), err_msg=f"element {k}")
        np.testing.assert_array_equal(x["segment_ids"][0], pairs[i]["segment_ids"])
        np.testing.assert_array_equal(y["nsp"][0], pairs[i]["next_sentence_label"])
        np.testing.assert_array_equal(w["mlm"][0], masked["masked_weights"].numpy())


def test_shuffle_buffer_zero_is_the_older_spelling_of_no_shuffle(docs, tokenizer):
    a = flat(stream(docs[:1], tokenizer, shuffle_buffer=0, repeat=False).as_numpy_iterator())
    b = flat(stream(docs[:1], tokenizer, shuffle=False, repeat=False).as_numpy_iterator())
    assert_same(a, b)
