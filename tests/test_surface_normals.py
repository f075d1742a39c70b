"""Ground-truth hair normals from the rendered depth (lightstage/surface_normals.py), on a sphere seen by the
product's camera: its depth pass is exact, its 'hair' cap carries a normal pass like the ribbons' (one fixed
direction, whichever way the surface faces), and the skin's roughness varies as the light stage's does."""

from __future__ import annotations

import numpy as np
import pytest

from portrait_relight.inference.lighting.camera import camera_rays
from portrait_relight.lightstage import surface_normals

SIZE, FOV = 96, 30.0
HAIR_ROUGHNESS = 0.3


def sphere(radius: float = 0.18, distance: float = 0.8):
    """(depth along rays, alpha, analytic camera-space normals) of a sphere centred on the optical axis."""
    rays = camera_rays(SIZE, SIZE, FOV).astype(np.float64)
    centre = np.array([0.0, 0.0, -distance])
    b = rays @ centre
    disc = b * b - (centre @ centre - radius * radius)
    hit = disc > 0
    depth = np.where(hit, b - np.sqrt(np.maximum(disc, 0.0)), 0.0)
    normal = (rays * depth[..., None] - centre) / radius
    return depth.astype(np.float32), hit.astype(np.float32), np.where(hit[..., None], normal, 0.0).astype(np.float32)


def angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.einsum("hwc,hwc->hw", a, b), -1.0, 1.0)))


@pytest.fixture(scope="module")
def hair_case():
    depth, alpha, normal = sphere()
    rows = np.arange(SIZE)[:, None] * np.ones((1, SIZE))
    cap = (alpha > 0) & (rows < SIZE * 0.42)  # the upper part of the head
    ribbon_pass = np.where(cap[..., None], np.array([-1.0, 0.0, 0.0], np.float32), normal)  # the ribbons' pass
    roughness = np.random.default_rng(0).uniform(0.30, 0.45, alpha.shape).astype(np.float32)  # skin: continuous
    roughness[cap] = HAIR_ROUGHNESS
    meta = {"camera": {"fov_deg": FOV}, "subject": {"hair": {"style": "long", "roughness": HAIR_ROUGHNESS}}}
    return depth, alpha, normal, ribbon_pass, roughness, meta, cap


def test_depth_normals_are_the_surface_normals():
    depth, alpha, normal = sphere()
    inside = alpha > 0
    found = surface_normals.depth_normals(depth, inside, FOV, sigma=0.0)
    interior = inside & (np.hypot(*np.gradient(depth)) < 0.01)  # off the silhouette's grazing ring
    assert interior.sum() > 0.5 * inside.sum()
    assert np.median(angles(found, normal)[interior]) < 1.0
    assert np.allclose(np.linalg.norm(found[inside], axis=-1), 1.0, atol=1e-5)
    assert (found[inside][:, 2] > 0).all()  # toward the camera (+Z, CONVENTIONS.md)


def test_the_hair_takes_the_depth_surfaces_normals_and_the_rest_keeps_the_pass(hair_case):
    depth, alpha, normal, ribbon_pass, roughness, meta, cap = hair_case
    fixed = surface_normals.surface_normals(ribbon_pass, depth, alpha, roughness, meta)
    rim = alpha.astype(bool) & (np.hypot(*np.gradient(depth)) < 0.01)
    assert np.mean(angles(ribbon_pass, normal)[cap & rim]) > 40.0  # what training had before
    assert np.mean(angles(fixed, normal)[cap & rim]) < 4.0
    # beyond the mixed-pixel reach the pass is kept exactly, the skin specks that hit a hair value included
    reach = round(surface_normals.MIXED_PIXEL_REACH * SIZE) + 2
    rows = np.broadcast_to(np.arange(SIZE)[:, None], alpha.shape)
    far = (alpha > 0) & (rows >= SIZE * 0.42 + reach)
    assert far.any() and np.array_equal(fixed[far], ribbon_pass[far])
    assert np.allclose(np.linalg.norm(fixed[alpha > 0], axis=-1), 1.0, atol=1e-5)


def test_a_subject_without_hair_keeps_its_normal_pass(hair_case):
    depth, alpha, _, ribbon_pass, roughness, _, _ = hair_case
    scanned_head = {"camera": {"fov_deg": FOV}, "subject": {"kind": "scanned"}}
    assert surface_normals.surface_normals(ribbon_pass, depth, alpha, roughness, scanned_head) is ribbon_pass
    bald = {"camera": {"fov_deg": FOV}, "subject": {"hair": {"style": "bald", "roughness": HAIR_ROUGHNESS}}}
    assert surface_normals.hair_roughness(bald) == (surface_normals.BROW_ROUGHNESS,)
    kept = surface_normals.surface_normals(ribbon_pass, depth, alpha, roughness, bald)
    assert np.array_equal(kept, ribbon_pass)  # no brows in this image: nothing of the brows' value in clumps


def test_evaluation_cases_score_normals_against_the_surface_unless_asked_for_the_pass(hair_case, tmp_path):
    import json

    import OpenEXR

    from portrait_relight.evaluation.cases import read_case

    depth, alpha, normal, ribbon_pass, roughness, meta, cap = hair_case
    channels = {"gt.alpha.A": alpha, "gt.roughness.V": roughness, "gt.depth.Z": depth}
    for name, value in (("plate", normal * 0.5 + 0.5), ("normal", ribbon_pass), ("albedo", normal * 0 + 0.5),
                        ("relit", normal * 0 + 0.25)):
        channels.update({f"gt.{name}.{c}": np.ascontiguousarray(value[..., i]) for i, c in enumerate(
            "XYZ" if name == "normal" else "RGB")})
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {k: np.asarray(v, np.float32) for k, v in channels.items()}).write(str(tmp_path / "gt.exr"))
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    surface = read_case(tmp_path).passes["normal"]
    assert np.array_equal(surface, surface_normals.surface_normals(ribbon_pass, depth, alpha, roughness, meta))
    assert np.mean(angles(surface, normal)[cap]) < 10.0
    assert np.array_equal(read_case(tmp_path, normals_reference="pass").passes["normal"], ribbon_pass)
