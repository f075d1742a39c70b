"""What the tools that score a trained net against its classical stage on the validation identities share
(albedo_compare.py, shading_compare.py): their command line and the ONNX session of the net under test."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def compare_arguments(description: str, net: str) -> tuple[argparse.Namespace, Path]:
    """(--cache, --model, --shared arguments, the model's path: --model or the net's latest training export)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight")))
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--shared", type=Path, default=None)
    args = parser.parse_args()
    return args, args.model or args.cache / "training" / net / f"{net}.onnx"


def cpu_session(model: Path):
    """The net under test on the CPU, as exported (not through the product's registry: any checkpoint's export)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
