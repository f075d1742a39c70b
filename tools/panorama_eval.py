"""Panorama-level figures of the light estimated from a background photo, on crops of every pool HDRI (issue "Two
pictures are enough"): v1's estimator (inference/lighting/panorama.py) against a uniform grey sphere.

    .venv/bin/python tools/panorama_eval.py [--crops 6] [--seed 0] [--json FILE]

Each of the 24 pool HDRIs (16 shared + Blender's 8) is seen by `crops` cameras at random yaw (0-360), pitch
(-10..25 degrees) and horizontal field of view (35-80 degrees), auto-exposed, clipped and 8-bit quantised
(evaluation/panorama_figures.py). Prints, per estimator, the mean and median of each figure over all crops, and
per HDRI (the leave-one-HDRI-out folds a learned estimator will report) the median scaled irradiance error and
direction error. Direction errors count only crops whose true light has a direction (directionality >= 0.1).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from package_loader import load_package

DIRECTIONAL = 0.1  # below this directionality the true light has no direction worth scoring
FIGURES = ("irradiance_error", "irradiance_error_scaled", "direction_error_deg", "chroma_error_deg")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=6, help="cameras per HDRI")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write every crop's figures here")
    args = parser.parse_args()
    load_package()
    import numpy as np

    from portrait_relight.evaluation import panorama_figures as figures
    from portrait_relight.evaluation.cases import shared_dir
    from portrait_relight.inference.lighting.panorama import estimate_environment
    from portrait_relight.lightstage.lighting import hdri_pool, load_hdri

    estimators = {
        "v1 (projection + push-pull)": lambda crop: estimate_environment(crop.background, crop.fov_deg),
        "grey constant": lambda crop: figures.grey_environment(crop.background),
    }
    rng = np.random.default_rng(args.seed)
    rows = []
    for collection, path in hdri_pool(shared_dir()):
        radiance = load_hdri(path)
        for _ in range(args.crops):
            yaw, pitch, fov = rng.uniform(0, 360), rng.uniform(-10, 25), rng.uniform(35, 80)
            crop = figures.background_crop(radiance, yaw, pitch, fov)
            for name, estimate in estimators.items():
                rows.append({"estimator": name, "hdri": f"{collection}/{path.name}", "yaw": yaw, "pitch": pitch,
                             "fov": fov, **figures.panorama_figures(estimate(crop), crop.truth)})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))

    print(f"{len(rows) // len(estimators)} crops of {len({r['hdri'] for r in rows})} HDRIs, seed {args.seed}")
    header = "".join(f"{figure:>28}" for figure in FIGURES)
    print(f"{'estimator':<30}{header}   (mean / median)")
    for name in estimators:
        mine = [r for r in rows if r["estimator"] == name]
        cells = []
        for figure in FIGURES:
            values = [r[figure] for r in mine
                      if figure != "direction_error_deg" or r["directionality"] >= DIRECTIONAL]
            cells.append(f"{statistics.mean(values):>14.3f} / {statistics.median(values):<11.3f}")
        print(f"{name:<30}{''.join(cells)}")
    directional = sum(r["directionality"] >= DIRECTIONAL for r in rows) // len(estimators)
    print(f"direction errors over the {directional} crops whose true light has a direction")

    print("\nper HDRI, median over its crops: scaled irradiance error | direction error (deg)")
    print(f"{'hdri':<40}" + "".join(f"{name[:24]:>30}" for name in estimators))
    for hdri in sorted({r["hdri"] for r in rows}):
        cells = []
        for name in estimators:
            mine = [r for r in rows if r["hdri"] == hdri and r["estimator"] == name]
            scaled = statistics.median(r["irradiance_error_scaled"] for r in mine)
            angles = [r["direction_error_deg"] for r in mine if r["directionality"] >= DIRECTIONAL]
            cells.append(f"{scaled:>16.3f} | {statistics.median(angles) if angles else float('nan'):>9.1f}")
        print(f"{hdri:<40}" + "".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
