"""The learned albedo stage (`--albedo learned`): its output contract, the pass identity, and what taking the
source light off must do: a coloured light's cast and the plate's exposure leave the albedo."""

from __future__ import annotations

from dataclasses import replace

import albedo_exposure  # noqa: E402  (tools/ is on the test path)
import numpy as np
import pytest

from portrait_relight.inference import pipeline
from portrait_relight.inference.lighting.environment import Environment
from portrait_relight.inference.settings import RelightSettings
from portrait_relight.inference.stages import albedo_net
from portrait_relight.inference.stages.albedo import LUMINANCE_WEIGHTS
from portrait_relight.inference.stages.albedo_net import estimate_albedo_learned

# the albedo net alone, beside v1's other stages: the pipeline's albedo pass is then this very stage's output
LEARNED = RelightSettings(normals="classical", albedo="learned", shading="classical")


def test_the_output_contract_and_the_pass_identity(astronaut_subject):
    plate, matte, shape = astronaut_subject
    albedo = estimate_albedo_learned(matte.foreground, matte.alpha, shape.normal, shape.face_mask, LEARNED)
    inside = matte.alpha > 0
    assert albedo.shape == plate.shape and albedo.dtype == np.float32
    assert np.isfinite(albedo).all() and albedo.min() >= 0.0 and albedo.max() <= 1.0
    assert np.all(albedo[~inside] == 0.0) and albedo[inside].mean() > 0.05
    environment = Environment.centred(np.full((16, 32, 3), 0.5, np.float32))
    passes = pipeline.relight(plate, environment, LEARNED).passes
    np.testing.assert_allclose(passes["albedo"], albedo, atol=1e-6)  # the pipeline runs this very stage
    composed = passes["albedo"] * passes["diffuse"] + passes["specular"]
    np.testing.assert_allclose(passes["relit"][..., :3][inside], composed[inside], atol=1e-4)
    classical = pipeline.relight(plate, environment, replace(LEARNED, albedo="classical")).passes["albedo"]
    assert np.abs(classical - albedo)[inside].mean() > 0.01  # a different stage, not the classical one again


def face_chroma(albedo: np.ndarray, face_mask: np.ndarray) -> np.ndarray:
    mean = albedo[face_mask > 0.5].mean(axis=0)
    return mean / mean.sum()


def test_a_coloured_light_leaves_the_albedo_and_the_exposure_stays(astronaut_subject):
    """The same portrait under a warm light (the foreground times a warm tint) and half a stop down: most of the
    tint's colour must leave the face's albedo (a classical white-light fit keeps all of it), while the exposure
    stays in it, by the stage's convention (median face shading FACE_SHADING: a dark plate, or dark skin, gives a
    dark albedo rather than being brightened to an average)."""
    _, matte, shape = astronaut_subject
    tint = np.array([1.25, 1.0, 0.7], np.float32)

    def albedo_of(light: np.ndarray) -> np.ndarray:  # the foreground as that light would have lit it
        return estimate_albedo_learned(matte.foreground * light, matte.alpha, shape.normal, shape.face_mask, LEARNED)

    neutral = albedo_of(np.ones(3, np.float32))
    warm = albedo_of(tint)
    dim = albedo_of(np.full(3, 0.7, np.float32))
    plate_shift = np.abs(face_chroma(matte.foreground * tint, shape.face_mask)
                         - face_chroma(matte.foreground, shape.face_mask)).sum()
    albedo_shift = np.abs(face_chroma(warm, shape.face_mask) - face_chroma(neutral, shape.face_mask)).sum()
    assert albedo_shift < 0.6 * plate_shift, (albedo_shift, plate_shift)
    face = shape.face_mask > 0.5
    assert dim[face].mean() / neutral[face].mean() == pytest.approx(0.7, abs=0.05)


def test_the_albedo_level_is_set_by_the_face_median_shading(astronaut_subject, monkeypatch):
    """The convention that sets the albedo's level: on the face, the shading the stage divided out (the foreground
    over the albedo, per channel) has median luminance FACE_SHADING; the shipped constant scales the albedo
    exactly (a large constant first, so that nothing clips at 1)."""
    _, matte, shape = astronaut_subject
    face = (matte.alpha > 0.9) & (shape.face_mask > 0.5)
    shipped = estimate_albedo_learned(matte.foreground, matte.alpha, shape.normal, shape.face_mask, LEARNED)
    shipped_constant = albedo_net.FACE_SHADING
    monkeypatch.setattr(albedo_net, "FACE_SHADING", 8.0)
    dim = estimate_albedo_learned(matte.foreground, matte.alpha, shape.normal, shape.face_mask, LEARNED)
    assert dim.max() < 0.999
    face &= dim.min(axis=-1) > 1e-4  # a black plate pixel (an eye's pupil) says nothing about the shading
    assert face.sum() > 1000
    shading = matte.foreground[face] / dim[face] @ LUMINANCE_WEIGHTS
    assert np.median(shading) == pytest.approx(8.0, rel=0.02)
    unclipped = (matte.alpha > 0) & (shipped.max(axis=-1) < 0.999)
    np.testing.assert_allclose(shipped[unclipped], dim[unclipped] * (8.0 / shipped_constant), rtol=1e-3,
                               atol=1e-6)


def test_an_albedo_above_one_keeps_its_hue():
    """A bright photo can imply an albedo above 1 (red hair with red above 1): such pixels are scaled down whole,
    so they keep their hue (a per-channel clip turned such hair blonde), and every pixel within [0, 1] is left
    exactly as it is (the exposure convention stands)."""
    rng = np.random.default_rng(5)
    albedo = rng.uniform(0.05, 0.5, (2000, 3)).astype(np.float32)
    albedo[:600] = rng.uniform(0.9, 1.6, (600, 1)) * np.array([1.0, 0.45, 0.2], np.float32)  # red hair
    fitted = albedo_net.within_reflectance(albedo)
    assert fitted.max() <= 1.0 and fitted.min() >= 0.0
    np.testing.assert_allclose(fitted / fitted.sum(-1, keepdims=True), albedo / albedo.sum(-1, keepdims=True),
                               rtol=1e-5, atol=1e-6)
    over = albedo.max(-1) > 1.0
    assert over.sum() > 100
    np.testing.assert_allclose(fitted[over].max(-1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(fitted[~over], albedo[~over])


def test_the_calibration_reads_how_many_stops_the_albedo_is_too_dark():
    """tools/albedo_exposure.py's per-photo figure: a prediction 0.75 stops too dark reads +0.75 over the
    reference, whatever lies outside it, and clipped or black predictions do not count."""
    rng = np.random.default_rng(3)
    true = rng.uniform(0.1, 0.6, (32, 32, 3)).astype(np.float32)
    predicted = true * np.float32(2.0 ** -0.75)
    reference = np.zeros((32, 32), bool)
    reference[8:24, 8:24] = True
    predicted[~reference] = 0.9  # outside: ignored
    predicted[8:10, 8:24] = 1.0  # clipped: ignored
    predicted[10:12, 8:24] = 0.0  # black: ignored
    assert albedo_exposure.level_error_stops(predicted, true, reference) == pytest.approx(0.75, abs=1e-4)
    assert albedo_exposure.level_error_stops(true * 2.0, true, reference) == pytest.approx(-1.0, abs=1e-4)
    assert np.isnan(albedo_exposure.level_error_stops(predicted, true, np.zeros_like(reference)))


def test_the_skin_range_is_the_light_stage_skin_palettes():
    """SKIN_CHROMA (runtime, no lightstage import) is the chroma range of the light stage's skin palette."""
    from portrait_relight.lightstage.materials import skin_colour

    chroma = np.array([[np.log(r / g), np.log(b / g)] for melanin in np.linspace(0.0, 1.0, 121)
                       for hue in (-0.015, 0.0, 0.015) for r, g, b in [skin_colour(melanin, hue)]])
    np.testing.assert_allclose(np.array(albedo_net.SKIN_CHROMA), np.stack([chroma.min(0), chroma.max(0)], 1),
                               atol=2e-3)


def test_a_face_colour_no_skin_has_is_brought_to_skin_and_skin_is_left():
    skin = np.array([0.45, 0.30, 0.24], np.float32)  # log R/G 0.41, log B/G -0.22: inside the range
    np.testing.assert_array_equal(albedo_net.skin_chroma_gains(np.tile(skin, (50, 1))), np.ones(3, np.float32))
    blue = np.array([0.30, 0.30, 0.45], np.float32)  # a blue cast the net left in
    gains = albedo_net.skin_chroma_gains(np.tile(blue, (50, 1)))
    fixed = blue * gains
    (red_low, _), (_, blue_high) = albedo_net.SKIN_CHROMA
    assert np.log(fixed[0] / fixed[1]) == pytest.approx(red_low, abs=1e-5)  # to the nearest skin colour
    assert np.log(fixed[2] / fixed[1]) == pytest.approx(blue_high, abs=1e-5)
    assert fixed @ LUMINANCE_WEIGHTS == pytest.approx(blue @ LUMINANCE_WEIGHTS, rel=1e-5)  # luminance kept
    # under a saturated red lamp the face has next to no green or blue left: the gain stops at two stops
    red_lamp = np.tile(np.array([0.5, 1e-4, 1e-4], np.float32), (50, 1))
    gains = albedo_net.skin_chroma_gains(red_lamp)
    assert np.all(np.isfinite(gains)) and gains.max() / gains.min() <= 4.0 * (1 + 1e-5)


def test_a_strong_cast_leaves_the_face_albedo_skin_coloured(astronaut_subject, monkeypatch):
    """A cyan light the net cannot take off whole: the face's albedo still comes out within skin's chroma range,
    which it does not without the range."""
    _, matte, shape = astronaut_subject
    cyan = np.array([0.35, 1.0, 1.6], np.float32)

    def face_chroma_of_albedo() -> np.ndarray:
        albedo = estimate_albedo_learned(matte.foreground * cyan, matte.alpha, shape.normal, shape.face_mask, LEARNED)
        median = np.median(albedo[(shape.face_mask > 0.5) & (matte.alpha > 0.9)], axis=0)
        return np.log([median[0] / median[1], median[2] / median[1]])

    (red_low, red_high), (blue_low, blue_high) = albedo_net.SKIN_CHROMA
    red, blue = face_chroma_of_albedo()
    assert red_low - 0.02 <= red <= red_high + 0.02 and blue_low - 0.02 <= blue <= blue_high + 0.02, (red, blue)
    monkeypatch.setattr(albedo_net, "skin_chroma_gains", lambda face_albedo: np.ones(3, np.float32))
    red, blue = face_chroma_of_albedo()
    assert not (red_low <= red <= red_high and blue_low <= blue <= blue_high), (red, blue)
