"""Build the ONNX models Portrait Relight uses from the pinned MediaPipe wheel.

    python tools/build_models.py [--out inference/models] [--wheel-cache DIR] [--force]

The models and their sources are the registry's (inference/models/registry.py): for every model whose source is a
member of a pinned wheel, find (or `pip download`) that wheel, read the .tflite member straight out of the zip
(MediaPipe is never installed), check its pinned SHA-256, convert with tools/tflite2onnx, run the ONNX
checker and write each model atomically (temporary file + rename). A model is skipped when the existing .onnx
records the same source hash and converter fingerprint in its metadata, so repeated `make models` is free.

The models are Apache-2.0 (Google MediaPipe). They are converted at build time and never committed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import onnx
import tflite2onnx  # beside this script: its folder is first on the import path
from package_loader import ROOT as REPO_ROOT
from package_loader import load_package

load_package()
from portrait_relight.inference.models.registry import MEDIAPIPE_VERSION, MODELS, ModelSpec, WheelMember  # noqa: E402

TOOLS_DIR = Path(__file__).resolve().parent
# The .tflite members are the same in every platform's wheel; downloading one fixed platform keeps the build
# reproducible from any host (pip only fetches the file, it installs nothing).
WHEEL_PLATFORM_ARGS = ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                       "--implementation", "cp", "--abi", "cp311", "--only-binary=:all:"]


# The registry's models built from the mediapipe wheel, in registry order (= the order the stages need them in).
WHEEL_MODELS = [spec for spec in MODELS.values() if isinstance(spec.source, WheelMember)]


def default_cache_dir() -> Path:
    base = os.environ.get("PORTRAIT_RELIGHT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                     "portrait_relight")
    return Path(base) / "wheels"


def converter_fingerprint() -> str:
    """Hash of the converter's source, so any converter change rebuilds the models."""
    h = hashlib.sha256()
    for path in sorted((TOOLS_DIR / "tflite2onnx").glob("*.py")):
        if path.name == "reference_runner.py":  # test helper, does not affect the output
            continue
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def find_wheel(cache_dir: Path) -> Path:
    """A cached mediapipe wheel of the pinned version, downloading one with pip when none is cached."""
    pattern = "mediapipe-%s-*.whl" % MEDIAPIPE_VERSION
    cached = sorted(cache_dir.glob(pattern))
    if cached:
        return cached[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "mediapipe==%s" % MEDIAPIPE_VERSION, "-d", str(cache_dir)] + WHEEL_PLATFORM_ARGS
    print("downloading: %s" % " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    cached = sorted(cache_dir.glob(pattern))
    if not cached:
        raise SystemExit("pip download finished but no %s appeared in %s" % (pattern, cache_dir))
    return cached[0]


def read_members(wheel: Path, specs: list[ModelSpec]) -> dict[str, bytes]:
    out = {}
    with zipfile.ZipFile(wheel) as zf:
        for spec in specs:
            data = zf.read(spec.source.member)
            digest = hashlib.sha256(data).hexdigest()
            if digest != spec.sha256:
                raise SystemExit("%s: %s has SHA-256 %s, expected %s"
                                 % (wheel, spec.source.member, digest, spec.sha256))
            out[spec.name] = data
    return out


def _metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def is_up_to_date(path: Path, spec: ModelSpec, fingerprint: str) -> bool:
    if not path.is_file():
        return False
    try:
        meta = _metadata(onnx.load(str(path), load_external_data=False))
    except Exception:  # unreadable or truncated: rebuild it
        return False
    return meta.get("source_sha256") == spec.sha256 and meta.get("converter_fingerprint") == fingerprint


def write_atomic(model: onnx.ModelProto, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the model ordinary file permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def convert_one(spec: ModelSpec, data: bytes, fingerprint: str) -> tuple[onnx.ModelProto, list[str]]:
    tf_model = tflite2onnx.read_tflite(data)
    model = tflite2onnx.tflite_to_onnx(data, graph_name=spec.name)
    for key, value in (("source", spec.source.describe()), ("source_sha256", spec.sha256),
                       ("converter_fingerprint", fingerprint), ("license", spec.licence)):
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    return model, tf_model.opcodes_used


def build(out_dir: Path, cache_dir: Path, force: bool = False, names: list[str] | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = converter_fingerprint()
    specs = [s for s in WHEEL_MODELS if not names or s.name in names]
    todo = [s for s in specs if force or not is_up_to_date(out_dir / (s.name + ".onnx"), s, fingerprint)]
    for s in specs:
        if s not in todo:
            print("%-28s up to date" % s.name)
    if todo:
        wheel = find_wheel(cache_dir)
        blobs = read_members(wheel, todo)
        for spec in todo:
            t0 = time.perf_counter()
            model, ops = convert_one(spec, blobs[spec.name], fingerprint)
            path = out_dir / (spec.name + ".onnx")
            write_atomic(model, path)
            print("%-28s %.2fs  %6.2f MB  ops: %s" % (spec.name, time.perf_counter() - t0,
                                                      path.stat().st_size / 1e6, ", ".join(ops)), flush=True)
    return [out_dir / (s.name + ".onnx") for s in specs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "inference" / "models",
                        help="output folder (default: inference/models)")
    parser.add_argument("--wheel-cache", type=Path, default=None,
                        help="folder holding/receiving the mediapipe wheel "
                             "(default: ${PORTRAIT_RELIGHT_CACHE:-~/.cache/portrait_relight}/wheels)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the outputs are up to date")
    parser.add_argument("names", nargs="*", help="only these models (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.names) - {s.name for s in WHEEL_MODELS}
    if unknown:
        parser.error("unknown model(s): %s" % ", ".join(sorted(unknown)))
    build(args.out, args.wheel_cache or default_cache_dir(), args.force, args.names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
