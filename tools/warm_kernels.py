"""Compile pymatting's numba kernels into the cache now (set-up), so the first relight does not spend minutes
on it: `make venv` runs this. Prints what it does and how long it took.

    .venv/bin/python tools/warm_kernels.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from package_loader import load_package


def main() -> int:
    cache = Path(os.environ.get("PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight"))
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache / "numba"))
    load_package()
    from portrait_relight.inference.stages import matting_kernels

    seconds = matting_kernels.prepare(lambda message: print(message, flush=True))
    print(f"matting kernels ready in {os.environ['NUMBA_CACHE_DIR']} ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
