"""The learned geometry net's side of the pipeline: what it is fed and how its answer goes back onto the plate.

The net (trained by training/geometry.py, on light-stage samples prepared with these very functions) works on a
square crop around the subject, resized to a working size (a multiple of 16, WORK_SIZE by default):
- input  (1, 4, S, S) float32: the plate's sRGB-encoded RGB in [0, 1] (the encoding photos and the MediaPipe
  models use; scene-linear values are encoded with io.imageio.linear_to_srgb) and the matte, both 0 outside the
  frame;
- output (1, 3, S, S) float32: camera-space normals (CONVENTIONS.md: +X right, +Y up, +Z toward the camera), not
  necessarily unit length; `unit_normals` normalises them.
The crop is the matte's bounding box (alpha > CROP_THRESHOLD), squared and enlarged by CROP_MARGIN on each side.

Back on the plate, the net's coarse normals are upsampled edge-aware (a fast guided filter, He et al. 2015: the
linear fit of normals to the plate's luminance is solved at the working size and applied at full size), so the
normals' edges follow the plate's edges instead of the working grid's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..io.imageio import linear_to_srgb
from ..models.registry import GEOMETRY_NET
from ..models.session import load_model
from ..resample import resize
from ..settings import RelightSettings

WORK_SIZE = 128
CROP_THRESHOLD = 0.05
CROP_MARGIN = 0.08  # of the box's longer side, on each side
GUIDE_RADIUS = 2  # working-size pixels: the window of the guided filter's local linear fits
GUIDE_EPS = 1e-3  # (luminance units)^2: below this local contrast the normals stay smooth


@dataclass(frozen=True)
class SubjectCrop:
    """A square window (top, left, side) in plate pixels; it may reach beyond the plate."""

    top: int
    left: int
    side: int

    def take(self, image: np.ndarray, size: int) -> np.ndarray:
        """The window of `image` ((H, W) or (H, W, C)) resized to (size, size); 0 where it leaves the image."""
        height, width = image.shape[:2]
        window = np.zeros((self.side, self.side, *image.shape[2:]), np.float32)
        y0, x0 = max(self.top, 0), max(self.left, 0)
        y1, x1 = min(self.top + self.side, height), min(self.left + self.side, width)
        if y1 > y0 and x1 > x0:
            window[y0 - self.top: y1 - self.top, x0 - self.left: x1 - self.left] = image[y0:y1, x0:x1]
        return resize(window, size, size)

    def put_back(self, crop: np.ndarray, height: int, width: int) -> np.ndarray:
        """A (S, S, C) result on the window resized back and placed on a zero (height, width, C) plate."""
        full = np.zeros((height, width, *crop.shape[2:]), np.float32)
        window = resize(crop.astype(np.float32), self.side, self.side)
        y0, x0 = max(self.top, 0), max(self.left, 0)
        y1, x1 = min(self.top + self.side, height), min(self.left + self.side, width)
        if y1 > y0 and x1 > x0:
            full[y0:y1, x0:x1] = window[y0 - self.top: y1 - self.top, x0 - self.left: x1 - self.left]
        return full


def subject_crop(alpha: np.ndarray) -> SubjectCrop:
    """The square window around the matte (the whole plate's centre square when the matte is empty)."""
    rows = np.nonzero((alpha > CROP_THRESHOLD).any(axis=1))[0]
    cols = np.nonzero((alpha > CROP_THRESHOLD).any(axis=0))[0]
    height, width = alpha.shape
    if rows.size == 0:
        side = min(height, width)
        return SubjectCrop((height - side) // 2, (width - side) // 2, side)
    box_h, box_w = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
    side = int(round(max(box_h, box_w) * (1.0 + 2.0 * CROP_MARGIN)))
    centre_y, centre_x = (rows[0] + rows[-1] + 1) / 2.0, (cols[0] + cols[-1] + 1) / 2.0
    return SubjectCrop(int(round(centre_y - side / 2.0)), int(round(centre_x - side / 2.0)), max(side, 1))


def net_input(plate_linear: np.ndarray, alpha: np.ndarray, crop: SubjectCrop, size: int = WORK_SIZE) -> np.ndarray:
    """(1, 4, size, size) float32: sRGB-encoded plate and matte on the crop (see the module docstring)."""
    rgb = crop.take(np.clip(linear_to_srgb(np.asarray(plate_linear[..., :3], np.float32)), 0.0, 1.0), size)
    matte = crop.take(np.asarray(alpha, np.float32), size)
    return np.concatenate([rgb, matte[..., None]], axis=-1).transpose(2, 0, 1)[None].astype(np.float32)


def unit_normals(output: np.ndarray) -> np.ndarray:
    """(1, 3, S, S) net output -> (S, S, 3) unit camera-space normals (facing the camera where it is zero)."""
    n = np.asarray(output, np.float32)[0].transpose(1, 2, 0)
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.where(length > 1e-6, n / np.maximum(length, 1e-6), np.array([0, 0, 1], np.float32)).astype(np.float32)


def guided_upsample(low: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """(s, s, C) coarse values -> (S, S, C) following the edges of the (S, S) full-size guide in [0, 1]."""
    size = low.shape[0]
    guide_low = resize(guide, size, size)
    window = 2 * GUIDE_RADIUS + 1

    def box(x: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(x, size=(window, window) + (1,) * (x.ndim - 2), mode="nearest")

    mean_g = box(guide_low)
    var_g = box(guide_low * guide_low) - mean_g * mean_g
    mean_p = box(low)
    cov = box(guide_low[..., None] * low) - mean_g[..., None] * mean_p
    a = cov / (var_g[..., None] + GUIDE_EPS)
    b = mean_p - a * mean_g[..., None]
    side = guide.shape[0]
    return resize(box(a), side, side) * guide[..., None] + resize(box(b), side, side)


def plate_guide(plate_linear: np.ndarray, crop: SubjectCrop) -> np.ndarray:
    """The guide of guided_upsample on `crop` at full size: the plate's sRGB-encoded luminance in [0, 1]."""
    luminance = np.asarray(plate_linear[..., :3], np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    return crop.take(np.clip(linear_to_srgb(luminance), 0.0, 1.0), crop.side)


def estimate_normals_learned(plate_linear: np.ndarray, alpha: np.ndarray, settings: RelightSettings) -> np.ndarray:
    """(H, W, 3) unit camera-space normals from the geometry net, 0 where alpha is 0."""
    height, width = alpha.shape
    crop = subject_crop(alpha)
    model = load_model(GEOMETRY_NET, settings)
    output = model.run(net_input(plate_linear, alpha, crop, WORK_SIZE))[model.outputs[0]]
    low = unit_normals(output)
    full = crop.put_back(guided_upsample(low, plate_guide(plate_linear, crop)), height, width)
    length = np.linalg.norm(full, axis=-1, keepdims=True)
    full = np.where(length > 1e-6, full / np.maximum(length, 1e-6), 0.0)
    full[alpha <= 0.0] = 0.0
    return full.astype(np.float32)
