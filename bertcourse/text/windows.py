"""Overlapping windows over a long token sequence (long documents, NER over long texts, QA's doc stride).

A model sees at most ``window`` tokens at once; a longer sequence is cut into windows that overlap by
``stride`` tokens, as Hugging Face does it (the tokenizers' ``stride``, the QA pipeline's ``doc_stride``:
the number of tokens two consecutive windows share). Google's original ``run_squad.py`` calls the *step*
``doc_stride`` instead; here the step is ``window - stride``.

>>> window_spans(10, window=4, stride=2)
[(0, 4), (2, 6), (4, 8), (6, 10)]
>>> window_spans(3, window=4, stride=2)
[(0, 3)]
>>> max_context_windows(window_spans(10, window=4, stride=2), 10)
[0, 0, 0, 1, 1, 2, 2, 3, 3, 3]
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["window_spans", "max_context_scores", "max_context_windows"]


def window_spans(length: int, window: int, stride: int = 0) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` windows of at most ``window`` tokens covering ``range(length)``, consecutive
    windows sharing ``stride`` tokens; the last window ends at ``length`` (it may be shorter).

    ``length == 0`` gives one empty window ``[(0, 0)]`` (an empty text is still one input).

    >>> window_spans(7, window=3, stride=1)
    [(0, 3), (2, 5), (4, 7)]
    >>> window_spans(8, window=3, stride=1)
    [(0, 3), (2, 5), (4, 7), (6, 8)]
    """
    for name, value in (("length", length), ("window", window), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}.")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}.")
    if window < 1:
        raise ValueError(f"window must be >= 1 token, got {window}.")
    if not 0 <= stride < window:
        raise ValueError(f"stride (tokens shared by consecutive windows) must be in [0, window={window}), "
                         f"got {stride}: the windows would not advance.")
    if length <= window:
        return [(0, length)]
    step = window - stride
    spans = []
    start = 0
    while True:
        end = min(start + window, length)
        spans.append((start, end))
        if end == length:
            return spans
        start += step


def max_context_scores(spans: Sequence[tuple[int, int]], length: int) -> list[list[float | None]]:
    """Per window, per token position ``0..length-1``: Google BERT's "max context" score of that token in
    that window, ``min(tokens left of it, tokens right of it) + 0.01 * window length`` (``None`` where
    the window does not hold the token). A token seen in several windows is best judged in the window
    where it has the most context on both sides.

    >>> [[None if s is None else round(s, 2) for s in row] for row in max_context_scores([(0, 3), (1, 4)], 4)]
    [[0.03, 1.03, 0.03, None], [None, 0.03, 1.03, 0.03]]
    """
    scores: list[list[float | None]] = []
    for start, end in spans:
        row: list[float | None] = [None] * length
        for position in range(start, min(end, length)):
            row[position] = min(position - start, end - 1 - position) + 0.01 * (end - start)
        scores.append(row)
    return scores


def max_context_windows(spans: Sequence[tuple[int, int]], length: int) -> list[int]:
    """For each token position, the index of the window where it has max context (first one on ties),
    as Google BERT's ``_check_is_max_context``. Every position must be covered by some window."""
    scores = max_context_scores(spans, length)
    best = []
    for position in range(length):
        candidates = [(s[position], -i) for i, s in enumerate(scores) if s[position] is not None]
        if not candidates:
            raise ValueError(f"Token {position} is in no window: the spans do not cover range({length}).")
        best.append(-max(candidates)[1])
    return best
