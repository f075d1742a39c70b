"""The light of a scene from its background photo alone (v2): the photo where the camera saw it, plus a few
light components for the rest of the sphere, mixed with gains calibrated on the HDRI pool.

A photo shows one frustum of the sphere; most of the light that falls on a subject (the sun, the sky overhead,
whatever is behind the camera) is outside it. v1 extended the photo smoothly and expanded its clipped highlights
16x, which overshot and pointed the light at the frame (tools/panorama_eval.py: 51 degrees median direction
error, worse than a grey constant without a free exposure). v2 builds the sphere as
    visible plate (kept as it is: reflections and the backdrop see the real photo)
    + sum_k GAINS[k] * component_k,
where each component is a fixed recipe computed from the photo, everything outside the frustum:
- `fill`: the photo extended smoothly over the sphere by push-pull (its colours and brightness nearby);
- `grey_fill`: the same fill's luminance in neutral grey (the fit mixes the two: how much of the photo's colour
  cast the light really has; a green forest floor does not make the light green);
- `sky_ring`: a neutral band 10-60 degrees above the camera's horizon, at the photo's mean luminance (the sky
  and a sun that is usually up there, somewhere);
- `highlights`: the photo's clipped pixels again (a clipped sun, lamp or window is brighter than 1.0 says);
- `bright_side`: a lobe just beyond the frame edge on the side where the photo's upper half is brighter,
  weighted by how much brighter (the glow toward a sun outside the frame), coloured like the brightest pixels.
The gains are the non-negative least-squares fit of the true diffuse irradiance (order-2 spherical harmonics,
relative error per crop) over auto-exposed crops of the 24 pool HDRIs, then scaled together so that the light's
level is unbiased (median true/estimated irradiance 1; evaluation/panorama_calibration.py);
`tools/panorama_eval.py` reports leave-one-HDRI-out figures (each HDRI scored with gains fitted without it) and
prints the all-pool gains below.
Everything scales with the photo's brightness, so no absolute exposure is assumed.
"""

from __future__ import annotations

import math

import numpy as np

from .camera import half_extents
from .environment import CAMERA_TO_CENTRED_PANORAMA, Environment, pixel_directions
from .panorama import is_scene_referred, project_plate, push_pull

COMPONENTS = ("fill", "grey_fill", "sky_ring", "highlights", "bright_side")
# the last line of tools/panorama_eval.py --crops 6 --seed 0 (fitted on all 24 pool HDRIs)
GAINS = {"fill": 0.233, "grey_fill": 0.8, "sky_ring": 2.918, "highlights": 3.729, "bright_side": 7.612}
CLIPPED = 0.98  # a display-referred pixel with a channel at or above this was clipped by the camera
SKY_RING_DEG = (10.0, 60.0)  # elevation band of the sky ring, camera frame
BRIGHTEST_FRACTION = 0.05  # the brightest pixels whose colour the light outside the frame takes
SIDE_BEYOND_DEG = 30.0  # the bright-side lobe's centre: this far past the frame edge ...
SIDE_ELEVATION_DEG = 20.0  # ... and this high
LOBE_EXPONENT = 8  # cos^8 lobe: about 45 degrees wide at half maximum
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def _camera_directions(height: int) -> np.ndarray:
    """Camera-frame unit directions of the pixels of a CAMERA_TO_CENTRED_PANORAMA equirect."""
    return (pixel_directions(height, 2 * height) @ CAMERA_TO_CENTRED_PANORAMA).astype(np.float32)


def _lobe(directions: np.ndarray, axis: np.ndarray) -> np.ndarray:
    return np.maximum(directions @ axis.astype(np.float32), 0.0) ** LOBE_EXPONENT


def brightest_colour(plate: np.ndarray, luminance: np.ndarray, level: float) -> np.ndarray:
    """The mean colour of the brightest BRIGHTEST_FRACTION of pixels, rescaled to luminance `level`."""
    threshold = np.quantile(luminance, 1.0 - BRIGHTEST_FRACTION)
    colour = plate[luminance >= threshold].mean(axis=0)
    return colour * (level / max(float(colour @ _LUMA), 1e-9))


def bright_side_axis(luminance: np.ndarray, fov_deg: float) -> tuple[np.ndarray, float]:
    """(camera-frame axis, weight) of the lobe beyond the brighter side of the photo's upper half; weight is the
    left/right contrast (a - b) / (a + b) of its outer thirds, 0 for a symmetric photo."""
    upper = luminance[: max(1, luminance.shape[0] // 2)]
    third = max(1, upper.shape[1] // 3)
    left, right = float(upper[:, :third].mean()), float(upper[:, -third:].mean())
    weight = abs(left - right) / max(left + right, 1e-9)
    tan_x, _ = half_extents(luminance.shape[1], luminance.shape[0], fov_deg)
    azimuth = math.atan(tan_x) + math.radians(SIDE_BEYOND_DEG)
    elevation = math.radians(SIDE_ELEVATION_DEG)
    side = -1.0 if left > right else 1.0
    axis = np.array([side * math.sin(azimuth) * math.cos(elevation), math.sin(elevation),
                     -math.cos(azimuth) * math.cos(elevation)])
    return axis, weight


def light_components(plate: np.ndarray, fov_deg: float, height: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(the visible plate projected, {component name: radiance}) on a (height, 2 height) centred equirect, for a
    finite, non-negative scene-linear plate (H, W, 3). See the module docstring."""
    projected, inside = project_plate(plate, fov_deg, height)
    outside = (inside == 0)[..., None].astype(np.float32)
    directions = _camera_directions(height)
    luminance = plate @ _LUMA
    level = float(luminance.mean())
    elevation = np.degrees(np.arcsin(np.clip(directions[..., 1], -1.0, 1.0)))
    ring = ((elevation > SKY_RING_DEG[0]) & (elevation < SKY_RING_DEG[1]))[..., None]
    if is_scene_referred(plate):
        clipped = np.zeros_like(projected)  # an HDR plate's bright pixels already carry their radiance
    else:
        clipped, _ = project_plate(plate * (plate.max(axis=-1) >= CLIPPED)[..., None], fov_deg, height)
    axis, weight = bright_side_axis(luminance, fov_deg)
    fill = push_pull(projected, inside) * outside
    components = {
        "fill": fill,
        "grey_fill": np.repeat(fill @ _LUMA, 3).reshape(fill.shape),
        "sky_ring": ring * outside * np.full(3, level, np.float32),
        "highlights": clipped,
        "bright_side": weight * _lobe(directions, axis)[..., None] * outside
        * brightest_colour(plate, luminance, level).astype(np.float32),
    }
    return projected, components


def estimate_environment(background: np.ndarray, fov_deg: float, height: int = 256,
                         gains: dict[str, float] | None = None) -> Environment:
    """HDR environment (height x 2 height equirect, cam_to_env = CAMERA_TO_CENTRED_PANORAMA: the photo's centre
    straight ahead, its top up) from a scene-linear background photo (H, W, 3) seen with field of view `fov_deg`
    across its larger dimension. `gains` replaces GAINS (the calibration tool's held-out folds)."""
    plate = np.nan_to_num(np.asarray(background, np.float32)[..., :3], nan=0.0, posinf=0.0, neginf=0.0)
    plate = np.maximum(plate, 0.0)
    projected, components = light_components(plate, fov_deg, height)
    gains = GAINS if gains is None else gains
    radiance = projected + sum(np.float32(gains[name]) * components[name] for name in COMPONENTS)
    return Environment(np.ascontiguousarray(np.maximum(radiance, 0.0), np.float32), CAMERA_TO_CENTRED_PANORAMA.copy())
