"""Ground-truth cases of the virtual light stage: `<case>/gt.exr` (multilayer `gt.<pass>.<chan>`) + `meta.json`.

Passes (scene-linear, rows top to bottom): plate R/G/B (subject over the visible HDRI, source lighting), alpha A,
normal X/Y/Z (camera space, OpenGL), albedo R/G/B, roughness V, depth Z, relit R/G/B (target lighting, straight
colour inside alpha, 0 outside) and optionally relit_olat R/G/B. meta.json carries the camera and the source and
target lighting: {"hdri": {"collection": "shared" | "blender", "name"}, "rotation_z_deg", "strength",
"cam_to_env"}. The target Environment is Environment(read_hdri(path) * strength, cam_to_env).

The normal pass is not a surface normal on the hair (Cycles ribbons): by default the hair's ground-truth normals are
the rendered depth surface's (lightstage/surface_normals.py), as the training poses' are; `normals_reference="pass"`
keeps the render's pass everywhere (the figures of runs before 2026-12-07 used it).
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..inference.errors import RelightInputError
from ..inference.io.exr import read_passes
from ..inference.io.imageio import read_hdri
from ..inference.lighting.environment import Environment
from ..lightstage.surface_normals import surface_normals

GT_FILE = "gt.exr"
META_FILE = "meta.json"
GT_LAYER = "gt"
REQUIRED_PASSES = ("plate", "alpha", "normal", "albedo", "relit")
NORMALS_REFERENCES = ("surface", "pass")
# Channel order per suffix family; a pass's channels are stacked in this order.
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class GroundTruthCase:
    name: str
    folder: Path
    passes: dict[str, np.ndarray]  # (H, W) for one-channel passes, (H, W, C) otherwise, float32
    meta: dict

    @property
    def fov_deg(self) -> float:
        return float(self.meta["camera"]["fov_deg"])


def is_case(folder: Path) -> bool:
    return (folder / GT_FILE).is_file() and (folder / META_FILE).is_file()


def find_cases(root: Path) -> list[Path]:
    """Case folders: `root` itself if it is one, else its sub-folders that are, sorted by name. Hidden folders
    are skipped: the generator writes a case into `.<name>.tmp<pid>` and renames it when complete."""
    root = Path(root)
    if is_case(root):
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and is_case(p))


def read_case(folder: str | os.PathLike, normals_reference: str = "surface") -> GroundTruthCase:
    folder = Path(folder)
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise RelightInputError(folder / META_FILE, f"cannot read case metadata ({exc})") from exc
    passes = read_passes(folder / GT_FILE, GT_LAYER)
    missing = [p for p in REQUIRED_PASSES if p not in passes]
    if missing:
        raise RelightInputError(folder / GT_FILE, f"missing ground-truth passes: {', '.join(missing)}")
    if normals_reference == "surface" and "depth" in passes and "roughness" in passes:
        passes["normal"] = surface_normals(passes["normal"], passes["depth"], passes["alpha"], passes["roughness"],
                                           meta)
    return GroundTruthCase(folder.name, folder, passes, meta)


def shared_dir() -> Path:
    """The shared data folder beside the checkout (override with PORTRAIT_RELIGHT_SHARED)."""
    return Path(os.environ.get("PORTRAIT_RELIGHT_SHARED", REPO_ROOT.parent / "shared"))


def blender_world_dir() -> Path:
    """Blender's bundled world HDRIs, found beside the bpy module without importing it (importing bpy is slow)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise RelightInputError(None, "the bpy module is not installed, so Blender's world HDRIs are unavailable")
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.glob("*/datafiles/studiolights/world"))
    if not found:
        raise RelightInputError(root, "no datafiles/studiolights/world folder in the bpy module")
    return found[-1]


def hdri_path(hdri: dict) -> Path:
    collection, name = hdri["collection"], hdri["name"]
    if collection == "shared":
        return shared_dir() / "data" / "hdri" / name
    if collection == "blender":
        return blender_world_dir() / name
    raise RelightInputError(None, f"unknown HDRI collection '{collection}' (expected 'shared' or 'blender')")


def lighting_environment(lighting: dict) -> Environment:
    """A meta.json "source"/"target" entry -> the product's Environment (strength applied, camera-relative)."""
    radiance = read_hdri(hdri_path(lighting["hdri"])) * np.float32(lighting.get("strength", 1.0))
    return Environment(radiance.astype(np.float32), np.asarray(lighting["cam_to_env"], np.float64))


def target_environment(case: GroundTruthCase) -> Environment:
    return lighting_environment(case.meta["target"])
