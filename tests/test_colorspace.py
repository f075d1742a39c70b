"""Colour spaces (inference/io/colorspace.py) against Blender itself: a byte PNG and a float EXR tagged with each colour
space go through Blender's compositor (Image node -> output, rendered to a 32-bit EXR: Blender's scene-linear),
in bpy 5.0 in-process and in bpy 4.5 (.venv-bpy45) by subprocess, and must equal our OCIO conversion with the same
Blender config. Also: the built-in fallback without a config, plates read in a colour space (read_plate_in), and
the claim that Blender's float image buffers are already scene-linear."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from portrait_relight.inference.errors import RelightInputError
from portrait_relight.inference.io.colorspace import ColorSpaces, blender_config_path, read_plate_in
from portrait_relight.inference.io.imageio import read_plate, srgb_to_linear

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON45 = REPO_ROOT / ".venv-bpy45" / "bin" / "python"
CONFIG45 = next((REPO_ROOT / ".venv-bpy45" / "lib" / "python3.11" / "site-packages" / "bpy").glob(
    "*/datafiles/colormanagement/config.ocio"), None)
# Space -> (max abs error, max error relative to max(|reference|, 0.01)) against Blender, measured with
# bpy 5.0.1 and 4.5.15: analytic spaces agree to float precision (<= 1e-6), Filmic's 1D LUT inverse to 4e-5,
# AgX's 3D LUT inverse to 3.4e-4 (values up to ~21).
SPACES = {
    "sRGB": (1e-5, 1e-5), "Linear Rec.709": (1e-6, 1e-6), "Linear Rec.2020": (1e-5, 1e-4), "ACEScg": (1e-5, 1e-4),
    "ACES2065-1": (1e-5, 1e-4), "Filmic sRGB": (1e-3, 1e-3), "AgX Base sRGB": (2e-3, 1e-2), "Non-Color": (1e-6, 1e-6),
}
FLOAT_SPACES = ("ACEScg", "Linear Rec.2020", "sRGB")

REFERENCE_SCRIPT = textwrap.dedent(
    r"""
    import json, os, sys
    import bpy
    jobs, folder = json.loads(sys.argv[1]), sys.argv[2]
    results = []
    for i, (path, space) in enumerate(jobs):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))  # 4.5 will not render without
        scene.collection.objects.link(camera)
        scene.camera = camera
        image = bpy.data.images.load(path)
        image.colorspace_settings.name = space
        render = scene.render
        render.resolution_x, render.resolution_y = image.size
        render.resolution_percentage = 100
        render.engine = "BLENDER_WORKBENCH"
        render.use_compositing, render.use_sequencer = True, False
        render.image_settings.file_format, render.image_settings.color_depth = "OPEN_EXR", "32"
        scene.view_settings.view_transform = "Standard"
        if "compositing_node_group" in bpy.types.Scene.bl_rna.properties:  # 5.0: a node group with Group Output
            tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
            scene.compositing_node_group = tree
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
            output = tree.nodes.new("NodeGroupOutput")
        else:  # 4.5: scene.node_tree with a Composite node
            scene.use_nodes = True
            tree = scene.node_tree
            output = next(n for n in tree.nodes if n.type == "COMPOSITE")
        node = tree.nodes.new("CompositorNodeImage")
        node.image = image
        tree.links.new(node.outputs["Image"], output.inputs[0])
        render.filepath = os.path.join(folder, f"reference{i}.exr")
        bpy.ops.render.render(write_still=True)
        pixels = [round(v, 6) for v in image.pixels[:4]]
        results.append({"exr": render.filepath, "is_float": image.is_float, "pixel": pixels})
    print("RESULT " + json.dumps(results))
    """
)


def exr_rgb(path) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as exr:
        channels = {name.split(".")[-1]: np.array(ch.pixels) for name, ch in exr.channels().items()}
    return np.stack([channels[c] for c in "RGB"], axis=-1).astype(np.float32)


def write_exr(path: Path, rgb: np.ndarray) -> Path:
    import OpenEXR

    channels = {c: np.ascontiguousarray(rgb[..., i], np.float32) for i, c in enumerate("RGB")}
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels).write(str(path))
    return path


@pytest.fixture(scope="module")
def plates(tmp_path_factory):
    """A 64x64 byte PNG covering every 8-bit level on R and B (random G) and a float EXR of values up to 1.5."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("plates")
    rng = np.random.default_rng(7)
    ramp = np.tile(np.arange(256, dtype=np.uint8), 16).reshape(64, 64)
    byte = np.stack([ramp, rng.integers(0, 256, (64, 64)).astype(np.uint8), ramp[:, ::-1]], axis=-1)
    Image.fromarray(byte).save(folder / "levels.png")
    values = (rng.random((64, 64, 3)) * 1.5).astype(np.float32)
    write_exr(folder / "values.exr", values)
    return folder, byte.astype(np.float32) / 255.0, values


def blender_references(python: str, plates, tmp_path) -> tuple[list, list]:
    folder, _, _ = plates
    jobs = [(str(folder / "levels.png"), space) for space in SPACES]
    jobs += [(str(folder / "values.exr"), space) for space in FLOAT_SPACES]
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"))
    done = subprocess.run([python, "-c", REFERENCE_SCRIPT, json.dumps(jobs), str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return jobs, json.loads(lines[-1][len("RESULT "):])


def check_against_blender(spaces: ColorSpaces, jobs, results, plates) -> dict:
    _, byte, values = plates
    errors = {}
    for (path, space), result in zip(jobs, results):
        reference = exr_rgb(result["exr"])
        if path.endswith(".png"):
            assert not result["is_float"]
            np.testing.assert_allclose(result["pixel"][:3], byte[-1, 0], atol=1e-6)  # byte pixels: encoded values
            ours = spaces.to_scene_linear(byte, space)
            abs_tol, rel_tol = SPACES[space]
        else:
            # Float images: Blender's buffer is already scene-linear (converted on load), so ours converts the file
            # values and must match both the render and the image's pixels.
            assert result["is_float"]
            ours = spaces.to_scene_linear(values, space)
            np.testing.assert_allclose(result["pixel"][:3], ours[-1, 0], atol=1e-5)
            abs_tol, rel_tol = 1e-5, 1e-5
        error = np.abs(ours - reference)
        errors[(Path(path).suffix, space)] = float(error.max())
        assert error.max() <= abs_tol, (path, space, error.max())
        assert (error / np.maximum(np.abs(reference), 0.01)).max() <= rel_tol, (path, space)
    return errors


def test_ocio_matches_blender_50(plates, tmp_path):
    pytest.importorskip("bpy")
    import sys

    config = blender_config_path()
    assert config is not None and "5.0" in config.parts, config
    spaces = ColorSpaces(config)
    assert {"sRGB", "Linear Rec.709", "Linear Rec.2020", "ACEScg", "ACES2065-1", "Filmic sRGB",
            "AgX Base sRGB"} <= set(spaces.names())
    jobs, results = blender_references(sys.executable, plates, tmp_path)
    errors = check_against_blender(spaces, jobs, results, plates)
    print("max abs error vs Blender 5.0:", errors)


def test_ocio_matches_blender_45(plates, tmp_path):
    if not PYTHON45.is_file() or CONFIG45 is None:
        pytest.fail(f"{PYTHON45} is missing: `make test` creates the Blender 4.5 venv (requirements-bpy45.txt)")
    spaces = ColorSpaces(CONFIG45)
    jobs, results = blender_references(str(PYTHON45), plates, tmp_path)
    errors = check_against_blender(spaces, jobs, results, plates)
    print("max abs error vs Blender 4.5:", errors)


def test_aliases_view_transform_inverses_and_errors():
    spaces = ColorSpaces(blender_config_path())
    assert spaces.canonical("Linear") == "Linear Rec.709" and spaces.canonical("Raw") == "Non-Color"
    assert spaces.is_identity("Linear") and spaces.is_identity("Non-Color") and not spaces.is_identity("ACEScg")
    # AgX / Filmic: display white maps to the view transform's brightest scene value, finite (clipped highlights
    # stay clipped), and the inverse is monotonic along the grey axis.
    grey = np.linspace(0, 1, 33, dtype=np.float32)[:, None].repeat(3, axis=1)
    for name, brightest in (("AgX Base sRGB", 10.0), ("Filmic sRGB", 10.0)):
        linear = spaces.to_scene_linear(grey, name)
        assert np.isfinite(linear).all() and linear[-1, 0] > brightest, (name, linear[-1])
        assert (np.diff(linear[:, 1]) > 0).all(), name
    with pytest.raises(RelightInputError, match="unknown colour space 'Log C4'"):
        spaces.to_scene_linear(grey, "Log C4", "/shots/plate.png")


def test_builtin_fallback_without_config():
    spaces = ColorSpaces(None)
    encoded = np.linspace(0, 1, 12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(spaces.to_scene_linear(encoded, "sRGB"), srgb_to_linear(encoded))
    np.testing.assert_array_equal(spaces.to_scene_linear(encoded, "Linear Rec.709"), encoded)
    with pytest.raises(RelightInputError, match="/p.png: colour space 'ACEScg' needs Blender's OCIO config"):
        spaces.to_scene_linear(encoded, "ACEScg", "/p.png")


def test_read_plate_in_matches_blender_for_acescg_exr_and_filmic_png(plates, tmp_path):
    """A plate file read in a colour space equals Blender's scene-linear for it (clamped at 0, as plates are)."""
    pytest.importorskip("bpy")
    import sys

    folder, _, _ = plates
    jobs = [(str(folder / "values.exr"), "ACEScg"), (str(folder / "levels.png"), "Filmic sRGB")]
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"))
    done = subprocess.run([sys.executable, "-c", REFERENCE_SCRIPT, json.dumps(jobs), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    results = json.loads([line for line in done.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])
    for (path, space), result in zip(jobs, results):
        reference = np.maximum(exr_rgb(result["exr"]), 0.0)
        plate = read_plate_in(path, space)
        assert (reference > 1.0).any()  # out of [0, 1]: really converted, not just decoded
        np.testing.assert_allclose(plate, reference, atol=1e-3 if space == "Filmic sRGB" else 1e-5, rtol=1e-5)
    # Without a colour space, or in the file's default one, nothing changes.
    np.testing.assert_array_equal(read_plate_in(folder / "levels.png", "sRGB"), read_plate(folder / "levels.png"))
    np.testing.assert_array_equal(read_plate_in(folder / "values.exr", "Linear"), read_plate(folder / "values.exr"))
    np.testing.assert_array_equal(read_plate_in(folder / "values.exr"), read_plate(folder / "values.exr"))
