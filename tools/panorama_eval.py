"""Panorama-level figures of the light estimated from a background photo, on crops of every pool HDRI (issue "Two
pictures are enough"): the product's estimator (v2, inference/lighting/background_light.py) with gains calibrated
leave-one-HDRI-out, v1 (inference/lighting/panorama.py) and a uniform grey sphere; and the gains to ship.

    .venv/bin/python tools/panorama_eval.py [--crops 6] [--seed 0] [--json FILE]

Each of the 24 pool HDRIs (16 shared + Blender's 8) is seen by `crops` random cameras
(evaluation/panorama_calibration.pool_crops), auto-exposed, clipped and 8-bit quantised
(evaluation/panorama_figures.py). Prints, per estimator, the mean and median of each figure over all crops, and
per HDRI (one leave-one-HDRI-out fold each: v2's gains for that HDRI's crops were fitted on the other 23 HDRIs'
crops, evaluation/panorama_calibration.py) the median of each figure, and how many folds v2 beats both v1 and
grey on. Direction errors count only crops whose true light has a direction (directionality >= 0.1). Last, the
gains fitted on all the crops: background_light.GAINS. Asserts nothing.
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

    from portrait_relight.evaluation import panorama_figures as figures
    from portrait_relight.evaluation.cases import shared_dir
    from portrait_relight.evaluation.panorama_calibration import calibration_crop, fit_gains, held_out_gains, pool_crops
    from portrait_relight.evaluation.panorama_v1 import estimate_environment_v1
    from portrait_relight.inference.lighting.background_light import estimate_environment

    crops = list(pool_crops(shared_dir(), args.crops, args.seed))
    calibration = [calibration_crop(hdri, crop) for hdri, _, crop in crops]
    folds = held_out_gains(calibration)
    estimators = {
        "v2 (held-out gains)": lambda hdri, crop: estimate_environment(crop.background, crop.fov_deg, 128,
                                                                       gains=folds[hdri]),
        "v1 (projection + push-pull)": lambda hdri, crop: estimate_environment_v1(crop.background, crop.fov_deg),
        "grey constant": lambda hdri, crop: figures.grey_environment(crop.background),
    }
    rows = []
    for hdri, (yaw, pitch, fov), crop in crops:
        for name, estimate in estimators.items():
            rows.append({"estimator": name, "hdri": hdri, "yaw": yaw, "pitch": pitch, "fov": fov,
                         **figures.panorama_figures(estimate(hdri, crop), crop.truth)})
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

    print("\nper HDRI (fold), median over its crops of each figure, estimators in the order above")
    print(f"{'hdri':<36}" + "".join(f"{figure[:24]:>26}" for figure in FIGURES))
    wins = dict.fromkeys(FIGURES, 0)
    hdris = sorted({r["hdri"] for r in rows})
    for hdri in hdris:
        cells = []
        for figure in FIGURES:
            medians = []
            for name in estimators:
                values = [r[figure] for r in rows if r["hdri"] == hdri and r["estimator"] == name
                          and (figure != "direction_error_deg" or r["directionality"] >= DIRECTIONAL)]
                medians.append(statistics.median(values) if values else float("nan"))
            wins[figure] += all(medians[0] <= other for other in medians[1:]) or medians[0] != medians[0]
            cells.append(" ".join(f"{m:7.2f}" for m in medians) + "  ")
        print(f"{hdri:<36}" + "".join(f"{c:>26}" for c in cells))
    first = next(iter(estimators))
    print(f"folds where {first} is no worse than every other estimator (median): "
          + ", ".join(f"{figure} {wins[figure]}/{len(hdris)}" for figure in FIGURES))
    print(f"\ngains fitted on all {len(calibration)} crops (background_light.GAINS): {fit_gains(calibration)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
