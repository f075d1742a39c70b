"""Multilayer EXR of the product's passes, named so Blender's Image node shows one socket per pass.

Channel names are 3-level `<layer>.<pass>.<channel>` (CONVENTIONS.md), e.g. `relight.normal.X`. Half floats keep
files small where precision allows: a colour pass is written as half unless some value lies beyond half's range
(|x| > 65504, e.g. a sun seen in the composite's backdrop, which half would turn into inf), then as 32-bit float.
Normals and alpha stay 32-bit float because compositing maths on them (normal maps, matte edges) shows half-float
banding.

Compression: ZIP (zlib per block of 16 scanlines), lossless. Measured on a real 1080p frame's passes (23 channels,
112 MB of pixels, 65 % of them outside the subject), medians of 7, one thread on a 2-core machine; write =
OpenEXR.File.write (the float -> half conversion before it is the same for all), read = plain OpenEXR reading every
channel:

    codec      write ms   read ms    MB     Blender 5.0 reads it
    NONE            73        97   112.0    yes
    RLE            299       219    35.7    yes
    ZIPS           605       222    25.2    yes
    ZIP            598       215    25.1    yes
    PIZ            702       286    34.2    yes
    ZSTD           417       144    19.7    no: needs OpenEXR 3.4; Blender 5.0 and 4.5 ship 3.3
    HTJ2K256       357       224    16.5    no: same
    (PXR24, B44, DWAA: lossy; PXR24 rounds the 32-bit normals and alpha)

ZIP is the smallest of the codecs Blender (and any OpenEXR 2/3 reader: Nuke, Resolve, oiio) can read, and reads as
fast as any other of them that compresses. ZIPS (one scanline per block) costs the same and is no smaller, with 16x
as many chunks. PIZ, the usual choice for grainy half-float renders, is slower both ways and a third bigger here:
its wavelet gains nothing on the 32-bit normals and alpha or on the large zero areas. RLE writes twice as fast but
is 43 % bigger on every frame of a sequence; NONE is 4.5x bigger.

Write time is cut instead with OpenEXR's own thread pool (`use_exr_threads`): ZIP compresses the 68 chunks of a
1080p frame independently, and two workers split that work evenly (measured over 5 writes: 1.60 and 1.53 s of CPU,
against 2.99 s on the calling thread alone), so where cores are free a write should take about 1/cores of the
single-threaded time. On the 2-core machine above, whose cores were busy with other work, the pool made no
difference either way (within noise).
"""

from __future__ import annotations

import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
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
HALF_MAX = 65504.0  # largest finite half float; beyond it (from 65520) half rounds to inf
_pool_lock = threading.Lock()
_pool_sized = False


def _planes(name: str, pixels: np.ndarray, expected: int) -> list[np.ndarray]:
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[2] != expected:
        raise ValueError(f"pass '{name}' has {pixels.shape[2]} channels, expected {expected}")
    return [pixels[..., c] for c in range(expected)]


def _pass_planes(layer: str, name: str, pixels: np.ndarray, suffixes: tuple[str, ...], full_precision: bool
                 ) -> dict[str, np.ndarray]:
    """One pass's EXR planes {"<layer>.<pass>.<suffix>": (H, W) contiguous float16/float32}."""
    dtype = np.float32 if full_precision or not fits_half(pixels) else np.float16
    # contiguous copies: the binding ignores numpy strides (a channel view of an (H, W, C) array comes out scrambled)
    return {f"{layer}.{name}.{suffix}": np.ascontiguousarray(plane, dtype=dtype)
            for suffix, plane in zip(suffixes, _planes(name, pixels, len(suffixes)))}


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def fits_half(pixels: np.ndarray) -> bool:
    """Whether half floats hold every value within half's precision: nothing beyond +-HALF_MAX (NaNs ignored; they
    stay NaN in half)."""
    if pixels.size == 0:
        return True
    return bool(np.fmax.reduce(pixels, axis=None) <= HALF_MAX and np.fmin.reduce(pixels, axis=None) >= -HALF_MAX)


def use_exr_threads() -> None:
    """Once per process: give OpenEXR's process-wide worker pool (empty by default: all compression on the calling
    thread) one thread per CPU this process may use. A count already set elsewhere is left alone, and so is one
    set after this first call (0 included); with one CPU, threads would only add hand-offs."""
    global _pool_sized
    import OpenEXR

    with _pool_lock:
        if _pool_sized:
            return
        _pool_sized = True
        cpus = _cpus()
        if cpus > 1 and OpenEXR.global_thread_count() == 0:
            OpenEXR.set_global_thread_count(cpus)


def write_passes(path: str | os.PathLike, passes: dict[str, np.ndarray], layer: str = DEFAULT_LAYER,
                 metadata: dict[str, str] | None = None, pass_channels: dict[str, tuple[str, ...]] = PASS_CHANNELS,
                 full_precision: set[str] | frozenset[str] = FULL_PRECISION_PASSES, consume: bool = False) -> Path:
    """Write the passes of `pass_channels` present in `passes` to one multilayer EXR, atomically (temp + rename).

    Passes named in `full_precision` are stored as 32-bit float, the others as half where they fit (`fits_half`),
    else as 32-bit float. With `consume`, the passes are taken out of `passes` and each is released as soon as its
    planes are made, so a frame's float32 passes and the EXR's planes are never all held at once (memory on
    4K/8K plates)."""
    import OpenEXR

    path = Path(path)
    futures = []
    # The float -> half conversion (~0.2 s for a 1080p frame on one thread) releases the GIL: passes are converted
    # in parallel, one task each (0.07 s on two cores).
    with ThreadPoolExecutor(max_workers=_cpus()) as pool:
        for name, suffixes in pass_channels.items():
            if name not in passes:
                continue
            pixels = np.asarray(passes.pop(name) if consume else passes[name])
            futures.append(pool.submit(_pass_planes, layer, name, pixels, suffixes, name in full_precision))
            del pixels
        channels = {key: plane for future in futures for key, plane in future.result().items()}
    if not channels:
        raise ValueError("no known passes to write")
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}  # why ZIP: module docstring
    use_exr_threads()
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
    use_exr_threads()
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
