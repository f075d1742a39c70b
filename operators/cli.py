"""Command-line contract, shared by ./relight and `blender -b -c portrait_relight ...`.

    relight PLATE --out DIR [--hdri FILE [--hdri-rotation DEG] | --world-blend FILE.blend]
            [--background IMAGE] [--fov DEG]

Lighting comes from exactly one of: --hdri (equirect, image centre straight ahead, rotated about the vertical
axis by --hdri-rotation), --world-blend (that file's world HDRI seen from its active camera, whose FOV is used),
or, with neither, a panorama estimated from --background. --background is also what the subject is composited
onto. Writes DIR/<stem>.exr and DIR/<stem>_preview.png (both or neither) and prints per-stage timings.
Bad input: exit 1 with ONE line "<file>: <problem>" on stderr; bad options: exit 2 with one line.
bpy is only imported for --world-blend, so the plain HDRI path runs without Blender.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..inference.environment import Environment
from ..inference.errors import RelightInputError
from ..inference.settings import RelightSettings

DEFAULT_FOV_DEG = 40.0
EXIT_INPUT_ERROR = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A command-line mistake; printed as one line instead of argparse's usage block."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="relight", description="Relight a portrait plate (Total Relighting).")
    parser.add_argument("plate", help="portrait image (PNG/JPG/TIFF/EXR/HDR)")
    parser.add_argument("--out", required=True, help="output folder for <stem>.exr and <stem>_preview.png")
    parser.add_argument("--hdri", help="equirectangular HDR/EXR environment; its centre is straight ahead")
    parser.add_argument("--hdri-rotation", type=float, default=0.0, metavar="DEG",
                        help="turn the HDRI about the vertical axis (same sense as Blender's Mapping Z rotation)")
    parser.add_argument("--world-blend", metavar="FILE.blend",
                        help="use that file's world HDRI, oriented into its active camera's view")
    parser.add_argument("--background", help="plate to composite onto; alone, also the source of the lighting")
    parser.add_argument("--fov", type=float, default=None, metavar="DEG",
                        help=f"camera field of view across the larger image side (default {DEFAULT_FOV_DEG:g}, "
                             "or the .blend camera's)")
    parser.add_argument("--models-dir", metavar="DIR",
                        help="folder of ONNX models following inference/models/CONTRACTS.md; overrides bundled ones")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="ONNX Runtime threads (default 0: the runtime decides)")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.hdri and args.world_blend:
        raise UsageError("--hdri and --world-blend exclude each other: choose one lighting source")
    if args.hdri_rotation and not args.hdri:
        raise UsageError("--hdri-rotation needs --hdri")
    if not (args.hdri or args.world_blend or args.background):
        raise UsageError("no lighting source: give --hdri FILE, --world-blend FILE.blend or --background IMAGE")
    if args.threads < 0:
        raise UsageError(f"--threads {args.threads}: must be 0 (automatic) or more")
    if args.fov is not None and not 1.0 <= args.fov <= 170.0:
        raise UsageError(f"--fov {args.fov:g}: must be between 1 and 170 degrees")
    return args


def resolve_lighting(args: argparse.Namespace, plate_shape, background) -> tuple[Environment, float]:
    """(environment, fov_deg) from whichever lighting source the options name."""
    from ..inference.imageio import read_hdri

    fov = args.fov if args.fov is not None else DEFAULT_FOV_DEG
    if args.hdri:
        return Environment.centred(read_hdri(args.hdri), args.hdri_rotation), fov
    if args.world_blend:
        from .world import world_lighting_from_blend  # imports bpy

        height, width = plate_shape[:2]
        lighting = world_lighting_from_blend(args.world_blend, width, height)
        return lighting.environment, (args.fov if args.fov is not None else lighting.fov_deg)
    from ..inference.panorama import estimate_environment

    return estimate_environment(background, fov), fov


def run(args: argparse.Namespace) -> None:
    from ..inference.imageio import read_plate
    from ..inference.pipeline import check_output_folder, relight_file

    clock = time.perf_counter()
    out_dir = Path(args.out)
    check_output_folder(out_dir)  # fail before minutes of work, not after
    if args.models_dir and not Path(args.models_dir).is_dir():
        raise RelightInputError(args.models_dir, "models folder does not exist")
    plate = read_plate(args.plate)  # validates the plate early and gives its size for the camera FOV
    background = read_plate(args.background) if args.background else None
    environment, fov = resolve_lighting(args, plate.shape, background)
    setup = time.perf_counter() - clock
    settings = RelightSettings(fov_deg=fov, threads=args.threads, models_dir=args.models_dir)
    output = relight_file(args.plate, out_dir, environment, settings, background=background)
    print(f"wrote {output.exr_path}")
    print(f"wrote {output.preview_path}")
    timings = {"inputs": setup, **{k: v for k, v in output.timings.items() if k != "total"}}
    for stage, seconds in timings.items():
        print(f"  {stage:<12s} {seconds:7.2f} s")
    print(f"  {'total':<12s} {time.perf_counter() - clock:7.2f} s")


def main(argv: list[str] | None = None) -> int:
    """Entry point for ./relight and Blender's `-c portrait_relight`; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
    except UsageError as exc:
        print(f"relight: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        run(args)
    except RelightInputError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INPUT_ERROR
    except OSError as exc:  # e.g. disk full while writing: still one line naming the file
        print(f"{exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    return 0
