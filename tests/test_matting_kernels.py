"""The first run says it is compiling pymatting's kernels, once per install: `matting_kernels.prepare` reports
before an import that will compile and stays quiet once the cache holds them (tools/warm_kernels.py, run by
`make venv`, uses the same call). In Blender the extension compiles them in the background at enable, and a
relight job whose kernels are not ready shows that as its stage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
WARM = [sys.executable, str(REPO_ROOT / "tools" / "warm_kernels.py")]


def compiled_files(cache: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.suffix in (".nbi", ".nbc")}


@pytest.fixture(scope="module")
def first_compile(tmp_path_factory):
    """tools/warm_kernels.py into an empty numba cache: the real first compile (~45 s on two cores)."""
    cache = tmp_path_factory.mktemp("kernels") / "numba"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO_ROOT / "tools")}
    done = subprocess.run(WARM, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    return cache, env, done.stdout


def test_the_first_compile_is_announced_once(first_compile):
    cache, env, stdout = first_compile
    assert stdout.startswith(f"compiling pymatting's matting kernels once (about 1-2 minutes; later runs "
                             f"load them from {cache})"), stdout
    assert len(list(cache.glob("portrait_relight_pymatting_*.compiled"))) == 1
    compiled = compiled_files(cache)
    assert compiled  # numba really wrote its cache there

    again = subprocess.run(WARM, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0].startswith("matting kernels ready")  # no announcement: loaded from cache
    assert compiled_files(cache) == compiled  # loaded, not compiled again: numba rewrote nothing


# In Blender (bpy imported): the enable-time warm-up, then a relight job's first step on an install whose marker
# is missing (the kernels themselves load from the cache compiled above, so this stays quick).
BLENDER_SIDE = r"""
import sys
from package_loader import load_package
load_package()
import bpy  # noqa: F401
from portrait_relight.operators import jobs, preferences
from portrait_relight.inference.stages import matting_kernels
matting_kernels.marker().unlink()
assert not matting_kernels.compiled()
preferences.warm_matting_kernels().join()
assert matting_kernels.compiled() and preferences.warm_matting_kernels() is None
del sys.modules["pymatting"]  # as in a new Blender session...
matting_kernels.marker().unlink()  # ...on an install that never compiled
job = jobs.Job("t", jobs.prepare_matting, lambda result: None)
job.run_sync()
print("STAGE", job.stage)
"""


def test_blender_warms_the_kernels_at_enable_and_a_job_shows_the_compile(first_compile):
    from portrait_relight.operators.jobs import KERNELS_STAGE

    cache, env, _ = first_compile
    done = subprocess.run([sys.executable, "-c", BLENDER_SIDE], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Portrait Relight: compiling pymatting's matting kernels once" in done.stdout
    assert f"STAGE {KERNELS_STAGE}" in done.stdout
