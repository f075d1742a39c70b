"""Plate/HDRI reading: every supported format decodes to the same scene-linear pixels; bad files fail cleanly."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from portrait_relight.inference.errors import RelightInputError
from portrait_relight.inference.io import imageio


@pytest.fixture(scope="module")
def gradient16() -> np.ndarray:
    """A 16-bit RGB test card with values 8-bit quantisation would destroy."""
    y, x = np.mgrid[0:24, 0:32]
    r = (x * 2047 + y * 3) % 65536
    g = (y * 2731 + 17) % 65536
    b = ((x + y) * 1000 + 5) % 65536
    return np.stack([r, g, b], axis=-1).astype(np.uint16)


def test_srgb_transfer_round_trip():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    assert np.allclose(imageio.linear_to_srgb(imageio.srgb_to_linear(x)), x, atol=1e-5)
    # Known points of the sRGB EOTF
    assert imageio.srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-4)
    assert imageio.srgb_to_linear(np.float32(0.04)) == pytest.approx(0.04 / 12.92, abs=1e-7)


def test_8bit_png_and_jpeg_are_srgb_decoded(tmp_path):
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 128, 255, 0
    Image.fromarray(rgb).save(tmp_path / "a.png")
    plate = imageio.read_plate(tmp_path / "a.png")
    assert plate.shape == (8, 10, 3) and plate.dtype == np.float32
    assert plate[0, 0] == pytest.approx([imageio.srgb_to_linear(np.float32(128 / 255)), 1.0, 0.0], abs=1e-6)
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=100)
    assert np.abs(imageio.read_plate(tmp_path / "a.jpg") - plate).max() < 0.02


def test_grey_and_rgba_become_rgb(tmp_path):
    Image.fromarray(np.full((5, 6), 200, np.uint8)).save(tmp_path / "g.png")
    grey = imageio.read_plate(tmp_path / "g.png")
    assert grey.shape == (5, 6, 3) and np.allclose(grey, imageio.srgb_to_linear(np.float32(200 / 255)))
    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., 2], rgba[..., 3] = 255, 10
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert np.allclose(imageio.read_plate(tmp_path / "a.png")[0, 0], [0, 0, 1])


@pytest.mark.parametrize("layout", ["RGB", "RGBA", "L", "LA"])
def test_16bit_png_keeps_precision(tmp_path, gradient16, layout):
    """Every 16-bit PNG layout, written by pypng (an independent encoder), reads back with all 16 bits."""
    import png

    h, w, _ = gradient16.shape
    pixels = {"RGB": gradient16, "RGBA": np.dstack([gradient16, np.full((h, w), 40000, np.uint16)]),
              "L": gradient16[..., :1], "LA": np.dstack([gradient16[..., :1], np.full((h, w), 9, np.uint16)])}[layout]
    with open(tmp_path / "c.png", "wb") as f:
        png.Writer(w, h, greyscale=layout.startswith("L"), alpha=layout.endswith("A"), bitdepth=16).write(
            f, pixels.reshape(h, -1))
    plate = imageio.read_plate(tmp_path / "c.png")
    colour = gradient16 if layout.startswith("RGB") else np.repeat(gradient16[..., :1], 3, axis=-1)
    expected = imageio.srgb_to_linear(colour / 65535.0)
    assert plate.shape == (h, w, 3) and np.abs(plate - expected).max() < 1e-5


def test_tiff_16bit_and_float(tmp_path, gradient16):
    tifffile.imwrite(tmp_path / "c.tif", gradient16)
    assert np.abs(imageio.read_plate(tmp_path / "c.tif") - imageio.srgb_to_linear(gradient16 / 65535.0)).max() < 1e-5
    linear = np.random.default_rng(1).random((6, 7, 3), dtype=np.float32) * 4
    tifffile.imwrite(tmp_path / "f.tiff", linear, photometric="rgb")
    assert np.array_equal(imageio.read_plate(tmp_path / "f.tiff"), linear)  # float TIFF is already linear


def test_exr_plate_is_linear(tmp_path):
    import OpenEXR

    linear = np.random.default_rng(2).random((6, 8, 3), dtype=np.float32) * 10
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, {"RGB": linear}) as f:
        f.write(str(tmp_path / "p.exr"))
    assert np.allclose(imageio.read_plate(tmp_path / "p.exr"), linear)


def test_exif_orientation_is_honoured(tmp_path):
    rgb = np.zeros((4, 8, 3), np.uint8)
    rgb[:, :4] = 255  # left half white
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "o.jpg", exif=exif, quality=100)
    plate = imageio.read_plate(tmp_path / "o.jpg")
    assert plate.shape == (8, 4, 3)
    assert plate[:3].mean() > 0.9 and plate[5:].mean() < 0.1  # the white half is now on top


def test_radiance_hdr_reads_shared_hdri(shared_dir):
    hdri = imageio.read_hdri(shared_dir / "data/hdri/venice_sunset_1k.hdr")
    assert hdri.shape == (512, 1024, 3)
    assert hdri.max() > 100  # the sun is a real HDR value, not clipped
    assert np.isfinite(hdri).all() and hdri.min() >= 0


@pytest.mark.parametrize(
    "name,content,problem",
    [
        ("empty.png", b"", "file is empty"),
        ("corrupt.png", b"\x89PNG\r\n\x1a\nthis is not a png at all" * 4, "cannot read image"),
        ("corrupt.jpg", b"\xff\xd8\xff\xe0 not really a jpeg" * 8, "cannot read image"),
        ("corrupt.exr", b"v/1\x01" + b"\x00" * 64, "cannot read image"),
        ("plate.gif", b"GIF89a", "unsupported image format"),
    ],
)
def test_bad_files_raise_one_clear_error(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(RelightInputError) as info:
        imageio.read_plate(path)
    message = str(info.value)
    assert message.startswith(str(path)) and problem in message and "\n" not in message


def test_missing_and_truncated(tmp_path):
    with pytest.raises(RelightInputError, match="does not exist"):
        imageio.read_plate(tmp_path / "nope.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(RelightInputError, match="cannot read image"):
        imageio.read_plate(tmp_path / "t.png")


def test_hdri_must_be_2_to_1_and_finite(tmp_path):
    import OpenEXR

    def write(name, pixels):
        with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, {"RGB": pixels}) as f:
            f.write(str(tmp_path / name))
        return tmp_path / name

    with pytest.raises(RelightInputError, match="not an equirectangular 2:1"):
        imageio.read_hdri(write("square.exr", np.ones((16, 16, 3), np.float32)))
    bad = np.ones((16, 32, 3), np.float32)
    bad[3, 4, 1] = np.nan
    with pytest.raises(RelightInputError, match="NaN or Inf"):
        imageio.read_hdri(write("nan.exr", bad))
    good = np.ones((16, 32, 3), np.float32)
    assert imageio.read_hdri(write("ok.exr", good)).shape == (16, 32, 3)
