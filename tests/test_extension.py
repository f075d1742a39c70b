"""Build the four platform zips; check each one's wheels against its platform; install the linux-x64 zip into a
clean headless Blender and run both operators end to end.

The Blender subprocess sees only bpy and numpy from the venv (python -S, a path with just those two), so every
other import (onnxruntime, OpenEXR, scipy...) must come from the wheels bundled in the zip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from blender_scripts import script_parts
from extension_platforms import PLATFORMS, blender_platforms_of, runs_on_python311, wheel_tags

from portrait_relight.inference.models.registry import MODELS

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight"))
SITE_PACKAGES = Path(np.__file__).resolve().parent.parent
BLENDER_ONLY = ("bpy", "numpy", "numpy.libs")  # what Blender itself ships

# Runs inside the isolated Blender; prints one JSON line of facts for the test to check.
SCRIPT = textwrap.dedent(
    r"""
    import json, os, sys
    import numpy as np
    import bpy

    zip_path, plate, work = sys.argv[1:4]
    result = {}
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    import addon_utils
    result["enabled"] = [m.__name__ for m in addon_utils.modules() if addon_utils.check(m.__name__)[1]]
    import onnxruntime, OpenEXR, scipy
    result["wheel_paths"] = [onnxruntime.__file__, OpenEXR.__file__, scipy.__file__]

    %(world_scene)s

    comp = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
    scene.compositing_node_group = comp
    %(compositor_relight)s

    %(render_compositor)s

    editor = scene.sequence_editor_create()
    strip = editor.strips.new_image("plate", plate, channel=1, frame_start=1)
    editor.active_strip = strip
    result["sequencer_op"] = list(bpy.ops.portrait_relight.sequencer_relight(  # the learned nets, too
        lighting="HDRI", hdri_path=os.path.join(worlds, "city.exr"), output_dir=os.path.join(work, "seq") + os.sep,
        normals="learned", albedo="learned", shading="learned"))
    result["strips"] = [(s.name, s.channel, int(s.frame_start), bpy.path.abspath(s.directory),
                         [e.filename for e in s.elements]) for s in editor.strips_all]
    print("RESULT " + json.dumps(result))
    """
) % script_parts(256)


def isolated_pythonpath(tmp_path: Path) -> Path:
    """A folder exposing only Blender's own modules from the venv."""
    folder = tmp_path / "blender_modules"
    folder.mkdir()
    for name in BLENDER_ONLY:
        if (SITE_PACKAGES / name).exists():
            (folder / name).symlink_to(SITE_PACKAGES / name)
    return folder


@pytest.fixture(scope="module")
def extension_zips(tmp_path_factory) -> dict[str, Path]:
    build = tmp_path_factory.mktemp("build")
    command = [sys.executable, str(REPO_ROOT / "tools" / "build_extension.py"), "--cache", str(CACHE / "wheels"),
               "--dist-dir", str(build / "dist"), "--stage-dir", str(build / "stage")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    zips = {p: build / "dist" / f"portrait_relight-0.1.0-{p.replace('-', '_')}.zip" for p in PLATFORMS}
    assert sorted(path.name for path in (build / "dist").iterdir()) == sorted(z.name for z in zips.values())
    return zips


@pytest.fixture(scope="module")
def extension_zip(extension_zips) -> Path:
    return extension_zips["linux-x64"]


def _blender_ext() -> Path:
    return next(SITE_PACKAGES.glob("bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_each_platform_zip_validates_and_carries_only_its_own_wheels(extension_zips, platform):
    import tomllib

    zip_path = extension_zips[platform]
    done = subprocess.run([sys.executable, str(_blender_ext()), "validate", str(zip_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
    generated = manifest["build"]["generated"]  # what Blender reads for a split build
    wheels = sorted(n.removeprefix("wheels/") for n in names if n.startswith("wheels/"))
    assert generated["platforms"] == [platform]
    assert sorted(generated["wheels"]) == [f"./wheels/{w}" for w in wheels]
    for wheel in wheels:  # tags read from the file names, independently of Blender's split filter
        assert platform in blender_platforms_of(wheel) and runs_on_python311(wheel), wheel
        if blender_platforms_of(wheel) != set(PLATFORMS):
            assert blender_platforms_of(wheel) == {platform}, wheel  # no universal2 leaking in from the other Mac
    packages = [wheel_tags(w)["name"].lower() for w in wheels]
    onnxruntime = "onnxruntime_directml" if platform == "windows-x64" else "onnxruntime"
    assert sorted(packages) == sorted({onnxruntime, "openexr", "scipy", "pillow", "tifffile", "av",
                                       "opencolorio"})  # each once; no numpy, no extras


def test_zip_contents(extension_zip):
    names = zipfile.ZipFile(extension_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    shipped = {n.removeprefix("inference/models/") for n in names if n.endswith(".onnx")}
    assert shipped == {spec.file_name for spec in MODELS.values()}  # the registry's models, nothing else
    for excluded in ("tests/", "tools/", "docs/", "lightstage/", "evaluation/", "flamenco/", "training/", ".venv",
                     ".git/", "Makefile", "relight", "pytest.ini"):
        assert not any(n == excluded or n.startswith(excluded) for n in names), excluded


def test_installed_extension_relights_in_compositor_and_sequencer(extension_zip, tmp_path):
    from PIL import Image
    from skimage import data

    from portrait_relight.inference.io.exr import read_passes
    from portrait_relight.inference.io.imageio import read_plate

    plate = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((256, 256), Image.LANCZOS).save(plate)
    work = tmp_path / "work"
    work.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PYTHONPATH": str(isolated_pythonpath(tmp_path)),
        "BLENDER_USER_RESOURCES": str(tmp_path / "blender_user"),
    }
    done = subprocess.run([sys.executable, "-S", "-c", SCRIPT, str(extension_zip), str(plate), str(work)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT "):])

    assert "bl_ext.user_default.portrait_relight" in result["enabled"]
    for path in result["wheel_paths"]:  # imported from the zip's wheels, not from the venv
        assert path.startswith(env["BLENDER_USER_RESOURCES"]), path

    # Compositor: the EXR's passes show as sockets, and the recombine group reproduces the composite pass.
    assert result["compositor_op"] == ["FINISHED"]
    assert {"Portrait Relight Passes", "Portrait Relight Recombine", "Group Output"} <= set(
        result["compositor_nodes"])
    assert set(result["exr_sockets"]) >= {"alpha", "foreground", "normal", "albedo", "diffuse", "specular",
                                          "relit", "composite"}
    passes = read_passes(result["exr_path"])
    assert passes["composite"].shape == (256, 256, 3)
    assert 0.02 < passes["alpha"].mean() < 0.98  # a person was found, not the whole frame
    rendered = read_plate(result["render_path"])
    assert rendered.shape == (256, 256, 3)
    error = np.abs(rendered - passes["composite"])
    assert error.mean() < 2e-3 * max(passes["composite"].mean(), 1e-3) + 1e-4, error.mean()
    assert np.percentile(error, 99.9) < 0.02

    # Sequencer: a relit strip above the source, one EXR per frame whose single pass is the composite.
    assert result["sequencer_op"] == ["FINISHED"]
    strips = {s[0]: s for s in result["strips"]}
    name, channel, start, directory, files = strips["plate_relit"]
    assert channel == 2 and start == 1 and files == ["astronaut_composite.exr"]
    shown = read_passes(Path(directory) / files[0])
    full = read_passes(Path(directory) / "astronaut.exr")
    np.testing.assert_allclose(shown["composite"], full["composite"], atol=1e-3)
    assert not np.allclose(full["composite"], passes["composite"], atol=0.02)  # city light != forest light
