"""Albedo v1: fit the plate's own lighting as 2nd-order spherical harmonics, divide it out.

Lambertian image formation I(x) = albedo(x) * S(n(x)), with S the irradiance of the unknown source lighting as a
9-coefficient SH function of the normal (Ramamoorthi & Hanrahan 2001: order 2 holds ~99 % of a cosine-convolved
environment). S is fitted per colour channel by iteratively reweighted least squares (Tukey weights), so
specular highlights, shadows cast by hair and non-skin materials do not drag the fit.

Scale: one photo cannot separate albedo from light intensity. We assume the plate is normally exposed, i.e.
the source irradiance on the subject maps a diffuse reflectance to its own value: S is scaled so its median over
the fitted region is 1. Dark skin stays dark and light skin light; relighting under an HDRI whose irradiance/pi
is ~1 keeps the plate's exposure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .blocks import row_blocks

SH_BANDS = 9
MAX_FIT_PIXELS = 40000
RIDGE = 1e-5  # keeps coefficients of directions the visible normals never face from blowing up
LUMINANCE_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec.709


@dataclass(frozen=True)
class AlbedoResult:
    albedo: np.ndarray  # (H, W, 3) float32 in [0, 1]
    shading: np.ndarray  # (H, W) float32 source shading S(n) (white light), normalised as described above
    sh_coefficients: np.ndarray  # (9, 1) float32 luminance shading, real SH basis of sh_basis()


def sh_basis(normals: np.ndarray) -> np.ndarray:
    """Real spherical-harmonic basis up to band 2 at unit normals (..., 3) -> (..., 9)."""
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    return np.stack(
        [
            np.full_like(x, 0.282095),
            0.488603 * y,
            0.488603 * z,
            0.488603 * x,
            1.092548 * x * y,
            1.092548 * y * z,
            0.315392 * (3.0 * z * z - 1.0),
            1.092548 * x * z,
            0.546274 * (x * x - y * y),
        ],
        axis=-1,
    )


def fit_sh_shading(normals: np.ndarray, values: np.ndarray, iterations: int = 6) -> np.ndarray:
    """Robust least-squares SH coefficients (9, C) with values (N, C) ~ sh_basis(normals) @ coefficients."""
    basis = sh_basis(normals.astype(np.float64))
    values = values.astype(np.float64)
    weights = np.ones(len(values))
    regulariser = RIDGE * np.diag([0.0] + [1.0] * 3 + [4.0] * 5) * len(values)
    coefficients = np.zeros((SH_BANDS, values.shape[1]))
    for _ in range(iterations):
        weighted = basis * weights[:, None]
        coefficients = np.linalg.solve(weighted.T @ basis + regulariser, weighted.T @ values)
        residual = np.abs(values - basis @ coefficients).mean(axis=1)
        scale = 4.685 * max(1.4826 * np.median(residual), 1e-6)
        weights = np.clip(1.0 - (residual / scale) ** 2, 0.0, None) ** 2  # Tukey biweight
    return coefficients.astype(np.float32)


def estimate_albedo(image_linear: np.ndarray, normals: np.ndarray, alpha: np.ndarray,
                    fit_weight: np.ndarray | None = None, seed: int = 0) -> AlbedoResult:
    """Albedo and source shading. `fit_weight` (H, W) prefers some pixels (e.g. skin) for the lighting fit."""
    inside = alpha > 0.9
    if fit_weight is not None and (inside & (fit_weight > 0.5)).sum() > 500:
        inside &= fit_weight > 0.5
    # Shading is fitted to luminance: a per-channel fit would absorb the albedo's own colour (skin tone) into
    # the "light" and return grey albedo. The light is therefore assumed white (plates are white-balanced).
    fitted = np.flatnonzero(inside)
    if fitted.size < 50:  # too little of the person to fit anything: treat the lighting as uniform
        coefficients = np.zeros((SH_BANDS, 1), np.float32)
        coefficients[0] = 1.0 / 0.282095
    else:
        if fitted.size > MAX_FIT_PIXELS:
            fitted = fitted[np.random.default_rng(seed).choice(fitted.size, MAX_FIT_PIXELS, replace=False)]
        luminance = image_linear.reshape(-1, 3)[fitted] @ LUMINANCE_WEIGHTS
        coefficients = fit_sh_shading(normals.reshape(-1, 3)[fitted], luminance[:, None])

    shading = np.empty(normals.shape[:2], np.float32)
    for rows in row_blocks(normals.shape[0]):  # the (rows, W, 9) basis, not a full-size one
        shading[rows] = (sh_basis(normals[rows]) @ coefficients)[..., 0]
    reference = float(np.median(shading[inside])) if inside.any() else float(np.median(shading))
    shading /= max(reference, 1e-6)
    # Deep shadows carry no albedo information; a floor keeps the division from exploding there.
    floor = 0.15
    albedo = (image_linear / np.maximum(shading, floor)[..., None]).astype(np.float32, copy=False)
    # Where the shading hit the floor, borrow the albedo of the neighbourhood instead of amplifying noise:
    # albedo = trust * albedo + (1 - trust) * smooth, computed in place as albedo += (1 - trust) * (smooth - albedo).
    distrust = 1.0 - np.clip((shading - floor) / floor, 0.0, 1.0)
    for c in range(3):
        smooth = ndimage.gaussian_filter(albedo[..., c], 4.0)
        smooth -= albedo[..., c]
        smooth *= distrust
        albedo[..., c] += smooth
    np.clip(albedo, 0.0, 1.0, out=albedo)
    albedo *= (alpha > 0)[..., None]
    return AlbedoResult(albedo, shading, coefficients)
