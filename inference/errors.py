"""One error type for everything a user can get wrong, and the one signal that work was cancelled.

Every message names the offending file (or setting) and the problem in one line, so the CLI can print it
as-is and Blender operators can ``self.report({'ERROR'}, str(err))``.
"""

from __future__ import annotations

import os
from collections.abc import Callable


class RelightInputError(Exception):
    """Bad input: a missing/corrupt/unsupported file, an invalid HDRI, no person found, bad options."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


# progress(stage, fraction done in [0, 1]) -> False to cancel (None or True: go on), dream-textures' step callback.
Progress = Callable[[str, float], "bool | None"]


class Cancelled(Exception):
    """The user (Esc in Blender) or a caller's progress callback asked the work to stop.

    Not a failure: loops that carry on past one frame's failure re-raise it (catch it first)."""


def describe_exception(exc: BaseException) -> str:
    """'ExceptionClass: first line of its message', for one-line reports of unexpected errors."""
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__
