"""The panorama figures against cases with known answers: a uniform sphere, one small light in a known direction,
a known colour cast and exposure, and crops whose camera orientation can be checked by colour."""

from __future__ import annotations

import math

import numpy as np
import pytest

from portrait_relight.evaluation import panorama_figures as figures
from portrait_relight.inference.io.imageio import integer_srgb_to_linear, linear_to_srgb
from portrait_relight.inference.lighting.environment import CAMERA_TO_CENTRED_PANORAMA, Environment, pixel_directions

HEIGHT = 64


def uniform(colour) -> Environment:
    return Environment(np.broadcast_to(np.float32(colour), (HEIGHT, 2 * HEIGHT, 3)).copy(),
                       CAMERA_TO_CENTRED_PANORAMA.copy())


def small_light(camera_direction, ambient: float = 0.05, strength: float = 3000.0) -> Environment:
    """A ~3 degree light toward a camera-frame direction over a dim uniform sphere."""
    env_direction = CAMERA_TO_CENTRED_PANORAMA @ np.asarray(camera_direction, np.float64)
    env_direction /= np.linalg.norm(env_direction)
    radiance = np.full((HEIGHT * 2, HEIGHT * 4, 3), ambient, np.float32)
    near = pixel_directions(HEIGHT * 2, HEIGHT * 4) @ env_direction > math.cos(math.radians(3.0))
    radiance[near] = strength
    return Environment(radiance, CAMERA_TO_CENTRED_PANORAMA.copy())


def test_uniform_sphere_gives_itself_back_and_exposure_is_factored_out():
    probe = figures.irradiance_probe(uniform((0.3, 0.5, 0.7)))
    np.testing.assert_allclose(probe.irradiance, np.tile([0.3, 0.5, 0.7], (probe.irradiance.shape[0], 1)),
                               rtol=1e-3)
    assert probe.solid_angles.sum() == pytest.approx(4 * math.pi)
    same = figures.panorama_figures(uniform((0.3, 0.5, 0.7)), uniform((0.3, 0.5, 0.7)))
    assert same["irradiance_error"] < 1e-6 and same["chroma_error_deg"] < 1e-3
    brighter = figures.panorama_figures(uniform((0.9, 1.5, 2.1)), uniform((0.3, 0.5, 0.7)))
    assert brighter["irradiance_error"] == pytest.approx(2.0, rel=1e-3)
    assert brighter["irradiance_error_scaled"] < 1e-6
    assert brighter["directionality"] < 1e-3  # nothing to point at


def test_mean_direction_points_at_a_small_light_and_measures_its_turn():
    toward = np.array([math.sin(math.radians(40)), 0.3, -math.cos(math.radians(40))])
    truth = small_light(toward)
    moment, directionality = figures.mean_direction(figures.irradiance_probe(truth))
    assert figures._angle_deg(moment, toward) < 2.0
    assert directionality > 0.3
    turned = np.array([[math.cos(math.radians(30)), 0, math.sin(math.radians(30))], [0, 1, 0],
                       [-math.sin(math.radians(30)), 0, math.cos(math.radians(30))]]) @ toward
    result = figures.panorama_figures(small_light(turned), truth)
    assert result["direction_error_deg"] == pytest.approx(30.0, abs=2.0)
    assert result["irradiance_error_scaled"] > 0.2  # the light is somewhere else: no scale fixes that


def test_chroma_error_is_the_angle_of_the_colour_cast():
    truth = small_light((0.0, 1.0, 0.0))
    cast = Environment(truth.radiance * np.float32([1.0, 1.0, 0.5]), truth.cam_to_env)
    result = figures.panorama_figures(cast, truth)
    mean = figures.irradiance_probe(truth)
    mean_rgb = mean.solid_angles @ mean.irradiance
    assert result["chroma_error_deg"] == pytest.approx(figures._angle_deg(mean_rgb * [1, 1, 0.5], mean_rgb),
                                                       abs=1e-3)
    assert result["chroma_error_deg"] > 5.0 and result["direction_error_deg"] < 1.0


def two_tone(height: int = 64) -> np.ndarray:
    """Upper hemisphere red, lower blue, and a green band around azimuth 90 degrees left of the centre."""
    radiance = np.zeros((height, 2 * height, 3), np.float32)
    radiance[: height // 2, :, 0] = 1.0
    radiance[height // 2 :, :, 2] = 1.0
    radiance[height // 2 - 4 : height // 2 + 4, height // 2 - 4 : height // 2 + 4] = (0.0, 1.0, 0.0)
    return radiance


@pytest.mark.parametrize("pitch, channel", [(60.0, 0), (-60.0, 2)])
def test_crop_pitch_looks_up_and_down(pitch, channel):
    crop = figures.background_crop(two_tone(), yaw_deg=0.0, pitch_deg=pitch, fov_deg=30.0)
    assert crop.background.shape == figures.CROP_SIZE + (3,)
    assert np.argmax(crop.background.mean(axis=(0, 1))) == channel


def test_crop_yaw_matches_the_products_hdri_rotation_and_truth_reproduces_the_photo():
    radiance = two_tone()
    crop = figures.background_crop(radiance, yaw_deg=90.0, pitch_deg=0.0, fov_deg=30.0)
    product = Environment.centred(radiance, rotation_deg=90.0)  # --hdri-rotation 90
    np.testing.assert_allclose(crop.truth.cam_to_env, product.cam_to_env, atol=1e-12)
    height, width = figures.CROP_SIZE
    view = crop.truth.view(width, height, 30.0)
    again = integer_srgb_to_linear(np.round(np.clip(linear_to_srgb(np.clip(view, 0, 1)), 0, 1) * 255).astype(np.uint8))
    np.testing.assert_allclose(again, crop.background, atol=1e-6)
    assert float((crop.background @ figures._LUMA).mean()) == pytest.approx(figures.CAMERA_MEAN_LUMINANCE, rel=0.05)


def test_grey_environment_is_as_bright_as_the_photo():
    background = np.random.default_rng(0).random((10, 12, 3)).astype(np.float32)
    grey = figures.grey_environment(background)
    assert np.allclose(grey.radiance, float((background @ figures._LUMA).mean()))
