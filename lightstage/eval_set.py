"""The fixed evaluation set: 24 cases at 384^2 (6 Lee Perry-Smith, the held-out scanned identity; 18 MakeHuman),
fixed seeds, cached under <cache>/lightstage/<EVAL_SET_VERSION>/<case_id>/ and generated only where missing.

Bump EVAL_SET_VERSION whenever the generator's output for these seeds changes (new folder, no stale mixes).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .generate import Generator, case_id, is_complete, write_case
from .makehuman_data import cache_dir as default_cache_dir

EVAL_SET_VERSION = "eval-v2"  # v2: generator 0.2.0 (hair, garments, tints, head turn, waist-up)
SIZE = 384
SAMPLES = 64
CASES: list[tuple[str, int]] = ([("lee_perry_smith", 1000 + i) for i in range(6)]
                                + [("makehuman", 2000 + i) for i in range(18)])


def eval_set_dir(cache_dir: Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "lightstage" / EVAL_SET_VERSION


def ensure_eval_set(cache_dir: Path | None = None, shared: Path | None = None, log=print) -> list[Path]:
    """Case folders of the evaluation set, rendering the missing ones (complete ones are skipped; each case is
    written to a temp folder and renamed, so an interrupted run never leaves a half case behind)."""
    root = eval_set_dir(cache_dir)
    paths = [root / case_id(subject, seed) for subject, seed in CASES]
    generators: dict[str, Generator] = {}
    for (subject, seed), path in zip(CASES, paths):
        if is_complete(path):
            continue
        if subject not in generators:
            generators.clear()  # one Blender scene at a time: a new Stage resets the previous one
            generators[subject] = Generator(subject, SIZE, SAMPLES, olat=0, shared=shared)
        t0 = time.perf_counter()
        passes, meta = generators[subject].render_case(seed)
        write_case(path, passes, meta)
        log(f"{path}  {time.perf_counter() - t0:.1f}s")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate (or complete) the cached light-stage evaluation set.")
    parser.add_argument("--cache", type=Path, default=None, help="cache root (default $PORTRAIT_RELIGHT_CACHE)")
    parser.add_argument("--shared", type=Path, default=None)
    args = parser.parse_args(argv)
    paths = ensure_eval_set(args.cache, args.shared)
    print(f"{len(paths)} cases in {eval_set_dir(args.cache)}")
    return 0
