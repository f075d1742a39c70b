"""Training samples derived from a rendered pose (lightstage/poses.py) without Blender: many lightings per pose.

For sample seed s of a pose (same pose and seed => the same sample, bit for bit):
1. Light: usually a weighted sum of the pose's OLAT basis, weights from an HDRI of the pool at a random rotation
   and exposure (lighting.olat_weights), sometimes plus a coloured area light; with DIRECT_SHARE the pose's direct
   Cycles render under its own HDRI instead (sharp sun shadows the ~40-degree OLAT suns soften).
2. Background: mostly the same HDRI as the camera sees it (consistent light), else another HDRI at another rotation
   (a composite), often defocused; the subject goes over it with its ground-truth alpha.
3. Camera and photo: exposure metered on the subject (as a photographer exposes for the face) with a random
   error, white balance (mostly a camera's grey-world auto white balance, plus a random error), lens blur,
   sensor noise (shot + read), a display encoding (sRGB or a filmic-like curve), 8-bit quantisation, sometimes
   JPEG; then decoded back as the product decodes an 8-bit photo (sRGB EOTF), so the net sees what ./relight
   feeds it.
The sample carries the ground truth unchanged (alpha, camera-space normals, albedo, roughness, depth) and the
parameters it was made with.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..inference.io.imageio import linear_to_srgb, srgb_to_linear
from ..inference.lighting.environment import Environment, rotation_z
from . import lighting
from .training_format import downsample_panorama

DIRECT_SHARE = 0.2  # samples lit by the pose's direct render
AREA_LIGHT_SHARE = 0.35  # OLAT samples with an extra coloured light
SAME_BACKGROUND_SHARE = 0.7  # backgrounds that show the light's own HDRI
DEFOCUS_SHARE = 0.5
JPEG_SHARE = 0.5
FILMIC_SHARE = 0.3
# Photos a camera white-balanced (grey world, at a random strength): most real plates have the light's colour
# largely taken out, and a net that only saw unbalanced plates would take it out a second time.
AUTO_WHITE_BALANCE_SHARE = 0.7
SUBJECT_KEY = 0.2  # scene-linear luminance the subject's median is exposed to (before a random error)


@dataclass(frozen=True)
class HdriPool:
    """The HDRIs lightings are drawn from, (collection, path) as lighting.hdri_pool lists them, each loaded once
    and area-averaged to `height` rows: enough for the OLAT weights (an integral) and for backgrounds at the
    training resolution, and cheap to look up."""

    entries: tuple[tuple[str, Path], ...]
    height: int = 256

    @classmethod
    def from_shared(cls, shared: Path, height: int = 256) -> HdriPool:
        return cls(tuple(lighting.hdri_pool(shared)), height)

    def path(self, ref: dict) -> Path:
        for collection, path in self.entries:
            if (collection, path.name) == (ref["collection"], ref["name"]):
                return path
        raise FileNotFoundError(f"HDRI {ref} is not in the pool")

    def panorama(self, path: Path) -> np.ndarray:
        return _panorama(path, self.height)


@functools.lru_cache(maxsize=64)
def _panorama(path: Path, height: int) -> np.ndarray:
    pixels = lighting.load_hdri(path)
    if pixels.shape[0] <= height:
        return pixels
    return downsample_panorama(pixels, (height, 2 * height))


def sample_rng(pose_seed: int, sample_seed: int) -> np.random.Generator:
    return np.random.default_rng([pose_seed, sample_seed, 23])


def _random_light(rng: np.random.Generator, pool: HdriPool, exposure_stops: float = 1.0) -> dict:
    collection, path = pool.entries[int(rng.integers(len(pool.entries)))]
    stops = float(rng.uniform(-exposure_stops, exposure_stops))
    return {"hdri": {"collection": collection, "name": path.name}, "path": path,
            "rotation_z_deg": float(rng.uniform(0.0, 360.0)),
            "strength": lighting.normalised_strength(path, stops)}


def _area_light(rng: np.random.Generator, directions_world: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A coloured light on the OLAT light nearest a random direction above the horizon's -20 degrees, as bright as
    0.3-1.5x the HDRI's whole irradiance: a studio key or kicker the HDRI does not have."""
    z = rng.uniform(-0.35, 1.0)
    phi = rng.uniform(0.0, 2.0 * math.pi)
    direction = np.array([math.sqrt(1 - z * z) * math.cos(phi), math.sqrt(1 - z * z) * math.sin(phi), z])
    hue = rng.uniform(0.0, 1.0)
    saturation = rng.uniform(0.1, 0.7)
    colour = 1.0 - saturation * (0.5 + 0.5 * np.cos(2.0 * math.pi * (hue - np.array([0.0, 1 / 3, 2 / 3]))))
    extra = np.zeros_like(weights)
    total = weights.sum(axis=0).mean()
    extra[int(np.argmax(directions_world @ direction))] = colour / colour.mean() * total * rng.uniform(0.3, 1.5)
    return extra


def _lit_subject(pose: dict, rng: np.random.Generator, pool: HdriPool,
                 area_light_share: float = AREA_LIGHT_SHARE) -> tuple[np.ndarray, dict, Environment]:
    """(premultiplied subject under the chosen light, its description, the light as the camera sees it; the
    environment lacks the area light, which only some OLAT lightings get, with `area_light_share`)."""
    meta = pose["meta"]
    r_cam = np.asarray(meta["camera"]["R_cam"], np.float64)
    if rng.random() < DIRECT_SHARE:
        source = meta["source"]
        path = pool.path(source["hdri"])
        environment = Environment(pool.panorama(path) * np.float32(source["strength"]),
                                  np.asarray(source["cam_to_env"], np.float64))
        return pose["direct"], {"kind": "direct", "hdri": source["hdri"], "strength": source["strength"]}, environment
    light = _random_light(rng, pool)
    directions = np.asarray(meta["olat"]["directions_world"], np.float64)
    weights = lighting.panorama_olat_weights(pool.panorama(light["path"]), light["rotation_z_deg"], light["strength"],
                                             directions)
    info = {"kind": "olat", "hdri": light["hdri"], "rotation_z_deg": light["rotation_z_deg"],
            "strength": light["strength"]}
    if rng.random() < area_light_share:
        extra = _area_light(rng, directions, weights)
        weights = weights + extra
        info["area_light"] = extra.sum(axis=0).tolist()
    subject = np.einsum("nhwc,nc->hwc", pose["olat"], weights.astype(np.float32))
    cam_to_env = rotation_z(math.radians(light["rotation_z_deg"])) @ r_cam
    environment = Environment(pool.panorama(light["path"]) * np.float32(light["strength"]), cam_to_env)
    return subject, info, environment


def _background(pose: dict, rng: np.random.Generator, pool: HdriPool, environment: Environment) -> tuple:
    meta = pose["meta"]
    height, width = pose["alpha"].shape
    fov = float(meta["camera"]["fov_deg"])
    info: dict = {"same_as_light": True}
    if rng.random() >= SAME_BACKGROUND_SHARE:
        other = _random_light(rng, pool)
        cam_to_env = rotation_z(math.radians(other["rotation_z_deg"])) @ np.asarray(meta["camera"]["R_cam"])
        environment = Environment(pool.panorama(other["path"]) * np.float32(other["strength"]), cam_to_env)
        info = {"same_as_light": False, "hdri": other["hdri"]}
    view = environment.view(width, height, fov)
    if rng.random() < DEFOCUS_SHARE:
        sigma = float(rng.uniform(0.5, 4.0)) * width / 256.0
        view = ndimage.gaussian_filter(view, (sigma, sigma, 0))
        info["defocus_px"] = sigma
    return view.astype(np.float32), info


def _filmic(x: np.ndarray) -> np.ndarray:
    """A filmic-like display curve (toe and shoulder, 1 -> ~0.8): what AgX/Filmic-graded photos look like."""
    x = np.maximum(x, 0.0)
    return (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)


def _jpeg(encoded8: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(encoded8).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def grey_world_balance(scene: np.ndarray) -> np.ndarray:
    """Per-channel gains that make the frame's mean colour grey: what a camera's auto white balance roughly does."""
    mean = np.maximum(scene.reshape(-1, 3).mean(axis=0, dtype=np.float64), 1e-6)
    return mean[1] / mean


def _photograph(scene: np.ndarray, rng: np.random.Generator, metered: float = 1.0) -> tuple[np.ndarray, dict]:
    """Scene-linear radiance -> an 8-bit photo as the product decodes it (scene-linear float32); `metered` is the
    exposure that brings the subject to SUBJECT_KEY, missed by a random error of about half a stop."""
    exposure = float(metered * 2.0 ** rng.normal(0.0, 0.5))
    balance = np.exp(rng.normal(0.0, 0.08, 3))
    info: dict = {}
    if rng.random() < AUTO_WHITE_BALANCE_SHARE:
        strength = float(rng.uniform(0.5, 1.0))
        balance = balance * grey_world_balance(scene) ** strength
        info["auto_white_balance"] = strength
    balance = balance / balance[1]
    x = scene * np.float32(exposure) * balance.astype(np.float32)
    info.update(exposure=exposure, white_balance=balance.tolist())
    if rng.random() < 0.3:
        sigma = float(rng.uniform(0.3, 1.0))
        x = ndimage.gaussian_filter(x, (sigma, sigma, 0))
        info["blur_px"] = sigma
    shot, read = float(rng.uniform(0.0, 4e-4)), float(rng.uniform(0.0, 2e-3))  # up to ~2 % noise at mid-grey
    x = x + rng.normal(0.0, 1.0, x.shape).astype(np.float32) * np.sqrt(shot * np.maximum(x, 0.0) + read * read)
    info["noise"] = {"shot": shot, "read": read}
    filmic = rng.random() < FILMIC_SHARE
    encoded = _filmic(x) if filmic else linear_to_srgb(np.clip(x, 0.0, 1.0))
    info["encoding"] = "filmic" if filmic else "srgb"
    encoded8 = np.round(np.clip(encoded, 0.0, 1.0) * 255.0).astype(np.uint8)
    if rng.random() < JPEG_SHARE:
        quality = int(rng.integers(60, 96))
        encoded8 = _jpeg(encoded8, quality)
        info["jpeg_quality"] = quality
    return srgb_to_linear(encoded8.astype(np.float32) / 255.0), info


def derive_sample(pose: dict, sample_seed: int, pool: HdriPool) -> dict:
    """One training sample of `pose` (read_pose's dict); see the module docstring."""
    rng = sample_rng(int(pose["meta"]["seed"]), sample_seed)
    subject, light_info, environment = _lit_subject(pose, rng, pool)
    background, background_info = _background(pose, rng, pool, environment)
    alpha = pose["alpha"]
    scene = subject + (1.0 - alpha[..., None]) * background
    luminance = subject[alpha > 0.5] @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    key = float(np.median(luminance)) if luminance.size else 0.0
    plate, photo_info = _photograph(scene.astype(np.float32), rng, SUBJECT_KEY / key if key > 1e-6 else 1.0)
    sample = {name: pose[name] for name in ("alpha", "normal", "albedo", "roughness", "depth")}
    sample["plate"] = plate.astype(np.float32)
    sample["info"] = {"pose_seed": pose["meta"]["seed"], "sample_seed": sample_seed, "light": light_info,
                      "background": background_info, "photo": photo_info}
    return sample


def relit_target(pose: dict, sample_seed: int, pool: HdriPool) -> tuple[np.ndarray, Environment, dict]:
    """The same pose under a second, independent lighting (another draw than derive_sample's for this seed):
    (premultiplied scene-linear subject, that light as an Environment, its description). Relighting pairs
    (training/shading.py) need the light maps of exactly the light that lit the target, so no area light here."""
    rng = np.random.default_rng([int(pose["meta"]["seed"]), sample_seed, 29])
    subject, info, environment = _lit_subject(pose, rng, pool, area_light_share=0.0)
    return subject.astype(np.float32), environment, info
