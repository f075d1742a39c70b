"""Scale benchmark: the whole `./relight` command on 1080p, 4K and 8K plates, each in its own process: wall time,
seconds per megapixel (time should be linear in pixels) and peak memory (the child's ru_maxrss).

    .venv/bin/python tools/bench_scale.py [--sizes 1080p,4k,8k] [--hdri FILE]

Plates are the astronaut portrait of tools/bench.py at each size, written as 8-bit PNG. Targets (issue
"Hardening"): peak RSS at most 2 GB at 4K and 5 GB at 8K. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import bundled_world_hdri, portrait_plate
from package_loader import ROOT, load_package

SIZES = {"1080p": (1080, 1920), "4k": (2160, 3840), "8k": (4320, 7680)}

# Runs one command as this process's only child and reports its wall time and peak resident memory.
MEASURE = """
import json, resource, subprocess, sys, time
clock = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"returncode": done.returncode, "seconds": time.perf_counter() - clock,
                  "max_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
                  "stderr": done.stderr[-2000:]}))
"""


def measure_command(command: list[str]) -> dict:
    """{returncode, seconds, max_rss_bytes, stderr} of `command` run in a fresh process."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def write_plate(path: Path, height: int, width: int) -> Path:
    import numpy as np
    from PIL import Image

    from portrait_relight.inference.io.imageio import linear_to_srgb

    pixels = (np.clip(linear_to_srgb(portrait_plate(height, width)), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1080p,4k,8k", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--hdri", type=Path, default=None)
    args = parser.parse_args()
    load_package()
    hdri = args.hdri or bundled_world_hdri()
    print(f"{'plate':<8}{'megapixels':>11}{'seconds':>9}{'s/MP':>7}{'peak RSS GB':>13}")
    with tempfile.TemporaryDirectory() as work:
        for name in args.sizes.split(","):
            height, width = SIZES[name]
            plate = write_plate(Path(work) / f"plate_{name}.png", height, width)
            result = measure_command([str(ROOT / "relight"), str(plate), "--out", str(Path(work) / name),
                                      "--hdri", str(hdri)])
            if result["returncode"] != 0:
                print(f"{name}: failed: {result['stderr']}")
                return 1
            megapixels = height * width / 1e6
            print(f"{name:<8}{megapixels:>11.1f}{result['seconds']:>9.1f}{result['seconds'] / megapixels:>7.2f}"
                  f"{result['max_rss_bytes'] / 1e9:>13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
