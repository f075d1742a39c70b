"""Virtual light stage: a tiny rendered case (64^2, few samples) has sane ground-truth passes, is reproducible,
its OLAT sum agrees with the direct render, and its recorded cam_to_env agrees with Blender's world lookup."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("bpy")

from portrait_relight.inference.lighting.environment import direction_to_uv  # noqa: E402
from portrait_relight.lightstage.generate import Generator, read_case, sample_case, write_case  # noqa: E402

SIZE, SAMPLES, OLAT, SEED = 64, 8, 16, 5


@pytest.fixture(scope="module")
def rendered(shared_dir, tmp_path_factory):
    """One MakeHuman case rendered twice with the same seed (re-using the scene), plus the generator."""
    generator = Generator("makehuman", SIZE, SAMPLES, olat=OLAT, shared=shared_dir)
    first = generator.render_case(SEED)
    second = generator.render_case(SEED)
    case_dir = write_case(tmp_path_factory.mktemp("lightstage") / "case", *first)
    return generator, read_case(case_dir), second


def test_passes_have_expected_shapes_and_ranges(rendered):
    _, (passes, meta), _ = rendered
    shapes = {"plate": (SIZE, SIZE, 3), "alpha": (SIZE, SIZE), "normal": (SIZE, SIZE, 3),
              "albedo": (SIZE, SIZE, 3), "roughness": (SIZE, SIZE), "depth": (SIZE, SIZE),
              "relit": (SIZE, SIZE, 3), "relit_olat": (SIZE, SIZE, 3)}
    for name, shape in shapes.items():
        assert passes[name].shape == shape, name
        assert np.isfinite(passes[name]).all(), name
    alpha = passes["alpha"]
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    assert 0.1 < (alpha > 0.5).mean() < 0.9  # the subject is framed, not missing or filling the image
    inside = alpha > 0
    lengths = np.linalg.norm(passes["normal"], axis=-1)
    assert np.allclose(lengths[inside & (lengths > 0)], 1.0, atol=1e-3)
    assert (lengths[inside] > 0).mean() > 0.99
    assert np.all(passes["normal"][~inside] == 0)
    assert np.all(passes["relit"][~inside] == 0)
    core = alpha > 0.99
    assert 0.05 < passes["albedo"][core].mean() < 0.9
    assert 0.2 < passes["roughness"][core].mean() < 0.7
    assert 0.3 < np.median(passes["depth"][core]) < 3.0
    assert set(meta) >= {"seed", "subject", "width", "height", "samples", "camera", "source", "target",
                         "render_seconds", "generator_version"}
    for role in ("source", "target"):
        m = np.array(meta[role]["cam_to_env"])
        assert np.allclose(m @ m.T, np.eye(3), atol=1e-6)


def test_face_normals_point_at_the_camera(rendered):
    _, (passes, _), _ = rendered
    alpha, normal = passes["alpha"], passes["normal"]
    rows = np.nonzero((alpha > 0.99).any(axis=1))[0]
    top = rows[0]
    face = np.zeros_like(alpha, bool)  # the upper part of the silhouette is the head (camera yaw <= 35 deg)
    face[top: top + max(2, (rows[-1] - top) // 3)] = True
    face &= alpha > 0.99
    assert normal[face][:, 2].mean() > 0.5


def test_same_seed_gives_same_case(rendered, shared_dir):
    _, (passes, meta), (passes2, meta2) = rendered
    strip = lambda m: {k: v for k, v in m.items() if k != "render_seconds"}  # noqa: E731
    assert strip(meta) == strip(meta2)
    assert sample_case(SEED, "makehuman", shared_dir) == sample_case(SEED, "makehuman", shared_dir)
    for name in ("alpha", "normal", "albedo", "plate", "relit"):
        assert np.abs(passes[name] - passes2[name].astype(passes[name].dtype)).mean() < 2e-3, name


def test_olat_sum_matches_direct_relight(rendered):
    _, (passes, _), _ = rendered
    core = passes["alpha"] > 0.99
    direct, olat = passes["relit"][core].mean(0), passes["relit_olat"][core].mean(0)
    # 16 suns approximate a full HDRI: means agree to ~15% (noise + discretised sky)
    assert np.all(np.abs(olat / direct - 1.0) < 0.15), (olat, direct)


def _write_blob_hdri(path, direction_env: np.ndarray, height: int = 64) -> None:
    """Dim grey panorama with one bright patch around `direction_env` (panorama frame)."""
    import OpenEXR

    from portrait_relight.inference.lighting.environment import pixel_directions

    q = pixel_directions(height, 2 * height)
    glow = np.clip(q @ direction_env, 0, 1) ** 16 * 40.0 + 0.05
    rgb = np.repeat(glow[..., None], 3, axis=-1).astype(np.float32)
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, {"RGB": rgb}) as exr:
        exr.write(str(path))


@pytest.mark.parametrize("side", [+1, -1])
def test_light_from_camera_right_brightens_the_right_side(rendered, tmp_path, side):
    """Ties generator and product conventions: a light placed at camera-space direction (side, 0, 1) through
    meta's cam_to_env must light the subject's image-right (side=+1) or image-left (side=-1) half."""
    generator, (passes, meta), _ = rendered
    generator.render_case(SEED)  # restore the case's camera and subject
    cam_to_env = np.array(meta["target"]["cam_to_env"])
    d_cam = np.array([side, 0.0, 1.0]) / math.sqrt(2.0)
    u, v = direction_to_uv(cam_to_env @ d_cam)
    assert 0 <= u < 1 and 0 <= v <= 1
    hdri = tmp_path / "blob.exr"
    _write_blob_hdri(hdri, cam_to_env @ d_cam)
    generator.stage.set_world(hdri, meta["target"]["rotation_z_deg"], 1.0)
    channels = generator.stage.render(SAMPLES)
    rgb = np.stack([channels[f"Combined.{c}"] for c in "RGB"], axis=-1).mean(-1)
    alpha = channels["Combined.A"]
    core = alpha > 0.99
    cols = np.nonzero(core.any(axis=0))[0]
    middle = (cols[0] + cols[-1]) // 2
    right = rgb[:, middle:][core[:, middle:]].mean()
    left = rgb[:, :middle][core[:, :middle]].mean()
    assert (right > 1.5 * left) if side > 0 else (left > 1.5 * right), (left, right)
