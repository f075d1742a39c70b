"""Sequencer operator: relight the frames of the active image or movie strip that the timeline shows, and add the
result as a strip above it, frame for frame in time.

Only the visible frames are relit (frame_final_start..frame_final_end: the strip's handles, frame_offset_start/end,
and its hold offsets, animation_offset_start/end, same names in Blender 4.5 and 5.0), each mapped to its source
frame as Blender's sequencer maps it (visible_source_frames, checked against sequencer renders in
tests/test_movie_strips.py). The strip's colour space (colorspace_settings) decodes the frames like Blender
(inference/colorspace.py); movie strips are decoded with PyAV (inference/sequence.Movie).

Per source frame it writes <folder>/<stem>.exr (all passes, for compositing) and <stem>_preview.png, plus
<stem>_relit.exr holding only the composite: the sequencer shows the first pass of a multilayer EXR, so the strip
reads these single-pass files. <stem> is the frame file's stem for image strips and `<movie stem>.<frame>` (frame
from 1, 4 digits, as ./relight names movie frames) for movie strips.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..inference.colorspace import ColorSpaces
from ..inference.errors import RelightInputError
from ..inference.exr import read_passes, write_passes
from ..inference.lightmaps import prefilter
from ..inference.pipeline import check_output_folder, relight_to_files
from ..inference.sequence import (
    MOVIE_PADDING, FrameLock, FramePaths, Movie, exr_chunks_intact, frame_complete, frame_paths, read_plate_in,
    remove_stale_temps,
)
from ..inference.settings import RelightSettings
from . import jobs
from .image_utils import blender_color_spaces
from .lighting import output_folder, resolve_lighting
from .shot_import import add_shot_node, consecutive_frames, free_channel
from .shot_settings import ShotOperator, relight_settings, shot_values

STRIP_SUFFIX = "_relit"
STRIP_TYPES = {"IMAGE", "MOVIE"}


def active_strip(scene: "bpy.types.Scene") -> "bpy.types.Strip":
    editor = scene.sequence_editor
    strip = editor.active_strip if editor else None
    if strip is None or strip.type not in STRIP_TYPES:
        raise RelightInputError(None, "select an image or movie strip in the Video Sequencer")
    return strip


def visible_source_frames(frame_start: float, final_start: int, final_end: int, hold_start: int, duration: int,
                          reverse: bool = False) -> list[tuple[int, int]]:
    """(timeline frame, 0-based source frame) for each frame the strip shows, as Blender maps them: the content
    starts at `frame_start` with source frame `hold_start` (animation_offset_start), runs `duration`
    (frame_duration, after hold offsets) frames, and holds its first/last frame beyond that."""
    first = round(frame_start)
    pairs = []
    for timeline in range(final_start, final_end):
        offset = min(max(timeline - first, 0), duration - 1)
        pairs.append((timeline, hold_start + (duration - 1 - offset if reverse else offset)))
    return pairs


def strip_visible_frames(strip: "bpy.types.Strip") -> list[tuple[int, int]]:
    return visible_source_frames(strip.frame_start, strip.frame_final_start, strip.frame_final_end,
                                 strip.animation_offset_start, strip.frame_duration, strip.use_reverse_frames)


@dataclass(frozen=True)
class SourceFrame:
    """One source frame to relight: its output paths, a label for messages, its size if known, how to read it."""

    paths: FramePaths
    label: str
    read: Callable[[], np.ndarray]
    size: tuple[int, int] | None = None  # (height, width), known for movies without decoding

    @property
    def strip_path(self) -> Path:
        return self.paths.exr.with_name(f"{self.paths.stem}{STRIP_SUFFIX}.exr")


def frame_outputs(out_dir: Path, stem: str) -> FramePaths:
    """The frame's passes/preview/lock paths, named as the CLI names them."""
    return FramePaths(stem, out_dir / f"{stem}.exr", out_dir / f"{stem}_preview.png", out_dir / f".{stem}.lock")


def image_source_frames(files: list[Path], out_dir: Path, colorspace: str | None = None,
                        spaces: ColorSpaces | None = None) -> list[SourceFrame]:
    """Frame files (in strip order) -> SourceFrames named after each file's stem, decoded in `colorspace`."""
    return [SourceFrame(frame_outputs(out_dir, path.stem), os.fspath(path),
                        lambda path=path: read_plate_in(path, colorspace, spaces)) for path in files]


def movie_source_frames(movie: Movie, frames: list[int], out_dir: Path) -> list[SourceFrame]:
    """Movie frames (from 1) -> SourceFrames `<movie stem>.<frame>`; read sequentially from the one open Movie."""
    return [SourceFrame(frame_paths(out_dir, movie.name, MOVIE_PADDING, frame), movie.label(frame),
                        lambda frame=frame: movie.read(frame), movie.frame_size) for frame in frames]


def strip_sources(strip: "bpy.types.Strip", scene, out_dir: Path) -> tuple[list[SourceFrame], list[int], Movie | None]:
    """The strip's distinct visible source frames (in timeline order), for each visible timeline frame the index of
    its SourceFrame, and the open Movie of a movie strip (closed by the caller)."""
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
        return movie_source_frames(movie, frames, out_dir), [position[i] for _, i in pairs], movie
    directory = Path(bpy.path.abspath(strip.directory, library=getattr(strip, "library", None)))
    elements = strip.elements
    files = [directory / elements[index].filename for index in sources]
    for path in files:
        if not path.is_file():
            raise RelightInputError(path, "frame file not found")
    spaces.canonical(colorspace, files[0])  # an unknown colour space fails before the job starts
    return image_source_frames(files, out_dir, colorspace, spaces), [position[i] for _, i in pairs], None


def _write_strip_exr(paths: FramePaths, strip_path: Path) -> None:
    write_passes(strip_path, {"composite": read_passes(paths.exr)["composite"]})


def relight_frames(frames: list[SourceFrame], out_dir: Path, lighting, settings: RelightSettings,
                   progress) -> list[Path]:
    """Worker-thread part: relight each frame; returns the single-pass composite EXRs for the strip.

    Resumes like the CLI (inference/sequence.py): a frame whose EXR is complete (frame_complete) is skipped, others
    are (re)done under the frame's FrameLock, through temp files and renames. `progress` is a jobs.Progress: it
    raises JobCancelled between stages and frames once the job is cancelled. A frame that cannot be read or
    written does not stop the others; the first failure is raised at the end, naming how many failed."""
    prefiltered = None  # one light for the whole strip: prefiltered once, and only if a frame needs relighting
    outputs, failed = [], {}
    count = len(frames)
    for index, frame in enumerate(frames):
        label = f"frame {index + 1}/{count}"
        progress(f"{label} reading", index / count)  # also the cancel point between frames
        paths, strip_path = frame.paths, frame.strip_path
        started = time.perf_counter()
        try:
            plate = None if frame.size is not None else frame.read()  # movies: no decoding for complete frames
            size = frame.size or plate.shape[:2]
            if frame_complete(paths, size):
                status = "skipped (complete)"
            else:
                lock = FrameLock(paths.lock)
                lock.acquire(blocking=True)  # another process (a farm slice, the CLI) on this frame: wait for it
                try:
                    if frame_complete(paths, size):
                        status = "skipped (done by another process)"
                    else:
                        remove_stale_temps(out_dir, paths)
                        if plate is None:
                            plate = frame.read()
                        if prefiltered is None:
                            prefiltered = prefilter(lighting.environment)

                        def frame_progress(stage, fraction, index=index):
                            progress(f"{label} {stage}", (index + fraction) / count)

                        relight_to_files(plate, frame.label, paths.exr, paths.preview, lighting.environment, settings,
                                         lighting.background, frame_progress, prefiltered)
                        strip_path.unlink(missing_ok=True)  # from the previous, now replaced, passes
                        status = f"relit in {time.perf_counter() - started:.1f} s"
                finally:
                    lock.release()
            if not exr_chunks_intact(strip_path):
                _write_strip_exr(paths, strip_path)
        except (RelightInputError, OSError) as exc:
            reason = (str(exc) if isinstance(exc, RelightInputError)
                      else f"{exc.filename or frame.label}: {exc.strerror}")
            failed[frame.label] = reason
            status = f"FAILED: {reason}"
        outputs.append(strip_path)
        progress.frame_done(f"{label} {paths.stem} {status}")
    progress("done", 1.0)
    if failed:
        first = next(iter(failed.values()))
        raise RelightInputError(None, f"{first} ({len(failed)} of {count} frames failed; the others are complete, "
                                      "run again to retry)")
    return outputs


def add_relit_strip(scene, source_name: str, outputs: list[Path]) -> "bpy.types.Strip":
    """An image strip of `outputs` (one per visible frame of the source, in timeline order) starting where the
    source's visible part starts, so each relit frame lies on its source frame."""
    editor = scene.sequence_editor
    source = editor.strips_all[source_name]
    name = f"{source_name}{STRIP_SUFFIX}"
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
            out_dir = Path(output_folder(values)) / strip.name
            frames, order, movie = strip_sources(strip, scene, out_dir)
            try:
                if movie is not None:
                    height, width = movie.frame_size
                else:
                    width, height = _frame_size(Path(frames[0].label))
                lighting = resolve_lighting(values, scene, width, height)
                settings = relight_settings(context, values, lighting.fov_deg)
                check_output_folder(out_dir)
            except RelightInputError:
                if movie is not None:
                    movie.close()
                raise
            scene_name, strip_name = scene.name, strip.name

            def work(progress):
                try:
                    relit = relight_frames(frames, out_dir, lighting, settings, progress)
                finally:
                    if movie is not None:
                        movie.close()
                return [relit[i] for i in order]  # one per visible timeline frame

            def apply(outputs):
                relit_strip = add_relit_strip(bpy.data.scenes[scene_name], strip_name, outputs)
                passes = consecutive_frames([p.with_name(p.name.replace(f"{STRIP_SUFFIX}.exr", ".exr"))
                                             for p in outputs])
                if passes is not None:  # every pass as a compositor socket, in step with the relit strip
                    add_shot_node(bpy.data.scenes[scene_name], passes, relit_strip.frame_final_start)

            jobs.start("Portrait Relight", work, apply)
        except RelightInputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"relighting {len(frames)} frame(s) of '{strip_name}' into {os.fspath(out_dir)}")
        return {"FINISHED"}


def _frame_size(path: Path) -> tuple[int, int]:
    """(width, height) of a frame without decoding it all twice: Blender reads the header."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height = image.size
    finally:
        bpy.data.images.remove(image)
    if not width or not height:
        raise RelightInputError(path, "Blender cannot read this frame")
    return width, height


def menu_entry(self, _context):
    self.layout.operator(PORTRAIT_RELIGHT_OT_sequencer_relight.bl_idname, icon="LIGHT")


def register():
    bpy.utils.register_class(PORTRAIT_RELIGHT_OT_sequencer_relight)
    bpy.types.SEQUENCER_MT_strip.append(menu_entry)


def unregister():
    bpy.types.SEQUENCER_MT_strip.remove(menu_entry)
    bpy.utils.unregister_class(PORTRAIT_RELIGHT_OT_sequencer_relight)
