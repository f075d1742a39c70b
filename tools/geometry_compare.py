"""The geometry net against the shipped one and the classical normals stage on the light stage's validation
identities (never eval-v2, never the scanned head): the validation samples the training run scores (fixed seeds,
no jitter), the ground-truth matte fed to every method, each through the product's whole normals stage (crop,
net, bilinear upsampling to the sample's resolution), scored as `make eval` scores normals (evaluation/metrics.py).

    .venv/bin/python tools/geometry_compare.py [--model <cache>/training/geometry/geometry.onnx] [--cache DIR]
"""

from __future__ import annotations

import sys

from net_compare import candidate_models_dir, compare_arguments, print_means
from package_loader import load_package


def main() -> int:
    args, model = compare_arguments(__doc__.splitlines()[0], "geometry")
    load_package()

    from portrait_relight.evaluation.metrics import normal_metrics
    from portrait_relight.inference.models.registry import GEOMETRY_NET
    from portrait_relight.inference.settings import RelightSettings
    from portrait_relight.inference.stages.geometry import estimate_normals
    from portrait_relight.lightstage.derive import HdriPool, derive_sample
    from portrait_relight.lightstage.generate import default_shared
    from portrait_relight.lightstage.poses import poses_dir, read_pose
    from portrait_relight.training.pose_task import VALIDATION_SAMPLES

    pool = HdriPool.from_shared(args.shared or default_shared())
    poses = sorted((poses_dir(args.cache) / "val").glob("*.npz"))
    with candidate_models_dir(model, GEOMETRY_NET.name) as candidate_dir:
        methods = {"classical": RelightSettings(normals="classical"),
                   "shipped": RelightSettings(normals="learned"),
                   "candidate": RelightSettings(normals="learned", models_dir=candidate_dir)}
        rows: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
        for path in poses:
            pose = read_pose(path)
            for seed in range(VALIDATION_SAMPLES):
                sample = derive_sample(pose, seed, pool)
                for name, settings in methods.items():
                    normals = estimate_normals(sample["plate"], sample["alpha"], settings).normal
                    scores = normal_metrics(normals, sample["normal"], sample["alpha"])
                    rows[name].append((scores["normal_mean_deg"], scores["normal_median_deg"]))
    print_means(f"{len(poses)} validation poses x {VALIDATION_SAMPLES} samples, ground-truth matte; angular error "
                f"of the normals in degrees over the matte (candidate: {model})", ["mean", "median"], rows, 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
