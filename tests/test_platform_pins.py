"""The platforms whose zips carry other releases than requirements.txt (tools/extension_platforms.py) run the
product with those releases: the Linux wheels of the same versions shadow the venv's, `./relight` relights a
plate with the learned geometry net, and every pass matches the run with the main pins.

This checks the versions (older onnxruntime builds), not the operating systems: Windows and macOS
themselves are not run here (README, "Platforms").
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from extension_platforms import PLATFORM_OVERRIDES

from portrait_relight.inference.io.exr import read_passes

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight"))
# onnxruntime-directml's CPU provider is onnxruntime's; the Linux CPU build of the same release stands in for it.
LINUX_STAND_IN = {"onnxruntime-directml": "onnxruntime"}


def linux_requirements(platform: str) -> list[str]:
    requirements = []
    for requirement in PLATFORM_OVERRIDES[platform].values():
        name, version = requirement.split("==")
        requirements.append(f"{LINUX_STAND_IN.get(name, name)}=={version}")
    return sorted(requirements)


def pinned_site(platform: str) -> Path:
    """A folder holding the Linux wheels of `platform`'s departures, installed once and cached."""
    requirements = linux_requirements(platform)
    digest = hashlib.sha256(" ".join(requirements).encode()).hexdigest()[:12]
    folder = CACHE / "platform-pins" / f"{platform}-{digest}"
    if not (folder / ".complete").is_file():
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--upgrade", "--target", str(folder), *requirements]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        (folder / ".complete").write_text("\n".join(requirements))
    return folder


def relight(plate: Path, out: Path, hdri: Path, env: dict) -> dict[str, np.ndarray]:
    command = [sys.executable, str(REPO_ROOT / "relight"), str(plate), "--out", str(out), "--hdri", str(hdri),
               "--normals", "learned"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return read_passes(out / f"{plate.stem}.exr")


@pytest.fixture(scope="module")
def plate_and_reference(tmp_path_factory, shared_dir):
    from PIL import Image
    from skimage import data

    work = tmp_path_factory.mktemp("pins")
    plate = work / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((256, 256), Image.LANCZOS).save(plate)
    hdri = shared_dir / "data" / "hdri" / "lebombo_1k.hdr"
    return plate, hdri, relight(plate, work / "reference", hdri, dict(os.environ))


@pytest.mark.parametrize("platform", sorted(PLATFORM_OVERRIDES))
def test_the_releases_a_platform_pins_relight_like_the_main_ones(platform, plate_and_reference, tmp_path):
    plate, hdri, reference = plate_and_reference
    site = pinned_site(platform)
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = "import importlib.metadata as m; print(' '.join(f'{n}=={m.version(n)}' for n in %r))" % [
        r.split("==")[0] for r in linux_requirements(platform)]
    shown = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                           env=env, timeout=60)
    assert shown.stdout.split() == linux_requirements(platform), shown.stdout + shown.stderr  # the pins are in use

    passes = relight(plate, tmp_path / "out", hdri, env)
    assert set(passes) == set(reference)
    inside = reference["alpha"][..., 0] > 0.5
    for name, values in reference.items():
        difference = np.abs(passes[name] - values)
        assert difference.max() < 2e-3, (name, float(difference.max()))
        if name not in ("alpha", "foreground"):
            assert difference[inside].mean() < 1e-4, (name, float(difference[inside].mean()))
