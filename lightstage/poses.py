"""Training poses: each pose rendered once, with its ground truth and an OLAT basis, so that many lightings can be
derived from it later without Blender (lightstage/derive.py), the light stage's own trick.

A pose is one MakeHuman identity, pose, framing and camera (sample_case of its seed). Per pose, one `.npz`
(deflated) in `<cache>/lightstage/<POSES_VERSION>/<split>/makehuman_<seed>.npz` holds:
- `olat`      float16 (N, H, W, 3): the subject lit by each of N OLAT suns of irradiance 1, premultiplied by
              coverage, world black; any light is then sum_i w_i olat_i with w_i from lighting.olat_weights.
              Cycles denoises only the combined pass, so each light's pass is denoised here with Open Image
              Denoise (the pyoidn wheel), guided by the ground-truth albedo and normals;
- `direct`    float16 (H, W, 3): the subject under the case's source HDRI rendered directly (sharp sun shadows
              that N suns of ~40 degrees soften), premultiplied, without the background;
- `alpha`, `normal`, `albedo`, `roughness`, `depth`: the ground truth, encoded as training_format.ENCODINGS;
- `meta`      UTF-8 JSON (uint8): sample_case's parameters, the camera (fov_deg, R_cam), the OLAT directions
              (world frame), the direct light (HDRI, rotation, strength, cam_to_env), render seconds, versions.
Files are written to a temp name and renamed, so a killed render leaves no partial pose, and rendering again only
renders the poses that are missing: the cache grows across sessions (`make lightstage-poses N=...`).

Identities are split by seed: seeds whose `seed % VALIDATION_EVERY == 0` are validation, the rest training.
Training seeds start at FIRST_SEED, far from the evaluation set's seeds (lightstage/eval_set.py); the scanned
Lee Perry-Smith head is never a training subject.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from . import training_format as tf
from .eval_set import CASES as EVAL_CASES
from .generate import Generator, case_id, default_shared, sample_case
from .makehuman_data import cache_dir as default_cache_dir
from .surface_normals import surface_normals

POSES_VERSION = "poses-v2"  # bump when the generator's output for a seed changes (v2: denoised OLAT passes)
SUBJECT = "makehuman"  # the only training subject (the scanned head is held out)
FIRST_SEED = 100_000
VALIDATION_EVERY = 10
SIZE = 256
SAMPLES = 64
OLAT_LIGHTS = 32
GT_PASSES = ("alpha", "normal", "albedo", "roughness", "depth")
_EVAL_SEEDS = {seed for _, seed in EVAL_CASES}


def split_of(seed: int) -> str:
    return "val" if seed % VALIDATION_EVERY == 0 else "train"


def poses_dir(cache: Path | None = None) -> Path:
    return Path(cache or default_cache_dir()) / "lightstage" / POSES_VERSION


def pose_path(root: Path, seed: int) -> Path:
    return root / split_of(seed) / f"{case_id(SUBJECT, seed)}.npz"


def check_training_seed(seed: int) -> None:
    if seed < FIRST_SEED or seed in _EVAL_SEEDS:
        raise ValueError(f"seed {seed} is not a training pose seed (training seeds start at {FIRST_SEED}; the "
                         "evaluation set's seeds are never rendered as training poses)")


def encode_pose(passes: dict[str, np.ndarray], olat: np.ndarray, meta: dict) -> dict[str, np.ndarray]:
    """The arrays of one pose file (see the module docstring)."""
    arrays = {name: tf.encode_pass(name, passes[name]) for name in GT_PASSES}
    arrays["olat"] = tf.encode_pass("plate", olat)  # float16, clipped to its range
    arrays["direct"] = tf.encode_pass("plate", passes["direct"])
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    return arrays


def write_pose(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npz")
    try:
        np.savez_compressed(temp, **arrays)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def read_pose(path: str | os.PathLike) -> dict:
    """A pose file as float32 arrays (olat (N, H, W, 3), direct, the ground truth) plus its `meta` dict; the hair's
    normals are the rendered depth surface's (surface_normals.py: the Normal pass is none there)."""
    with np.load(path, allow_pickle=False) as npz:
        pose = {name: tf.decode_pass(name, npz[name]) for name in GT_PASSES}
        pose["olat"] = npz["olat"].astype(np.float32)
        pose["direct"] = npz["direct"].astype(np.float32)
        pose["meta"] = json.loads(npz["meta"].tobytes().decode())
    pose["normal"] = surface_normals(pose["normal"], pose["depth"], pose["alpha"], pose["roughness"], pose["meta"])
    return pose


class PoseRenderer:
    """Renders training poses with one Generator (one Blender scene) at a fixed size, samples and OLAT count."""

    def __init__(self, size: int = SIZE, samples: int = SAMPLES, olat: int = OLAT_LIGHTS, shared: Path | None = None):
        self.generator = Generator(SUBJECT, size, samples, olat=olat, shared=shared)

    def render(self, seed: int) -> dict[str, np.ndarray]:
        check_training_seed(seed)
        generator = self.generator
        params = sample_case(seed, SUBJECT, generator.shared)
        timings: dict[str, float] = {}
        passes, view, subject = generator.render_ground_truth(params, timings)
        # Premultiplied, without the HDRI behind it (derive.py composites it anew); the denoiser bleeds a little
        # light into uncovered pixels, which compositing would add to the background.
        passes["direct"] = np.where(passes["alpha"][..., None] > 0, subject, 0.0)
        t0 = time.perf_counter()
        olat = generator.render_olat_basis()
        timings["olat_render"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        olat = denoise_basis(olat, passes["albedo"] * passes["alpha"][..., None], passes["normal"], passes["alpha"] > 0)
        timings["olat_denoise"] = time.perf_counter() - t0
        meta = generator.case_meta(params, view, timings)
        meta.update({"poses_version": POSES_VERSION, "split": split_of(seed)})
        return encode_pose(passes, olat, meta)


def denoise_basis(olat: np.ndarray, albedo: np.ndarray, normal: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Each (H, W, 3) image of the basis denoised by OIDN (HDR), with clean albedo and normal guides; 0 where the
    subject does not cover the pixel (the denoiser bleeds a little light there)."""
    import pyoidn

    albedo = np.ascontiguousarray(np.clip(albedo, 0.0, 1.0), np.float32)
    normal = np.ascontiguousarray(normal, np.float32)
    denoised = np.stack([pyoidn.denoise(np.ascontiguousarray(np.maximum(image, 0.0), np.float32), albedo, normal,
                                        hdr=True, clean_aux=True) for image in olat])
    return denoised * covered[None, ..., None]


def render_poses(seeds: list[int], root: Path, renderer_factory=PoseRenderer, log=print) -> list[Path]:
    """Render the poses of `seeds` that are missing under `root`; returns every pose path (existing or new)."""
    renderer = None
    paths = []
    for seed in seeds:
        path = pose_path(root, seed)
        paths.append(path)
        if path.is_file():
            continue
        renderer = renderer or renderer_factory()
        t0 = time.perf_counter()
        write_pose(path, renderer.render(seed))
        log(f"{path}  {time.perf_counter() - t0:.1f} s  {path.stat().st_size / 1e6:.1f} MB")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render training poses (ground truth + OLAT basis) into the cache.")
    parser.add_argument("--count", type=int, required=True, help="how many poses the cache should hold")
    parser.add_argument("--start", type=int, default=0,
                        help="index of the first seed (FIRST_SEED + start): a run whose earlier poses are gone (a "
                             "fresh machine) renders new identities instead of re-rendering the same ones")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--shared", type=Path, default=None)
    args = parser.parse_args(argv)
    root = poses_dir(args.cache)
    seeds = [FIRST_SEED + args.start + i for i in range(args.count)]
    shared = args.shared or default_shared()
    render_poses(seeds, root, lambda: PoseRenderer(args.size, shared=shared))
    done = sum(1 for seed in seeds if pose_path(root, seed).is_file())
    size = sum(p.stat().st_size for p in root.rglob("*.npz"))
    print(f"{done} poses in {root} ({size / 1e9:.2f} GB)")
    return 0
