"""What the contact-sheet tools share: the shared portraits as plates at a working size, and the sheet itself (one
portrait per row, tiles of display values side by side)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from package_loader import ROOT

TILE = 192  # tile height in the sheet, pixels
LONG_EDGE = 384  # the plates are relit at this size


def sheet_arguments(description: str, out_name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--portraits", type=Path, default=ROOT.parent / "shared" / "data" / "portraits")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / out_name)
    parser.add_argument("--limit", type=int, default=None, help="only the first N portraits")
    return parser


def portrait_plates(args: argparse.Namespace) -> Iterator[tuple[Path, np.ndarray]]:
    """(path, scene-linear plate with its long edge at LONG_EDGE) for each portrait, sorted by name."""
    from portrait_relight.inference.io.imageio import read_plate
    from portrait_relight.inference.resample import resize, working_size

    paths = sorted(args.portraits.glob("*.jpg")) + sorted(args.portraits.glob("*.png"))
    for path in paths[: args.limit]:
        plate = read_plate(path)
        yield path, resize(plate, *working_size(*plate.shape[:2], LONG_EDGE))


def write_sheet(rows_of_tiles: list[list[np.ndarray]], out: Path) -> None:
    """Each row's tiles (display values in [0, 1]) at TILE on their long side, side by side; rows stacked; a PNG.
    Needs load_package() first, as every tool."""
    from portrait_relight.inference.io.imageio import srgb_to_linear, write_png
    from portrait_relight.inference.resample import resize, working_size

    rows = []
    for tiles in rows_of_tiles:
        height, width = working_size(*tiles[0].shape[:2], TILE)
        rows.append(np.concatenate([resize(tile, height, width) for tile in tiles], axis=1))
    widest = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, widest - r.shape[1]), (0, 0))) for r in rows], axis=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_png(out, srgb_to_linear(sheet))  # the tiles are display values already
