"""Shading v1: relit = albedo * diffuse + sum_k w_k * specular_k, then the composite.

The paper's shading net predicts per-pixel blending weights for the four Phong-prefiltered specular light maps.
v1 derives them from a material guess instead: skin gets a dielectric reflectance of ~4 % concentrated in the
mid/sharp lobes (skin's oily sheen), everything else (clothes, hair) a dimmer, broader lobe. A Schlick-style
term raises reflectance toward grazing angles, where skin visibly rims up. The result stays editable: the
`specular` pass is the blended term and `diffuse` the raw light map, so relit = albedo * diffuse + specular.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .blocks import row_blocks

# Blend of the (1, 16, 32, 64) Phong lobes and total specular reflectance, per material.
SKIN_LOBES = np.array([0.10, 0.30, 0.40, 0.20], np.float32)
SKIN_REFLECTANCE = 0.045
OTHER_LOBES = np.array([0.60, 0.40, 0.0, 0.0], np.float32)
OTHER_REFLECTANCE = 0.02
GRAZING_BOOST = 3.0  # reflectance multiplier at 90 degrees (Schlick's (1 - cos)^5 shape, capped for rough skin)


@dataclass(frozen=True)
class ShadingResult:
    relit: np.ndarray  # (H, W, 4) straight RGB (not premultiplied), A = alpha
    specular: np.ndarray  # (H, W, 3) the blended specular term


def skin_likelihood(image_linear: np.ndarray, alpha: np.ndarray, face_mask: np.ndarray | None) -> np.ndarray:
    """(H, W) in [0, 1]: how much a pixel looks like the face's skin (chromaticity near the face's median).

    Without a face, a broad generic skin-chroma prior is used. Chromaticity ignores brightness, so shading and
    skin tone (light or dark) do not matter, only hue.
    """
    reference_region = (face_mask > 0.5) & (alpha > 0.9) if face_mask is not None else None
    if reference_region is not None and reference_region.sum() > 200:
        centre = np.median(_chroma(image_linear[reference_region]), axis=0)
        spread = 0.035
    else:
        centre = np.array([0.45, 0.32], np.float32)  # typical skin r, g chromaticity over all skin tones
        spread = 0.06
    likelihood = np.empty(alpha.shape, np.float32)
    for rows in row_blocks(alpha.shape[0]):
        distance2 = ((_chroma(image_linear[rows]) - centre) ** 2).sum(axis=-1)
        likelihood[rows] = np.exp(-distance2 / (2 * spread**2))
    likelihood = ndimage.gaussian_filter(likelihood, 1.5)
    likelihood *= alpha > 0
    return likelihood


def _chroma(rgb: np.ndarray) -> np.ndarray:
    """(r, g) chromaticity, (..., 2)."""
    return (rgb[..., :2] / (rgb.sum(axis=-1, keepdims=True) + 1e-6)).astype(np.float32, copy=False)


def lobe_weights(skin: np.ndarray, normals: np.ndarray, view_rays: np.ndarray,
                 specular_strength: float = 1.0) -> np.ndarray:
    """(H, W, 4) per-pixel weights w_k of the Phong lobes."""
    weights = np.empty(skin.shape + (4,), np.float32)
    for rows in row_blocks(skin.shape[0]):
        material = skin[rows, :, None]
        reflectance = material * SKIN_REFLECTANCE + (1 - material) * OTHER_REFLECTANCE
        mix = material * SKIN_LOBES + (1 - material) * OTHER_LOBES
        cos_view = np.clip(-(normals[rows] * view_rays[rows]).sum(axis=-1, keepdims=True), 0.0, 1.0)
        fresnel = 1.0 + (GRAZING_BOOST - 1.0) * (1.0 - cos_view) ** 5
        weights[rows] = specular_strength * reflectance * fresnel * mix
    return weights


def shade(albedo: np.ndarray, diffuse: np.ndarray, specular: np.ndarray, alpha: np.ndarray) -> ShadingResult:
    """relit = albedo * diffuse + specular inside the matte; `specular` is the blended term (H, W, 3): the four
    Phong maps blended by lobe_weights (lightmaps.light_maps with lobe_weights, or lightmaps.blend_lobes)."""
    inside = alpha > 0
    relit = np.empty(alpha.shape + (4,), np.float32)
    np.multiply(albedo, diffuse, out=relit[..., :3])
    relit[..., :3] += specular
    relit[..., :3] *= inside[..., None]
    relit[..., 3] = alpha
    return ShadingResult(relit=relit, specular=(specular * inside[..., None]).astype(np.float32, copy=False))


def composite(relit_rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """C = alpha * F + (1 - alpha) * B, scene-linear (exactly F where alpha is 1), a band of rows at a time."""
    out = np.empty(np.broadcast_shapes(relit_rgb.shape, background.shape), np.float32)
    for rows in row_blocks(alpha.shape[0]):
        a = alpha[rows, :, None]
        out[rows] = a * relit_rgb[rows] + (1.0 - a) * background[rows]
    return out
