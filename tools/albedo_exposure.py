"""Calibrate the learned albedo's exposure (albedo_net.FACE_SHADING) on the light stage's training photos.

One photo cannot tell a dark subject in bright light from a light subject in dim light, so the albedo stage sets
the albedo's level by convention: the face's median source shading is FACE_SHADING. This measures what that
median really is on photos exposed as a photographer exposes them (lightstage/derive.py meters the subject to a
normal key and misses by about half a stop): the product's whole learned path (the bundled geometry net's
normals and face mask, the albedo net, the ground-truth matte) on derived samples of the *training* poses (never
eval-v2, never the scanned head), against the true albedo on the stage's own reference pixels. Prints, per split,
the spread of the per-sample level error and the FACE_SHADING that makes its median zero; the validation
poses check the training poses' figure.

    .venv/bin/python tools/albedo_exposure.py [--samples 2] [--cache DIR] [--shared DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np
from package_loader import load_package

FIRST_SAMPLE_SEED = 50_000  # away from the training run's validation seeds: any draw of the training photos


def level_error_stops(albedo: np.ndarray, true_albedo: np.ndarray, reference: np.ndarray) -> float:
    """Median over `reference` of log2(true / predicted albedo luminance), on pixels where both are usable (the
    true albedo not black, the prediction neither black nor clipped at 1): how many stops the predicted level is
    too dark (negative: too bright). NaN when no pixel is usable."""
    from portrait_relight.inference.stages.albedo import LUMINANCE_WEIGHTS

    predicted, true = albedo @ LUMINANCE_WEIGHTS, true_albedo @ LUMINANCE_WEIGHTS
    usable = reference & (true > 0.02) & (predicted > 1e-3) & (albedo.max(axis=-1) < 0.999)
    if not usable.any():
        return float("nan")
    return float(np.median(np.log2(true[usable] / predicted[usable])))


def sample_level_errors(poses: list[Path], samples: int, shared: Path | None) -> list[float]:
    from portrait_relight.inference.settings import RelightSettings
    from portrait_relight.inference.stages import geometry, matting
    from portrait_relight.inference.stages.albedo_net import MIN_REFERENCE_PIXELS, estimate_albedo_learned
    from portrait_relight.lightstage.derive import HdriPool, derive_sample
    from portrait_relight.lightstage.generate import default_shared
    from portrait_relight.lightstage.poses import read_pose

    settings = RelightSettings(normals="learned", albedo="learned")
    pool = HdriPool.from_shared(shared or default_shared())
    errors = []
    for path in poses:
        pose = read_pose(path)
        for index in range(samples):
            sample = derive_sample(pose, FIRST_SAMPLE_SEED + index, pool)
            plate, alpha = sample["plate"], sample["alpha"]
            foreground = matting.estimate_foreground(plate, alpha)
            shape = geometry.estimate_normals(plate, alpha, settings)
            albedo = estimate_albedo_learned(foreground, alpha, shape.normal, shape.face_mask, settings)
            reference = (alpha > 0.9) & (shape.face_mask > 0.5)  # the stage's own reference pixels
            if reference.sum() < MIN_REFERENCE_PIXELS:
                reference = alpha > 0.9
            errors.append(level_error_stops(albedo, sample["albedo"][..., :3], reference))
    return [e for e in errors if np.isfinite(e)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2, help="derived photos per pose")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight")))
    parser.add_argument("--shared", type=Path, default=None)
    args = parser.parse_args()
    load_package()

    from portrait_relight.inference.stages.albedo_net import FACE_SHADING
    from portrait_relight.lightstage.poses import poses_dir

    for split in ("train", "val"):
        poses = sorted((poses_dir(args.cache) / split).glob("*.npz"))
        errors = sample_level_errors(poses, args.samples, args.shared)
        if not errors:
            print(f"{split}: no usable samples")
            continue
        median = statistics.median(errors)
        print(f"{split}: {len(poses)} poses x {args.samples} photos, {len(errors)} usable; albedo level error "
              f"(stops, + = too dark): median {median:+.3f}, mean {statistics.fmean(errors):+.3f}, "
              f"sd {statistics.pstdev(errors):.3f}; FACE_SHADING {FACE_SHADING:g} -> {FACE_SHADING / 2 ** median:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
