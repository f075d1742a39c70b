"""The learned shading stage (`--shading learned`, the shot setting *Shading*): the paper's shading net, trained by
training/shading.py, committed as inference/models/shading_net.onnx (model card in models/CONTRACTS.md).

The net sees the subject's square crop at the working size S (as the geometry and albedo nets do):
- input  (1, 25, S, S) float32: the foreground's sRGB-encoded RGB in [0, 1] and the matte (net_input), the
  camera-space unit normals, the albedo encoded by `encode_albedo`, and the target light's light maps on the crop
  (diffuse, then the Phong 1/16/32/64 specular maps) encoded by `encode_light_maps`;
- output (1, 7, S, S) float32: 3 channels of log diffuse ratio (the corrected diffuse shading over the diffuse
  light map: cast shadows, occlusion, subsurface softening), then 4 raw specular lobe weights (WEIGHT_SCALE *
  softplus(output - WEIGHT_OFFSET) blends the four Phong maps).
Both are smooth, so they come back to the plate by edge-aware guided upsampling, and the full-resolution light maps
keep their detail: `diffuse = diffuse_map * exp(ratio)` and `specular = sum_k w_k * phong_k`, so the pass contract
relit = albedo * diffuse + specular holds exactly, as with v1 shading (the Recombine gains and the 3D card work).
"""

from __future__ import annotations

import numpy as np

from ..io.imageio import linear_to_srgb
from ..lighting.camera import half_extents
from ..models.registry import SHADING_NET
from ..models.session import load_model
from ..settings import RelightSettings
from . import lightmaps
from .normals_net import NORMAL_X, WORK_SIZE, SubjectCrop, SubjectView, guided_values, mirror_averaged, subject_view

IN_CHANNELS, OUT_CHANNELS = 25, 7
WEIGHT_SCALE = 0.05
WEIGHT_OFFSET = 2.0  # lobe weight = WEIGHT_SCALE * softplus(output - WEIGHT_OFFSET): a zero output gives ~0.6 %
# per lobe, 2.5 % in all, between v1's cloth and skin reflectance
RATIO_RANGE = (-5.0, 1.0)  # log diffuse ratio the stage accepts: deep shadow to a little more than the map
MAP_EPS = 0.02  # of the light level: log floor of the light maps (keeps unlit pixels finite)
ALBEDO_KEY = 0.25  # the albedo's median luminance is set to this before encoding
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def crop_rays(width: int, height: int, fov_deg: float, crop: SubjectCrop, size: int) -> np.ndarray:
    """(size, size, 3) unit camera rays through the working-size pixel centres of `crop` on a (width, height)
    plate (the window may reach beyond the plate: its rays continue the frame's)."""
    tx, ty = half_extents(width, height, fov_deg)
    centres = (np.arange(size, dtype=np.float64) + 0.5) * crop.side / size
    x = (2.0 * (crop.left + centres) / width - 1.0) * tx
    y = (1.0 - 2.0 * (crop.top + centres) / height) * ty
    rays = np.empty((size, size, 3), np.float64)
    rays[..., 0] = x[None, :]
    rays[..., 1] = y[:, None]
    rays[..., 2] = -1.0
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    return rays.astype(np.float32)


def light_level(diffuse: np.ndarray, mask: np.ndarray) -> float:
    """The light maps' scale: mean diffuse luminance over the mask (light maps are linear in the light)."""
    values = diffuse[mask] @ _LUMA
    return max(float(values.mean()) if values.size else 0.0, 1e-8)


def encode_light_maps(diffuse: np.ndarray, specular: np.ndarray, level: float) -> np.ndarray:
    """(15, S, S): log(map / level + MAP_EPS) of the diffuse (S, S, 3) and the four specular (4, S, S, 3) maps."""
    maps = np.concatenate([diffuse[None], specular], axis=0) / np.float32(level)  # (5, S, S, 3)
    return np.log(np.maximum(maps, 0.0) + MAP_EPS).transpose(0, 3, 1, 2).reshape(15, *diffuse.shape[:2])


def encode_albedo(albedo: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(3, S, S): the albedo with its median luminance inside the mask set to ALBEDO_KEY, sRGB-encoded: the net
    sees its colours and contrast, not the stage's exposure convention."""
    values = albedo[mask] @ _LUMA
    level = float(np.median(values)) if values.size else 0.0
    scaled = albedo * np.float32(ALBEDO_KEY / level) if level > 1e-6 else albedo
    return np.clip(linear_to_srgb(np.clip(scaled, 0.0, 1.0)), 0.0, 1.0).transpose(2, 0, 1).astype(np.float32)


def shading_net_input(encoded: np.ndarray, normal_crop: np.ndarray, albedo_crop: np.ndarray,
                      diffuse_crop: np.ndarray, specular_crop: np.ndarray) -> np.ndarray:
    """(1, 25, S, S): see the module docstring. `encoded` is the foreground's net_input; the *_crop arrays are on
    the crop at the working size."""
    mask = normal_crop.any(axis=-1)
    level = light_level(diffuse_crop, mask)
    return np.concatenate([
        encoded[0],
        normal_crop.transpose(2, 0, 1),
        encode_albedo(albedo_crop, mask),
        encode_light_maps(diffuse_crop, specular_crop, level),
    ], axis=0)[None].astype(np.float32)


def decode_output(output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 7) raw net output -> (diffuse ratio (..., 3), lobe weights (..., 4))."""
    ratio = np.exp(np.clip(output[..., :3], *RATIO_RANGE)).astype(np.float32, copy=False)
    # softplus(z) = max(z, 0) + log1p(exp(-|z|)): np.logaddexp(0, z) to float32 rounding, in a third of its time
    # (it runs at every pixel of the matte)
    z = np.asarray(output[..., 3:], np.float32) - np.float32(WEIGHT_OFFSET)
    weights = np.exp(-np.abs(z))
    np.log1p(weights, out=weights)
    weights += np.maximum(z, 0.0)
    weights *= np.float32(WEIGHT_SCALE)
    return ratio, weights


def predict_shading(foreground: np.ndarray, alpha: np.ndarray, normals: np.ndarray, albedo: np.ndarray,
                    prefiltered: lightmaps.PrefilteredEnvironment, fov_deg: float, settings: RelightSettings,
                    frame_size: tuple[int, int] | None = None, offset: tuple[int, int] = (0, 0),
                    view: SubjectView | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(diffuse ratio (H, W, 3), lobe weights (H, W, 4)) on the (H, W) arrays given, at full resolution, inside the
    matte (alpha > 0: where the light maps are); outside it the ratio is 1 and the weights 0.

    The arrays may be a box of a larger frame: `frame_size` (width, height) is the frame's and `offset` (top, left)
    the box's place in it, so the crop's camera rays are the frame's. `view` is subject_view(foreground, alpha,
    normals), when the caller has it."""
    height, width = alpha.shape
    frame_width, frame_height = frame_size or (width, height)
    view = view or subject_view(foreground, alpha, normals)
    crop, normal_crop = view.crop, view.normal_crop
    mask = normal_crop.any(axis=-1)
    in_frame = SubjectCrop(crop.top + offset[0], crop.left + offset[1], crop.side)
    rays = crop_rays(frame_width, frame_height, fov_deg, in_frame, WORK_SIZE)
    maps = lightmaps.light_maps(prefiltered, normal_crop, rays, mask)
    albedo_crop = crop.take(np.asarray(albedo, np.float32), WORK_SIZE)
    model = load_model(SHADING_NET, settings)
    x = shading_net_input(view.encoded, normal_crop, albedo_crop, maps.diffuse, maps.specular)
    output = mirror_averaged(model, x, input_x=NORMAL_X)[0].transpose(1, 2, 0)
    # log ratio and raw weights are upsampled (smooth quantities), then decoded: both stay in their ranges; outside
    # the crop (no subject there) the raw output is 0
    rows, cols = view.rows, view.cols
    ratio_values, weight_values = decode_output(guided_values(output, view.guide, crop, rows, cols))
    ratio = np.ones((height, width, 3), np.float32)
    weights = np.zeros((height, width, OUT_CHANNELS - 3), np.float32)
    ratio[rows, cols] = ratio_values
    weights[rows, cols] = weight_values
    return ratio, weights
