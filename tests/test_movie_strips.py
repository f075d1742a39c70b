"""Movie and image-sequence strips in the Sequencer (only the frames the timeline shows, mapped to their source
frames, the relit strip lined up in time), strip colour spaces, and Movie Clip / image-sequence nodes in the
compositor at the scene's current frame (operators/sequencer.py, operators/compositor.py).

Frame mappings are checked against Blender's own renders (the sequencer and the compositor) of plates whose frames
are flat, distinct grey levels; the relit frames against relighting the decoded source frames directly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from portrait_relight.inference.errors import RelightInputError  # noqa: E402
from portrait_relight.inference.shots.sources import Movie  # noqa: E402
from portrait_relight.operators import jobs  # noqa: E402

SIZE = 160
FPS = 24  # the factory scene's frame rate


@pytest.fixture(scope="module")
def registered():
    from portrait_relight.operators import compositor, sequencer, shot_settings

    jobs.register()
    shot_settings.register()
    sequencer.register()
    compositor.register()
    yield
    compositor.unregister()
    sequencer.unregister()
    shot_settings.unregister()
    jobs.unregister()


def write_movie(path: Path, frames: list[np.ndarray]) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": "12"})
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path


def astronaut_frames(count: int) -> list[np.ndarray]:
    """Real portrait frames (a face for the pipeline), the subject drifting 4 px a frame."""
    from PIL import Image
    from skimage import data

    big = np.asarray(Image.fromarray(data.astronaut()).resize((SIZE + 4 * count, SIZE + 4 * count), Image.LANCZOS))
    return [big[2 * i : 2 * i + SIZE, 4 * i : 4 * i + SIZE].copy() for i in range(count)]


def grey_frames(count: int, size: int = 16) -> list[np.ndarray]:
    return [np.full((size, size, 3), 30 + 36 * i, np.uint8) for i in range(count)]


def level_index(pixel: float) -> int:
    """Grey frame index from an sRGB-encoded [0, 1] level (30 + 36 i)/255."""
    return round((pixel * 255 - 30) / 36)


def new_scene(out_dir: Path | None = None):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    assert scene.render.fps == FPS and scene.render.fps_base == 1
    if out_dir is not None:
        settings = scene.portrait_relight
        settings.lighting = "HDRI"
        settings.hdri_path = os.path.join(bpy.utils.system_resource("DATAFILES", path="studiolights/world"),
                                          "city.exr")
        settings.output_dir = str(out_dir) + os.sep
    return scene


def render_sequencer_frame(scene, frame: int, path: Path) -> np.ndarray:
    """Blender's sequencer output at `frame`, sRGB-encoded [0, 1] (Standard view, 8-bit PNG)."""
    from PIL import Image

    render = scene.render
    render.use_sequencer, render.use_compositing = True, False
    render.image_settings.file_format = "PNG"
    scene.view_settings.view_transform = "Standard"
    render.filepath = str(path)
    scene.frame_set(frame)
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0


# ------------------------------------------------------------------------------------- frame mapping vs Blender
@pytest.mark.parametrize("kind", ["IMAGE", "MOVIE"])
@pytest.mark.parametrize("hold_start, hold_end, handle_start, handle_end, start, reverse", [
    (0, 0, 0, 0, 1, False), (1, 0, 2, 0, 1, False), (1, 1, 1, 1, 3, False), (0, 0, -1, 2, 5, False),
    (1, 0, 1, 0, 1, True),
])
def test_visible_source_frames_match_the_sequencer_render(tmp_path, kind, hold_start, hold_end, handle_start,
                                                          handle_end, start, reverse):
    from PIL import Image

    from portrait_relight.operators.sequencer import strip_visible_frames

    frames = grey_frames(6)
    scene = new_scene()
    scene.render.resolution_x = scene.render.resolution_y = 16
    scene.render.resolution_percentage = 100
    editor = scene.sequence_editor_create()
    if kind == "IMAGE":
        for number, pixels in enumerate(frames, 1):
            Image.fromarray(pixels).save(tmp_path / f"grey.{number:04d}.png")
        strip = editor.strips.new_image("grey", str(tmp_path / "grey.0001.png"), channel=1, frame_start=start)
        for number in range(2, 7):
            strip.elements.append(f"grey.{number:04d}.png")
    else:
        write_movie(tmp_path / "grey.mp4", frames)
        strip = editor.strips.new_movie("grey", str(tmp_path / "grey.mp4"), channel=1, frame_start=start)
        assert strip.frame_duration == 6
    strip.animation_offset_start, strip.animation_offset_end = hold_start, hold_end
    strip.frame_offset_start, strip.frame_offset_end = handle_start, handle_end
    strip.use_reverse_frames = reverse
    pairs = strip_visible_frames(strip)
    assert [t for t, _ in pairs] == list(range(strip.frame_final_start, strip.frame_final_end))
    shown = [level_index(render_sequencer_frame(scene, t, tmp_path / "seq.png")[8, 8, 0]) for t, _ in pairs]
    assert [index for _, index in pairs] == shown


# --------------------------------------------------------------------------------------- relighting strips
def relight_directly(scene, plates: list[np.ndarray]) -> list[np.ndarray]:
    """Composite passes of the plates relit straight through the pipeline with the strip's lighting."""
    from portrait_relight.inference.pipeline import relight
    from portrait_relight.operators.lighting import resolve_shot_lighting
    from portrait_relight.operators.shot_settings import relight_settings, shot_values

    values = shot_values(scene)
    lighting = resolve_shot_lighting(values, scene, SIZE, SIZE)
    settings = relight_settings(bpy.context, values, lighting.fov_deg)
    return [relight(plate, lighting.environment, settings, lighting.background).passes["composite"]
            for plate in plates]


def check_relit_strip(scene, source_name: str, folder: Path, stems: list[str], plates: list[np.ndarray]):
    from portrait_relight.inference.io.exr import read_passes

    editor = scene.sequence_editor
    source, relit = editor.strips_all[source_name], editor.strips_all[f"{source_name}_relit"]
    # Exactly the visible frames were relit, nothing else.
    expected = {f"{s}{suffix}" for s in stems for suffix in (".exr", "_preview.png", "_composite.exr")}
    assert {p.name for p in folder.iterdir()} == expected
    # The relit strip covers the same timeline frames, each showing its source frame's result.
    assert (relit.frame_final_start, relit.frame_final_end) == (source.frame_final_start, source.frame_final_end)
    assert relit.channel > source.channel
    for timeline, stem in zip(range(source.frame_final_start, source.frame_final_end), stems):
        assert relit.elements[timeline - round(relit.frame_start)].filename == f"{stem}_composite.exr"
    # ...and every pass is a compositor socket, frame-locked to the same timeline frames.
    from portrait_relight.operators.blender_compat import compositor_tree
    from portrait_relight.operators.shot_import import SHOT_NODE_PREFIX

    node = compositor_tree(scene).nodes[f"{SHOT_NODE_PREFIX}{stems[0]}.exr"]
    first_number = int(stems[0].rsplit(".", 1)[1])
    assert Path(bpy.path.abspath(node.image.filepath)) == folder / f"{stems[0]}.exr"
    assert node.image.source == "SEQUENCE"
    assert (node.frame_start, node.frame_offset, node.frame_duration) == (
        source.frame_final_start, first_number - 1, len(stems))
    for stem, direct in zip(stems, relight_directly(scene, plates)):
        composite = read_passes(folder / f"{stem}.exr")["composite"]
        np.testing.assert_allclose(composite, direct, atol=2e-3, err_msg=stem)
        np.testing.assert_allclose(read_passes(folder / f"{stem}_composite.exr")["composite"], composite, atol=1e-6)


def test_movie_strip_relights_only_the_visible_frames(registered, tmp_path):
    movie_path = write_movie(tmp_path / "shot.mp4", astronaut_frames(6))
    scene = new_scene(tmp_path / "out")
    editor = scene.sequence_editor_create()
    strip = editor.strips.new_movie("shot", str(movie_path), channel=1, frame_start=1)
    strip.frame_offset_start, strip.frame_offset_end = 2, 1  # shows movie frames 3-5 at timeline frames 3-5
    editor.active_strip = strip
    assert strip.frame_final_duration == 3
    assert bpy.ops.portrait_relight.sequencer_relight() == {"FINISHED"}
    movie = Movie(movie_path)
    try:
        plates = [movie.read(frame) for frame in (3, 4, 5)]
    finally:
        movie.close()
    check_relit_strip(scene, "shot", tmp_path / "out" / "shot", [f"shot.{f:04d}" for f in (3, 4, 5)], plates)


def test_image_sequence_strip_with_offsets(registered, tmp_path):
    from PIL import Image

    from portrait_relight.inference.io.imageio import read_plate

    folder = tmp_path / "plates"
    folder.mkdir()
    for number, pixels in enumerate(astronaut_frames(5), 1):
        Image.fromarray(pixels).save(folder / f"plate.{number:04d}.png")
    scene = new_scene(tmp_path / "out")
    editor = scene.sequence_editor_create()
    strip = editor.strips.new_image("plate", str(folder / "plate.0001.png"), channel=1, frame_start=10)
    for number in range(2, 6):
        strip.elements.append(f"plate.{number:04d}.png")
    strip.animation_offset_start = 1  # content: files 2-5 from frame 10
    strip.frame_offset_start, strip.frame_offset_end = 1, 1  # visible: frames 11-12 -> files 3-4
    editor.active_strip = strip
    assert bpy.ops.portrait_relight.sequencer_relight() == {"FINISHED"}
    stems = ["plate.0003", "plate.0004"]
    check_relit_strip(scene, "plate", tmp_path / "out" / "plate", stems,
                      [read_plate(folder / f"{stem}.png") for stem in stems])


def test_strip_over_a_moving_background_lit_by_it(registered, tmp_path):
    """A background sequence in the shot settings: its first frame goes behind the strip's first visible frame and
    so on, and the light, estimated from that background, is one for the strip (from frames spread over it all)."""
    from PIL import Image
    from test_moving_background import backgrounds
    from test_sequences import write_sequence

    from portrait_relight.inference.io.exr import read_passes
    from portrait_relight.inference.io.imageio import read_plate, srgb_to_linear
    from portrait_relight.inference.lighting.sources import resolve_lighting
    from portrait_relight.inference.pipeline import relight
    from portrait_relight.operators.lighting import resolve_shot_lighting
    from portrait_relight.operators.shot_settings import relight_settings, shot_values

    assert SIZE == 160  # backgrounds() draws frames at test_sequences.SIZE, the strip's frame size here
    folder = tmp_path / "plates"
    folder.mkdir()
    for number, pixels in enumerate(astronaut_frames(5), 1):
        Image.fromarray(pixels).save(folder / f"plate.{number:04d}.png")
    behind = backgrounds(4, seed=5)
    write_sequence(tmp_path / "bg", behind, first=51, pattern="bg.{:04d}.png")
    scene = new_scene(tmp_path / "out")
    scene.portrait_relight.lighting = "BACKGROUND"
    scene.portrait_relight.background_path = str(tmp_path / "bg" / "bg.####.png")
    editor = scene.sequence_editor_create()
    strip = editor.strips.new_image("plate", str(folder / "plate.0001.png"), channel=1, frame_start=1)
    for number in range(2, 6):
        strip.elements.append(f"plate.{number:04d}.png")
    strip.frame_offset_start, strip.frame_offset_end = 1, 1  # visible: files 2-4, over background frames 51-53
    editor.active_strip = strip
    assert bpy.ops.portrait_relight.sequencer_relight() == {"FINISHED"}

    values = shot_values(scene)
    mean_background = np.mean([srgb_to_linear(frame.astype(np.float32) / 255.0) for frame in behind], axis=0)
    lighting = resolve_lighting(background=mean_background.astype(np.float32), fov_deg=lighting_fov(scene))
    settings = relight_settings(bpy.context, values, lighting.fov_deg)
    for k, stem in enumerate(["plate.0002", "plate.0003", "plate.0004"]):
        passes = read_passes(tmp_path / "out" / "plate" / f"{stem}.exr")
        backdrop = srgb_to_linear(behind[k].astype(np.float32) / 255.0)
        direct = relight(read_plate(folder / f"{stem}.png"), lighting.environment, settings, backdrop).passes
        np.testing.assert_allclose(passes["composite"], direct["composite"], atol=2e-3, err_msg=stem)
        np.testing.assert_allclose(passes["relit"], direct["relit"], atol=2e-3, err_msg=stem)
    # a still-image job (the compositor's) cannot take a moving background: one line says where it can go
    with pytest.raises(RelightInputError, match="Video Sequencer"):
        resolve_shot_lighting(values, scene, SIZE, SIZE)


def lighting_fov(scene) -> float:
    from portrait_relight.operators.lighting import scene_camera_fov

    return scene_camera_fov(scene, SIZE, SIZE)


def test_strip_colour_space_decodes_like_blender(tmp_path):
    """A strip tagged ACEScg (EXR frames) or Filmic sRGB (PNG frames) reads the scene-linear plate Blender's
    compositor gives for that file and colour space."""
    from PIL import Image
    from test_colorspace import exr_rgb, write_exr

    from portrait_relight.operators.blender_compat import compositor_output, compositor_tree
    from portrait_relight.operators.sequencer import strip_sources

    rng = np.random.default_rng(3)
    write_exr(tmp_path / "aces.0001.exr", (rng.random((24, 24, 3)) * 2).astype(np.float32))
    Image.fromarray(rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)).save(tmp_path / "filmic.0001.png")
    for name, space in (("aces.0001.exr", "ACEScg"), ("filmic.0001.png", "Filmic sRGB")):
        scene = new_scene()
        editor = scene.sequence_editor_create()
        strip = editor.strips.new_image("plate", str(tmp_path / name), channel=1, frame_start=1)
        strip.colorspace_settings.name = space
        (frame,), order, movie = strip_sources(strip, scene, tmp_path / "out")
        assert order == [0] and movie is None
        plate = frame.read()
        # Blender's own scene-linear for the file in that colour space: compositor render to a float EXR.
        image = bpy.data.images.load(str(tmp_path / name))
        image.colorspace_settings.name = space
        render = scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = 24, 24, 100
        render.engine, render.use_compositing, render.use_sequencer = "BLENDER_WORKBENCH", True, False
        render.image_settings.file_format, render.image_settings.color_depth = "OPEN_EXR", "32"
        scene.view_settings.view_transform = "Standard"
        tree = compositor_tree(scene)
        node = tree.nodes.new("CompositorNodeImage")
        node.image = image
        tree.links.new(node.outputs["Image"], compositor_output(tree).inputs[0])
        render.filepath = str(tmp_path / f"{space}.exr")
        bpy.ops.render.render(write_still=True)
        reference = np.maximum(exr_rgb(render.filepath), 0.0)
        assert reference.max() > 1.0, space  # converted, not merely decoded
        np.testing.assert_allclose(plate, reference, atol=1e-3 if space == "Filmic sRGB" else 1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------- compositor nodes
def compositor_render_scene(size: int):
    """A fresh scene that renders only its compositor, size x size, to 32-bit scene-linear EXR."""
    scene = new_scene()
    scene.camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    render = scene.render
    render.resolution_x = render.resolution_y = size
    render.resolution_percentage = 100
    render.engine, render.use_compositing, render.use_sequencer = "BLENDER_WORKBENCH", True, False
    render.image_settings.file_format, render.image_settings.color_depth = "OPEN_EXR", "32"
    scene.view_settings.view_transform = "Standard"
    return scene


def test_compositor_movie_clip_reads_the_frame_at_the_current_frame(tmp_path):
    """The Movie Clip node's plate is the decoded movie frame Blender's compositor shows at the scene frame."""
    from test_colorspace import exr_rgb

    from portrait_relight.operators.blender_compat import compositor_output, compositor_tree
    from portrait_relight.operators.compositor import read_node_plate

    frames = grey_frames(6, size=32)
    movie_path = write_movie(tmp_path / "grey.mp4", frames)
    scene = compositor_render_scene(32)
    render = scene.render
    clip = bpy.data.movieclips.load(str(movie_path))
    assert clip.source == "MOVIE"
    clip.frame_start, clip.frame_offset = 3, 1  # scene frame 3 shows movie frame 2
    tree = compositor_tree(scene)
    node = tree.nodes.new("CompositorNodeMovieClip")
    node.clip = clip
    tree.links.new(node.outputs["Image"], compositor_output(tree).inputs[0])
    movie = Movie(movie_path)
    decoded = [movie.read(frame) for frame in range(1, 7)]
    movie.close()
    for scene_frame, expected in ((3, 2), (5, 4), (7, 6)):
        scene.frame_set(scene_frame)
        plate, stem = read_node_plate(node, scene_frame)
        assert stem == f"grey.{expected:04d}"
        np.testing.assert_array_equal(plate, decoded[expected - 1])
        render.filepath = str(tmp_path / f"clip{scene_frame}.exr")
        bpy.ops.render.render(write_still=True)
        shown = exr_rgb(render.filepath)
        nearest = int(np.argmin([np.abs(shown - d).mean() for d in decoded])) + 1
        assert nearest == expected, (scene_frame, nearest)
        assert np.abs(shown - plate).mean() < 0.01  # Blender's decoder and PyAV agree on the colours too


def sequence_node_scene(first_file: Path, cyclic: bool):
    from portrait_relight.operators.blender_compat import compositor_output, compositor_tree

    scene = compositor_render_scene(16)
    image = bpy.data.images.load(str(first_file))
    image.source = "SEQUENCE"
    tree = compositor_tree(scene)
    node = tree.nodes.new("CompositorNodeImage")
    node.image = image
    node.frame_start, node.frame_offset, node.frame_duration, node.use_cyclic = 2, 1, 3, cyclic
    tree.links.new(node.outputs["Image"], compositor_output(tree).inputs[0])
    return scene, node


@pytest.mark.parametrize("cyclic", [False, True])
def test_compositor_image_sequence_node_reads_the_frame_it_shows(tmp_path, cyclic):
    """Image node on an image sequence: the file read at each scene frame is the one Blender's compositor shows
    (frame_start 2, frame_offset 1, frame_duration 3; held or cycled outside)."""
    from PIL import Image
    from test_colorspace import exr_rgb

    from portrait_relight.inference.io.imageio import read_plate
    from portrait_relight.inference.shots.timeline import image_user_frame
    from portrait_relight.operators.compositor import read_node_plate

    for number, pixels in enumerate(grey_frames(6), 1):
        Image.fromarray(pixels).save(tmp_path / f"grey.{number:04d}.png")
    levels = [read_plate(tmp_path / f"grey.{number:04d}.png")[0, 0, 0] for number in range(1, 7)]
    for scene_frame in range(0, 8):
        # A fresh scene per frame: headless Blender does not move an Image node's sequence frame on frame_set.
        scene, node = sequence_node_scene(tmp_path / "grey.0001.png", cyclic)
        scene.frame_set(scene_frame)
        scene.render.filepath = str(tmp_path / f"node{scene_frame}.exr")
        bpy.ops.render.render(write_still=True)
        shown = int(np.argmin([abs(exr_rgb(scene.render.filepath)[8, 8, 0] - level) for level in levels])) + 1
        number = image_user_frame(scene_frame, 2, 1, 3, cyclic)
        assert number == shown, (scene_frame, number, shown)
        plate, stem = read_node_plate(node, scene_frame)
        assert stem == f"grey.{number:04d}"
        np.testing.assert_allclose(plate, read_plate(tmp_path / f"grey.{number:04d}.png"), atol=1e-5)
