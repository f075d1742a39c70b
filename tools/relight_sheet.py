"""Contact sheet: the real portraits relit under a warm sunset and an interior HDRI, the classical stages (v1)
beside the learned ones, to judge the nets where there is no ground truth.

    .venv/bin/python tools/relight_sheet.py [--portraits ../shared/data/portraits] [--out out/relight_sheet.png]

Per portrait row: the plate, then per HDRI the relit subject (straight colour over black, the relit pass) with
v1 (classical normals, albedo and shading), learned normals alone, learned shading alone, learned albedo, learned
normals + albedo, and all three learned (normals, albedo, shading); with --model, one more column: all three
learned with that net (a candidate export of the net --net names, the shading net unless said) in place of the
shipped one.

    .venv/bin/python tools/relight_sheet.py --model <cache>/training/shading/shading.onnx
    .venv/bin/python tools/relight_sheet.py --model <cache>/training/albedo/albedo.onnx --net albedo
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path

from net_compare import candidate_models_dir
from package_loader import load_package
from portrait_sheet import portrait_plates, sheet_arguments, write_sheet

HDRIS = (("blender", "sunset.exr", 90.0), ("shared", "st_fagans_interior_1k.hdr", 0.0))  # (collection, file, turn)
METHODS = (("v1", "classical", "classical", "classical"), ("learned normals", "learned", "classical", "classical"),
           ("learned shading", "classical", "classical", "learned"),
           ("learned albedo", "classical", "learned", "classical"),
           ("learned normals+albedo", "learned", "learned", "classical"),
           ("all learned", "learned", "learned", "learned"))


def main(argv: list[str] | None = None) -> int:
    parser = sheet_arguments(__doc__.splitlines()[0], "relight_sheet.png")
    parser.add_argument("--model", type=Path, default=None, help="a candidate net for one more column")
    parser.add_argument("--net", choices=("geometry", "albedo", "shading"), default="shading",
                        help="which net --model replaces")
    args = parser.parse_args(argv)
    load_package()

    from portrait_relight.evaluation.cases import hdri_path
    from portrait_relight.inference.io.imageio import read_hdri
    from portrait_relight.inference.lighting.environment import Environment
    from portrait_relight.inference.models.registry import ALBEDO_NET, GEOMETRY_NET, SHADING_NET
    from portrait_relight.inference.settings import RelightSettings
    from portrait_relight.inference.stages import lightmaps

    lights = []
    for collection, name, turn in HDRIS:
        environment = Environment.centred(read_hdri(hdri_path({"collection": collection, "name": name})), turn)
        lights.append((environment, lightmaps.prefilter(environment)))
    methods = [dataclasses.replace(RelightSettings(), normals=normals, albedo=albedo, shading=shading)
               for _, normals, albedo, shading in METHODS]
    labels = [label for label, *_ in METHODS]
    rows = []
    with contextlib.ExitStack() as stack:
        if args.model is not None:
            spec = {"geometry": GEOMETRY_NET, "albedo": ALBEDO_NET, "shading": SHADING_NET}[args.net]
            candidate_dir = stack.enter_context(candidate_models_dir(args.model, spec.name))
            methods.append(dataclasses.replace(methods[-1], models_dir=candidate_dir))
            labels.append(f"all learned, candidate {args.net}")
        for path, plate in portrait_plates(args):
            rows.append(relit_tiles(plate, path, lights, methods))
            print(f"{path.name}: done", flush=True)
    write_sheet(rows, args.out)
    columns = " | ".join(f"{name}: " + ", ".join(labels) for _, name, _ in HDRIS)
    print(f"wrote {args.out} ({len(rows)} portraits: plate | {columns})")
    return 0


def relit_tiles(plate, path: Path, lights: list, methods: list) -> list:
    """The plate, then per light each method's relit subject, exposed by convention, sRGB-encoded."""
    import numpy as np

    from portrait_relight.inference import pipeline
    from portrait_relight.inference.errors import RelightInputError
    from portrait_relight.inference.io.imageio import linear_to_srgb

    tiles = [np.clip(linear_to_srgb(plate), 0.0, 1.0)]
    for environment, prefiltered in lights:
        for settings in methods:
            try:
                relit = pipeline.relight(plate, environment, settings, prefiltered=prefiltered).passes["relit"]
                # exposure by convention: the relit subject's median brought to mid grey, as a colourist would
                colour = relit[..., :3] * relit[..., 3:]
                inside = relit[..., 3] > 0.9
                luminance = colour[inside] @ np.array([0.2126, 0.7152, 0.0722])
                tile = colour * (0.18 / max(float(np.median(luminance)) if inside.any() else 1.0, 1e-6))
            except RelightInputError as exc:
                print(f"{path.name}: {exc}", flush=True)
                tile = np.zeros_like(plate)
            tiles.append(np.clip(linear_to_srgb(tile), 0.0, 1.0))
    return tiles


if __name__ == "__main__":
    sys.exit(main())
