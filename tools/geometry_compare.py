"""The geometry net against the shipped one and the classical normals stage on the light stage's validation
identities (never eval-v2, never the scanned head): the validation samples the training run scores (fixed seeds,
no jitter), the ground-truth matte fed to every method, each through the product's whole normals stage (crop,
net, bilinear upsampling to the sample's resolution, the face mesh's detail on the face), scored as `make eval`
scores normals (evaluation/metrics.py), over the matte and over the face (the face landmarks' mask).

    .venv/bin/python tools/geometry_compare.py [--model <cache>/training/geometry/geometry.onnx] [--cache DIR]
        [--face-detail 0.05,0.1,0.2]

Rows: classical; shipped (the default stage); "net alone" (the shipped net without the face mesh's detail);
candidate (--model, when that file exists); one row per --face-detail scale (geometry.FACE_DETAIL_SIGMA, face
widths), the value the default's scale was chosen with.
"""

from __future__ import annotations

import contextlib
import sys

from net_compare import candidate_models_dir, compare_arguments, print_means
from package_loader import load_package


def face_detail_scales(parser) -> None:
    parser.add_argument("--face-detail", default="", help="comma-separated FACE_DETAIL_SIGMA values to score")


def main() -> int:
    args, model = compare_arguments(__doc__.splitlines()[0], "geometry", face_detail_scales)
    load_package()

    import numpy as np

    from portrait_relight.evaluation.metrics import normal_metrics
    from portrait_relight.inference.models.registry import GEOMETRY_NET
    from portrait_relight.inference.settings import RelightSettings
    from portrait_relight.inference.stages import geometry
    from portrait_relight.inference.stages.normals_net import estimate_normals_learned
    from portrait_relight.lightstage.derive import HdriPool, derive_sample
    from portrait_relight.lightstage.generate import default_shared
    from portrait_relight.lightstage.poses import poses_dir, read_pose
    from portrait_relight.training.pose_task import VALIDATION_SAMPLES

    pool = HdriPool.from_shared(args.shared or default_shared())
    poses = sorted((poses_dir(args.cache) / "val").glob("*.npz"))
    learned = RelightSettings(normals="learned")
    shipped_scale = geometry.FACE_DETAIL_SIGMA
    scales = [float(value) for value in args.face_detail.split(",") if value]
    with contextlib.ExitStack() as stack:
        methods = {"classical": lambda plate, alpha: geometry.estimate_normals(plate, alpha, RelightSettings(
                       normals="classical")).normal,
                   "shipped": lambda plate, alpha: geometry.estimate_normals(plate, alpha, learned).normal,
                   "net alone": lambda plate, alpha: estimate_normals_learned(plate, alpha, learned)}
        if model.is_file():
            candidate = RelightSettings(normals="learned",
                                        models_dir=stack.enter_context(candidate_models_dir(model, GEOMETRY_NET.name)))
            methods["candidate"] = lambda plate, alpha: geometry.estimate_normals(plate, alpha, candidate).normal

        def with_scale(scale: float):
            def run(plate, alpha):
                geometry.FACE_DETAIL_SIGMA = scale
                try:
                    return geometry.estimate_normals(plate, alpha, learned).normal
                finally:
                    geometry.FACE_DETAIL_SIGMA = shipped_scale
            return run

        methods.update({f"detail {scale:g}": with_scale(scale) for scale in scales})
        rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in methods}
        for path in poses:
            pose = read_pose(path)
            for seed in range(VALIDATION_SAMPLES):
                sample = derive_sample(pose, seed, pool)
                plate, alpha, truth = sample["plate"], sample["alpha"], sample["normal"]
                face = geometry.estimate_normals(plate, alpha, learned).face_mask > 0.5
                for name, method in methods.items():
                    normals = method(plate, alpha)
                    scores = normal_metrics(normals, truth, alpha)
                    on_face = normal_metrics(normals, truth, alpha * face) if face.any() else {}
                    rows[name].append((scores["normal_mean_deg"], scores["normal_median_deg"],
                                       on_face.get("normal_mean_deg", np.nan)))
    print_means(f"{len(poses)} validation poses x {VALIDATION_SAMPLES} samples, ground-truth matte; angular error "
                f"of the normals in degrees over the matte and over the face (candidate: {model})",
                ["mean", "median", "face mean"], rows, 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
