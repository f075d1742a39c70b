"""The shading net against v1's shading on the light stage's validation identities (never eval-v2, never the scanned
head): the validation pairs the training run scores (fixed seeds, no jitter), the ground-truth matte, normals and
albedo fed to both, the target light's light maps as the product computes them. Errors of the rendered relit
subject on the crop against the target render:

    .venv/bin/python tools/shading_compare.py [--model <cache>/training/shading/shading.onnx] [--cache DIR]
        [--albedo learned] [--normals learned]

With --albedo learned, both are fed the bundled albedo net's albedo instead of the ground truth (the all-learned
path's input, brought to the true albedo's exposure: training/shading.learned_albedo). With --normals learned, both
are fed the bundled geometry net's normals (training/pose_task.learned_normals), and the light maps and a learned
albedo are computed from them, as in the all-learned path.

- stops: mean |log2 relit - log2 target| inside the matte (the training metric);
- si-MSE: the evaluation's scale-invariant MSE (evaluation/metrics.py), the figure eval-v2 reports.
v1 shading here is the product's: the diffuse light map as it is and its lobe weights from the skin likelihood
(without a face mask: the light stage's samples have no landmarks, so the generic skin prior is used).
"""

from __future__ import annotations

import sys

import numpy as np
from net_compare import compare_arguments, cpu_session, fed_stages
from package_loader import load_package


def main() -> int:
    args, model = compare_arguments(__doc__.splitlines()[0], "shading", fed_stages("albedo", "normals"))
    load_package()
    import torch

    from portrait_relight.evaluation.metrics import scale_invariant_mse
    from portrait_relight.inference.stages import shading
    from portrait_relight.inference.stages.normals_net import WORK_SIZE, subject_crop
    from portrait_relight.inference.stages.shading_net import crop_rays
    from portrait_relight.lightstage.derive import HdriPool
    from portrait_relight.lightstage.generate import default_shared
    from portrait_relight.lightstage.poses import poses_dir
    from portrait_relight.training.pose_task import VALIDATION_SAMPLES, learned_normals
    from portrait_relight.training.shading import ShadingTask, learned_albedo, render_relit

    session = cpu_session(model)
    root = poses_dir(args.cache)
    validation = sorted((root / "val").glob("*.npz"))
    task = ShadingTask(sorted((root / "train").glob("*.npz"))[:1], validation,
                       HdriPool.from_shared(args.shared or default_shared()))
    rows: dict[str, list[tuple[float, float]]] = {"v1 shading": [], "learned shading": []}
    for path in validation:
        pose = task.load(path)
        for seed in range(VALIDATION_SAMPLES):
            pair = task.derive(pose, seed)
            if args.normals == "learned":
                pair["normal"] = learned_normals(pair)
            if args.albedo == "learned":
                pair["albedo"] = learned_albedo(pair, pair["normal"])
            x, target, mask = task.prepare(pair, WORK_SIZE)
            inside = mask[0] > 0
            (output,) = session.run(None, {"input": x[None]})
            learned = render_relit(torch.from_numpy(output), torch.from_numpy(target[None]))[0].numpy()
            # v1: ratio 1 (a zero log ratio) and the product's lobe weights as raw outputs would give them
            crop = subject_crop(pair["alpha"])
            height, width = pair["alpha"].shape
            plate, alpha = crop.take(pair["plate"], WORK_SIZE), crop.take(pair["alpha"], WORK_SIZE)
            rays = crop_rays(width, height, pair["fov_deg"], crop, WORK_SIZE)
            weights = shading.lobe_weights(shading.skin_likelihood(plate, alpha, None), x[4:7].transpose(1, 2, 0),
                                           rays)
            phong = target[9:21].reshape(4, 3, WORK_SIZE, WORK_SIZE)
            v1 = target[3:6] * target[6:9] + np.einsum("khw,kchw->chw", weights.transpose(2, 0, 1), phong)
            truth = target[:3]
            for name, relit in (("v1 shading", v1), ("learned shading", learned)):
                stops = np.abs(np.log2(np.maximum(relit, 0.0) + 0.01) - np.log2(np.maximum(truth, 0.0) + 0.01))
                rows[name].append((float(stops[:, inside].mean()),
                                   scale_invariant_mse(relit.transpose(1, 2, 0), truth.transpose(1, 2, 0), inside)))
    print(f"{len(validation)} validation identities x {VALIDATION_SAMPLES} pairs, ground-truth matte, "
          f"{args.normals} normals, {args.albedo} albedo; model {model}")
    print(f"{'':18s} {'stops':>8s} {'si-MSE':>10s}")
    for name, values in rows.items():
        stops, si_mse = np.mean(values, axis=0)
        print(f"{name:18s} {stops:8.3f} {si_mse:10.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
