"""pymatting's numba kernels: compiled into NUMBA_CACHE_DIR when pymatting is first imported (1-2 minutes on two
cores, silently), loaded from that cache afterwards (about a second).

Callers that can tell the user (the command line, a Blender job, the extension's first enable, `make venv`) call
`prepare(report)` before any matting, so a first run says what it is doing instead of looking frozen. Whether
the kernels are compiled is remembered by a marker beside numba's cache, keyed by the numba and pymatting
releases and pymatting's install path (numba's cache is per source file).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

FIRST_COMPILE = "compiling pymatting's matting kernels once (about 1-2 minutes; later runs load them from {cache})"


def marker() -> Path | None:
    """The file that says this numba + pymatting install has compiled its kernels, or None without a cache
    folder (numba then caches beside pymatting and we cannot tell)."""
    folder = os.environ.get("NUMBA_CACHE_DIR")
    spec = importlib.util.find_spec("pymatting")
    if not folder or spec is None:
        return None
    identity = " ".join([importlib.metadata.version("numba"), importlib.metadata.version("pymatting"),
                         str(spec.origin)])
    return Path(folder) / f"portrait_relight_pymatting_{hashlib.sha256(identity.encode()).hexdigest()[:16]}.compiled"


def compiled() -> bool:
    """Whether importing pymatting will load its kernels from the cache rather than compile them."""
    path = marker()
    return "pymatting" in sys.modules or (path is not None and path.is_file())


def prepare(report: Callable[[str], object] | None = None) -> float:
    """Import pymatting (compiling its kernels if this install never did), telling `report` first when it will
    compile. Returns the seconds the import took."""
    if "pymatting" in sys.modules:
        return 0.0
    path = marker()
    if report is not None and path is not None and not path.is_file():
        report(FIRST_COMPILE.format(cache=path.parent))
    clock = time.perf_counter()
    import pymatting  # noqa: F401  (the import is the compilation)

    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        except OSError:  # a read-only cache folder: numba could not cache either; nothing to remember
            pass
    return time.perf_counter() - clock
