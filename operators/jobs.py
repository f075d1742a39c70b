"""Run slow pipeline work off Blender's UI thread and apply its result back on the main thread.

bpy data may only be touched on the main thread, so a job is split in two: `work(progress)` (pure numpy/files,
in a worker thread) and `apply(result)` (bpy, from a `bpy.app.timers` callback on the main thread).

- `progress(stage, fraction)` records how far the work is (fraction of the whole job in [0, 1]); the timer shows
  it as the window manager's progress bar plus a status text "<stage> 42% ETA 0:12 (Esc to cancel)". Work that
  loops over frames puts "frame n/N" in `stage` and calls `progress.frame_done(text)` once per frame (one line on
  stdout).
- Cancelling (Esc, caught by the PORTRAIT_RELIGHT_OT_watch_jobs modal operator) sets a threading.Event; the next
  `progress` call in the worker raises inference.errors.Cancelled, so work stops between pipeline stages or frames.
  Outputs are written atomically (temp file + rename), so a cancelled job leaves only complete files, and re-running
  resumes.
- `Job.step()` is the timer callback, a plain method (tests call it in a loop in place of Blender's event loop).
  Errors in the work or in `apply` are reported (popup + console), never raised into Blender's timer loop.
- In background mode (`blender -b`) there is no event loop to run timers: `start` runs the work and `apply`
  synchronously, with one progress line per frame on stdout, and errors propagate to the calling operator.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bpy

from ..inference.errors import Cancelled, RelightInputError, describe_exception

POLL_SECONDS = 0.25
PROGRESS_STEPS = 1000  # the progress bar's range: fractions are shown to 0.1 %


def format_eta(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """The callable handed to `work`: progress(stage, fraction); raises Cancelled once cancel was asked."""

    def __init__(self, job: "Job"):
        self._job = job

    def __call__(self, stage: str, fraction: float) -> None:
        job = self._job
        with job.lock:
            job.stage, job.fraction = stage, min(max(float(fraction), 0.0), 1.0)
        if job.cancel_event.is_set():
            raise Cancelled(f"{job.title}: cancelled")

    def frame_done(self, text: str) -> None:
        """One line per finished (or skipped, or failed) frame: on stdout, and kept as the job's last message."""
        with self._job.lock:
            self._job.lines.append(text)
        print(f"{self._job.title}: {text}", flush=True)
        if self._job.cancel_event.is_set():
            raise Cancelled(f"{self._job.title}: cancelled")


class Job:
    """One unit of background work; see the module docstring for the life cycle."""

    def __init__(self, title: str, work: Callable[[Progress], Any], apply: Callable[[Any], None],
                 window_manager=None, clock: Callable[[], float] = time.monotonic):
        self.title, self.work, self.apply = title, work, apply
        self._window_manager = window_manager
        self._clock = clock
        self.lock = threading.Lock()
        self.cancel_event = threading.Event()
        self.stage, self.fraction = "starting", 0.0
        self.lines: list[str] = []
        self.result: Any = None
        self.error: str | None = None  # one line, reported by step()
        self.cancelled = False
        self.finished = False  # step() has applied or reported the outcome
        self.status = ""  # the last status text shown
        self._done = threading.Event()  # the worker returned
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        self._bar_open = False

    # ------------------------------------------------------------------------------------------- worker side
    def _run(self) -> None:
        try:
            self.result = self.work(Progress(self))
        except Cancelled:
            self.cancelled = True
        except RelightInputError as exc:
            self.error = str(exc)
        except Exception as exc:  # keep the UI alive; the traceback goes to the console for bug reports
            traceback.print_exc()
            self.error = describe_exception(exc)  # one line: the popup and status show one
        finally:
            self._done.set()

    def start_thread(self) -> "Job":
        self._started_at = self._clock()
        self._thread = threading.Thread(target=self._run, name=self.title, daemon=True)
        self._thread.start()
        return self

    def run_sync(self) -> Any:
        """Background mode: work then apply on this thread; errors propagate."""
        self._started_at = self._clock()
        self.result = self.work(Progress(self))
        self.apply(self.result)
        self.finished = True
        return self.result

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def running(self) -> bool:
        return not self.finished

    def join(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    # ------------------------------------------------------------------------------------------ main thread
    def window_manager(self):
        return self._window_manager if self._window_manager is not None else bpy.context.window_manager

    def status_text(self) -> str:
        with self.lock:
            stage, fraction = self.stage, self.fraction
        text = f"{self.title}: {stage} {100 * fraction:.0f}%"
        elapsed = self._clock() - self._started_at
        if 0.0 < fraction < 1.0:
            text += f" ETA {format_eta(elapsed * (1.0 - fraction) / fraction)}"
        if self.cancel_event.is_set():
            return text + " (cancelling...)"
        return text + " (Esc to cancel)"

    def step(self) -> float | None:
        """The bpy.app.timers callback: show progress while the worker runs; once it is done, apply the result
        (or report the error / cancellation) and return None to stop the timer."""
        if self.finished:
            return None
        wm = self.window_manager()
        if not self._done.is_set():
            if not self._bar_open:
                wm.progress_begin(0, PROGRESS_STEPS)
                self._bar_open = True
            wm.progress_update(round(self.fraction * PROGRESS_STEPS))
            self.status = self.status_text()
            _status(wm, self.status)
            return POLL_SECONDS
        if self._bar_open:
            wm.progress_end()
            self._bar_open = False
        _status(wm, None)
        self.finished = True
        _forget(self)
        if self.cancelled:
            done = f" after {len(self.lines)} frame(s)" if self.lines else ""
            _report(wm, f"{self.title}: cancelled{done}; complete frames are kept, run again to resume",
                    "INFO")
        elif self.error is not None:
            _report(wm, self.error, "ERROR")
        else:
            try:
                self.apply(self.result)
            except RelightInputError as exc:
                _report(wm, str(exc), "ERROR")
            except Exception as exc:  # a bug in apply must not kill Blender's timer loop
                traceback.print_exc()
                _report(wm, describe_exception(exc), "ERROR")
        return None


@contextmanager
def undone_on_error(paths: Iterable[Path]) -> Iterator[None]:
    """Work that writes `paths` (files, or folders only it writes into): those that do not exist yet are removed
    again when the work fails, so a failed job leaves nothing behind. Not when it is cancelled: its complete files
    are what a re-run resumes from."""
    new = [path for path in paths if not path.exists()]
    try:
        yield
    except Cancelled:
        raise
    except Exception:
        for path in new:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------------- running
_jobs: list[Job] = []


def running_jobs() -> list[Job]:
    return [job for job in _jobs if job.running]


def _forget(job: Job) -> None:
    if job in _jobs:
        _jobs.remove(job)


def cancel_all() -> None:
    for job in running_jobs():
        job.cancel()


def still_there(collection, name: str, what: str, results: str | os.PathLike) -> Any:
    """`collection[name]` in a job's `apply`: when the user deleted it (a scene, node, strip or camera) while the
    job ran, one line saying so and where the job's complete results are, instead of a KeyError."""
    item = collection.get(name)
    if item is None:
        raise RelightInputError(None, f"the {what} '{name}' was deleted while the job ran; its results are in "
                                      f"{os.fspath(results)}")
    return item


def start(title: str, work: Callable[[Progress], Any], apply: Callable[[Any], None]) -> Job:
    """Run `work` then `apply(result)`: synchronously in background mode, else in a worker thread pumped by a
    timer, with Esc to cancel."""
    job = Job(title, work, apply)
    if bpy.app.background:
        job.run_sync()
        return job
    _jobs.append(job)
    job.start_thread()
    job.timer = job.step  # one bound method, so is_registered/unregister find it again
    bpy.app.timers.register(job.timer, first_interval=POLL_SECONDS, persistent=True)
    if not any(isinstance(op, PORTRAIT_RELIGHT_OT_watch_jobs) for op in _watchers):
        if bpy.ops.portrait_relight.watch_jobs.poll():
            bpy.ops.portrait_relight.watch_jobs("INVOKE_DEFAULT")
    return job


def _status(wm, text: str | None) -> None:
    """Progress text in the status bar of every window (no-op without a UI); redraws the sidebar panels."""
    for window in getattr(wm, "windows", ()):
        window.workspace.status_text_set(text)
        screen = getattr(window, "screen", None)
        for area in getattr(screen, "areas", ()):
            if area.type in {"NODE_EDITOR", "SEQUENCE_EDITOR"}:
                area.tag_redraw()


def _report(wm, message: str, level: str) -> None:
    print(f"Portrait Relight: {message}", flush=True)
    if not getattr(wm, "windows", None):
        return

    def draw(menu, _context):
        menu.layout.label(text=message)

    wm.popup_menu(draw, title="Portrait Relight", icon="ERROR" if level == "ERROR" else "INFO")


_watchers: list["PORTRAIT_RELIGHT_OT_watch_jobs"] = []


class PORTRAIT_RELIGHT_OT_watch_jobs(bpy.types.Operator):
    """Esc cancels the running Portrait Relight jobs (complete frames are kept)"""

    bl_idname = "portrait_relight.watch_jobs"
    bl_label = "Portrait Relight Jobs"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return context.window is not None

    def invoke(self, context, _event):
        context.window_manager.modal_handler_add(self)
        _watchers.append(self)
        return {"RUNNING_MODAL"}

    def modal(self, _context, event):
        if not running_jobs():
            return self._finish()
        if event.type == "ESC" and event.value == "PRESS":
            cancel_all()
            return self._finish()
        return {"PASS_THROUGH"}

    def _finish(self):
        if self in _watchers:
            _watchers.remove(self)
        return {"FINISHED"}


def register():
    bpy.utils.register_class(PORTRAIT_RELIGHT_OT_watch_jobs)


def unregister():
    for job in list(_jobs):
        job.cancel()
        timer = getattr(job, "timer", None)
        if timer is not None and bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    _jobs.clear()
    _watchers.clear()
    bpy.utils.unregister_class(PORTRAIT_RELIGHT_OT_watch_jobs)
