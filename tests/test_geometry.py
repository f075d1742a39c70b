"""Normals: silhouette inflation against analytic shapes, and the face mesh's orientation on a real face."""

from __future__ import annotations

import numpy as np
import pytest

from portrait_relight.inference.io.imageio import srgb_to_linear
from portrait_relight.inference.models.registry import FACE_DETECTOR, FACE_LANDMARKS
from portrait_relight.inference.models.session import BUNDLED_MODELS_DIR
from portrait_relight.inference.resample import resize
from portrait_relight.inference.settings import RelightSettings
from portrait_relight.inference.stages import face, geometry

CLASSICAL = RelightSettings(normals="classical")  # these tests are the classical stage's (v1)


def _disc(height, width, cx, cy, radius, soft=0.0):
    yy, xx = np.mgrid[:height, :width] + 0.5
    r = np.hypot(xx - cx, yy - cy)
    if soft:
        return np.clip((radius - r) / soft + 0.5, 0.0, 1.0).astype(np.float32), r, xx, yy
    return (r < radius).astype(np.float32), r, xx, yy


def _angle_deg(a, b):
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0)))


@pytest.mark.parametrize("shape, centre, radius", [((512, 512), (256, 256), 200), ((400, 900), (300, 210), 150),
                                                   ((1080, 1920), (1100, 500), 420)])
def test_disc_inflates_to_a_sphere(shape, centre, radius):
    h, w = shape
    alpha, r, xx, yy = _disc(h, w, *centre, radius)
    normal = geometry.estimate_normals(np.zeros((h, w, 3), np.float32), alpha, CLASSICAL, use_face=False).normal
    nz = np.sqrt(np.clip(1 - (r / radius) ** 2, 0, 1))
    # Analytic hemisphere normal in camera space: +X right, +Y up (image rows run down), +Z toward camera.
    expected = np.stack([(xx - centre[0]) / radius, -(yy - centre[1]) / radius, nz], axis=-1)
    interior = r < 0.9 * radius
    err = _angle_deg(normal[interior], expected[interior])
    assert err.mean() < 1.0 and err.max() < 3.0
    # Sign sanity on their own, so a flipped axis cannot hide in an average.
    assert normal[int(centre[1]), int(centre[0] - radius / 2), 0] < -0.3  # left of centre faces left
    assert normal[int(centre[1] - radius / 2), int(centre[0]), 1] > 0.3  # above centre faces up


def test_unit_inside_zero_outside_with_soft_edges():
    alpha, *_ = _disc(300, 500, 250, 150, 120, soft=12.0)
    alpha[140:160, 100:400] = np.maximum(alpha[140:160, 100:400], 0.3)  # a thin, semi-transparent stray bit
    normal = geometry.estimate_normals(np.zeros((300, 500, 3), np.float32), alpha, CLASSICAL, use_face=False).normal
    assert normal.shape == (300, 500, 3) and normal.dtype == np.float32
    lengths = np.linalg.norm(normal, axis=-1)
    assert np.allclose(lengths[alpha > 0], 1.0, atol=1e-4)
    assert np.all(normal[alpha <= 0] == 0)
    assert (normal[alpha > 0.5, 2] >= 0).mean() > 0.999


def test_frame_cut_is_not_a_silhouette():
    """A torso-like slab that runs off the bottom of the frame must not curve away at the frame edge."""
    alpha = np.zeros((400, 300), np.float32)
    alpha[150:, 50:250] = 1.0
    normal = geometry.estimate_normals(np.zeros((400, 300, 3), np.float32), alpha, CLASSICAL, use_face=False).normal
    bottom = normal[-5:, 120:180]
    assert np.abs(bottom[..., 1]).max() < 0.1  # no downward tilt at the cut
    top = normal[160:170, 120:180]
    assert top[..., 1].mean() > 0.3  # the real silhouette edge above does curve away (upward)
    assert normal[300, 60, 0] < -0.5 and normal[300, 240, 0] > 0.5


@pytest.fixture(scope="module")
def astronaut_linear() -> np.ndarray:
    from skimage import data

    for name in (FACE_DETECTOR.name, FACE_LANDMARKS.name):
        if not (BUNDLED_MODELS_DIR / f"{name}.onnx").is_file():
            pytest.fail(f"{name}.onnx missing in {BUNDLED_MODELS_DIR}: run `make models`")
    return srgb_to_linear(data.astronaut().astype(np.float32) / 255.0)


def _face_halves(result):
    lm = result.landmarks
    mask = result.face_mask > 0.9
    split = lm.points[face.NOSE_TIP, 0]
    cols = np.arange(mask.shape[1])[None, :]
    return result.normal[mask & (cols < split)].mean(0), result.normal[mask & (cols >= split)].mean(0)


def test_astronaut_face_is_convex(astronaut_linear):
    alpha = np.ones(astronaut_linear.shape[:2], np.float32)
    result = geometry.estimate_normals(astronaut_linear, alpha, CLASSICAL)
    assert result.landmarks is not None
    assert result.face_mask.max() == pytest.approx(1.0, abs=1e-3)
    # The face mask covers the face (around the eyes and nose) and not the far background.
    right_eye, left_eye = result.landmarks.eye_centres()
    assert result.face_mask[int(right_eye[1]), int(right_eye[0])] > 0.9
    assert result.face_mask[20:40, 400:500].max() == 0
    left, right = _face_halves(result)
    assert left[0] < -0.1 < 0.1 < right[0]
    face_n = result.normal[result.face_mask > 0.9]
    assert (face_n[:, 2] > 0).mean() > 0.98
    # Above the eyes (forehead) faces more upward than below the mouth (chin, jaw).
    p = result.landmarks.points
    forehead = result.normal[int(p[face.FOREHEAD, 1]) + 4, int(p[face.FOREHEAD, 0])]
    chin = result.normal[int(p[face.CHIN, 1]) - 4, int(p[face.CHIN, 0])]
    assert forehead[1] > chin[1]


def test_flipped_astronaut_mirrors_normals(astronaut_linear):
    alpha = np.ones(astronaut_linear.shape[:2], np.float32)
    a = geometry.estimate_normals(astronaut_linear, alpha, CLASSICAL)
    b = geometry.estimate_normals(np.ascontiguousarray(astronaut_linear[:, ::-1]), alpha, CLASSICAL)
    mirrored = b.normal[:, ::-1] * np.array([-1, 1, 1], np.float32)
    both = (a.face_mask > 0.9) & (b.face_mask[:, ::-1] > 0.9)
    assert both.sum() > 3000
    assert np.median(_angle_deg(a.normal[both], mirrored[both])) < 8


def test_turned_face_points_where_it_turns(astronaut_linear):
    """Rotate the astronaut's real landmarks about the vertical axis: turning the head toward image right
    (+X) must turn the normals at fixed facial points toward +X (checks the z sign and the y flip together).
    (The mean over the visible face changes little: a convex surface always shows mostly camera-facing
    pixels, so the test follows points on the face instead.)"""
    lm = face.find_face(np.clip(astronaut_linear, 0, 1) ** (1 / 2.2))
    p = lm.points.astype(np.float64)
    centre = p.mean(0)
    probes = [face.NOSE_TIP, 151, 50, 280, 200]  # nose tip, mid forehead, both cheeks, chin front
    nx, mean_nx = {}, {}
    for degrees in (-25, 25):
        t = np.radians(degrees)
        q = p - centre
        toward_camera = -q[:, 2]
        x = q[:, 0] * np.cos(t) + toward_camera * np.sin(t)
        d = -q[:, 0] * np.sin(t) + toward_camera * np.cos(t)
        turned = np.stack([x, q[:, 1], -d], -1) + centre
        normal, covered = geometry.face_normals(turned.astype(np.float32), (512, 512))
        at = turned[probes, :2].astype(int)
        nx[degrees] = normal[at[:, 1], at[:, 0], 0]
        mean_nx[degrees] = normal[covered, 0].mean()
    # Ideal difference: 2 sin(25 deg) * nz, about 0.6 for these front-facing points.
    assert np.all(nx[25] - nx[-25] > 0.3), (nx[25], nx[-25])
    assert mean_nx[25] > 0.02 > -0.02 > mean_nx[-25]


def test_astronaut_face_looks_at_the_camera(astronaut_linear):
    """The astronaut faces the camera: MediaPipe's downward lean of the face mesh is removed
    (FACE_PITCH_BIAS_DEG), so the face's mean normal is neither tipped down nor sideways."""
    alpha = np.ones(astronaut_linear.shape[:2], np.float32)
    result = geometry.estimate_normals(astronaut_linear, alpha, CLASSICAL)
    mean = result.normal[result.face_mask > 0.9].mean(0)
    assert abs(mean[0]) < 0.1 and abs(mean[1]) < 0.1, mean
    # Without the correction the mesh leans down (about -0.19 on the raw mesh for this photo).
    lm = result.landmarks.points
    raw, covered = geometry.face_normals(lm, astronaut_linear.shape[:2], pitch_bias_deg=0.0)
    fixed, _ = geometry.face_normals(lm, astronaut_linear.shape[:2])
    assert fixed[covered, 1].mean() - raw[covered, 1].mean() > 0.05


def _tilted(normal, degrees):
    """Normals turned down (toward -Y) about the camera X axis."""
    t = np.radians(degrees)
    x, y, z = normal[..., 0], normal[..., 1], normal[..., 2]
    return np.stack([x, y * np.cos(t) - z * np.sin(t), y * np.sin(t) + z * np.cos(t)], axis=-1)


def test_face_blend_has_no_seam():
    """A face whose normals disagree with the body by 25 degrees (a nearly flat, big sphere): normals just
    inside the feather band and just outside the face must agree; a plain feathered blend jumps there."""
    h = w = 400
    radius, face_r = 60.0, 3000.0
    yy, xx = np.mgrid[:h, :w] + 0.5
    body = np.stack([(xx - 200) / face_r, -(yy - 200) / face_r, np.ones_like(xx)], -1).astype(np.float32)
    body /= np.linalg.norm(body, axis=-1, keepdims=True)
    r = np.hypot(xx - 200, yy - 200)
    covered = r < radius
    bump = np.stack([(xx - 200) / 300, -(yy - 200) / 300, np.ones_like(xx)], -1)  # a little facial relief
    face_n = _tilted(bump / np.linalg.norm(bump, axis=-1, keepdims=True), 25.0).astype(np.float32)
    face_n[~covered] = 0
    width = 2 * radius
    normal, weight = geometry.blend_face_normals(body, face_n, covered, width)
    assert np.allclose(np.linalg.norm(normal, axis=-1), 1, atol=1e-4)
    theta = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    r_in, r_out = radius - geometry.FACE_FEATHER * width - 2, radius + 2

    def at(field, rad):
        return field[(200 + rad * np.sin(theta)).astype(int), (200 + rad * np.cos(theta)).astype(int)]

    assert at(weight, r_in).min() > 0.99 and at(weight, r_out).max() == 0
    jump = _angle_deg(at(normal, r_in), at(normal, r_out))
    assert jump.mean() < 10 and jump.max() < 15, (jump.mean(), jump.max())
    # The face itself keeps its own normals where its weight is 1, and far away the body is untouched.
    assert _angle_deg(normal[weight > 0.999], face_n[weight > 0.999]).max() < 0.5
    assert _angle_deg(normal[r > 3 * radius], body[r > 3 * radius]).max() < 0.5
    plain = body * (1 - weight[..., None]) + face_n * weight[..., None]
    plain /= np.linalg.norm(plain, axis=-1, keepdims=True)
    assert _angle_deg(at(plain, r_in), at(plain, r_out)).mean() > 20  # what the test guards against


def test_astronaut_face_meets_the_head_without_a_ring(astronaut_linear):
    """Across the feather band (pixel pairs along the direction to the face edge) the normals change about as
    much as a head's curvature does (about 10 degrees), not by the face-versus-inflation mismatch (36 before)."""
    from scipy import ndimage

    alpha = np.ones(astronaut_linear.shape[:2], np.float32)
    result = geometry.estimate_normals(astronaut_linear, alpha, CLASSICAL)
    covered = result.face_mask > 0
    d_out, (iy, ix) = ndimage.distance_transform_edt(~covered, return_indices=True)
    oy, ox = np.nonzero((d_out >= 2) & (d_out < 3))
    by, bx = iy[oy, ox], ix[oy, ox]
    step = np.stack([by - oy, bx - ox], 1) / d_out[oy, ox][:, None]
    depth = geometry.FACE_FEATHER * np.ptp(result.landmarks.points[:, 0]) + 2
    jy, jx = np.round(by + step[:, 0] * depth).astype(int), np.round(bx + step[:, 1] * depth).astype(int)
    ok = result.face_mask[jy, jx] > 0.95
    jump = _angle_deg(result.normal[oy, ox][ok], result.normal[jy, jx][ok])
    assert ok.sum() > 50 and np.median(jump) < 15, np.median(jump)


def test_guided_upsampling_follows_the_guide_edges():
    """A coarse step smeared by the working grid comes back sharp where the full-size guide has its edge."""
    from portrait_relight.inference.stages.normals_net import guided_upsample

    size, low_size = 256, 32
    guide = np.zeros((size, size), np.float32)
    guide[:, 131:] = 1.0  # the edge is off the coarse grid's cell boundaries
    truth = guide[..., None].repeat(3, axis=-1)
    low = resize(truth, low_size, low_size)
    bilinear = resize(low, size, size)
    guided = guided_upsample(low, guide)
    assert np.abs(guided - truth).mean() < 0.5 * np.abs(bilinear - truth).mean()
    assert np.abs(guided - truth)[:, :120].max() < 0.05 and np.abs(guided - truth)[:, 142:].max() < 0.05


@pytest.mark.parametrize("crop", [(20, -15, 90), (-8, 40, 70), (10, 10, 24)],
                         ids=["beyond the left edge", "beyond the top edge", "smaller than the working size"])
def test_values_at_pixels_equal_the_dense_upsampling(crop):
    """The nets' passes are upsampled only at the matte's pixels (guided_values, bilinear_values): the same values
    as the dense guided_upsample / resize of the whole window placed on the plate (brute reference), and 0 outside
    the window."""
    from portrait_relight.inference.stages.normals_net import (
        SubjectCrop,
        bilinear_values,
        guided_upsample,
        guided_values,
    )

    rng = np.random.default_rng(3)
    height, width, size = 100, 120, 32
    window = SubjectCrop(*crop)
    plate = rng.random((height, width)).astype(np.float32)
    low = rng.normal(size=(size, size, 5)).astype(np.float32)
    guide = window.window(plate)
    top, left = max(window.top, 0), max(window.left, 0)
    bottom, right = min(window.top + window.side, height), min(window.left + window.side, width)
    rows, cols = np.nonzero(rng.random((height, width)) < 0.6)
    for at_pixels, upsampled in ((guided_values(low, guide, window, rows, cols), guided_upsample(low, guide)),
                                 (bilinear_values(low, window, rows, cols), resize(low, window.side, window.side))):
        dense = np.zeros((height, width, 5), np.float32)
        dense[top:bottom, left:right] = upsampled[top - window.top: bottom - window.top,
                                                  left - window.left: right - window.left]
        np.testing.assert_allclose(at_pixels, dense[rows, cols], atol=2e-5)


def test_learned_normals_keep_the_output_contract(astronaut_linear):
    """The bundled geometry net on a real photo: unit normals inside the matte, zero outside, facing the camera
    on the face, and the face mask still comes from the face landmarks."""
    from portrait_relight.inference.stages import matting

    plate = astronaut_linear
    alpha = matting.estimate_matte(plate, RelightSettings()).alpha
    result = geometry.estimate_normals(plate, alpha, RelightSettings(normals="learned"))
    inside = alpha > 0
    lengths = np.linalg.norm(result.normal, axis=-1)
    assert np.allclose(lengths[inside], 1.0, atol=1e-3) and np.all(result.normal[~inside] == 0)
    face = result.face_mask > 0.5
    assert face.sum() > 500 and result.normal[face][:, 2].mean() > 0.6


def _sphere_normals(size, cx, cy, radius, turn_deg=0.0, bump=0.0):
    """Unit normals of a sphere (turned about the vertical axis by `turn_deg`) with an optional Gaussian bump (a
    nose) at its centre, on a size x size grid; 0 outside the disc."""
    yy, xx = np.mgrid[:size, :size] + 0.5
    x, y = (xx - cx) / radius, (cy - yy) / radius
    inside = x * x + y * y < 1.0
    height = np.sqrt(np.clip(1.0 - x * x - y * y, 0.0, None)) + bump * np.exp(-(x * x + y * y) / (2 * 0.08 ** 2))
    gy, gx = np.gradient(height, 1.0 / radius)
    n = np.stack([-gx, gy, np.ones_like(gx)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    t = np.radians(turn_deg)
    n = n @ np.array([[np.cos(t), 0, -np.sin(t)], [0, 1, 0], [np.sin(t), 0, np.cos(t)]], np.float64)
    n[~inside] = 0.0
    return n.astype(np.float32), inside


def test_the_face_mesh_detail_goes_onto_the_learned_normals_and_nothing_else():
    """with_face_detail: the net's normals (a smooth head turned 20 degrees) take the face mesh's detail (a nose
    bump on a head the landmarks see turned 10 degrees) on the face, keep their own orientation there, and stay
    exactly as they were off the face."""
    size, radius = 256, 100.0
    net, inside = _sphere_normals(size, 128, 128, radius, turn_deg=20.0)
    truth, _ = _sphere_normals(size, 128, 128, radius, turn_deg=20.0, bump=0.15)
    mesh, _ = _sphere_normals(size, 128, 128, radius, turn_deg=10.0, bump=0.15)
    covered = _disc(size, size, 128, 128, 60.0)[0] > 0
    face_width = 120.0
    face_w = geometry._feathered(covered, geometry.FACE_FEATHER * face_width)
    alpha = inside.astype(np.float32)
    out = geometry.with_face_detail(net, alpha, mesh, covered, face_w, face_width)
    face = face_w > 0.99
    error = {name: _angle_deg(normals[face], truth[face]).mean() for name, normals in
             (("out", out), ("net", net), ("mesh", mesh))}
    # better than either alone: the mesh's nose, the net's turn (here 6.3 and 9.5 degrees alone, 3.6 together)
    assert error["out"] < 0.65 * error["net"] and error["out"] < 0.5 * error["mesh"], error
    mean_out, mean_net = out[face].mean(0), net[face].mean(0)
    assert np.degrees(np.arctan2(mean_out[0], mean_out[2])) == pytest.approx(
        np.degrees(np.arctan2(mean_net[0], mean_net[2])), abs=2.0)  # still turned as the net says
    off_face = inside & (np.hypot(*(np.mgrid[:size, :size] + 0.5 - 128)) > 64)
    np.testing.assert_array_equal(out[off_face], net[off_face])
    np.testing.assert_allclose(np.linalg.norm(out[inside], axis=-1), 1.0, atol=1e-5)
