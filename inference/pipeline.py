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
    if (bh, bw) == (height, width):
        return background
    scale = max(height / bh, width / bw)
    sh, sw = max(height, round(bh * scale)), max(width, round(bw * scale))
    scaled = resize(background, sh, sw)
    top, left = (sh - height) // 2, (sw - width) // 2
    return scaled[top : top + height, left : left + width]


def frame_backdrop(environment: Environment, background: np.ndarray | None, height: int, width: int,
                   settings: RelightSettings) -> np.ndarray:
    """What the composite goes over, at the frame's size: the background plate fitted to it or, without one, the
    environment as the camera sees it. The same for every frame of a shot (shots compute it once per size)."""
    if background is None:
        return environment.view(width, height, settings.fov_deg)
    return fit_background(background, height, width)


@dataclass(frozen=True)
class SubjectRelight:
    albedo: np.ndarray  # (H, W, 3)
    diffuse: np.ndarray  # (H, W, 3) diffuse light map
    shaded: shading.ShadingResult


# Pixels kept around the matte when the per-pixel stages work on the subject's box: more than the widest
# neighbourhood filter they apply (the albedo's Gaussian, sigma 4 px truncated at 4 sigma), so results inside
# the matte are the same as on the whole frame.
SUBJECT_MARGIN = 17


def subject_box(alpha: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns of the matte's bounding box (alpha > 0) grown by SUBJECT_MARGIN, clipped to the frame."""
    margin = SUBJECT_MARGIN
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    height, width = alpha.shape
    return (slice(max(0, rows[0] - margin), min(height, rows[-1] + 1 + margin)),
            slice(max(0, cols[0] - margin), min(width, cols[-1] + 1 + margin)))


def _in_frame(part: np.ndarray, box: tuple[slice, slice], height: int, width: int) -> np.ndarray:
    """A box-sized pass placed in a zero frame (outside the box the matte is 0, and so is every pass)."""
    full = np.zeros((height, width) + part.shape[2:], np.float32)
    full[box] = part
    return full


def relight_subject(foreground: np.ndarray, alpha: np.ndarray, normals: np.ndarray, face_mask: np.ndarray,
                    environment: Environment, settings: RelightSettings,
                    prefiltered: lightmaps.PrefilteredEnvironment | None = None, albedo: np.ndarray | None = None,
                    done: Callable[[str], None] = lambda stage: None) -> SubjectRelight:
    """The stages after matting and geometry: albedo (estimated unless given), light maps, shading.

    They run on the subject's box only (per-pixel work: a portrait fills half a 16:9 frame or less) and their
    passes are placed back in the frame. Separate from `relight` so evaluation can feed ground-truth mattes,
    normals or albedo into the very same code.
    """
    height, width = alpha.shape
    box = subject_box(alpha)
    foreground, alpha, normals, face_mask = foreground[box], alpha[box], normals[box], face_mask[box]
    view = None  # the subject as the learned albedo and shading nets both see it, made once
    if (albedo is None and settings.albedo == "learned") or settings.shading == "learned":
        from .stages.normals_net import subject_view

        view = subject_view(foreground, alpha, normals)
    if albedo is None and settings.albedo == "learned":
        from .stages.albedo_net import estimate_albedo_learned  # loads a model: only when chosen

        albedo = estimate_albedo_learned(foreground, alpha, normals, face_mask, settings, view)
    elif albedo is None:
        albedo = albedo_stage.estimate_albedo(foreground, normals, alpha, fit_weight=face_mask).albedo
    else:
        albedo = albedo[box]
    done("albedo")

    rays = camera_rays(width, height, settings.fov_deg, box)
    if prefiltered is None:
        prefiltered = lightmaps.prefilter(environment)
    if settings.shading == "learned":
        from .stages.shading_net import predict_shading  # loads a model: only when chosen

        ratio, weights = predict_shading(foreground, alpha, normals, albedo, prefiltered, settings.fov_deg, settings,
                                         frame_size=(width, height), offset=(box[0].start, box[1].start), view=view)
        weights *= np.float32(settings.specular_strength)
    else:
        ratio = None
        weights = shading.lobe_weights(shading.skin_likelihood(foreground, alpha, face_mask), normals, rays,
                                       settings.specular_strength)
    # The lobes are blended as they are looked up: the four full-size specular maps are never held at once.
    maps = lightmaps.light_maps(prefiltered, normals, rays, alpha > 0, lobe_weights=weights)
    del rays, weights
    if ratio is not None:
        # the net's diffuse shading: the light map with its shadows and occlusion (the pass the product writes)
        maps = lightmaps.LightMaps(maps.diffuse * ratio, maps.specular)
    done("light_maps")

    shaded = shading.shade(albedo, maps.diffuse, maps.specular, alpha)
    done("shading")
    shaded = shading.ShadingResult(relit=_in_frame(shaded.relit, box, height, width),
                                   specular=_in_frame(shaded.specular, box, height, width))
    return SubjectRelight(_in_frame(albedo, box, height, width), _in_frame(maps.diffuse, box, height, width), shaded)


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

    # Only the arrays the passes need stay referenced from here on (memory on 4K/8K plates).
    matte = matting.estimate_matte(plate, settings)
    alpha, foreground = matte.alpha, matte.foreground
    del matte
    done("matting")

    shape = geometry.estimate_normals(plate, alpha, settings)
    if shape.landmarks is None:
        # The segmentation model also fires on animals and objects; a portrait needs a visible face (v1).
        raise RelightInputError(None, "no person found in the image (no face detected)")
    normals, face_mask = shape.normal, shape.face_mask
    del shape
    done("geometry")

    lit = relight_subject(foreground, alpha, normals, face_mask, environment, settings, prefiltered, done=done)
    del face_mask
    shaded = lit.shaded

    backdrop = frame_backdrop(environment, background, height, width, settings)
    composite = shading.composite(shaded.relit[..., :3], alpha, backdrop)
    done("composite")

    timings["total"] = sum(timings[s] for s in STAGES)
    passes = {
        "alpha": alpha,
        "foreground": np.multiply(foreground, alpha[..., None] > 0, out=foreground),  # in place: the last use
        "normal": normals,
        "albedo": lit.albedo,
        "diffuse": lit.diffuse,
        "specular": shaded.specular,
        "relit": shaded.relit,
        "composite": composite,
    }
    return RelightResult(passes=passes, timings=timings)


def preview_strip(plate: np.ndarray, passes: dict[str, np.ndarray], height: int = 256) -> np.ndarray:
    """plate | alpha | normals | albedo | relit | composite, display-referred sRGB [0, 1], side by side.

    Every pass is shrunk to the strip's size before its display transform, so an 8K frame costs no full-size
    temporaries here."""
    h, w = plate.shape[:2]
    tile_w = max(1, round(w * height / h))

    def small(pixels: np.ndarray) -> np.ndarray:
        return resize(pixels, height, tile_w)

    alpha = small(passes["alpha"])[..., None]
    tiles = [
        linear_to_srgb(small(plate)),
        np.repeat(alpha, 3, axis=-1),
        (0.5 * small(passes["normal"]) + 0.5) * small((passes["alpha"] > 0).astype(np.float32))[..., None],
        linear_to_srgb(small(passes["albedo"])),
        linear_to_srgb(small(passes["relit"][..., :3]) * alpha),
        linear_to_srgb(small(passes["composite"])),
    ]
    return np.concatenate([np.clip(t, 0, 1) for t in tiles], axis=1)


def check_output_folder(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise RelightInputError(out_dir, "output path exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RelightInputError(out_dir, f"cannot create output folder ({exc.strerror})") from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise RelightInputError(out_dir, "output folder is not writable")


def make_output_folder(out_dir: Path) -> Callable[[], None]:
    """check_output_folder for a run, and its undo: removing the folders it had to create, deepest first, while
    they are still empty, so that a run that fails leaves nothing behind (a folder holding any file stays)."""
    created = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]  # deepest first
    check_output_folder(out_dir)

    def undo() -> None:
        for folder in created:
            try:
                folder.rmdir()
            except OSError:  # not empty (complete frames, another process's files) or already gone
                return

    return undo


def relight_frame(plate: np.ndarray, source_label: str | os.PathLike, environment: Environment,
                  settings: RelightSettings = RelightSettings(), background: np.ndarray | None = None,
                  progress: Progress | None = None,
                  prefiltered: lightmaps.PrefilteredEnvironment | None = None) -> RelightResult:
    """`relight`, with stage errors reported against `source_label` (the file or movie frame)."""
    try:
        return relight(plate, environment, settings, background, progress, prefiltered)
    except RelightInputError as exc:
        if exc.path is None:  # stage errors know the problem, not the file
            raise RelightInputError(source_label, exc.problem) from exc
        raise


def write_frame(plate: np.ndarray, result: RelightResult, source_label: str | os.PathLike, exr_path: Path,
                preview_path: Path) -> dict[str, float]:
    """Write a relit frame's preview, then its EXR (the EXR last: its presence marks the frame complete); both or
    neither. The passes are released into the EXR as it takes them. Returns the per-stage seconds, with 'write'."""
    clock = time.perf_counter()
    write_png(preview_path, preview_strip(plate, result.passes))
    try:
        write_passes(exr_path, result.passes, metadata={"portraitRelight:source": Path(source_label).name},
                     consume=True)
    except BaseException:
        preview_path.unlink(missing_ok=True)
        raise
    result.timings["write"] = time.perf_counter() - clock
    return result.timings


def relight_to_files(plate: np.ndarray, source_label: str | os.PathLike, exr_path: Path, preview_path: Path,
                     environment: Environment, settings: RelightSettings = RelightSettings(),
                     background: np.ndarray | None = None, progress: Progress | None = None,
                     prefiltered: lightmaps.PrefilteredEnvironment | None = None) -> dict[str, float]:
    """relight_frame, then write_frame. Returns the per-stage seconds."""
    result = relight_frame(plate, source_label, environment, settings, background, progress, prefiltered)
    return write_frame(plate, result, source_label, exr_path, preview_path)
