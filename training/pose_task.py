"""What every net trained on light-stage poses shares: samples derived on the fly from rendered poses
(lightstage/derive.py: a new lighting, background and camera for every draw), the subject's crop with a random
jitter, mirrored samples, batches, fixed validation samples, and a pose list that grows while a net trains.

A task subclass says what a sample becomes (`prepare`: inputs, targets and a mask, on the crop, exactly as the
product feeds its net) and how it is scored (`loss`, `metric`, `make_model`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..inference.stages.normals_net import WORK_SIZE, SubjectCrop
from ..lightstage.derive import HdriPool, derive_sample
from ..lightstage.poses import read_pose
from .harness import Batch
from .nets import UNet

VALIDATION_SAMPLES = 4  # per validation pose
REFRESH_EVERY = 100  # batches: look for poses rendered since (the pose cache may grow while a net trains)
CROP_JITTER = 0.08  # of the crop's side: scale and shift


def jittered(crop: SubjectCrop, rng: np.random.Generator) -> SubjectCrop:
    side = max(1, int(round(crop.side * (1.0 + rng.uniform(-CROP_JITTER, CROP_JITTER)))))
    shift = rng.uniform(-CROP_JITTER, CROP_JITTER, 2) * crop.side
    centre_y, centre_x = crop.top + crop.side / 2.0 + shift[0], crop.left + crop.side / 2.0 + shift[1]
    return SubjectCrop(int(round(centre_y - side / 2.0)), int(round(centre_x - side / 2.0)), side)


def mirrored(arrays: tuple[np.ndarray, ...], x_channels: dict[int, tuple[int, ...]]) -> tuple[np.ndarray, ...]:
    """(C, S, S) arrays flipped left-right; x_channels[i] lists the channels of arrays[i] that hold a camera-space
    X component (normals), which change sign."""
    flipped = []
    for index, array in enumerate(arrays):
        array = array[:, :, ::-1].copy()
        for channel in x_channels.get(index, ()):
            array[channel] = -array[channel]
        flipped.append(array)
    return tuple(flipped)


def stack(items: list[tuple[np.ndarray, ...]]) -> Batch:
    return tuple(torch.from_numpy(np.stack([np.ascontiguousarray(a, np.float32) for a in column]))
                 for column in zip(*items))


class PoseTask:
    """Base of the light-stage tasks; subclasses define name, prepare, make_model, loss and metric."""

    name = "pose"
    in_channels, out_channels = 0, 0  # of the net (a U-Net, nets.py)

    def __init__(self, train_poses: list[Path], validation_poses: list[Path], pool: HdriPool,
                 size: int = WORK_SIZE, loader=read_pose, cached_poses: int = 64,
                 find_train_poses: Callable[[], list[Path]] | None = None):
        if not train_poses or not validation_poses:
            raise ValueError(f"the {self.name} net needs training and validation poses (found {len(train_poses)} "
                             f"and {len(validation_poses)}): render some with `make lightstage-poses N=...`")
        self.train_poses, self.validation_poses = list(train_poses), list(validation_poses)
        self.pool, self.size = pool, size
        self.load = functools.lru_cache(maxsize=cached_poses)(loader)
        self.find_train_poses = find_train_poses

    def prepare(self, sample: dict, size: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, ...]:
        """(inputs (C, S, S), targets, mask (1, S, S)) of a derived sample; with `rng`, augmented."""
        raise NotImplementedError

    def derive(self, pose: dict, sample_seed: int) -> dict:
        """The derived sample `prepare` turns into arrays (lightstage/derive.py)."""
        return derive_sample(pose, sample_seed, self.pool)

    def make_model(self) -> nn.Module:
        return UNet(self.in_channels, self.out_channels)

    def training_loss(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.loss(output, target, mask)

    def draw(self, rng: np.random.Generator) -> tuple[dict, int]:
        """A random training pose and a random sample seed for it."""
        pose = self.load(self.train_poses[int(rng.integers(len(self.train_poses)))])
        return pose, int(rng.integers(2 ** 31))

    def refresh(self, batch: int) -> None:
        """Every REFRESH_EVERY batches, take in the poses rendered since."""
        if self.find_train_poses is not None and batch % REFRESH_EVERY == 0:
            self.train_poses = self.find_train_poses() or self.train_poses

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[Batch]:
        for batch in itertools.count(1):
            self.refresh(batch)
            items = []
            for _ in range(batch_size):
                pose, sample_seed = self.draw(rng)
                items.append(self.prepare(self.derive(pose, sample_seed), self.size, rng))
            yield stack(items)

    def validation_batches(self, batch_size: int = 8) -> list[Batch]:
        items = [self.prepare(self.derive(self.load(path), seed), self.size)
                 for path in self.validation_poses for seed in range(VALIDATION_SAMPLES)]
        return [stack(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
