"""The learned geometry net's side of the pipeline: what it is fed and how its answer goes back onto the plate; and
what the three learned nets share: the subject's crop and view, their mirror-averaged runs, the upsampling.

The net (trained by training/geometry.py, on light-stage samples prepared with these very functions) works on a
square crop around the subject, resized to a working size (a multiple of 16, WORK_SIZE by default):
- input  (1, 4, S, S) float32: the plate's sRGB-encoded RGB in [0, 1] (the encoding photos and the MediaPipe
  models use; scene-linear values are encoded with io.imageio.linear_to_srgb) and the matte, both 0 outside the
  frame;
- output (1, 3, S, S) float32: camera-space normals (CONVENTIONS.md: +X right, +Y up, +Z toward the camera), not
  necessarily unit length; `unit_normals` normalises them.
The crop is the matte's bounding box (alpha > CROP_THRESHOLD), squared and enlarged by CROP_MARGIN on each side.

Back on the plate, the net's normals are enlarged bilinearly, at the matte's pixels only (`bilinear_values`). The
albedo and shading nets' smooth outputs go back edge-aware instead (`guided_values`, a fast guided filter, He et al.
2015: the linear fit of the output to the plate's luminance is solved at the working size and applied at full
size). For normals the guide did harm: on held-out light-stage identities it printed the plate's texture (eyebrows,
strands, glasses) into them and scored slightly worse than bilinear (mean angle 16.41 vs 16.11 degrees at 192^2,
28.33 vs 28.29 at 384^2; medians 9.32 vs 9.05 and 13.51 vs 13.40), while the matte already gives the edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..io.imageio import linear_to_srgb
from ..models.registry import GEOMETRY_NET
from ..models.session import OnnxModel, load_model
from ..resample import resize
from ..settings import RelightSettings

WORK_SIZE = 128
CROP_THRESHOLD = 0.05
CROP_MARGIN = 0.08  # of the box's longer side, on each side
GUIDE_RADIUS = 2  # working-size pixels: the window of the guided filter's local linear fits
GUIDE_EPS = 1e-3  # (luminance units)^2: below this local contrast the normals stay smooth
NORMAL_X = 4  # the albedo and shading nets' input channel of the normals' X component (after net_input's 4)
MIRROR_AVERAGE = True  # the three nets answer for the plate and its mirror image, averaged (mirror_averaged)


@dataclass(frozen=True)
class SubjectCrop:
    """A square window (top, left, side) in plate pixels; it may reach beyond the plate."""

    top: int
    left: int
    side: int

    def window(self, image: np.ndarray) -> np.ndarray:
        """The window of `image` ((H, W) or (H, W, C)) at plate resolution, float32; 0 where it leaves the image."""
        height, width = image.shape[:2]
        window = np.zeros((self.side, self.side, *image.shape[2:]), np.float32)
        y0, x0 = max(self.top, 0), max(self.left, 0)
        y1, x1 = min(self.top + self.side, height), min(self.left + self.side, width)
        if y1 > y0 and x1 > x0:
            window[y0 - self.top: y1 - self.top, x0 - self.left: x1 - self.left] = image[y0:y1, x0:x1]
        return window

    def take(self, image: np.ndarray, size: int) -> np.ndarray:
        """The window of `image` resized to (size, size); 0 where it leaves the image."""
        return resize(self.window(image), size, size)


def subject_crop(alpha: np.ndarray) -> SubjectCrop:
    """The square window around the matte (the whole plate's centre square when the matte is empty)."""
    rows = np.nonzero((alpha > CROP_THRESHOLD).any(axis=1))[0]
    cols = np.nonzero((alpha > CROP_THRESHOLD).any(axis=0))[0]
    height, width = alpha.shape
    if rows.size == 0:
        side = min(height, width)
        return SubjectCrop((height - side) // 2, (width - side) // 2, side)
    box_h, box_w = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
    side = int(round(max(box_h, box_w) * (1.0 + 2.0 * CROP_MARGIN)))
    centre_y, centre_x = (rows[0] + rows[-1] + 1) / 2.0, (cols[0] + cols[-1] + 1) / 2.0
    return SubjectCrop(int(round(centre_y - side / 2.0)), int(round(centre_x - side / 2.0)), max(side, 1))


def net_input(plate_linear: np.ndarray, alpha: np.ndarray, crop: SubjectCrop, size: int = WORK_SIZE) -> np.ndarray:
    """(1, 4, size, size) float32: sRGB-encoded plate and matte on the crop (see the module docstring)."""
    # encoded on the window only (the encoding keeps 0 at 0, so this equals windowing the encoded plate)
    window = crop.window(np.asarray(plate_linear[..., :3], np.float32))
    rgb = resize(np.clip(linear_to_srgb(window), 0.0, 1.0), size, size)
    matte = crop.take(np.asarray(alpha, np.float32), size)
    return np.concatenate([rgb, matte[..., None]], axis=-1).transpose(2, 0, 1)[None].astype(np.float32)


def crop_normals(normals: np.ndarray, alpha: np.ndarray, crop: SubjectCrop, size: int = WORK_SIZE) -> np.ndarray:
    """(size, size, 3) unit normals on the crop, as the albedo and shading nets take them (0 where there are none)."""
    normal_crop = crop.take(np.asarray(normals, np.float32) * (np.asarray(alpha) > 0)[..., None], size)
    length = np.linalg.norm(normal_crop, axis=-1, keepdims=True)
    return np.where(length > 1e-6, normal_crop / np.maximum(length, 1e-6), 0.0).astype(np.float32)


@dataclass(frozen=True)
class SubjectView:
    """What the albedo and shading nets both take from the subject, made once per plate (`subject_view`): the crop,
    the foreground's net_input, the normals on the crop, the guide of the upsampling and the matte's pixels."""

    crop: SubjectCrop
    encoded: np.ndarray  # (1, 4, S, S) net_input
    normal_crop: np.ndarray  # (S, S, 3) crop_normals
    guide: np.ndarray  # (side, side) plate_guide
    rows: np.ndarray  # the matte's pixels (alpha > 0): where the passes are needed
    cols: np.ndarray


def subject_view(foreground: np.ndarray, alpha: np.ndarray, normals: np.ndarray) -> SubjectView:
    crop = subject_crop(alpha)
    rows, cols = np.nonzero(alpha > 0.0)
    return SubjectView(crop, net_input(foreground, alpha, crop, WORK_SIZE), crop_normals(normals, alpha, crop),
                       plate_guide(foreground, crop), rows, cols)


def mirror_averaged(model: OnnxModel, x: np.ndarray, input_x: int | None = None, output_x: int | None = None
                    ) -> np.ndarray:
    """The net's first output on x (1, C, S, S), averaged with its output on the left-right mirrored input, mirrored
    back: the nets were trained with random mirrors, so both are answers to the same question, and their mean
    carries less of either's error. `input_x` and `output_x` are channels that hold a normal's X component (they
    change sign in a mirror)."""
    x = np.asarray(x, np.float32)
    if not MIRROR_AVERAGE:
        return np.asarray(model.run(x)[model.outputs[0]], np.float32)
    mirrored = x[..., ::-1].copy()
    if input_x is not None:
        mirrored[:, input_x] *= -1.0
    both = [np.asarray(model.run(v)[model.outputs[0]], np.float32) for v in (x, mirrored)]
    back = both[1][..., ::-1].copy()
    if output_x is not None:
        back[:, output_x] *= -1.0
    return 0.5 * (both[0] + back)


def unit_normals(output: np.ndarray) -> np.ndarray:
    """(1, 3, S, S) net output -> (S, S, 3) unit camera-space normals (facing the camera where it is zero)."""
    n = np.asarray(output, np.float32)[0].transpose(1, 2, 0)
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.where(length > 1e-6, n / np.maximum(length, 1e-6), np.array([0, 0, 1], np.float32)).astype(np.float32)


def guided_coefficients(low: np.ndarray, guide_low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, b), each (s, s, C): the guided filter's local linear fits low ~ a * guide + b at the working size,
    box-averaged (He et al. 2015)."""
    window = 2 * GUIDE_RADIUS + 1

    def box(x: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(x, size=(window, window) + (1,) * (x.ndim - 2), mode="nearest")

    mean_g = box(guide_low)
    var_g = box(guide_low * guide_low) - mean_g * mean_g
    mean_p = box(low)
    cov = box(guide_low[..., None] * low) - mean_g[..., None] * mean_p
    a = cov / (var_g[..., None] + GUIDE_EPS)
    b = mean_p - a * mean_g[..., None]
    return box(a), box(b)


def guided_upsample(low: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """(s, s, C) coarse values -> (S, S, C) following the edges of the (S, S) full-size guide in [0, 1]."""
    size, side = low.shape[0], guide.shape[0]
    a, b = guided_coefficients(low, resize(guide, size, size))
    return resize(a, side, side) * guide[..., None] + resize(b, side, side)


def _bilinear_taps(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output row of a bilinear enlargement in_size -> out_size (pixel centres aligned, edges clamped, as
    Pillow's): the upper input row and the weight of the one below it."""
    centre = np.clip((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0, in_size - 1.0)
    upper = np.minimum(centre.astype(np.intp), max(in_size - 2, 0))
    return upper, (centre - upper).astype(np.float32)


def _in_window(crop: SubjectCrop, rows: np.ndarray, cols: np.ndarray
               ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(which pixels fall inside the window, or None when all do, the common case; their rows and columns in it)."""
    rows, cols = rows - crop.top, cols - crop.left
    inside = (rows >= 0) & (rows < crop.side) & (cols >= 0) & (cols < crop.side)
    if inside.all():
        return None, rows, cols
    return inside, rows[inside], cols[inside]


def _placed(values: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
    """Values at the pixels inside the window -> (N, C) at all N pixels, 0 outside it."""
    if inside is None:
        return values
    placed = np.zeros((inside.size, values.shape[-1]), np.float32)
    placed[inside] = values
    return placed


def bilinear_values(low: np.ndarray, crop: SubjectCrop, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N, C): the (s, s, C) working-size `low` enlarged bilinearly to `crop` (resample.resize), put back on the
    plate, at plate pixels (rows, cols); 0 at those outside the window. Only those pixels are computed (the nets'
    passes are needed inside the matte only, a fraction of a frame), so the full-size maps are never made."""
    size, side, channels = low.shape[0], crop.side, low.shape[-1]
    inside, rows, cols = _in_window(crop, rows, cols)
    if side <= size:  # shrinking (a subject smaller than the working size): the dense resize is as cheap
        return _placed(resize(low, side, side)[rows, cols], inside)
    across = resize(low, size, side)  # the horizontal pass of the enlargement
    upper, weight = _bilinear_taps(side, size)
    flat, index = across.reshape(-1, channels), upper[rows] * side + cols
    fits = np.take(flat, index, axis=0)  # the vertical pass, at these pixels only
    below = np.take(flat, index + side, axis=0)
    below -= fits
    below *= weight[rows, None]
    fits += below
    return _placed(fits, inside)


def guided_values(low: np.ndarray, guide: np.ndarray, crop: SubjectCrop, rows: np.ndarray, cols: np.ndarray
                  ) -> np.ndarray:
    """(N, C): guided_upsample(low, guide) on `crop`, put back on the plate, at plate pixels (rows, cols); 0 at those
    outside the window (the guided filter's coefficients enlarged by `bilinear_values`)."""
    channels, side = low.shape[-1], crop.side
    inside, local_rows, local_cols = _in_window(crop, rows, cols)
    if side <= low.shape[0]:  # shrinking: the dense filter is as cheap
        return _placed(guided_upsample(low, guide)[local_rows, local_cols], inside)
    a, b = guided_coefficients(low, resize(guide, low.shape[0], low.shape[0]))
    if inside is not None:
        rows, cols = rows[inside], cols[inside]
    fits = bilinear_values(np.concatenate([a, b], axis=-1), crop, rows, cols)
    values = fits[:, :channels] * np.take(guide.reshape(-1), local_rows * side + local_cols)[:, None]
    values += fits[:, channels:]
    return _placed(values, inside)


def plate_guide(plate_linear: np.ndarray, crop: SubjectCrop) -> np.ndarray:
    """The guide of guided_upsample on `crop` at full size: the plate's sRGB-encoded luminance in [0, 1]."""
    window = crop.window(np.asarray(plate_linear[..., :3], np.float32))  # windowed first: 0 stays 0
    return np.clip(linear_to_srgb(window @ np.array([0.2126, 0.7152, 0.0722], np.float32)), 0.0, 1.0)


def estimate_normals_learned(plate_linear: np.ndarray, alpha: np.ndarray, settings: RelightSettings) -> np.ndarray:
    """(H, W, 3) unit camera-space normals from the geometry net, 0 where alpha is 0."""
    crop = subject_crop(alpha)
    model = load_model(GEOMETRY_NET, settings)
    output = mirror_averaged(model, net_input(plate_linear, alpha, crop, WORK_SIZE), output_x=0)
    rows, cols = np.nonzero(alpha > 0.0)
    values = bilinear_values(unit_normals(output), crop, rows, cols)
    length = np.linalg.norm(values, axis=-1, keepdims=True)
    full = np.zeros(alpha.shape + (3,), np.float32)
    full[rows, cols] = np.where(length > 1e-6, values / np.maximum(length, 1e-6), 0.0)
    return full
