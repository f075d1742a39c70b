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

import sys

from package_loader import load_package
from portrait_sheet import portrait_plates, sheet_arguments, write_sheet

# (label, collection, file, camera yaw, pitch, horizontal FOV in degrees)
SCENES = (
    ("sunset", "shared", "venice_sunset_1k.hdr", 100.0, 5.0, 60.0),
    ("overcast", "blender", "courtyard.exr", 0.0, 5.0, 60.0),
    ("interior", "shared", "st_fagans_interior_1k.hdr", 30.0, 0.0, 60.0),
    ("night street", "blender", "night.exr", 0.0, 5.0, 60.0),
)


def main(argv: list[str] | None = None) -> int:
    args = sheet_arguments(__doc__.splitlines()[0], "background_sheet.png").parse_args(argv)
    load_package()
    import numpy as np

    from portrait_relight.evaluation.cases import hdri_path
    from portrait_relight.evaluation.panorama_figures import background_crop
    from portrait_relight.evaluation.panorama_v1 import estimate_environment_v1
    from portrait_relight.inference import pipeline
    from portrait_relight.inference.errors import RelightInputError
    from portrait_relight.inference.io.imageio import linear_to_srgb, read_hdri
    from portrait_relight.inference.lighting.background_light import estimate_environment
    from portrait_relight.inference.settings import RelightSettings

    rows = []
    for path, plate in portrait_plates(args):
        height, width = plate.shape[:2]
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
        rows.append(tiles)
        print(f"{path.name}: done", flush=True)
    write_sheet(rows, args.out)
    labels = " | ".join(f"{label}: true HDRI, v1, v2" for label, *_ in SCENES)
    print(f"wrote {args.out} ({len(rows)} portraits: plate | {labels})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
