"""The one shot loop: relight a list of frames into an output folder, resumable and safe to run in parallel.

Used by ./relight (and so `blender -c` and the farm) and by the Sequencer operator; see shots/__init__.py for the
farm contract. For each frame, in order:
1. skip it when its outputs are complete (shots.outputs.frame_complete);
2. else take its lock without waiting; a frame another process holds is retried, waiting for the lock, once the
   other frames are done;
3. under the lock: check again (the other process may have finished it), remove temp files a killed process left,
   relight, write the EXR and preview through temp files and renames. Frames up to OVERLAP_MAX_PIXELS are written
   on a second thread while the next frame is relit (one write in flight; the lock is held until it is done).
One frame's failure (a bad file, a bug) is reported and the loop goes on; cancelling is not a failure: when the
`progress` callback returns False (or raises Cancelled), the loop stops at once and raises Cancelled, leaving only
complete frames behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import Cancelled, Progress, RelightInputError, describe_exception
from ..lighting.environment import Environment
from ..settings import RelightSettings
from .frames import format_frames
from .outputs import FrameLock, FramePaths, frame_complete, frame_paths, remove_stale_temps
from .sources import ImageSequence, Movie

if TYPE_CHECKING:  # names for types only: the pipeline (onnxruntime, scipy) loads when a first frame is relit
    from ..io.colorspace import ColorSpaces
    from ..stages.lightmaps import PrefilteredEnvironment

# A frame's write (preview + EXR: zlib, mostly outside the GIL) takes ~20 % of a 1080p frame; on a second thread
# it runs beside the next frame's relight. Bigger frames are written in line, so two frames' passes are never held
# at once where memory matters (an 8K frame's passes are ~4 GB).
OVERLAP_MAX_PIXELS = 9_000_000


@dataclass(frozen=True)
class ShotFrame:
    """One frame to relight: its number (for messages), output paths, a label naming its file, how to read it, and
    its (height, width) when known without decoding (movies)."""

    number: int
    paths: FramePaths
    label: str
    read: Callable[[], np.ndarray]
    size: tuple[int, int] | None = None


def shot_frames(shot: ImageSequence | Movie, frames: Sequence[int], out_dir: Path) -> list[ShotFrame]:
    """Frames of an image sequence or movie -> ShotFrames `DIR/<name>.<frame>` (frame padded as the shot's)."""
    return [ShotFrame(frame, frame_paths(out_dir, shot.name, shot.padding, frame), shot.label(frame),
                      lambda frame=frame: shot.read(frame), shot.frame_size) for frame in frames]


def file_frames(files: Sequence[Path], out_dir: Path, colorspace: str | None = None,
                spaces: ColorSpaces | None = None) -> list[ShotFrame]:
    """Frame files in order (e.g. a Sequencer strip's) -> ShotFrames named after each file's stem, numbered from 1,
    decoded in `colorspace` (io.colorspace.read_plate_in)."""
    from ..io.colorspace import read_plate_in

    return [ShotFrame(index, FramePaths.for_stem(out_dir, path.stem), os.fspath(path),
                      lambda path=path: read_plate_in(path, colorspace, spaces))
            for index, path in enumerate(files, 1)]


@dataclass(frozen=True)
class FrameEvent:
    """What happened to one frame: status is 'relit', 'skipped', 'busy' (locked elsewhere, retried later) or
    'failed' (with `reason`, one line naming the frame's file)."""

    frame: int
    index: int  # 1-based position in the requested frames
    count: int
    status: str
    stem: str = ""
    seconds: float = 0.0
    detail: str = ""
    reason: str = ""


@dataclass
class ShotSummary:
    relit: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # frame number -> one line naming its file
    seconds: float = 0.0

    def failure_line(self, count: int) -> str:
        """One line for a shot with failed frames: the first failure, how many failed, what to do."""
        first = self.failed[min(self.failed)]
        if count == 1:
            return first
        others = "the others are complete, " if len(self.failed) < count else ""
        return (f"{first} ({len(self.failed)} of {count} frames failed: {format_frames(list(self.failed))}; "
                f"{others}run again to retry)")


def _failure(exc: Exception, label: str) -> str:
    if isinstance(exc, RelightInputError):
        return str(exc) if exc.path else f"{label}: {exc.problem}"
    if isinstance(exc, OSError):
        return f"{exc.filename or label}: {exc.strerror or exc}"
    return f"{label}: {describe_exception(exc)}"  # a bug or an odd file: report it and go on with the other frames


def relight_frames(frames: Sequence[ShotFrame], out_dir: str | os.PathLike, environment: Environment,
                   settings: RelightSettings = RelightSettings(),
                   background: np.ndarray | Callable[[int], np.ndarray] | None = None,
                   prefiltered: PrefilteredEnvironment | None = None,
                   report: Callable[[FrameEvent], None] = lambda event: None,
                   progress: Progress = lambda stage, fraction: True) -> ShotSummary:
    """Relight `frames` into out_dir (see the module docstring). Never raises for one frame's failure; raises
    Cancelled when `progress` asks to stop. `background` is one plate for every frame, or a moving one: a function
    of the frame number (shots/background.MovingBackground.read)."""
    out_dir = Path(out_dir)
    summary = ShotSummary()
    clock = time.perf_counter()
    count = len(frames)
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portrait-relight-writer")
    pending: Callable[[], None] | None = None  # settles the write in flight: waits for it, then reports
    backdrops: dict[tuple[int, int], np.ndarray] = {}  # what the composites go over, once per frame size
    # Every plate is decoded on one reader thread (decoders such as a movie's are not shared across threads); the
    # next frame's is decoded there while this one is relit.
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portrait-relight-reader")
    prefetched: dict[int, Future] = {}  # frame index (1-based) -> its plate being decoded

    def read_plate(index: int) -> np.ndarray:
        decoding = prefetched.pop(index, None) or reader.submit(frames[index - 1].read)
        return decoding.result()  # a failed read raises here, for its own frame

    def prefetch(index: int, plate: np.ndarray) -> None:
        """Start decoding frame `index`, unless frames are too big to hold two plates (see OVERLAP_MAX_PIXELS)."""
        if index <= count and index not in prefetched and plate.shape[0] * plate.shape[1] <= OVERLAP_MAX_PIXELS:
            prefetched[index] = reader.submit(frames[index - 1].read)

    def go_on(stage: str, fraction: float) -> None:
        if progress(stage, min(max(fraction, 0.0), 1.0)) is False:
            raise Cancelled("cancelled")

    def settle() -> None:
        nonlocal pending
        if pending is not None:
            finish, pending = pending, None
            finish()

    def attempt(shot_frame: ShotFrame, index: int, blocking: bool) -> bool:
        """False when another process holds the frame (non-blocking attempts only)."""
        nonlocal prefiltered, pending  # one light for the whole shot: prefiltered once, if a frame needs relighting
        paths, frame = shot_frame.paths, shot_frame.number
        started = time.perf_counter()
        plate, size = None, shot_frame.size
        where = f"frame {index}/{count}"
        go_on(f"{where} reading", (index - 1) / count)

        def tell(status: str, **details) -> None:
            settle()  # the frame being written is reported first: reports stay in frame order
            report(FrameEvent(frame, index, count, status, paths.stem, **details))

        def failed(exc: Exception) -> None:
            reason = _failure(exc, shot_frame.label)
            summary.failed[frame] = reason
            tell("failed", seconds=time.perf_counter() - started, reason=reason)

        def relit(finished: float | None = None) -> None:
            summary.relit.append(frame)
            tell("relit", seconds=(finished or time.perf_counter()) - started)

        def skip_if_complete(detail: str) -> bool:
            nonlocal plate, size
            if not paths.exr.exists():
                return False
            if size is None:  # image files: the plate's size is known once the frame is read
                plate = read_plate(index)
                size = plate.shape[:2]
            if not frame_complete(paths, size):
                return False
            summary.skipped.append(frame)
            tell("skipped", detail=detail)
            return True

        def stage_progress(stage: str, fraction: float) -> None:
            go_on(f"{where} {stage}", (index - 1 + fraction) / count)

        try:
            if skip_if_complete("complete"):
                return True
            lock = FrameLock(paths.lock)
            if not lock.acquire(blocking):
                tell("busy", detail="another process is on it; retried at the end")
                return False
            handed_over = False
            try:
                if skip_if_complete("done by another process"):
                    return True
                remove_stale_temps(out_dir, paths)
                if plate is None:
                    plate = read_plate(index)
                if not blocking:  # the first pass goes in order: the next frame is the next index
                    prefetch(index + 1, plate)
                from ..pipeline import frame_backdrop, relight_frame, write_frame  # heavy: with a first frame
                from ..stages.lightmaps import prefilter

                if prefiltered is None:
                    prefiltered = prefilter(environment)
                frame_size = plate.shape[:2]
                if callable(background):  # a moving background: this frame's own
                    backdrop = frame_backdrop(environment, background(frame), *frame_size, settings)
                else:
                    if frame_size not in backdrops:
                        backdrops[frame_size] = frame_backdrop(environment, background, *frame_size, settings)
                    backdrop = backdrops[frame_size]
                result = relight_frame(plate, shot_frame.label, environment, settings, backdrop, stage_progress,
                                       prefiltered)
                settle()  # the previous frame's write first: one in flight at a time
                go_on(f"{where} writing", index / count)
                if plate.shape[0] * plate.shape[1] > OVERLAP_MAX_PIXELS:
                    write_frame(plate, result, shot_frame.label, paths.exr, paths.preview)
                else:
                    written = writer.submit(_write_then_unlock, write_frame, lock, plate, result, shot_frame.label,
                                            paths.exr, paths.preview)
                    handed_over = True
                    pending = partial(_settle_write, written, relit, failed)
                    return True
            finally:
                if not handed_over:
                    lock.release()
        except Cancelled:
            raise
        except Exception as exc:  # one bad frame must not stop a farm chunk: reported, then the next frame
            failed(exc)
            return True
        relit()
        return True

    try:
        busy = [(shot_frame, index) for index, shot_frame in enumerate(frames, 1)
                if not attempt(shot_frame, index, False)]
        for shot_frame, index in busy:
            attempt(shot_frame, index, True)
    finally:
        settle()  # also when cancelled: the frame being written is finished, not left half-done
        writer.shutdown(wait=True)
        reader.shutdown(wait=True, cancel_futures=True)
    progress("done", 1.0)
    summary.seconds = time.perf_counter() - clock
    return summary


def _write_then_unlock(write_frame: Callable, lock: FrameLock, *args) -> float:
    """The writer thread's job: write the frame's files, then let other processes at the frame. Returns when it
    finished (perf_counter), for the frame's time."""
    try:
        write_frame(*args)
        return time.perf_counter()
    finally:
        lock.release()


def _settle_write(written: Future, relit: Callable[[float], None], failed: Callable[[Exception], None]) -> None:
    """Wait for a frame's write, then report it as relit or failed (on the loop's thread, like every report)."""
    try:
        finished = written.result()
    except Exception as exc:  # a full disk or a bug: that frame failed, the shot goes on
        failed(exc)
        return
    relit(finished)
