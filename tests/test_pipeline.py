"""End to end on a real photo: pass invariants, and the light comes from where the HDRI says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data

from portrait_relight.inference import pipeline
from portrait_relight.inference.errors import RelightInputError
from portrait_relight.inference.io.exr import read_passes
from portrait_relight.inference.io.imageio import read_plate, srgb_to_linear, write_png
from portrait_relight.inference.lighting.environment import Environment
from portrait_relight.inference.settings import RelightSettings

FACE = (slice(140, 240), slice(180, 260))  # the astronaut's face (rows, cols), measured once


def side_light(width: int = 256, left: bool = True, strength: float = 40.0) -> Environment:
    """Dim ambient plus a bright square light 90 degrees to the camera's left (or right), at eye height."""
    height = width // 2
    radiance = np.full((height, width, 3), 0.05, np.float32)
    # Centred panorama: the image centre is straight ahead; camera-left is a quarter turn to the left of it.
    column = width // 4 if left else 3 * width // 4
    radiance[height // 2 - 8 : height // 2 + 8, column - 8 : column + 8] = strength
    return Environment.centred(radiance)


@pytest.fixture(scope="module")
def astronaut():
    return srgb_to_linear(skimage.data.astronaut() / 255.0)


@pytest.fixture(scope="module")
def lit_from_left(astronaut):
    return pipeline.relight(astronaut, side_light(left=True), RelightSettings())


def test_passes_are_complete_and_consistent(lit_from_left, astronaut):
    p = lit_from_left.passes
    h, w = astronaut.shape[:2]
    assert set(p) == {"alpha", "foreground", "normal", "albedo", "diffuse", "specular", "relit", "composite"}
    for name, value in p.items():
        assert value.shape[:2] == (h, w) and value.dtype == np.float32 and np.isfinite(value).all(), name
    alpha = p["alpha"]
    inside = alpha > 0
    assert alpha.min() >= 0 and alpha.max() <= 1
    assert np.allclose(np.linalg.norm(p["normal"][inside], axis=-1), 1, atol=1e-3)
    assert (p["normal"][FACE][..., 2] > 0.3).mean() > 0.9  # the face looks at the camera
    assert p["albedo"].min() >= 0 and p["albedo"].max() <= 1
    relit = p["albedo"] * p["diffuse"] + p["specular"]
    assert np.allclose(p["relit"][..., :3][inside], relit[inside], atol=1e-4)
    assert np.allclose(p["relit"][..., 3], alpha)
    assert set(lit_from_left.timings) >= set(pipeline.STAGES) | {"total"}


def test_light_direction_follows_the_hdri(lit_from_left, astronaut):
    lit_from_right = pipeline.relight(astronaut, side_light(left=False), RelightSettings())

    def left_right(passes):
        luminance = passes["diffuse"][FACE].mean(axis=-1)
        half = luminance.shape[1] // 2
        return luminance[:, :half].mean(), luminance[:, half:].mean()

    l_left, r_left = left_right(lit_from_left.passes)
    l_right, r_right = left_right(lit_from_right.passes)
    assert l_left > 1.3 * r_left  # light on the camera's left lights the image-left half of the face
    assert r_right > 1.3 * l_right
    # rotating the HDRI by 180 degrees about the vertical axis is the same as moving the light across
    rotated = Environment.centred(side_light(left=True).radiance, rotation_deg=180.0)
    flipped = pipeline.relight(astronaut, rotated, RelightSettings())
    assert np.allclose(flipped.passes["diffuse"], lit_from_right.passes["diffuse"], atol=0.05 * 40)


def test_composite_over_given_background(astronaut):
    background = np.zeros((100, 300, 3), np.float32)
    background[..., 2] = 0.7
    result = pipeline.relight(astronaut, side_light(), RelightSettings(), background=background)
    alpha = result.passes["alpha"]
    assert np.allclose(result.passes["composite"][alpha == 0], [0, 0, 0.7])
    opaque = alpha == 1
    assert np.allclose(result.passes["composite"][opaque], result.passes["relit"][..., :3][opaque])


def relight_plate_file(plate_path: Path, out_dir: Path) -> tuple[Path, Path]:
    """As ./relight does for one image: read, relight, write <stem>.exr and <stem>_preview.png."""
    pipeline.check_output_folder(out_dir)
    exr_path, preview_path = out_dir / f"{plate_path.stem}.exr", out_dir / f"{plate_path.stem}_preview.png"
    pipeline.relight_to_files(read_plate(plate_path), plate_path, exr_path, preview_path, side_light())
    return exr_path, preview_path


def test_relight_to_files_writes_exr_and_preview(tmp_path, astronaut):
    plate_path = tmp_path / "astro.png"
    write_png(plate_path, skimage.data.astronaut() / 255.0)
    exr_path, preview_path = relight_plate_file(plate_path, tmp_path / "out")
    passes = read_passes(exr_path)
    assert set(passes) == {"alpha", "foreground", "normal", "albedo", "diffuse", "specular", "relit", "composite"}
    from PIL import Image

    preview = np.asarray(Image.open(preview_path))
    assert preview.shape == (256, 6 * 256, 3)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["astro.exr", "astro_preview.png"]


def test_no_person_names_the_file(tmp_path):
    path = tmp_path / "rocket.png"
    write_png(path, skimage.data.rocket() / 255.0)
    with pytest.raises(RelightInputError) as info:
        relight_plate_file(path, tmp_path / "out")
    assert str(info.value).startswith(str(path)) and "no person found" in str(info.value)
    assert not list((tmp_path / "out").iterdir())


def test_subject_box_gives_the_whole_frame_result(astronaut, monkeypatch):
    """The per-pixel stages run on the matte's box: inside and outside it, every pass equals the result of
    running them on the whole frame (a margin as large as the frame makes the box the frame)."""
    from portrait_relight.inference.stages import geometry, matting

    plate = np.pad(astronaut[::2, ::2], ((0, 0), (64, 64), (0, 0)), mode="edge")  # 256 x 384, room beside
    settings = RelightSettings()
    matte = matting.estimate_matte(plate, settings)
    alpha = matte.alpha.copy()
    alpha[:, :40] = 0.0  # make sure the box is smaller than the frame
    shape = geometry.estimate_normals(plate, alpha, settings)
    environment = side_light(left=True)
    rows, cols = pipeline.subject_box(alpha)
    assert (rows.stop - rows.start) * (cols.stop - cols.start) < alpha.size
    inputs = (matte.foreground, alpha, shape.normal, shape.face_mask, environment, settings)
    boxed = pipeline.relight_subject(*inputs)
    monkeypatch.setattr(pipeline, "SUBJECT_MARGIN", max(alpha.shape))
    framed = pipeline.relight_subject(*inputs)
    assert pipeline.subject_box(alpha) == (slice(0, alpha.shape[0]), slice(0, alpha.shape[1]))
    for name in ("albedo", "diffuse"):
        np.testing.assert_allclose(getattr(boxed, name), getattr(framed, name), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(boxed.shaded.relit, framed.shaded.relit, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(boxed.shaded.specular, framed.shaded.specular, rtol=1e-5, atol=1e-6)
    assert boxed.shaded.relit[..., 3].max() > 0.9
