"""The whole Total Relighting pipeline on one plate, and the file-level job the CLI and operators run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import Cancelled, Progress, RelightInputError
from .io.exr import write_passes
from .io.imageio import linear_to_srgb, write_png
from .lighting.camera import camera_rays
from .lighting.environment import Environment
from .resample import resize
from .settings import RelightSettings
from .stages import albedo as albedo_stage
from .stages import geometry, lightmaps, matting, shading

STAGES = ("matting", "geometry", "albedo", "light_maps", "shading", "composite")


@dataclass
class RelightResult:
    passes: dict[str, np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)


def fit_background(background: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale a background plate to cover (height, width) and centre-crop it, keeping its aspect ratio."""
    bh, bw = background.shape[:2]
    scale = max(height / bh, width / bw)
    sh, sw = max(height, round(bh * scale)), max(width, round(bw * scale))
    scaled = resize(background, sh, sw)
    top, left = (sh - height) // 2, (sw - width) // 2
    return scaled[top : top + height, left : left + width]


@dataclass(frozen=True)
class SubjectRelight:
    albedo: np.ndarray  # (H, W, 3)
    diffuse: np.ndarray  # (H, W, 3) diffuse light map
    shaded: shading.ShadingResult
    rays: np.ndarray  # (H, W, 3) camera rays the light maps were looked up with


def relight_subject(foreground: np.ndarray, alpha: np.ndarray, normals: np.ndarray, face_mask: np.ndarray,
                    environment: Environment, settings: RelightSettings,
                    prefiltered: lightmaps.PrefilteredEnvironment | None = None, albedo: np.ndarray | None = None,
                    done: Callable[[str], None] = lambda stage: None) -> SubjectRelight:
    """The stages after matting and geometry: albedo (estimated unless given), light maps, shading.

    Separate from `relight` so evaluation can feed ground-truth mattes, normals or albedo into the very same code.
    """
    height, width = alpha.shape
    if albedo is None:
        albedo = albedo_stage.estimate_albedo(foreground, normals, alpha, fit_weight=face_mask).albedo
    done("albedo")

    rays = camera_rays(width, height, settings.fov_deg)
    if prefiltered is None:
        prefiltered = lightmaps.prefilter(environment)
    maps = lightmaps.light_maps(prefiltered, normals, rays, alpha > 0)
    done("light_maps")

    skin = shading.skin_likelihood(foreground, alpha, face_mask)
    weights = shading.lobe_weights(skin, normals, rays, settings.specular_strength)
    shaded = shading.shade(albedo, maps.diffuse, maps.specular, weights, alpha)
    done("shading")
    return SubjectRelight(albedo, maps.diffuse, shaded, rays)


def relight(plate: np.ndarray, environment: Environment, settings: RelightSettings = RelightSettings(),
            background: np.ndarray | None = None, progress: Progress | None = None,
            prefiltered: lightmaps.PrefilteredEnvironment | None = None) -> RelightResult:
    """Relight a scene-linear (H, W, 3) plate under `environment`; returns all passes and per-stage seconds.

    `background` (any size) is what the composite goes over; without it, the environment as the camera sees it.
    `prefiltered` reuses light-map prefiltering of the same environment across frames.
    """
    height, width = plate.shape[:2]
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def done(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now
        if progress is not None and progress(stage, (STAGES.index(stage) + 1) / len(STAGES)) is False:
            raise Cancelled(f"cancelled after {stage}")

    matte = matting.estimate_matte(plate, settings)
    alpha = matte.alpha
    done("matting")

    shape = geometry.estimate_normals(plate, alpha, settings)
    if shape.landmarks is None:
        # The segmentation model also fires on animals and objects; a portrait needs a visible face (v1).
        raise RelightInputError(None, "no person found in the image (no face detected)")
    normals = shape.normal
    done("geometry")

    lit = relight_subject(matte.foreground, alpha, normals, shape.face_mask, environment, settings, prefiltered,
                          done=done)
    shaded = lit.shaded

    if background is None:
        backdrop = environment.view(width, height, settings.fov_deg)
    else:
        backdrop = fit_background(background, height, width)
    composite = shading.composite(shaded.relit[..., :3], alpha, backdrop)
    done("composite")

    timings["total"] = sum(timings[s] for s in STAGES)
    passes = {
        "alpha": alpha,
        "foreground": matte.foreground * (alpha[..., None] > 0),
        "normal": normals,
        "albedo": lit.albedo,
        "diffuse": lit.diffuse,
        "specular": shaded.specular,
        "relit": shaded.relit,
        "composite": composite,
    }
    return RelightResult(passes=passes, timings=timings)


def preview_strip(plate: np.ndarray, passes: dict[str, np.ndarray], height: int = 256) -> np.ndarray:
    """plate | alpha | normals | albedo | relit | composite, display-referred sRGB [0, 1], side by side."""
    h, w = plate.shape[:2]
    tile_w = max(1, round(w * height / h))
    alpha = passes["alpha"]
    tiles = [
        linear_to_srgb(plate),
        np.repeat(alpha[..., None], 3, axis=-1),
        (0.5 * passes["normal"] + 0.5) * (alpha[..., None] > 0),
        linear_to_srgb(passes["albedo"]),
        linear_to_srgb(passes["relit"][..., :3] * alpha[..., None]),
        linear_to_srgb(passes["composite"]),
    ]
    return np.concatenate([np.clip(resize(t, height, tile_w), 0, 1) for t in tiles], axis=1)


def check_output_folder(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise RelightInputError(out_dir, "output path exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RelightInputError(out_dir, f"cannot create output folder ({exc.strerror})") from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise RelightInputError(out_dir, "output folder is not writable")


def relight_to_files(plate: np.ndarray, source_label: str | os.PathLike, exr_path: Path, preview_path: Path,
                     environment: Environment, settings: RelightSettings = RelightSettings(),
                     background: np.ndarray | None = None, progress: Progress | None = None,
                     prefiltered: lightmaps.PrefilteredEnvironment | None = None) -> dict[str, float]:
    """Relight a decoded plate and write its preview, then its EXR (the EXR last: its presence marks the frame
    complete); both or neither. Stage errors are reported against `source_label` (the file or movie frame).
    Returns the per-stage seconds."""
    try:
        result = relight(plate, environment, settings, background, progress, prefiltered)
    except RelightInputError as exc:
        if exc.path is None:  # stage errors know the problem, not the file
            raise RelightInputError(source_label, exc.problem) from exc
        raise
    clock = time.perf_counter()
    write_png(preview_path, preview_strip(plate, result.passes))
    try:
        write_passes(exr_path, result.passes, metadata={"portraitRelight:source": Path(source_label).name})
    except BaseException:
        preview_path.unlink(missing_ok=True)
        raise
    result.timings["write"] = time.perf_counter() - clock
    return result.timings
