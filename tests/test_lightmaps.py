"""Light maps against brute-force integration over full-resolution real HDRIs, analytic values and Blender's
orientation conventions (CONVENTIONS.md, re-derived here from the formulas rather than from the product)."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from portrait_relight.inference.io.imageio import read_hdri
from portrait_relight.inference.lighting.environment import Environment
from portrait_relight.inference.stages import lightmaps

# sunny/high dynamic range (incl. a ~1-degree 58k-radiance sun: rooitou_park) and two indoor ones
BRUTE_FORCE_HDRIS = ["venice_sunset_1k", "kiara_1_dawn_1k", "forest_slope_1k", "rooitou_park_1k",
                     "studio_small_03_1k", "st_fagans_interior_1k"]
EXPONENTS = lightmaps.PHONG_EXPONENTS


def blender_direction(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """CONVENTIONS.md inverted: u = 0.5 - atan2(q_y, q_x) / 2pi, v = 1 - acos(q_z) / pi."""
    phi = (0.5 - u) * 2.0 * np.pi
    theta = (1.0 - v) * np.pi
    return np.stack(np.broadcast_arrays(np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)),
                    axis=-1)


def panorama_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre directions (h*w, 3) and solid angles (h*w,) (sin(theta) dtheta dphi)."""
    u = (np.arange(w) + 0.5) / w
    v = 1.0 - (np.arange(h) + 0.5) / h
    d = blender_direction(u[None, :], v[:, None]).reshape(-1, 3)
    theta = (np.arange(h) + 0.5) * np.pi / h
    omega = np.repeat(np.sin(theta) * (np.pi / h) * (2.0 * np.pi / w), w)
    return d, omega


def brute_force(radiance: np.ndarray, q: np.ndarray) -> dict:
    """Sum over every panorama pixel of L k(q.w) dOmega for the diffuse and Phong kernels; q (N, 3) panorama frame."""
    h, w = radiance.shape[:2]
    d, omega = panorama_grid(h, w)
    lw = (radiance.reshape(-1, 3).astype(np.float64) * omega[:, None]).astype(np.float32)
    d = d.astype(np.float32)
    out = {"diffuse": [], **{e: [] for e in EXPONENTS}}
    for chunk in np.array_split(q.astype(np.float32), max(1, len(q) // 50)):
        t = np.maximum(chunk @ d.T, 0.0)
        out["diffuse"].append(t @ lw / np.pi)
        out[1].append((2 / (2.0 * np.pi)) * (t @ lw))
        for e in range(1, 7):  # t^(2^e) by repeated squaring: 2, 4, ..., 64
            t *= t
            if 2**e in EXPONENTS:
                out[2**e].append((2**e + 1) / (2.0 * np.pi) * (t @ lw))
    return {k: np.concatenate(v).astype(np.float64) for k, v in out.items()}


def random_units(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("name", BRUTE_FORCE_HDRIS)
def test_matches_brute_force_on_real_hdri(name, shared_dir):
    radiance = read_hdri(shared_dir / "data" / "hdri" / f"{name}.hdr")
    env = Environment.centred(radiance, rotation_deg=37.0)
    pre = lightmaps.prefilter(env)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    n = random_units(rng, 250)
    rays = random_units(rng, 250)
    rays[:, 2] = -np.abs(rays[:, 2])  # into the scene
    maps = lightmaps.light_maps(pre, n[None].astype(np.float32), rays[None].astype(np.float32))
    v = -rays
    r = 2.0 * np.sum(n * v, axis=1, keepdims=True) * n - v
    ref_n = brute_force(radiance, n @ env.cam_to_env.T)
    ref_r = brute_force(radiance, r @ env.cam_to_env.T)
    floor = 1e-3 * float(radiance.mean())
    errors = {"diffuse": np.max(np.abs(maps.diffuse[0] - ref_n["diffuse"]) / np.maximum(ref_n["diffuse"], floor))}
    for k, e in enumerate(EXPONENTS):
        errors[e] = np.max(np.abs(maps.specular[k, 0] - ref_r[e]) / np.maximum(ref_r[e], floor))
    assert max(errors.values()) <= 0.01, errors


def pixel_sum_with_legendre_series(radiance: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """The discrete convolution sh_convolve must equal, by the addition theorem: at every pixel centre q,
    sum_p L_p dOmega_p k(q.w_p) with k(t) = sum_l (2l+1)/(4 pi) Lambda_l P_l(t) (numpy's Legendre series; no
    spherical harmonics involved). Pixel centres theta_i = (i + 1/2) pi / h, phi_j = 2 pi (j + 1/2) / w; a row's
    exact solid angle is (cos theta_top - cos theta_bottom) 2 pi / w."""
    h, w, c = radiance.shape
    theta = (np.arange(h) + 0.5) * np.pi / h
    phi = 2.0 * np.pi * (np.arange(w) + 0.5) / w
    d = np.stack(np.broadcast_arrays(np.sin(theta)[:, None] * np.cos(phi), np.sin(theta)[:, None] * np.sin(phi),
                                     np.cos(theta)[:, None]), axis=-1).reshape(-1, 3)
    edges = np.cos(np.arange(h + 1) * np.pi / h)
    omega = np.repeat((edges[:-1] - edges[1:]) * 2.0 * np.pi / w, w)
    series = (2.0 * np.arange(len(factors)) + 1.0) / (4.0 * np.pi) * factors
    kernel = np.polynomial.legendre.legval(np.clip(d @ d.T, -1.0, 1.0), series)
    return (kernel @ (radiance.reshape(-1, c) * omega[:, None])).reshape(h, w, c)


@pytest.mark.parametrize("h, w, band", [(24, 48, 16), (25, 50, 16), (16, 20, 16), (20, 64, 1)])
def test_sh_convolve_equals_pixel_sum_with_band_limited_kernel(h, w, band):
    """Even and odd heights (the equator row is its own mirror), a band capped by the width (w // 2 - 1 = 9 for
    w = 20) and a tiny band; the diffuse kernel and an arbitrary one, on a panorama with a few bright pixels."""
    rng = np.random.default_rng(h * w + band)
    radiance = rng.random((h, w, 3)).astype(np.float32)
    radiance[rng.integers(0, h, 4), rng.integers(0, w, 4)] = 500.0
    kernels = [lightmaps.zonal_coefficients(1, band), rng.normal(size=band + 1)]
    maps = lightmaps.sh_convolve(radiance, kernels)
    used = min(band, w // 2 - 1)
    for kernel, result in zip(kernels, maps):
        expected = pixel_sum_with_legendre_series(radiance.astype(np.float64), kernel[: used + 1])
        assert result.shape == radiance.shape and result.dtype == np.float32
        assert np.abs(result - expected).max() <= 2e-6 * np.abs(expected).max()


def test_sh_convolve_with_tables_of_a_higher_band():
    """prefilter shares one Legendre table between its two bands: the lower band's slice gives the same maps."""
    rng = np.random.default_rng(7)
    radiance = rng.random((32, 64, 3)).astype(np.float32)
    kernels = [lightmaps.zonal_coefficients(e, 12) for e in (16, 32)]
    shared = lightmaps.sh_convolve(radiance, kernels, lightmaps.legendre_tables(32, 24))
    for a, b in zip(shared, lightmaps.sh_convolve(radiance, kernels)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * float(np.abs(b).max()))


@pytest.mark.parametrize("exponent", [1, 2, 16, 64])
def test_zonal_coefficients_match_quadrature(exponent):
    """Lambda_l = 2 pi integral_{-1}^{1} k(t) P_l(t) dt by Gauss-Legendre on [0, 1] (exact: polynomial integrand)."""
    band = 40
    x, wq = np.polynomial.legendre.leggauss(band + exponent)
    t, wq = 0.5 * (x + 1.0), 0.5 * wq
    k = (exponent + 1) / (2.0 * np.pi) * t**exponent
    expected = [2.0 * np.pi * np.sum(k * np.polynomial.legendre.legval(t, np.eye(band + 1)[l]) * wq)
                for l in range(band + 1)]
    np.testing.assert_allclose(lightmaps.zonal_coefficients(exponent, band), expected, rtol=1e-9, atol=1e-12)


def test_constant_environment_gives_the_constant():
    value = np.array([0.25, 1.0, 3.5], np.float32)
    env = Environment(np.broadcast_to(value, (64, 128, 3)).copy(), np.eye(3))
    pre = lightmaps.prefilter(env)
    rng = np.random.default_rng(1)
    n = random_units(rng, 500).reshape(20, 25, 3).astype(np.float32)
    rays = random_units(rng, 500).reshape(20, 25, 3).astype(np.float32)
    maps = lightmaps.light_maps(pre, n, rays)
    np.testing.assert_allclose(maps.diffuse, np.broadcast_to(value, maps.diffuse.shape), rtol=5e-4)
    np.testing.assert_allclose(maps.specular, np.broadcast_to(value, maps.specular.shape), rtol=5e-4)


def test_single_lobe_environment_matches_analytic_values():
    """L(w) = max(0, c.w)^p: diffuse(c) = 2/(p+2), specular_e(c) = (e+1)/(p+e+1); and a diffuse normal at 90
    degrees to c collects 1/pi * integral max(0,c.w)^p max(0,n.w) dw, checked by 1D quadrature."""
    p = 24
    c = np.array([0.3, -0.5, 0.6])
    c /= np.linalg.norm(c)
    h = 512
    d, _ = panorama_grid(h, 2 * h)
    radiance = np.repeat((np.maximum(d @ c, 0.0) ** p)[:, None], 3, axis=1).reshape(h, 2 * h, 3)
    pre = lightmaps.prefilter(Environment(radiance.astype(np.float32), np.eye(3)))
    maps = lightmaps.light_maps(pre, c[None, None].astype(np.float32), -c[None, None].astype(np.float32))
    np.testing.assert_allclose(maps.diffuse[0, 0], 2.0 / (p + 2), rtol=2e-3)
    for k, e in enumerate(EXPONENTS):
        np.testing.assert_allclose(maps.specular[k, 0, 0], (e + 1) / (p + e + 1), rtol=2e-3)
    # normal perpendicular to c: integrate in spherical coordinates about c
    t = np.linspace(0.0, np.pi / 2, 2001)
    a = np.linspace(0.0, 2 * np.pi, 2001)
    tt, aa = np.meshgrid(t, a, indexing="ij")
    f = np.cos(tt) ** p * np.maximum(np.sin(tt) * np.cos(aa), 0.0) * np.sin(tt)
    expected = np.trapz(np.trapz(f, a, axis=1), t) / np.pi
    n_perp = np.cross(c, [0.0, 0.0, 1.0])
    n_perp /= np.linalg.norm(n_perp)
    maps = lightmaps.light_maps(pre, n_perp[None, None].astype(np.float32), -n_perp[None, None].astype(np.float32))
    np.testing.assert_allclose(maps.diffuse[0, 0], expected, rtol=5e-3)


def patch_environment(q0: np.ndarray, h: int = 128) -> np.ndarray:
    """Dim uniform world plus a bright 5-degree Gaussian patch around panorama direction q0 (Blender mapping)."""
    d, _ = panorama_grid(h, 2 * h)
    angle = np.arccos(np.clip(d @ q0, -1.0, 1.0))
    lum = 0.01 + 100.0 * np.exp(-0.5 * (angle / math.radians(5.0)) ** 2)
    return np.repeat(lum[:, None], 3, axis=1).reshape(h, 2 * h, 3).astype(np.float32)


AXES = {"+X": (1, 0, 0), "-X": (-1, 0, 0), "+Z": (0, 0, 1), "-Z": (0, 0, -1), "+Y": (0, 1, 0)}


def diffuse_at_axes(env: Environment) -> dict:
    pre = lightmaps.prefilter(env)
    n = np.array([AXES[k] for k in AXES], np.float32)[None]
    maps = lightmaps.light_maps(pre, n, -n)
    return {k: float(maps.diffuse[0, i, 1]) for i, k in enumerate(AXES)}


def test_orientation_centred_panorama():
    """Environment.centred: the image centre (u=0.5, v=0.5: q=+X) is what the camera sees straight ahead, i.e.
    behind the subject, so it lights normals facing away from the camera (-Z); the seam (u=0: q=-X) is behind
    the camera and lights normals facing the camera (+Z)."""
    centre = blender_direction(np.array(0.5), np.array(0.5))
    lit = diffuse_at_axes(Environment.centred(patch_environment(centre)))
    assert lit["-Z"] > 50 * lit["+Z"]
    assert lit["-Z"] == max(lit.values())
    seam = blender_direction(np.array(0.0), np.array(0.5))
    lit = diffuse_at_axes(Environment.centred(patch_environment(seam)))
    assert lit["+Z"] > 50 * lit["-Z"]
    assert lit["+Z"] == max(lit.values())
    top = blender_direction(np.array(0.5), np.array(0.999))
    lit = diffuse_at_axes(Environment.centred(patch_environment(top)))
    assert lit["+Y"] == max(lit.values())


def test_rotation_moves_light_like_blender_mapping():
    """With the world Mapping rotated by +90 degrees about Z, q = Rz(90) q_unrotated. The camera-space normal
    facing the patch at the image centre is the one whose rotated panorama direction is +X."""
    centre = blender_direction(np.array(0.5), np.array(0.5))
    env = Environment.centred(patch_environment(centre), rotation_deg=90.0)
    rz = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # CONVENTIONS: counter-clockwise from +Z
    # camera -> unrotated centred panorama: forward (-Z) -> +X, right (+X) -> -Y, up (+Y) -> +Z
    cam_to_pano = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    expected = max(AXES, key=lambda k: (rz @ cam_to_pano @ np.array(AXES[k], float)) @ centre)
    assert expected == "+X"
    lit = diffuse_at_axes(env)
    assert max(lit, key=lit.get) == expected
    assert lit["+X"] > 50 * lit["-X"]


def test_mask_zeroes_outside_and_keeps_inside():
    env = Environment.centred(patch_environment(np.array([1.0, 0.0, 0.0]), h=64))
    pre = lightmaps.prefilter(env)
    rng = np.random.default_rng(3)
    n = random_units(rng, 12 * 16).reshape(12, 16, 3).astype(np.float32)
    rays = random_units(rng, 12 * 16).reshape(12, 16, 3).astype(np.float32)
    mask = rng.random((12, 16)) > 0.5
    full = lightmaps.light_maps(pre, n, rays)
    masked = lightmaps.light_maps(pre, n, rays, mask)
    assert np.all(masked.diffuse[~mask] == 0) and np.all(masked.specular[:, ~mask] == 0)
    np.testing.assert_allclose(masked.diffuse[mask], full.diffuse[mask], rtol=1e-6)
    np.testing.assert_allclose(masked.specular[:, mask], full.specular[:, mask], rtol=1e-6)
    assert masked.diffuse.shape == (12, 16, 3) and masked.specular.shape == (4, 12, 16, 3)


def test_lobe_weights_blend_chunk_by_chunk_like_the_full_maps():
    """light_maps with lobe weights returns blend_lobes of the four maps it would have returned (the product path,
    which never holds the four full-size maps), over several chunks and with a mask."""
    env = Environment.centred(patch_environment(np.array([1.0, 0.0, 0.0]), h=64))
    pre = lightmaps.prefilter(env)
    rng = np.random.default_rng(5)
    h, w = 300, 500  # > 2 chunks of lightmaps._CHUNK pixels
    n = random_units(rng, h * w).reshape(h, w, 3).astype(np.float32)
    rays = random_units(rng, h * w).reshape(h, w, 3).astype(np.float32)
    weights = rng.random((h, w, 4), np.float32)
    mask = rng.random((h, w)) > 0.3
    full = lightmaps.light_maps(pre, n, rays, mask)
    blended = lightmaps.light_maps(pre, n, rays, mask, lobe_weights=weights)
    assert blended.specular.shape == (h, w, 3)
    np.testing.assert_array_equal(blended.diffuse, full.diffuse)
    expected = sum(weights[..., k, None] * full.specular[k] for k in range(4))
    np.testing.assert_allclose(blended.specular, expected, rtol=1e-5, atol=1e-7)
    assert np.all(blended.specular[~mask] == 0)

