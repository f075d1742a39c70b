"""The albedo net: plate, matte and normals -> the plate's log source shading, on the subject's crop
(inference/stages/albedo_net.py has the contract; albedo = plate / exp(shading)).

Samples come from the light-stage poses like the geometry net's (training/pose_task.py: new lighting, background
and photo degradations per draw). The normals fed in are pose_task.fed_normals': for half the samples the shipped
geometry net's normals of the plate, as the all-learned path feeds them (a twin gets those of its own plate), else
the ground truth degraded toward what a normals stage gives. The loss is the L1 distance between predicted and true
log shading inside the matte where the true albedo is not black, after removing the sample's mean difference:
one photo cannot tell a dark subject in bright light from a light subject in dim light (the light stage meters
every plate to a normal exposure, as a photographer does), so the net learns the shading up to one global
exposure and the product sets that scale by convention, as the classical stage does. The light's colour is not
removed: it must leave the albedo. The metric is the same distance in stops (log2 albedo_pred - log2 albedo_true,
exposure-free).

Shots: training batches come in twins (training/pose_task.py) with CONSISTENCY_WEIGHT x the exposure-free L1
distance between the twins' outputs. A longer run without it scored better on validation but flickered 1.54x (the
albedo net's model card, inference/models/CONTRACTS.md).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..inference.stages.albedo_net import IN_CHANNELS, OUT_CHANNELS, albedo_net_input, log_shading
from ..inference.stages.normals_net import SubjectCrop, subject_crop
from .nets import UNet
from .pose_task import PoseTask, fed_normals, jittered, mirrored

MIN_ALBEDO = 0.02  # darker true albedo (pupils, black cloth) says little about the light: left out of the loss
CONSISTENCY_WEIGHT = 1.0  # of the twins' output distance, against the main loss (both L1 in log shading)


def prepare(sample: dict, size: int, rng: np.random.Generator | None = None,
            crop: SubjectCrop | None = None) -> tuple[np.ndarray, ...]:
    """(input (7, S, S), target log shading (3, S, S), mask (1, S, S)) of a derived sample; with `rng`, learned or
    degraded normals, a jittered crop and a random mirror. `crop` replaces the one found from the sample's matte."""
    crop = crop if crop is not None else subject_crop(sample["alpha"])
    if rng is not None:
        crop = jittered(crop, rng)
    normals = fed_normals(sample, rng)
    x = albedo_net_input(sample["plate"], sample["alpha"], normals, crop, size)[0]
    plate, albedo = crop.take(sample["plate"], size), crop.take(sample["albedo"], size)
    target = log_shading(plate, albedo).transpose(2, 0, 1)
    mask = (crop.take(sample["alpha"], size) > 0.5) & (albedo.min(axis=-1) > MIN_ALBEDO)
    arrays = (x, target, mask[None].astype(np.float32))
    if rng is not None and rng.random() < 0.5:
        arrays = mirrored(arrays, {0: (4,)})  # input channel 4 is the normals' X
    return tuple(np.ascontiguousarray(a, np.float32) for a in arrays)


def _exposure_free(difference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |difference - its mean| inside the mask: one offset per sample (all channels) is not counted."""
    difference = difference * mask
    counts = 3.0 * mask.sum(dim=(1, 2, 3), keepdim=True).clamp(min=1.0)
    exposure = difference.sum(dim=(1, 2, 3), keepdim=True) / counts
    return ((difference - exposure).abs() * mask).sum() / (3.0 * mask.sum().clamp(min=1.0))


class AlbedoTask(PoseTask):
    name = "albedo"
    in_channels, out_channels = IN_CHANNELS, OUT_CHANNELS
    consistency_weight = CONSISTENCY_WEIGHT
    prepare = staticmethod(prepare)

    def make_model(self) -> UNet:
        # the light's colour against the skin's is a judgement over the whole subject (nets.UNet)
        return UNet(self.in_channels, self.out_channels, global_context=True)

    def loss(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return _exposure_free(output - target, mask)

    def consistency(self, first: torch.Tensor, second: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return _exposure_free(first - second, mask)

    def metric(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
        """Mean absolute albedo error in stops inside the mask, up to one exposure per sample."""
        return float(self.loss(output, target, mask)) / math.log(2.0)
