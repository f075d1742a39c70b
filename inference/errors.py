"""One error type for everything a user can get wrong.

Every message names the offending file (or setting) and the problem in one line, so the CLI can print it
as-is and Blender operators can ``self.report({'ERROR'}, str(err))``.
"""

from __future__ import annotations

import os


class RelightInputError(Exception):
    """Bad input: a missing/corrupt/unsupported file, an invalid HDRI, no person found, bad options."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
