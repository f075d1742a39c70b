"""Sequencer operator: relight the frames of the active image or movie strip that the timeline shows, and add the
result as a strip above it, frame for frame in time.

Only the visible frames are relit (frame_final_start..frame_final_end: the strip's handles, frame_offset_start/end,
and its hold offsets, animation_offset_start/end, same names in Blender 4.5 and 5.0), each mapped to its source
frame as Blender's sequencer maps it (inference/shots/timeline.visible_source_frames). The strip's colour space
(colorspace_settings) decodes the frames like Blender (inference/io/colorspace.py); movie strips are decoded with
PyAV (inference/shots/sources.Movie). The frames go through the one shot loop (inference/shots/runner.py), so
resuming, frame locks and failures behave as in ./relight. The shot settings' Background may move (an image
sequence or a movie): its first frame goes behind the strip's first visible frame, frame for frame after it, and
light estimated from it is estimated once for the strip (inference/shots/background.py, as ./relight does).

Per source frame it writes <folder>/<stem>.exr (all passes, for compositing) and <stem>_preview.png, plus
<stem>_composite.exr holding only the composite (inference/shots/outputs.pass_file, the name Load Relit Shot
uses): the sequencer shows the first pass of a multilayer EXR, so the strip reads these single-pass files. <stem>
is the frame file's stem for image strips and `<movie stem>.<frame>` (frame from 1, 4 digits, as ./relight names
movie frames) for movie strips.
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy

from ..inference.errors import RelightInputError
from ..inference.lighting.sources import Lighting
from ..inference.pipeline import make_output_folder
from ..inference.settings import RelightSettings
from ..inference.shots.background import MovingBackground
from ..inference.shots.frames import consecutive_frames
from ..inference.shots.outputs import pass_file, write_pass_files
from ..inference.shots.runner import FrameEvent, ShotFrame, file_frames, relight_frames, shot_frames
from ..inference.shots.sources import Movie
from ..inference.shots.timeline import visible_source_frames
from . import jobs
from .image_utils import blender_color_spaces, loaded_size
from .lighting import moving_background, output_folder, resolve_shot_lighting
from .shot_import import add_shot_node, free_channel
from .shot_settings import ShotOperator, relight_settings, shot_values

STRIP_PASS = "composite"  # the pass the relit strip shows
STRIP_NAME_SUFFIX = "_relit"  # the relit strip is "<source strip name>_relit"
STRIP_TYPES = {"IMAGE", "MOVIE"}


def active_strip(scene: "bpy.types.Scene") -> "bpy.types.Strip":
    editor = scene.sequence_editor
    strip = editor.active_strip if editor else None
    if strip is None or strip.type not in STRIP_TYPES:
        raise RelightInputError(None, "select an image or movie strip in the Video Sequencer")
    return strip


def strip_visible_frames(strip: "bpy.types.Strip") -> list[tuple[int, int]]:
    return visible_source_frames(strip.frame_start, strip.frame_final_start, strip.frame_final_end,
                                 strip.animation_offset_start, strip.frame_duration, strip.use_reverse_frames)


def strip_sources(strip: "bpy.types.Strip", scene, out_dir: Path) -> tuple[list[ShotFrame], list[int], Movie | None]:
    """The strip's distinct visible source frames (in timeline order), for each visible timeline frame the index of
    its ShotFrame, and the open Movie of a movie strip (closed by the caller)."""
    pairs = strip_visible_frames(strip)
    if not pairs:
        raise RelightInputError(None, f"strip '{strip.name}' shows no frames")
    colorspace = strip.colorspace_settings.name
    spaces = blender_color_spaces()
    sources = sorted({index for _, index in pairs})
    position = {index: i for i, index in enumerate(sources)}
    if strip.type == "MOVIE":
        path = Path(bpy.path.abspath(strip.filepath, library=getattr(strip, "library", None)))
        scene_fps = scene.render.fps / scene.render.fps_base
        if abs(strip.fps - scene_fps) > 1e-3:
            raise RelightInputError(path, f"the movie runs at {strip.fps:g} fps and the scene at {scene_fps:g} fps: "
                                          "set the scene's frame rate to the movie's")
        movie = Movie(path, colorspace, spaces)
        frames = [index + 1 for index in sources]
        if frames[-1] > movie.frame_count:
            movie.close()
            raise RelightInputError(path, f"the strip shows frame {frames[-1]} but the movie has "
                                          f"{movie.frame_count} frames")
        return shot_frames(movie, frames, out_dir), [position[i] for _, i in pairs], movie
    directory = Path(bpy.path.abspath(strip.directory, library=getattr(strip, "library", None)))
    elements = strip.elements
    files = [directory / elements[index].filename for index in sources]
    for path in files:
        if not path.is_file():
            raise RelightInputError(path, "frame file not found")
    spaces.canonical(colorspace, files[0])  # an unknown colour space fails before the job starts
    return file_frames(files, out_dir, colorspace, spaces), [position[i] for _, i in pairs], None


def relight_strip_frames(frames: list[ShotFrame], out_dir: Path, lighting: Lighting, settings: RelightSettings,
                         progress: jobs.Progress, moving: MovingBackground | None = None) -> list[Path]:
    """Worker-thread part: relight the frames with the shot loop (each over its own frame of a `moving`
    background when there is one); each complete frame also gets the single-pass composite EXR the strip shows. A
    frame that fails does not stop the others; the first failure is raised at the end. Returns the single-pass
    files, one per frame."""

    def report(event: FrameEvent) -> None:
        if event.status == "busy":
            return
        if event.status in ("relit", "skipped"):
            write_pass_files([out_dir / f"{event.stem}.exr"], STRIP_PASS)
        detail = {"relit": f"relit in {event.seconds:.1f} s", "skipped": f"skipped ({event.detail})",
                  "failed": f"FAILED: {event.reason}"}[event.status]
        progress.frame_done(f"frame {event.index}/{event.count} {event.stem} {detail}")

    summary = relight_frames(frames, out_dir, lighting.environment, settings,
                             moving.read if moving is not None else lighting.background, report=report,
                             progress=progress)
    if summary.failed:
        raise RelightInputError(None, summary.failure_line(len(frames)))
    return [pass_file(frame.paths.exr, STRIP_PASS) for frame in frames]


def add_relit_strip(scene, source_name: str, outputs: list[Path]) -> "bpy.types.Strip":
    """An image strip of `outputs` (one per visible frame of the source, in timeline order) starting where the
    source's visible part starts, so each relit frame lies on its source frame."""
    editor = scene.sequence_editor
    if editor is None:
        raise RelightInputError(None, f"the sequencer of scene '{scene.name}' was removed while the job ran; its "
                                      f"results are in {os.fspath(outputs[0].parent)}")
    source = jobs.still_there(editor.strips_all, source_name, "strip", outputs[0].parent)
    name = f"{source_name}{STRIP_NAME_SUFFIX}"
    old = editor.strips_all.get(name)
    if old is not None:  # re-running replaces the previous result
        editor.strips.remove(old)
    start, end = source.frame_final_start, source.frame_final_end
    strip = editor.strips.new_image(name, str(outputs[0]), free_channel(editor, start, end, source.channel + 1), start)
    for path in outputs[1:]:
        strip.elements.append(path.name)
    strip.colorspace_settings.name = "Linear Rec.709"
    return strip


class PORTRAIT_RELIGHT_OT_sequencer_relight(ShotOperator, bpy.types.Operator):
    """Relight the visible frames of the active image or movie strip with the scene's Portrait Relight settings and
    add the relit sequence above it (frames already complete in the output folder are kept)"""

    bl_idname = "portrait_relight.sequencer_relight"
    bl_label = "Relight Portrait Strip"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        editor = context.scene.sequence_editor if context.scene else None
        return editor is not None and editor.active_strip is not None

    def execute(self, context):
        scene = context.scene
        try:
            strip = active_strip(scene)
            values = shot_values(scene, self)
            shot_folder = Path(output_folder(values))
            out_dir = shot_folder / strip.name
            frames, order, movie = strip_sources(strip, scene, out_dir)
            moving = None
            try:
                if movie is not None:
                    height, width = movie.frame_size
                else:
                    width, height = _frame_size(Path(frames[0].label))
                # a moving background lines up with the strip's first visible frame
                moving = moving_background(values, frames[0].number)
                if moving is not None:
                    moving.check_covers([frame.number for frame in frames])
                lighting = resolve_shot_lighting(values, scene, width, height, moving)
                settings = relight_settings(context, values, lighting.fov_deg)
                # a file in the shot folder's place is named, not just the sub-folder failing
                undo_folders = [make_output_folder(shot_folder), make_output_folder(out_dir)][::-1]
            except RelightInputError:
                close_sources(movie, moving)
                raise
            scene_name, strip_name = scene.name, strip.name

            def work(progress):
                try:
                    relit = relight_strip_frames(frames, out_dir, lighting, settings, progress, moving)
                except BaseException:
                    for undo in undo_folders:  # only while empty: complete frames keep their folder
                        undo()
                    raise
                finally:
                    close_sources(movie, moving)
                return [relit[i] for i in order]  # one per visible timeline frame

            def apply(outputs):
                target = jobs.still_there(bpy.data.scenes, scene_name, "scene", out_dir)
                relit_strip = add_relit_strip(target, strip_name, outputs)
                passes = consecutive_frames([frames[i].paths.exr for i in order])
                if passes is not None:  # every pass as a compositor socket, in step with the relit strip
                    add_shot_node(target, passes, relit_strip.frame_final_start)

            jobs.start("Portrait Relight", work, apply)
        except RelightInputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"relighting {len(frames)} frame(s) of '{strip_name}' into {os.fspath(out_dir)}")
        return {"FINISHED"}


def close_sources(movie: Movie | None, moving: MovingBackground | None) -> None:
    """Close the strip's movie and the moving background's shot (their decoders hold files open)."""
    for source in (movie, moving.shot if moving is not None else None):
        if source is not None:
            source.close()


def _frame_size(path: Path) -> tuple[int, int]:
    """(width, height) of a frame without decoding it all twice: Blender reads the header."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        return loaded_size(image)
    finally:
        bpy.data.images.remove(image)


def menu_entry(self, _context):
    self.layout.operator(PORTRAIT_RELIGHT_OT_sequencer_relight.bl_idname, icon="LIGHT")


def register():
    bpy.utils.register_class(PORTRAIT_RELIGHT_OT_sequencer_relight)
    bpy.types.SEQUENCER_MT_strip.append(menu_entry)


def unregister():
    bpy.types.SEQUENCER_MT_strip.remove(menu_entry)
    bpy.utils.unregister_class(PORTRAIT_RELIGHT_OT_sequencer_relight)
