"""Contact sheet: the real portraits composited onto photos of contrasting scenes, lit by the light each estimator
infers from the photo alone, beside the light of the scene's true HDRI (do the subjects look lit by the scene?).

    .venv/bin/python tools/background_sheet.py [--portraits ../shared/data/portraits] [--out out/background_sheet.png]

Scenes (pool HDRIs photographed by a camera with auto exposure, 8-bit, evaluation/panorama_figures.py): sunset,
overcast, interior, night street. Per portrait row: the plate, then per scene three tiles: the true HDRI's light,
v1's estimate, v2's estimate (the product's), each the product's composite over the same background photo. The
estimators see only the photo; the product's gains were calibrated on these HDRIs among others, so this sheet is
for looking, not a held-out score (tools/panorama_eval.py and `make eval` report held-out figures).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from package_loader import ROOT, load_package

TILE = 192
LONG_EDGE = 384
# (label, collection, file, camera yaw, pitch, horizontal FOV in degrees)
SCENES = (
    ("sunset", "shared", "venice_sunset_1k.hdr", 100.0, 5.0, 60.0),
    ("overcast", "blender", "courtyard.exr", 0.0, 5.0, 60.0),
    ("interior", "shared", "st_fagans_interior_1k.hdr", 30.0, 0.0, 60.0),
    ("night street", "blender", "night.exr", 0.0, 5.0, 60.0),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portraits", type=Path, default=ROOT.parent / "shared" / "data" / "portraits")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "background_sheet.png")
    parser.add_argument("--limit", type=int, default=None, help="only the first N portraits")
    args = parser.parse_args(argv)
    load_package()
    import numpy as np

    from portrait_relight.evaluation.cases import hdri_path
    from portrait_relight.evaluation.panorama_figures import background_crop
    from portrait_relight.inference import pipeline
    from portrait_relight.inference.errors import RelightInputError
    from portrait_relight.inference.io.imageio import linear_to_srgb, read_hdri, read_plate, srgb_to_linear, write_png
    from portrait_relight.inference.lighting.background_light import estimate_environment
    from portrait_relight.inference.lighting.panorama import estimate_environment_v1
    from portrait_relight.inference.resample import resize, working_size
    from portrait_relight.inference.settings import RelightSettings

    portraits = sorted(args.portraits.glob("*.jpg")) + sorted(args.portraits.glob("*.png"))
    rows = []
    for path in portraits[: args.limit]:
        plate = read_plate(path)
        height, width = working_size(*plate.shape[:2], LONG_EDGE)
        plate = resize(plate, height, width)
        th, tw = working_size(height, width, TILE)
        tiles = [np.clip(linear_to_srgb(plate), 0.0, 1.0)]
        for _, collection, name, yaw, pitch, fov in SCENES:
            radiance = read_hdri(hdri_path({"collection": collection, "name": name}))
            crop = background_crop(radiance, yaw, pitch, fov, size=(height, width))
            settings = RelightSettings(fov_deg=fov)
            for environment in (crop.truth, estimate_environment_v1(crop.background, fov),
                                estimate_environment(crop.background, fov)):
                try:
                    composite = pipeline.relight(plate, environment, settings, crop.background).passes["composite"]
                except RelightInputError as exc:
                    print(f"{path.name}: {exc}", flush=True)
                    composite = crop.background
                tiles.append(np.clip(linear_to_srgb(composite[..., :3]), 0.0, 1.0))
        rows.append(np.concatenate([resize(tile, th, tw) for tile in tiles], axis=1))
        print(f"{path.name}: done", flush=True)
    widest = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, widest - r.shape[1]), (0, 0))) for r in rows], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, srgb_to_linear(sheet))  # the tiles are display values already
    labels = " | ".join(f"{label}: true HDRI, v1, v2" for label, *_ in SCENES)
    print(f"wrote {args.out} ({len(rows)} portraits: plate | {labels})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
