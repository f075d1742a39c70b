"""The learned shading stage (`--shading learned`): its camera rays and box placement against references, the
pass identity, and what users check first: a key light from the left, then from the right, flips the brighter
side of the face on real portraits."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from portrait_relight.inference import pipeline
from portrait_relight.inference.io.imageio import read_plate
from portrait_relight.inference.lighting.camera import camera_rays
from portrait_relight.inference.lighting.environment import Environment, pixel_directions
from portrait_relight.inference.settings import RelightSettings
from portrait_relight.inference.stages import geometry, lightmaps, matting
from portrait_relight.inference.stages.normals_net import SubjectCrop
from portrait_relight.inference.stages.shading_net import RATIO_RANGE, crop_rays, predict_shading

LEARNED = RelightSettings(normals="classical", albedo="classical", shading="learned")  # the shading net alone
ALL_LEARNED = RelightSettings(normals="learned", albedo="learned", shading="learned")


def key_light(azimuth_deg: float, ambient: float = 0.03, key: float = 40.0) -> Environment:
    """A dim grey surround and one 12-degree disc light at `azimuth_deg` (positive: to the camera's right,
    +X), 10 degrees up, in the camera frame."""
    centred = Environment.centred(np.zeros((64, 128, 3), np.float32))
    directions = pixel_directions(64, 128) @ centred.cam_to_env  # panorama pixels in the camera frame
    azimuth, elevation = math.radians(azimuth_deg), math.radians(10.0)
    towards = np.array([math.sin(azimuth) * math.cos(elevation), math.sin(elevation),
                        -math.cos(azimuth) * math.cos(elevation)])
    radiance = np.where((directions @ towards > math.cos(math.radians(12.0)))[..., None], key, ambient)
    return Environment(np.ascontiguousarray(np.broadcast_to(radiance, (64, 128, 3)), np.float32),
                       centred.cam_to_env)


def test_crop_rays_are_the_frames_rays():
    """On a window inside the frame at its own size, the crop's rays are camera_rays' (the brute reference)."""
    width, height, fov = 96, 64, 40.0
    crop = SubjectCrop(10, 30, 40)
    reference = camera_rays(width, height, fov, (slice(10, 50), slice(30, 70)))
    np.testing.assert_allclose(crop_rays(width, height, fov, crop, 40), reference, atol=1e-6)
    half = crop_rays(width, height, fov, crop, 20)  # a 2x coarser grid: centres of 2x2 blocks
    coarse = reference.reshape(20, 2, 20, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(half, coarse / np.linalg.norm(coarse, axis=-1, keepdims=True), atol=1e-4)


def test_a_box_of_the_frame_gives_the_frames_shading(astronaut_subject):
    """The pipeline runs the stage on the subject's box: given the box, the frame's size and the box's offset, the
    ratio and weights must be those of the whole frame."""
    plate, matte, shape = astronaut_subject
    prefiltered = lightmaps.prefilter(key_light(-60.0))
    whole = predict_shading(matte.foreground, matte.alpha, shape.normal, matte.foreground, prefiltered, 40.0, LEARNED)
    box = pipeline.subject_box(matte.alpha)
    height, width = matte.alpha.shape
    part = predict_shading(matte.foreground[box], matte.alpha[box], shape.normal[box], matte.foreground[box],
                           prefiltered, 40.0, LEARNED, frame_size=(width, height), offset=(box[0].start, box[1].start))
    inside = matte.alpha[box] > 0
    for full, boxed in zip(whole, part):
        np.testing.assert_allclose(boxed[inside], full[box][inside], atol=1e-4)
    ratio, weights = whole
    assert ratio.min() >= math.exp(RATIO_RANGE[0]) - 1e-6 and ratio.max() <= math.exp(RATIO_RANGE[1]) + 1e-5
    assert weights.min() >= 0.0 and weights.shape == matte.alpha.shape + (4,)


def test_the_pass_identity_holds_and_the_shading_is_the_nets(astronaut_subject):
    plate, matte, shape = astronaut_subject
    environment = key_light(45.0)
    learned = pipeline.relight(plate, environment, LEARNED).passes
    classical = pipeline.relight(plate, environment, replace(LEARNED, shading="classical")).passes
    inside = learned["alpha"] > 0
    composed = learned["albedo"] * learned["diffuse"] + learned["specular"]
    np.testing.assert_allclose(learned["relit"][..., :3][inside], composed[inside], atol=1e-4)
    np.testing.assert_allclose(learned["albedo"], classical["albedo"], atol=1e-6)  # only the shading changed
    assert np.abs(learned["diffuse"] - classical["diffuse"])[inside].mean() > 1e-3
    assert np.all(learned["specular"][~inside] == 0) and learned["specular"].min() >= 0.0
    # a zero specular strength removes the learned specular too (the slider users have)
    dull = pipeline.relight(plate, environment, replace(LEARNED, specular_strength=0.0)).passes
    assert np.abs(dull["specular"]).max() == 0.0


def brighter_side(relit: np.ndarray, face_mask: np.ndarray) -> float:
    """(right half - left half) / both of the face's mean relit luminance; the halves split at the face's centre."""
    luminance = relit[..., :3] @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    face = face_mask > 0.5
    columns = np.nonzero(face)[1]
    centre = np.median(columns)
    right = luminance[face & (np.arange(face.shape[1]) > centre)[None, :]].mean()
    left = luminance[face & (np.arange(face.shape[1]) < centre)[None, :]].mean()
    return float((right - left) / (right + left))


@pytest.mark.parametrize("name", ["001.jpg", "028.jpg", "065.jpg"])
def test_a_key_light_from_either_side_flips_the_brighter_side(shared_dir, name):
    plate = read_plate(shared_dir / "data" / "portraits" / name)
    shape_settings = RelightSettings()
    matte = matting.estimate_matte(plate, shape_settings)
    face_mask = geometry.estimate_normals(plate, matte.alpha, shape_settings).face_mask
    from_left = pipeline.relight(plate, key_light(-70.0), ALL_LEARNED).passes["relit"]
    from_right = pipeline.relight(plate, key_light(70.0), ALL_LEARNED).passes["relit"]
    left_side, right_side = brighter_side(from_left, face_mask), brighter_side(from_right, face_mask)
    assert left_side < -0.1 and right_side > 0.1, (left_side, right_side)


def test_a_warm_light_tints_the_subject_as_it_tints_the_backdrop(astronaut_subject):
    """The same light, neutral and then warm (same luminance), through the default path (all three nets): per
    channel, the relit face must gain what the backdrop gains (the nets may shade, not re-colour the light). The
    gains are compared, not the relit chromaticities: a skin-coloured face's normalised chromaticity moves less
    than a grey backdrop's under the very same light, even with shading that is exactly linear in the light."""
    plate, _, shape = astronaut_subject
    tint = np.array([1.3, 1.0, 0.7], np.float32)
    tint /= tint @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    neutral = key_light(30.0, ambient=0.3, key=10.0)
    warm = Environment(neutral.radiance * tint, neutral.cam_to_env)
    face = shape.face_mask > 0.5
    means = {}
    for name, environment in (("neutral", neutral), ("warm", warm)):
        relit = pipeline.relight(plate, environment, ALL_LEARNED).passes["relit"][..., :3]
        means[name] = relit[face].mean(axis=0), environment.view(64, 64, 40.0).reshape(-1, 3).mean(axis=0)
    subject_gain, backdrop_gain = (means["warm"][i] / means["neutral"][i] for i in (0, 1))
    subject_gain, backdrop_gain = subject_gain / subject_gain.sum(), backdrop_gain / backdrop_gain.sum()
    departure = np.abs(backdrop_gain - 1.0 / 3.0).sum()  # how far the tint is from neutral
    assert np.abs(subject_gain - backdrop_gain).sum() < 0.1 * departure, (subject_gain, backdrop_gain)
