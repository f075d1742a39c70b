"""Projecting a background plate onto the sphere and filling the rest by push-pull: what the light estimators build
on (lighting/background_light.py; v1's, kept as the figures' baseline, is evaluation/panorama_v1.py).

The frustum lands in the centre of a CAMERA_TO_CENTRED_PANORAMA equirect (CONVENTIONS.md camera rays), the plate
area-averaged down to the panorama's pixel size first; push-pull is multi-resolution normalised averaging,
wrapping in azimuth.
"""

from __future__ import annotations

import numpy as np

from .camera import half_extents
from .environment import CAMERA_TO_CENTRED_PANORAMA, pixel_directions

HDR_PLATE_MAX = 1.5  # a plate whose 99.9th percentile exceeds this is taken as scene-referred already


def is_scene_referred(plate: np.ndarray) -> bool:
    """True for a plate that is HDR already (its 99.9th percentile above HDR_PLATE_MAX): nothing in it clipped."""
    return bool(plate.size and np.percentile(plate[::7, ::7], 99.9) > HDR_PLATE_MAX)


def _box_downsample_plate(plate: np.ndarray, factor: int) -> np.ndarray:
    """Average factor x factor blocks (the ragged right/bottom remainder is dropped)."""
    if factor <= 1:
        return plate
    h, w = plate.shape[0] // factor, plate.shape[1] // factor
    cropped = plate[: h * factor, : w * factor]
    return cropped.reshape(h, factor, w, factor, 3).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def project_plate(plate: np.ndarray, fov_deg: float, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Plate -> (radiance (height, 2 height, 3), weight (height, 2 height) = 1 inside the frustum, else 0)."""
    ph, pw = plate.shape[:2]
    tx, ty = half_extents(pw, ph, fov_deg)
    # area-average the plate to about one panorama pixel (pi / height rad) per sample at the image centre; a very
    # narrow FOV (the whole plate inside one panorama pixel) keeps at least one sample
    factor = min(int(max(1, np.floor((np.pi / height) / (2.0 * tx / pw)))), ph, pw)
    small = _box_downsample_plate(plate, factor)
    sh, sw = small.shape[:2]
    d = pixel_directions(height, 2 * height) @ CAMERA_TO_CENTRED_PANORAMA  # rows: q @ M = M^T q = camera dirs
    front = d[..., 2] < -1e-6
    depth = np.where(front, -d[..., 2], 1.0)
    x = d[..., 0] / depth / tx  # -1..1 across the image
    y = d[..., 1] / depth / ty
    inside = front & (np.abs(x) <= 1.0) & (np.abs(y) <= 1.0)
    # continuous pixel coordinates in the full plate, then in the downsampled one
    col = ((x + 1.0) * 0.5 * pw) / factor - 0.5
    row = ((1.0 - y) * 0.5 * ph) / factor - 0.5
    col = np.clip(col, 0.0, sw - 1.0)
    row = np.clip(row, 0.0, sh - 1.0)
    c0 = np.minimum(col.astype(np.int64), max(sw - 2, 0))
    r0 = np.minimum(row.astype(np.int64), max(sh - 2, 0))
    c1, r1 = np.minimum(c0 + 1, sw - 1), np.minimum(r0 + 1, sh - 1)
    fc = (col - c0)[..., None].astype(np.float32)
    fr = (row - r0)[..., None].astype(np.float32)
    top = small[r0, c0] * (1 - fc) + small[r0, c1] * fc
    bottom = small[r1, c0] * (1 - fc) + small[r1, c1] * fc
    radiance = (top * (1 - fr) + bottom * fr) * inside[..., None]
    return radiance.astype(np.float32), inside.astype(np.float32)


def _downsample2(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One push level: 2x2 weighted means (rows of odd height keep the last row alone)."""
    h, w = weights.shape
    if h % 2:
        values = np.concatenate([values, values[-1:]], axis=0)
        weights = np.concatenate([weights, weights[-1:]], axis=0)
    wv = (values * weights[..., None]).reshape(values.shape[0] // 2, 2, w // 2, 2, 3).sum(axis=(1, 3))
    ws = weights.reshape(weights.shape[0] // 2, 2, w // 2, 2).sum(axis=(1, 3))
    return wv / np.maximum(ws, 1e-12)[..., None], np.minimum(ws, 1.0)


def _upsample2(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear 2x upsampling, wrapping in azimuth (columns) and clamping at the poles (rows)."""
    ch, cw = coarse.shape[:2]
    h, w = shape
    y = np.clip((np.arange(h) + 0.5) / 2.0 - 0.5, 0.0, ch - 1.0)
    y0 = np.minimum(y.astype(np.int64), max(ch - 2, 0))
    y1 = np.minimum(y0 + 1, ch - 1)
    fy = (y - y0)[:, None, None]
    x = (np.arange(w) + 0.5) / 2.0 - 0.5
    x0 = np.floor(x).astype(np.int64)
    fx = (x - x0)[None, :, None]
    x0m, x1m = np.mod(x0, cw), np.mod(x0 + 1, cw)
    rows = coarse[y0] * (1 - fy) + coarse[y1] * fy
    return (rows[:, x0m] * (1 - fx) + rows[:, x1m] * fx).astype(np.float32)


def push_pull(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Fill an equirect (h, 2h, 3) where weights (h, 2h) in [0, 1] are low from coarser weighted averages.

    Push: 2x2 weighted means with weights summed (clamped to 1) up to a 1 x 2 image. Pull: from coarse to fine,
    value = w * own + (1 - w) * upsampled coarser value. Smooth, seam-free (wrap in azimuth), O(pixels).
    """
    levels = [(values.astype(np.float32), weights.astype(np.float32))]
    while levels[-1][1].shape[0] > 1 and levels[-1][1].shape[1] % 2 == 0:
        levels.append(_downsample2(*levels[-1]))
    filled = levels[-1][0]
    for v, w in reversed(levels[:-1]):
        up = _upsample2(filled, w.shape)
        filled = v * w[..., None] + up * (1.0 - w[..., None])
    return filled.astype(np.float32)
