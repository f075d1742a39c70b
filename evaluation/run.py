"""`evaluate --cases DIR [--out DIR] [--limit N]`: the product pipeline on every light stage case, one table.

For each case the product relights the plate under the case's *target* lighting (its HDRI, strength and
orientation, and the case camera's field of view) and every stage is scored against the ground truth
(evaluation/metrics.py). Rows: v1, the learned stages and the product's default (all learned), the naive composite
(no relighting), and oracle rows that swap ground truth into one stage (evaluation/rows.py); the contact sheet's
"ours" columns are the default's. Writes report.json and contact_sheet.png to --out (default
${PORTRAIT_RELIGHT_CACHE:-~/.cache/portrait_relight}/eval/<timestamp>/).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..inference.errors import RelightInputError
from ..inference.settings import RelightSettings
from . import metrics
from .cases import NORMALS_REFERENCES, find_cases, read_case
from .report import contact_tiles, format_table, mean_rows, write_contact_sheet, write_report
from .rows import ROW_NAMES, MethodOutput, method_outputs


@dataclass
class CaseRun:
    name: str
    rows: dict[str, dict]  # row -> metric -> value, or {"error": message}
    tiles: list[np.ndarray]  # contact-sheet tiles (report.CONTACT_COLUMNS)
    seconds: float


def score(output: MethodOutput, gt: dict[str, np.ndarray]) -> dict[str, float]:
    """Every metric the method's outputs allow (the baseline has relit colour only)."""
    gt_alpha = gt["alpha"]
    row: dict[str, float] = {}
    if output.alpha is not None:
        row.update(metrics.alpha_metrics(output.alpha, gt_alpha))
    if output.normal is not None:
        row.update(metrics.normal_metrics(output.normal, gt["normal"], gt_alpha))
    if output.albedo is not None:
        row.update(metrics.albedo_metrics(output.albedo, gt["albedo"][..., :3], gt_alpha))
    row.update(metrics.relit_metrics(output.relit, gt["relit"][..., :3], gt_alpha))
    return row


def run_case(case_dir: str | os.PathLike, settings: RelightSettings = RelightSettings(),
             rows: tuple[str, ...] = ROW_NAMES, normals_reference: str = "surface") -> CaseRun:
    clock = time.perf_counter()
    case = read_case(case_dir, normals_reference)
    outputs = method_outputs(case, settings, rows)
    scored = {name: ({"error": str(out)} if isinstance(out, Exception) else score(out, case.passes))
              for name, out in outputs.items()}
    product = outputs.get("all learned")  # the product's default path
    tiles = contact_tiles(case.passes, product if isinstance(product, MethodOutput) else None)
    return CaseRun(case.name, scored, tiles, time.perf_counter() - clock)


def evaluate_case(case_dir: str | os.PathLike, settings: RelightSettings = RelightSettings()) -> dict[str, dict]:
    """Metrics rows of one case: {row name: {metric: value}} ({"error": message} where a row failed)."""
    return run_case(case_dir, settings).rows


# ----------------------------------------------------------------------------------------------- command line
def cache_dir() -> Path:
    return Path(os.environ.get("PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight"))


def evaluation_set_cases() -> list[Path]:
    """The light stage's fixed evaluation set, rendering the cases the cache lacks (imported here, not at module
    level, because the generator needs Blender while evaluating explicit case folders does not)."""
    from ..lightstage.eval_set import ensure_eval_set

    return [Path(p) for p in ensure_eval_set(cache_dir())]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=None,
                        help="folder of case folders (gt.exr + meta.json), or one case folder; only read "
                             "(default: the light stage's evaluation set, rendered where the cache lacks it)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: <cache>/eval/<timestamp>)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N cases (by name)")
    parser.add_argument("--tile", type=int, default=128, help="contact sheet tile height in pixels")
    parser.add_argument("--normals-reference", choices=NORMALS_REFERENCES, default="surface",
                        help="ground-truth normals on the hair: the rendered depth surface's (default) or the "
                             "render's normal pass, which is no surface normal there (figures before 2026-12-07)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cases is None:
        case_dirs = evaluation_set_cases()
        cases_dir = case_dirs[0].parent if case_dirs else cache_dir() / "lightstage"
    else:
        cases_dir = args.cases.expanduser()
        case_dirs = find_cases(cases_dir)
    if not case_dirs:
        print(f"evaluate: error: {cases_dir}: no evaluation cases (folders with gt.exr and meta.json)",
              file=sys.stderr)
        return 2
    if args.limit is not None:
        case_dirs = case_dirs[: max(0, args.limit)]
    out_dir = (args.out or cache_dir() / "eval" / time.strftime("%Y%m%d-%H%M%S")).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)

    settings = RelightSettings()
    runs: list[CaseRun] = []
    for index, case_dir in enumerate(case_dirs, start=1):
        try:
            run = run_case(case_dir, settings, normals_reference=args.normals_reference)
        except RelightInputError as exc:  # an unreadable case is reported and skipped, the rest still count
            print(f"[{index}/{len(case_dirs)}] {case_dir.name}: skipped ({exc})", flush=True)
            continue
        failed = [f"{row}: {r['error']}" for row, r in run.rows.items() if "error" in r]
        note = f" ({'; '.join(failed)})" if failed else ""
        print(f"[{index}/{len(case_dirs)}] {run.name}: {run.seconds:.1f} s{note}", flush=True)
        runs.append(run)
    if not runs:
        print(f"evaluate: error: {cases_dir}: none of the {len(case_dirs)} cases could be read", file=sys.stderr)
        return 1

    means = mean_rows([r.rows for r in runs], ROW_NAMES)
    table = format_table(means)
    print(table)
    sheet_path = out_dir / "contact_sheet.png"
    write_contact_sheet(sheet_path, [(r.name, r.tiles) for r in runs], args.tile)
    write_report(out_dir / "report.json", {
        "cases_dir": str(cases_dir),
        "settings": asdict(settings),
        "normals_reference": args.normals_reference,
        "mean": means,
        "cases": {r.name: {"seconds": r.seconds, "rows": r.rows} for r in runs},
        "table": table.splitlines(),
        "contact_sheet": str(sheet_path),
        "notes": {
            "matte": "normal/albedo/relit metrics inside the ground-truth matte (alpha > 0.5)",
            "alpha": "SAD and Grad are sums / 1000 over the whole image; Grad uses Gaussian derivatives, sigma 1.4",
            "relit_psnr": "dB on sRGB-encoded values clipped to [0, 1], inside the matte",
            "relit_psnr_exposed": "the same after scaling the prediction by the siMSE's optimal scalar (exposure): "
                                  "what is left once the subject's absolute brightness, which one photo cannot "
                                  "know, is set right",
            "relit_ssim": "on sRGB-encoded clipped values, matte bounding box, background set to 0",
            "simse": "scale-invariant MSE, one optimal scalar per image, scene-linear",
        },
    })
    print(f"wrote {out_dir / 'report.json'} and {sheet_path}")
    return 0
