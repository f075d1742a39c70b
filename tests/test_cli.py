"""The ./relight command-line contract: outputs, exit codes, one-line errors, no partial files."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
RELIGHT = REPO_ROOT / "relight"
SIZE = 160  # small plates keep each pipeline run around a second
PASSES = {"alpha", "foreground", "normal", "albedo", "diffuse", "specular", "relit", "composite"}


def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RELIGHT), *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def assert_input_error(done, *fragments, code=1):
    """Non-zero exit, exactly one stderr line containing the fragments, no traceback."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])


def write_exr(path: Path, rgb: np.ndarray) -> Path:
    import OpenEXR

    channels = {c: np.ascontiguousarray(rgb[..., i], np.float32) for i, c in enumerate("RGB")}
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as f:
        f.write(str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("cli_inputs")
    plate = root / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((SIZE, SIZE), Image.LANCZOS).save(plate)
    background = root / "background.png"
    Image.fromarray(data.coffee()).resize((240, 160), Image.LANCZOS).save(background)
    rng = np.random.default_rng(0)
    hdri = write_exr(root / "sky.exr", (rng.random((128, 256, 3)) * 2 + 0.1).astype(np.float32))
    square = write_exr(root / "square.exr", np.ones((32, 32, 3), np.float32))
    nan = np.ones((32, 64, 3), np.float32)
    nan[5, 7, 1] = np.nan
    nan_hdri = write_exr(root / "nan.exr", nan)
    empty = root / "empty.png"
    empty.write_bytes(b"")
    truncated = root / "truncated.png"
    truncated.write_bytes(plate.read_bytes()[: plate.stat().st_size // 3])
    corrupt = root / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    unsupported = root / "portrait.xyz"
    unsupported.write_bytes(b"not an image format anyone knows")
    nobody = root / "rocket.png"  # a real photo with no person in it
    Image.fromarray(data.rocket()).save(nobody)
    return {"nobody": nobody, "root": root, "plate": plate, "background": background, "hdri": hdri, "square": square,
            "nan": nan_hdri, "empty": empty, "truncated": truncated, "corrupt": corrupt,
            "unsupported": unsupported}


def make_world_blend(path: Path, hdri: Path | None, mapping_z_deg: float = 0.0) -> Path:
    """A .blend whose camera looks along world +X (so the HDRI centre is straight ahead) with a 40° FOV."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    world = bpy.data.worlds.new("Test World")
    if hdri is not None:
        tree = world.node_tree
        texture = tree.nodes.new("ShaderNodeTexEnvironment")
        texture.image = bpy.data.images.load(str(hdri))
        mapping = tree.nodes.new("ShaderNodeMapping")
        mapping.inputs["Rotation"].default_value = (0.0, 0.0, math.radians(mapping_z_deg))
        coords = tree.nodes.new("ShaderNodeTexCoord")
        tree.links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
        tree.links.new(mapping.outputs["Vector"], texture.inputs["Vector"])
        tree.links.new(texture.outputs["Color"], tree.nodes["Background"].inputs["Color"])
    scene.world = world
    camera_data = bpy.data.cameras.new("Camera")
    camera_data.sensor_fit = "AUTO"
    camera_data.lens = camera_data.sensor_width / 2 / math.tan(math.radians(20.0))  # 40° FOV
    camera = bpy.data.objects.new("Camera", camera_data)
    camera.rotation_euler = (math.radians(90.0), 0.0, math.radians(-90.0))
    scene.collection.objects.link(camera)
    scene.camera = camera
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    return path


def onnxruntime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def read_outputs(out: Path, stem: str = "astronaut") -> dict:
    from portrait_relight.inference.io.exr import read_passes

    assert sorted(p.name for p in out.iterdir()) == [f"{stem}.exr", f"{stem}_preview.png"]
    passes = read_passes(out / f"{stem}.exr")
    assert PASSES <= set(passes)
    assert passes["composite"].shape == (SIZE, SIZE, 3)
    return passes


def test_hdri_lighting_writes_exr_and_preview(files, tmp_path):
    out = tmp_path / "out"
    done = run_cli(files["plate"], "--out", out, "--hdri", files["hdri"], "--hdri-rotation", "30")
    assert done.returncode == 0, done.stderr
    assert "matting" in done.stdout and "total" in done.stdout  # per-stage timings
    passes = read_outputs(out)
    assert np.isfinite(passes["relit"]).all() and passes["diffuse"].max() > 0


def test_learned_normals_run_end_to_end(files, tmp_path):
    """--normals learned: the bundled geometry net's normals are the EXR's normal pass (unit inside the matte,
    toward the camera), and they differ from the classical stage's. Asked for DirectML, which this Linux
    onnxruntime lacks, every model runs on the CPU after one line saying so."""
    learned, classical = tmp_path / "learned", tmp_path / "classical"
    done = run_cli(files["plate"], "--out", learned, "--hdri", files["hdri"], "--normals", "learned",
                   "--provider", "directml")
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if "execution provider" in line] == [
        f"Portrait Relight: this onnxruntime ({onnxruntime_version()}) has no DirectML execution provider; "
        "running on the CPU"]
    done = run_cli(files["plate"], "--out", classical, "--hdri", files["hdri"], "--normals", "classical")
    assert done.returncode == 0, done.stderr
    a, b = read_outputs(learned), read_outputs(classical)
    inside = a["alpha"] > 0
    assert np.allclose(np.linalg.norm(a["normal"][inside], axis=-1), 1.0, atol=1e-3)
    assert np.all(a["normal"][~inside] == 0) and a["normal"][inside][:, 2].mean() > 0.3
    assert np.abs(a["normal"] - b["normal"])[inside].mean() > 0.01
    assert_input_error(run_cli(files["plate"], "--out", tmp_path / "x", "--hdri", files["hdri"], "--normals", "net"),
                       "--normals", code=2)


def test_learned_albedo_runs_end_to_end(files, tmp_path):
    """--albedo learned: the bundled albedo net's albedo is the EXR's albedo pass (in [0, 1], 0 outside the
    matte, not the classical stage's) and the relit pass is still albedo * diffuse + specular."""
    learned, classical = tmp_path / "learned", tmp_path / "classical"
    done = run_cli(files["plate"], "--out", learned, "--hdri", files["hdri"], "--albedo", "learned")
    assert done.returncode == 0, done.stderr
    done = run_cli(files["plate"], "--out", classical, "--hdri", files["hdri"], "--albedo", "classical")
    assert done.returncode == 0, done.stderr
    a, b = read_outputs(learned), read_outputs(classical)
    inside = a["alpha"] > 0
    assert a["albedo"].min() >= 0.0 and a["albedo"].max() <= 1.0 + 1e-3 and np.all(a["albedo"][~inside] == 0)
    assert np.abs(a["albedo"] - b["albedo"])[inside].mean() > 0.01
    composed = a["albedo"] * a["diffuse"] + a["specular"]
    np.testing.assert_allclose(a["relit"][..., :3][inside], composed[inside], rtol=2e-3, atol=2e-3)  # half floats
    assert_input_error(run_cli(files["plate"], "--out", tmp_path / "x", "--hdri", files["hdri"], "--albedo", "net"),
                       "--albedo", code=2)


def test_learned_shading_runs_end_to_end(files, tmp_path):
    """--shading learned: the bundled shading net writes its diffuse shading and blended specular as the passes,
    so relit is still albedo * diffuse + specular; its diffuse differs from the raw light map the classical
    shading writes, and the albedo (not its stage) is untouched."""
    learned, classical = tmp_path / "learned", tmp_path / "classical"
    done = run_cli(files["plate"], "--out", learned, "--hdri", files["hdri"], "--shading", "learned")
    assert done.returncode == 0, done.stderr
    done = run_cli(files["plate"], "--out", classical, "--hdri", files["hdri"], "--shading", "classical")
    assert done.returncode == 0, done.stderr
    a, b = read_outputs(learned), read_outputs(classical)
    inside = a["alpha"] > 0
    np.testing.assert_allclose(a["albedo"], b["albedo"], atol=1e-3)
    assert np.abs(np.log((a["diffuse"] + 1e-3) / (b["diffuse"] + 1e-3)))[inside].mean() > 0.01
    assert a["specular"].min() >= 0.0 and np.all(a["specular"][~inside] == 0)
    composed = a["albedo"] * a["diffuse"] + a["specular"]
    np.testing.assert_allclose(a["relit"][..., :3][inside], composed[inside], rtol=2e-3, atol=2e-3)  # half floats
    assert_input_error(run_cli(files["plate"], "--out", tmp_path / "x", "--hdri", files["hdri"], "--shading", "net"),
                       "--shading", code=2)


def test_world_blend_lights_like_the_equivalent_hdri(files, tmp_path):
    blend = make_world_blend(tmp_path / "world.blend", files["hdri"], mapping_z_deg=30.0)
    by_world, by_hdri, turned = tmp_path / "world", tmp_path / "hdri", tmp_path / "turned"
    assert run_cli(files["plate"], "--out", by_world, "--world-blend", blend).returncode == 0
    assert run_cli(files["plate"], "--out", by_hdri, "--hdri", files["hdri"], "--hdri-rotation", "30").returncode == 0
    assert run_cli(files["plate"], "--out", turned, "--hdri", files["hdri"], "--hdri-rotation", "-60").returncode == 0
    world, hdri, other = read_outputs(by_world), read_outputs(by_hdri), read_outputs(turned)
    np.testing.assert_allclose(world["diffuse"], hdri["diffuse"], atol=2e-3)
    assert np.abs(world["diffuse"] - other["diffuse"]).max() > 0.01  # the rotation really matters


def test_background_alone_lights_and_backs_the_subject(files, tmp_path):
    out = tmp_path / "out"
    done = run_cli(files["plate"], "--out", out, "--background", files["background"], "--fov", "50")
    assert done.returncode == 0, done.stderr
    passes = read_outputs(out)
    corner = passes["composite"][:8, :8][passes["alpha"][:8, :8] < 0.01]
    assert corner.size and corner.mean() > 0.01  # the background plate shows where there is no subject


@pytest.mark.parametrize("extra, fragment", [
    (("--hdri", "HDRI", "--world-blend", "x.blend"), "exclude each other"),
    ((), "no lighting source"),
    (("--hdri-rotation", "20", "--background", "BG"), "--hdri-rotation needs --hdri"),
])
def test_option_errors(files, tmp_path, extra, fragment):
    extra = [files["hdri"] if a == "HDRI" else files["background"] if a == "BG" else a for a in extra]
    out = tmp_path / "out"
    assert_input_error(run_cli(files["plate"], "--out", out, *extra), fragment, code=2)
    assert not out.exists()  # nothing left behind, not even the folder


@pytest.mark.parametrize("name, fragment", [
    ("missing", "does not exist"), ("empty", "file is empty"), ("truncated", "cannot read image"),
    ("corrupt", "cannot read image"), ("unsupported", "unsupported image format"), ("nobody", "no person found"),
])
def test_bad_plates_fail_with_one_line_and_no_output(files, tmp_path, name, fragment):
    plate = files["root"] / "does_not_exist.png" if name == "missing" else files[name]
    out = tmp_path / "out"
    done = run_cli(plate, "--out", out, "--hdri", files["hdri"])
    assert_input_error(done, plate, fragment)
    assert not out.exists()  # nothing left behind, not even the folder


@pytest.mark.parametrize("name, fragment", [("square", "2:1"), ("nan", "NaN")])
def test_bad_hdris_are_named(files, tmp_path, name, fragment):
    out = tmp_path / "out"
    assert_input_error(run_cli(files["plate"], "--out", out, "--hdri", files[name]), files[name], fragment)
    assert not out.exists()  # nothing left behind, not even the folder


def test_world_without_environment_texture(files, tmp_path):
    blend = make_world_blend(tmp_path / "plain.blend", None)
    out = tmp_path / "out"
    done = run_cli(files["plate"], "--out", out, "--world-blend", blend)
    assert_input_error(done, blend, "no Environment Texture")
    assert not out.exists()  # nothing left behind, not even the folder


def test_unwritable_output_folder(files, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    done = run_cli(files["plate"], "--out", blocker / "out", "--hdri", files["hdri"])
    assert_input_error(done, blocker, "output folder")
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert_input_error(run_cli(files["plate"], "--out", locked, "--hdri", files["hdri"]), locked, "writable")


def test_user_models_folder_is_used_and_validated(files, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    broken = models / "selfie_segmentation.onnx"
    broken.write_bytes(b"not an onnx model")
    out = tmp_path / "out"
    done = run_cli(files["plate"], "--out", out, "--hdri", files["hdri"], "--models-dir", models, "--threads", "1")
    assert_input_error(done, broken, "not a usable ONNX model")
    assert not out.exists()  # the failed run removed the folder it had made
    assert_input_error(run_cli(files["plate"], "--out", out, "--hdri", files["hdri"], "--models-dir",
                               tmp_path / "nowhere"), tmp_path / "nowhere", "models folder does not exist")


def test_colorspace_option(files, tmp_path):
    """--colorspace: an ACEScg EXR of the plate relights like the sRGB PNG it came from; unknown names exit 2."""
    import PyOpenColorIO as OCIO

    from portrait_relight.inference.io.colorspace import blender_config_path
    from portrait_relight.inference.io.imageio import read_plate

    config = OCIO.Config.CreateFromFile(str(blender_config_path()))
    aces = read_plate(files["plate"]).copy()
    config.getProcessor("Linear Rec.709", "ACEScg").getDefaultCPUProcessor().applyRGB(aces.reshape(-1, 3))
    exr_plate = write_exr(tmp_path / "astronaut.exr", aces)
    by_png, by_exr = tmp_path / "png", tmp_path / "exr"
    assert run_cli(files["plate"], "--out", by_png, "--hdri", files["hdri"]).returncode == 0
    done = run_cli(exr_plate, "--out", by_exr, "--hdri", files["hdri"], "--colorspace", "ACEScg")
    assert done.returncode == 0, done.stderr
    png, exr = read_outputs(by_png), read_outputs(by_exr)
    np.testing.assert_allclose(exr["foreground"], png["foreground"], atol=2e-3)
    assert np.abs(exr["composite"] - png["composite"]).mean() < 1e-3
    assert_input_error(run_cli(files["plate"], "--out", tmp_path / "bad", "--hdri", files["hdri"], "--colorspace",
                               "Log C9"), "--colorspace", "unknown colour space 'Log C9'", code=2)
