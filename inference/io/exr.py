"""Multilayer EXR of the product's passes, named so Blender's Image node shows one socket per pass.

Channel names are 3-level `<layer>.<pass>.<channel>` (CONVENTIONS.md), e.g. `relight.normal.X`. Half floats keep
files small where precision allows; normals and alpha stay 32-bit float because compositing maths on them
(normal maps, matte edges) shows half-float banding.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ..errors import RelightInputError
from .imageio import atomic_target, commit_atomic, write_failure

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
FULL_PRECISION_PASSES = frozenset({"alpha", "normal"})
CHANNEL_ORDER = "RGBAXYZV"  # order of channels within a pass that PASS_CHANNELS does not list


def _planes(name: str, pixels: np.ndarray, expected: int) -> list[np.ndarray]:
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[2] != expected:
        raise ValueError(f"pass '{name}' has {pixels.shape[2]} channels, expected {expected}")
    return [pixels[..., c] for c in range(expected)]


def write_passes(path: str | os.PathLike, passes: dict[str, np.ndarray], layer: str = DEFAULT_LAYER,
                 metadata: dict[str, str] | None = None, pass_channels: dict[str, tuple[str, ...]] = PASS_CHANNELS,
                 full_precision: set[str] | frozenset[str] = FULL_PRECISION_PASSES, consume: bool = False) -> Path:
    """Write the passes of `pass_channels` present in `passes` to one multilayer EXR, atomically (temp + rename).

    Passes named in `full_precision` are stored as 32-bit float, the others as half. With `consume`, each pass
    is removed from `passes` as soon as its channels are copied out, so a frame's float32 passes and the EXR's
    planes are never all held at once (memory on 4K/8K plates)."""
    import OpenEXR

    path = Path(path)
    channels = {}
    for name, suffixes in pass_channels.items():
        if name not in passes:
            continue
        dtype = np.float32 if name in full_precision else np.float16
        pixels = passes.pop(name) if consume else passes[name]
        for suffix, plane in zip(suffixes, _planes(name, np.asarray(pixels), len(suffixes))):
            channels[f"{layer}.{name}.{suffix}"] = np.ascontiguousarray(plane, dtype=dtype)
        del pixels
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
    except (OSError, RuntimeError) as exc:  # OpenEXR reports a failed write (disk full...) as RuntimeError
        raise RelightInputError(path, f"cannot write the EXR ({write_failure(exc)}); nothing was written") from exc
    finally:
        if temp.exists():
            temp.unlink()
    return path


def read_passes(path: str | os.PathLike, layer: str = DEFAULT_LAYER) -> dict[str, np.ndarray]:
    """Every `<layer>.<pass>.<chan>` pass as float32: (H,W) for one channel, (H,W,C) otherwise, channels in
    PASS_CHANNELS order where they are a product pass's channels, else in R,G,B,A,X,Y,Z,V order."""
    import OpenEXR

    path = Path(path)
    try:
        with OpenEXR.File(str(path), separate_channels=True) as exr:  # channels are only valid while open
            channels = {name: np.array(ch.pixels, np.float32) for name, ch in exr.channels().items()}
    except Exception as exc:  # OpenEXR raises RuntimeError/IOError variants for unreadable files
        raise RelightInputError(path, f"cannot read EXR ({exc})") from exc
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for name, pixels in channels.items():
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == layer:
            grouped.setdefault(parts[1], {})[parts[2]] = pixels
    passes = {}
    for name, planes in grouped.items():
        order = PASS_CHANNELS.get(name, ())
        if set(order) != set(planes):  # not one of the product's passes (e.g. ground truth): a fixed order
            order = sorted(planes, key=lambda c: (c not in CHANNEL_ORDER, CHANNEL_ORDER.find(c), c))
        stacked = [planes[c] for c in order]
        passes[name] = stacked[0] if len(stacked) == 1 else np.stack(stacked, axis=-1)
    return passes


_EXR_MAGIC = 20000630
_LINES_PER_CHUNK = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}


def exr_chunks_intact(path: Path) -> bool:
    """Whether a single-part scanline EXR's header and every chunk lie inside the file.

    Checked by hand before OpenEXR reads the file, because OpenEXR prints to stdout/stderr on truncated files."""
    try:
        data = path.read_bytes()
        if len(data) < 8 or struct.unpack_from("<i", data, 0)[0] != _EXR_MAGIC:
            return False
        if struct.unpack_from("<i", data, 4)[0] & 0x1E00:  # tiled, long names, deep or multipart: not ours
            return False
        pos, attributes = 8, {}
        while data[pos] != 0:
            name_end = data.index(b"\0", pos)
            type_end = data.index(b"\0", name_end + 1)
            (size,) = struct.unpack_from("<i", data, type_end + 1)
            start = type_end + 5
            attributes[data[pos:name_end]] = data[start : start + size]
            pos = start + size
        pos += 1
        lines = _LINES_PER_CHUNK.get(attributes[b"compression"][0])
        _, ymin, _, ymax = struct.unpack("<4i", attributes[b"dataWindow"])
        if lines is None or ymax < ymin:
            return False
        chunks = (ymax - ymin + lines) // lines
        offsets = struct.unpack_from(f"<{chunks}Q", data, pos)
        for offset in offsets:
            if offset + 8 > len(data):
                return False
            _, packed = struct.unpack_from("<2i", data, offset)
            if packed < 0 or offset + 8 + packed > len(data):
                return False
        return True
    except (OSError, IndexError, KeyError, ValueError, struct.error):
        return False
