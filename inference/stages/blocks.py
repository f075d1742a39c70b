"""Row blocks: per-pixel work on a full frame a band of rows at a time, so its temporaries stay band-sized.

A 7680x4320 plate is 33 M pixels: every full-size float32 temporary of a per-pixel formula costs 133 MB per
channel. Stages whose formulas are per pixel (no neighbourhood) run them over these blocks.
"""

from __future__ import annotations

from collections.abc import Iterator

ROWS_PER_BLOCK = 256


def row_blocks(height: int, rows: int = ROWS_PER_BLOCK) -> Iterator[slice]:
    """Slices covering rows 0..height in order, `rows` at a time."""
    for top in range(0, height, rows):
        yield slice(top, min(top + rows, height))
