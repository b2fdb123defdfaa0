"""Windows over long token sequences: Hugging Face's overflow semantics (stride = shared tokens), full
coverage, Google BERT's max-context rule."""

import itertools

import pytest

from bertcourse.text import bert_uncased_vocab_path
from bertcourse.text.windows import max_context_scores, max_context_windows, window_spans

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def words():
    # distinct whole words, one WordPiece each, so a window's first id tells its start position
    vocab = bert_uncased_vocab_path().read_text(encoding="utf-8").split("\n")
    return [w for w in vocab[2000:2300] if w.isalpha()][:60]


@pytest.mark.parametrize("window,stride", [(4, 1), (5, 2), (3, 0), (8, 5), (16, 4), (6, 3)])
def test_equals_hugging_face_overflowing_windows(words, window, stride):
    # HF tokenizers' truncation with stride: the first window plus its `overflowing` windows. (HF refuses
    # stride >= max_length - 2, keeping room for [CLS]/[SEP], hence the cases above.)
    tok = tokenizers.BertWordPieceTokenizer(str(bert_uncased_vocab_path()), lowercase=True)
    for length in [1, window - 1, window, window + 1, 2 * window, 37, 60]:
        text = " ".join(words[:length])
        tok.no_truncation()
        position = {i: p for p, i in enumerate(tok.encode(text, add_special_tokens=False).ids)}
        assert len(position) == length
        tok.enable_truncation(max_length=window, stride=stride)
        enc = tok.encode(text, add_special_tokens=False)
        hf = [(position[p.ids[0]], position[p.ids[-1]] + 1) for p in [enc] + enc.overflowing]
        assert window_spans(length, window, stride) == hf, (length, window, stride)


def test_every_token_covered_and_windows_advance():
    for length, window in itertools.product(range(0, 40), range(1, 9)):
        for stride in range(window):
            spans = window_spans(length, window, stride)
            covered = sorted({i for a, b in spans for i in range(a, b)})
            assert covered == list(range(length))
            assert all(0 < b - a <= window for a, b in spans) or length == 0
            assert spans[-1][1] == length
            # consecutive windows share exactly `stride` tokens, except possibly the last one
            for (a1, b1), (a2, b2) in zip(spans, spans[1:]):
                assert a2 == a1 + window - stride and b1 - a2 == stride


def test_max_context_is_google_berts_rule():
    spans = window_spans(10, window=4, stride=2)
    scores = max_context_scores(spans, 10)
    # token 3: window 0 holds it at its right edge (min(3, 0) = 0), window 1 in the middle (min(1, 2) = 1)
    assert scores[0][3] == pytest.approx(0.04) and scores[1][3] == pytest.approx(1.04)
    assert max_context_windows(spans, 10)[3] == 1
    # every token's chosen window holds it
    for position, w in enumerate(max_context_windows(spans, 10)):
        a, b = spans[w]
        assert a <= position < b


@pytest.mark.parametrize("args,error", [((5, 0, 0), ValueError), ((5, 4, 4), ValueError), ((-1, 4, 0), ValueError),
                                        ((5, 4, -1), ValueError), ((5.0, 4, 0), TypeError), ((5, True, 0), TypeError)])
def test_bad_arguments_are_refused(args, error):
    with pytest.raises(error):
        window_spans(*args)


def test_uncovered_position_is_an_error():
    with pytest.raises(ValueError, match="Token 5 is in no window"):
        max_context_windows([(0, 5)], 6)
