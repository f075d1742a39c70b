"""Reading plates and HDRIs into float32 scene-linear HWC arrays, and writing previews.

Layouts: every array returned here is float32, rows top-to-bottom, channels last, scene-linear Rec.709.
8- and 16-bit PNG/JPEG/TIFF are sRGB-encoded (CONVENTIONS.md) and decoded with the sRGB EOTF; float TIFF, EXR and
Radiance HDR are already linear. EXIF orientation is honoured. Every failure is a RelightInputError naming the
file, never a partial array.

Sizes: every file's width and height are read from its header (PNG IHDR, JPEG start-of-frame, TIFF first page, EXR
dataWindow, Radiance resolution line) before any pixel is decoded, and images over MAX_IMAGE_SIDE px on the long
side are refused, so a small file that claims 60000x60000 pixels (a decompression bomb) costs nothing. Callers name
their own minimum short side (plates to relight: MIN_PLATE_SIDE).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..errors import RelightInputError, describe_exception

T = TypeVar("T")

PLATE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".hdr"}
# 16K on the long side: room for 8K plates (7680x4320, 8192x4320) and 16K HDRIs (16384x8192), while refusing the
# absurd sizes decompression bombs claim (a 16384 px square is already 3 GiB of float32 RGB).
MAX_IMAGE_SIDE = 16384
# Below 32 px on the short side the segmentation and face models find no person: say so plainly instead.
MIN_PLATE_SIDE = 32
# Any image: one row or column of pixels is not a picture.
MIN_IMAGE_SIDE = 2


_ELEMENTS_PER_CHUNK = 1 << 20  # elementwise curves run a chunk at a time: their temporaries stay a few MB


def _elementwise(curve, x: np.ndarray) -> np.ndarray:
    """curve(x) as a new float32 array of x's shape, computed chunk by chunk (an 8K frame is 100 M values)."""
    x = np.asarray(x, np.float32)
    out = np.empty(x.shape, np.float32)
    flat_in, flat_out = x.reshape(-1), out.reshape(-1)
    for start in range(0, flat_in.size, _ELEMENTS_PER_CHUNK):
        flat_out[start : start + _ELEMENTS_PER_CHUNK] = curve(flat_in[start : start + _ELEMENTS_PER_CHUNK])
    return out


def _srgb_eotf(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4)


def _srgb_oetf(x: np.ndarray) -> np.ndarray:
    x = np.maximum(x, 0.0)
    out = x * 12.92
    # the power only where it applies: half the time of evaluating both branches (nets' crops are largely black)
    curved = x > 0.0031308
    out[curved] = 1.055 * np.power(x[curved], 1 / 2.4) - 0.055
    return out


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return _elementwise(_srgb_eotf, x)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return _elementwise(_srgb_oetf, x)


def integer_srgb_to_linear(pixels: np.ndarray) -> np.ndarray:
    """8/16-bit sRGB-encoded samples -> float32 scene-linear through a lookup table: the same values as
    srgb_to_linear(_normalise_integer(pixels)) with no full-size float temporaries."""
    if pixels.dtype == np.uint8:
        return _srgb_table(255)[pixels]
    if pixels.dtype in (np.uint16, np.int32, np.uint32):  # int32: Pillow's 'I' mode for 16-bit greys
        return _srgb_table(65535)[np.clip(pixels, 0, 65535).astype(np.uint16, copy=False)]
    raise ValueError(f"unsupported sample type {pixels.dtype}")


@functools.cache
def _srgb_table(levels: int) -> np.ndarray:
    return srgb_to_linear(np.arange(levels + 1, dtype=np.float32) / np.float32(levels))


def check_input_file(path: Path) -> None:
    """Refuse a missing path, a folder or an empty file before any reader sees it."""
    if not path.exists():
        raise RelightInputError(path, "file does not exist")
    if not path.is_file():
        raise RelightInputError(path, "is a folder, not a file" if path.is_dir() else "is not a regular file")
    if path.stat().st_size == 0:
        raise RelightInputError(path, "file is empty")


def _to_rgb(pixels: np.ndarray) -> np.ndarray:
    """Grey, grey+alpha, RGB or RGBA (H,W[,C]) -> (H,W,3); alpha in plates is ignored (matting finds it)."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    channels = pixels.shape[2]
    if channels in (1, 2):
        return np.repeat(pixels[..., :1], 3, axis=2)
    if channels in (3, 4):
        return pixels[..., :3]
    raise ValueError(f"{channels} channels")


def check_image_size(label, width: int, height: int, min_side: int = MIN_IMAGE_SIDE, what: str = "image") -> None:
    """Refuse images over MAX_IMAGE_SIDE on the long side or under `min_side` on the short side, naming `label`."""
    if max(width, height) > MAX_IMAGE_SIDE:
        raise RelightInputError(label, f"{what} is {width}x{height} pixels, larger than the maximum "
                                       f"{MAX_IMAGE_SIDE} px on the long side")
    if min(width, height) < min_side:
        raise RelightInputError(label, f"{what} is {width}x{height} pixels, smaller than the minimum {min_side} px "
                                       "on the short side")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_header(path: Path) -> tuple[int, int, int] | None:
    """(width, height, bit depth) from a PNG's IHDR chunk; None when the file does not start like a PNG."""
    with open(path, "rb") as f:
        head = f.read(25)
    if len(head) < 25 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), head[24]


def _png_bit_depth(path: Path) -> int:
    header = _png_header(path)
    return header[2] if header else 0


# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); C4, C8 and CC are other segments.
_JPEG_START_OF_FRAME = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment, skipping the segments before it (EXIF, ICC, ...)."""
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            return None
        while True:
            marker = f.read(2)
            if len(marker) < 2 or marker[0] != 0xFF:
                return None
            kind = marker[1]
            while kind == 0xFF:  # fill bytes may pad a marker
                byte = f.read(1)
                if not byte:
                    return None
                kind = byte[0]
            if kind == 0x01 or 0xD0 <= kind <= 0xD8:  # markers without a length field
                continue
            length = int.from_bytes(f.read(2), "big")  # of the segment, these two bytes included
            if kind == 0xD9 or length < 2:  # end of image before any frame, or a damaged segment
                return None
            if kind in _JPEG_START_OF_FRAME:
                frame = f.read(5)  # sample precision, height, width
                if len(frame) < 5:
                    return None
                return int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")
            f.seek(length - 2, os.SEEK_CUR)


def _quietly(path: Path, call: Callable[[], T]) -> T:
    """`call()` with file descriptors 1 and 2 sent to a temp file: OpenEXR's C++ library prints its own messages
    on damaged files straight to them, which would break the one-line error contract. When `call` raises, the
    library's first printed line (the precise reason; its exception often is not) is the RelightInputError's."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                return call()
            except (RuntimeError, ValueError) as exc:
                sink.seek(0)
                printed = [line.strip() for line in sink.read().decode("utf-8", "replace").splitlines()]
                reason = next((line for line in printed if line), describe_exception(exc))
                reason = reason.removeprefix(f"{path}: ")  # the library names the file too
                reason = re.sub(r"^\((\w+)\)\s*", r"\1: ", reason)  # "(EXR_ERR_X) text" -> "EXR_ERR_X: text"
                raise RelightInputError(path, f"cannot read image ({reason})") from exc
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _exr_size(path: Path) -> tuple[int, int]:
    import OpenEXR

    def read_header():
        with OpenEXR.File(str(path), header_only=True) as exr:
            return exr.header()["dataWindow"]

    low, high = _quietly(path, read_header)
    return int(high[0]) - int(low[0]) + 1, int(high[1]) - int(low[1]) + 1


@contextmanager
def _tifffile_silenced():
    """tifffile logs its complaints about damaged files, which reach stderr when logging is not configured (the
    command line): the one-line error says what matters."""
    logger = logging.getLogger("tifffile")
    disabled = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = disabled


def _tiff_size(path: Path) -> tuple[int, int]:
    import tifffile

    with _tifffile_silenced(), tifffile.TiffFile(path) as tiff:
        page = tiff.pages[0]
        return int(page.imagewidth), int(page.imagelength)


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) as the file's header states it, without decoding pixels; None when the header cannot be
    parsed (decoding then reports the damage; a damaged EXR header is reported here)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".png":
            header = _png_header(path)
            return (header[0], header[1]) if header else None
        if suffix in (".jpg", ".jpeg"):
            return _jpeg_size(path)
        if suffix in (".tif", ".tiff"):
            return _tiff_size(path)
        if suffix == ".exr":
            return _exr_size(path)
        if suffix == ".hdr":
            with open(path, "rb") as f:
                height, width, _ = _radiance_header(f.read(RADIANCE_HEADER_LIMIT))
            return width, height
    except (OSError, ValueError, RuntimeError, IndexError, KeyError):  # the libraries' errors on damaged headers
        return None
    return None


def _read_png16(path: Path) -> np.ndarray:
    """16-bit PNGs (grey, grey + alpha, RGB, RGBA) as uint16 (H, W, C). Pillow would truncate them to 8 bits;
    FFmpeg's PNG decoder (PyAV, bundled for movies) keeps all 16, 5x faster than pure-Python decoders (0.1 s for
    a 1080p frame of a 16-bit sequence)."""
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    name = frame.format.name  # gray16be, ya16be, rgb48be, rgba64be
    if name.startswith("gray"):
        return frame.to_ndarray(format="gray16le")[..., None]
    return frame.to_ndarray(format="rgba64le" if "a" in name.replace("gray", "") else "rgb48le")


def _read_with_pillow(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with warnings.catch_warnings(), Image.open(path) as image:
        # Pillow warns above 179 megapixels; the header size was checked against MAX_IMAGE_SIDE before decoding.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image.load()
        image = ImageOps.exif_transpose(image)
        if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
            image = image.convert("RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")
        if image.mode == "F":
            return np.asarray(image, np.float32)
        return np.asarray(image)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with _tifffile_silenced():
        pixels = tifffile.imread(str(path), key=0)  # the first page: the one whose size header_size checked
    if pixels.ndim == 3 and pixels.shape[0] in (1, 3, 4) and pixels.shape[2] not in (1, 3, 4):
        pixels = np.moveaxis(pixels, 0, -1)  # planar storage
    return pixels


def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR

    def read_channels():
        with OpenEXR.File(str(path), separate_channels=True) as exr:  # channels are only valid while open
            return {name: np.array(ch.pixels) for name, ch in exr.channels().items()}

    channels = _quietly(path, read_channels)
    names = {name.split(".")[-1]: name for name in channels}
    if all(c in names for c in "RGB"):
        return np.stack([channels[names[c]] for c in "RGB"], axis=-1).astype(np.float32)
    if "Y" in names:
        return channels[names["Y"]].astype(np.float32)
    raise ValueError("no R/G/B or Y channels")


RADIANCE_HEADER_LIMIT = 65536  # bytes read for a Radiance file's size; its text header is far shorter


def _radiance_header(data: bytes) -> tuple[int, int, int]:
    """(height, width, offset of the pixel data) from the start of a Radiance RGBE file."""
    header_end = data.find(b"\n\n")
    if not data.startswith((b"#?RADIANCE", b"#?RGBE")) or header_end < 0:
        raise ValueError("not a Radiance HDR file")
    header = data[:header_end].decode("latin-1")
    if "FORMAT=32-bit_rle_xyze" in header:
        raise ValueError("XYZE Radiance files are not supported")
    line_end = data.index(b"\n", header_end + 2)
    resolution = data[header_end + 2 : line_end].decode("latin-1").split()
    if len(resolution) != 4 or resolution[0] != "-Y" or resolution[2] != "+X":
        raise ValueError(f"unsupported Radiance orientation '{' '.join(resolution)}'")
    return int(resolution[1]), int(resolution[3]), line_end + 1


def _read_radiance_hdr(path: Path) -> np.ndarray:
    """Radiance RGBE (.hdr/.pic), flat or new-style run-length encoded scanlines."""
    data = path.read_bytes()
    height, width, offset = _radiance_header(data)
    body = np.frombuffer(data, np.uint8, offset=offset)
    rgbe = np.empty((height, width, 4), np.uint8)
    pos = 0
    for row in range(height):
        if width < 8 or width > 0x7FFF or body[pos] != 2 or body[pos + 1] != 2 or body[pos + 2] & 0x80:
            flat = body[pos : pos + width * 4]
            if flat.size < width * 4:
                raise ValueError("truncated pixel data")
            rgbe[row] = flat.reshape(width, 4)
            pos += width * 4
            continue
        pos += 4
        for channel in range(4):
            out = rgbe[row, :, channel]
            x = 0
            while x < width:
                count = int(body[pos])
                if count > 128:
                    count -= 128
                    out[x : x + count] = body[pos + 1]
                    pos += 2
                else:
                    out[x : x + count] = body[pos + 1 : pos + 1 + count]
                    pos += 1 + count
                x += count
    exponent = rgbe[..., 3].astype(np.int32)
    scale = np.where(exponent > 0, np.ldexp(1.0, exponent - 136), 0.0).astype(np.float32)
    return rgbe[..., :3].astype(np.float32) * scale[..., None]


def _decode(path: Path, min_side: int, what: str) -> np.ndarray:
    """Any supported file -> (H,W,3) float32 scene-linear; its header size is checked before decoding."""
    suffix = path.suffix.lower()
    if suffix not in PLATE_SUFFIXES:
        raise RelightInputError(path, f"unsupported image format '{suffix}' (use PNG, JPEG, TIFF, EXR or HDR)")
    size = header_size(path)
    if size is not None:
        check_image_size(path, *size, min_side, what)
    try:
        if suffix == ".exr":
            return _to_rgb(_read_exr(path))
        if suffix == ".hdr":
            return _read_radiance_hdr(path)
        if suffix in (".tif", ".tiff"):
            pixels = _read_tiff(path)
        elif suffix == ".png" and _png_bit_depth(path) == 16:
            pixels = _read_png16(path)
        else:
            pixels = _read_with_pillow(path)
        pixels = _to_rgb(np.asarray(pixels))
        if np.issubdtype(pixels.dtype, np.floating):
            return pixels.astype(np.float32)  # float TIFF/Pillow 'F': already linear
        return integer_srgb_to_linear(pixels)
    except RelightInputError:
        raise
    except Exception as exc:  # Pillow, pypng, tifffile and OpenEXR each raise their own types on corrupt data
        raise RelightInputError(path, f"cannot read image ({describe_exception(exc)})") from exc


def _check_pixels(path: Path, pixels: np.ndarray, min_side: int, what: str) -> np.ndarray:
    if pixels.ndim != 3:
        raise RelightInputError(path, f"{what} has no usable pixels (shape {pixels.shape})")
    check_image_size(path, pixels.shape[1], pixels.shape[0], min_side, what)  # for headers header_size cannot read
    if not np.isfinite(pixels).all():
        raise RelightInputError(path, f"{what} contains NaN or Inf values")
    return np.ascontiguousarray(pixels, np.float32)


def read_plate(path: str | os.PathLike, min_side: int = MIN_IMAGE_SIDE) -> np.ndarray:
    """A portrait or background plate -> (H, W, 3) float32 scene-linear, top row first; at least `min_side` px on
    the short side (MIN_PLATE_SIDE for a plate to relight) and at most MAX_IMAGE_SIDE on the long side."""
    path = Path(path)
    check_input_file(path)
    pixels = _check_pixels(path, _decode(path, min_side, "image"), min_side, "image")
    return np.maximum(pixels, 0.0)


def read_hdri(path: str | os.PathLike) -> np.ndarray:
    """An equirectangular HDR/EXR panorama -> (h, 2h, 3) float32 scene-linear; rejects non-2:1 and NaN/Inf."""
    path = Path(path)
    check_input_file(path)
    pixels = _check_pixels(path, _decode(path, MIN_IMAGE_SIDE, "HDRI"), MIN_IMAGE_SIDE, "HDRI")
    height, width = pixels.shape[:2]
    if width != 2 * height:
        raise RelightInputError(path, f"HDRI is {width}x{height}, not an equirectangular 2:1 panorama")
    return usable_light(path, pixels)


# Negative light beyond this share of the positive light is not compression noise: the file is not radiance.
NEGATIVE_LIGHT_TOLERANCE = 0.01


def usable_light(label, radiance: np.ndarray) -> np.ndarray:
    """An environment's radiance, checked (finite, not negative, some light) and with compression noise clamped.

    Lossy EXR compression (Blender's own world HDRIs) leaves tiny negative values: not light, clamped to 0. More
    than NEGATIVE_LIGHT_TOLERANCE of negative energy, NaN/Inf, or no positive value at all is refused, naming
    `label` (the file, or the Blender image)."""
    if not np.isfinite(radiance).all():
        raise RelightInputError(label, "HDRI contains NaN or Inf values")
    positive = float(np.maximum(radiance, 0.0).sum(dtype=np.float64))
    negative = float(np.minimum(radiance, 0.0).sum(dtype=np.float64))
    if positive <= 0.0:
        raise RelightInputError(label, "HDRI has no positive light (every pixel is 0 or less)")
    if -negative > NEGATIVE_LIGHT_TOLERANCE * positive:
        raise RelightInputError(label, f"HDRI has negative light ({-negative / positive:.0%} of its positive "
                                       "light): not a radiance map")
    return np.maximum(radiance, 0.0).astype(np.float32, copy=False)


def atomic_target(path: Path):
    """A unique temp file name in the destination folder; `commit_atomic` renames it onto `path` when complete.

    Unique names let many farm processes write into one folder at once without clashing."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    return Path(temp)


def commit_atomic(temp: Path, path: Path) -> None:
    """Give the finished temp file normal permissions (mkstemp makes it 0600) and rename it into place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)
    os.replace(temp, path)


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an (H,W,3) display-referred [0,1] image as 8-bit PNG atomically."""
    from PIL import Image

    path = Path(path)
    temp = atomic_target(path)
    try:
        # zlib level 1: a 1080p preview strip encodes in 29 ms instead of 78 ms (level 6), 13 % bigger
        Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(temp, format="PNG", compress_level=1)
        commit_atomic(temp, path)
    except OSError as exc:
        raise RelightInputError(path, f"cannot write the preview ({write_failure(exc)}); nothing was written"
                                ) from exc
    finally:
        if temp.exists():
            temp.unlink()


def write_failure(exc: BaseException) -> str:
    """The system's reason for a failed write: 'No space left on device', 'File too large'..."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    # OpenEXR: 'Failed to write pixel data to image file "<temp>". No space left on device.'
    return str(exc).strip().rsplit('". ', 1)[-1].rstrip(".") or exc.__class__.__name__
