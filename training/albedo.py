"""The albedo net: plate, matte and normals -> the plate's log source shading, on the subject's crop
(inference/stages/albedo_net.py has the contract; albedo = plate / exp(shading)).

Samples come from the light-stage poses like the geometry net's (training/pose_task.py: new lighting, background
and photo degradations per draw). The normals fed in are the ground truth degraded toward what a normals stage
gives: blurred by a random amount and slightly perturbed. The loss is the L1 distance between predicted and true
log shading inside the matte where the true albedo is not black, after removing the sample's mean difference:
one photo cannot tell a dark subject in bright light from a light subject in dim light (the light stage meters
every plate to a normal exposure, as a photographer does), so the net learns the shading up to one global
exposure and the product sets that scale by convention, as the classical stage does. The light's colour is not
removed: it must leave the albedo. The metric is the same distance in stops (log2 albedo_pred - log2 albedo_true,
exposure-free).

Shots: the frames of a still plate differ by sensor noise and by where the matte puts the crop, and the net's
answer must not flicker with them (the product's gate: the relit pass varies at most 1.5x as much as the plate).
So training batches come in twins: the same sample, and a copy with fresh sensor noise whose content sits up to
TWIN_SHIFT_PX off in the same crop; `training_loss` adds CONSISTENCY_WEIGHT x the exposure-free L1 distance
between the twins' outputs inside the mask. A longer run without it scored better on validation but flickered
1.54x (the albedo net's model card, inference/models/CONTRACTS.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import torch
from scipy import ndimage

from ..inference.stages.albedo_net import IN_CHANNELS, OUT_CHANNELS, albedo_net_input, log_shading
from ..inference.stages.normals_net import SubjectCrop, subject_crop
from .harness import Batch
from .pose_task import PoseTask, jittered, mirrored, stack

NORMAL_BLUR_PX = 3.0  # at most, in working-size pixels
NORMAL_NOISE = 0.05
MIN_ALBEDO = 0.02  # darker true albedo (pupils, black cloth) says little about the light: left out of the loss
CONSISTENCY_WEIGHT = 1.0  # of the twins' output distance, against the main loss (both L1 in log shading)
TWIN_SHIFT_PX = 1  # plate pixels, each axis at most: the twin's content moves this much in the same crop
TWIN_NOISE = (4e-4, 2e-3)  # upper bounds of the twin's extra shot and read noise (as derive._photograph draws)


def degraded_normals(normal: np.ndarray, alpha: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """Ground-truth normals as a normals stage might give them (unchanged without `rng`)."""
    if rng is None:
        return normal
    sigma = float(rng.uniform(0.0, NORMAL_BLUR_PX)) * normal.shape[0] / 128.0
    blurred = ndimage.gaussian_filter(normal * (alpha > 0)[..., None], (sigma, sigma, 0))
    blurred += rng.normal(0.0, NORMAL_NOISE, blurred.shape).astype(np.float32)
    length = np.linalg.norm(blurred, axis=-1, keepdims=True)
    return np.where(length > 1e-6, blurred / np.maximum(length, 1e-6), 0.0).astype(np.float32)


def prepare(sample: dict, size: int, rng: np.random.Generator | None = None,
            crop: SubjectCrop | None = None) -> tuple[np.ndarray, ...]:
    """(input (7, S, S), target log shading (3, S, S), mask (1, S, S)) of a derived sample; with `rng`, degraded
    normals, a jittered crop and a random mirror. `crop` replaces the one found from the sample's matte."""
    crop = crop if crop is not None else subject_crop(sample["alpha"])
    if rng is not None:
        crop = jittered(crop, rng)
    normals = degraded_normals(sample["normal"], sample["alpha"], rng)
    x = albedo_net_input(sample["plate"], sample["alpha"], normals, crop, size)[0]
    plate, albedo = crop.take(sample["plate"], size), crop.take(sample["albedo"], size)
    target = log_shading(plate, albedo).transpose(2, 0, 1)
    mask = (crop.take(sample["alpha"], size) > 0.5) & (albedo.min(axis=-1) > MIN_ALBEDO)
    arrays = (x, target, mask[None].astype(np.float32))
    if rng is not None and rng.random() < 0.5:
        arrays = mirrored(arrays, {0: (4,)})  # input channel 4 is the normals' X
    return tuple(np.ascontiguousarray(a, np.float32) for a in arrays)


def twin(sample: dict, rng: np.random.Generator) -> dict:
    """The sample as another frame of a still shot shows it: fresh sensor noise on the plate, and the whole sample
    (plate, matte, normals, albedo) moved by up to TWIN_SHIFT_PX in each direction."""
    shift = tuple(int(v) for v in rng.integers(-TWIN_SHIFT_PX, TWIN_SHIFT_PX + 1, 2))
    moved = {name: np.roll(sample[name], shift, axis=(0, 1)) for name in ("plate", "alpha", "normal", "albedo")}
    shot, read = rng.uniform(0.0, TWIN_NOISE[0]), rng.uniform(0.0, TWIN_NOISE[1])
    plate = moved["plate"]
    noise = rng.normal(0.0, 1.0, plate.shape).astype(np.float32)
    moved["plate"] = np.maximum(plate + noise * np.sqrt(shot * np.maximum(plate, 0.0) + read * read), 0.0)
    return {**sample, **moved}


def _exposure_free(difference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |difference - its mean| inside the mask: one offset per sample (all channels) is not counted."""
    difference = difference * mask
    counts = 3.0 * mask.sum(dim=(1, 2, 3), keepdim=True).clamp(min=1.0)
    exposure = difference.sum(dim=(1, 2, 3), keepdim=True) / counts
    return ((difference - exposure).abs() * mask).sum() / (3.0 * mask.sum().clamp(min=1.0))


class AlbedoTask(PoseTask):
    name = "albedo"
    in_channels, out_channels = IN_CHANNELS, OUT_CHANNELS
    prepare = staticmethod(prepare)

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[Batch]:
        """Batches of twins (items 2k and 2k+1): a sample and its twin, with the same crop jitter, normals
        degradation and mirror."""
        for batch in itertools.count(1):
            self.refresh(batch)
            items = []
            for _ in range(max(1, batch_size // 2)):
                pose, sample_seed = self.draw(rng)
                sample = self.derive(pose, sample_seed)
                crop = subject_crop(sample["alpha"])  # the twin keeps it: its content moves within the crop
                augment_seed = int(rng.integers(2 ** 31))
                items.append(prepare(sample, self.size, np.random.default_rng(augment_seed), crop))
                items.append(prepare(twin(sample, rng), self.size, np.random.default_rng(augment_seed), crop))
            yield stack(items)

    def loss(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return _exposure_free(output - target, mask)

    def training_loss(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The loss plus the twins' consistency (train_batches pairs them), where both twins' masks hold."""
        both = mask[0::2] * mask[1::2]
        return self.loss(output, target, mask) + CONSISTENCY_WEIGHT * _exposure_free(output[0::2] - output[1::2],
                                                                                      both)

    def metric(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
        """Mean absolute albedo error in stops inside the mask, up to one exposure per sample."""
        return float(self.loss(output, target, mask)) / math.log(2.0)
