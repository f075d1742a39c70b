"""Lighting sources shared by the compositor and sequencer operators, and their resolution to an Environment.

The options themselves are the shot settings (shot_settings.ShotValues: lighting, hdri_path, hdri_rotation,
background_path, output_dir). Resolution runs on the main thread (the world and its image are bpy data); the
result is plain numpy that the worker thread can use.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..inference.environment import Environment
from ..inference.errors import RelightInputError
from ..inference.imageio import read_hdri, read_plate
from .world import camera_fov_deg, world_lighting

DEFAULT_FOV_DEG = 40.0
LIGHTING_ITEMS = (
    ("WORLD", "Scene World", "The scene world's HDRI, seen from the active camera"),
    ("HDRI", "HDRI File", "An equirectangular HDRI whose centre is straight ahead of the camera"),
    ("BACKGROUND", "Background Image", "A panorama estimated from a background image"),
)


@dataclass
class Lighting:
    environment: Environment
    fov_deg: float
    background: np.ndarray | None  # (H, W, 3) scene-linear plate to composite onto, when one was chosen


def scene_camera_fov(scene: "bpy.types.Scene", width: int, height: int) -> float:
    camera = scene.camera
    if camera is not None and camera.type == "CAMERA" and camera.data.type == "PERSP":
        return camera_fov_deg(camera.data, width, height)
    return DEFAULT_FOV_DEG


def resolve_lighting(props, scene: "bpy.types.Scene", width: int, height: int) -> Lighting:
    """Read whatever the chosen lighting source needs; raises RelightInputError naming the bad file."""
    background = None
    if props.background_path:
        background = read_plate(bpy.path.abspath(props.background_path))
    if props.lighting == "WORLD":
        lit = world_lighting(scene, width, height)
        return Lighting(lit.environment, lit.fov_deg, background)
    fov = scene_camera_fov(scene, width, height)
    if props.lighting == "HDRI":
        if not props.hdri_path:
            raise RelightInputError(None, "choose an HDRI file (or another lighting source)")
        radiance = read_hdri(bpy.path.abspath(props.hdri_path))
        return Lighting(Environment.centred(radiance, np.degrees(props.hdri_rotation)), fov, background)
    if background is None:
        raise RelightInputError(None, "Background Image lighting needs a background image")
    from ..inference.panorama import estimate_environment

    return Lighting(estimate_environment(background, fov), fov, background)


def output_folder(props) -> str:
    """Absolute output folder; '//' paths need a saved .blend to be relative to."""
    if props.output_dir.startswith("//") and not bpy.data.filepath:
        raise RelightInputError(None, "save the .blend file first, or choose an absolute output folder")
    return bpy.path.abspath(props.output_dir)
