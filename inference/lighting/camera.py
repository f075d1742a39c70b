"""Pinhole camera rays in camera space (CONVENTIONS.md: OpenGL, +X right, +Y up, looking down -Z)."""

from __future__ import annotations

import math

import numpy as np


def half_extents(width: int, height: int, fov_deg: float) -> tuple[float, float]:
    """tan of the half field of view along x and y; `fov_deg` spans the larger dimension (sensor fit AUTO)."""
    t = math.tan(math.radians(fov_deg) / 2.0)
    if width >= height:
        return t, t * height / width
    return t * width / height, t


def camera_rays(width: int, height: int, fov_deg: float, box: tuple[slice, slice] | None = None) -> np.ndarray:
    """(H, W, 3) float32 unit view rays through pixel centres, row 0 at the top of the image; with `box`
    (rows, columns), only that part of the frame's rays."""
    tx, ty = half_extents(width, height, fov_deg)
    rows, cols = box if box is not None else (slice(0, height), slice(0, width))
    x = ((2.0 * (np.arange(width, dtype=np.float64)[cols] + 0.5) / width) - 1.0) * tx
    y = (1.0 - 2.0 * (np.arange(height, dtype=np.float64)[rows] + 0.5) / height) * ty
    d = np.empty((y.size, x.size, 3), np.float64)
    d[..., 0] = x[None, :]
    d[..., 1] = y[:, None]
    d[..., 2] = -1.0
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    return d.astype(np.float32)
