"""Scale benchmark: the whole `./relight` command on 1080p, 4K and 8K plates, each in its own process: wall time,
seconds per megapixel (time should be linear in pixels) and peak memory (the child's ru_maxrss).

    .venv/bin/python tools/bench_scale.py [--sizes 1080p,4k,8k] [--hdri FILE]

Plates are the astronaut portrait of tools/bench.py at each size, written as 8-bit PNG. Targets (issue
"Hardening"): peak RSS at most 2 GB at 4K and 5 GB at 8K. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench import bundled_world_hdri, measure_command, write_plate
from package_loader import ROOT, load_package

SIZES = {"1080p": (1080, 1920), "4k": (2160, 3840), "8k": (4320, 7680)}


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
