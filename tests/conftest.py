"""Make the repo root importable as the package `portrait_relight`, exactly as Blender names the extension.

The checkout folder can have any name, so the root package is loaded from its __init__.py with importlib
instead of relying on the folder name or sys.path.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PORTRAIT_RELIGHT_SHARED", REPO_ROOT.parent / "shared"))
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "portrait_relight" / "numba"))


def _load_root_package(name: str = "portrait_relight"):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_load_root_package()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED}: the shared data folder beside the checkout is missing")
    return SHARED
