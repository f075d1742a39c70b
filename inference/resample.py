"""Resizing float images (HW or HWC float32) without leaving float precision."""

from __future__ import annotations

import numpy as np


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-averaging when shrinking (keeps integrals, no aliasing), bilinear when enlarging."""
    from PIL import Image

    image = np.asarray(image, np.float32)
    if image.shape[:2] == (height, width):
        return image.copy()
    shrinking = height < image.shape[0] and width < image.shape[1]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    planes = image[..., None] if image.ndim == 2 else image
    out = np.empty((height, width, planes.shape[2]), np.float32)
    for c in range(planes.shape[2]):
        plane = Image.fromarray(np.ascontiguousarray(planes[..., c]))  # float32 -> mode "F"
        out[..., c] = np.asarray(plane.resize((width, height), method), np.float32)
    return out[..., 0] if image.ndim == 2 else out


def working_size(height: int, width: int, long_edge: int) -> tuple[int, int]:
    """(h, w) with the same aspect ratio and the longer side at most `long_edge`."""
    scale = min(1.0, long_edge / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))
