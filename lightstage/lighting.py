"""HDRI pool, exposure normalisation, and the OLAT basis (light directions + per-light HDRI weights).

Directions follow CONVENTIONS.md: a world direction d is looked up in the panorama at q = Rz(rot_z) @ d.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from ..inference.io.imageio import read_hdri
from ..inference.lighting.environment import pixel_directions, rotation_z

TARGET_MEAN_RADIANCE = 0.4  # exposure every HDRI is normalised to (before a random +-0.5 stop jitter)


def hdri_pool(shared: Path) -> list[tuple[str, Path]]:
    """[(collection, path)]: the 16 shared Poly Haven HDRIs and Blender's 8 bundled world HDRIs, sorted."""
    import bpy

    blender = Path(bpy.utils.system_resource("DATAFILES", path="studiolights/world"))
    pool = [("shared", p) for p in sorted((shared / "data" / "hdri").glob("*.hdr"))]
    pool += [("blender", p) for p in sorted(blender.glob("*.exr"))]
    return pool


@functools.lru_cache(maxsize=32)
def load_hdri(path: Path) -> np.ndarray:
    return read_hdri(path)


def solid_angles(height: int, width: int) -> np.ndarray:
    """(h, 1) solid angle of each equirect pixel row."""
    theta = (np.arange(height) + 0.5) / height * math.pi
    return (2.0 * math.pi / width) * (math.pi / height) * np.sin(theta)[:, None]


@functools.lru_cache(maxsize=32)
def mean_radiance(path: Path) -> float:
    """Solid-angle-weighted mean luminance of the panorama."""
    pixels = load_hdri(path)
    lum = pixels @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    weights = solid_angles(*lum.shape)
    return float((lum * weights).sum() / (weights.sum() * lum.shape[1]))


def normalised_strength(path: Path, stops: float) -> float:
    return TARGET_MEAN_RADIANCE * 2.0 ** stops / max(mean_radiance(path), 1e-6)


def fibonacci_sphere(count: int) -> np.ndarray:
    """(count, 3) nearly uniform unit directions (golden-angle spiral), deterministic."""
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def olat_weights(path: Path, rotation_z_deg: float, strength: float, directions_world: np.ndarray) -> np.ndarray:
    """(N, 3) RGB weight of each OLAT light: the HDRI's radiance integrated over the light's Voronoi cell
    (nearest light direction), in W/m^2: a sun of strength 1 scaled by it gives the cell's irradiance."""
    return panorama_olat_weights(load_hdri(path), rotation_z_deg, strength, directions_world)


def panorama_olat_weights(panorama: np.ndarray, rotation_z_deg: float, strength: float,
                          directions_world: np.ndarray) -> np.ndarray:
    """olat_weights of an equirect panorama already in memory (any resolution: the integral keeps its energy)."""
    pixels = panorama.astype(np.float64) * strength
    h, w = pixels.shape[:2]
    q = pixel_directions(h, w).reshape(-1, 3)
    world = q @ rotation_z(math.radians(rotation_z_deg))  # d = Rz^T q, written row-wise
    nearest = np.argmax(world @ directions_world.T, axis=1)
    energy = (pixels * solid_angles(h, w)[:, :, None]).reshape(-1, 3)
    weights = np.zeros((len(directions_world), 3))
    np.add.at(weights, nearest, energy)
    return weights
