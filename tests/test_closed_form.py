"""Our closed-form matting solver against pymatting's (the reference implementation of Levin et al.), its exact
sparse solvers against scipy's, and the corner cases a trimap can present."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import skimage.data
from pymatting import estimate_alpha_cf
from test_matting import synthetic_composite, synthetic_layers

from portrait_relight.inference.io.imageio import linear_to_srgb
from portrait_relight.inference.resample import resize, working_size
from portrait_relight.inference.settings import RelightSettings
from portrait_relight.inference.stages import closed_form, matting


def astronaut_case():
    """The astronaut at the product's working size with the product's own segmentation and trimap."""
    srgb = skimage.data.astronaut().astype(np.float32) / 255.0
    height, width = working_size(*srgb.shape[:2], RelightSettings().matting_resolution)
    probability = resize(matting.segment_person(srgb, RelightSettings()), height, width)
    return resize(srgb, height, width), matting.adaptive_trimap(probability), probability


@pytest.mark.parametrize("case", ["synthetic", "astronaut"])
def test_alpha_matches_pymatting(case):
    if case == "synthetic":
        image, alpha_true = synthetic_composite(256)
        image = linear_to_srgb(image)
        trimap = matting.adaptive_trimap(np.clip(resize(resize(alpha_true, 32, 32), 256, 256), 0, 1))
        prior = None
    else:
        image, trimap, prior = astronaut_case()
    reference = np.clip(estimate_alpha_cf(image.astype(np.float64), trimap.astype(np.float64)), 0.0, 1.0)
    alpha = closed_form.closed_form_alpha(image, trimap, prior)
    assert alpha.dtype == np.float32 and alpha.shape == trimap.shape
    unknown = trimap == 0.5
    assert unknown.sum() > 1000
    np.testing.assert_array_equal(alpha[~unknown], trimap[~unknown])
    # pymatting stops its conjugate gradients at a relative residual of 1e-7; ours is a direct solve
    assert np.abs(alpha - reference).max() < 5e-3
    assert np.abs(alpha - reference).mean() < 1e-4


def random_spd(n: int, seed: int) -> scipy.sparse.csr_matrix:
    """A sparse SPD matrix shaped like a matting system: a 2-D grid Laplacian plus a small diagonal."""
    rng = np.random.default_rng(seed)
    side = int(np.sqrt(n))
    grid = scipy.sparse.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(side, side))
    laplacian = scipy.sparse.kronsum(grid, grid) * rng.uniform(0.5, 2.0)
    return (laplacian + scipy.sparse.diags(rng.uniform(1e-3, 1e-2, side * side))).tocsr()


@pytest.mark.parametrize("banded", [True, False])
def test_solve_spd_paths_match_scipy(banded, monkeypatch):
    matrix = random_spd(900, seed=1)
    order = np.random.default_rng(2).permutation(matrix.shape[0])  # scrambled, as the unknown pixels come
    matrix = matrix[order][:, order]
    rhs = np.random.default_rng(3).normal(size=matrix.shape[0])
    if not banded:
        monkeypatch.setattr(closed_form, "MAX_BANDED_FLOPS", 0)
    solution = closed_form.solve_spd(matrix, rhs)
    reference = scipy.sparse.linalg.spsolve(matrix.tocsc(), rhs)
    np.testing.assert_allclose(solution, reference, rtol=1e-8, atol=1e-8 * np.abs(reference).max())


def test_inverse_3x3_matches_numpy():
    rng = np.random.default_rng(4)
    m = rng.normal(size=(500, 3, 3))
    m = m @ m.transpose(0, 2, 1) + 1e-3 * np.eye(3)
    np.testing.assert_allclose(closed_form._inverse_3x3(m), np.linalg.inv(m), rtol=1e-7, atol=1e-9)


def test_unknown_island_without_known_neighbours_takes_the_prior():
    """An unknown region enclosed by unknown pixels only (here: the whole frame) has no data term: the
    solver must not fail on the singular Laplacian and returns the prior there."""
    image = np.full((40, 40, 3), 0.5) + np.random.default_rng(5).normal(0, 0.05, (40, 40, 3))
    trimap = np.full((40, 40), 0.5, np.float32)
    prior = np.full((40, 40), 0.3, np.float32)
    alpha = closed_form.closed_form_alpha(image, trimap, prior)
    assert np.all(np.isfinite(alpha))
    np.testing.assert_allclose(alpha, 0.3, atol=1e-3)


def test_no_unknown_pixels_returns_the_trimap():
    trimap = np.zeros((20, 20), np.float32)
    trimap[5:15, 5:15] = 1.0
    np.testing.assert_array_equal(closed_form.closed_form_alpha(np.zeros((20, 20, 3)), trimap), trimap)


def test_foreground_removes_background_spill_like_pymatting():
    """Blur fusion on a composite with known foreground: at the soft edge it must recover the foreground
    colours far better than the plate does, and no worse than pymatting's multilevel estimator (reference)."""
    from pymatting import estimate_foreground_ml

    foreground_true, background, alpha = synthetic_layers(384)
    image = (alpha[..., None] * foreground_true + (1 - alpha[..., None]) * background).astype(np.float32)
    edge = (alpha > 0.05) & (alpha < 0.95)

    def error(foreground):
        return float((np.abs(foreground - foreground_true).mean(-1) * alpha)[edge].mean())

    ours = matting.estimate_foreground(image, alpha)
    reference = np.asarray(estimate_foreground_ml(image.astype(np.float64), alpha.astype(np.float64)))
    assert ours.dtype == np.float32 and ours.shape == image.shape
    opaque = alpha >= 1.0
    np.testing.assert_allclose(ours[opaque], image[opaque], atol=1e-5)
    assert error(ours) < 0.5 * error(image), (error(ours), error(image))
    assert error(ours) < 1.1 * error(reference), (error(ours), error(reference))

