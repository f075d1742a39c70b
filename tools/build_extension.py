#!/usr/bin/env python3
"""Build the installable extension zip: dist/portrait_relight-<version>.zip.

Steps: resolve the pinned runtime wheels (requirements.txt, else the version installed in this interpreter),
download the missing ones into a cache outside the repo, stage a copy of the package in build/stage/ with
those wheels and a manifest listing exactly them, run Blender's `blender_ext.py build`, then `validate` the zip.
The repo tree is only read (the zip lands in dist/ unless --dist-dir says otherwise).

    .venv/bin/python tools/build_extension.py [--cache DIR] [--dist-dir DIR] [--stage-dir DIR]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from package_loader import ROOT as REPO_ROOT
from package_loader import load_package

load_package()
from portrait_relight.inference.models.registry import MODELS  # noqa: E402

MODELS_DIR = REPO_ROOT / "inference" / "models"
MANIFEST = "blender_manifest.toml"

# What the extension imports at run time, with their own dependencies. numpy is left out on purpose:
# Blender ships its own numpy and a second copy in the extension's site-packages would shadow it.
RUNTIME_PACKAGES = (
    "onnxruntime", "flatbuffers", "protobuf", "packaging",
    "OpenEXR",
    "pymatting", "numba", "llvmlite", "scipy", "pillow",
    "pypng", "tifffile",
    "av",  # movie plates (ships its own FFmpeg)
    "opencolorio",  # colour spaces through Blender's own OCIO config
)
# Wheels for Blender's Python (3.11) on linux-x64, the one platform the manifest declares.
PIP_PLATFORM_ARGS = [
    "--only-binary=:all:", "--no-deps", "--python-version", "3.11", "--implementation", "cp",
    "--abi", "cp311", "--abi", "abi3", "--abi", "none",
    *[arg for tag in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                      "manylinux2014_x86_64") for arg in ("--platform", tag)],
]
# Top-level entries never copied into the stage (large or irrelevant); the manifest's paths_exclude_pattern
# decides the rest.
STAGE_SKIP = {".git", "build", "dist", "out", ".cache", "wheels", "tests", "tools", "docs", "training", "lightstage",
              "evaluation", "flamenco"}


class BuildError(Exception):
    pass


def normalise(name: str) -> str:
    """PEP 503 name as it appears (with '_') at the start of a wheel file name, lower-cased."""
    return re.sub(r"[-_.]+", "_", name).lower()


def pinned_versions(requirements: Path) -> dict[str, str]:
    pins = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)", line)
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def resolve_versions() -> dict[str, str]:
    pins = pinned_versions(REPO_ROOT / "requirements.txt")
    versions = {}
    for package in RUNTIME_PACKAGES:
        version = pins.get(normalise(package))
        if version is None:
            try:
                version = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError as exc:
                raise BuildError(
                    f"{package}: no pin in requirements.txt and not installed here; run with .venv/bin/python"
                ) from exc
        versions[package] = version
    return versions


def cached_wheel(cache: Path, package: str, version: str) -> Path | None:
    prefix = f"{normalise(package)}-{version}-"
    matches = sorted(p for p in cache.glob("*.whl") if p.name.lower().startswith(prefix.lower()))
    return matches[0] if matches else None


def fetch_wheels(cache: Path, versions: dict[str, str]) -> list[Path]:
    """The wheel file of each pinned package, downloading only the ones the cache lacks."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [f"{p}=={v}" for p, v in versions.items() if cached_wheel(cache, p, v) is None]
    if missing:
        print(f"downloading {len(missing)} wheel(s) into {cache}", flush=True)
        command = [sys.executable, "-m", "pip", "download", "--quiet", *PIP_PLATFORM_ARGS, "-d", str(cache), *missing]
        if subprocess.run(command).returncode != 0:
            raise BuildError("pip download failed (see above)")
    wheels = []
    for package, version in versions.items():
        wheel = cached_wheel(cache, package, version)
        if wheel is None:
            raise BuildError(f"{package}=={version}: no linux x86-64 wheel for Python 3.11 in {cache}")
        wheels.append(wheel)
    return sorted(wheels, key=lambda p: p.name.lower())


def require_models() -> list[Path]:
    """The registry's models (only those ship: other .onnx files in inference/models stay out of the zip)."""
    models = [MODELS_DIR / spec.file_name for spec in MODELS.values()]
    missing = [path.name for path in models if not path.is_file()]
    if missing:
        raise BuildError(f"inference/models/{', '.join(missing)} missing: run `make models` first (they ship inside "
                         "the zip)")
    return models


def stage_package(stage: Path, wheels: list[Path]) -> list[str]:
    """Copy the package into `stage` with its wheels; returns the manifest's wheel entries."""
    if stage.exists():
        shutil.rmtree(stage)
    ignore_top = shutil.ignore_patterns("__pycache__", "*.pyc")

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = set(ignore_top(directory, names))
        if Path(directory).resolve() == REPO_ROOT:
            skipped |= {n for n in names if n in STAGE_SKIP or n.startswith(".venv") or n.endswith(".zip")}
        if Path(directory).resolve() == MODELS_DIR:
            skipped |= {n for n in names if n.endswith(".onnx") and n.removesuffix(".onnx") not in MODELS}
        return skipped

    shutil.copytree(REPO_ROOT, stage, ignore=ignore, symlinks=False)
    (stage / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, stage / "wheels" / wheel.name)
    return [f"./wheels/{w.name}" for w in wheels]


def write_wheel_list(manifest_path: Path, entries: list[str]) -> None:
    text = manifest_path.read_text()
    block = "wheels = [\n" + "".join(f'  "{e}",\n' for e in entries) + "]"
    new_text, count = re.subn(r"(?ms)^wheels\s*=\s*\[.*?^\]", block, text)
    if count != 1:
        raise BuildError(f"{manifest_path}: expected exactly one top-level `wheels = [...]` list")
    manifest_path.write_text(new_text)


def blender_ext_script() -> Path:
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("bpy is not installed in this Python; run with .venv/bin/python")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    raise BuildError("blender_ext.py not found inside the bpy package")


def run_blender_ext(script: Path, *args: str) -> None:
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)
    sys.stdout.write(result.stdout)
    if result.returncode != 0:
        raise BuildError(f"blender_ext.py {args[0]} failed:\n{result.stdout}{result.stderr}")


def build(cache: Path, dist_dir: Path, stage_dir: Path) -> Path:
    manifest = tomllib.loads((REPO_ROOT / MANIFEST).read_text())
    models = require_models()
    wheels = fetch_wheels(cache, resolve_versions())
    entries = stage_package(stage_dir, wheels)
    if entries != sorted(manifest.get("wheels", []), key=str.lower):
        print(f"note: {MANIFEST} lists other wheels than the pinned ones; the staged manifest uses the pinned")
    write_wheel_list(stage_dir / MANIFEST, entries)
    script = blender_ext_script()
    dist_dir.mkdir(parents=True, exist_ok=True)
    zip_path = dist_dir / f"{manifest['id']}-{manifest['version']}.zip"
    run_blender_ext(script, "build", "--source-dir", str(stage_dir), "--output-filepath", str(zip_path))
    run_blender_ext(script, "validate", str(zip_path))
    print(f"built {zip_path} ({zip_path.stat().st_size / 2**20:.1f} MiB, {len(wheels)} wheels, "
          f"{len(models)} models)")
    return zip_path


def main(argv: list[str] | None = None) -> int:
    default_cache = Path(os.environ.get("PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=default_cache / "wheels", help="wheel cache folder")
    parser.add_argument("--dist-dir", type=Path, default=REPO_ROOT / "dist", help="where the zip goes")
    parser.add_argument("--stage-dir", type=Path, default=REPO_ROOT / "build" / "stage", help="staging folder")
    args = parser.parse_args(argv)
    try:
        build(args.cache.expanduser(), args.dist_dir, args.stage_dir)
    except BuildError as exc:
        print(f"build_extension: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
