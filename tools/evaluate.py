"""`evaluate --cases DIR [--out DIR] [--limit N]`: score the pipeline on virtual light stage cases
(evaluation/run.py). Run with the repo's venv: .venv/bin/python tools/evaluate.py ..."""

from __future__ import annotations

import sys

from package_loader import load_package

load_package()
from portrait_relight.evaluation.run import main  # noqa: E402  (the package exists only after load_package)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
