"""Camera-space surface normals of the matted subject (v1: classical, no learned geometry network).

Two sources, blended:
- Body, hair, neck: a height field inflated from the silhouette (inflation.py: a Poisson bulge, a hemisphere
  for a disc).
- Face: the 468 MediaPipe landmarks (x, y in pixels, z relative depth in the same units), triangulated here
  with a Delaunay triangulation; smooth per-vertex normals are interpolated over each triangle.
The inflation depth has no natural scale, so it is scaled to best agree with the face's real depth gradients.
The face mesh's constant downward lean (FACE_PITCH_BIAS_DEG) is removed, and the face is blended into the body
in the slope domain (blend_face_normals): its orientation carries smoothly into the head around it, its detail
fades at its edge, so no ring shows where the two sources meet.

Normals follow ARCHITECTURE.md: (H, W, 3) float32, OpenGL camera space (+X right, +Y up, +Z toward the
camera), unit where alpha > 0 and zero elsewhere. Image rows run down, so an image-space height h(x, y_img)
has the normal (-dh/dx, +dh/dy_img, 1) normalised. The projection is treated as orthographic (a portrait lens
is narrow; the error at the frame edges is a few degrees).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..io.imageio import linear_to_srgb
from ..resample import resize as _resize
from ..resample import working_size as _work_shape
from ..settings import RelightSettings
from . import face as face_module
from .inflation import MATTE_THRESHOLD, inflation_height, normals_from_height

WORK_RESOLUTION = 512  # long edge of the grid the normals are computed on
FACE_RESOLUTION = 1024  # long edge of the copy the face models see (the landmark crop is 192 px anyway)
DEPTH_SCALE_RANGE = (0.35, 3.0)  # clamp on the face-derived inflation scale, in case the fit is degenerate
EDGE_SMOOTH_SIGMA = 1.0  # work-grid pixels; hides the staircase of the thresholded matte
# MediaPipe's face mesh leans down: its relative z puts the chin a little too far behind the forehead.
# Calibrated on the Lee Perry-Smith head scan (shared/data/heads) rendered at known pitches -15..15 degrees,
# facing the camera: the mesh's mean normal over the face was 3.8..7.9 (mean 5.3) degrees lower than the
# scan's own normals over the same pixels, and it followed the real pitch about 1:1 (so real head pitch, a
# chin-down pose, a face looking up, is kept: only the constant offset is removed), 1..3 degrees turned 20
# degrees sideways. The face normals are turned up about the camera X axis by this much.
FACE_PITCH_BIAS_DEG = 6.0
FACE_FEATHER = 0.12  # face widths: the face mesh's own detail fades out over this band inside its edge
OFFSET_SIGMA = 0.15  # face widths: smoothing of the face-minus-body slope offset (its low frequencies)
OFFSET_REACH = 0.5  # face widths: the offset carried into the body around the face fades out over this
# face widths: the scale below which the face mesh's slopes count as facial detail on the learned normals. Chosen on
# the light stage's validation identities (tools/geometry_compare.py --face-detail), never on eval-v2.
FACE_DETAIL_SIGMA = 0.1


@dataclass(frozen=True)
class GeometryResult:
    """normal: (H, W, 3) float32; face_mask: (H, W) float32 in [0, 1], weight of the face-mesh normals;
    landmarks: the face used (full-image pixels) or None; timings: seconds per step."""

    normal: np.ndarray
    face_mask: np.ndarray
    landmarks: face_module.FaceLandmarks | None
    timings: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- face mesh
def _camera_points(points: np.ndarray) -> np.ndarray:
    """Landmarks (x right, y down, z away from camera, pixels) -> camera axes (x right, y up, z toward)."""
    return np.stack([points[:, 0], -points[:, 1], -points[:, 2]], axis=-1).astype(np.float64)


def triangulate_landmarks(points: np.ndarray) -> np.ndarray:
    """(T, 3) triangles over the 468 landmarks (pixels, MediaPipe axes), wound counter-clockwise seen from
    in front of the face, so every triangle's normal points out of the face.

    The Delaunay triangulation is taken in the face's own frontal plane (axes from the eye line and the
    chin->forehead line), not in the image: on a turned or tilted head the image projection folds (the nose
    hides a cheek) and an image-space Delaunay would bridge the fold with wrong triangles. Eye and mouth
    openings stay covered: a surface across them is a far better normal than the silhouette inflation.
    """
    from scipy.spatial import Delaunay

    p = _camera_points(points)
    ax = p[face_module.LEFT_EYE_OUTER] - p[face_module.RIGHT_EYE_OUTER]
    ax /= np.linalg.norm(ax)
    up = p[face_module.FOREHEAD] - p[face_module.CHIN]
    up -= ax * (up @ ax)
    up /= np.linalg.norm(up)
    frontal = np.stack([p @ ax, p @ up], axis=-1)
    simplices = Delaunay(frontal).simplices
    corners = frontal[simplices]
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    cross = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    simplices = np.where((cross < 0)[:, None], simplices[:, [0, 2, 1]], simplices)
    # Delaunay fills the convex hull; drop the long slivers it adds along concave stretches of the outline.
    longest = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=-1).max(1)
    width = np.ptp(frontal[:, 0])
    return simplices[longest < 0.2 * width]


def _vertex_normals(p: np.ndarray, simplices: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals of the outward-wound mesh `simplices` over camera-axis points `p`."""
    tri_n = np.cross(p[simplices[:, 1]] - p[simplices[:, 0]], p[simplices[:, 2]] - p[simplices[:, 0]])
    vn = np.zeros_like(p)
    for k in range(3):
        np.add.at(vn, simplices[:, k], tri_n)
    return vn / np.maximum(np.linalg.norm(vn, axis=-1, keepdims=True), 1e-12)


def face_normals(points: np.ndarray, shape: tuple[int, int], pitch_bias_deg: float = FACE_PITCH_BIAS_DEG
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel normals (H, W, 3) and coverage (H, W) bool of the landmark mesh on a grid of `shape`;
    `points` (468, 3) are in that grid's pixel units (MediaPipe axes). Rasterised with a depth test, so where
    the projected mesh folds the surface nearest the camera wins; normals are the smoothly interpolated
    vertex normals, turned up by `pitch_bias_deg` about the camera X axis (see FACE_PITCH_BIAS_DEG)."""
    h, w = shape
    normal = np.zeros((h, w, 3), np.float32)
    covered = np.zeros((h, w), bool)
    simplices = triangulate_landmarks(points)
    p = _camera_points(points)
    vn = _vertex_normals(p, simplices)
    t = np.radians(pitch_bias_deg)
    vn = np.stack([vn[:, 0], vn[:, 1] * np.cos(t) + vn[:, 2] * np.sin(t),
                   vn[:, 2] * np.cos(t) - vn[:, 1] * np.sin(t)], axis=-1)
    xy = points[:, :2].astype(np.float64)
    a, b, c = xy[simplices[:, 0]], xy[simplices[:, 1]], xy[simplices[:, 2]]
    # Image-space signed area: the outward winding shows as clockwise (y down) on triangles facing the
    # camera; the others are back faces, hidden behind the front ones.
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    front = det < -1e-9
    simplices, a, b, c, det = simplices[front], a[front], b[front], c[front], det[front]
    # Candidate pixels: every pixel centre in each triangle's bounding box (vectorised over triangles).
    lo = np.floor(np.minimum(np.minimum(a, b), c) - 0.5).astype(np.int64)
    hi = np.ceil(np.maximum(np.maximum(a, b), c) - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [w - 1, h - 1])
    nx = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0)
    ny = np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
    counts = nx * ny
    if counts.sum() == 0:
        return normal, covered
    tri = np.repeat(np.arange(len(simplices)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    px = lo[tri, 0] + local % nx[tri]
    py = lo[tri, 1] + local // nx[tri]
    cx, cy = px + 0.5, py + 0.5
    # Barycentric coordinates of the pixel centre (weights of b and c; a gets the rest).
    wb = ((cx - a[tri, 0]) * (c[tri, 1] - a[tri, 1]) - (c[tri, 0] - a[tri, 0]) * (cy - a[tri, 1])) / det[tri]
    wc = ((b[tri, 0] - a[tri, 0]) * (cy - a[tri, 1]) - (cx - a[tri, 0]) * (b[tri, 1] - a[tri, 1])) / det[tri]
    wa = 1.0 - wb - wc
    eps = -1e-6
    inside = (wa >= eps) & (wb >= eps) & (wc >= eps)
    tri, px, py, bary = tri[inside], px[inside], py[inside], np.stack([wa, wb, wc], -1)[inside]
    depth = np.einsum("nk,nk->n", bary, p[simplices[tri], 2])
    # Depth test: per pixel keep the candidate nearest the camera (largest camera z).
    pixel = py * w + px
    order = np.lexsort((-depth, pixel))
    first = order[np.r_[True, pixel[order][1:] != pixel[order][:-1]]]
    n = np.einsum("nk,nkc->nc", bary[first], vn[simplices[tri[first]]])
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
    normal[py[first], px[first]] = n
    covered[py[first], px[first]] = True
    return normal, covered


def _feathered(covered: np.ndarray, feather: float) -> np.ndarray:
    """1 deep inside the covered region, falling smoothly to 0 at its edge over `feather` pixels."""
    from scipy import ndimage

    inside = ndimage.distance_transform_edt(covered)
    t = np.clip(inside / max(feather, 1.0), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def _slopes(n: np.ndarray) -> np.ndarray:
    """(nx/nz, ny/nz): the height field's slopes (up to signs) that the normal n = (sx, sy, 1)/|.| has."""
    return n[..., :2] / np.maximum(n[..., 2:3], 0.1)


def _from_slopes(s: np.ndarray) -> np.ndarray:
    n = np.concatenate([s, np.ones_like(s[..., :1])], axis=-1)
    return (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float32)


def blend_face_normals(body: np.ndarray, face_n: np.ndarray, covered: np.ndarray, face_width: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Seamless face-into-body normals (H, W, 3) and the face weight (H, W), in the slope (height gradient)
    domain, as in gradient-domain cloning. The face-minus-body slope difference is split in two:
    - its low frequencies (a Gaussian-weighted local mean over the face, OFFSET_SIGMA) are the head's
      orientation, which the silhouette inflation cannot know: they are carried across the face edge into
      the body and fade out smoothly over OFFSET_REACH face widths, so hair, ears and neck meet the face at
      the face's own orientation instead of a ring;
    - the rest is facial detail (nose, eye sockets, lips): it fades out over the FACE_FEATHER band inside
      the mesh edge, where the mesh's outermost normals are least reliable.
    Inside the feather band the two sides then differ only by that detail, so nothing jumps there."""
    from scipy import ndimage

    face_w = _feathered(covered, FACE_FEATHER * face_width)
    s_body, s_face = _slopes(body), _slopes(face_n)
    sigma = max(1.0, OFFSET_SIGMA * face_width)
    weight = ndimage.gaussian_filter(face_w, sigma, mode="nearest")
    diff = (s_face - s_body) * face_w[..., None]
    offset = ndimage.gaussian_filter(diff, (sigma, sigma, 0), mode="nearest")
    # Defined where the face's weight reaches; beyond, continued with the nearest such value, then smoothed
    # again so the continuation has no Voronoi creases.
    known = weight > 0.05 * weight.max()
    offset = offset / np.maximum(weight, 1e-6)[..., None]
    _, (iy, ix) = ndimage.distance_transform_edt(~known, return_indices=True)
    offset = ndimage.gaussian_filter(offset[iy, ix], (sigma, sigma, 0), mode="nearest")
    outside = ndimage.distance_transform_edt(~covered)
    t = np.clip(outside / max(OFFSET_REACH * face_width, 1.0), 0.0, 1.0)
    carry = 1.0 - t * t * (3.0 - 2.0 * t)
    s_body = s_body + offset * carry[..., None]
    blended = s_face * face_w[..., None] + s_body * (1.0 - face_w[..., None])
    # Away from the face the body normals stay exactly as they were (the slope clamp never touches them).
    return np.where((carry > 0)[..., None], _from_slopes(blended), body).astype(np.float32), face_w


def with_face_detail(learned: np.ndarray, alpha: np.ndarray, face_n: np.ndarray, covered: np.ndarray,
                     face_w: np.ndarray, face_width: float) -> np.ndarray:
    """The learned normals (H, W, 3) with the face mesh's detail in place of their own on the face.

    The geometry net sees the whole subject at 128 px, so a face gets a few dozen of its pixels and comes out
    smooth (flat on photos); the face mesh (work grid, `face_n` over `covered`) has the nose, eye sockets and lips.
    In the slope domain, each one's detail is its slopes minus their local mean over the face (a Gaussian of
    FACE_DETAIL_SIGMA face widths, normalised over the face so its edge does not leak in); the mesh's detail replaces
    the net's, weighted by `face_w` (0 at the mesh edge), while the net keeps the head's orientation and everything
    off the face. On the validation identities this lowered the face's mean angular error (tools/
    geometry_compare.py --face-detail)."""
    from scipy import ndimage

    height, width = alpha.shape
    coarse = _resize(learned, *covered.shape)
    coarse /= np.maximum(np.linalg.norm(coarse, axis=-1, keepdims=True), 1e-6)
    sigma = max(1.0, FACE_DETAIL_SIGMA * face_width)
    inside = covered.astype(np.float32)
    support = np.maximum(ndimage.gaussian_filter(inside, sigma), 1e-6)[..., None]

    def detail(normals: np.ndarray) -> np.ndarray:
        slopes = _slopes(normals)
        return slopes - ndimage.gaussian_filter(slopes * inside[..., None], (sigma, sigma, 0)) / support

    correction = _resize(((detail(face_n) - detail(coarse)) * face_w[..., None]).astype(np.float32), height, width)
    where = (np.abs(correction).sum(axis=-1) > 0) & (alpha > 0)
    out = learned.copy()
    out[where] = _from_slopes(_slopes(learned[where]) + correction[where])
    return out


def _depth_scale(body_height: np.ndarray, face_n: np.ndarray, weight: np.ndarray) -> float:
    """Scale s for the inflation so that s * dh/dx best matches the face mesh's depth slope dz/dx (weighted
    least squares over the face). Face depth is metric-like (z in x's units), the inflation is not. Only the
    horizontal slope is compared: vertically, the inflation of a bust mostly climbs toward the torso, which
    says nothing about the head's roundness."""
    gx = np.gradient(body_height, axis=1)
    fx = -face_n[..., 0] / np.maximum(face_n[..., 2], 0.2)
    num = float((weight * gx * fx).sum())
    den = float((weight * gx * gx).sum())
    if den <= 1e-9 or num <= 0:
        return 1.0
    return float(np.clip(num / den, *DEPTH_SCALE_RANGE))


# ----------------------------------------------------------------------------------------------- pipeline
def _fill_outside(normal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy each outside pixel's nearest inside normal, so upsampling never mixes in zeros."""
    from scipy import ndimage

    if mask.all() or not mask.any():
        return normal
    _, (iy, ix) = ndimage.distance_transform_edt(~mask, return_indices=True)
    return normal[iy, ix]


def _smooth_normals(normal: np.ndarray, sigma: float) -> np.ndarray:
    from scipy import ndimage

    n = ndimage.gaussian_filter(normal, sigma=(sigma, sigma, 0), mode="nearest")
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)


def _find_face(image_linear: np.ndarray, alpha: np.ndarray, settings: RelightSettings):
    """Landmarks in full-image pixels, from a copy no larger than FACE_RESOLUTION (sRGB-encoded)."""
    h, w = alpha.shape
    fh, fw = _work_shape(h, w, FACE_RESOLUTION)
    small = _resize(np.asarray(image_linear[..., :3], np.float32), fh, fw)
    small_alpha = _resize(alpha, fh, fw)
    found = face_module.find_face(linear_to_srgb(small), settings, small_alpha)
    if found is None:
        return None
    scale = np.float32(w / fw)  # z shares the x scale
    return face_module.FaceLandmarks(found.points * scale, found.presence, found.detection)


def estimate_normals(
    image_linear: np.ndarray, alpha: np.ndarray, settings: RelightSettings | None = None, use_face: bool = True
) -> GeometryResult:
    """Normals of the subject in `image_linear` (H, W, 3) scene-linear, matte `alpha` (H, W) in [0, 1]."""
    settings = settings if settings is not None else RelightSettings()
    alpha = np.asarray(alpha, np.float32)
    h, w = alpha.shape
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    landmarks = _find_face(image_linear, alpha, settings) if use_face else None
    t1 = time.perf_counter()
    timings["face"] = t1 - t0

    wh, ww = _work_shape(h, w, WORK_RESOLUTION)
    if settings.normals == "learned":
        # The net gives the normals; the face landmarks still give the face mask (albedo fit, skin weights).
        from .normals_net import estimate_normals_learned

        face_w = np.zeros((wh, ww), np.float32)
        full = estimate_normals_learned(image_linear, alpha, settings)
        if landmarks is not None:
            to_work = ww / w
            face_n, covered = face_normals(landmarks.points * np.float32(to_work), (wh, ww))
            face_width = float(np.ptp(landmarks.points[:, 0])) * to_work
            face_w = _feathered(covered, FACE_FEATHER * face_width)
            full = with_face_detail(full, alpha, face_n, covered, face_w, face_width)
        face_mask = _resize(face_w, h, w) * (alpha > 0.0)
        timings["learned"] = time.perf_counter() - t1
        return GeometryResult(full, np.clip(face_mask, 0.0, 1.0).astype(np.float32), landmarks, timings)

    alpha_w = _resize(alpha, wh, ww)
    mask_w = alpha_w > MATTE_THRESHOLD
    height = inflation_height(mask_w)
    t2 = time.perf_counter()
    timings["inflation"] = t2 - t1

    face_w = np.zeros((wh, ww), np.float32)
    scale = 1.0
    if landmarks is not None:
        to_work = ww / w
        face_n, covered = face_normals(landmarks.points * np.float32(to_work), (wh, ww))
        face_width = float(np.ptp(landmarks.points[:, 0])) * to_work
        scale = _depth_scale(height, face_n, _feathered(covered, FACE_FEATHER * face_width))
    normal = _smooth_normals(normals_from_height(height, scale), EDGE_SMOOTH_SIGMA)
    if landmarks is not None:
        normal, face_w = blend_face_normals(normal, face_n, covered, face_width)
    t3 = time.perf_counter()
    timings["face_mesh"] = t3 - t2

    # Face pixels count as inside even where the matte is thin over them (hair strands across the face).
    normal = _fill_outside(normal, mask_w | (face_w > 0))
    full = _resize(normal, h, w)
    full /= np.maximum(np.linalg.norm(full, axis=-1, keepdims=True), 1e-9)
    full[alpha <= 0.0] = 0.0
    face_mask = _resize(face_w, h, w) * (alpha > 0.0)
    timings["upsample"] = time.perf_counter() - t3
    timings["depth_scale"] = scale
    return GeometryResult(full.astype(np.float32), np.clip(face_mask, 0.0, 1.0).astype(np.float32), landmarks,
                          timings)
