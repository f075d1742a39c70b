"""Benchmark: the whole `./relight` command on a 1920x1080 plate against pymatting's closed-form matting alone on
that plate, side by side in one run (issue "Frame time": the command must take <= 1.0x the closed form).

    .venv/bin/python tools/bench.py [--runs 3] [--hdri FILE] [--profile]

- The plate is scikit-image's public-domain astronaut portrait scaled to 1080 px high and widened to 16:9 by edge
  replication (the machine always gets the same input), written as an 8-bit PNG.
- The command is timed from process start to EXR on disk (median of `runs` fresh processes, after one warm-up run
  that fills the caches); start-up is the wall time the command's own stage timings do not cover (interpreter,
  imports, argument parsing). The default command runs the three learned nets; v1's classical stages
  (`--normals classical --albedo classical --shading classical`) are timed the same way, in turns with it, and
  the nets' added cost is the median of the paired differences.
- The baseline is `pymatting.estimate_alpha_cf` on the full-resolution plate (median of `runs`), with the trimap the
  issue defines: the command's own alpha split at 0.5, a band of 12 px around that contour unknown (~5 % of the
  frame).
- `--profile` also runs the command once in this process under cProfile and prints its top entries.
Prints a table and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from package_loader import ROOT, load_package

CLASSICAL_STAGES = ("--normals", "classical", "--albedo", "classical", "--shading", "classical")  # v1
BAND_PX = 12  # the issue's closed-form baseline: unknown band half-width around the 0.5 contour
STAGE_LINE = re.compile(r"^\s+(\w+)\s+([\d.]+) s$")

# Runs one command as this process's only child: its wall time, peak resident memory, stdout and stderr.
MEASURE = """
import json, resource, subprocess, sys, time
clock = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"returncode": done.returncode, "seconds": time.perf_counter() - clock,
                  "max_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
                  "stdout": done.stdout[-4000:], "stderr": done.stderr[-2000:]}))
"""


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


def write_plate(path: Path, height: int, width: int) -> Path:
    import numpy as np
    from PIL import Image

    from portrait_relight.inference.io.imageio import linear_to_srgb

    pixels = (np.clip(linear_to_srgb(portrait_plate(height, width)), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def measure_command(command: list[str]) -> dict:
    """{returncode, seconds, max_rss_bytes, stdout, stderr} of `command` run in a fresh process."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def stage_seconds(stdout: str) -> dict[str, float]:
    """The per-stage lines `./relight` prints ("  matting  1.07 s"), in order."""
    return {m.group(1): float(m.group(2)) for line in stdout.splitlines() if (m := STAGE_LINE.match(line))}


def timed_run(command: list[str]) -> dict:
    """One fresh-process run of the command: {'wall': s, 'start-up': s, stage: s...}."""
    done = measure_command(command)
    if done["returncode"] != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done['stderr']}")
    stages = stage_seconds(done["stdout"])
    stages["start-up"] = done["seconds"] - stages["total"]
    return {"wall": done["seconds"], **stages}


def paired_runs(commands: list[list[str]], runs: int) -> list[list[dict]]:
    """`runs` timed runs of each command, after one warm-up run of each, taken in turns (A B A B ...) so that the
    machine's drift (this VM's load varies by tens of percent over minutes) falls on all of them alike."""
    for command in commands:
        timed_run(command)
    results: list[list[dict]] = [[] for _ in commands]
    for _ in range(runs):
        for command, out in zip(commands, results):
            out.append(timed_run(command))
    return results


def issue_trimap(alpha):
    """The issue's baseline trimap: alpha split at 0.5, a BAND_PX band around that contour unknown."""
    import numpy as np
    from scipy import ndimage

    person = alpha > 0.5
    contour = person ^ ndimage.binary_erosion(person)
    band = ndimage.binary_dilation(contour, iterations=BAND_PX)
    trimap = person.astype(np.float64)
    trimap[band] = 0.5
    return trimap


def closed_form_baseline(plate_png: Path, exr: Path, runs: int) -> tuple[float, float]:
    """(median seconds of pymatting's estimate_alpha_cf on the full plate, unknown fraction of its trimap)."""
    import numpy as np
    from PIL import Image
    from pymatting import estimate_alpha_cf

    from portrait_relight.inference.io.exr import read_passes

    srgb = np.asarray(Image.open(plate_png).convert("RGB"), np.float64) / 255.0
    alpha = read_passes(exr)["alpha"]
    trimap = issue_trimap(alpha.reshape(alpha.shape[:2]))
    estimate_alpha_cf(srgb, trimap)  # warm-up: numba's kernels load
    seconds = []
    for _ in range(runs):
        clock = time.perf_counter()
        estimate_alpha_cf(srgb, trimap)
        seconds.append(time.perf_counter() - clock)
    return statistics.median(seconds), float(np.mean(trimap == 0.5))


def profile_command(command_args: list[str], top: int) -> None:
    from portrait_relight.inference import command

    profiler = cProfile.Profile()
    profiler.enable()
    command.main(command_args)
    profiler.disable()
    print(f"\nprofile of one in-process run (top {top} by own time):")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hdri", type=Path, default=None)
    parser.add_argument("--profile", action="store_true", help="also print the top cProfile entries of one run")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "portrait_relight" / "numba"))
    load_package()
    hdri = args.hdri or bundled_world_hdri()

    with tempfile.TemporaryDirectory() as work:
        plate = write_plate(Path(work) / "plate.png", 1080, 1920)
        command = [str(ROOT / "relight"), str(plate), "--out", str(Path(work) / "out"), "--hdri", str(hdri)]
        learned, classical = paired_runs([command, [*command, *CLASSICAL_STAGES]], args.runs)
        baseline, unknown = closed_form_baseline(plate, Path(work) / "out" / "plate.exr", args.runs)
        if args.profile:
            profile_command(command[1:], top=20)

    median = {key: statistics.median(run[key] for run in learned) for key in learned[0]}
    classical_wall = statistics.median(run["wall"] for run in classical)
    added = statistics.median(b["wall"] - a["wall"] for a, b in zip(classical, learned))  # paired, run by run
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    print(f"plate 1920x1080 PNG, HDRI {hdri.name}, medians of {args.runs} fresh processes after a warm-up run")
    print(f"{'stage':<14}{'seconds':>10}")
    for stage in ("start-up", *[k for k in learned[0] if k not in ("wall", "start-up", "total")]):
        print(f"{stage:<14}{median[stage]:>10.3f}")
    print(f"{'whole command':<14}{median['wall']:>10.3f}   process start to EXR on disk (default: the learned nets)")
    print(f"pymatting closed-form alone at 1920x1080 (issue trimap, {unknown:.1%} unknown): {baseline:.3f} s")
    print(f"ratio whole command / closed-form alone: {median['wall'] / baseline:.2f}  (goal <= 1.0)")
    print(f"{' '.join(CLASSICAL_STAGES)}: whole command {classical_wall:.3f} s, ratio "
          f"{classical_wall / baseline:.2f}; added by the learned nets {added:+.3f} s per 1080p frame (median of "
          "the paired differences; goal <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
