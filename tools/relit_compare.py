"""The product's whole relit path on the light stage's validation pairs (never eval-v2, never the scanned head): the
plate of each pair relit under the pair's target light, as `make eval` scores a case, to choose between variants of
the learned path without looking at eval-v2.

    .venv/bin/python tools/relit_compare.py [--cache DIR] [--shared DIR] [--no-mirror]

Per validation pose (`<cache>/lightstage/poses-v2/val`) its 4 fixed pairs (training/pose_task.VALIDATION_SAMPLES);
the ground-truth matte; the product's geometry stage (with the face mesh's detail where landmarks are found),
albedo and shading (pipeline.relight_subject), v1's classical stages and the default learned ones. Prints the
means of the evaluation's relit, normal and albedo metrics (evaluation/metrics.py). --no-mirror runs the nets once
each instead of mirror-averaged (normals_net.MIRROR_AVERAGE).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from package_loader import load_package

COLUMNS = (("relit_simse", "relit si-MSE", 5), ("relit_ssim", "SSIM", 4), ("relit_psnr", "PSNR", 2),
           ("relit_psnr_exposed", "PSNR@s*", 2), ("normal_mean_deg", "n.mean", 2), ("normal_median_deg", "n.med", 2),
           ("albedo_simse", "alb.siMSE", 5))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight")))
    parser.add_argument("--shared", type=Path, default=None)
    parser.add_argument("--no-mirror", action="store_true", help="each net runs once, not mirror-averaged")
    args = parser.parse_args(argv)
    load_package()
    import numpy as np

    from portrait_relight.evaluation.metrics import albedo_metrics, normal_metrics, relit_metrics
    from portrait_relight.inference.pipeline import relight_subject
    from portrait_relight.inference.settings import RelightSettings
    from portrait_relight.inference.stages import geometry, normals_net
    from portrait_relight.lightstage.derive import HdriPool
    from portrait_relight.lightstage.generate import default_shared
    from portrait_relight.lightstage.poses import poses_dir
    from portrait_relight.training.pose_task import VALIDATION_SAMPLES
    from portrait_relight.training.shading import ShadingTask

    normals_net.MIRROR_AVERAGE = not args.no_mirror
    validation = sorted((poses_dir(args.cache) / "val").glob("*.npz"))
    if not validation:
        print(f"{poses_dir(args.cache) / 'val'}: no validation poses (make lightstage-poses renders them)",
              file=sys.stderr)
        return 1
    task = ShadingTask(validation[:1], validation, HdriPool.from_shared(args.shared or default_shared()))
    rows: dict[str, list[dict[str, float]]] = {"v1": [], "learned": []}
    for path in validation:
        pose = task.load(path)
        for seed in range(VALIDATION_SAMPLES):
            pair = task.derive(pose, seed)
            plate, alpha = pair["plate"], pair["alpha"]
            target = pair["target"] / np.maximum(alpha, 1e-3)[..., None]  # the render is premultiplied
            for name, stage in (("v1", "classical"), ("learned", "learned")):
                settings = RelightSettings(fov_deg=pair["fov_deg"], normals=stage, albedo=stage, shading=stage)
                shape = geometry.estimate_normals(plate, alpha, settings)
                lit = relight_subject(plate, alpha, shape.normal, shape.face_mask, pair["target_environment"],
                                      settings)
                rows[name].append({**relit_metrics(lit.shaded.relit, target, alpha),
                                   **normal_metrics(shape.normal, pair["normal"], alpha),
                                   **albedo_metrics(lit.albedo, pair["albedo"], alpha)})
    print(f"{len(validation)} validation identities x {VALIDATION_SAMPLES} pairs, ground-truth matte, nets "
          f"{'run once' if args.no_mirror else 'mirror-averaged'}")
    print(f"{'method':<9}" + "".join(f"{header:>14}" for _, header, _ in COLUMNS))
    for name, values in rows.items():
        means = [float(np.nanmean([value[key] for value in values])) for key, _, _ in COLUMNS]
        print(f"{name:<9}" + "".join(f"{mean:>14.{decimals}f}" for mean, (_, _, decimals) in zip(means, COLUMNS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
