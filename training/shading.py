"""The shading net: relighting pairs from the light-stage poses (inference/stages/shading_net.py has the contract).

A pair is one pose under two independent lightings: the plate is derive_sample's (light A, background, photo
degradations), the target is the subject under light B (lightstage/derive.relit_target: an HDRI of the pool
through the OLAT basis, or the pose's direct Cycles render with its sharp shadows). The net's inputs are built
exactly as the product builds them: the foreground plate and matte, normals, albedo, and light B's light maps
computed by the product's own light_maps from the same normals. The normals are training/pose_task.fed_normals':
for half the pairs the shipped geometry net's (so the smooth ratio learns to correct light maps computed from
them), else the ground truth degraded toward what a normals stage gives. The albedo is, for
LEARNED_ALBEDO_SHARE of the pairs, the shipped albedo net's (the product's own stage on the plate, from the normals
fed: what the all-learned path feeds the shading net, with the source light it leaves behind), else the ground
truth with a small random colour error (a learned albedo is never exact). Either way the loss renders with the
albedo the net was fed, so the smooth ratio learns to undo what a learned albedo keeps of the source light; the
learned albedo is first brought to the true albedo's exposure, a convention of the albedo stage that the shading
net must not learn.

The loss renders the pass contract: relit = albedo * (diffuse_map * ratio) + sum_k w_k * phong_k, and compares it
with the target in log space (L1, inside the matte; values in units of the light level, so a bright and a dim
light count alike). The metric is the same error in stops.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from ..evaluation.metrics import best_scale
from ..inference.lighting.environment import Environment
from ..inference.settings import RelightSettings
from ..inference.stages import lightmaps
from ..inference.stages.albedo_net import estimate_albedo_learned
from ..inference.stages.normals_net import crop_normals, net_input, subject_crop
from ..inference.stages.shading_net import (
    IN_CHANNELS,
    OUT_CHANNELS,
    RATIO_RANGE,
    WEIGHT_OFFSET,
    WEIGHT_SCALE,
    crop_rays,
    light_level,
    shading_net_input,
)
from ..lightstage.derive import HdriPool, derive_sample, relit_target
from .pose_task import PoseTask, fed_normals, jittered, mirrored

TARGET_CHANNELS = 21  # relit (3), albedo (3), diffuse map (3), four Phong maps (12): what the loss renders with
LOG_EPS = 0.01  # in units of the light level
ALBEDO_COLOUR_ERROR = 0.06  # log-normal sigma of a per-channel gain on the fed ground-truth albedo
LEARNED_ALBEDO_SHARE = 0.5  # training pairs fed the albedo net's albedo instead of the ground truth


def target_light_maps(prefiltered: lightmaps.PrefilteredEnvironment, environment: Environment, strength: float,
                      normal_crop: np.ndarray, rays: np.ndarray, mask: np.ndarray) -> lightmaps.LightMaps:
    """Light maps of the target light on the crop from its HDRI prefiltered at strength 1 (light maps are linear in
    the light: prefilter each HDRI once, scale after), turned as `environment` is."""
    maps = lightmaps.light_maps(replace(prefiltered, cam_to_env=environment.cam_to_env), normal_crop, rays, mask)
    return lightmaps.LightMaps(maps.diffuse * np.float32(strength), maps.specular * np.float32(strength))


def learned_albedo(sample: dict, normals: np.ndarray) -> np.ndarray:
    """The bundled albedo net's albedo of the sample's plate through the product's stage (no face found: its
    exposure reference is the matte), scaled by the one factor that best matches the true albedo inside the matte."""
    alpha = sample["alpha"]
    albedo = estimate_albedo_learned(sample["plate"], alpha, normals, np.zeros_like(alpha), RelightSettings())
    return albedo * np.float32(best_scale(albedo, sample["albedo"], alpha > 0.5))


def derive_pair(pose: dict, sample_seed: int, pool: HdriPool) -> dict:
    """derive_sample's plate and ground truth, plus the target under a second light."""
    sample = derive_sample(pose, sample_seed, pool)
    subject, environment, info = relit_target(pose, sample_seed, pool)
    sample.update(target=subject, target_environment=environment, target_info=info,
                  fov_deg=float(pose["meta"]["camera"]["fov_deg"]))
    return sample


def prepare(sample: dict, size: int, unit_prefiltered: Callable[[dict], lightmaps.PrefilteredEnvironment],
            rng: np.random.Generator | None = None) -> tuple[np.ndarray, ...]:
    """(input (25, S, S), target (21, S, S): see TARGET_CHANNELS, mask (1, S, S)) of a derived pair;
    `unit_prefiltered` gives an HDRI reference's prefiltered light at strength 1. With `rng`, learned or
    degraded normals, a learned or perturbed albedo, a jittered crop and a random mirror."""
    alpha = sample["alpha"]
    height, width = alpha.shape
    crop = subject_crop(alpha)
    if rng is not None:
        crop = jittered(crop, rng)
    normals = fed_normals(sample, rng)
    normal_crop = crop_normals(normals, alpha, crop, size)
    inside = normal_crop.any(axis=-1)
    rays = crop_rays(width, height, sample["fov_deg"], crop, size)
    info = sample["target_info"]
    maps = target_light_maps(unit_prefiltered(info["hdri"]), sample["target_environment"], info["strength"],
                             normal_crop, rays, inside)
    albedo = sample["albedo"]
    if rng is not None:
        if rng.random() < LEARNED_ALBEDO_SHARE:
            albedo = learned_albedo(sample, normals)
        else:
            albedo = albedo * np.exp(rng.normal(0.0, ALBEDO_COLOUR_ERROR, 3)).astype(np.float32)
    albedo_crop = crop.take(albedo, size)
    x = shading_net_input(net_input(sample["plate"], alpha, crop, size), normal_crop, albedo_crop, maps.diffuse,
                          maps.specular)[0]
    level = np.float32(light_level(maps.diffuse, inside))
    alpha_crop = crop.take(alpha, size)
    relit = crop.take(sample["target"], size) / np.maximum(alpha_crop, 1e-3)[..., None]
    mask = (alpha_crop > 0.5) & inside
    target = np.concatenate([relit / level, albedo_crop, maps.diffuse / level,
                             maps.specular.transpose(1, 2, 0, 3).reshape(size, size, 12) / level], axis=-1)
    arrays = (x, target.transpose(2, 0, 1), mask[None].astype(np.float32))
    if rng is not None and rng.random() < 0.5:
        arrays = mirrored(arrays, {0: (4,)})  # input channel 4 is the normals' X
    return tuple(np.ascontiguousarray(a, np.float32) for a in arrays)


def render_relit(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The pass contract in torch (shading_net.decode_output): albedo * diffuse_map * ratio + sum_k w_k phong_k,
    (B, 3, S, S), from the net's raw output and the albedo and maps packed in `target`."""
    ratio = torch.exp(output[:, :3].clamp(*RATIO_RANGE))
    weights = WEIGHT_SCALE * torch.nn.functional.softplus(output[:, 3:7] - WEIGHT_OFFSET)
    albedo, diffuse = target[:, 3:6], target[:, 6:9]
    batch, _, height, width = target.shape
    phong = target[:, 9:21].reshape(batch, 4, 3, height, width)
    return albedo * diffuse * ratio + (weights[:, :, None] * phong).sum(dim=1)


class ShadingTask(PoseTask):
    name = "shading"
    in_channels, out_channels = IN_CHANNELS, OUT_CHANNELS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._prefiltered: dict[tuple[str, str], lightmaps.PrefilteredEnvironment] = {}

    def derive(self, pose: dict, sample_seed: int) -> dict:
        return derive_pair(pose, sample_seed, self.pool)

    def unit_prefiltered(self, ref: dict) -> lightmaps.PrefilteredEnvironment:
        """The pool HDRI `ref` prefiltered at strength 1, once per HDRI (a pool holds a few dozen)."""
        key = (ref["collection"], ref["name"])
        if key not in self._prefiltered:
            panorama = self.pool.panorama(self.pool.path(ref))
            self._prefiltered[key] = lightmaps.prefilter(Environment(panorama, np.eye(3)))
        return self._prefiltered[key]

    def prepare(self, sample: dict, size: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, ...]:
        return prepare(sample, size, self.unit_prefiltered, rng)

    @staticmethod
    def log_error(relit: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        error = (torch.log(relit.clamp(min=0.0) + LOG_EPS) - torch.log(target[:, :3].clamp(min=0.0) + LOG_EPS)).abs()
        return (error * mask).sum() / (3.0 * mask.sum().clamp(min=1.0))

    def loss(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.log_error(render_relit(output, target), target, mask)

    def metric(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
        """Mean absolute relit error in stops inside the matte."""
        return float(self.loss(output, target, mask)) / math.log(2.0)
