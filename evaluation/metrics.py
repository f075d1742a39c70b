"""Quality metrics of every pipeline stage against ground truth.

Conventions: images are float HWC scene-linear, alpha (H, W) in [0, 1], normals (H, W, 3) camera space.
"Inside the matte" always means the *ground-truth* matte thresholded at MATTE_THRESHOLD, so a stage is judged on
the same pixels whatever the predicted matte did (a predicted matte that misses part of the subject shows up as
error there: its relit/albedo/normal pixels are zero).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

MATTE_THRESHOLD = 0.5
# Rhemann et al. 2009 (alphamatting.com) use first-order Gaussian derivative filters with sigma = 1.4.
GRADIENT_SIGMA = 1.4
ANGLE_THRESHOLDS_DEG = (11.25, 22.5, 30.0)
SSIM_GAUSSIAN_SIGMA = 1.5  # Wang et al. 2004; needs crops of at least 11 x 11 pixels


# ----------------------------------------------------------------------------------------------- alpha
def alpha_sad(pred: np.ndarray, gt: np.ndarray) -> float:
    """Sum of absolute differences, in thousands: SAD = sum_p |a_p - a^_p| / 1000 (whole image)."""
    return float(np.abs(np.asarray(pred, np.float64) - gt).sum() / 1000.0)


def alpha_mse(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean squared error over the whole image: MSE = mean_p (a_p - a^_p)^2 (no trimap exists here)."""
    return float(np.mean((np.asarray(pred, np.float64) - gt) ** 2))


def alpha_gradient_error(pred: np.ndarray, gt: np.ndarray, sigma: float = GRADIENT_SIGMA) -> float:
    """Gradient error (Rhemann et al. 2009): Grad = sum_p (|grad a_p| - |grad a^_p|)^2 / 1000, where |grad .| is
    the gradient magnitude from first-order Gaussian derivative filters of standard deviation `sigma` (1.4 px).
    Whole image, alphas in [0, 1]."""
    g_pred = ndimage.gaussian_gradient_magnitude(np.asarray(pred, np.float64), sigma)
    g_gt = ndimage.gaussian_gradient_magnitude(np.asarray(gt, np.float64), sigma)
    return float(((g_pred - g_gt) ** 2).sum() / 1000.0)


# ----------------------------------------------------------------------------------------------- normals
def matte_mask(gt_alpha: np.ndarray) -> np.ndarray:
    """(H, W) bool: the ground-truth matte, alpha > MATTE_THRESHOLD."""
    return np.asarray(gt_alpha) > MATTE_THRESHOLD


def angular_errors_deg(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-pixel angle theta_p = acos(clip(n^_p . n_p / (|n^_p| |n_p|), -1, 1)) in degrees, over `mask`.
    A zero predicted normal (outside the predicted matte) has no direction and counts as 90 degrees."""
    p = np.asarray(pred, np.float64)[mask]
    g = np.asarray(gt, np.float64)[mask]
    norm = np.linalg.norm(p, axis=-1) * np.linalg.norm(g, axis=-1)
    cos = np.where(norm > 1e-12, (p * g).sum(axis=-1) / np.maximum(norm, 1e-12), 0.0)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def normal_metrics(pred: np.ndarray, gt: np.ndarray, gt_alpha: np.ndarray) -> dict[str, float]:
    """Mean and median angular error (degrees) and the % of matte pixels with error below 11.25/22.5/30 deg,
    over the ground-truth matte: mean_p theta_p, median_p theta_p, 100 * |{p: theta_p < t}| / |matte|."""
    errors = angular_errors_deg(pred, gt, matte_mask(gt_alpha))
    if errors.size == 0:
        return {"normal_mean_deg": math.nan, "normal_median_deg": math.nan,
                **{f"normal_under_{t:g}_pct": math.nan for t in ANGLE_THRESHOLDS_DEG}}
    out = {"normal_mean_deg": float(errors.mean()), "normal_median_deg": float(np.median(errors))}
    for t in ANGLE_THRESHOLDS_DEG:
        out[f"normal_under_{t:g}_pct"] = float(100.0 * (errors < t).mean())
    return out


# ----------------------------------------------------------------------------------------------- colour
def best_scale(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """s* = argmin_s sum_{p in mask, c} (s x^ - x)^2 = sum x^ x / sum x^ x^ (0 if x^ = 0): the overall exposure."""
    p = np.asarray(pred, np.float64)[mask]
    denominator = float((p * p).sum())
    return float((p * np.asarray(gt, np.float64)[mask]).sum()) / denominator if denominator > 0 else 0.0


def scale_invariant_mse(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Scale-invariant MSE over `mask` (all channels together, one scalar per image):
    siMSE = mean_{p in mask, c} (s* x^ - x)^2 with s* = best_scale.
    One photo cannot separate albedo from light intensity, so the overall exposure is not counted as error."""
    p = np.asarray(pred, np.float64)[mask]
    g = np.asarray(gt, np.float64)[mask]
    if g.size == 0:
        return math.nan
    return float(np.mean((best_scale(pred, gt, mask) * p - g) ** 2))


def display(linear: np.ndarray) -> np.ndarray:
    """Display transform used by SSIM, PSNR and the contact sheet: clip scene-linear to [0, 1], then the sRGB
    OETF (x <= 0.0031308: 12.92 x, else 1.055 x^(1/2.4) - 0.055)."""
    x = np.clip(np.asarray(linear, np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)


def psnr(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB over `mask` on display values (sRGB-encoded, clipped to [0, 1], peak 1):
    PSNR = 10 log10(1 / mean_{p in mask, c} (D(x^) - D(x))^2); +inf for identical pixels."""
    if not mask.any():
        return math.nan
    mse = float(np.mean((display(pred)[mask] - display(gt)[mask]) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def masked_ssim(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004, skimage: Gaussian window sigma 1.5, K1 0.01, K2 0.03, data range 1) of the
    display values D(x) inside the mask's bounding box, with every pixel outside the mask set to 0 in both
    images, so the background (which relighting does not predict) neither helps nor hurts but the silhouette
    still counts. Crops smaller than 11 px fall back to the largest odd uniform window that fits (>= 3)."""
    from skimage.metrics import structural_similarity

    if not mask.any():
        return math.nan
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    keep = mask[box][..., None]
    a, b = display(pred)[box] * keep, display(gt)[box] * keep
    side = min(a.shape[:2])
    if side >= 11:
        options = {"gaussian_weights": True, "sigma": SSIM_GAUSSIAN_SIGMA, "use_sample_covariance": False}
    elif side >= 3:
        options = {"win_size": side if side % 2 else side - 1}
    else:
        return math.nan
    return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0, **options))


# ----------------------------------------------------------------------------------------------- per stage
def alpha_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    return {"alpha_sad": alpha_sad(pred, gt), "alpha_mse": alpha_mse(pred, gt),
            "alpha_grad": alpha_gradient_error(pred, gt)}


def albedo_metrics(pred: np.ndarray, gt: np.ndarray, gt_alpha: np.ndarray) -> dict[str, float]:
    return {"albedo_simse": scale_invariant_mse(pred, gt, matte_mask(gt_alpha))}


def relit_metrics(pred: np.ndarray, gt: np.ndarray, gt_alpha: np.ndarray) -> dict[str, float]:
    """Relit RGB (straight colour) against the ground truth, inside the ground-truth matte."""
    mask = matte_mask(gt_alpha)
    pred, gt = np.asarray(pred)[..., :3], np.asarray(gt)[..., :3]
    exposed = pred * np.float32(best_scale(pred, gt, mask))  # an empty mask scores NaN either way
    return {"relit_simse": scale_invariant_mse(pred, gt, mask), "relit_ssim": masked_ssim(pred, gt, mask),
            "relit_psnr": psnr(pred, gt, mask), "relit_psnr_exposed": psnr(exposed, gt, mask)}


# Column order of the report table: (key, header, format).
METRIC_COLUMNS = (
    ("alpha_sad", "SAD", "{:.2f}"),
    ("alpha_mse", "MSE", "{:.5f}"),
    ("alpha_grad", "Grad", "{:.2f}"),
    ("normal_mean_deg", "n.mean", "{:.2f}"),
    ("normal_median_deg", "n.med", "{:.2f}"),
    ("normal_under_11.25_pct", "<11.25%", "{:.1f}"),
    ("normal_under_22.5_pct", "<22.5%", "{:.1f}"),
    ("normal_under_30_pct", "<30%", "{:.1f}"),
    ("albedo_simse", "alb.siMSE", "{:.5f}"),
    ("relit_simse", "rel.siMSE", "{:.5f}"),
    ("relit_ssim", "SSIM", "{:.4f}"),
    ("relit_psnr", "PSNR", "{:.2f}"),
    ("relit_psnr_exposed", "PSNR@s*", "{:.2f}"),
)
