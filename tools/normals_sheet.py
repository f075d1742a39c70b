"""Contact sheet of real portraits: the plate, the classical normals and the learned geometry net's normals, side
by side, one portrait per row (how the nets look on photos, where there is no ground truth).

    .venv/bin/python tools/normals_sheet.py [--portraits ../shared/data/portraits] [--out out/normals_sheet.png]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from package_loader import ROOT, load_package

TILE = 256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portraits", type=Path, default=ROOT.parent / "shared" / "data" / "portraits")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "normals_sheet.png")
    args = parser.parse_args(argv)
    load_package()
    import numpy as np

    from portrait_relight.inference.errors import RelightInputError
    from portrait_relight.inference.io.imageio import linear_to_srgb, read_plate, srgb_to_linear, write_png
    from portrait_relight.inference.resample import resize, working_size
    from portrait_relight.inference.settings import RelightSettings
    from portrait_relight.inference.stages import geometry, matting

    settings = RelightSettings()
    rows = []
    for path in sorted(args.portraits.glob("*.jpg")) + sorted(args.portraits.glob("*.png")):
        plate = read_plate(path)
        height, width = working_size(*plate.shape[:2], 768)
        plate = resize(plate, height, width)
        alpha = matting.estimate_matte(plate, settings).alpha
        tiles = [np.clip(linear_to_srgb(plate), 0.0, 1.0)]
        for method in ("classical", "learned"):
            try:
                normal = geometry.estimate_normals(plate, alpha, dataclasses.replace(settings, normals=method)).normal
            except RelightInputError as exc:
                print(f"{path.name} {method}: {exc}", flush=True)
                normal = np.zeros_like(plate)
            tiles.append((0.5 * normal + 0.5) * (alpha[..., None] > 0))
        th, tw = working_size(height, width, TILE)
        row = np.concatenate([resize(tile, th, tw) for tile in tiles], axis=1)
        rows.append(np.pad(row, ((0, 0), (0, 3 * TILE - row.shape[1]), (0, 0))))
        print(f"{path.name}: done", flush=True)
    sheet = np.concatenate(rows, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, srgb_to_linear(sheet))  # the tiles are display values already
    print(f"wrote {args.out} ({len(rows)} portraits: plate | classical | learned)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
