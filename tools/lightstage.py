"""Launcher for the virtual light stage generator (lightstage/generate.py) under the package name Blender uses.

    .venv/bin/python tools/lightstage.py --out DIR --seed 0 --count 4 --size 384 --subject makehuman
    .venv/bin/python tools/lightstage.py --eval-set [--cache DIR]   # the fixed evaluation set
    .venv/bin/python tools/lightstage.py --poses --count N [--cache DIR]   # training poses (GT + OLAT basis)
"""

from __future__ import annotations

import sys

from package_loader import load_package


def run() -> int:
    load_package()
    if "--eval-set" in sys.argv[1:]:
        from portrait_relight.lightstage.eval_set import main as eval_main

        return eval_main([a for a in sys.argv[1:] if a != "--eval-set"])
    if "--poses" in sys.argv[1:]:
        from portrait_relight.lightstage.poses import main as poses_main

        return poses_main([a for a in sys.argv[1:] if a != "--poses"])
    from portrait_relight.lightstage.generate import main

    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(run())
