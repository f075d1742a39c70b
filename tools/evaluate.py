"""`evaluate --cases DIR [--out DIR] [--limit N]`: score the pipeline on virtual light stage cases
(evaluation/run.py). Run with the repo's venv: .venv/bin/python tools/evaluate.py ..."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from package_loader import load_package

# pymatting's numba kernels compile once and are cached outside the repo (as ./relight does).
_CACHE = Path(os.environ.get("PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight"))
os.environ.setdefault("NUMBA_CACHE_DIR", str(_CACHE / "numba"))

load_package()
from portrait_relight.evaluation.run import main  # noqa: E402  (the package exists only after load_package)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
