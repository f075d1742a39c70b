"""The learned albedo stage (`--albedo learned`, the shot setting *Albedo*): the albedo net trained by
training/albedo.py, committed as inference/models/albedo_net.onnx (model card in models/CONTRACTS.md).

Like the geometry net (normals_net.py) it works on the subject's square crop at a working size S:
- input  (1, 7, S, S) float32: the plate's sRGB-encoded RGB in [0, 1] (the product passes the matting stage's
  foreground, the plate with background spill removed), the matte, and camera-space unit normals
  (whichever normals stage ran; 0 outside the matte);
- output (1, 3, S, S) float32: the log of the plate's per-channel source shading, log(plate / albedo), light
  colour included, up to one global offset (a photo cannot tell a dark subject in bright light from a light one
  in dim light): the stage sets that scale by convention (the face's median shading is FACE_SHADING).
The albedo is the full-resolution foreground divided by exp(output), smoothly upsampled: the shading is
low-frequency, so the plate's own texture (pores, freckles, make-up) stays in the albedo rather than being
re-synthesised at the working size.
"""

from __future__ import annotations

import numpy as np

from ..models.registry import ALBEDO_NET
from ..models.session import load_model
from ..settings import RelightSettings
from .normals_net import (
    NORMAL_X,
    WORK_SIZE,
    SubjectCrop,
    SubjectView,
    crop_normals,
    guided_values,
    mirror_averaged,
    net_input,
    subject_view,
)

IN_CHANNELS, OUT_CHANNELS = 7, 3
LOG_EPS = 1e-3  # linear units added before logs: keeps black pixels finite
SHADING_FLOOR = 0.05  # of the reference shading: deep shadow is divided by at most 1/0.05 (noise, not albedo)
MIN_REFERENCE_PIXELS = 500  # face pixels needed to set the exposure on the face alone
# The face's median source shading on a normally exposed photo, in units of a diffuse reflectance's own value: what
# the albedo's level is set by. Measured, not assumed: `tools/albedo_exposure.py --samples 4` on the light stage's
# training photos (metered on the subject, as a photographer meters), where a median of 1 left the albedo 0.46 stops
# too dark (median of 288 photos of 72 identities; spread 1.6 stops, mostly skin tone, which no constant can fix).
FACE_SHADING = 0.727
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
# The range of skin's albedo chromaticity, (log(R/G) low, high), (log(B/G) low, high), linear Rec.709: the chroma
# extremes of the light stage's skin palette (lightstage/materials.SKIN_PALETTE_SRGB, Fitzpatrick I..VI swatches of
# measured reflectance, at its hue shifts of +-0.015; a test keeps the two in step). The ColorChecker's light- and
# dark-skin patches lie inside it (0.57, -0.31 and 0.71, -0.38), and so do the 16 shared portraits' face albedos.
SKIN_CHROMA = ((0.349, 0.997), (-0.843, -0.203))
# At most two stops of colour change per channel: a photo under a saturated coloured light (a red darkroom lamp) has
# lost what the other channels would say, and a larger gain would mostly amplify their noise.
MAX_SKIN_SHIFT = np.log(4.0)


def albedo_net_input(plate_linear: np.ndarray, alpha: np.ndarray, normals: np.ndarray, crop: SubjectCrop,
                     size: int = WORK_SIZE) -> np.ndarray:
    """(1, 7, size, size): the geometry net's input (sRGB plate, matte) followed by the normals on the crop,
    unit length again after the resize (0 where there are none)."""
    return with_normals(net_input(plate_linear, alpha, crop, size), crop_normals(normals, alpha, crop, size))


def with_normals(encoded: np.ndarray, normal_crop: np.ndarray) -> np.ndarray:
    """(1, 7, S, S): net_input's (1, 4, S, S) followed by crop_normals' (S, S, 3)."""
    return np.concatenate([encoded, normal_crop.transpose(2, 0, 1)[None]], axis=1)


def log_shading(plate_linear: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    """The net's target: log((plate + eps) / (albedo + eps)) per channel."""
    return np.log(np.maximum(plate_linear, 0.0) + LOG_EPS) - np.log(np.maximum(albedo, 0.0) + LOG_EPS)


def estimate_albedo_learned(foreground: np.ndarray, alpha: np.ndarray, normals: np.ndarray, face_mask: np.ndarray,
                            settings: RelightSettings, view: SubjectView | None = None) -> np.ndarray:
    """(H, W, 3) albedo in [0, 1], 0 outside the matte: the foreground divided by the net's source shading
    (`within_reflectance` keeps it below 1).

    The shading comes back to the plate by edge-aware guided upsampling (the foreground's luminance guides it, as
    the plate's does for the learned normals) and its exposure is set by convention: median shading luminance
    FACE_SHADING on the face (on the opaque matte when too little face is found). `view` is
    subject_view(foreground, alpha, normals), when the caller has it."""
    view = view or subject_view(foreground, alpha, normals)
    model = load_model(ALBEDO_NET, settings)
    output = mirror_averaged(model, with_normals(view.encoded, view.normal_crop), input_x=NORMAL_X)
    low = output[0].transpose(1, 2, 0)
    rows, cols = view.rows, view.cols  # the albedo is needed inside the matte only
    shading = np.exp(guided_values(low, view.guide, view.crop, rows, cols))
    reference = ((alpha > 0.9) & (face_mask > 0.5))[rows, cols]
    on_face = reference.sum() >= MIN_REFERENCE_PIXELS
    if not on_face:
        reference = alpha[rows, cols] > 0.9
    level = float(np.median(shading[reference] @ _LUMA)) if reference.any() else 1.0
    shading /= max(level, 1e-6)
    values = foreground[rows, cols, :3] / (np.maximum(shading, SHADING_FLOOR) * FACE_SHADING)
    if on_face:
        values *= skin_chroma_gains(values[reference])
    albedo = np.zeros(alpha.shape + (3,), np.float32)
    albedo[rows, cols] = within_reflectance(values)
    return albedo


def skin_chroma_gains(face_albedo: np.ndarray) -> np.ndarray:
    """(3,) per-channel gains that bring the face's median albedo chromaticity (face_albedo: (N, 3)) to the nearest
    of skin's (SKIN_CHROMA), keeping that median's luminance; ones when it is skin-coloured already.

    The net tells the light's colour from the skin's less well than it tells shading: on 16 validation identities of
    the light stage the face albedo's chroma erred by 0.27 / 0.36 (log R/G, log B/G, standard deviation) while
    their skins spread by 0.11 / 0.14, and 40 % of the albedo's error was its colour. Only chroma no skin has is
    moved (about a third of those 64 photos, lit by coloured light or white-balanced off; none of the 16 shared
    portraits): albedo si-MSE 0.00837 -> 0.00622, relit si-MSE 0.00410 -> 0.00397 (tools/relit_compare.py)."""
    median = np.maximum(np.median(face_albedo, axis=0), 1e-6)
    chroma = np.log(np.array([median[0] / median[1], median[2] / median[1]], np.float64))
    (red_low, red_high), (blue_low, blue_high) = SKIN_CHROMA
    shift = np.clip(np.clip(chroma, (red_low, blue_low), (red_high, blue_high)) - chroma, -MAX_SKIN_SHIFT,
                    MAX_SKIN_SHIFT)
    gains = np.exp(np.array([shift[0], 0.0, shift[1]]))
    return (gains * float(median @ _LUMA) / float((median * gains) @ _LUMA)).astype(np.float32)


def within_reflectance(albedo: np.ndarray) -> np.ndarray:
    """(N, 3) albedo values brought into [0, 1] without changing their hue: a pixel above 1 is scaled down whole.

    By the exposure convention a bright photo can imply an albedo above 1, which no surface has. A per-channel clip
    would change such pixels' hue: on a red-haired portrait (083) 38 % of the subject had red above 1, and clipping
    red alone turned the hair blonde. Their level is not lowered for the whole subject: that would undo the
    exposure convention on ordinary photos (the astronaut's albedo came down by a third)."""
    albedo = np.maximum(albedo, 0.0)
    return (albedo / np.maximum(albedo.max(axis=-1, keepdims=True), 1.0)).astype(np.float32)
