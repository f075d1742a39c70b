"""Load Relit Shot: a farm's DIR/<name>.####.exr comes back as a frame-locked compositor Image node and a
Sequencer strip; both are rendered by Blender at given frames and compared with the files' passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from portrait_relight.inference.errors import RelightInputError  # noqa: E402
from portrait_relight.inference.io.exr import PASS_CHANNELS, read_passes, write_passes  # noqa: E402
from portrait_relight.operators import jobs, shot_import  # noqa: E402
from portrait_relight.operators.blender_compat import compositor_output, compositor_tree  # noqa: E402

WIDTH, HEIGHT = 48, 32
FIRST = 1001


@pytest.fixture(scope="module", autouse=True)
def registered():
    jobs.register()
    shot_import.register()
    yield
    shot_import.unregister()
    jobs.unregister()


def write_shot(folder: Path, frames: range) -> list[Path]:
    """Frames whose passes differ per frame (a gradient scaled by the frame's index), as the CLI names them."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    paths = []
    for index, frame in enumerate(frames):
        level = 0.2 + 0.3 * index
        rgb = np.stack([x / WIDTH * level, y / HEIGHT * level, np.full_like(x, level)], axis=-1)
        rgba = np.concatenate([rgb, np.full_like(x, 0.5)[..., None]], axis=-1)
        by_count = {1: rgb[..., 0], 3: rgb, 4: rgba}
        passes = {name: by_count[len(chans)] for name, chans in PASS_CHANNELS.items()}
        path = folder / f"shot.{frame:04d}.exr"
        write_passes(path, passes)
        paths.append(path)
    return paths


def render(scene, path: Path, frame: int) -> np.ndarray:
    from portrait_relight.lightstage.stage import read_channels

    scene.frame_set(frame)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    channels = read_channels(path, "")
    return np.stack([channels[c] for c in ("R", "G", "B")], axis=-1)


def fresh_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = WIDTH, HEIGHT, 100
    render.engine = "BLENDER_WORKBENCH"
    render.image_settings.file_format = "OPEN_EXR"
    render.image_settings.color_depth = "32"
    scene.view_settings.view_transform = "Standard"
    return scene


def test_shot_node_and_strip_follow_the_timeline(tmp_path):
    files = write_shot(tmp_path, range(FIRST, FIRST + 3))
    scene = fresh_scene()
    scene.frame_start, scene.frame_end = FIRST, FIRST + 2
    assert bpy.ops.portrait_relight.load_relit_shot(filepath=str(files[1]), strip_pass="composite") == {"FINISHED"}

    tree = compositor_tree(scene)
    node = tree.nodes[shot_import.SHOT_NODE_PREFIX + files[0].name]
    assert node.image.source == "SEQUENCE"
    assert (node.frame_start, node.frame_offset, node.frame_duration) == (FIRST, FIRST - 1, 3)
    assert {"composite", "relit", "albedo", "normal", "alpha"} <= {o.name for o in node.outputs if o.enabled}

    strip = scene.sequence_editor.strips_all["shot_composite"]
    assert (strip.frame_final_start, strip.frame_final_end) == (FIRST, FIRST + 3)
    assert [e.filename for e in strip.elements] == [f"shot.{f:04d}_composite.exr" for f in range(FIRST, FIRST + 3)]

    # compositor: the node's composite socket at scene frame F is file F's composite pass
    tree.links.new(node.outputs["composite"], compositor_output(tree).inputs[0])
    scene.render.use_compositing, scene.render.use_sequencer = True, False
    for frame in (FIRST, FIRST + 2):
        expected = read_passes(tmp_path / f"shot.{frame:04d}.exr")["composite"]
        np.testing.assert_allclose(render(scene, tmp_path / f"comp{frame}.exr", frame), expected, atol=2e-3)

    # sequencer: the strip at scene frame F shows file F's composite pass
    scene.render.use_compositing, scene.render.use_sequencer = False, True
    expected = read_passes(tmp_path / f"shot.{FIRST + 1:04d}.exr")["composite"]
    np.testing.assert_allclose(render(scene, tmp_path / "seq.exr", FIRST + 1), expected, atol=2e-3)


def test_relit_strip_and_reload_replace_rather_than_pile_up(tmp_path):
    write_shot(tmp_path, range(1, 3))
    scene = fresh_scene()
    first = str(tmp_path / "shot.0001.exr")
    for _ in range(2):
        assert bpy.ops.portrait_relight.load_relit_shot(filepath=first, strip_pass="relit") == {"FINISHED"}
    assert [s.name for s in scene.sequence_editor.strips_all] == ["shot_relit"]
    assert sum(n.name.startswith(shot_import.SHOT_NODE_PREFIX) for n in compositor_tree(scene).nodes) == 1
    relit = read_passes(tmp_path / "shot.0002_relit.exr")
    np.testing.assert_allclose(relit["relit"], read_passes(tmp_path / "shot.0002.exr")["relit"], atol=1e-6)


def test_a_gap_in_the_shot_is_named(tmp_path):
    write_shot(tmp_path, range(1, 6))
    (tmp_path / "shot.0003.exr").unlink()
    (tmp_path / "shot.0004.exr").unlink()
    with pytest.raises(RelightInputError, match=r"shot\.0001\.exr: the shot is missing frames 3-4"):
        shot_import.shot_frames(tmp_path / "shot.0001.exr")
    with pytest.raises(RelightInputError, match="file not found"):
        shot_import.shot_frames(tmp_path / "shot.0003.exr")
