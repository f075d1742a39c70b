"""The composite's default backdrop (Environment.view) against looking up every pixel's camera ray."""

from __future__ import annotations

import numpy as np
import pytest

from portrait_relight.inference.io.imageio import read_hdri
from portrait_relight.inference.lighting.camera import camera_rays
from portrait_relight.inference.lighting.environment import Environment


def exact_view(environment: Environment, width: int, height: int, fov: float) -> np.ndarray:
    return environment.sample(camera_rays(width, height, fov))


@pytest.mark.parametrize("name, rotation, fov", [("venice_sunset_1k.hdr", 37.0, 40.0),
                                                 ("venice_sunset_1k.hdr", 200.0, 25.0)])
def test_view_matches_per_pixel_lookup_on_a_real_hdri(shared_dir, name, rotation, fov):
    environment = Environment.centred(read_hdri(shared_dir / "data" / "hdri" / name), rotation)
    width, height = 1920, 1080
    fast, exact = environment.view(width, height, fov), exact_view(environment, width, height, fov)
    assert fast.shape == exact.shape == (height, width, 3) and fast.dtype == np.float32
    relative = np.abs(fast - exact).mean() / exact.mean()
    assert relative < 0.01, relative
    # no shift: the brightest-column profile lines up to within a pixel
    profile_fast, profile_exact = fast.mean(axis=(0, 2)), exact.mean(axis=(0, 2))
    lag = np.argmax(np.correlate(profile_fast - profile_fast.mean(), profile_exact - profile_exact.mean(), "full"))
    assert abs(lag - (width - 1)) <= 1


def test_sharp_edge_stays_in_place():
    """A panorama split into a black and a white half: the edge column of the view is where the rays cross it."""
    radiance = np.zeros((256, 512, 3), np.float32)
    radiance[:, 256 + 10:] = 1.0  # a vertical edge a little right of the centre column
    environment = Environment.centred(radiance)
    width, height, fov = 1280, 720, 30.0
    fast, exact = environment.view(width, height, fov), exact_view(environment, width, height, fov)
    edge_fast = np.argmax(fast[height // 2, :, 0] > 0.5)
    edge_exact = np.argmax(exact[height // 2, :, 0] > 0.5)
    assert 0 < edge_exact < width and abs(int(edge_fast) - int(edge_exact)) <= 1


def test_coarse_camera_looks_up_every_pixel():
    """A small frame (fewer pixels per radian than the panorama) is the exact per-pixel lookup."""
    rng = np.random.default_rng(3)
    environment = Environment.centred(rng.random((512, 1024, 3), np.float32), 15.0)
    np.testing.assert_array_equal(environment.view(96, 64, 60.0), exact_view(environment, 96, 64, 60.0))
