"""The extension on Blender 4.5 LTS (bpy 4.5.x in its own venv, .venv-bpy45, made by `make test`).

The main venv runs Blender 5.0 (every other bpy test); this one runs a script in the 4.5 venv that loads the repo
as the package `portrait_relight`, registers it and exercises the compositor operator (world HDRI lighting,
recombine group wired to the Composite node, a compositor render matching the EXR's composite pass), the 3D card
operator on that EXR and the sequencer operator on a 3-frame image strip with a trimmed start
(frame_offset_start: only the 2 visible frames relit, the relit strip lined up with them). A second test validates
the extension zip with 4.5's own `blender_ext.py` and installs it into an isolated 4.5 (only bpy and numpy from the
venv), where the bundled wheels must load and the compositor operator must run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from blender_scripts import script_parts

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON45 = REPO_ROOT / ".venv-bpy45" / "bin" / "python"
CACHE = Path(os.environ.get("PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight"))
SIZE = 160
SITE_PACKAGES45 = REPO_ROOT / ".venv-bpy45" / "lib" / "python3.11" / "site-packages"
BLENDER_ONLY = ("bpy", "numpy", "numpy.libs")  # what Blender itself ships

SCRIPT = textwrap.dedent(
    r"""
    import json, os, sys
    repo, plate, frames_dir, work = sys.argv[1:5]
    sys.path.insert(0, os.path.join(repo, "tools"))
    import bpy
    from package_loader import load_package

    result = {"version": list(bpy.app.version)}
    package = load_package()
    package.register()
    from portrait_relight.operators import blender_compat
    result["compositor_groups"] = blender_compat.COMPOSITOR_GROUPS

    %(world_scene)s

    # Compositor: 4.5 keeps it in scene.node_tree, output through the Composite node.
    scene.use_nodes = True
    comp = scene.node_tree
    %(compositor_relight)s
    composite = next(n for n in comp.nodes if n.type == "COMPOSITE")
    result["composite_from"] = [(l.from_node.name, l.from_socket.name) for l in composite.inputs[0].links]
    group = comp.nodes["Portrait Relight Recombine"]
    result["group_inputs"] = sorted((l.to_socket.name, l.from_node.name, l.from_socket.name)
                                    for l in comp.links if l.to_node == group)

    %(render_compositor)s

    # 3D card from the compositor's EXR (its default path); 4.5 materials need use_nodes switched on.
    from portrait_relight.operators import card
    result["card_default"] = card.default_relit_exr(scene)
    result["card_op"] = list(bpy.ops.portrait_relight.add_relit_card(filepath=result["card_default"], distance=2.0))
    obj = next(o for o in scene.objects if o.name.startswith(card.CARD_NAME))
    material = obj.data.materials[0]
    result["card"] = {"parent": obj.parent.name, "use_nodes": material.use_nodes,
                      "images": sorted(os.path.basename(n.image.filepath) for n in material.node_tree.nodes
                                       if n.type == "TEX_IMAGE"),
                      "output_linked": any(n.type == "OUTPUT_MATERIAL" and n.inputs["Surface"].is_linked
                                           for n in material.node_tree.nodes)}

    # Sequencer: a 3-frame image strip with its first frame trimmed off (4.5's offset API), relit with an HDRI file.
    names = sorted(os.listdir(frames_dir))
    editor = scene.sequence_editor_create()
    strip = editor.strips.new_image("plate", os.path.join(frames_dir, names[0]), channel=1, frame_start=1)
    for name in names[1:]:
        strip.elements.append(name)
    strip.frame_offset_start = 1
    editor.active_strip = strip
    result["sequencer_op"] = list(bpy.ops.portrait_relight.sequencer_relight(
        lighting="HDRI", hdri_path=os.path.join(worlds, "city.exr"), output_dir=os.path.join(work, "seq") + os.sep))
    result["strips"] = [(s.name, s.channel, int(s.frame_start), int(s.frame_final_duration),
                         bpy.path.abspath(s.directory), [e.filename for e in s.elements]) for s in editor.strips_all]
    package.unregister()
    print("RESULT " + json.dumps(result))
    """
) % script_parts(SIZE)


def test_blender45_compositor_and_sequencer(tmp_path):
    if not PYTHON45.is_file():
        pytest.fail(f"{PYTHON45} is missing: `make test` creates the Blender 4.5 venv (requirements-bpy45.txt)")
    from PIL import Image
    from skimage import data

    from portrait_relight.inference.io.exr import read_passes
    from portrait_relight.inference.io.imageio import read_plate

    astronaut = Image.fromarray(data.astronaut()).resize((SIZE, SIZE), Image.LANCZOS)
    plate = tmp_path / "astronaut.png"
    astronaut.save(plate)
    frames = tmp_path / "frames"
    frames.mkdir()
    astronaut.save(frames / "shot.0001.png")
    astronaut.transpose(Image.FLIP_LEFT_RIGHT).save(frames / "shot.0002.png")
    astronaut.save(frames / "shot.0003.png")
    work = tmp_path / "work"
    work.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "BLENDER_USER_RESOURCES": str(tmp_path / "blender_user"),
        "PORTRAIT_RELIGHT_CACHE": str(CACHE),
    }
    done = subprocess.run([str(PYTHON45), "-c", SCRIPT, str(REPO_ROOT), str(plate), str(frames), str(work)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["version"][:2] == [4, 5] and result["compositor_groups"] is False

    # Compositor: passes as sockets, the recombine group fed by them and wired to the Composite node.
    assert result["compositor_op"] == ["FINISHED"]
    assert {"Portrait Relight Passes", "Portrait Relight Backdrop", "Portrait Relight Recombine"} <= set(
        result["compositor_nodes"])
    assert set(result["exr_sockets"]) >= {"alpha", "foreground", "normal", "albedo", "diffuse", "specular",
                                          "relit", "composite"}
    assert result["composite_from"] == [["Portrait Relight Recombine", "composite"]]
    assert result["group_inputs"] == sorted(
        [[name, "Portrait Relight Passes", name] for name in ("albedo", "diffuse", "specular", "alpha")]
        + [["background", "Portrait Relight Backdrop", "Image"]])
    passes = read_passes(result["exr_path"])
    assert passes["composite"].shape == (SIZE, SIZE, 3)
    assert 0.02 < passes["alpha"].mean() < 0.98  # a person was found, not the whole frame
    rendered = read_plate(result["render_path"])
    assert rendered.shape == (SIZE, SIZE, 3)
    error = np.abs(rendered - passes["composite"])
    assert error.mean() < 2e-3 * max(passes["composite"].mean(), 1e-3) + 1e-4, error.mean()
    assert np.percentile(error, 99.9) < 0.02

    # 3D card: built from the compositor's EXR, with a node material on 4.5 too.
    assert result["card_default"] == result["exr_path"]
    assert result["card_op"] == ["FINISHED"]
    assert result["card"]["parent"] == "Camera" and result["card"]["use_nodes"] and result["card"]["output_linked"]
    assert result["card"]["images"], result["card"]

    # Sequencer: the 2 visible frames relit into a strip above the source, lined up with them (timeline frames
    # 2-3), each frame's single pass the composite; the trimmed frame 1 is not relit.
    assert result["sequencer_op"] == ["FINISHED"]
    strips = {s[0]: s for s in result["strips"]}
    name, channel, start, duration, directory, files = strips["plate_relit"]
    assert (channel, start, duration) == (2, 2, 2)
    assert files == ["shot.0002_composite.exr", "shot.0003_composite.exr"]
    assert not (Path(directory) / "shot.0001.exr").exists()
    composites = []
    for stem in ("shot.0002", "shot.0003"):
        shown = read_passes(Path(directory) / f"{stem}_composite.exr")
        full = read_passes(Path(directory) / f"{stem}.exr")
        np.testing.assert_allclose(shown["composite"], full["composite"], atol=1e-3)
        composites.append(full["composite"])
    assert not np.allclose(composites[0], composites[1], atol=0.02)  # two different frames
    assert not np.allclose(composites[0], passes["composite"], atol=0.02)  # city light != forest light


# Runs inside an isolated 4.5 (python -S, only bpy + numpy on the path): install the zip, relight in the compositor.
INSTALL_SCRIPT = textwrap.dedent(
    r"""
    import json, os, sys
    import bpy

    zip_path, plate, work = sys.argv[1:4]
    result = {"version": list(bpy.app.version)}
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    import addon_utils
    result["enabled"] = [m.__name__ for m in addon_utils.modules() if addon_utils.check(m.__name__)[1]]
    import onnxruntime, OpenEXR, scipy
    result["wheel_paths"] = [onnxruntime.__file__, OpenEXR.__file__, scipy.__file__]

    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 128
    scene.use_nodes = True
    comp = scene.node_tree
    plate_node = comp.nodes.new("CompositorNodeImage")
    plate_node.image = bpy.data.images.load(plate)
    comp.nodes.active = plate_node
    worlds = bpy.utils.system_resource("DATAFILES", path="studiolights/world")
    result["compositor_op"] = list(bpy.ops.portrait_relight.compositor_relight(
        lighting="HDRI", hdri_path=os.path.join(worlds, "sunset.exr"), output_dir=os.path.join(work, "comp") + os.sep))
    composite = next(n for n in comp.nodes if n.type == "COMPOSITE")
    result["composite_from"] = [l.from_node.name for l in composite.inputs[0].links]
    result["exr_path"] = bpy.path.abspath(comp.nodes["Portrait Relight Passes"].image.filepath)
    print("RESULT " + json.dumps(result))
    """
)


@pytest.fixture(scope="module")
def extension_zip45(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("build45")
    command = [sys.executable, str(REPO_ROOT / "tools" / "build_extension.py"), "--platform", "linux-x64",
               "--cache", str(CACHE / "wheels"), "--dist-dir", str(build / "dist"), "--stage-dir", str(build / "stage")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return build / "dist" / "portrait_relight-0.1.0-linux_x64.zip"


def test_blender45_validates_and_installs_the_extension_zip(extension_zip45, tmp_path):
    if not PYTHON45.is_file():
        pytest.fail(f"{PYTHON45} is missing: `make test` creates the Blender 4.5 venv (requirements-bpy45.txt)")
    from PIL import Image
    from skimage import data

    from portrait_relight.inference.io.exr import read_passes

    blender_ext = next(SITE_PACKAGES45.glob("bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    done = subprocess.run([str(PYTHON45), str(blender_ext), "validate", str(extension_zip45)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    plate = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((128, 128), Image.LANCZOS).save(plate)
    modules = tmp_path / "blender_modules"
    modules.mkdir()
    for name in BLENDER_ONLY:
        if (SITE_PACKAGES45 / name).exists():
            (modules / name).symlink_to(SITE_PACKAGES45 / name)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PYTHONPATH": str(modules),
        "BLENDER_USER_RESOURCES": str(tmp_path / "blender_user"),
    }
    done = subprocess.run([str(PYTHON45), "-S", "-c", INSTALL_SCRIPT, str(extension_zip45), str(plate),
                           str(tmp_path)], capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["version"][:2] == [4, 5]
    assert "bl_ext.user_default.portrait_relight" in result["enabled"]
    for path in result["wheel_paths"]:  # imported from the zip's wheels, not from the venv
        assert path.startswith(env["BLENDER_USER_RESOURCES"]), path
    assert result["compositor_op"] == ["FINISHED"]
    assert result["composite_from"] == ["Portrait Relight Recombine"]
    passes = read_passes(result["exr_path"])
    assert passes["composite"].shape == (128, 128, 3) and 0.02 < passes["alpha"].mean() < 0.98
