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
    weights: np.ndarray  # (H, W, 4) per-pixel weights of the Phong lobes (1, 16, 32, 64)


def skin_likelihood(image_linear: np.ndarray, alpha: np.ndarray, face_mask: np.ndarray | None) -> np.ndarray:
    """(H, W) in [0, 1]: how much a pixel looks like the face's skin (chromaticity near the face's median).

    Without a face, a broad generic skin-chroma prior is used. Chromaticity ignores brightness, so shading and
    skin tone (light or dark) do not matter, only hue.
    """
    total = image_linear.sum(axis=-1, keepdims=True) + 1e-6
    chroma = (image_linear / total)[..., :2]
    reference_region = (face_mask > 0.5) & (alpha > 0.9) if face_mask is not None else None
    if reference_region is not None and reference_region.sum() > 200:
        centre = np.median(chroma[reference_region], axis=0)
        spread = 0.035
    else:
        centre = np.array([0.45, 0.32], np.float32)  # typical skin r, g chromaticity over all skin tones
        spread = 0.06
    distance2 = ((chroma - centre) ** 2).sum(axis=-1)
    likelihood = np.exp(-distance2 / (2 * spread**2))
    likelihood = ndimage.gaussian_filter(likelihood, 1.5)
    return (likelihood * (alpha > 0)).astype(np.float32)


def lobe_weights(skin: np.ndarray, normals: np.ndarray, view_rays: np.ndarray,
                 specular_strength: float = 1.0) -> np.ndarray:
    """(H, W, 4) per-pixel weights w_k of the Phong lobes."""
    skin = skin[..., None]
    reflectance = skin * SKIN_REFLECTANCE + (1 - skin) * OTHER_REFLECTANCE
    mix = skin * SKIN_LOBES + (1 - skin) * OTHER_LOBES
    cos_view = np.clip(-(normals * view_rays).sum(axis=-1, keepdims=True), 0.0, 1.0)
    fresnel = 1.0 + (GRAZING_BOOST - 1.0) * (1.0 - cos_view) ** 5
    return (specular_strength * reflectance * fresnel * mix).astype(np.float32)


def shade(albedo: np.ndarray, diffuse: np.ndarray, specular_maps: np.ndarray, weights: np.ndarray,
          alpha: np.ndarray) -> ShadingResult:
    """Combine light maps: `specular_maps` is (4, H, W, 3) for Phong exponents (1, 16, 32, 64)."""
    specular = np.einsum("khwc,hwk->hwc", specular_maps, weights).astype(np.float32)
    inside = (alpha > 0)[..., None]
    rgb = (albedo * diffuse + specular) * inside
    relit = np.concatenate([rgb, alpha[..., None]], axis=-1).astype(np.float32)
    return ShadingResult(relit=relit, specular=(specular * inside).astype(np.float32), weights=weights)


def composite(relit_rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """C = alpha * F + (1 - alpha) * B, scene-linear."""
    a = alpha[..., None]
    return (a * relit_rgb + (1.0 - a) * background).astype(np.float32)
