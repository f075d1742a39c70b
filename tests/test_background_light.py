"""Light from a background photo (v2, inference/lighting/background_light.py) and its calibration
(evaluation/panorama_calibration.py): known suns, bad backgrounds, stability, the fit itself."""

from __future__ import annotations

import math

import numpy as np
import pytest

from portrait_relight.evaluation import panorama_figures as figures
from portrait_relight.evaluation.panorama_calibration import (
    CalibrationCrop,
    fit_gains,
    held_out_gains,
    irradiance_sh9,
)
from portrait_relight.evaluation.panorama_v1 import estimate_environment_v1
from portrait_relight.inference.errors import RelightInputError
from portrait_relight.inference.io.imageio import read_plate
from portrait_relight.inference.lighting import background_light
from portrait_relight.inference.lighting.environment import CAMERA_TO_CENTRED_PANORAMA, Environment, pixel_directions
from portrait_relight.inference.lighting.sources import resolve_lighting
from portrait_relight.inference.stages.albedo import sh_basis

SKY, GROUND = (0.35, 0.45, 0.6), (0.25, 0.22, 0.2)
SUN_RADIUS_DEG = 2.0


def sunny_panorama(sun_camera: tuple[float, float, float], colour=(1.0, 0.8, 0.6), strength: float = 5.0,
                   height: int = 256) -> np.ndarray:
    """Centred equirect: blue sky, brown ground, and a sun disc at the camera-frame direction `sun_camera`
    whose irradiance is `strength` x the sky's."""
    q = pixel_directions(height, 2 * height)
    radiance = np.where(q[..., 2:] > 0, np.array(SKY), np.array(GROUND)).astype(np.float32)
    axis = CAMERA_TO_CENTRED_PANORAMA @ (np.asarray(sun_camera) / np.linalg.norm(sun_camera))
    disc = q @ axis > math.cos(math.radians(SUN_RADIUS_DEG))
    omega = 2.0 * math.pi * (1.0 - math.cos(math.radians(SUN_RADIUS_DEG)))
    radiance[disc] = np.array(colour) * strength * math.pi * float(np.mean(SKY)) / omega
    return radiance


@pytest.mark.parametrize("sun", [(0.3, 0.35, -1.0), (0.9, 0.5, -0.2), (0.0, 0.6, 1.0)],
                         ids=["in view", "beyond the right edge", "behind the camera"])
def test_a_known_sun_lights_the_sphere_better_than_v1_and_grey(sun):
    """A warm sun (5x the sky's irradiance) over a blue sky and brown ground, photographed at 60 degrees. The
    diffuse light's shape beats both baselines wherever the sun is; its direction stays within 60 degrees (the
    issue's 15 is not reached: a clipped sun's strength is unknown, see background_light's docstring)."""
    crop = figures.background_crop(sunny_panorama(sun), 0.0, 0.0, 60.0)
    estimate = background_light.estimate_environment(crop.background, 60.0)
    v2 = figures.panorama_figures(estimate, crop.truth)
    v1 = figures.panorama_figures(estimate_environment_v1(crop.background, 60.0), crop.truth)
    grey = figures.panorama_figures(figures.grey_environment(crop.background), crop.truth)
    assert v2["irradiance_error_scaled"] < min(v1["irradiance_error_scaled"], grey["irradiance_error_scaled"]) - 0.03
    assert v2["direction_error_deg"] < 60.0
    assert v2["chroma_error_deg"] < 6.0  # a warm sun over a blue sky: the light stays near its true colour
    moment, _ = figures.mean_direction(figures.irradiance_probe(estimate))
    assert moment[1] > 0.3 * np.linalg.norm(moment)  # the light comes from above
    if sun[2] < 0:  # in front: the light leans toward the sun's side, as the photo's brighter side says
        assert moment[0] > 0


def test_the_estimate_is_the_plate_plus_gained_components():
    rng = np.random.default_rng(3)
    plate = rng.uniform(0.05, 1.0, (90, 160, 3)).astype(np.float32)
    env = background_light.estimate_environment(plate, 50.0, height=64)
    projected, parts = background_light.light_components(plate, 50.0, 64)
    expected = projected + sum(background_light.GAINS[k] * parts[k] for k in background_light.COMPONENTS)
    np.testing.assert_allclose(env.radiance, expected, rtol=1e-5, atol=1e-7)
    doubled = background_light.estimate_environment(plate, 50.0, height=64,
                                                    gains={k: 2 * g for k, g in background_light.GAINS.items()})
    np.testing.assert_allclose(doubled.radiance - projected, 2 * (expected - projected), rtol=1e-4, atol=1e-6)


def test_irradiance_harmonics_match_the_products_diffuse_light_map():
    """Order-2 harmonics of a smooth sky, evaluated at normals, against the product's exact prefilter (frames and
    normalisation must agree; a smooth panorama's irradiance is ~all in orders 0-2)."""
    q = pixel_directions(64, 128)
    radiance = (0.2 + np.maximum(q @ np.array([0.3, -0.5, 0.8]), 0.0)[..., None] ** 2
                * np.array([1.0, 0.7, 0.4])).astype(np.float32)
    env = Environment(radiance, CAMERA_TO_CENTRED_PANORAMA @ np.array([[0, 0, 1.0], [0, 1, 0], [-1, 0, 0]]))
    probe = figures.irradiance_probe(env, height=16)
    coefficients = irradiance_sh9(env).reshape(9, 3)
    from_harmonics = sh_basis(probe.normals) @ coefficients / math.pi  # the light map is irradiance / pi
    error = np.linalg.norm(from_harmonics - probe.irradiance) / np.linalg.norm(probe.irradiance)
    assert error < 0.03, error


def synthetic_crops(gains: dict[str, np.ndarray], rng) -> list[CalibrationCrop]:
    crops = []
    for hdri, g in gains.items():
        for _ in range(6):
            components = rng.uniform(0.0, 1.0, (27, len(background_light.COMPONENTS)))
            visible = rng.uniform(0.0, 0.5, 27)
            crops.append(CalibrationCrop(hdri, visible + components @ g, visible, components))
    return crops


def test_fit_recovers_known_gains_and_folds_hold_their_hdri_out():
    rng = np.random.default_rng(0)
    true = np.array([0.2, 0.0, 0.6, 1.3, 0.9])
    odd = np.array([2.0, 2.0, 2.0, 2.0, 2.0])
    crops = synthetic_crops({"a": true, "b": true, "c": odd}, rng)
    folds = held_out_gains(crops)
    np.testing.assert_allclose([folds["c"][k] for k in background_light.COMPONENTS], true, atol=1e-3)
    assert folds["a"] != folds["c"]  # the fold for "a" saw the odd HDRI "c"
    assert fit_gains([c for c in crops if c.hdri == "c"]) == dict.fromkeys(background_light.COMPONENTS, 2.0)


def uniform_diffuse(environment: Environment) -> np.ndarray:
    return figures.irradiance_probe(environment, height=8).irradiance


@pytest.mark.parametrize("kind", ["tiny", "uniform grey", "HDR EXR", "16-bit PNG"])
def test_bad_backgrounds_give_sane_light(kind, tmp_path):
    import OpenEXR

    from portrait_relight.inference.io.imageio import srgb_to_linear

    rng = np.random.default_rng(1)
    scene = srgb_to_linear(rng.uniform(0.1, 0.9, (120, 160, 3))).astype(np.float32)
    if kind == "tiny":
        background = scene[:1, :1]
    elif kind == "uniform grey":
        background = np.full((120, 160, 3), 0.18, np.float32)
    elif kind == "HDR EXR":
        path = tmp_path / "sky.exr"
        hdr = scene * 4.0
        hdr[10:14, 70:74] = 5000.0  # a real sun, not clipped
        OpenEXR.File({"type": OpenEXR.scanlineimage}, {"RGB": hdr}).write(str(path))
        background = read_plate(str(path))
    else:
        import png  # pypng (development requirement): an encoder independent of the reader

        path = tmp_path / "plate16.png"
        encoded = np.round(np.clip(scene, 0.0, 1.0) ** (1 / 2.2) * 65535).astype(np.uint16)
        with open(path, "wb") as f:
            png.Writer(160, 120, greyscale=False, bitdepth=16).write(f, encoded.reshape(120, -1).tolist())
        background = read_plate(str(path))
    environment = resolve_lighting(background=background).environment
    diffuse = uniform_diffuse(environment)
    assert np.all(np.isfinite(environment.radiance)) and environment.radiance.min() >= 0.0
    level = float(np.mean(background))
    # the light is as bright as the photo says, give or take what the sky ring and highlights add
    assert 0.2 * level < float(diffuse.mean()) < 5.0 * level, (kind, diffuse.mean(), level)
    if kind == "uniform grey":
        np.testing.assert_allclose(diffuse.std(axis=0) / diffuse.mean(axis=0), 0.0, atol=0.6)
        chroma = diffuse.mean(axis=0)
        assert np.ptp(chroma) / chroma.mean() < 1e-3  # grey in, grey light out
    if kind == "HDR EXR":  # scene-referred: its sun keeps its own radiance, no highlight gain on top
        assert environment.radiance.max() <= 5000.0 * 1.001


def test_a_black_background_is_refused_by_name(tmp_path):
    with pytest.raises(RelightInputError, match="background image is black"):
        resolve_lighting(background=np.zeros((20, 30, 3), np.float32))


def test_no_flicker_over_a_noisy_jittered_background_sequence():
    """A still background filmed for 12 frames (fresh sensor noise, 1-px jitter): the estimated light's diffuse
    irradiance varies far less from frame to frame than the pixels do."""
    rng = np.random.default_rng(5)
    crop = figures.background_crop(sunny_panorama((0.9, 0.5, -0.2)), 20.0, 5.0, 55.0, size=(244, 324))
    frames, lights = [], []
    for _ in range(12):
        dy, dx = rng.integers(0, 2, 2)
        frame = crop.background[2 + dy: 242 + dy, 2 + dx: 322 + dx]
        frame = np.clip(frame + rng.normal(0.0, 0.01, frame.shape), 0.0, 1.0).astype(np.float32)
        frames.append(frame)
        lights.append(uniform_diffuse(background_light.estimate_environment(frame, 55.0, height=64)))
    pixel_variation = np.std(frames, axis=0).mean() / np.mean(frames)
    light_variation = np.std(lights, axis=0).mean() / np.mean(lights)
    assert light_variation < 0.25 * pixel_variation, (light_variation, pixel_variation)
