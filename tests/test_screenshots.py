"""tools/screenshots.py (the README's images) at a small size (128 px): each image exists and shows what its caption
says.

- compositor: the compositor render at default gains equals the EXR's composite pass (where alpha = 1, away from
  the matte edge), the rebalanced render equals albedo*diffuse*0.6 + specular*2 there, and the sheet's panels
  are those renders.
- card: the Cycles render of the relit card, lit from the camera's left, is brighter on the subject's left half
  than its right half by more than the albedo alone explains.
- sequencer: the sequencer render of the relit strip (above the plate strip) shows the relit composite, and with
  it muted shows the plate.
"""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import screenshots  # noqa: E402  (tools/ is on the test path)

from portrait_relight.inference.io.exr import read_passes  # noqa: E402
from portrait_relight.inference.io.imageio import linear_to_srgb  # noqa: E402

SIZE = 128  # the face detector needs about this much


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def solid(alpha: np.ndarray) -> np.ndarray:
    """alpha == 1 and not next to a pixel with alpha < 1."""
    inside = alpha >= 0.999
    core = inside.copy()
    core[1:] &= inside[:-1]
    core[:-1] &= inside[1:]
    core[:, 1:] &= inside[:, :-1]
    core[:, :-1] &= inside[:, 1:]
    return core


def panel(path, box) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))[box[1]:box[3], box[0]:box[2]]


@pytest.fixture(scope="module", autouse=True)
def operators_registered():
    screenshots.register_operators()
    yield
    screenshots.unregister_operators()


@pytest.fixture(scope="module")
def compositor_result(tmp_path_factory):
    return screenshots.render_compositor(tmp_path_factory.mktemp("compositor"), SIZE)


def test_compositor_render_is_the_exr_composite_and_the_gains_rebalance_it(compositor_result, tmp_path):
    passes = read_passes(compositor_result["exr"])
    core = solid(passes["alpha"])
    assert core.sum() > 0.2 * SIZE * SIZE
    default, rebalanced = compositor_result["default"], compositor_result["rebalanced"]
    np.testing.assert_allclose(default[core], passes["composite"][core], rtol=1e-3, atol=1e-3)
    expected = (passes["albedo"] * passes["diffuse"] * screenshots.GAINS["Diffuse Gain"]
                + passes["specular"] * screenshots.GAINS["Specular Gain"])
    np.testing.assert_allclose(rebalanced[core], expected[core], rtol=1e-3, atol=1e-3)
    assert np.abs(rebalanced[core] - default[core]).mean() > 0.02  # the sliders visibly change the picture

    image, boxes = screenshots.compositor_sheet(compositor_result)
    path = screenshots.save_png(image, tmp_path / "compositor.png")
    (plate_box, default_box, rebalanced_box), = boxes
    np.testing.assert_array_equal(panel(path, plate_box), compositor_result["plate"])
    for box, linear in ((default_box, default), (rebalanced_box, rebalanced)):
        shown = panel(path, box).astype(np.float32) / 255
        np.testing.assert_allclose(shown[core], linear_to_srgb(np.clip(linear, 0, None))[core].clip(0, 1),
                                   atol=1.5 / 255)


def test_card_render_is_lit_from_the_left(compositor_result, tmp_path):
    result = screenshots.render_card(compositor_result["exr"], tmp_path / "card", SIZE, samples=8)
    assert result["light_side"] == "left"
    passes = read_passes(compositor_result["exr"])
    lum = luminance(result["render"].astype(np.float32) / 255)
    albedo = luminance(passes["albedo"])
    subject = solid(passes["alpha"])  # the card fills the frame: render pixels = EXR pixels
    left, right = subject.copy(), subject.copy()
    left[:, SIZE // 2:] = False
    right[:, : SIZE // 2] = False
    lit_ratio = lum[left].mean() / lum[right].mean()
    albedo_ratio = albedo[left].mean() / albedo[right].mean()
    assert lit_ratio > 1.3 * albedo_ratio, (lit_ratio, albedo_ratio)
    path = screenshots.save_png(screenshots.card_sheet(result), tmp_path / "card.png")
    assert path.stat().st_size > 0


def test_sequencer_render_shows_the_relit_strip_above_the_plate(tmp_path):
    result = screenshots.render_sequencer(tmp_path / "sequencer", SIZE, count=3)
    assert result["relit_channel"] > result["plate_channel"]
    assert len(result["plates"]) == len(result["relit"]) == len(result["strip_exrs"]) == 3
    for frame, (plate, relit, exr) in enumerate(zip(result["plates"], result["relit"], result["strip_exrs"]), 1):
        source = np.asarray(screenshots.astronaut(SIZE, shift=6 * (frame - 1)))
        assert np.abs(plate.astype(int) - source.astype(int)).mean() < 1.0, frame
        expected = linear_to_srgb(np.clip(read_passes(exr)["composite"], 0, None)).clip(0, 1) * 255
        assert np.abs(relit.astype(np.float32) - expected).mean() < 2.0, frame
        assert np.abs(relit.astype(int) - plate.astype(int)).mean() > 10, frame  # visibly relit
    image, boxes = screenshots.sequencer_sheet(result)
    path = screenshots.save_png(image, tmp_path / "sequencer.png")
    np.testing.assert_array_equal(panel(path, boxes[0][1]), result["relit"][1])  # top row: the relit strip
    np.testing.assert_array_equal(panel(path, boxes[1][1]), result["plates"][1])
