"""Shared test set-up: the repo root is imported as the package `portrait_relight`, as Blender names the
extension (tools/package_loader.py; tools/ is on the test path via pytest.ini), and ../shared is located."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from package_loader import ROOT as REPO_ROOT
from package_loader import load_package

SHARED = Path(os.environ.get("PORTRAIT_RELIGHT_SHARED", REPO_ROOT.parent / "shared"))
# pymatting (requirements-dev.txt), the reference the product's matting is compared with, compiles numba kernels
# on first import: cache them outside the repo, once.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "portrait_relight" / "numba"))

load_package()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED}: the shared data folder beside the checkout is missing")
    return SHARED


@pytest.fixture(scope="session")
def astronaut_subject():
    """(linear plate, matte, shape) of skimage's astronaut portrait through the classical matting and geometry: the
    inputs the learned albedo and shading stages are tested on."""
    import numpy as np
    from skimage import data

    from portrait_relight.inference.io.imageio import srgb_to_linear
    from portrait_relight.inference.settings import RelightSettings
    from portrait_relight.inference.stages import geometry, matting

    plate = srgb_to_linear(data.astronaut().astype(np.float32) / 255.0)
    classical = RelightSettings(normals="classical")
    matte = matting.estimate_matte(plate, classical)
    shape = geometry.estimate_normals(plate, matte.alpha, classical)
    return plate, matte, shape
