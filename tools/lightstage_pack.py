"""Pack rendered light-stage cases into compact training shards (lightstage/training_format.py).

    .venv/bin/python tools/lightstage_pack.py --cases DIR --out DIR [--max-shard-mb 60] [--shared DIR]

DIR holds case folders (gt.exr + meta.json, as tools/lightstage.py writes them); incomplete ones are skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from package_loader import load_package


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pack light-stage cases into training shards (.npz).")
    parser.add_argument("--cases", type=Path, required=True, help="folder of case folders")
    parser.add_argument("--out", type=Path, required=True, help="output folder for shard-NNNNN.npz + index.json")
    parser.add_argument("--max-shard-mb", type=float, default=60.0)
    parser.add_argument("--shared", type=Path, default=None, help="shared data folder (HDRIs)")
    args = parser.parse_args(argv)
    load_package()
    from portrait_relight.inference.errors import RelightInputError
    from portrait_relight.lightstage.generate import is_complete
    from portrait_relight.lightstage.training_format import pack_cases

    if not args.cases.is_dir():
        print(f"{args.cases}: not a folder", file=sys.stderr)
        return 2
    cases = sorted(p for p in args.cases.iterdir() if p.is_dir() and is_complete(p))
    if not cases:
        print(f"{args.cases}: no complete cases (gt.exr + meta.json)", file=sys.stderr)
        return 2
    try:
        shards = pack_cases(cases, args.out, args.max_shard_mb * 1e6, args.shared)
    except RelightInputError as exc:
        print(exc, file=sys.stderr)
        return 2
    total = sum(p.stat().st_size for p in shards)
    print(f"{len(cases)} cases -> {len(shards)} shards in {args.out} ({total / 1e6:.1f} MB, "
          f"{total / len(cases) / 1e6:.2f} MB per case)")
    return 0


if __name__ == "__main__":
    sys.exit(run())
