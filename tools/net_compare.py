"""What the tools that score a trained net against its classical stage on the validation identities share
(albedo_compare.py, shading_compare.py, geometry_compare.py): their command line and the net under test, as an ONNX
session or as a user model the product loads."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def compare_arguments(description: str, net: str,
                      more: Callable[[argparse.ArgumentParser], None] | None = None) -> tuple[argparse.Namespace, Path]:
    """(--cache, --model, --shared arguments and whatever `more` adds, the model's path: --model or the net's latest
    training export)."""
    parser = argparse.ArgumentParser(description=description)
    if more is not None:
        more(parser)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight")))
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--shared", type=Path, default=None)
    args = parser.parse_args()
    return args, args.model or args.cache / "training" / net / f"{net}.onnx"


def fed_stages(*stages: str) -> Callable[[argparse.ArgumentParser], None]:
    """compare_arguments' `more`: one --<stage> {ground-truth, learned} option per stage whose output is fed to
    both methods (the ground truth, or the bundled net's on the sample's plate)."""
    def add(parser: argparse.ArgumentParser) -> None:
        for stage in stages:
            parser.add_argument(f"--{stage}", choices=("ground-truth", "learned"), default="ground-truth",
                                help=f"the {stage} fed to both")
    return add


def cpu_session(model: Path):
    """The net under test on the CPU, as exported (not through the product's registry: any checkpoint's export)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def candidate_models_dir(model: Path, registered_name: str) -> Iterator[str]:
    """A temporary folder holding `model` as `<registered_name>.onnx`: with settings.models_dir set to it, the
    product runs the candidate through its own user-model path, as a user's replacement would run."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copyfile(model, Path(folder) / f"{registered_name}.onnx")
        yield folder


def print_means(heading: str, columns: list[str], rows: dict[str, list[tuple[float, ...]]], decimals: int) -> None:
    """`heading`, then one line per method: the mean of each column over its samples (NaN samples skipped)."""
    import numpy as np

    print(heading)
    print(f"{'method':<11}" + "".join(f"{column:>15}" for column in columns))
    for name, values in rows.items():
        means = np.nanmean(np.asarray(values, np.float64), axis=0)
        print(f"{name:<11}" + "".join(f"{mean:>15.{decimals}f}" for mean in means))
