"""The albedo net against the classical albedo stage on the light stage's validation identities (never eval-v2,
never the scanned head): the same validation samples the training run scores (fixed seeds, no jitter), ground-truth
matte and normals fed to both, errors on the subject's crop in stops (|log2 predicted - log2 true albedo|).

    .venv/bin/python tools/albedo_compare.py [--model <cache>/training/albedo/albedo.onnx] [--cache DIR]
        [--normals learned]

With --normals learned, both are fed the bundled geometry net's normals of the plate (training/pose_task.
learned_normals), as in the all-learned path.

Three figures per method: absolute; exposure-free (one log offset per sample removed, the median); colour-free
(one per channel). The classical stage normalises its shading to a median of 1, so its absolute error includes
the plate's exposure; the net's absorbs it.
"""

from __future__ import annotations

import sys

import numpy as np
from net_compare import compare_arguments, cpu_session, fed_stages, print_means
from package_loader import load_package


def errors_in_stops(predicted: np.ndarray, true: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    eps = 1e-3
    delta = np.log2(np.maximum(predicted, 0.0) + eps) - np.log2(np.maximum(true, 0.0) + eps)
    inside = delta[mask]  # (N, 3)
    exposure_free = inside - np.median(inside)
    colour_free = inside - np.median(inside, axis=0)
    return float(np.abs(inside).mean()), float(np.abs(exposure_free).mean()), float(np.abs(colour_free).mean())


def main() -> int:
    args, model = compare_arguments(__doc__.splitlines()[0], "albedo", fed_stages("normals"))
    load_package()

    from portrait_relight.inference.stages import albedo as classical
    from portrait_relight.inference.stages.albedo_net import LOG_EPS, albedo_net_input
    from portrait_relight.inference.stages.normals_net import WORK_SIZE, subject_crop
    from portrait_relight.lightstage.derive import HdriPool, derive_sample
    from portrait_relight.lightstage.generate import default_shared
    from portrait_relight.lightstage.poses import poses_dir, read_pose
    from portrait_relight.training.albedo import MIN_ALBEDO
    from portrait_relight.training.pose_task import VALIDATION_SAMPLES, learned_normals

    session = cpu_session(model)
    pool = HdriPool.from_shared(args.shared or default_shared())
    poses = sorted((poses_dir(args.cache) / "val").glob("*.npz"))
    rows = {"classical": [], "learned": []}
    for path in poses:
        pose = read_pose(path)
        for seed in range(VALIDATION_SAMPLES):
            sample = derive_sample(pose, seed, pool)
            alpha, plate, normal = sample["alpha"], sample["plate"], sample["normal"]
            if args.normals == "learned":
                normal = learned_normals(sample)
            crop = subject_crop(alpha)
            true = crop.take(sample["albedo"], WORK_SIZE)
            mask = (crop.take(alpha, WORK_SIZE) > 0.5) & (true.min(axis=-1) > MIN_ALBEDO)
            fitted = classical.estimate_albedo(plate, normal, alpha).albedo
            rows["classical"].append(errors_in_stops(crop.take(fitted, WORK_SIZE), true, mask))
            (log_shading,) = session.run(None, {"input": albedo_net_input(plate, alpha, normal, crop)})
            plate_crop = crop.take(plate, WORK_SIZE)
            learned = (plate_crop + LOG_EPS) / np.exp(log_shading[0].transpose(1, 2, 0)) - LOG_EPS
            rows["learned"].append(errors_in_stops(learned, true, mask))
    print_means(f"{len(poses)} validation poses x {VALIDATION_SAMPLES} samples, ground-truth matte, {args.normals} "
                f"normals; albedo error in stops (mean |log2 predicted - log2 true|) on the {WORK_SIZE}^2 crop",
                ["absolute", "exposure-free", "colour-free"], rows, 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
