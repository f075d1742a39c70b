"""Reading plates and HDRIs into float32 scene-linear HWC arrays, and writing previews.

Layouts: every array returned here is float32, rows top-to-bottom, channels last, scene-linear Rec.709.
8- and 16-bit PNG/JPEG/TIFF are sRGB-encoded (CONVENTIONS.md) and decoded with the sRGB EOTF; float TIFF, EXR and
Radiance HDR are already linear. EXIF orientation is honoured. Every failure is a RelightInputError naming the
file, never a partial array.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import RelightInputError, describe_exception

PLATE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".hdr"}


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, np.float32), 0.0, None)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055).astype(
        np.float32
    )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise RelightInputError(path, "file does not exist")
    if not path.is_file():
        raise RelightInputError(path, "is not a file")
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


def _normalise_integer(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / 65535.0
    if pixels.dtype in (np.int32, np.uint32):  # Pillow's 'I' mode for 16-bit greys
        return np.clip(pixels.astype(np.float32) / 65535.0, 0.0, 1.0)
    raise ValueError(f"unsupported sample type {pixels.dtype}")


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(33)
    return head[24] if len(head) >= 25 else 0


def _read_png16(path: Path) -> np.ndarray:
    """16-bit RGB(A) PNGs: Pillow would truncate them to 8 bits, pypng keeps all 16."""
    import png

    width, height, rows, info = png.Reader(filename=str(path)).read_flat()
    planes = info["planes"]
    return np.asarray(rows, np.uint16).reshape(height, width, planes)


def _read_with_pillow(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image.load()
        image = ImageOps.exif_transpose(image)
        if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
            image = image.convert("RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")
        if image.mode == "F":
            return np.asarray(image, np.float32)
        return np.asarray(image)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    pixels = tifffile.imread(str(path))
    if pixels.ndim == 3 and pixels.shape[0] in (1, 3, 4) and pixels.shape[2] not in (1, 3, 4):
        pixels = np.moveaxis(pixels, 0, -1)  # planar storage
    return pixels


def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as exr:  # channels are only valid while open
        channels = {name: np.array(ch.pixels) for name, ch in exr.channels().items()}
    names = {name.split(".")[-1]: name for name in channels}
    if all(c in names for c in "RGB"):
        return np.stack([channels[names[c]] for c in "RGB"], axis=-1).astype(np.float32)
    if "Y" in names:
        return channels[names["Y"]].astype(np.float32)
    raise ValueError("no R/G/B or Y channels")


def _read_radiance_hdr(path: Path) -> np.ndarray:
    """Radiance RGBE (.hdr/.pic), flat or new-style run-length encoded scanlines."""
    data = path.read_bytes()
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
    height, width = int(resolution[1]), int(resolution[3])
    body = np.frombuffer(data, np.uint8, offset=line_end + 1)
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


def _decode(path: Path) -> np.ndarray:
    """Any supported file -> (H,W,3) float32 scene-linear."""
    suffix = path.suffix.lower()
    if suffix not in PLATE_SUFFIXES:
        raise RelightInputError(path, f"unsupported image format '{suffix}' (use PNG, JPEG, TIFF, EXR or HDR)")
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
        return srgb_to_linear(_normalise_integer(pixels))
    except RelightInputError:
        raise
    except Exception as exc:  # Pillow, pypng, tifffile and OpenEXR each raise their own types on corrupt data
        raise RelightInputError(path, f"cannot read image ({describe_exception(exc)})") from exc


def _check_pixels(path: Path, pixels: np.ndarray, what: str) -> np.ndarray:
    if pixels.ndim != 3 or pixels.shape[0] < 2 or pixels.shape[1] < 2:
        raise RelightInputError(path, f"{what} has no usable pixels (shape {pixels.shape})")
    if not np.isfinite(pixels).all():
        raise RelightInputError(path, f"{what} contains NaN or Inf values")
    return np.ascontiguousarray(pixels, np.float32)


def read_plate(path: str | os.PathLike) -> np.ndarray:
    """A portrait or background plate -> (H, W, 3) float32 scene-linear, top row first."""
    path = Path(path)
    _check_file(path)
    pixels = _check_pixels(path, _decode(path), "image")
    return np.maximum(pixels, 0.0)


def read_hdri(path: str | os.PathLike) -> np.ndarray:
    """An equirectangular HDR/EXR panorama -> (h, 2h, 3) float32 scene-linear; rejects non-2:1 and NaN/Inf."""
    path = Path(path)
    _check_file(path)
    pixels = _check_pixels(path, _decode(path), "HDRI")
    height, width = pixels.shape[:2]
    if width != 2 * height:
        raise RelightInputError(path, f"HDRI is {width}x{height}, not an equirectangular 2:1 panorama")
    # Lossy EXR compression (Blender's own world HDRIs) leaves tiny negative values: not light, clamp them.
    return np.maximum(pixels, 0.0)


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
        Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(temp, format="PNG")
        commit_atomic(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
