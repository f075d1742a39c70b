"""The one boundary between Blender images and the pipeline's numpy arrays.

Layouts:
- Blender `Image.pixels`: flat float32, RGBA (`channels` may be 1..4), rows bottom-to-top.
  For float images (EXR/HDR: `is_float`) the buffer is already scene-linear (Blender converts from
  `colorspace_settings.name` on load: measured for ACEScg and Linear Rec.2020 EXRs in tests/test_colorspace.py);
  for byte images (PNG/JPG) it holds the encoded values /255 in `colorspace_settings.name`, converted here with
  Blender's own OCIO config (inference/io/colorspace.py), as Blender converts them.
- Ours (ARCHITECTURE.md): (H, W, 3) float32 scene-linear Rec.709, row 0 = top.

Everything that touches `Image.pixels` lives here so the row flip and colour decoding happen exactly once.
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy
import numpy as np

from ..inference.errors import RelightInputError
from ..inference.io.colorspace import ColorSpaces, color_spaces


def blender_config_path() -> Path | None:
    """The OCIO config this Blender runs with: $OCIO when set (Blender honours it), else its bundled one."""
    override = os.environ.get("OCIO")
    if override and Path(override).is_file():
        return Path(override)
    folder = bpy.utils.system_resource("DATAFILES", path="colormanagement")
    config = Path(folder) / "config.ocio" if folder else None
    return config if config is not None and config.is_file() else None


def blender_color_spaces() -> ColorSpaces:
    """Conversions through this Blender's OCIO config (cached)."""
    path = blender_config_path()
    return color_spaces(os.fspath(path) if path else None)


def image_label(image: "bpy.types.Image") -> str:
    """A path-like name for error messages: the image's absolute file path, else its datablock name."""
    if image.filepath:
        return os.path.normpath(bpy.path.abspath(image.filepath, library=image.library))
    return f"image '{image.name}'"


def loaded_size(image: "bpy.types.Image") -> tuple[int, int]:
    """(width, height) of an image Blender could load; a missing or unreadable file raises, naming it."""
    width, height = image.size  # reading the size loads the file; (0, 0) means Blender could not read it
    if width and height:
        return width, height
    label = image_label(image)
    if image.packed_file is None and image.filepath and not os.path.isfile(label):
        raise RelightInputError(label, "file not found")
    raise RelightInputError(label, "Blender could not load this image (empty, corrupt or unsupported)")


def decode_to_linear(encoded: np.ndarray, colorspace: str, is_float: bool, label: str) -> np.ndarray:
    """Encoded RGB values in `colorspace` -> scene-linear Rec.709.

    Float buffers are scene-linear whatever the file's colour space says (Blender converts them on load)."""
    if is_float:
        return np.ascontiguousarray(encoded, np.float32)
    return blender_color_spaces().to_scene_linear(encoded, colorspace, label)


def image_to_array(image: "bpy.types.Image", with_alpha: bool = False, require_finite: bool = True):
    """A Blender Image -> (H, W, 3) float32 scene-linear, row 0 = top; with_alpha also returns (H, W) alpha.

    require_finite=False leaves NaN/Inf to the caller (a world's light is checked like an HDRI file instead)."""
    label = image_label(image)
    width, height = loaded_size(image)
    channels = image.channels
    flat = np.empty(width * height * channels, np.float32)
    image.pixels.foreach_get(flat)
    pixels = flat.reshape(height, width, channels)[::-1]  # bottom-row-first -> top-row-first
    if channels >= 3:
        rgb = pixels[..., :3]
    else:
        rgb = np.repeat(pixels[..., :1], 3, axis=-1)
    rgb = decode_to_linear(rgb, image.colorspace_settings.name, image.is_float, label)
    if require_finite and not np.isfinite(rgb).all():
        raise RelightInputError(label, "image contains NaN or infinite values")
    if not with_alpha:
        return rgb
    alpha = pixels[..., 3] if channels == 4 else np.ones((height, width), np.float32)
    return rgb, np.ascontiguousarray(alpha, np.float32)


def array_to_image(
    array: np.ndarray, name: str, alpha: np.ndarray | None = None, image: "bpy.types.Image | None" = None
) -> "bpy.types.Image":
    """(H, W, 3) scene-linear, row 0 = top -> a float Blender image (created, or overwritten when given)."""
    height, width = array.shape[:2]
    if image is None or tuple(image.size) != (width, height) or not image.is_float:
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=True)
        image.colorspace_settings.name = "Linear Rec.709"
    rgba = np.ones((height, width, 4), np.float32)
    rgba[..., :3] = array[..., :3]
    if alpha is not None:
        rgba[..., 3] = alpha
    image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1]).ravel())
    image.update()
    return image
