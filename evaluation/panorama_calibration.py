"""Calibrating the background-light estimator's gains (inference/lighting/background_light.py) on pool crops.

The estimate is the visible plate plus a gain-weighted sum of components, and diffuse irradiance is linear in
radiance, so the gains that best match the true irradiance are a non-negative least-squares problem. Irradiance
is compared in order-2 spherical harmonics (the nine coefficients hold ~99% of a clamped-cosine irradiance's
energy) with each crop's error relative to its true irradiance, so every crop weighs the same whatever its
exposure. `held_out_gains` gives, for each HDRI, the gains fitted without any of its crops: the honest figures
of an estimator calibrated on a small pool.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from ..inference.lighting.background_light import COMPONENTS, light_components
from ..inference.lighting.environment import CAMERA_TO_CENTRED_PANORAMA, Environment, pixel_directions
from ..inference.stages.albedo import sh_basis
from ..inference.stages.lightmaps import box_downsample, ring_solid_angles
from .panorama_figures import BackgroundCrop, background_crop

CALIBRATION_HEIGHT = 64  # the components are smooth: order-2 harmonics need no finer panorama
TRUTH_HEIGHT = 128  # true panoramas are box-averaged to this before projection (a sun keeps its energy)
# clamped-cosine convolution per band (Ramamoorthi & Hanrahan 2001): irradiance E_lm = A_l L_lm
_BAND_GAINS = np.array([np.pi] + [2.0 * np.pi / 3.0] * 3 + [np.pi / 4.0] * 5)


def irradiance_sh9(environment: Environment, max_height: int = TRUTH_HEIGHT) -> np.ndarray:
    """(27,) order-2 harmonic coefficients of the diffuse irradiance, camera frame, 9 per channel (RGB
    interleaved): their Euclidean norm is the L2 norm of the irradiance over the sphere of normals."""
    radiance = environment.radiance
    if radiance.shape[0] > max_height:
        radiance = box_downsample(radiance, max_height)
    height, width = radiance.shape[:2]
    directions = pixel_directions(height, width) @ environment.cam_to_env  # q @ M = M^T q: camera frame
    rings = np.asarray(ring_solid_angles(height, width), np.float64).reshape(height, -1)
    weighted = sh_basis(directions) * np.broadcast_to(rings, (height, width))[..., None]
    coefficients = np.einsum("hwk,hwc->kc", weighted, radiance.astype(np.float64))
    return (_BAND_GAINS[:, None] * coefficients).ravel()


@dataclass(frozen=True)
class CalibrationCrop:
    hdri: str
    truth: np.ndarray  # (27,) irradiance_sh9 of the true panorama
    visible: np.ndarray  # (27,) of the projected plate alone (its gain is fixed at 1)
    components: np.ndarray  # (27, len(COMPONENTS))


def calibration_crop(hdri: str, crop: BackgroundCrop) -> CalibrationCrop:
    projected, components = light_components(crop.background, crop.fov_deg, CALIBRATION_HEIGHT)

    def harmonics(radiance: np.ndarray) -> np.ndarray:
        return irradiance_sh9(Environment(radiance, CAMERA_TO_CENTRED_PANORAMA))

    columns = np.stack([harmonics(components[name]) for name in COMPONENTS], axis=1)
    return CalibrationCrop(hdri, irradiance_sh9(crop.truth), harmonics(projected), columns)


def fit_gains(crops: list[CalibrationCrop]) -> dict[str, float]:
    """Non-negative gains minimising sum over crops of |E_est - E_true|^2 / |E_true|^2."""
    rows, targets = [], []
    for crop in crops:
        weight = 1.0 / max(float(np.linalg.norm(crop.truth)), 1e-12)
        rows.append(crop.components * weight)
        targets.append((crop.truth - crop.visible) * weight)
    gains, _ = nnls(np.concatenate(rows), np.concatenate(targets))
    # Least squares shrinks the level where the truth's energy is unpredictable (a sun outside the frame), which
    # leaves most estimates too dim. One common factor on the gains makes the level unbiased in log terms
    # (median ratio of true to estimated irradiance 1), the way exposure errors are judged.
    visible = np.stack([c.visible for c in crops])
    outside = np.stack([c.components @ gains for c in crops])
    true = np.linalg.norm(np.stack([c.truth for c in crops]), axis=1)
    factors = np.geomspace(0.25, 8.0, 241)
    bias = [abs(np.median(np.log(true / np.maximum(np.linalg.norm(visible + f * outside, axis=1), 1e-12))))
            for f in factors]
    gains = gains * factors[int(np.argmin(bias))]
    return {name: round(float(g), 3) for name, g in zip(COMPONENTS, gains)}


def held_out_gains(crops: list[CalibrationCrop]) -> dict[str, dict[str, float]]:
    """{hdri: gains fitted on the crops of every other HDRI}."""
    return {hdri: fit_gains([c for c in crops if c.hdri != hdri]) for hdri in sorted({c.hdri for c in crops})}


def pool_crops(shared: Path, crops_per_hdri: int,
               seed: int) -> Iterator[tuple[str, tuple[float, float, float], BackgroundCrop]]:
    """("<collection>/<file name>" as light stage metadata names HDRIs, (yaw, pitch, fov) degrees, crop) for
    `crops_per_hdri` random cameras on every pool HDRI (`shared` data and bpy's world HDRIs): yaw 0-360, pitch
    -10..25, horizontal FOV 35-80 degrees."""
    from ..lightstage.lighting import hdri_pool, load_hdri

    rng = np.random.default_rng(seed)
    for collection, path in hdri_pool(Path(shared)):
        radiance = load_hdri(path)
        for _ in range(crops_per_hdri):
            yaw, pitch, fov = rng.uniform(0, 360), rng.uniform(-10, 25), rng.uniform(35, 80)
            yield f"{collection}/{path.name}", (yaw, pitch, fov), background_crop(radiance, yaw, pitch, fov)


@functools.lru_cache(maxsize=2)
def pool_held_out_gains(shared: str, crops_per_hdri: int = 6, seed: int = 0) -> dict[str, dict[str, float]]:
    """held_out_gains on pool_crops (tools/panorama_eval.py's cameras, fewer of them)."""
    crops = pool_crops(Path(shared), crops_per_hdri, seed)
    return held_out_gains([calibration_crop(hdri, crop) for hdri, _, crop in crops])
