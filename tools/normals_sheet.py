"""Contact sheet of real portraits: the plate, the classical normals and the learned geometry net's normals, side
by side, one portrait per row (how the nets look on photos, where there is no ground truth); with --model, a fourth
column from that geometry net (a candidate export) beside the shipped one.

    .venv/bin/python tools/normals_sheet.py [--portraits ../shared/data/portraits] [--out out/normals_sheet.png]
        [--model <cache>/training/geometry/geometry.onnx]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path

from net_compare import candidate_models_dir
from package_loader import ROOT, load_package

TILE = 256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portraits", type=Path, default=ROOT.parent / "shared" / "data" / "portraits")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "normals_sheet.png")
    parser.add_argument("--model", type=Path, default=None, help="a candidate geometry net for a fourth column")
    args = parser.parse_args(argv)
    load_package()
    import numpy as np

    from portrait_relight.inference.errors import RelightInputError
    from portrait_relight.inference.io.imageio import linear_to_srgb, read_plate, srgb_to_linear, write_png
    from portrait_relight.inference.models.registry import GEOMETRY_NET
    from portrait_relight.inference.resample import resize, working_size
    from portrait_relight.inference.settings import RelightSettings
    from portrait_relight.inference.stages import geometry, matting

    settings = RelightSettings()
    methods = {"classical": dataclasses.replace(settings, normals="classical"),
               "learned": dataclasses.replace(settings, normals="learned")}
    rows = []
    with contextlib.ExitStack() as stack:
        if args.model is not None:
            candidate_dir = stack.enter_context(candidate_models_dir(args.model, GEOMETRY_NET.name))
            methods["candidate"] = dataclasses.replace(settings, normals="learned", models_dir=candidate_dir)
        for path in sorted(args.portraits.glob("*.jpg")) + sorted(args.portraits.glob("*.png")):
            plate = read_plate(path)
            height, width = working_size(*plate.shape[:2], 768)
            plate = resize(plate, height, width)
            alpha = matting.estimate_matte(plate, settings).alpha
            tiles = [np.clip(linear_to_srgb(plate), 0.0, 1.0)]
            for method, method_settings in methods.items():
                try:
                    normal = geometry.estimate_normals(plate, alpha, method_settings).normal
                except RelightInputError as exc:
                    print(f"{path.name} {method}: {exc}", flush=True)
                    normal = np.zeros_like(plate)
                tiles.append((0.5 * normal + 0.5) * (alpha[..., None] > 0))
            th, tw = working_size(height, width, TILE)
            row = np.concatenate([resize(tile, th, tw) for tile in tiles], axis=1)
            rows.append(np.pad(row, ((0, 0), (0, (1 + len(methods)) * TILE - row.shape[1]), (0, 0))))
            print(f"{path.name}: done", flush=True)
    sheet = np.concatenate(rows, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, srgb_to_linear(sheet))  # the tiles are display values already
    print(f"wrote {args.out} ({len(rows)} portraits: plate | {' | '.join(methods)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
