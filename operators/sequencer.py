"""Sequencer operator: relight every frame of the active image strip and add the result as a strip above it.

Per frame it writes <folder>/<frame stem>.exr (all passes, for compositing) and <frame stem>_preview.png, plus
<frame stem>_relit.exr holding only the composite: the sequencer shows the first pass of a multilayer EXR,
so the strip reads these single-pass files.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import bpy

from ..inference.errors import RelightInputError
from ..inference.exr import read_passes, write_passes
from ..inference.imageio import read_plate
from ..inference.lightmaps import prefilter
from ..inference.pipeline import check_output_folder, relight_to_files
from ..inference.sequence import FrameLock, FramePaths, exr_chunks_intact, frame_complete, remove_stale_temps
from ..inference.settings import RelightSettings
from . import jobs
from .image_utils import LINEAR_SPACES, SRGB_SPACES
from .lighting import output_folder, resolve_lighting
from .shot_settings import ShotOperator, relight_settings, shot_values

STRIP_SUFFIX = "_relit"
FLOAT_EXTENSIONS = {".exr", ".hdr"}


def active_image_strip(scene: "bpy.types.Scene") -> "bpy.types.Strip":
    editor = scene.sequence_editor
    strip = editor.active_strip if editor else None
    if strip is None or strip.type != "IMAGE":
        raise RelightInputError(None, "select an image strip in the Video Sequencer")
    return strip


def strip_frames(strip: "bpy.types.Strip") -> list[Path]:
    """Absolute paths of the strip's frame files, in order."""
    directory = Path(bpy.path.abspath(strip.directory, library=getattr(strip, "library", None)))
    return [directory / element.filename for element in strip.elements]


def check_colorspace(strip: "bpy.types.Strip", frame: Path) -> None:
    """Frames are decoded by read_plate (sRGB for 8/16-bit files, linear for float files): the strip's colour
    space must agree, or the light maths would run on wrongly decoded values."""
    space = strip.colorspace_settings.name
    expected = LINEAR_SPACES if frame.suffix.lower() in FLOAT_EXTENSIONS else SRGB_SPACES
    if space not in expected:
        raise RelightInputError(frame, f"strip '{strip.name}' uses colour space '{space}', which is not supported "
                                       f"for {frame.suffix} frames yet")


def free_channel(editor, strip) -> int:
    """The lowest channel above `strip` with nothing overlapping its frame range."""
    start, end = strip.frame_final_start, strip.frame_final_end
    channel = strip.channel + 1
    while any(s.channel == channel and s.frame_final_start < end and s.frame_final_end > start
              for s in editor.strips_all):
        channel += 1
    return channel


def frame_outputs(out_dir: Path, frame: Path) -> tuple[FramePaths, Path]:
    """The frame's passes/preview/lock paths (as the CLI names them, stem from the frame file) and its strip EXR."""
    stem = frame.stem
    paths = FramePaths(stem, out_dir / f"{stem}.exr", out_dir / f"{stem}_preview.png", out_dir / f".{stem}.lock")
    return paths, out_dir / f"{stem}{STRIP_SUFFIX}.exr"


def _write_strip_exr(paths: FramePaths, strip_path: Path) -> None:
    write_passes(strip_path, {"composite": read_passes(paths.exr)["composite"]})


def relight_frames(frames: list[Path], out_dir: Path, lighting, settings: RelightSettings, progress) -> list[Path]:
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
        paths, strip_path = frame_outputs(out_dir, frame)
        started = time.perf_counter()
        try:
            plate = read_plate(frame)
            size = plate.shape[:2]
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
                        if prefiltered is None:
                            prefiltered = prefilter(lighting.environment)

                        def frame_progress(stage, fraction, index=index):
                            progress(f"{label} {stage}", (index + fraction) / count)

                        relight_to_files(plate, frame, paths.exr, paths.preview, lighting.environment, settings,
                                         lighting.background, frame_progress, prefiltered)
                        strip_path.unlink(missing_ok=True)  # from the previous, now replaced, passes
                        status = f"relit in {time.perf_counter() - started:.1f} s"
                finally:
                    lock.release()
            if not exr_chunks_intact(strip_path):
                _write_strip_exr(paths, strip_path)
        except (RelightInputError, OSError) as exc:
            reason = str(exc) if isinstance(exc, RelightInputError) else f"{exc.filename or frame}: {exc.strerror}"
            failed[frame] = reason
            status = f"FAILED: {reason}"
        outputs.append(strip_path)
        progress.frame_done(f"{label} {frame.name} {status}")
    progress("done", 1.0)
    if failed:
        first = next(iter(failed.values()))
        raise RelightInputError(None, f"{first} ({len(failed)} of {count} frames failed; the others are complete, "
                                      "run again to retry)")
    return outputs


def add_relit_strip(scene, source_name: str, outputs: list[Path]) -> "bpy.types.Strip":
    editor = scene.sequence_editor
    source = editor.strips_all[source_name]
    name = f"{source_name}{STRIP_SUFFIX}"
    old = editor.strips_all.get(name)
    if old is not None:  # re-running replaces the previous result
        editor.strips.remove(old)
    strip = editor.strips.new_image(name, str(outputs[0]), free_channel(editor, source),
                                      round(source.frame_start))
    for path in outputs[1:]:
        strip.elements.append(path.name)
    strip.colorspace_settings.name = "Linear Rec.709"
    return strip


class PORTRAIT_RELIGHT_OT_sequencer_relight(ShotOperator, bpy.types.Operator):
    """Relight every frame of the active image strip with the scene's Portrait Relight settings and add the relit
    sequence above it (frames already complete in the output folder are kept)"""

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
            strip = active_image_strip(scene)
            frames = strip_frames(strip)
            for frame in frames:
                if not frame.is_file():
                    raise RelightInputError(frame, "frame file not found")
            check_colorspace(strip, frames[0])
            width, height = _frame_size(frames[0])
            values = shot_values(scene, self)
            lighting = resolve_lighting(values, scene, width, height)
            settings = relight_settings(context, values, lighting.fov_deg)
            out_dir = Path(output_folder(values)) / strip.name
            check_output_folder(out_dir)
            scene_name, strip_name = scene.name, strip.name

            def work(progress):
                return relight_frames(frames, out_dir, lighting, settings, progress)

            def apply(outputs):
                add_relit_strip(bpy.data.scenes[scene_name], strip_name, outputs)

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
