"""Bad input to the Blender operators is refused cleanly: one line "<file>: <problem>" (no traceback),
{'CANCELLED'}, and nothing added: no images, node groups, objects, materials, meshes, compositor nodes or strips,
and no files in the output folder.

Operators: Compositor relight, Sequencer relight, Add Relit Plate (3D card), Load Relit Shot. bpy as a module runs in
background mode, where jobs.start runs the work synchronously and its error reaches the operator; the tests marked
"in a job" also run the same operators with the work in a worker thread (jobs.Job pumped by hand, as Blender's timer
loop would), where the error surfaces in the timer and is reported as a popup line.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from operator_registry import registered

bpy = pytest.importorskip("bpy")

from test_jobs import FakeWindowManager, pump  # noqa: E402
from test_world import bundled_hdri  # noqa: E402

from portrait_relight.inference.io.exr import write_passes  # noqa: E402
from portrait_relight.operators import card, compositor, jobs, sequencer, shot_import, shot_settings  # noqa: E402
from portrait_relight.operators.blender_compat import compositor_tree  # noqa: E402

MODULES = (jobs, shot_settings, compositor, sequencer, shot_import, card)
SIZE = 128
NO_PERSON = "no person found in the image"


@pytest.fixture(scope="module", autouse=True)
def operators_registered():
    with registered(*MODULES):
        yield


def write_rgb_exr(path: Path, rgb: np.ndarray) -> Path:
    import OpenEXR

    channels = {c: np.ascontiguousarray(rgb[..., i], np.float32) for i, c in enumerate("RGB")}
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as exr:
        exr.write(str(path))
    return path


@dataclass(frozen=True)
class Inputs:
    plate: Path  # the astronaut: a portrait the product finds a person in
    empty_room: Path  # a plain grey plate: no person
    corrupt_png: Path
    corrupt_exr: Path
    square_hdri: Path  # 1:1
    black_hdri: Path  # 2:1, all zeros
    missing: Path
    a_file: Path  # a plain file where a folder is expected


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Inputs:
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("inputs")
    plate = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((SIZE, SIZE), Image.LANCZOS).save(plate)
    empty_room = folder / "empty_room.png"
    Image.fromarray(np.full((SIZE, SIZE, 3), 128, np.uint8)).save(empty_room)
    (folder / "corrupt.png").write_bytes(b"this is not a PNG file")
    (folder / "corrupt.exr").write_bytes(b"this is not an EXR file")
    (folder / "not_a_folder").write_text("a file")
    return Inputs(plate, empty_room, folder / "corrupt.png", folder / "corrupt.exr",
                  write_rgb_exr(folder / "square.exr", np.ones((32, 32, 3))),
                  write_rgb_exr(folder / "black.exr", np.zeros((32, 64, 3))), folder / "missing.exr",
                  folder / "not_a_folder")


def snapshot(scene) -> dict[str, list[str]]:
    """What an operator could leave in the file: datablocks by kind, compositor nodes, sequencer strips."""
    tree = compositor_tree(scene, create=False)
    editor = scene.sequence_editor
    data = bpy.data
    kinds = {"images": data.images, "node_groups": data.node_groups, "objects": data.objects,
             "materials": data.materials, "meshes": data.meshes}
    state = {kind: sorted(block.name for block in blocks) for kind, blocks in kinds.items()}
    state["compositor_nodes"] = sorted(node.name for node in tree.nodes) if tree is not None else []
    state["strips"] = sorted(strip.name for strip in editor.strips_all) if editor is not None else []
    return state


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def assert_refused(call, scene, folder: Path, line: str) -> None:
    """`call()` reports `line` (at least its start) as its one error line and changes nothing."""
    before, files = snapshot(scene), files_under(folder)
    with pytest.raises(RuntimeError) as raised:
        call()
    message = str(raised.value)
    assert message.startswith(f"Error: {line}"), message
    assert message.count("\n") == 1 and "Traceback" not in message, message  # one line
    assert snapshot(scene) == before
    assert files_under(folder) == files


@dataclass
class ThreadedJobs:
    started: list[jobs.Job]
    wm: FakeWindowManager  # records the popups


@pytest.fixture
def threaded_jobs(monkeypatch) -> ThreadedJobs:
    """jobs.start as in the UI: the work in a worker thread, its result applied (or its error reported) by the timer
    callback, which the test pumps."""
    threaded = ThreadedJobs([], FakeWindowManager())

    def start(title, work, apply):
        job = jobs.Job(title, work, apply, window_manager=threaded.wm).start_thread()
        threaded.started.append(job)
        return job

    monkeypatch.setattr(jobs, "start", start)
    return threaded


def assert_refused_in_job(call, scene, folder: Path, threaded: ThreadedJobs, line: str) -> None:
    """`call()` starts a job whose error is reported as one popup line when the timer picks it up; nothing stays."""
    before, files = snapshot(scene), files_under(folder)
    assert call() == {"FINISHED"}  # the input looked fine: the job started
    assert len(threaded.started) == 1 and pump(threaded.started[0], timeout=120) is None
    popups = threaded.wm.popups
    assert len(popups) == 1 and popups[0].startswith(line) and "\n" not in popups[0], popups
    assert threaded.started[0].error == popups[0]
    assert snapshot(scene) == before
    assert files_under(folder) == files


# --------------------------------------------------------------------------------------- compositor and sequencer
def forest_world(scene) -> None:
    world = bpy.data.worlds.new("Forest")
    tree = world.node_tree
    texture = tree.nodes.new("ShaderNodeTexEnvironment")
    texture.image = bpy.data.images.load(bundled_hdri("forest.exr"))
    tree.links.new(texture.outputs["Color"], next(n for n in tree.nodes if n.type == "BACKGROUND").inputs["Color"])
    scene.world = world


def relight_scene(operator: str, plate: Path, out: Path):
    """An empty scene lit by a valid HDRI with a camera, and the plate in the compositor (active Image node) or the
    sequencer (active strip)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    settings = scene.portrait_relight
    settings.lighting = "HDRI"
    settings.hdri_path = bundled_hdri("city.exr")
    settings.output_dir = str(out) + os.sep
    scene.camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(scene.camera)
    if operator == "compositor":
        tree = compositor_tree(scene)
        node = tree.nodes.new("CompositorNodeImage")
        node.image = bpy.data.images.load(str(plate))
        tree.nodes.active = node
    else:
        editor = scene.sequence_editor_create()
        editor.active_strip = editor.strips.new_image("plate", str(plate), channel=1, frame_start=1)
    return scene


def run_operator(operator: str):
    return (bpy.ops.portrait_relight.compositor_relight if operator == "compositor"
            else bpy.ops.portrait_relight.sequencer_relight)()


def plate_strip(scene):
    """The sequencer scene's plate strip; None in the compositor scene."""
    editor = scene.sequence_editor
    return editor.active_strip if editor is not None else None


def plate_missing(scene, inputs, tmp_path) -> str:
    gone = tmp_path / "gone.png"
    shutil.copy(inputs.plate, gone)
    strip = plate_strip(scene)
    if strip is not None:
        strip.directory = str(tmp_path) + os.sep
        strip.elements[0].filename = gone.name
        gone.unlink()
        return f"{gone}: frame file not found"
    image = compositor_tree(scene).nodes.active.image
    image.filepath = str(gone)
    gone.unlink()
    image.reload()
    return f"{gone}: file not found"


def plate_corrupt(scene, inputs, tmp_path) -> str:
    strip = plate_strip(scene)
    if strip is not None:
        strip.directory = str(inputs.corrupt_png.parent) + os.sep
        strip.elements[0].filename = inputs.corrupt_png.name
    else:
        image = compositor_tree(scene).nodes.active.image
        image.filepath = str(inputs.corrupt_png)
        image.reload()
    return f"{inputs.corrupt_png}: Blender could not load this image (empty, corrupt or unsupported)"


def hdri_missing(scene, inputs, tmp_path) -> str:
    scene.portrait_relight.hdri_path = str(inputs.missing)
    return f"{inputs.missing}: file does not exist"


def hdri_not_2_to_1(scene, inputs, tmp_path) -> str:
    scene.portrait_relight.hdri_path = str(inputs.square_hdri)
    return f"{inputs.square_hdri}: HDRI is 32x32, not an equirectangular 2:1 panorama"


def hdri_all_zeros(scene, inputs, tmp_path) -> str:
    scene.portrait_relight.hdri_path = str(inputs.black_hdri)
    return f"{inputs.black_hdri}: HDRI has no positive light"


def world_without_environment_texture(scene, inputs, tmp_path) -> str:
    scene.portrait_relight.lighting = "WORLD"
    scene.world = bpy.data.worlds.new("Plain Grey")
    return "unsaved .blend: world 'Plain Grey' has no Environment Texture node"


def world_all_zeros(scene, inputs, tmp_path) -> str:
    scene.portrait_relight.lighting = "WORLD"
    forest_world(scene)
    texture = scene.world.node_tree.nodes["Environment Texture"]
    texture.image = bpy.data.images.new("Black Sky", 16, 8, float_buffer=True)
    texture.image.pixels.foreach_set(np.zeros(16 * 8 * 4, np.float32))
    return "image 'Black Sky': HDRI has no positive light"


def world_without_camera(scene, inputs, tmp_path) -> str:
    scene.portrait_relight.lighting = "WORLD"
    forest_world(scene)
    bpy.data.objects.remove(scene.camera)
    return "unsaved .blend: scene 'Scene' has no active camera"


def background_corrupt(scene, inputs, tmp_path) -> str:
    scene.portrait_relight.background_path = str(inputs.corrupt_png)
    return f"{inputs.corrupt_png}: cannot read image"


def output_folder_is_a_file(scene, inputs, tmp_path) -> str:
    scene.portrait_relight.output_dir = str(inputs.a_file) + os.sep
    return f"{inputs.a_file}: output path exists and is not a folder"


BAD_INPUTS = (plate_missing, plate_corrupt, hdri_missing, hdri_not_2_to_1, hdri_all_zeros,
              world_without_environment_texture, world_all_zeros, world_without_camera, background_corrupt,
              output_folder_is_a_file)


@pytest.mark.parametrize("operator", ["compositor", "sequencer"])
@pytest.mark.parametrize("bad_input", BAD_INPUTS, ids=lambda case: case.__name__)
def test_relight_refuses_bad_input(operator, bad_input, inputs, tmp_path):
    out = tmp_path / "out"
    scene = relight_scene(operator, inputs.plate, out)
    line = bad_input(scene, inputs, tmp_path)
    assert_refused(lambda: run_operator(operator), scene, out, line)


@pytest.mark.parametrize("operator", ["compositor", "sequencer"])
def test_relight_refuses_a_plate_without_a_person(operator, inputs, tmp_path):
    out = tmp_path / "out"
    scene = relight_scene(operator, inputs.empty_room, out)
    assert_refused(lambda: run_operator(operator), scene, out, f"{inputs.empty_room}: {NO_PERSON}")


@pytest.mark.parametrize("operator", ["compositor", "sequencer"])
def test_relight_in_a_job_reports_a_plate_without_a_person(operator, inputs, tmp_path, threaded_jobs):
    out = tmp_path / "out"
    scene = relight_scene(operator, inputs.empty_room, out)
    assert_refused_in_job(lambda: run_operator(operator), scene, out, threaded_jobs,
                          f"{inputs.empty_room}: {NO_PERSON}")


# ----------------------------------------------------------------------------------------------------- 3D card
def card_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(scene.camera)
    return scene


def relit_exr(path: Path) -> Path:
    """A small EXR with the passes the card and Load Relit Shot need."""
    normal = np.zeros((16, 16, 3), np.float32)
    normal[..., 2] = 1.0
    grey = np.full((16, 16, 3), 0.5, np.float32)
    return write_passes(path, {"albedo": grey, "normal": normal, "alpha": np.ones((16, 16), np.float32),
                               "composite": grey})


def test_card_refuses_bad_input(inputs, tmp_path):
    scene = card_scene()
    add_card = bpy.ops.portrait_relight.add_relit_card
    assert_refused(lambda: add_card(filepath=str(inputs.missing)), scene, tmp_path,
                   f"{inputs.missing}: file not found")
    assert_refused(lambda: add_card(filepath=""), scene, tmp_path, "choose a relit EXR written by Portrait Relight")
    shutil.copy(inputs.corrupt_exr, tmp_path / "corrupt.exr")
    assert_refused(lambda: add_card(filepath=str(tmp_path / "corrupt.exr")), scene, tmp_path,
                   f"{tmp_path / 'corrupt.exr'}: cannot read EXR")
    shutil.copy(inputs.black_hdri, tmp_path / "plain.exr")
    assert_refused(lambda: add_card(filepath=str(tmp_path / "plain.exr")), scene, tmp_path,
                   f"{tmp_path / 'plain.exr'}: not a relit EXR: lacks the albedo, normal, alpha pass(es)")
    good = relit_exr(tmp_path / "good.exr")
    bpy.data.objects.remove(scene.camera)
    assert_refused(lambda: add_card(filepath=str(good)), scene, tmp_path,
                   "scene 'Scene' has no active camera to put the card in front of")


def test_card_of_a_sequence_with_a_bad_frame_leaves_no_maps(inputs, tmp_path):
    """Frame 1 is split before frame 2 fails: the card folder the run created goes again."""
    scene = card_scene()
    first = relit_exr(tmp_path / "shot.0001.exr")
    shutil.copy(inputs.black_hdri, tmp_path / "shot.0002.exr")
    assert_refused(lambda: bpy.ops.portrait_relight.add_relit_card(filepath=str(first)), scene, tmp_path,
                   f"{tmp_path / 'shot.0002.exr'}: not a relit EXR")
    assert not (tmp_path / "shot_card").exists()


def test_card_in_a_job_reports_a_corrupt_exr(inputs, tmp_path, threaded_jobs):
    scene = card_scene()
    shutil.copy(inputs.corrupt_exr, tmp_path / "corrupt.exr")
    assert_refused_in_job(lambda: bpy.ops.portrait_relight.add_relit_card(filepath=str(tmp_path / "corrupt.exr")),
                          scene, tmp_path, threaded_jobs, f"{tmp_path / 'corrupt.exr'}: cannot read EXR")


# --------------------------------------------------------------------------------------------- Load Relit Shot
def test_load_relit_shot_refuses_bad_input(inputs, tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    load = bpy.ops.portrait_relight.load_relit_shot
    assert_refused(lambda: load(filepath=str(inputs.missing)), scene, tmp_path, f"{inputs.missing}: file not found")
    corrupt = shutil.copy(inputs.corrupt_exr, tmp_path / "corrupt.0001.exr")
    for add_strip in (True, False):  # with a strip the passes are copied in a job; without, the node is added now
        assert_refused(partial(load, filepath=str(corrupt), add_strip=add_strip), scene, tmp_path,
                       f"{corrupt}: cannot read EXR")
    Path(corrupt).unlink()
    plain = shutil.copy(inputs.black_hdri, tmp_path / "plain.exr")
    assert_refused(lambda: load(filepath=str(plain)), scene, tmp_path,
                   f"{plain}: has no 'composite' pass (not a Portrait Relight EXR?)")
    Path(plain).unlink()
    for frame in (1, 3):
        relit_exr(tmp_path / f"shot.{frame:04d}.exr")
    assert_refused(lambda: load(filepath=str(tmp_path / "shot.0001.exr")), scene, tmp_path,
                   f"{tmp_path / 'shot.0001.exr'}: the shot is missing frames 2")


def test_load_relit_shot_with_a_bad_frame_leaves_no_pass_files(inputs, tmp_path):
    """Frame 1's composite pass file is written before frame 2 fails: it goes again."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    first = relit_exr(tmp_path / "shot.0001.exr")
    shutil.copy(inputs.black_hdri, tmp_path / "shot.0002.exr")
    assert_refused(lambda: bpy.ops.portrait_relight.load_relit_shot(filepath=str(first)), bpy.context.scene,
                   tmp_path, f"{tmp_path / 'shot.0002.exr'}: has no 'composite' pass")


def test_load_relit_shot_in_a_job_reports_a_missing_pass(inputs, tmp_path, threaded_jobs):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    plain = shutil.copy(inputs.black_hdri, tmp_path / "plain.exr")
    assert_refused_in_job(lambda: bpy.ops.portrait_relight.load_relit_shot(filepath=str(plain)),
                          bpy.context.scene, tmp_path, threaded_jobs,
                          f"{plain}: has no 'composite' pass (not a Portrait Relight EXR?)")
