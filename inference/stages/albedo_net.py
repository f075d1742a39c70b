"""The learned albedo net's contract (trained by training/albedo.py; not yet a product stage: the classical
albedo stays in use until the net has weights that beat it, see the issue "Learned relighting module").

Like the geometry net (normals_net.py) it works on the subject's square crop at a working size S:
- input  (1, 7, S, S) float32: the plate's sRGB-encoded RGB in [0, 1], the matte, and camera-space unit normals
  (whichever normals stage ran; 0 outside the matte);
- output (1, 3, S, S) float32: the log of the plate's per-channel source shading, log(plate / albedo), light
  colour included, up to one global offset (a photo cannot tell a dark subject in bright light from a light one
  in dim light): the stage sets that scale by convention, like the classical stage (median shading 1).
The albedo is the full-resolution foreground divided by exp(output), smoothly upsampled: the shading is
low-frequency, so the plate's own texture (pores, freckles, make-up) stays in the albedo rather than being
re-synthesised at the working size.
"""

from __future__ import annotations

import numpy as np

from .normals_net import WORK_SIZE, SubjectCrop, net_input

IN_CHANNELS, OUT_CHANNELS = 7, 3
LOG_EPS = 1e-3  # linear units added before logs: keeps black pixels finite


def albedo_net_input(plate_linear: np.ndarray, alpha: np.ndarray, normals: np.ndarray, crop: SubjectCrop,
                     size: int = WORK_SIZE) -> np.ndarray:
    """(1, 7, size, size): the geometry net's input (sRGB plate, matte) followed by the normals on the crop,
    unit length again after the resize (0 where there are none)."""
    normal_crop = crop.take(np.asarray(normals, np.float32) * (np.asarray(alpha) > 0)[..., None], size)
    length = np.linalg.norm(normal_crop, axis=-1, keepdims=True)
    normal_crop = np.where(length > 1e-6, normal_crop / np.maximum(length, 1e-6), 0.0).astype(np.float32)
    return np.concatenate([net_input(plate_linear, alpha, crop, size), normal_crop.transpose(2, 0, 1)[None]], axis=1)


def log_shading(plate_linear: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    """The net's target: log((plate + eps) / (albedo + eps)) per channel."""
    return np.log(np.maximum(plate_linear, 0.0) + LOG_EPS) - np.log(np.maximum(albedo, 0.0) + LOG_EPS)
