"""./relight refuses every bad input with one stderr line naming the file (or option) and writes nothing into --out;
unusual but valid plates (CMYK, 16-bit grey, palette, RGBA, EXIF-rotated, unicode paths) relight like the plain RGB
picture. Complements tests/test_cli.py (missing/empty/truncated/corrupt plates, 2:1 and NaN HDRIs, lighting-source
and output-folder errors are tested there)."""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli import RELIGHT, assert_input_error, make_world_blend, run_cli, write_exr

SIZE = 256  # the astronaut at this size is found by the segmentation in a few seconds per run
BOMB_SIDE = 60000  # what a decompression bomb's header claims: 10 GiB of 8-bit RGB, 40 GiB as float32


def assert_refused(done: subprocess.CompletedProcess, out: Path, *fragments, code: int = 1) -> None:
    """Exit `code`, one stderr line with every fragment, no traceback, and nothing left behind: a run that made the
    --out folder (and its parents) and then failed removes them again."""
    assert_input_error(done, *fragments, code=code)
    assert not out.exists(), sorted(out.iterdir())


def save_png_chunks(path: Path, width: int, height: int, bit_depth: int) -> Path:
    """A tiny PNG whose IHDR claims width x height RGB pixels (its IDAT holds almost nothing)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(4096)))
                     + chunk(b"IEND", b""))
    return path


def bomb_files(root: Path, picture) -> dict[str, Path]:
    """Small files of every plate format whose headers claim BOMB_SIDE x BOMB_SIDE pixels."""
    import tifffile

    bombs = {"bomb_png": save_png_chunks(root / "bomb.png", BOMB_SIDE, BOMB_SIDE, 8),
             "bomb_png16": save_png_chunks(root / "bomb16.png", BOMB_SIDE, BOMB_SIDE, 16)}
    picture.save(root / "small.jpg")
    jpeg = bytearray((root / "small.jpg").read_bytes())
    start_of_frame = jpeg.index(b"\xff\xc0")  # marker, length, precision, then height and width
    struct.pack_into(">HH", jpeg, start_of_frame + 5, BOMB_SIDE, BOMB_SIDE)
    (root / "bomb.jpg").write_bytes(bytes(jpeg))
    bombs["bomb_jpg"] = root / "bomb.jpg"
    tifffile.imwrite(root / "bomb.tif", np.zeros((40, 40, 3), np.uint8))
    with tifffile.TiffFile(root / "bomb.tif", mode="r+b") as tiff:
        tiff.pages[0].tags["ImageWidth"].overwrite(BOMB_SIDE)
        tiff.pages[0].tags["ImageLength"].overwrite(BOMB_SIDE)
    bombs["bomb_tif"] = root / "bomb.tif"
    exr = bytearray(write_exr(root / "small.exr", np.ones((16, 16, 3), np.float32)).read_bytes())
    key = b"dataWindow\0box2i\0"
    struct.pack_into("<4i", exr, exr.index(key) + len(key) + 4, 0, 0, BOMB_SIDE - 1, BOMB_SIDE - 1)
    (root / "bomb.exr").write_bytes(bytes(exr))
    bombs["bomb_exr"] = root / "bomb.exr"
    (root / "bomb.hdr").write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n"
                                    + f"-Y {BOMB_SIDE} +X {BOMB_SIDE}\n".encode() + bytes(4096))
    bombs["bomb_hdr"] = root / "bomb.hdr"
    return bombs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("cli_bad_inputs")
    picture = Image.fromarray(data.astronaut()).resize((SIZE, SIZE), Image.LANCZOS)
    picture.save(root / "astronaut.png")
    rng = np.random.default_rng(0)
    files = {"root": root, "plate": root / "astronaut.png",
             "hdri": write_exr(root / "sky.exr", (rng.random((64, 128, 3)) * 2 + 0.1).astype(np.float32))}
    for suffix in ("png", "jpg", "exr"):
        files[f"garbage_{suffix}"] = root / f"garbage.{suffix}"
        files[f"garbage_{suffix}"].write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    files["folder"] = root / "folder.png"
    files["folder"].mkdir()
    Image.new("RGB", (1, 1), (200, 150, 120)).save(root / "one.png")
    picture.resize((8, 8), Image.LANCZOS).save(root / "tiny.png")
    files.update(one=root / "one.png", tiny=root / "tiny.png", white=root / "white.png", black=root / "black.png")
    Image.new("RGB", (SIZE, SIZE), (255, 255, 255)).save(files["white"])
    Image.new("RGB", (SIZE, SIZE), (0, 0, 0)).save(files["black"])
    files.update(bomb_files(root, picture))
    infinite = np.ones((32, 64, 3), np.float32)
    infinite[4, 9, 2] = np.inf
    negative = np.ones((32, 64, 3), np.float32)
    negative[16:] = -0.5  # half the panorama "emits" negative light: not radiance
    files.update(inf_hdri=write_exr(root / "inf.exr", infinite),
                 negative_hdri=write_exr(root / "negative.exr", negative),
                 dark_hdri=write_exr(root / "dark.exr", np.zeros((32, 64, 3), np.float32)))
    whole = files["hdri"].read_bytes()
    files["truncated_hdri"] = root / "truncated.exr"
    files["truncated_hdri"].write_bytes(whole[: len(whole) // 2])
    files["garbage_blend"] = root / "garbage.blend"
    files["garbage_blend"].write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    files["garbage_movie"] = root / "clip.mp4"
    files["garbage_movie"].write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    sequence = root / "sequence"
    sequence.mkdir()
    for frame in (1, 2):
        picture.save(sequence / f"shot.{frame:04d}.png")
    files["sequence"] = sequence / "shot.####.png"
    return files


@pytest.fixture(scope="module")
def blends(inputs) -> dict[str, Path]:
    """A .blend whose scene has no world, and one whose world lights it but which has no camera."""
    import bpy

    root = inputs["root"]
    make_world_blend(root / "complete.blend", inputs["hdri"])
    bpy.context.scene.world = None
    bpy.ops.wm.save_as_mainfile(filepath=str(root / "no_world.blend"), copy=True)
    make_world_blend(root / "complete.blend", inputs["hdri"])
    bpy.data.objects.remove(bpy.context.scene.camera)
    bpy.ops.wm.save_as_mainfile(filepath=str(root / "no_camera.blend"), copy=True)
    return {"no_world": root / "no_world.blend", "no_camera": root / "no_camera.blend"}


# ------------------------------------------------------------------------------------------------- bad plates
@pytest.mark.parametrize("name, fragment", [
    ("garbage_png", "cannot read image"),
    ("garbage_jpg", "cannot read image"),
    ("garbage_exr", "cannot read image"),
    ("folder", "is a folder, not a file"),
    ("one", "image is 1x1 pixels, smaller than the minimum 32 px on the short side"),
    ("tiny", "image is 8x8 pixels, smaller than the minimum 32 px on the short side"),
    ("white", "no person found"),
    ("black", "no person found"),
])
def test_bad_plates_are_refused(inputs, tmp_path, name, fragment):
    out = tmp_path / "out"
    assert_refused(run_cli(inputs[name], "--out", out, "--hdri", inputs["hdri"]), out, inputs[name], fragment)


@pytest.mark.parametrize("name", ["bomb_png", "bomb_png16", "bomb_jpg", "bomb_tif", "bomb_exr", "bomb_hdr"])
def test_decompression_bombs_are_refused_from_the_header(inputs, tmp_path, name):
    """A few KiB claiming 60000x60000 pixels: refused with the claimed size before any pixel is decoded (decoding
    would need tens of GiB or fail with the library's own message), as a plate and as an HDRI."""
    too_large = f"is {BOMB_SIDE}x{BOMB_SIDE} pixels, larger than the maximum 16384 px on the long side"
    out = tmp_path / "out"
    assert_refused(run_cli(inputs[name], "--out", out, "--hdri", inputs["hdri"]), out, inputs[name], too_large)
    assert_refused(run_cli(inputs["plate"], "--out", out, "--hdri", inputs[name]), out, inputs[name], too_large)


# ---------------------------------------------------------------------------------------------- bad lighting
@pytest.mark.parametrize("name, fragment", [
    ("missing", "file does not exist"),
    ("truncated_hdri", "cannot read image (EXR_ERR"),  # OpenEXR's own printed reason, not a second stderr line
    ("inf_hdri", "NaN or Inf"),
    ("negative_hdri", "negative light"),
    ("dark_hdri", "no positive light"),
])
def test_bad_hdris_are_refused(inputs, tmp_path, name, fragment):
    hdri = inputs["root"] / "missing.exr" if name == "missing" else inputs[name]
    out = tmp_path / "out"
    assert_refused(run_cli(inputs["plate"], "--out", out, "--hdri", hdri), out, hdri, fragment)


@pytest.mark.parametrize("name, fragment", [
    ("garbage_blend", "not a readable .blend file"),
    ("no_world", "scene 'Scene' has no world"),
    ("no_camera", "scene 'Scene' has no active camera"),
])
def test_bad_world_blends_are_refused(inputs, blends, tmp_path, name, fragment):
    blend = inputs.get(name) or blends[name]
    out = tmp_path / "out"
    assert_refused(run_cli(inputs["plate"], "--out", out, "--world-blend", blend), out, blend.name, fragment)


def test_corrupt_background_is_refused(inputs, tmp_path):
    out = tmp_path / "out"
    for lighting in (("--hdri", inputs["hdri"]), ()):  # composited onto, and also the source of the light
        done = run_cli(inputs["plate"], "--out", out, *lighting, "--background", inputs["garbage_png"])
        assert_refused(done, out, inputs["garbage_png"], "cannot read image")


def test_black_background_is_refused_as_a_light_source_but_composited_onto(inputs, tmp_path):
    """A pure black background has no light to estimate: refused, naming it, when it is the light source; with
    an HDRI it is only what the subject goes over, and a black backdrop is fine."""
    from PIL import Image

    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(black)
    out = tmp_path / "out"
    assert_refused(run_cli(inputs["plate"], "--out", out, "--background", black), out, black,
                   "background image is black: there is no light to estimate from it")
    done = run_cli(inputs["plate"], "--out", out, "--hdri", inputs["hdri"], "--background", black)
    assert done.returncode == 0, done.stderr
    assert (out / "astronaut.exr").is_file()


# ----------------------------------------------------------------------------------------------- bad options
@pytest.mark.parametrize("option, value, fragment", [
    ("--fov", "0", "--fov 0: the field of view must be more than 0 and less than 180 degrees"),
    ("--fov", "180", "--fov 180: the field of view must be more than 0"),
    ("--fov", "-20", "--fov -20: the field of view must be more than 0"),
    ("--fov", "nan", "--fov nan: the field of view must be more than 0"),
    ("--fov", "inf", "--fov inf: the field of view must be more than 0"),
    ("--hdri-rotation", "nan", "--hdri-rotation nan: the HDRI rotation must be a finite number of degrees"),
    ("--hdri-rotation", "inf", "--hdri-rotation inf: the HDRI rotation must be a finite number"),
    ("--hdri-rotation", "-inf", "--hdri-rotation -inf: the HDRI rotation must be a finite number"),
    ("--threads", "0", "--threads 0: must be 1 or more (leave it out to let the runtime decide)"),
    ("--threads", "-3", "--threads -3: must be 1 or more"),
])
def test_bad_option_values_exit_2(inputs, tmp_path, option, value, fragment):
    out = tmp_path / "out"
    done = run_cli(inputs["plate"], "--out", out, "--hdri", inputs["hdri"], f"{option}={value}")
    assert_refused(done, out, fragment, code=2)


@pytest.mark.parametrize("lighting, fov", [("--hdri", "179"), ("--background", "0.5")])
def test_fov_just_inside_the_open_range_is_accepted(inputs, tmp_path, lighting, fov):
    """Any angle in (0, 180) works, with an HDRI and with the panorama estimated from the background (whose plate
    then covers less than one panorama pixel)."""
    out = tmp_path / "out"
    light = inputs["hdri"] if lighting == "--hdri" else inputs["plate"]
    done = run_cli(inputs["plate"], "--out", out, lighting, light, "--fov", fov, "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.exr", "astronaut_preview.png"]


@pytest.mark.parametrize("frames, fragment", [
    ("1-", "'1-' is not a frame number or an A-B range"),
    ("a-b", "'a-b' is not a frame number or an A-B range"),
    ("5-2", "range '5-2' ends before it starts"),
    ("1,,2", "'' is not a frame number or an A-B range"),
])
def test_malformed_frames_exit_2(inputs, tmp_path, frames, fragment):
    out = tmp_path / "out"
    done = run_cli(inputs["sequence"], "--out", out, "--hdri", inputs["hdri"], f"--frames={frames}")
    assert_refused(done, out, f"--frames '{frames}'", fragment, code=2)


@pytest.mark.parametrize("plate, frames, fragment", [
    ("sequence", "2-5", "frames 3-5 do not exist (available: 1-2)"),
    ("empty_pattern", None, "no frames match this pattern"),
    ("garbage_movie", None, "cannot read movie"),
    ("garbage_movie", "1", "cannot read movie"),
])
def test_bad_shots_are_refused_before_any_frame(inputs, tmp_path, plate, frames, fragment):
    source = inputs["sequence"].with_name("take.####.png") if plate == "empty_pattern" else inputs[plate]
    out = tmp_path / "out"
    done = run_cli(source, "--out", out, "--hdri", inputs["hdri"], *(["--frames", frames] if frames else []))
    assert_refused(done, out, source, fragment)


# ------------------------------------------------------------------------------- unusual but valid plates
def relight(plate: Path, out: Path, hdri: Path) -> dict[str, np.ndarray]:
    """Run ./relight; it must succeed and write exactly the EXR and preview named after the plate."""
    from portrait_relight.inference.io.exr import read_passes

    done = run_cli(plate, "--out", out, "--hdri", hdri)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"{plate.stem}.exr", f"{plate.stem}_preview.png"]
    return read_passes(out / f"{plate.stem}.exr")


def assert_relit_alike(passes: dict, reference: dict, composite_tolerance: float) -> None:
    """Same size, same matte, and a composite within `composite_tolerance` (mean absolute, linear) of the
    reference's: the variant was decoded as the same picture. (For scale: decoding the astronaut as grey, or with
    red and blue swapped, is 0.1-0.17 off with a matte 0.03-0.06 off; the JPEG and palette variants are 0.004-0.013
    off.)"""
    assert passes["composite"].shape == reference["composite"].shape
    assert np.abs(passes["alpha"] - reference["alpha"]).mean() < 0.02
    difference = np.abs(passes["composite"] - reference["composite"]).mean()
    assert difference < composite_tolerance, difference


@pytest.fixture(scope="module")
def plain(inputs, tmp_path_factory) -> dict[str, np.ndarray]:
    return relight(inputs["plate"], tmp_path_factory.mktemp("plain") / "out", inputs["hdri"])


@pytest.mark.parametrize("variant", ["cmyk_jpeg", "palette_png", "rgba_png"])
def test_colour_variants_relight_like_the_rgb_picture(inputs, plain, tmp_path, variant):
    """CMYK JPEG (converted to RGB), palette PNG (expanded) and RGBA PNG (alpha ignored: the matting finds the
    subject; transparent pixels keep their colour) relight like the RGB PNG."""
    from PIL import Image

    picture = Image.open(inputs["plate"])
    if variant == "cmyk_jpeg":
        path, tolerance = tmp_path / "portrait.jpg", 0.02  # JPEG loss
        picture.convert("CMYK").save(path, quality=95)
        assert Image.open(path).mode == "CMYK"
    elif variant == "palette_png":
        path, tolerance = tmp_path / "portrait.png", 0.03  # 256 colours
        picture.quantize(256).save(path)
        assert Image.open(path).mode == "P"
    else:
        path, tolerance = tmp_path / "portrait.png", 1e-4
        rgba = np.dstack([np.asarray(picture), np.tile(np.linspace(0, 255, SIZE, dtype=np.uint8), (SIZE, 1))])
        Image.fromarray(rgba).save(path)
        assert Image.open(path).mode == "RGBA"
    assert_relit_alike(relight(path, tmp_path / "out", inputs["hdri"]), plain, tolerance)


def test_16bit_grey_png_relights_like_the_8bit_grey_rgb_picture(inputs, tmp_path):
    from PIL import Image

    grey = np.asarray(Image.open(inputs["plate"]).convert("L"))
    Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(tmp_path / "grey_rgb.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")  # the same levels, 16 bits
    with Image.open(tmp_path / "grey16.png") as image:
        assert image.mode.startswith("I")
    reference = relight(tmp_path / "grey_rgb.png", tmp_path / "rgb", inputs["hdri"])
    assert_relit_alike(relight(tmp_path / "grey16.png", tmp_path / "out", inputs["hdri"]), reference, 1e-4)


def test_exif_rotated_jpegs_come_out_upright(inputs, tmp_path):
    """Orientation 6 and 8: the stored pixels are turned; the plate relights upright, in its displayed size."""
    from PIL import Image

    upright = Image.open(inputs["plate"]).crop((28, 0, 228, SIZE))  # portrait format: 200 x 256
    upright.save(tmp_path / "upright.png")
    reference = relight(tmp_path / "upright.png", tmp_path / "reference", inputs["hdri"])
    assert reference["composite"].shape == (SIZE, 200, 3)
    for orientation, stored in ((6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)):
        path = tmp_path / f"turned{orientation}.jpg"
        turned = upright.transpose(stored)  # what the camera stored: displayed after turning it back
        exif = turned.getexif()
        exif[0x0112] = orientation
        turned.save(path, exif=exif, quality=95, subsampling=0)
        assert Image.open(path).size == (SIZE, 200)
        assert_relit_alike(relight(path, tmp_path / f"out{orientation}", inputs["hdri"]), reference, 0.03)


def test_unicode_and_spaces_in_paths(inputs, plain, tmp_path):
    folder = tmp_path / "çà ñ 日本"
    folder.mkdir()
    plate = folder / "plate é.png"
    plate.write_bytes(inputs["plate"].read_bytes())
    hdri = folder / "ciel bleu ☁.exr"
    hdri.write_bytes(inputs["hdri"].read_bytes())
    assert_relit_alike(relight(plate, tmp_path / "out dir" / "relit ü", hdri), plain, 1e-4)
    bad = folder / "cassé ☂.png"
    bad.write_bytes(b"not a png")
    assert_refused(run_cli(bad, "--out", tmp_path / "out dir 2", "--hdri", hdri), tmp_path / "out dir 2", bad,
                   "cannot read image")


# ------------------------------------------------------------------------------------------------ interrupt
def test_ctrl_c_stops_at_the_next_stage_exits_130_and_leaves_only_complete_frames(inputs, tmp_path):
    """Ctrl-C in the middle of a shot: the current stage finishes (nothing is left half-written), then one stderr
    line, exit 130, no temp or lock files."""
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, str(RELIGHT), str(inputs["sequence"]), "--out", str(out), "--hdri",
                                str(inputs["hdri"])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        assert first.startswith("relighting 2 frame(s)"), first
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, (process.returncode, stderr)
    assert stderr.strip().splitlines() == ["relight: interrupted"]
    assert "stopping after the current stage" in stdout
    # the folder stays only when a frame completed before the interrupt (a run that wrote nothing removes it)
    names = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not [name for name in names if name.startswith(".")], names  # no temp or lock files left
    assert all(name.replace(".exr", "_preview.png") in names for name in names if name.endswith(".exr")), names
