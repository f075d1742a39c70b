"""v1's environment estimate from a background plate, kept as the baseline the light-from-background figures
compare against (tools/panorama_eval.py, `make eval`); the product uses inference/lighting/background_light.py.

The plate sees only the camera's frustum. v1
1. inverse-tone-maps it: a display-referred plate clips bright sky and windows near 1.0, which would make them
   no brighter than a white wall; pixels near clipping are expanded smoothly (up to HIGHLIGHT_GAIN x) so they act
   as real light sources. Plates that are already HDR (values well above 1) are left alone;
2. projects it onto the sphere with the camera's field of view (lighting/panorama.py);
3. fills the rest of the sphere by push-pull against a weak prior: a vertical sky/ground gradient coloured from
   the plate's top and bottom rows. The plate dominates near the frustum and fades into the prior a few tens of
   degrees away.
"""

from __future__ import annotations

import numpy as np

from ..inference.lighting.environment import CAMERA_TO_CENTRED_PANORAMA, Environment
from ..inference.lighting.panorama import is_scene_referred, project_plate, push_pull

HIGHLIGHT_START = 0.8  # luminance (scene-linear) where highlight expansion begins
HIGHLIGHT_GAIN = 16.0  # radiance multiplier reached at full clipping (luminance 1.0)
PRIOR_WEIGHT = 1.0 / 1024.0  # per-pixel weight of the prior outside the frustum: the plate reaches ~2^5 px out
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def expand_highlights(plate: np.ndarray) -> np.ndarray:
    """Inverse tone mapping: scale pixels whose luminance Y exceeds HIGHLIGHT_START by
    1 + (HIGHLIGHT_GAIN - 1) * s^2, s = smoothstep(HIGHLIGHT_START, 1, Y); hue is kept (one gain per pixel)."""
    plate = np.asarray(plate, np.float32)
    if is_scene_referred(plate):
        return plate
    y = plate @ _LUMA
    s = np.clip((y - HIGHLIGHT_START) / (1.0 - HIGHLIGHT_START), 0.0, 1.0)
    s = s * s * (3.0 - 2.0 * s)
    gain = 1.0 + (HIGHLIGHT_GAIN - 1.0) * s * s
    return plate * gain[..., None]


def _sky_ground_prior(plate: np.ndarray, height: int) -> np.ndarray:
    """(height, 2 height, 3): plate's top-rows colour above the horizon, bottom-rows colour below, blended
    over +-20 degrees of elevation (a plausible outdoor/indoor gradient that needs nothing but the plate)."""
    band = max(1, plate.shape[0] // 10)
    sky = plate[:band].reshape(-1, 3).mean(axis=0)
    ground = plate[-band:].reshape(-1, 3).mean(axis=0)
    elevation = 90.0 - (np.arange(height) + 0.5) * 180.0 / height
    t = np.clip((elevation + 20.0) / 40.0, 0.0, 1.0)
    t = t * t * (3.0 - 2.0 * t)
    column = ground[None, :] * (1.0 - t[:, None]) + sky[None, :] * t[:, None]
    return np.broadcast_to(column[:, None, :], (height, 2 * height, 3)).astype(np.float32)


def estimate_environment_v1(background: np.ndarray, fov_deg: float, height: int = 256) -> Environment:
    """HDR environment (height x 2 height equirect) from a scene-linear plate (H, W, 3) seen with horizontal-or-
    vertical field of view `fov_deg` across the larger image dimension. cam_to_env = CAMERA_TO_CENTRED_PANORAMA
    (the plate's centre is the panorama's centre column, its top is up)."""
    plate = np.nan_to_num(np.asarray(background, np.float32)[..., :3], nan=0.0, posinf=0.0, neginf=0.0)
    plate = expand_highlights(np.maximum(plate, 0.0))
    projected, inside = project_plate(plate, fov_deg, height)
    prior = _sky_ground_prior(plate, height)
    weights = np.where(inside > 0, 1.0, PRIOR_WEIGHT).astype(np.float32)
    values = np.where(inside[..., None] > 0, projected, prior)
    radiance = push_pull(values, weights)
    return Environment(np.ascontiguousarray(np.maximum(radiance, 0.0), np.float32), CAMERA_TO_CENTRED_PANORAMA.copy())
