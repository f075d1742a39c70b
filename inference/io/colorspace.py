"""Encoded RGB in a named Blender colour space -> scene-linear Rec.709, converted as Blender converts it.

Blender decodes every image through OpenColorIO with its own config (`datafiles/colormanagement/config.ocio`):
`processor(colour space -> scene_linear role)`. We load that same config with the `opencolorio` wheel, so sRGB,
Linear Rec.709/Rec.2020, ACEScg, ACES2065-1, Filmic/AgX-encoded plates and every other space of the config convert
exactly like Blender (measured in tests/test_colorspace.py). Aliases ("Linear", "Raw", "lin_ap1", ...) resolve
through the config.

The config path is passed in (this module never imports bpy). Without a config (no bpy installed, ./relight on a
bare machine), the two spaces every plate had before this module, sRGB and the linear Rec.709 names, are built in
(the IEC 61966-2-1 piecewise sRGB EOTF, identical to the config's); any other name raises a RelightInputError that
says a Blender config is needed.

Data spaces (Non-Color and its aliases) pass through unchanged. View-transform encodings (Filmic sRGB, AgX Base
sRGB) are inverted by OCIO: Filmic's 1D LUT is invertible on its whole range; AgX's 3D LUT inverse is OCIO's
approximate (exact-inverse) one, and display values at 1.0 map to the LUT's brightest scene value, not infinity
(highlights clipped by the view transform stay clipped). Values that come out NaN/Inf are an input error.

Plates and frames: `read_plate_in` takes a file's values as encoded in a named space (byte files and movies from
their encoded values, float files EXR/HDR/float TIFF from their stored values); `encoded_to_linear` decodes
display-encoded R'G'B' (movie frames).
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import RelightInputError
from .imageio import MIN_IMAGE_SIDE, linear_to_srgb, read_plate, srgb_to_linear

SCENE_LINEAR_ROLE = "scene_linear"
# Built in (no OCIO config needed): names Blender's configs give these two spaces, aliases included.
BUILTIN_SRGB = {"sRGB", "sRGB 2.1", "srgb_texture", "sRGB - Texture", "Utility - sRGB - Texture"}
BUILTIN_LINEAR = {"Linear Rec.709", "Linear", "scene_linear", "lin_rec709", "lin_srgb", "Linear BT.709",
                  "Utility - Linear - sRGB"}
BUILTIN_DATA = {"Non-Color", "Raw", "Generic Data", "Non-Colour Data", "Utility - Raw"}
BLENDER_CONFIG = Path("datafiles") / "colormanagement" / "config.ocio"


def blender_config_path() -> Path | None:
    """Blender's OCIO config without importing bpy: $OCIO when set (Blender honours it too), else the config
    inside the installed bpy module (newest version folder), else None."""
    override = os.environ.get("OCIO")
    if override and Path(override).is_file():
        return Path(override)
    try:
        spec = importlib.util.find_spec("bpy")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob(f"*/{BLENDER_CONFIG.as_posix()}"))
        if found:
            return found[-1]
    return None


class ColorSpaces:
    """Conversions to scene-linear Rec.709 through one OCIO config (or the built-in sRGB/linear without one)."""

    def __init__(self, config_path: str | os.PathLike | None):
        self.config_path = Path(config_path) if config_path else None
        self._config = None
        if self.config_path is not None:
            import PyOpenColorIO as OCIO

            try:
                self._config = OCIO.Config.CreateFromFile(os.fspath(self.config_path))
            except OCIO.Exception as exc:
                raise RelightInputError(self.config_path, f"cannot load OCIO config ({exc})") from exc

    def names(self) -> list[str]:
        if self._config is None:
            return sorted(BUILTIN_SRGB | BUILTIN_LINEAR | BUILTIN_DATA)
        return [space.getName() for space in self._config.getColorSpaces()]

    def canonical(self, name: str, label=None) -> str:
        """The config's name for `name` (aliases resolved); raises for names the config lacks."""
        if self._config is None:
            if name in BUILTIN_SRGB | BUILTIN_LINEAR | BUILTIN_DATA:
                return name
            raise RelightInputError(label, f"colour space '{name}' needs Blender's OCIO config (install the bpy "
                                           "module or run inside Blender); built in: sRGB, Linear Rec.709")
        space = self._config.getColorSpace(name)
        if space is None:
            raise RelightInputError(label, f"unknown colour space '{name}' (Blender's config has: "
                                           f"{', '.join(self.names())})")
        return space.getName()

    def is_identity(self, name: str, label=None) -> bool:
        """Whether values in `name` are scene-linear Rec.709 already (or data): no conversion at all."""
        name = self.canonical(name, label)
        if self._config is None:
            return name not in BUILTIN_SRGB
        space = self._config.getColorSpace(name)
        return space.isData() or self._processor(name).isNoOp()

    def _processor(self, name: str):
        return _cpu_processor(self._config, name)

    def to_scene_linear(self, encoded: np.ndarray, name: str, label=None) -> np.ndarray:
        """(..., 3) encoded values in colour space `name` -> float32 scene-linear Rec.709 (new array)."""
        name = self.canonical(name, label)
        pixels = np.array(encoded, np.float32, copy=True, order="C")
        if pixels.shape[-1] != 3:
            raise ValueError(f"expected RGB values (..., 3), got shape {pixels.shape}")
        if self._config is None:
            return srgb_to_linear(pixels) if name in BUILTIN_SRGB else pixels
        space = self._config.getColorSpace(name)
        if space.isData():
            return pixels
        processor = self._processor(name)
        if processor.isNoOp():
            return pixels
        flat = pixels.reshape(-1, 3)
        processor.applyRGB(flat)  # in place
        if not np.isfinite(flat).all():
            raise RelightInputError(label, f"colour space '{name}' gives non-finite scene-linear values for "
                                           "some pixels (not invertible there)")
        return pixels


@lru_cache(maxsize=64)
def _cpu_processor(config, name: str):
    return config.getProcessor(name, SCENE_LINEAR_ROLE).getDefaultCPUProcessor()


@lru_cache(maxsize=4)
def color_spaces(config_path: str | None) -> ColorSpaces:
    """One cached ColorSpaces per config path (None: built-in sRGB/linear only)."""
    return ColorSpaces(config_path)


def default_color_spaces() -> ColorSpaces:
    """Blender's config when bpy is installed (or $OCIO is set), else the built-in spaces."""
    path = blender_config_path()
    return color_spaces(os.fspath(path) if path else None)


# ------------------------------------------------------------------ plates and frames in a named colour space
FLOAT_SUFFIXES = {".exr", ".hdr"}


def file_is_float(path: Path) -> bool:
    """Whether read_plate takes the file's values as stored (float EXR/HDR/TIFF) rather than sRGB-decoding them."""
    suffix = path.suffix.lower()
    if suffix in FLOAT_SUFFIXES:
        return True
    if suffix in (".tif", ".tiff"):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tiff:
                return tiff.pages[0].dtype is not None and tiff.pages[0].dtype.kind == "f"
        except (OSError, ValueError, IndexError, tifffile.TiffFileError):
            return False  # read_plate reports the damaged file
    return False


def resolve_spaces(colorspace: str | None, spaces: ColorSpaces | None, label=None) -> ColorSpaces | None:
    """The ColorSpaces that decode `colorspace` (None when no colour space is named); an unknown name raises here,
    before any frame is read."""
    if colorspace is None:
        return None
    if spaces is None:
        spaces = default_color_spaces()
    spaces.canonical(colorspace, label)
    return spaces


def encoded_to_linear(encoded: np.ndarray, colorspace: str | None, spaces: ColorSpaces | None,
                      label) -> np.ndarray:
    """Display-encoded R'G'B' (movies, and byte files re-encoded) in `colorspace` -> scene-linear, clamped at 0
    like read_plate. None, or sRGB: the built-in sRGB EOTF."""
    if colorspace is None or (spaces.canonical(colorspace, label) in BUILTIN_SRGB):
        return srgb_to_linear(encoded)
    return np.maximum(spaces.to_scene_linear(encoded, colorspace, label), 0.0)


def read_plate_in(path: str | os.PathLike, colorspace: str | None = None, spaces: ColorSpaces | None = None,
                  min_side: int = MIN_IMAGE_SIDE) -> np.ndarray:
    """read_plate (and its `min_side`), with the file's values taken as encoded in `colorspace` (None: read_plate's
    own choice, sRGB for 8/16-bit files, linear for float files). Scene-linear float32, clamped at 0 like
    read_plate."""
    path = Path(path)
    plate = read_plate(path, min_side)
    spaces = resolve_spaces(colorspace, spaces)
    if spaces is None:
        return plate
    if not file_is_float(path):
        if spaces.canonical(colorspace, path) in BUILTIN_SRGB:
            return plate  # read_plate's own decoding
        return encoded_to_linear(linear_to_srgb(plate), colorspace, spaces, path)  # back to the stored values
    if spaces.is_identity(colorspace, path):
        return plate
    return np.maximum(spaces.to_scene_linear(plate, colorspace, path), 0.0)
