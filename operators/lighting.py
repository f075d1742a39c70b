"""The shot settings' lighting source (world / HDRI file / background) resolved to a Lighting, on the main thread
(the world and its image are bpy data); the result is plain numpy that the worker thread can use.

The options themselves are the shot settings (shot_settings.ShotValues: lighting, hdri_path, hdri_rotation,
background_path, output_dir); the resolution rules are inference/lighting/sources.py's, shared with ./relight.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..inference.errors import RelightInputError
from ..inference.io.imageio import read_plate
from ..inference.lighting.sources import Lighting, resolve_lighting
from ..inference.settings import DEFAULT_FOV_DEG
from ..inference.shots.background import MovingBackground
from ..inference.shots.sources import is_shot, open_shot
from .world import camera_fov_deg, world_lighting

LIGHTING_ITEMS = (
    ("WORLD", "Scene World", "The scene world's HDRI, seen from the active camera"),
    ("HDRI", "HDRI File", "An equirectangular HDRI whose centre is straight ahead of the camera"),
    ("BACKGROUND", "Background Image", "A panorama estimated from a background image"),
)


def scene_camera_fov(scene: "bpy.types.Scene", width: int, height: int) -> float:
    camera = scene.camera
    if camera is not None and camera.type == "CAMERA" and camera.data.type == "PERSP":
        return camera_fov_deg(camera.data, width, height)
    return DEFAULT_FOV_DEG


def moving_background(props, plate_first: int) -> MovingBackground | None:
    """The shot settings' background as a moving plate when it names an image sequence (a `####` pattern) or a
    movie: background frame first + k goes behind the shot's frame `plate_first` + k (inference/shots/background.py).
    None for a still background or none."""
    path = bpy.path.abspath(props.background_path) if props.background_path else ""
    if not (path and is_shot(path)):
        return None
    return MovingBackground(open_shot(path), plate_first)


def resolve_shot_lighting(props, scene: "bpy.types.Scene", width: int, height: int,
                          moving: MovingBackground | None = None) -> Lighting:
    """Read whatever the chosen lighting source needs; raises RelightInputError naming the bad file. With a
    `moving` background, what the light is estimated from is the mean of frames spread over it (once per shot)."""
    background = None
    if moving is not None:
        background = moving.light_plate()
    elif props.background_path:
        path = bpy.path.abspath(props.background_path)
        if is_shot(path):
            raise RelightInputError(path, "a moving background (an image sequence or a movie) goes behind a shot: "
                                          "relight a strip in the Video Sequencer, or choose a still image")
        background = read_plate(path)
    if props.lighting == "WORLD":
        return resolve_lighting(world=lambda: world_lighting(scene, width, height), background=background)
    fov = scene_camera_fov(scene, width, height)
    if props.lighting == "HDRI":
        if not props.hdri_path:
            raise RelightInputError(None, "choose an HDRI file (or another lighting source)")
        return resolve_lighting(hdri=bpy.path.abspath(props.hdri_path),
                                hdri_rotation_deg=float(np.degrees(props.hdri_rotation)), background=background,
                                fov_deg=fov)
    if background is None:
        raise RelightInputError(None, "Background Image lighting needs a background image")
    return resolve_lighting(background=background, fov_deg=fov)


def output_folder(props) -> str:
    """Absolute output folder; '//' paths need a saved .blend to be relative to."""
    if props.output_dir.startswith("//") and not bpy.data.filepath:
        raise RelightInputError(None, "save the .blend file first, or choose an absolute output folder")
    return bpy.path.abspath(props.output_dir)
