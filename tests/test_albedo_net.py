"""The learned albedo stage (`--albedo learned`): its output contract, the pass identity, and what taking the
source light off must do: a coloured light's cast and the plate's exposure leave the albedo."""

from __future__ import annotations

import numpy as np
import pytest

from portrait_relight.inference import pipeline
from portrait_relight.inference.lighting.environment import Environment
from portrait_relight.inference.settings import RelightSettings
from portrait_relight.inference.stages.albedo_net import estimate_albedo_learned

LEARNED = RelightSettings(albedo="learned")


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
    classical = pipeline.relight(plate, environment, RelightSettings()).passes["albedo"]
    assert np.abs(classical - albedo)[inside].mean() > 0.01  # a different stage, not the classical one again


def face_chroma(albedo: np.ndarray, face_mask: np.ndarray) -> np.ndarray:
    mean = albedo[face_mask > 0.5].mean(axis=0)
    return mean / mean.sum()


def test_a_coloured_light_leaves_the_albedo_and_the_exposure_stays(astronaut_subject):
    """The same portrait under a warm light (the foreground times a warm tint) and half a stop down: most of the
    tint's colour must leave the face's albedo (a classical white-light fit keeps all of it), while the exposure
    stays in it, by the classical stage's convention (median face shading 1: a dark plate, or dark skin, gives a
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
