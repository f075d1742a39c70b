"""The methods compared per case: v1, the learned stages one by one and together, the no-relighting baseline,
and per-stage oracles.

"v1" is `inference.pipeline.relight`, the very code behind ./relight, with the classical stages (`--normals
classical --albedo classical --shading classical`); "learned normals" is the same with `--normals learned`. The
other rows run the product's matte and geometry once per normals method and the stages after them through
`pipeline.relight_subject`, the function `relight` itself uses after matting and geometry (tests check that with
nothing swapped it reproduces `relight`): "learned albedo" / "learned normals+albedo" with `--albedo learned` (and
`--normals learned`); "learned shading" with `--shading learned` alone; "all learned", the three nets: the
product's default; "all learned, oracle normals" / "... oracle albedo" with ground truth in one of its inputs
(which learned stage costs most); "light from background" (v2) and "... v1" the default path under the light each
estimator infers from `background_photo` alone, the two-picture path, still scored against the target HDRI's
ground truth (compare with "all learned"); the oracle rows with ground truth swapped into one of v1's stages
("oracle normals+albedo, learned shading": the shading net fed exact inputs).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..inference import pipeline
from ..inference.errors import RelightInputError
from ..inference.lighting.background_light import GAINS, estimate_environment
from ..inference.lighting.environment import Environment
from ..inference.settings import RelightSettings
from ..inference.stages import geometry, lightmaps, matting
from .cases import GroundTruthCase, shared_dir, target_environment
from .panorama_calibration import pool_held_out_gains
from .panorama_figures import display_photo
from .panorama_v1 import estimate_environment_v1

ROW_NAMES = ("v1", "learned normals", "learned albedo", "learned normals+albedo", "learned shading", "all learned",
             "all learned, oracle normals", "all learned, oracle albedo", "light from background",
             "light from background v1", "naive composite", "oracle alpha", "oracle normals", "oracle normals+albedo",
             "oracle normals+albedo, learned shading", "oracle alpha+normals+albedo")


@dataclass(frozen=True)
class MethodOutput:
    """What a method predicts; None where it predicts nothing (the baseline only has colour)."""

    relit: np.ndarray  # (H, W, 3) straight colour under the target lighting
    alpha: np.ndarray | None = None
    normal: np.ndarray | None = None
    albedo: np.ndarray | None = None


@dataclass(frozen=True)
class StageInputs:
    """Matte and geometry the later stages start from (the product's own, or partly ground truth)."""

    alpha: np.ndarray
    foreground: np.ndarray
    normal: np.ndarray
    face_mask: np.ndarray


def case_settings(case: GroundTruthCase, settings: RelightSettings) -> RelightSettings:
    """The case's camera decides the field of view, as a Blender scene's camera does for the product."""
    return replace(settings, fov_deg=case.fov_deg)


def whole_pipeline(plate: np.ndarray, environment: Environment, settings: RelightSettings,
                   prefiltered: lightmaps.PrefilteredEnvironment) -> MethodOutput:
    result = pipeline.relight(plate, environment, settings, prefiltered=prefiltered)
    p = result.passes
    return MethodOutput(relit=p["relit"][..., :3], alpha=p["alpha"], normal=p["normal"], albedo=p["albedo"])


def background_photo(case: GroundTruthCase, environment: Environment) -> np.ndarray:
    """The two-picture input: what the case camera photographs of the target scene without the subject, as an
    8-bit sRGB photo at the render's exposure (clipped, quantised)."""
    height, width = case.passes["plate"].shape[:2]
    return display_photo(environment.view(width, height, case.fov_deg).astype(np.float64))


def background_gains(case: GroundTruthCase) -> dict[str, float]:
    """The background-light estimator's gains fitted without any crop of the case's target HDRI, so the
    estimator is never scored on an HDRI it was calibrated on."""
    hdri = case.meta["target"]["hdri"]
    folds = pool_held_out_gains(str(shared_dir()))
    # an HDRI outside the pool was never calibrated on: the shipped gains are honest for it
    return folds.get(f"{hdri['collection']}/{hdri['name']}", GAINS)


def naive_composite(plate: np.ndarray) -> MethodOutput:
    """No relighting at all: the subject keeps the plate's own pixels (source lighting)."""
    return MethodOutput(relit=plate)


def product_stages(plate: np.ndarray, settings: RelightSettings) -> StageInputs:
    """The product's matting and geometry, exactly as `pipeline.relight` runs them."""
    matte = matting.estimate_matte(plate, settings)
    shape = geometry.estimate_normals(plate, matte.alpha, settings)
    return StageInputs(matte.alpha, matte.foreground, shape.normal, shape.face_mask)


def oracle_matte_stages(plate: np.ndarray, gt_alpha: np.ndarray, settings: RelightSettings) -> StageInputs:
    """Ground-truth alpha, then the product's foreground estimation and geometry on it."""
    alpha = np.clip(gt_alpha, 0.0, 1.0).astype(np.float32)
    foreground = matting.estimate_foreground(plate, alpha)
    # Opaque pixels are their own foreground (as in matting.estimate_matte).
    opaque = alpha[..., None] >= 1.0
    foreground = np.where(opaque, plate, foreground).astype(np.float32)
    shape = geometry.estimate_normals(plate, alpha, settings)
    return StageInputs(alpha, foreground, shape.normal, shape.face_mask)


def with_gt_normals(stages: StageInputs, gt_normal: np.ndarray, gt_alpha: np.ndarray) -> StageInputs:
    """Ground-truth normals wherever the ground truth has a surface; the product's elsewhere inside its matte."""
    gt_defined = (gt_alpha > 0) & (np.linalg.norm(gt_normal, axis=-1) > 0.5)
    normal = np.where(gt_defined[..., None], gt_normal, stages.normal).astype(np.float32)
    normal[stages.alpha <= 0] = 0.0
    return replace(stages, normal=normal)


def compose(stages: StageInputs, environment: Environment, settings: RelightSettings,
            prefiltered: lightmaps.PrefilteredEnvironment, albedo: np.ndarray | None = None) -> MethodOutput:
    """`pipeline.relight` after its geometry stage (the same function): albedo (unless given), light maps,
    shading."""
    lit = pipeline.relight_subject(stages.foreground, stages.alpha, stages.normal, stages.face_mask, environment,
                                   settings, prefiltered, albedo)
    return MethodOutput(relit=lit.shaded.relit[..., :3], alpha=stages.alpha, normal=stages.normal, albedo=lit.albedo)


def gt_albedo_inside(gt_albedo: np.ndarray, gt_alpha: np.ndarray, fallback: np.ndarray,
                     alpha: np.ndarray) -> np.ndarray:
    """Ground-truth albedo inside the ground-truth matte, `fallback` elsewhere, zero outside `alpha`."""
    out = np.where((gt_alpha > 0)[..., None], gt_albedo, fallback)
    return (out * (alpha > 0)[..., None]).astype(np.float32)


def method_outputs(case: GroundTruthCase, settings: RelightSettings,
                   rows: tuple[str, ...] = ROW_NAMES) -> dict[str, MethodOutput | Exception]:
    """Every requested row's prediction for one case, in ROW_NAMES order; a row whose stages reject the input
    (e.g. no face found) maps to the RelightInputError instead, so the other rows still count."""
    out = _method_outputs(case, settings, rows)
    return {name: out[name] for name in ROW_NAMES if name in out}


def _method_outputs(case: GroundTruthCase, settings: RelightSettings,
                    rows: tuple[str, ...]) -> dict[str, MethodOutput | Exception]:
    # every row names its methods; the rest (v1 and the oracles) start from v1's
    settings = replace(case_settings(case, settings), normals="classical", albedo="classical", shading="classical")
    gt = case.passes
    plate = np.maximum(gt["plate"][..., :3], 0.0).astype(np.float32)
    environment = target_environment(case)
    prefiltered = lightmaps.prefilter(environment)
    out: dict[str, MethodOutput | Exception] = {}

    def attempt(name: str, make) -> MethodOutput | None:
        if name not in rows:
            return None
        try:
            out[name] = make()
        except RelightInputError as exc:
            out[name] = exc
            return None
        return out[name]

    attempt("v1", lambda: whole_pipeline(plate, environment, settings, prefiltered))
    attempt("learned normals", lambda: whole_pipeline(plate, environment, replace(settings, normals="learned"),
                                                      prefiltered))
    product: dict[str, StageInputs | RelightInputError] = {}

    def stages_with(normals: str) -> StageInputs:
        """The product's matte and geometry with `normals`, computed once for all the rows that share them."""
        if normals not in product:
            try:
                product[normals] = product_stages(plate, replace(settings, normals=normals))
            except RelightInputError as exc:
                product[normals] = exc
        if isinstance(product[normals], RelightInputError):
            raise product[normals]
        return product[normals]

    attempt("learned albedo", lambda: compose(stages_with("classical"), environment,
                                              replace(settings, albedo="learned"), prefiltered))
    attempt("learned normals+albedo", lambda: compose(stages_with("learned"), environment,
                                                      replace(settings, normals="learned", albedo="learned"),
                                                      prefiltered))
    attempt("learned shading", lambda: compose(stages_with("classical"), environment,
                                               replace(settings, shading="learned"), prefiltered))
    learned = replace(settings, normals="learned", albedo="learned", shading="learned")
    gt_alpha, gt_normal, gt_albedo = gt["alpha"], gt["normal"], gt["albedo"][..., :3]
    all_learned = attempt("all learned", lambda: compose(stages_with("learned"), environment, learned, prefiltered))
    # which learned stage costs the all-learned path most: ground truth swapped into one of its inputs
    attempt("all learned, oracle normals", lambda: compose(with_gt_normals(stages_with("learned"), gt_normal, gt_alpha),
                                                           environment, learned, prefiltered))
    if all_learned is not None:
        attempt("all learned, oracle albedo", lambda: compose(
            stages_with("learned"), environment, learned, prefiltered,
            albedo=gt_albedo_inside(gt_albedo, gt_alpha, all_learned.albedo, all_learned.alpha)))
    if any(r.startswith("light from background") for r in rows):
        photo = background_photo(case, environment)
        estimates = {"light from background": lambda: estimate_environment(photo, case.fov_deg,
                                                                           gains=background_gains(case)),
                     "light from background v1": lambda: estimate_environment_v1(photo, case.fov_deg)}
        for name, estimate in estimates.items():
            def relit_by_estimate(estimate=estimate) -> MethodOutput:
                estimated = estimate()
                return compose(stages_with("learned"), estimated, learned, lightmaps.prefilter(estimated))

            attempt(name, relit_by_estimate)
    attempt("naive composite", lambda: naive_composite(plate))
    if any(r in rows for r in ("oracle alpha", "oracle alpha+normals+albedo")):
        matte_only = oracle_matte_stages(plate, gt_alpha, settings)
        attempt("oracle alpha", lambda: compose(matte_only, environment, settings, prefiltered))

        def full_oracle() -> MethodOutput:
            stages = with_gt_normals(matte_only, gt_normal, gt_alpha)
            albedo = gt_albedo_inside(gt_albedo, gt_alpha, np.zeros_like(gt_albedo), stages.alpha)
            return compose(stages, environment, settings, prefiltered, albedo=albedo)

        attempt("oracle alpha+normals+albedo", full_oracle)
    wants_normals = [r for r in ("oracle normals", "oracle normals+albedo", "oracle normals+albedo, learned shading")
                     if r in rows]
    if not wants_normals:
        return out
    try:
        stages = with_gt_normals(stages_with("classical"), gt_normal, gt_alpha)
    except RelightInputError as exc:
        out.update({name: exc for name in wants_normals})
        return out
    # The normals-only oracle also supplies the albedo used where the ground truth has none.
    normals_only = compose(stages, environment, settings, prefiltered)
    attempt("oracle normals", lambda: normals_only)
    albedo = gt_albedo_inside(gt_albedo, gt_alpha, normals_only.albedo, stages.alpha)
    attempt("oracle normals+albedo", lambda: compose(stages, environment, settings, prefiltered, albedo=albedo))
    attempt("oracle normals+albedo, learned shading", lambda: compose(stages, environment,
                                                                      replace(settings, shading="learned"),
                                                                      prefiltered, albedo=albedo))
    return out
