"""The target lighting from whichever source the user chose, shared by ./relight and the Blender operators.

Sources: an HDRI file (equirect, its centre straight ahead, turned about the vertical axis), the light of a
Blender world (read by the caller, which holds bpy: a WorldReader), or, with
neither, a panorama estimated from the background plate. The background plate, when given, is also what the
subject is composited onto.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import RelightInputError
from ..io.imageio import read_hdri
from ..settings import DEFAULT_FOV_DEG
from .environment import Environment


class WorldLight(Protocol):
    """What a world reader returns (operators/world.WorldLighting): the world's light seen from the camera, and
    the camera's field of view across the larger image side, degrees."""

    environment: Environment
    fov_deg: float


WorldReader = Callable[[], WorldLight]


def fov_problem(fov_deg: float) -> str | None:
    """Why `fov_deg` is not a usable field of view (a perspective camera's lies strictly between 0 and 180
    degrees; NaN and infinities are not angles), or None when it is."""
    if not math.isfinite(fov_deg) or not 0.0 < fov_deg < 180.0:
        return "the field of view must be more than 0 and less than 180 degrees"
    return None


def rotation_problem(rotation_deg: float) -> str | None:
    """Why `rotation_deg` is not a usable HDRI rotation (NaN or infinite would turn every light direction into
    NaN), or None when it is."""
    if not math.isfinite(rotation_deg):
        return "the HDRI rotation must be a finite number of degrees"
    return None


def background_problem(background: np.ndarray) -> str | None:
    """Why a background cannot be the source of the light (the estimate would be a black sphere and the subject
    relit pure black), or None when it can. Only a background with no light at all is refused: a dark night
    photo still carries its lights."""
    if float(np.max(background, initial=0.0)) <= 0.0:
        return "background image is black: there is no light to estimate from it (give an HDRI or a world)"
    return None


@dataclass(frozen=True)
class Lighting:
    environment: Environment
    fov_deg: float
    background: np.ndarray | None  # (H, W, 3) scene-linear plate to composite onto, when one was chosen


def resolve_lighting(hdri: str | None = None, hdri_rotation_deg: float = 0.0, world: WorldReader | None = None,
                     background: np.ndarray | None = None, fov_deg: float | None = None) -> Lighting:
    """The Lighting of exactly one source: `hdri` (a file), `world`, else a panorama estimated from `background`.

    `fov_deg` overrides the field of view (default: the world's camera, else DEFAULT_FOV_DEG). Raises
    RelightInputError naming the bad file, or saying which input is missing."""
    if hdri and world is not None:
        raise RelightInputError(None, "an HDRI file and a world exclude each other: choose one lighting source")
    for problem in (fov_problem(fov_deg) if fov_deg is not None else None, rotation_problem(hdri_rotation_deg)):
        if problem:
            raise RelightInputError(None, problem)
    if hdri:
        fov = fov_deg if fov_deg is not None else DEFAULT_FOV_DEG
        return Lighting(Environment.centred(read_hdri(hdri), hdri_rotation_deg), fov, background)
    if world is not None:
        light = world()
        return Lighting(light.environment, fov_deg if fov_deg is not None else light.fov_deg, background)
    if background is None:
        raise RelightInputError(None, "no lighting source: give an HDRI, a world or a background image")
    problem = background_problem(background)
    if problem:
        raise RelightInputError(None, problem)
    from .background_light import estimate_environment

    fov = fov_deg if fov_deg is not None else DEFAULT_FOV_DEG
    return Lighting(estimate_environment(background, fov), fov, background)
