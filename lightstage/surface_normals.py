"""Ground-truth normals of the hair from the rendered depth: the render's Normal pass is no surface normal there.

The hair and eyebrows are Cycles ribbons (lightstage/hair.py), and on them the Normal pass does not describe any
surface the camera sees. Measured on the 16 validation poses of 2026-12-07: on 8 of them the hair's mean pass
normal lies within ~20 degrees of one fixed world direction (world -X), on both sides of the head alike; elsewhere
it is close to a camera-facing ribbon's. The geometry net trained on it learned a mix of both (52 degrees off on the
hair, 12.5 on the rest), and the light maps of the albedo and shading nets' training samples were computed from it.

The depth pass does hold the hair's shape: the surface of the rendered ribbons. Its normal (from the 3-D points
along the camera rays), taken from the depth smoothed over a few pixels (the hair volume's shape rather than each
clump's), agrees with the Normal pass to ~1 degree (median) on skin and clothes, and it replaces the pass on the
hair: pixels whose roughness AOV is exactly a hair material's (one value per subject, in its parameters, and
BROW_ROUGHNESS for the brows; the skin's roughness varies continuously), and next to them the hairline's mixed
pixels where the pass and the depth surface disagree by more than MIXED_PIXEL_DEG.

Pure numpy and scipy: the training poses and the evaluation cases read it without Blender.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..inference.lighting.camera import camera_rays

BROW_ROUGHNESS = 0.35  # the eyebrows' hair material (lightstage/hair.py sets it from here; it imports bpy)
ROUGHNESS_MATCH = 2e-3  # the AOV holds the material's exact value on pixels all of that material
SMOOTHING = 1.0 / 96.0  # depth smoothing sigma as a fraction of the image side: 2 px on a 192 px pose
MIXED_PIXEL_DEG = 35.0
# Pure-hair pixels count in clumps of at least this fraction of the image: skin whose varying roughness happens to
# hit a hair material's value leaves single-pixel specks over the face, which must not spread the mixed-pixel test
# to the jaw's and collar's depth edges (where the depth surface, not the pass, is wrong).
MIN_CLUMP = 1.0 / 2000.0
# how far from a pure hair pixel a mixed one may lie, as a fraction of the image side (6 px on a 192 px pose): short
# hair over the scalp mixes the two on most pixels of the crown
MIXED_PIXEL_REACH = 1.0 / 32.0


def hair_roughness(meta: dict) -> tuple[float, ...]:
    """The roughness values of the subject's hair materials (none for the scanned head and bald subjects' scalp
    hair; the brows are always there on a MakeHuman subject)."""
    hair = (meta.get("subject") or {}).get("hair")
    if not hair:
        return ()
    values = [BROW_ROUGHNESS]
    if hair.get("style", "bald") != "bald":
        values.append(float(hair["roughness"]))
    return tuple(values)


def depth_normals(depth: np.ndarray, valid: np.ndarray, fov_deg: float, sigma: float) -> np.ndarray:
    """(H, W, 3) unit camera-space normals of the surface `depth` (distance along each pixel's ray) describes,
    facing the camera; depth outside `valid` is filled from the nearest valid pixel first, and the depth is
    smoothed by a Gaussian of `sigma` px weighted by `valid` (normalised convolution: the background's fill
    does not pull the silhouette)."""
    height, width = depth.shape
    nearest = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    filled = np.asarray(depth, np.float64)[tuple(nearest)]
    if sigma > 0:
        weight = valid.astype(np.float64)
        filled = np.where(valid, ndimage.gaussian_filter(filled * weight, sigma)
                          / np.maximum(ndimage.gaussian_filter(weight, sigma), 1e-6), filled)
    rays = camera_rays(width, height, fov_deg).astype(np.float64)
    points = rays * filled[..., None]
    normal = np.cross(np.gradient(points, axis=0), np.gradient(points, axis=1))  # rows go down, columns right
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    normal *= np.where(np.einsum("hwc,hwc->hw", normal, rays) > 0.0, -1.0, 1.0)[..., None]
    return normal.astype(np.float32)


def hair_mask(normal: np.ndarray, depth_normal: np.ndarray, alpha: np.ndarray, roughness: np.ndarray,
              materials: tuple[float, ...]) -> np.ndarray:
    """Pixels whose ground-truth normal must come from the depth: pure hair, and the mixed pixels beside it."""
    inside = alpha > 0
    pure = np.zeros(alpha.shape, bool)
    for value in materials:
        pure |= np.abs(roughness - value) < ROUGHNESS_MATCH
    pure &= inside
    labels, count = ndimage.label(pure, np.ones((3, 3), bool))
    if count:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        pure = (sizes >= MIN_CLUMP * alpha.size)[labels] & pure
    reach = max(1, round(MIXED_PIXEL_REACH * max(alpha.shape)))
    near = ndimage.binary_dilation(pure, iterations=reach) & inside
    disagree = np.einsum("hwc,hwc->hw", normal, depth_normal) < np.cos(np.radians(MIXED_PIXEL_DEG))
    return pure | (near & disagree)


def surface_normals(normal: np.ndarray, depth: np.ndarray, alpha: np.ndarray, roughness: np.ndarray,
                    meta: dict) -> np.ndarray:
    """The ground-truth normals with the hair's replaced by the depth surface's (unchanged without hair)."""
    materials = hair_roughness(meta)
    if not materials:
        return normal
    inside = (alpha > 0) & (depth > 0)
    side = max(alpha.shape)
    smooth = depth_normals(depth, inside, float(meta["camera"]["fov_deg"]), SMOOTHING * side)
    hair = hair_mask(normal, smooth, alpha, roughness, materials)
    return np.where(hair[..., None], smooth, normal).astype(np.float32)
