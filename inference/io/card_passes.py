"""The maps a 3D card needs, split out of the product's multilayer EXR into one-pass EXRs a shader can read.

Blender's Image Texture node reads the *first* pass of a multilayer EXR and its pass choice (ImageUser
`multilayer_pass`) is read-only from Python, so the card's maps are written as separate one-pass EXRs (named
`card.<map>.<chan>`, one socket each, like the product's EXR) in a folder beside the source:

    <dir>/<name>_card/<map>/<source file name>      e.g. out/shot_card/albedo/shot.0007.exr

so an image sequence stays an image sequence (same frame numbers) for every map.

Maps:
- albedo:     (H,W,3) linear reflectance, clipped to [0, 1] (a Principled Base Color).
- normal_map: (H,W,3) 0.5*n + 0.5 of the camera-space normal (OpenGL, CONVENTIONS.md), i.e. a tangent-space
              normal map for a card facing the camera with U along camera +X and V along camera +Y; pixels without
              a normal (alpha 0) get the flat (0, 0, 1).
- alpha:      (H,W) matte.
- roughness:  (H,W), only when the source EXR has a `roughness` pass (e.g. the light stage's ground truth).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import RelightInputError
from ..shots.frames import split_frame_number
from .exr import read_passes, write_passes

CARD_LAYER = "card"
REQUIRED_PASSES = ("albedo", "normal", "alpha")
MAP_CHANNELS: dict[str, tuple[str, ...]] = {
    "albedo": ("R", "G", "B"),
    "normal_map": ("R", "G", "B"),
    "alpha": ("A",),
    "roughness": ("A",),
}
FULL_PRECISION_MAPS = frozenset({"normal_map", "alpha"})


def card_maps(passes: dict[str, np.ndarray], label: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The card's maps from the product's passes (see module docstring)."""
    missing = [name for name in REQUIRED_PASSES if name not in passes]
    if missing:
        raise RelightInputError(label, f"not a relit EXR: lacks the {', '.join(missing)} pass(es)")
    albedo = np.asarray(passes["albedo"], np.float32)
    normal = np.asarray(passes["normal"], np.float32)
    alpha = np.asarray(passes["alpha"], np.float32)
    if albedo.ndim != 3 or albedo.shape[2] != 3 or normal.shape != albedo.shape or alpha.shape != albedo.shape[:2]:
        raise RelightInputError(label, f"passes disagree in shape (albedo {albedo.shape}, normal {normal.shape}, "
                                       f"alpha {alpha.shape})")
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    flat = np.array([0.0, 0.0, 1.0], np.float32)
    unit = np.where(length > 1e-6, normal / np.maximum(length, 1e-6), flat)
    maps = {
        "albedo": np.clip(albedo, 0.0, 1.0),
        "normal_map": (0.5 * unit + 0.5).astype(np.float32),
        "alpha": np.clip(alpha, 0.0, 1.0),
    }
    if "roughness" in passes:
        roughness = np.asarray(passes["roughness"], np.float32)
        maps["roughness"] = np.clip(roughness if roughness.ndim == 2 else roughness[..., 0], 0.0, 1.0)
    return maps


def card_folder(source: str | os.PathLike) -> Path:
    """`<dir>/<name>_card` for `<dir>/<name>[.####].exr`."""
    source = Path(source)
    numbered = split_frame_number(source.name)
    name = numbered.head.rstrip("._-") if numbered and numbered.head.rstrip("._-") else source.stem
    return source.parent / f"{name}_card"


def map_path(folder: str | os.PathLike, map_name: str, source: str | os.PathLike) -> Path:
    return Path(folder) / map_name / Path(source).name


def exr_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an EXR's data window, from its header."""
    import OpenEXR

    try:
        with OpenEXR.File(str(path), header_only=True) as exr:
            low, high = exr.header()["dataWindow"]
    except Exception as exc:  # OpenEXR raises RuntimeError/IOError variants for unreadable files
        raise RelightInputError(path, f"cannot read EXR header ({exc})") from exc
    return int(high[0] - low[0] + 1), int(high[1] - low[1] + 1)


def split_card_maps(source: str | os.PathLike, folder: str | os.PathLike) -> dict[str, Path]:
    """Write the card maps of one relit EXR under `folder` (see map_path); files newer than the source are kept.

    Returns {map name: written path}."""
    source = Path(source)
    if not source.is_file():
        raise RelightInputError(source, "file not found")
    targets = {name: map_path(folder, name, source) for name in MAP_CHANNELS}
    present = {name: p for name, p in targets.items() if p.is_file()}
    source_time = source.stat().st_mtime_ns
    if {"albedo", "normal_map", "alpha"} <= set(present) and all(
            p.stat().st_mtime_ns >= source_time for p in present.values()):
        return present
    maps = card_maps(read_passes(source), source)
    written = {}
    for name, pixels in maps.items():
        try:
            targets[name].parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RelightInputError(targets[name].parent, f"cannot create the card folder ({exc.strerror})") from exc
        written[name] = write_passes(targets[name], {name: pixels}, layer=CARD_LAYER, pass_channels=MAP_CHANNELS,
                                     full_precision=FULL_PRECISION_MAPS)
    return written
