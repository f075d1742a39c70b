"""Train one of Portrait Relight's nets on the light-stage poses in the cache, then export it to ONNX.

    .venv/bin/python tools/train.py --net geometry|albedo|shading --minutes 90 [--steps N] [--cache DIR] [--out DIR]
        [--init shipped|FILE.onnx] [--lr RATE]

Resumable: the run folder (default <cache>/training/<net>) keeps its checkpoint, so the same command continues.
Writes <out>/<net>.onnx (dynamic spatial size), history.json and curves.png.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from package_loader import load_package

NETS = ("geometry", "albedo", "shading")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", choices=NETS, required=True)
    parser.add_argument("--minutes", type=float, default=None, help="time budget of this call")
    parser.add_argument("--steps", type=int, default=None, help="total steps (over all calls)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight")))
    parser.add_argument("--out", type=Path, default=None, help="run folder (default <cache>/training/<net>)")
    parser.add_argument("--shared", type=Path, default=None)
    parser.add_argument("--init", default=None,
                        help="a new run starts from these weights: 'shipped' (the bundled model) or an ONNX file")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate (default 1e-3; fine-tuning from --init wants less, e.g. 3e-4)")
    args = parser.parse_args(argv)
    if args.minutes is None and args.steps is None:
        parser.error("give --minutes or --steps")
    load_package()
    from portrait_relight.inference.models.session import resolve_model
    from portrait_relight.lightstage.derive import HdriPool
    from portrait_relight.lightstage.generate import default_shared
    from portrait_relight.lightstage.poses import poses_dir
    from portrait_relight.training.albedo import AlbedoTask
    from portrait_relight.training.geometry import GeometryTask
    from portrait_relight.training.harness import RunConfig, export_onnx, train
    from portrait_relight.training.shading import ShadingTask

    root = poses_dir(args.cache)
    train_poses, val_poses = sorted((root / "train").glob("*.npz")), sorted((root / "val").glob("*.npz"))
    out = args.out or args.cache / "training" / args.net
    task_class = {"geometry": GeometryTask, "albedo": AlbedoTask, "shading": ShadingTask}[args.net]
    task = task_class(train_poses, val_poses, HdriPool.from_shared(args.shared or default_shared()),
                      find_train_poses=lambda: sorted((root / "train").glob("*.npz")))
    print(f"{args.net}: {len(train_poses)} training and {len(val_poses)} validation poses from {root}", flush=True)
    config = RunConfig(batch_size=args.batch) if args.lr is None else RunConfig(batch_size=args.batch,
                                                                                  learning_rate=args.lr)
    init = resolve_model(f"{args.net}_net") if args.init == "shipped" else args.init and Path(args.init)
    model, history = train(task, out, config, minutes=args.minutes, steps=args.steps, init=init,
                           log=lambda line: print(f"{line}  [{len(task.train_poses)} training poses]", flush=True))
    if not history.steps:
        print(f"{args.net}: no validation point reached yet; nothing exported", flush=True)
        return 0
    path = export_onnx(model, out / f"{args.net}.onnx", task.in_channels, {
        "net": args.net, "steps": history.steps[-1], "samples": history.samples,
        "training_seconds": round(history.seconds), "train_poses": len(task.train_poses), "val_poses": len(val_poses),
        "val_metric": round(history.val_metric[-1], 4), "initialised_from": history.initialised_from or "scratch",
        "exported": time.strftime("%Y-%m-%d")})
    print(f"{args.net}: wrote {path} (validation metric {history.val_metric[-1]:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
