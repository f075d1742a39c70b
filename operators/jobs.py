"""Run slow pipeline work off Blender's UI thread and apply its result back on the main thread.

bpy data may only be touched on the main thread, so a job is split in two: `work(progress)` (pure numpy/files,
in a thread) and `apply(result)` (bpy, from a `bpy.app.timers` callback). In background mode (`blender -b`,
tests) there is no event loop to run timers, so both run synchronously and errors propagate to the caller.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

import bpy

from ..inference.errors import RelightInputError

POLL_SECONDS = 0.25


def _status(text: str | None) -> None:
    """Progress text in the status bar of every window (no-op without a UI)."""
    window_manager = bpy.context.window_manager
    for window in getattr(window_manager, "windows", ()):
        window.workspace.status_text_set(text)


def _report_error(message: str) -> None:
    def draw(menu, _context):
        menu.layout.label(text=message)

    bpy.context.window_manager.popup_menu(draw, title="Portrait Relight", icon="ERROR")
    print(f"Portrait Relight: {message}")


def start(title: str, work: Callable[[Callable[[str, float], None]], Any], apply: Callable[[Any], None]) -> None:
    """Run `work` then `apply(result)`; synchronous in background mode, threaded otherwise."""
    if bpy.app.background:
        apply(work(lambda stage, fraction: None))
        return

    state: dict[str, Any] = {"stage": "starting", "fraction": 0.0}

    def progress(stage: str, fraction: float) -> None:
        state["stage"], state["fraction"] = stage, fraction

    def thread_main() -> None:
        try:
            state["result"] = work(progress)
        except RelightInputError as exc:
            state["error"] = str(exc)
        except Exception as exc:  # keep the UI alive; the traceback goes to the console for bug reports
            traceback.print_exc()
            state["error"] = f"{exc.__class__.__name__}: {exc}"
        state["done"] = True

    def poll() -> float | None:
        if not state.get("done"):
            _status(f"{title}: {state['stage']} ({100 * state['fraction']:.0f}%)")
            return POLL_SECONDS
        _status(None)
        if "error" in state:
            _report_error(state["error"])
            return None
        try:
            apply(state["result"])
        except RelightInputError as exc:
            _report_error(str(exc))
        return None

    threading.Thread(target=thread_main, name=title, daemon=True).start()
    bpy.app.timers.register(poll, first_interval=POLL_SECONDS)
