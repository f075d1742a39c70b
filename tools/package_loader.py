"""Import the repo root as the package `portrait_relight` (the name Blender gives the extension).

Scripts in tools/ import this module by name (their own folder is first on sys.path when run as scripts).
The checkout folder may have any name, so the package is loaded from its __init__.py with importlib.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_package(name: str = "portrait_relight"):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return package
