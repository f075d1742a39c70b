#!/usr/bin/env python3
"""Build the installable extension zips, one per platform: dist/portrait_relight-<version>-<platform>.zip.

Steps: resolve the pinned runtime wheels (requirements.txt, else the version installed in this interpreter, with
each platform's departures from tools/extension_platforms.py), download the missing ones for each platform into a
cache outside the repo, stage one copy of the package with every platform's wheels and a manifest listing exactly
them, run Blender's `blender_ext.py build --split-platforms` (one zip per platform, each with only its wheels and a
manifest naming only that platform), then check each zip's wheels and `validate` it. The repo tree is only read.

    .venv/bin/python tools/build_extension.py [--platform linux-x64 ...] [--cache DIR] [--dist-dir DIR]
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
import zipfile
from pathlib import Path

from extension_platforms import (
    PIP_PLATFORM_TAGS,
    PLATFORM_OVERRIDES,
    PLATFORMS,
    blender_platforms_of,
    minimum_macos,
    preference,
    runs_on_python311,
)
from package_loader import ROOT as REPO_ROOT
from package_loader import load_package

load_package()
from portrait_relight.inference.models.registry import MODELS  # noqa: E402

MODELS_DIR = REPO_ROOT / "inference" / "models"
MANIFEST = "blender_manifest.toml"

# What the extension imports at run time, with the dependencies those imports need. numpy is left out on
# purpose: Blender ships its own numpy and a second copy in the extension's site-packages would shadow it.
# onnxruntime's declared dependencies (flatbuffers, protobuf, packaging, sympy) are left out too: only its
# conversion and training tools import them, never InferenceSession (tests/test_extension.py runs the installed
# zip in a Blender that has nothing else).
RUNTIME_PACKAGES = (
    "onnxruntime",
    "OpenEXR",
    "scipy", "pillow",
    "tifffile",
    "av",  # movie plates (ships its own FFmpeg)
    "opencolorio",  # colour spaces through Blender's own OCIO config
)
PIP_COMMON_ARGS = ["--only-binary=:all:", "--no-deps", "--python-version", "3.11", "--implementation", "cp",
                   "--abi", "cp311", "--abi", "abi3", "--abi", "none"]
# No zip may grow past what linux-x64 users installed before the per-platform builds (172.5 MiB): a new runtime
# dependency has to pay for itself. scipy, PyAV and onnxruntime are most of each zip.
SIZE_BUDGET_MIB = 180
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


def platform_requirements(versions: dict[str, str], platform: str) -> list[str]:
    """`name==version` for each runtime package on `platform` (requirements.txt's pins, then its departures)."""
    overrides = PLATFORM_OVERRIDES.get(platform, {})
    return [overrides.get(package, f"{package}=={version}") for package, version in versions.items()]


def cached_wheel(cache: Path, requirement: str, platform: str) -> Path | None:
    """The cached wheel of `requirement` that runs on `platform` under Python 3.11, if any."""
    name, version = requirement.split("==")
    prefix = f"{normalise(name)}-{version}-".lower()
    matches = sorted((p for p in cache.glob("*.whl") if p.name.lower().startswith(prefix)
                      and platform in blender_platforms_of(p.name) and runs_on_python311(p.name)),
                     key=lambda p: (preference(p.name, platform), p.name))
    return matches[0] if matches else None


def fetch_wheels(cache: Path, versions: dict[str, str], platform: str) -> list[Path]:
    """The wheel file of each runtime package for `platform`, downloading only the ones the cache lacks."""
    cache.mkdir(parents=True, exist_ok=True)
    requirements = platform_requirements(versions, platform)
    missing = [r for r in requirements if cached_wheel(cache, r, platform) is None]
    if missing:
        print(f"{platform}: downloading {len(missing)} wheel(s) into {cache}", flush=True)
        tags = [arg for tag in PIP_PLATFORM_TAGS[platform] for arg in ("--platform", tag)]
        command = [sys.executable, "-m", "pip", "download", "--quiet", *PIP_COMMON_ARGS, *tags, "-d", str(cache),
                   *missing]
        if subprocess.run(command).returncode != 0:
            raise BuildError(f"{platform}: pip download failed (see above)")
    wheels = []
    for requirement in requirements:
        wheel = cached_wheel(cache, requirement, platform)
        if wheel is None:
            raise BuildError(f"{requirement}: no {platform} wheel for Python 3.11 in {cache}")
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


def write_manifest_lists(manifest_path: Path, platforms: list[str], entries: list[str]) -> None:
    """Rewrite the staged manifest's `platforms` and `wheels` lists (the tracked manifest is never edited)."""
    text = manifest_path.read_text()
    for key, values in (("platforms", platforms), ("wheels", entries)):
        block = f"{key} = [\n" + "".join(f'  "{v}",\n' for v in values) + "]"
        text, count = re.subn(rf"(?ms)^{key}\s*=\s*\[.*?\]", block, text)
        if count != 1:
            raise BuildError(f"{manifest_path}: expected exactly one top-level `{key} = [...]` list")
    manifest_path.write_text(text)


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


def check_zip(zip_path: Path, platform: str, wheels: list[Path]) -> None:
    """The zip carries exactly `platform`'s wheels, and its manifest names only that platform and those wheels."""
    with zipfile.ZipFile(zip_path) as archive:
        inside = sorted(n.removeprefix("wheels/") for n in archive.namelist() if n.startswith("wheels/"))
        manifest = tomllib.loads(archive.read(MANIFEST).decode())
    # Blender's split build leaves the lists above alone and writes the per-platform ones under [build.generated].
    manifest = {**manifest, **manifest.get("build", {}).get("generated", {})}
    expected = sorted(w.name for w in wheels)
    if inside != expected:
        raise BuildError(f"{zip_path.name}: wheels {sorted(set(inside) ^ set(expected))} differ from the ones pip "
                         f"chose for {platform}")
    if manifest.get("platforms") != [platform] or sorted(manifest.get("wheels", [])) != [f"./wheels/{n}" for n in
                                                                                        expected]:
        raise BuildError(f"{zip_path.name}: its manifest does not list exactly {platform} and its wheels")


def describe_zip(zip_path: Path, wheels: list[Path]) -> str:
    """One line per zip: size, wheel count, minimum macOS where it applies, and the largest members."""
    with zipfile.ZipFile(zip_path) as archive:
        members = sorted(archive.infolist(), key=lambda i: -i.compress_size)[:4]
    largest = ", ".join(f"{Path(i.filename).name.split('-')[0]} {i.compress_size / 2**20:.1f}" for i in members)
    macos = minimum_macos([w.name for w in wheels])
    return (f"{zip_path.name}: {zip_path.stat().st_size / 2**20:.1f} MiB, {len(wheels)} wheels"
            f"{f', macOS {macos}+' if macos else ''}; largest (MiB): {largest}")


def build(cache: Path, dist_dir: Path, stage_dir: Path, platforms: list[str]) -> list[Path]:
    manifest = tomllib.loads((REPO_ROOT / MANIFEST).read_text())
    models = require_models()
    versions = resolve_versions()
    wheels = {platform: fetch_wheels(cache, versions, platform) for platform in platforms}
    every_wheel = sorted({w for ws in wheels.values() for w in ws}, key=lambda p: p.name.lower())
    entries = stage_package(stage_dir, every_wheel)
    if platforms == list(PLATFORMS) and entries != sorted(manifest.get("wheels", []), key=str.lower):
        print(f"note: {MANIFEST} lists other wheels than the pinned ones; the staged manifest uses the pinned")
    write_manifest_lists(stage_dir / MANIFEST, platforms, entries)
    script = blender_ext_script()
    dist_dir.mkdir(parents=True, exist_ok=True)
    run_blender_ext(script, "build", "--split-platforms", "--source-dir", str(stage_dir), "--output-dir",
                    str(dist_dir))
    zips = []
    for platform in platforms:
        zip_path = dist_dir / f"{manifest['id']}-{manifest['version']}-{platform.replace('-', '_')}.zip"
        check_zip(zip_path, platform, wheels[platform])
        if zip_path.stat().st_size > SIZE_BUDGET_MIB * 2**20:
            raise BuildError(f"{zip_path.name}: {zip_path.stat().st_size / 2**20:.1f} MiB is over the "
                             f"{SIZE_BUDGET_MIB} MiB budget (SIZE_BUDGET_MIB)")
        run_blender_ext(script, "validate", str(zip_path))
        zips.append(zip_path)
    print(f"built {len(zips)} zip(s), {len(models)} models each:")
    for zip_path, platform in zip(zips, platforms):
        print("  " + describe_zip(zip_path, wheels[platform]))
    return zips


def main(argv: list[str] | None = None) -> int:
    default_cache = Path(os.environ.get("PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform", action="append", choices=PLATFORMS, dest="platforms",
                        help="build only this platform's zip (repeatable; default: all four)")
    parser.add_argument("--cache", type=Path, default=default_cache / "wheels", help="wheel cache folder")
    parser.add_argument("--dist-dir", type=Path, default=REPO_ROOT / "dist", help="where the zips go")
    parser.add_argument("--stage-dir", type=Path, default=REPO_ROOT / "build" / "stage", help="staging folder")
    args = parser.parse_args(argv)
    platforms = [p for p in PLATFORMS if p in (args.platforms or PLATFORMS)]
    try:
        build(args.cache.expanduser(), args.dist_dir, args.stage_dir, platforms)
    except BuildError as exc:
        print(f"build_extension: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
