"""Draw WordPiece tokens under the text they came from (plain text, for notebooks and terminals).

>>> print(format_offsets("Hi Bob", [("hi", 0, 2), ("bob", 3, 6)]))
Hi Bob
── ━━━
hi bob
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["format_offsets"]


def format_offsets(text: str, tokens: Sequence[tuple[str, int, int]], width: int = 100) -> str:
    """The text, a line under each token's span (``─`` and ``━`` alternate), then the tokens.

    Tokens that do not fit on the label line are moved to further lines; long texts are wrapped
    every ``width`` characters. Works for one-column characters (Latin, Greek, Cyrillic...).
    """
    blocks = []
    for lo in range(0, max(len(text), 1), width):
        hi = lo + width
        chunk = [(tok, max(s, lo) - lo, min(e, hi) - lo) for tok, s, e in tokens if s < hi and e > lo]
        marks = [" "] * min(width, len(text) - lo)
        for i, (_, s, e) in enumerate(chunk):
            for j in range(s, e):
                marks[j] = "─" if i % 2 == 0 else "━"
        rows: list[list[str]] = []
        for tok, s, _ in chunk:
            for row in rows:  # first label row where this token fits
                if all(c == " " for c in row[max(s - 1, 0):s + len(tok) + 1]):
                    break
            else:
                row = []
                rows.append(row)
            row.extend(" " * (s + len(tok) + 1 - len(row)))
            row[s:s + len(tok)] = tok
        blocks.append("\n".join([text[lo:hi], "".join(marks).rstrip()] + ["".join(r).rstrip() for r in rows]))
    return "\n".join(blocks)
