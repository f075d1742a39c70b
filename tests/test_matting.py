"""Matting: trimap, closed-form refinement against a ground-truth composite, guided upsampling, real photo."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from scipy import ndimage

from portrait_relight.inference.errors import RelightInputError
from portrait_relight.inference.io.imageio import linear_to_srgb, srgb_to_linear
from portrait_relight.inference.resample import resize
from portrait_relight.inference.settings import RelightSettings
from portrait_relight.inference.stages import matting


def synthetic_layers(size: int = 384, seed: int = 0):
    """(foreground, background, alpha): a textured 'head' with thin strands, a textured background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    disc = np.clip((0.3 - np.hypot(x - 0.5, y - 0.55)) * size / 2.0 + 0.5, 0, 1)  # 2-px soft edge
    strands = np.zeros((size, size))
    for k in range(14):  # thin hair-like strands leaving the top of the head
        angle = np.pi * (0.15 + 0.7 * k / 13)
        cx, cy = 0.5 + 0.3 * np.cos(angle), 0.55 - 0.3 * np.sin(angle)
        t = np.clip(((x - cx) * np.cos(angle) - (y - cy) * np.sin(angle)) / 0.08, 0, 1)
        d = np.abs((x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)) * size
        strands = np.maximum(strands, np.clip(1.2 - d, 0, 1) * (1 - t) * (t > 0))
    alpha = np.maximum(disc, 0.8 * strands).astype(np.float32)
    fg = np.stack([0.55 + 0.1 * np.sin(40 * x), 0.35 + 0.05 * np.cos(30 * y), 0.25 + 0 * x], -1)
    bg = ndimage.gaussian_filter(rng.random((size, size, 3)), (6, 6, 0)) * 0.6 + np.array([0.1, 0.3, 0.6]) * 0.5
    return fg, bg, alpha


def synthetic_composite(size: int = 384, seed: int = 0):
    """The synthetic head composited over its background, with its exact alpha."""
    fg, bg, alpha = synthetic_layers(size, seed)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return image.astype(np.float32), alpha


def test_trimap_band_follows_uncertainty_and_size():
    y, x = np.mgrid[0:200, 0:200]
    probability = (np.hypot(x - 100, y - 100) < 60).astype(np.float32)
    trimap = matting.adaptive_trimap(probability)
    assert trimap[100, 100] == 1.0 and trimap[5, 5] == 0.0
    assert trimap[100, 100 + 60] == 0.5  # on the contour
    band = (trimap == 0.5)[100, 100:]
    assert 4 <= band.sum() <= 10  # ~1.2 % of the long edge on either side of the contour
    fuzzy = probability.copy()
    fuzzy[20:60, 80:120] = 0.5  # the model is unsure here (hair): all of it must be unknown
    assert (matting.adaptive_trimap(fuzzy)[20:60, 80:120] == 0.5).all()


def test_closed_form_refinement_against_ground_truth():
    image, alpha_true = synthetic_composite()
    srgb = linear_to_srgb(image)
    # A coarse, blurred, slightly shifted segmentation like the 256x256 model gives
    coarse = ndimage.shift(ndimage.gaussian_filter((alpha_true > 0.5).astype(np.float32), 4), (2, -2))
    coarse = resize(resize(coarse, 64, 64), *alpha_true.shape)
    alpha, trimap = matting.refine_alpha(srgb, coarse, working_long_edge=384)
    sad_refined = np.abs(alpha - alpha_true).sum() / 1000
    sad_coarse = np.abs(np.clip(coarse, 0, 1) - alpha_true).sum() / 1000
    assert sad_refined < 0.4 * sad_coarse, (sad_refined, sad_coarse)
    assert np.abs(alpha - alpha_true).mean() < 0.01
    # strands are recovered, not erased
    strand_pixels = (alpha_true > 0.3) & (ndimage.distance_transform_edt(alpha_true < 0.9) > 0) & (trimap > 0.4)
    assert alpha[strand_pixels].mean() > 0.5 * alpha_true[strand_pixels].mean()


def test_guided_upsampling_keeps_edges_sharper_than_bilinear():
    image, alpha_true = synthetic_composite(512)
    srgb = linear_to_srgb(image)
    alpha_low = resize(alpha_true, 128, 128)
    guided = matting.guided_upsample(alpha_low, resize(srgb, 128, 128), srgb)
    bilinear = resize(alpha_low, 512, 512)
    err_guided = np.abs(guided - alpha_true).mean()
    err_bilinear = np.abs(np.clip(bilinear, 0, 1) - alpha_true).mean()
    assert err_guided < 0.75 * err_bilinear, (err_guided, err_bilinear)


@pytest.fixture(scope="module")
def astronaut_linear():
    return srgb_to_linear(skimage.data.astronaut() / 255.0)


def test_real_portrait_matte(astronaut_linear):
    result = matting.estimate_matte(astronaut_linear, RelightSettings())
    alpha = result.alpha
    assert alpha.shape == astronaut_linear.shape[:2]
    assert alpha[150:230, 190:250].min() > 0.95  # the face (measured once on this public-domain photo)
    assert alpha[:60, :60].max() < 0.05 and alpha[:60, -60:].max() < 0.05  # backdrop corners
    assert 0.02 < ((alpha > 0.05) & (alpha < 0.95)).mean() < 0.2  # a real soft edge, not a binary mask
    # Foreground equals the plate where opaque; where partial, the backdrop's colour is removed
    opaque = alpha > 0.99
    assert np.abs(result.foreground[opaque] - astronaut_linear[opaque]).max() < 0.02


def test_no_person_is_an_error():
    rocket = srgb_to_linear(skimage.data.rocket() / 255.0)
    with pytest.raises(RelightInputError, match="no person found"):
        matting.estimate_matte(rocket, RelightSettings())
