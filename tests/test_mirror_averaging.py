"""The learned nets answer for the plate and its mirror image, averaged (normals_net.mirror_averaged): through each
stage, a mirrored subject gets exactly the mirrored passes (a normal's X changes sign), which a wrong channel in
the mirror would break, and the average is of the two runs, not the plain one."""

from __future__ import annotations

import numpy as np

from portrait_relight.inference.lighting.environment import Environment, pixel_directions
from portrait_relight.inference.models.registry import GEOMETRY_NET
from portrait_relight.inference.models.session import load_model
from portrait_relight.inference.settings import RelightSettings
from portrait_relight.inference.stages import lightmaps, normals_net
from portrait_relight.inference.stages.albedo_net import estimate_albedo_learned
from portrait_relight.inference.stages.shading_net import predict_shading

SETTINGS = RelightSettings()


def mirrored(image: np.ndarray, x_channel: int | None = None) -> np.ndarray:
    """Left-right mirror of an (H, W, ...) array; `x_channel` changes sign (a normal's X)."""
    image = np.ascontiguousarray(image[:, ::-1])
    if x_channel is not None:
        image[..., x_channel] *= -1.0
    return image


def test_the_average_is_of_the_plate_and_its_mirror(monkeypatch):
    model = load_model(GEOMETRY_NET, SETTINGS)
    x = np.random.default_rng(3).random((1, 4, 64, 64)).astype(np.float32)
    averaged = normals_net.mirror_averaged(model, x, output_x=0)
    monkeypatch.setattr(normals_net, "MIRROR_AVERAGE", False)
    plain = normals_net.mirror_averaged(model, x, output_x=0)
    np.testing.assert_array_equal(plain, model.run(x)[model.outputs[0]])
    of_mirror = model.run(np.ascontiguousarray(x[..., ::-1]))[model.outputs[0]][..., ::-1] * np.array(
        [-1, 1, 1], np.float32)[None, :, None, None]
    np.testing.assert_allclose(averaged, 0.5 * (plain + of_mirror), atol=1e-6)
    assert np.abs(averaged - plain).max() > 1e-3


def relative_difference(a: np.ndarray, b: np.ndarray, inside: np.ndarray) -> float:
    return float(np.abs(a - b)[inside].mean() / np.abs(b)[inside].mean())


def test_mirrored_normals_albedo_and_shading(astronaut_subject):
    """Exact up to the resize to the working size, which is not quite mirror-symmetric (Pillow's filter taps): the
    mean difference is ~1e-4 of the pass; without the average it is 2-6 %, and with the mirror applied to the wrong
    input channel 1.4-4 %."""
    plate, matte, shape = astronaut_subject
    alpha, foreground = matte.alpha, matte.foreground
    inside = alpha > 0
    normals = normals_net.estimate_normals_learned(plate, alpha, SETTINGS)
    assert relative_difference(normals_net.estimate_normals_learned(mirrored(plate), mirrored(alpha), SETTINGS),
                               mirrored(normals, 0), inside) < 2e-3

    albedo = estimate_albedo_learned(foreground, alpha, normals, shape.face_mask, SETTINGS)
    assert relative_difference(estimate_albedo_learned(mirrored(foreground), mirrored(alpha), mirrored(normals, 0),
                                                       mirrored(shape.face_mask), SETTINGS), mirrored(albedo),
                               inside) < 2e-3

    # a sky that changes with elevation only is its own mirror image
    centred = Environment.centred(np.zeros((32, 64, 3), np.float32))
    up = (pixel_directions(32, 64) @ centred.cam_to_env)[..., 1:2]
    sky = Environment(np.ascontiguousarray(np.repeat(0.2 + 2.0 * np.maximum(up, 0.0), 3, -1), np.float32),
                      centred.cam_to_env)
    prefiltered = lightmaps.prefilter(sky)
    ratio, weights = predict_shading(foreground, alpha, normals, albedo, prefiltered, 40.0, SETTINGS)
    ratio_m, weights_m = predict_shading(mirrored(foreground), mirrored(alpha), mirrored(normals, 0),
                                         mirrored(albedo), prefiltered, 40.0, SETTINGS)
    assert relative_difference(ratio_m, mirrored(ratio), inside) < 2e-3
    assert relative_difference(weights_m, mirrored(weights), inside) < 2e-3
