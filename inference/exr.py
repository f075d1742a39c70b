"""Multilayer EXR of the product's passes, named so Blender's Image node shows one socket per pass.

Channel names are 3-level `<layer>.<pass>.<channel>` (CONVENTIONS.md), e.g. `relight.normal.X`. Half floats keep
files small where precision allows; normals and alpha stay 32-bit float because compositing maths on them
(normal maps, matte edges) shows half-float banding.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import RelightInputError
from .imageio import atomic_target, commit_atomic

DEFAULT_LAYER = "relight"

# pass name -> channel suffixes, in file order
PASS_CHANNELS: dict[str, tuple[str, ...]] = {
    "alpha": ("A",),
    "foreground": ("R", "G", "B"),
    "normal": ("X", "Y", "Z"),
    "albedo": ("R", "G", "B"),
    "diffuse": ("R", "G", "B"),
    "specular": ("R", "G", "B"),
    "relit": ("R", "G", "B", "A"),
    "composite": ("R", "G", "B"),
}
FULL_PRECISION_PASSES = {"alpha", "normal"}


def _planes(name: str, pixels: np.ndarray) -> list[np.ndarray]:
    expected = len(PASS_CHANNELS[name])
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[2] != expected:
        raise ValueError(f"pass '{name}' has {pixels.shape[2]} channels, expected {expected}")
    return [pixels[..., c] for c in range(expected)]


def write_passes(path: str | os.PathLike, passes: dict[str, np.ndarray], layer: str = DEFAULT_LAYER,
                 metadata: dict[str, str] | None = None) -> Path:
    """Write the known passes present in `passes` to one multilayer EXR, atomically (temp + rename)."""
    import OpenEXR

    path = Path(path)
    channels = {}
    for name, suffixes in PASS_CHANNELS.items():
        if name not in passes:
            continue
        dtype = np.float32 if name in FULL_PRECISION_PASSES else np.float16
        for suffix, plane in zip(suffixes, _planes(name, np.asarray(passes[name]))):
            channels[f"{layer}.{name}.{suffix}"] = np.ascontiguousarray(plane, dtype=dtype)
    if not channels:
        raise ValueError("no known passes to write")
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    for key, value in (metadata or {}).items():
        header[key] = str(value)
    if not path.parent.is_dir():
        raise RelightInputError(path.parent, "output folder does not exist")
    try:
        temp = atomic_target(path)
    except OSError as exc:
        raise RelightInputError(path.parent, f"output folder is not writable ({exc.strerror})") from exc
    try:
        with OpenEXR.File(header, channels) as exr:
            exr.write(str(temp))
        commit_atomic(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
    return path


def read_passes(path: str | os.PathLike, layer: str = DEFAULT_LAYER) -> dict[str, np.ndarray]:
    """Read the passes back as float32 arrays: (H,W) for single-channel passes, (H,W,C) otherwise."""
    import OpenEXR

    path = Path(path)
    try:
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            channels = {name: np.asarray(ch.pixels, np.float32) for name, ch in exr.channels().items()}
    except Exception as exc:  # OpenEXR raises RuntimeError/IOError variants for unreadable files
        raise RelightInputError(path, f"cannot read EXR ({exc})") from exc
    passes = {}
    for name, suffixes in PASS_CHANNELS.items():
        keys = [f"{layer}.{name}.{suffix}" for suffix in suffixes]
        if all(key in channels for key in keys):
            planes = [channels[key] for key in keys]
            passes[name] = planes[0] if len(planes) == 1 else np.stack(planes, axis=-1)
    return passes
