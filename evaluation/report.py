"""Report outputs: the fixed-width table, report.json and the contact sheet PNG."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..inference.io.imageio import write_png
from ..inference.resample import resize
from .metrics import METRIC_COLUMNS, display

CONTACT_COLUMNS = ("plate", "GT alpha", "ours alpha", "GT normal", "ours normal", "GT albedo", "ours albedo",
                   "GT relit", "ours relit")
LABEL_HEIGHT = 14


def mean_rows(case_rows: list[dict[str, dict]], row_names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Mean over cases of every metric per row; rows that failed on a case (an "error" entry) are left out,
    and "cases" says how many were averaged. NaN (metric undefined for that case) is skipped too."""
    means: dict[str, dict[str, float]] = {}
    for row in row_names:
        present = [r[row] for r in case_rows if row in r and "error" not in r[row]]
        entry: dict[str, float] = {"cases": len(present)}
        for key, _, _ in METRIC_COLUMNS:
            values = [m[key] for m in present if key in m and not math.isnan(m[key])]
            if values:
                entry[key] = float(np.mean(values))
        means[row] = entry
    return means


def format_table(means: dict[str, dict[str, float]]) -> str:
    """One line per row, one fixed-width column per metric; '-' where a row has no such metric."""
    name_width = max(len("method"), *(len(n) for n in means)) + 2
    width = max(10, *(len(h) + 2 for _, h, _ in METRIC_COLUMNS))
    header = "method".ljust(name_width) + "n".rjust(4) + "".join(h.rjust(width) for _, h, _ in METRIC_COLUMNS)
    lines = [header, "-" * len(header)]
    for name, entry in means.items():
        cells = [(fmt.format(entry[key]) if key in entry else "-").rjust(width) for key, _, fmt in METRIC_COLUMNS]
        lines.append(name.ljust(name_width) + str(entry.get("cases", 0)).rjust(4) + "".join(cells))
    return "\n".join(lines)


def json_safe(value):
    """Strict JSON: NaN -> null, +/-inf -> "inf"/"-inf" (PSNR of a perfect prediction is +inf)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def write_report(path: Path, report: dict) -> None:
    path.write_text(json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n")


# ----------------------------------------------------------------------------------------------- contact sheet
def _rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[..., None], 3, axis=-1) if x.ndim == 2 else x[..., :3]


def contact_tiles(gt: dict[str, np.ndarray], ours) -> list[np.ndarray]:
    """Display-referred [0, 1] tiles in CONTACT_COLUMNS order; `ours` is a MethodOutput or None (failed: black).
    Normals show as 0.5 n + 0.5 inside their matte, relit colour over black."""
    gt_alpha = gt["alpha"]
    black = np.zeros(gt_alpha.shape + (3,), np.float32)

    def normal_tile(n, a):
        return (0.5 * n + 0.5) * (a > 0)[..., None]

    tiles = [display(gt["plate"][..., :3]), _rgb(gt_alpha), black, normal_tile(gt["normal"], gt_alpha), black,
             display(gt["albedo"][..., :3]), black, display(gt["relit"][..., :3] * gt_alpha[..., None]), black]
    if ours is not None:
        tiles[2] = _rgb(ours.alpha)
        tiles[4] = normal_tile(ours.normal, ours.alpha)
        tiles[6] = display(ours.albedo)
        tiles[8] = display(ours.relit * ours.alpha[..., None])
    return [np.clip(np.asarray(t, np.float32), 0.0, 1.0) for t in tiles]


def _label(text: str, width: int) -> np.ndarray:
    """A LABEL_HEIGHT x width strip with `text` in Pillow's built-in font (white on dark grey)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, LABEL_HEIGHT), (40, 40, 40))
    font = ImageFont.load_default(size=LABEL_HEIGHT - 3)  # scalable where Pillow has FreeType, else bitmap
    ImageDraw.Draw(image).text((3, 1), text, fill=(255, 255, 255), font=font)
    return np.asarray(image, np.float32) / 255.0


def contact_sheet(rows: list[tuple[str, list[np.ndarray]]], tile_height: int = 128) -> np.ndarray:
    """Rows = cases (labelled with the case name), columns = CONTACT_COLUMNS (labelled once at the top)."""
    def scaled(tile: np.ndarray) -> np.ndarray:
        h, w = tile.shape[:2]
        return resize(tile, tile_height, max(1, round(w * tile_height / h)))

    strips = []
    for name, tiles in rows:
        images = [scaled(t) for t in tiles]
        strips.append(_label(name, sum(t.shape[1] for t in images)))
        strips.append(np.concatenate(images, axis=1))
    width = max(s.shape[1] for s in strips)
    tile_width = strips[1].shape[1] // len(CONTACT_COLUMNS)
    header = np.concatenate([_label(c, tile_width) for c in CONTACT_COLUMNS], axis=1)
    strips.insert(0, header)
    padded = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in strips]
    return np.concatenate(padded, axis=0)


def write_contact_sheet(path: Path, rows: list[tuple[str, list[np.ndarray]]], tile_height: int = 128) -> None:
    write_png(path, contact_sheet(rows, tile_height))
