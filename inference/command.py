"""The command line: options -> a relighting job, shared by ./relight, `blender -b -c portrait_relight` and the farm.

    relight PLATE --out DIR [--hdri FILE [--hdri-rotation DEG] | --world-blend FILE.blend]
            [--background IMAGE] [--fov DEG] [--frames A-B|1,5,9-12] [--colorspace NAME]

Lighting comes from exactly one of: --hdri (equirect, image centre straight ahead, rotated about the vertical
axis by --hdri-rotation), --world-blend (that file's world HDRI seen from its active camera, whose FOV is used),
or, with neither, a panorama estimated from --background. --background is also what the subject is composited
onto. Writes DIR/<stem>.exr and DIR/<stem>_preview.png (both or neither) and prints per-stage timings.
Exit status: 0 done; 1 bad input (ONE line "<file>: <problem>" on stderr) or a failed frame; 2 bad options (one
line naming the option); 130 interrupted (Ctrl-C: one line; only complete outputs stay). Bad input writes nothing
into --out (the folder may be created, empty). Plates must be at least MIN_PLATE_SIDE px on the short side and any image
at most MAX_IMAGE_SIDE on the long side (io/imageio.py; checked from the file header, before decoding).

Shots: PLATE may be an image sequence `name.####.ext` (Blender's # pattern, # count = zero padding) or a movie
(.mp4/.mov/.mkv/.avi/.m4v/.webm, frames numbered from 1); --frames picks frames (default: all). Each frame writes
DIR/<name>.<frame>.exr and DIR/<name>.<frame>_preview.png (frame padded as in the pattern; 4 for movies) and
prints one line; frames already complete are skipped, so re-running resumes, and overlapping --frames slices may
run at once (inference/shots/). A summary line ends the run; exit 1 if any frame failed, with one stderr line
per failed frame naming its file. A bad pattern or --frames exits before any frame with one line. With a shot,
--background may move too (a sequence or movie): plate frame first+k goes over background frame first+k, and
light estimated from it is estimated once for the whole shot (inference/shots/background.py).
--colorspace NAME: the Blender colour space PLATE's values are encoded in (default: sRGB for 8/16-bit files and
movies, linear for float files), converted to scene-linear with Blender's OCIO config when the bpy module is
installed (found without importing it; $OCIO overrides), else only sRGB and Linear Rec.709 are available.
This module never imports bpy: --world-blend needs a reader of .blend files, which operators/cli.py passes in.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import Cancelled, Progress, RelightInputError
from .io.imageio import MIN_PLATE_SIDE
from .lighting.sources import Lighting, WorldLight, fov_problem, resolve_lighting, rotation_problem
from .settings import ALBEDO_METHODS, DEFAULT_FOV_DEG, NORMALS_METHODS, PROVIDERS, SHADING_METHODS, RelightSettings
from .shots.frames import format_frames, parse_frames
from .shots.runner import FrameEvent
from .shots.sources import ImageSequence, is_shot

if TYPE_CHECKING:
    import numpy as np

    from .shots.background import MovingBackground

# (.blend path, plate width, plate height) -> its world's light seen from its active camera (operators/world.py)
BlendWorldReader = Callable[[str, int, int], WorldLight]
EXIT_INPUT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what shells report for a command stopped by Ctrl-C


class UsageError(Exception):
    """A command-line mistake; printed as one line instead of argparse's usage block."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="relight", description="Relight a portrait plate (Total Relighting).")
    parser.add_argument("plate", help="portrait image (PNG/JPG/TIFF/EXR/HDR), image sequence name.####.ext, "
                                      "or movie (.mp4/.mov/.mkv/.avi)")
    parser.add_argument("--out", required=True, help="output folder for <stem>.exr and <stem>_preview.png "
                                                     "(shots: <name>.<frame>.exr and <name>.<frame>_preview.png)")
    parser.add_argument("--frames", metavar="A-B|LIST",
                        help="frames of a sequence or movie to relight: 1-24 (inclusive) or 1,5,9-12 "
                             "(default: all; movie frames count from 1)")
    parser.add_argument("--hdri", help="equirectangular HDR/EXR environment; its centre is straight ahead")
    parser.add_argument("--hdri-rotation", type=float, default=0.0, metavar="DEG",
                        help="turn the HDRI about the vertical axis (same sense as Blender's Mapping Z rotation)")
    parser.add_argument("--world-blend", metavar="FILE.blend",
                        help="use that file's world HDRI, oriented into its active camera's view")
    parser.add_argument("--background", help="plate to composite onto (with a shot, also a sequence or movie); "
                        "alone, also the source of the lighting")
    parser.add_argument("--fov", type=float, default=None, metavar="DEG",
                        help=f"camera field of view across the larger image side (default {DEFAULT_FOV_DEG:g}, "
                             "or the .blend camera's)")
    parser.add_argument("--colorspace", metavar="NAME",
                        help="Blender colour space of the plate's values, e.g. 'ACEScg', 'Filmic sRGB', 'AgX Base "
                             "sRGB' (default: sRGB for 8/16-bit files and movies, Linear Rec.709 for float files)")
    parser.add_argument("--models-dir", metavar="DIR",
                        help="folder of ONNX models following inference/models/CONTRACTS.md; overrides bundled ones")
    parser.add_argument("--normals", choices=NORMALS_METHODS, default=RelightSettings.normals,
                        help="how normals are estimated: the classical v1 stage or the learned geometry net "
                             f"(default {RelightSettings.normals})")
    parser.add_argument("--albedo", choices=ALBEDO_METHODS, default=RelightSettings.albedo,
                        help="how albedo is estimated: the classical v1 stage or the learned albedo net "
                             f"(default {RelightSettings.albedo})")
    parser.add_argument("--shading", choices=SHADING_METHODS, default=RelightSettings.shading,
                        help="how the light maps become shading: v1's fixed blend or the learned shading net "
                             f"(shadows, occlusion, per-pixel specular; default {RelightSettings.shading})")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="ONNX Runtime threads, 1 or more (default: the runtime decides)")
    parser.add_argument("--provider", choices=PROVIDERS, default=RelightSettings.provider,
                        help="where ONNX Runtime runs the models: auto (CUDA when offered, else CPU), cpu, cuda, "
                             "directml (Windows) or coreml (macOS); one that is missing or fails falls back to the "
                             "CPU with one message")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.hdri and args.world_blend:
        raise UsageError("--hdri and --world-blend exclude each other: choose one lighting source")
    if problem := rotation_problem(args.hdri_rotation):
        raise UsageError(f"--hdri-rotation {args.hdri_rotation:g}: {problem}")
    if args.hdri_rotation and not args.hdri:
        raise UsageError("--hdri-rotation needs --hdri")
    if not (args.hdri or args.world_blend or args.background):
        raise UsageError("no lighting source: give --hdri FILE, --world-blend FILE.blend or --background IMAGE")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads {args.threads}: must be 1 or more (leave it out to let the runtime decide)")
    if args.fov is not None and (problem := fov_problem(args.fov)):
        raise UsageError(f"--fov {args.fov:g}: {problem}")
    if args.colorspace is not None:
        from .io.colorspace import default_color_spaces

        try:
            args.colorspace = default_color_spaces().canonical(args.colorspace)
        except RelightInputError as exc:
            raise UsageError(f"--colorspace: {exc.problem}") from exc
    args.frame_list = None
    if args.frames is not None:
        if not is_shot(args.plate):
            raise UsageError(f"--frames needs an image sequence (name.####.ext) or a movie, not {args.plate}")
        try:
            args.frame_list = parse_frames(args.frames)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    return args


def options_lighting(args: argparse.Namespace, plate_shape: Callable[[], tuple[int, ...]],
                     read_blend_world: BlendWorldReader | None, background: np.ndarray | None = None) -> Lighting:
    """The Lighting the options name; `plate_shape` is only called (for the camera's FOV) with --world-blend.
    `background` stands for --background when that is a moving plate (what its light is estimated from)."""
    from .io.imageio import read_plate
    from .lighting.sources import background_problem

    if background is None and args.background:
        if is_shot(args.background):
            raise RelightInputError(args.background, "a moving background (an image sequence or a movie) needs a "
                                                     "plate sequence or movie to go with it")
        background = read_plate(args.background)
    lit_by_background = background is not None and not args.hdri and not args.world_blend
    if lit_by_background and (problem := background_problem(background)):
        raise RelightInputError(args.background, problem)  # named here: resolve_lighting only sees pixels
    world = None
    if args.world_blend:
        if read_blend_world is None:
            raise RelightInputError(args.world_blend, "reading a .blend needs Blender (the bpy module)")

        def world() -> WorldLight:
            height, width = plate_shape()[:2]
            return read_blend_world(args.world_blend, width, height)

    return resolve_lighting(hdri=args.hdri, hdri_rotation_deg=args.hdri_rotation, world=world,
                            background=background, fov_deg=args.fov)


def _check_models_dir(args: argparse.Namespace) -> None:
    if args.models_dir and not Path(args.models_dir).is_dir():
        raise RelightInputError(args.models_dir, "models folder does not exist")


def _settings(args: argparse.Namespace, lighting: Lighting) -> RelightSettings:
    return RelightSettings(fov_deg=lighting.fov_deg, threads=args.threads or 0, models_dir=args.models_dir,
                           normals=args.normals, albedo=args.albedo, shading=args.shading,
                           provider=args.provider)


def _first_frame_shape(shot, frames: list[int]) -> tuple[int, int]:
    """The size of the first requested frame that reads (a movie knows it without decoding)."""
    if shot.frame_size is not None:
        return shot.frame_size
    first_error = None
    for frame in frames:
        try:
            return shot.read(frame).shape[:2]
        except RelightInputError as exc:
            first_error = first_error or exc
    raise first_error


def _moving_background(args: argparse.Namespace, shot, frames: list[int]) -> MovingBackground | None:
    """--background as a MovingBackground when it names an image sequence or a movie (checked to cover `frames`),
    else None."""
    if not args.background or not is_shot(args.background):
        return None
    from .shots.background import MovingBackground
    from .shots.sources import open_shot

    moving = MovingBackground(open_shot(args.background), shot.available_frames()[0])
    try:
        moving.check_covers(frames)
    except RelightInputError:
        moving.shot.close()
        raise
    return moving


def _event_line(event: FrameEvent) -> str:
    if event.status == "relit":
        return f"frame {event.frame} ({event.index}/{event.count}): {event.seconds:.2f} s"
    if event.status == "failed":
        return f"frame {event.frame} ({event.index}/{event.count}): failed after {event.seconds:.2f} s"
    return f"frame {event.frame}: {event.status} ({event.detail})"


def run_shot(args: argparse.Namespace, read_blend_world: BlendWorldReader | None = None,
             progress: Progress | None = None) -> int:
    """An image sequence or movie: one line per frame, a summary; returns the exit status (1 if a frame failed).
    `progress` returning False stops at the next stage (Cancelled), leaving only complete frames."""
    from .pipeline import make_output_folder
    from .shots.outputs import frame_paths
    from .shots.runner import relight_frames, shot_frames
    from .shots.sources import open_shot, select_frames

    clock = time.perf_counter()
    out_dir = Path(args.out)
    # A bad pattern or movie (or a movie's frame size) fails here, before the output folder is made.
    shot = open_shot(args.plate, args.colorspace, min_side=MIN_PLATE_SIDE)
    moving, undo_folder = None, None
    try:
        frames = select_frames(shot, args.frame_list)
        if isinstance(shot, ImageSequence):
            inputs = {shot.path(frame).resolve() for frame in frames}
            clashes = [frame for frame in frames
                       if frame_paths(out_dir, shot.name, shot.padding, frame).exr.resolve() in inputs]
            if clashes:
                raise RelightInputError(shot.source, f"--out {out_dir} would overwrite the input frames "
                                                     f"{format_frames(clashes)}: choose another output folder")
        undo_folder = make_output_folder(out_dir)
        _check_models_dir(args)
        moving = _moving_background(args, shot, frames)
        lighting = options_lighting(args, lambda: _first_frame_shape(shot, frames), read_blend_world,
                                    moving.light_plate() if moving else None)
        settings = _settings(args, lighting)
        print(f"relighting {len(frames)} frame(s) {format_frames(frames)} of {shot.source} into {out_dir} "
              f"(set-up {time.perf_counter() - clock:.2f} s)", flush=True)

        def report(event: FrameEvent) -> None:
            print(_event_line(event), flush=True)

        summary = relight_frames(shot_frames(shot, frames, out_dir), out_dir, lighting.environment, settings,
                                 moving.read if moving else lighting.background, report=report,
                                 progress=progress or (lambda *_: True))
    except BaseException:
        if undo_folder is not None:
            undo_folder()  # only while it is empty: complete frames keep their folder
        raise
    finally:
        shot.close()
        if moving:
            moving.shot.close()
    per_frame = f", {summary.seconds / len(summary.relit):.2f} s per relit frame" if summary.relit else ""
    print(f"{len(frames)} frame(s): {len(summary.relit)} relit, {len(summary.skipped)} skipped, "
          f"{len(summary.failed)} failed in {time.perf_counter() - clock:.2f} s{per_frame}", flush=True)
    if summary.failed:
        print(f"failed frames: {format_frames(list(summary.failed))}", flush=True)
        for frame in sorted(summary.failed):
            print(summary.failed[frame], file=sys.stderr)
        return EXIT_INPUT_ERROR
    return 0


def run(args: argparse.Namespace, read_blend_world: BlendWorldReader | None = None,
        progress: Progress | None = None) -> int:
    """Relight what the options name; returns the exit status. `progress` returning False cancels (Cancelled)."""
    if is_shot(args.plate):
        return run_shot(args, read_blend_world, progress)
    from .io.colorspace import read_plate_in
    from .pipeline import make_output_folder, relight_to_files
    from .shots.outputs import FrameLock, FramePaths, remove_stale_temps

    clock = time.perf_counter()
    out_dir = Path(args.out)
    undo_folder = make_output_folder(out_dir)  # fail before minutes of work, not after
    try:
        _check_models_dir(args)
        # Validates the plate early (its size too); its size gives the camera FOV.
        plate = read_plate_in(args.plate, args.colorspace, min_side=MIN_PLATE_SIDE)
        lighting = options_lighting(args, lambda: plate.shape, read_blend_world)
        settings = _settings(args, lighting)
        setup = time.perf_counter() - clock
        paths = FramePaths.for_stem(out_dir, Path(args.plate).stem)
        exr_path, preview_path = paths.exr, paths.preview
        lock = FrameLock(paths.lock)
        lock.acquire(blocking=True)  # the same plate relit into this folder by another process: wait for it
        try:
            remove_stale_temps(out_dir, paths)  # what a killed run left
            stage_seconds = relight_to_files(plate, args.plate, exr_path, preview_path, lighting.environment,
                                             settings, lighting.background, progress=progress)
        finally:
            lock.release()
    except BaseException:
        undo_folder()  # a failed run leaves no folder behind that it made
        raise
    print(f"wrote {exr_path}")
    print(f"wrote {preview_path}")
    timings = {"inputs": setup, **{k: v for k, v in stage_seconds.items() if k != "total"}}
    for stage, seconds in timings.items():
        print(f"  {stage:<12s} {seconds:7.2f} s")
    print(f"  {'total':<12s} {time.perf_counter() - clock:7.2f} s")
    return 0


@contextmanager
def ctrl_c_cancels() -> Iterator[Progress]:
    """A progress callback that turns False once Ctrl-C is pressed, so the work stops at the next stage or frame
    (Cancelled), between stages where nothing is half-written, instead of at a KeyboardInterrupt raised wherever the
    work happens to be. A second Ctrl-C interrupts at once.
    Signal handlers belong to the main thread, and a host's own native handler (getsignal() is None) is left in
    place: there Ctrl-C keeps its usual behaviour."""
    pressed = threading.Event()

    def on_ctrl_c(signum, frame):
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()
        try:  # os.write, not print: a handler that prints while the interrupted code prints fails (reentrant)
            os.write(1, b"stopping after the current stage (Ctrl-C again to stop at once)\n")
        except OSError:  # no usable stdout (a windowed host): stopping matters, the notice does not
            pass

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield lambda stage, fraction: True
        return
    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield lambda stage, fraction: not pressed.is_set()
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None, read_blend_world: BlendWorldReader | None = None) -> int:
    """Entry point for ./relight and Blender's `-c portrait_relight` (through operators/cli.py, which passes the
    .blend world reader); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
    except UsageError as exc:
        print(f"relight: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        with ctrl_c_cancels() as progress:
            return run(args, read_blend_world, progress)
    except RelightInputError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INPUT_ERROR
    except OSError as exc:  # e.g. disk full while writing: still one line naming the file
        print(f"{exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except MemoryError:  # a plate within the size limits can still be too much for this machine
        print(f"{args.plate}: not enough memory to relight it (try a smaller plate)", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except (KeyboardInterrupt, Cancelled):  # temp files and frame locks are cleaned up on the way out
        print("relight: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
