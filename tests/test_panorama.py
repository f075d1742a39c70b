"""Environment estimated from a background plate (v2, background_light; v1 where a test names it): geometry
against CONVENTIONS.md, fill, seams, lighting."""

from __future__ import annotations

import math

import numpy as np

from portrait_relight.evaluation import panorama_v1
from portrait_relight.inference.lighting import background_light
from portrait_relight.inference.lighting.environment import CAMERA_TO_CENTRED_PANORAMA
from portrait_relight.inference.stages import lightmaps


def smooth_plate(h: int = 480, w: int = 640) -> np.ndarray:
    """Low-frequency colour pattern in [0.05, 0.55]: no clipping, so no highlight expansion."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 0.3 + 0.25 * np.sin(2 * np.pi * x / w)
    g = 0.3 + 0.25 * np.cos(2 * np.pi * y / h)
    b = 0.3 + 0.2 * np.sin(2 * np.pi * (x / w + y / h))
    return np.stack([r, g, b], axis=-1).astype(np.float32)


def pixel_directions_blender(h: int, w: int) -> np.ndarray:
    """CONVENTIONS.md equirect: u = 0.5 - atan2(q_y, q_x)/2pi, v = 1 - acos(q_z)/pi, v = 1 at the top row."""
    u = (np.arange(w) + 0.5) / w
    v = 1.0 - (np.arange(h) + 0.5) / h
    phi = (0.5 - u)[None, :] * 2 * np.pi
    theta = (1.0 - v)[:, None] * np.pi
    return np.stack(np.broadcast_arrays(np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)),
                    axis=-1)


def test_inside_view_matches_plate():
    plate = smooth_plate()
    fov = 60.0
    env = background_light.estimate_environment(plate, fov, height=256)
    assert env.radiance.shape == (256, 512, 3) and env.radiance.dtype == np.float32
    np.testing.assert_array_equal(env.cam_to_env, CAMERA_TO_CENTRED_PANORAMA)
    # camera ray of each panorama pixel: d_cam = cam_to_env^T q; CONVENTIONS camera: x = (2(j+.5)/W - 1) tx ...
    d = pixel_directions_blender(256, 512) @ env.cam_to_env
    tx = math.tan(math.radians(fov) / 2)
    ty = tx * 480 / 640  # fov spans the larger (horizontal) dimension
    front = d[..., 2] < 0
    x = np.where(front, d[..., 0] / -d[..., 2], 9) / tx
    y = np.where(front, d[..., 1] / -d[..., 2], 9) / ty
    inner = front & (np.abs(x) < 0.85) & (np.abs(y) < 0.85)  # keep away from the frame edge (fill blending)
    assert inner.sum() > 1000
    col = np.round((x[inner] + 1) / 2 * 640 - 0.5).astype(int)
    row = np.round((1 - y[inner]) / 2 * 480 - 0.5).astype(int)
    expected = plate[row, col]
    np.testing.assert_allclose(env.radiance[inner], expected, atol=0.02)
    # the frustum is centred: the central panorama pixel sees the plate's centre
    np.testing.assert_allclose(env.radiance[127:129, 255:257].mean(axis=(0, 1)),
                               plate[238:242, 318:322].mean(axis=(0, 1)), atol=0.02)


def test_finite_positive_and_seamless():
    rng = np.random.default_rng(0)
    plate = rng.random((270, 480, 3)).astype(np.float32)
    plate[10:20, 10:20] = np.nan
    plate[30:40, 30:40] = np.inf
    plate[50:60, 50:60] = -1.0
    env = background_light.estimate_environment(plate, 40.0, height=128)
    rad = env.radiance
    assert np.all(np.isfinite(rad)) and rad.min() >= 0.0
    # wrap-around: the jump across the left/right seam is no larger than between neighbouring columns elsewhere
    seam_jump = np.abs(rad[:, 0] - rad[:, -1]).max()
    neighbour_jump = np.abs(np.diff(rad[:, :64], axis=1)).max()
    assert seam_jump <= neighbour_jump + 1e-6
    # and the fill varies smoothly away from the frustum (no holes: nothing black)
    assert rad.mean(axis=-1).min() > 0.05


def test_brighter_left_plate_lights_left_facing_normals_more():
    x = np.linspace(0.0, 1.0, 960, dtype=np.float32)
    plate = np.broadcast_to((0.7 - 0.6 * x)[None, :, None], (540, 960, 3)).copy()
    env = background_light.estimate_environment(plate, 50.0)
    pre = lightmaps.prefilter(env)
    n = np.array([[[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]], np.float32)  # camera -X (left), +X (right)
    maps = lightmaps.light_maps(pre, n, -n)
    left, right = maps.diffuse[0, 0].mean(), maps.diffuse[0, 1].mean()
    assert left > 1.03 * right, (left, right)
    # and mirrored plate -> mirrored result
    env_m = background_light.estimate_environment(plate[:, ::-1].copy(), 50.0)
    maps_m = lightmaps.light_maps(lightmaps.prefilter(env_m), n, -n)
    np.testing.assert_allclose(maps_m.diffuse[0, ::-1], maps.diffuse[0], rtol=1e-3)


def test_v1_clipped_highlights_become_light_sources():
    plate = np.full((300, 400, 3), 0.2, np.float32)
    plate[20:80, 150:250] = 1.0  # a clipped window in an 8-bit-like plate
    env = panorama_v1.estimate_environment_v1(plate, 60.0, height=128)
    assert env.radiance.max() > 0.5 * panorama_v1.HIGHLIGHT_GAIN
    np.testing.assert_allclose(np.median(env.radiance[60:68, 120:136]), 0.2, atol=0.01)  # unclipped: unchanged
    # a scene-referred plate (already HDR) is not expanded again
    hdr = plate * 8.0
    env_hdr = panorama_v1.estimate_environment_v1(hdr, 60.0, height=128)
    assert env_hdr.radiance.max() <= 8.0 + 1e-4


def test_v1_sky_and_ground_colours_extrapolate():
    plate = np.zeros((200, 300, 3), np.float32)
    plate[:100] = (0.2, 0.3, 0.6)  # blue sky above
    plate[100:] = (0.3, 0.2, 0.1)  # brown ground below
    env = panorama_v1.estimate_environment_v1(plate, 40.0, height=128)
    zenith = env.radiance[2].mean(axis=0)
    nadir = env.radiance[-3].mean(axis=0)
    behind = env.radiance[40, 0]  # above the horizon, behind the camera
    np.testing.assert_allclose(zenith, (0.2, 0.3, 0.6), atol=0.02)
    np.testing.assert_allclose(nadir, (0.3, 0.2, 0.1), atol=0.02)
    assert behind[2] > behind[0]


def test_a_black_background_is_no_light_source_but_a_dark_one_is():
    import pytest

    from portrait_relight.inference.errors import RelightInputError
    from portrait_relight.inference.lighting.sources import resolve_lighting

    with pytest.raises(RelightInputError, match="background image is black"):
        resolve_lighting(background=np.zeros((30, 40, 3), np.float32))
    night = np.zeros((30, 40, 3), np.float32)
    night[5, 7] = 0.02  # one distant street light
    lighting = resolve_lighting(background=night)
    assert lighting.environment.radiance.max() > 0.0
