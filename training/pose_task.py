"""What every net trained on light-stage poses shares: samples derived on the fly from rendered poses
(lightstage/derive.py: a new lighting, background and camera for every draw), the subject's crop with a random
jitter, mirrored samples, the normals fed to the nets that take normals, batches, fixed validation samples, and a
pose list that grows while a net trains.

Shots: the frames of a still plate differ by sensor noise and by where the matte puts the crop, and a net's answer
must not flicker with them (the product's gate: the relit pass varies at most 1.5x as much as the plate). A task
with a `consistency_weight` gets its training batches in twins: the same sample, and a copy with fresh sensor noise
whose content sits up to TWIN_SHIFT_PX off in the same crop, with the same augmentation; `training_loss` adds that
weight x the task's `consistency` distance between the twins' outputs where both masks hold.

The normals fed (`fed_normals`) are, for LEARNED_NORMALS_SHARE of the training samples, the shipped geometry net's
normals of the plate (the product's stage: what the all-learned path feeds, with its flat faces and hair errors),
else the ground truth degraded toward what a normals stage gives (blurred by a random amount, slightly perturbed).
Validation samples get the ground truth.

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
from scipy import ndimage
from torch import nn

from ..inference.settings import RelightSettings
from ..inference.stages.normals_net import WORK_SIZE, SubjectCrop, estimate_normals_learned, subject_crop
from ..lightstage.derive import HdriPool, derive_sample
from ..lightstage.poses import read_pose
from .harness import Batch
from .nets import UNet

VALIDATION_SAMPLES = 4  # per validation pose
REFRESH_EVERY = 100  # batches: look for poses rendered since (the pose cache may grow while a net trains)
CROP_JITTER = 0.08  # of the crop's side: scale and shift
NORMAL_BLUR_PX = 3.0  # at most, in working-size pixels
NORMAL_NOISE = 0.05
LEARNED_NORMALS_SHARE = 0.5  # training samples fed the geometry net's normals instead of the degraded ground truth
TWIN_SHIFT_PX = 1  # plate pixels, each axis at most: the twin's content moves this much in the same crop
TWIN_NOISE = (4e-4, 2e-3)  # upper bounds of the twin's extra shot and read noise (as derive._photograph draws)


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


def degraded_normals(normal: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ground-truth normals as a normals stage might give them."""
    sigma = float(rng.uniform(0.0, NORMAL_BLUR_PX)) * normal.shape[0] / 128.0
    blurred = ndimage.gaussian_filter(normal * (alpha > 0)[..., None], (sigma, sigma, 0))
    blurred += rng.normal(0.0, NORMAL_NOISE, blurred.shape).astype(np.float32)
    length = np.linalg.norm(blurred, axis=-1, keepdims=True)
    return np.where(length > 1e-6, blurred / np.maximum(length, 1e-6), 0.0).astype(np.float32)


def learned_normals(sample: dict) -> np.ndarray:
    """The bundled geometry net's normals of the sample's plate through the product's stage."""
    return estimate_normals_learned(sample["plate"], sample["alpha"], RelightSettings())


def fed_normals(sample: dict, rng: np.random.Generator | None) -> np.ndarray:
    """The normals a net is fed for a derived sample (the module's docstring); the ground truth without `rng`."""
    if rng is None:
        return sample["normal"]
    if rng.random() < LEARNED_NORMALS_SHARE:
        return learned_normals(sample)
    return degraded_normals(sample["normal"], sample["alpha"], rng)


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


def stack(items: list[tuple[np.ndarray, ...]]) -> Batch:
    return tuple(torch.from_numpy(np.stack([np.ascontiguousarray(a, np.float32) for a in column]))
                 for column in zip(*items))


class PoseTask:
    """Base of the light-stage tasks; subclasses define name, prepare, make_model, loss and metric."""

    name = "pose"
    in_channels, out_channels = 0, 0  # of the net (a U-Net, nets.py)
    consistency_weight = 0.0  # > 0: training batches come in twins, and their outputs' distance costs this much

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

    def prepare(self, sample: dict, size: int, rng: np.random.Generator | None = None,
                crop: SubjectCrop | None = None) -> tuple[np.ndarray, ...]:
        """(inputs (C, S, S), targets, mask (1, S, S)) of a derived sample; with `rng`, augmented. `crop` (twins
        only) replaces the one found from the sample's matte."""
        raise NotImplementedError

    def consistency(self, first: torch.Tensor, second: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The distance between twins' outputs inside `mask` (tasks with a consistency_weight)."""
        raise NotImplementedError

    def derive(self, pose: dict, sample_seed: int) -> dict:
        """The derived sample `prepare` turns into arrays (lightstage/derive.py)."""
        return derive_sample(pose, sample_seed, self.pool)

    def make_model(self) -> nn.Module:
        return UNet(self.in_channels, self.out_channels)

    def training_loss(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The loss, plus the twins' consistency where both twins' masks hold (train_batches pairs them)."""
        loss = self.loss(output, target, mask)
        if self.consistency_weight > 0.0:
            both = mask[0::2] * mask[1::2]
            loss = loss + self.consistency_weight * self.consistency(output[0::2], output[1::2], both)
        return loss

    def draw(self, rng: np.random.Generator) -> tuple[dict, int]:
        """A random training pose and a random sample seed for it."""
        pose = self.load(self.train_poses[int(rng.integers(len(self.train_poses)))])
        return pose, int(rng.integers(2 ** 31))

    def refresh(self, batch: int) -> None:
        """Every REFRESH_EVERY batches, take in the poses rendered since."""
        if self.find_train_poses is not None and batch % REFRESH_EVERY == 0:
            self.train_poses = self.find_train_poses() or self.train_poses

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[Batch]:
        """Batches of augmented samples; with a consistency_weight, of twins (items 2k and 2k+1)."""
        for batch in itertools.count(1):
            self.refresh(batch)
            if self.consistency_weight > 0.0:
                items = [item for _ in range(max(1, batch_size // 2)) for item in self.twins(rng)]
            else:
                items = [self.prepare(self.derive(*self.draw(rng)), self.size, rng) for _ in range(batch_size)]
            yield stack(items)

    def twins(self, rng: np.random.Generator) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """A drawn sample and its twin, prepared with the same crop jitter, augmentation and mirror (learned
        normals, where fed, are each twin's own plate's)."""
        sample = self.derive(*self.draw(rng))
        crop = subject_crop(sample["alpha"])  # the twin keeps it: its content moves within the crop
        augment_seed = int(rng.integers(2 ** 31))
        first = self.prepare(sample, self.size, np.random.default_rng(augment_seed), crop)
        return first, self.prepare(twin(sample, rng), self.size, np.random.default_rng(augment_seed), crop)

    def validation_batches(self, batch_size: int = 8) -> list[Batch]:
        items = [self.prepare(self.derive(self.load(path), seed), self.size)
                 for path in self.validation_poses for seed in range(VALIDATION_SAMPLES)]
        return [stack(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
