"""Panorama-level figures of a light estimate from a background photo (issue "Two pictures are enough").

What relighting needs from an estimated environment is its diffuse light, so every figure compares the *diffuse
irradiance* of the estimate and of the true panorama, over the whole sphere of surface normals (camera frame):
- `irradiance_error`: relative L2 error of E(n) over the sphere (solid-angle weighted, all channels):
  ||E_est - E_true|| / ||E_true||; `irradiance_error_scaled` the same after the best global scale of E_est
  (exposure: one photo cannot know the scene's absolute brightness);
- `direction_error_deg`: angle between the light's mean directions, m = integral E_lum(n) n dn (where the light
  comes from on balance: toward the sun on a sunny day, up under overcast); `directionality` = |m| / integral
  E_lum, of the truth, says how much that direction means (0 for a uniform sphere, ~0.5 for one small light);
- `chroma_error_deg`: angle between the RGB vectors of the mean irradiance (the colour constancy measure).

Test crops (`background_crop`) are what a camera with auto exposure would see of a pool HDRI at a given yaw,
pitch and field of view: exposed to a mean luminance of 0.18, clipped at 1 and quantised to 8-bit sRGB. The true
environment is that HDRI in the same camera frame and exposure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..inference.io.imageio import integer_srgb_to_linear, linear_to_srgb
from ..inference.lighting.environment import CAMERA_TO_CENTRED_PANORAMA, Environment, pixel_directions, rotation_z
from ..inference.stages import lightmaps

PROBE_HEIGHT = 32  # normals sampled on a 32 x 64 equirect grid: the irradiance is smooth (band-limited)
CROP_SIZE = (240, 320)  # (height, width) of the simulated background photos
CAMERA_MEAN_LUMINANCE = 0.18  # auto exposure target (mid grey)
_LUMA = np.array([0.2126, 0.7152, 0.0722])


@dataclass(frozen=True)
class IrradianceProbe:
    """Diffuse irradiance E(n) (N, 3) at unit normals n (N, 3) in the camera frame, with solid angles (N,)."""

    normals: np.ndarray
    irradiance: np.ndarray
    solid_angles: np.ndarray


def irradiance_probe(environment: Environment, height: int = PROBE_HEIGHT) -> IrradianceProbe:
    """The product's own diffuse light map (lightmaps.prefilter: exact clamped-cosine convolution, bright lights
    added per pixel) looked up at a grid of camera-frame normals covering the sphere."""
    normals = pixel_directions(height, 2 * height).astype(np.float32)  # the grid, read as camera-frame normals
    maps = lightmaps.light_maps(lightmaps.prefilter(environment), normals, -normals)
    rings = lightmaps.ring_solid_angles(height, 2 * height)
    omega = np.repeat(rings, 2 * height)
    return IrradianceProbe(normals.reshape(-1, 3).astype(np.float64), maps.diffuse.reshape(-1, 3).astype(np.float64),
                           omega)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-12 or nb < 1e-12:
        return 90.0
    return float(np.degrees(np.arccos(np.clip(a @ b / (na * nb), -1.0, 1.0))))


def mean_direction(probe: IrradianceProbe) -> tuple[np.ndarray, float]:
    """(m = integral E_lum(n) n dn, |m| / integral E_lum dn): the light's mean direction and its directionality."""
    luminance = probe.irradiance @ _LUMA
    moment = (probe.solid_angles * luminance) @ probe.normals
    total = float(probe.solid_angles @ luminance)
    return moment, float(np.linalg.norm(moment) / total) if total > 0 else 0.0


def panorama_figures(estimate: Environment, truth: Environment) -> dict[str, float]:
    """The figures of the module docstring for one estimate against its true environment."""
    est, true = irradiance_probe(estimate), irradiance_probe(truth)
    weights = est.solid_angles[:, None]
    norm_true = math.sqrt(float((weights * true.irradiance**2).sum()))
    error = math.sqrt(float((weights * (est.irradiance - true.irradiance) ** 2).sum())) / norm_true
    energy = float((weights * est.irradiance**2).sum())
    scale = float((weights * est.irradiance * true.irradiance).sum()) / energy if energy > 0 else 0.0
    scaled = math.sqrt(float((weights * (scale * est.irradiance - true.irradiance) ** 2).sum())) / norm_true
    est_direction, _ = mean_direction(est)
    true_direction, directionality = mean_direction(true)
    return {
        "irradiance_error": error,
        "irradiance_error_scaled": scaled,
        "direction_error_deg": _angle_deg(est_direction, true_direction),
        "directionality": directionality,
        "chroma_error_deg": _angle_deg(est.solid_angles @ est.irradiance, true.solid_angles @ true.irradiance),
    }


def camera_to_env(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """cam_to_env of a camera turned by `yaw_deg` about the vertical (Blender's Mapping Z sense, as
    Environment.centred) and tilted up by `pitch_deg` about its own x axis."""
    p = math.radians(pitch_deg)
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(p), -math.sin(p)], [0.0, math.sin(p), math.cos(p)]])
    return rotation_z(math.radians(yaw_deg)) @ CAMERA_TO_CENTRED_PANORAMA @ tilt


@dataclass(frozen=True)
class BackgroundCrop:
    background: np.ndarray  # (h, w, 3) scene-linear, display-referred: clipped to [0, 1], 8-bit quantised
    truth: Environment  # the panorama in the same camera frame and exposure
    fov_deg: float


def background_crop(radiance: np.ndarray, yaw_deg: float, pitch_deg: float, fov_deg: float,
                    size: tuple[int, int] = CROP_SIZE) -> BackgroundCrop:
    """What an auto-exposed camera sees of the panorama `radiance` (see the module docstring)."""
    height, width = size
    scene = Environment(np.asarray(radiance, np.float32), camera_to_env(yaw_deg, pitch_deg))
    view = scene.view(width, height, fov_deg).astype(np.float64)
    exposure = CAMERA_MEAN_LUMINANCE / max(float((view @ _LUMA).mean()), 1e-9)
    truth = Environment((scene.radiance * exposure).astype(np.float32), scene.cam_to_env)
    return BackgroundCrop(display_photo(view * exposure), truth, fov_deg)


def display_photo(view: np.ndarray) -> np.ndarray:
    """What an 8-bit sRGB photo keeps of scene-linear `view` (already exposed): clipped at 1, quantised, and
    decoded back to scene-linear float32."""
    encoded = np.round(np.clip(linear_to_srgb(np.clip(view, 0.0, 1.0)), 0.0, 1.0) * 255.0)
    return integer_srgb_to_linear(encoded.astype(np.uint8))


def grey_environment(background: np.ndarray, height: int = 64) -> Environment:
    """The baseline with no light estimate at all: a uniform grey sphere as bright as the photo's mean."""
    level = float((np.asarray(background, np.float64) @ _LUMA).mean())
    return Environment(np.full((height, 2 * height, 3), level, np.float32), CAMERA_TO_CENTRED_PANORAMA.copy())
