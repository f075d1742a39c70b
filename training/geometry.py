"""The geometry net: a light-stage sample's plate and matte -> camera-space normals, on the subject's crop.

Samples are derived on the fly from rendered poses (lightstage/derive.py: a new lighting, background and camera
for every draw), cropped and fed exactly as the product will feed the net (inference/stages/normals_net.py), with
a random crop jitter and mirror on top. The loss is 1 - cos(angle) between the normalised output and the ground
truth inside the matte; the metric is the mean angle in degrees. Validation uses the validation identities
(poses.split_of) with fixed sample seeds and no jitter, so its numbers are comparable across runs.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..inference.stages.normals_net import WORK_SIZE, SubjectCrop, net_input, subject_crop
from ..lightstage.derive import HdriPool, derive_sample
from ..lightstage.poses import read_pose
from .harness import Batch
from .nets import UNet

IN_CHANNELS, OUT_CHANNELS = 4, 3
VALIDATION_SAMPLES = 4  # per validation pose
REFRESH_EVERY = 100  # batches: look for poses rendered since (the pose cache may grow while a net trains)
CROP_JITTER = 0.08  # of the crop's side: scale and shift


def jittered(crop: SubjectCrop, rng: np.random.Generator) -> SubjectCrop:
    side = max(1, int(round(crop.side * (1.0 + rng.uniform(-CROP_JITTER, CROP_JITTER)))))
    shift = rng.uniform(-CROP_JITTER, CROP_JITTER, 2) * crop.side
    centre_y, centre_x = crop.top + crop.side / 2.0 + shift[0], crop.left + crop.side / 2.0 + shift[1]
    return SubjectCrop(int(round(centre_y - side / 2.0)), int(round(centre_x - side / 2.0)), side)


def prepare(sample: dict, size: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, ...]:
    """(input (4, S, S), target normals (3, S, S), mask (1, S, S)) of a derived sample; with `rng`, a jittered
    crop and a random mirror (the mirrored normal's X is negated)."""
    crop = subject_crop(sample["alpha"])
    if rng is not None:
        crop = jittered(crop, rng)
    x = net_input(sample["plate"], sample["alpha"], crop, size)[0]
    normal = crop.take(sample["normal"], size)
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    mask = (crop.take(sample["alpha"], size) > 0.5) & (length[..., 0] > 0.5)
    normal = np.where(length > 1e-6, normal / np.maximum(length, 1e-6), 0.0)
    target = normal.transpose(2, 0, 1)
    if rng is not None and rng.random() < 0.5:
        x, target, mask = x[:, :, ::-1], target[:, :, ::-1] * np.array([-1, 1, 1], np.float32)[:, None, None], \
            mask[:, ::-1]
    return (np.ascontiguousarray(x, np.float32), np.ascontiguousarray(target, np.float32),
            np.ascontiguousarray(mask[None], np.float32))


def _stack(items: list[tuple[np.ndarray, ...]]) -> Batch:
    return tuple(torch.from_numpy(np.stack(column)) for column in zip(*items))


class GeometryTask:
    name = "geometry"

    def __init__(self, train_poses: list[Path], validation_poses: list[Path], pool: HdriPool,
                 size: int = WORK_SIZE, loader=read_pose, cached_poses: int = 64,
                 find_train_poses: Callable[[], list[Path]] | None = None):
        if not train_poses or not validation_poses:
            raise ValueError(f"the geometry net needs training and validation poses (found {len(train_poses)} and "
                             f"{len(validation_poses)}): render some with `make lightstage-poses N=...`")
        self.train_poses, self.validation_poses = list(train_poses), list(validation_poses)
        self.pool, self.size = pool, size
        self.load = functools.lru_cache(maxsize=cached_poses)(loader)
        self.find_train_poses = find_train_poses

    def make_model(self) -> nn.Module:
        return UNet(IN_CHANNELS, OUT_CHANNELS)

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[Batch]:
        for batch in itertools.count(1):
            if self.find_train_poses is not None and batch % REFRESH_EVERY == 0:
                self.train_poses = self.find_train_poses() or self.train_poses
            items = []
            for _ in range(batch_size):
                pose = self.load(self.train_poses[int(rng.integers(len(self.train_poses)))])
                items.append(prepare(derive_sample(pose, int(rng.integers(2 ** 31)), self.pool), self.size, rng))
            yield _stack(items)

    def validation_batches(self, batch_size: int = 8) -> list[Batch]:
        items = [prepare(derive_sample(self.load(path), seed, self.pool), self.size)
                 for path in self.validation_poses for seed in range(VALIDATION_SAMPLES)]
        return [_stack(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]

    @staticmethod
    def _cosine(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (nn.functional.normalize(output, dim=1, eps=1e-6) * target).sum(dim=1, keepdim=True)

    def loss(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return ((1.0 - self._cosine(output, target)) * mask).sum() / mask.sum().clamp(min=1.0)

    def metric(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
        """Mean angular error in degrees inside the matte."""
        angles = torch.rad2deg(torch.acos(self._cosine(output, target).clamp(-1.0, 1.0)))
        return float((angles * mask).sum() / mask.sum().clamp(min=1.0))

