"""Benchmark: per-stage and total wall time on a 1920x1080 plate (median of N runs), and pymatting's closed-form
matting alone at full 1080p for comparison, all measured in this one run.

    .venv/bin/python tools/bench.py [--runs 3] [--hdri FILE]

The plate is scikit-image's public-domain astronaut portrait scaled to 1080 px high and widened to 16:9 by
edge replication (so the machine always has the same input). Prints a table and ratios, and what the learned nets
(--normals learned) add per frame; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from package_loader import load_package


def bundled_world_hdri(name: str = "forest.exr") -> Path:
    import bpy

    return Path(bpy.utils.system_resource("DATAFILES", path="studiolights/world")) / name


def portrait_plate(height: int = 1080, width: int = 1920):
    """The astronaut scaled to `height` px high and widened to `width` by edge replication, scene-linear."""
    import numpy as np
    import skimage.data

    from portrait_relight.inference.io.imageio import srgb_to_linear
    from portrait_relight.inference.resample import resize

    face = resize(srgb_to_linear(skimage.data.astronaut() / 255.0), height, height)
    left = (width - height) // 2
    return np.pad(face, ((0, 0), (left, width - height - left), (0, 0)), mode="edge")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hdri", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "portrait_relight" / "numba"))
    load_package()
    import numpy as np
    from pymatting import estimate_alpha_cf

    from portrait_relight.inference import pipeline
    from portrait_relight.inference.io.imageio import linear_to_srgb, read_hdri
    from portrait_relight.inference.lighting.environment import Environment
    from portrait_relight.inference.settings import RelightSettings
    from portrait_relight.inference.stages import lightmaps, matting

    plate = portrait_plate()
    environment = Environment.centred(read_hdri(args.hdri or bundled_world_hdri()))
    settings = RelightSettings()
    pipeline.relight(plate, environment, settings)  # warm-up: model loading, numba, caches

    runs = [pipeline.relight(plate, environment, settings).timings for _ in range(args.runs)]
    stages = list(runs[0])
    median = {stage: statistics.median(run[stage] for run in runs) for stage in stages}

    clock = time.perf_counter()
    prefiltered = lightmaps.prefilter(environment)
    prefilter_s = time.perf_counter() - clock

    srgb = linear_to_srgb(plate)
    trimap = matting.adaptive_trimap(matting.segment_person(srgb, settings))
    cf_times = []
    for _ in range(args.runs):
        clock = time.perf_counter()
        estimate_alpha_cf(srgb.astype(np.float64), trimap.astype(np.float64))
        cf_times.append(time.perf_counter() - clock)
    cf = statistics.median(cf_times)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    print(f"plate 1920x1080, median of {args.runs} runs, HDRI {args.hdri or 'Blender forest.exr'}")
    print(f"{'stage':<14}{'seconds':>10}")
    for stage in stages:
        print(f"{stage:<14}{median[stage]:>10.3f}")
    print(f"{'(prefilter)':<14}{prefilter_s:>10.3f}   part of light_maps; reusable across frames of a shot")
    print(f"pymatting closed-form alone at 1920x1080 (unknown band {np.mean(trimap == 0.5):.1%}): {cf:.3f} s")
    print(f"ratio total pipeline / closed-form-alone-at-1080p: {median['total'] / cf:.2f}")
    print(f"ratio matting stage / closed-form-alone-at-1080p: {median['matting'] / cf:.2f}")

    # The learned nets: what --normals learned adds per frame (the classical geometry stage still finds the face).
    learned = dataclasses.replace(settings, normals="learned")
    pipeline.relight(plate, environment, learned)  # warm-up: the net's session
    learned_runs = [pipeline.relight(plate, environment, learned).timings for _ in range(args.runs)]
    learned_total = statistics.median(run["total"] for run in learned_runs)
    learned_geometry = statistics.median(run["geometry"] for run in learned_runs)
    print(f"--normals learned: geometry {learned_geometry:.3f} s, total {learned_total:.3f} s, "
          f"added by the learned nets {learned_total - median['total']:+.3f} s per 1080p frame")
    del prefiltered
    return 0


if __name__ == "__main__":
    sys.exit(main())
