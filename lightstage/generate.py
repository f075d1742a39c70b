"""Render ground-truth light-stage cases: `<case_dir>/gt.exr` (passes gt.<pass>.<chan>) + `<case_dir>/meta.json`.

Per case: one render under the SOURCE HDRI (transparent film: subject + alpha + Environment pass = plate, plus
normal/depth/albedo/roughness passes), one under the TARGET HDRI (relit), and optionally one OLAT render whose
per-sun light-group passes, weighted by the target HDRI, give relit_olat. Same seed => same case.

CLI: python tools/lightstage.py --out DIR --seed S --count N [--size 384] [--subject ...] [--samples 64] [--olat 32]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from ..inference.io.exr import read_passes, write_passes
from ..inference.lighting.camera import camera_rays
from . import lighting
from .stage import AOV_ALBEDO, AOV_ROUGHNESS, Stage, stack
from .subjects import SUBJECTS

GENERATOR_VERSION = "0.2.0"  # 0.2: hair, eyebrows, garments, skin tints, head turn on the neck, waist-up
GT_LAYER = "gt"
PASS_CHANNELS = {"plate": "RGB", "alpha": "A", "normal": "XYZ", "albedo": "RGB", "roughness": "V", "depth": "Z",
                 "relit": "RGB", "relit_olat": "RGB"}
FULL_PRECISION = {"alpha", "normal", "depth"}


def default_shared() -> Path:
    return Path(os.environ.get("PORTRAIT_RELIGHT_SHARED", Path(__file__).resolve().parent.parent.parent / "shared"))


def case_id(subject: str, seed: int) -> str:
    return f"{subject}_{seed:06d}"


def sample_case(seed: int, subject_name: str, shared: Path) -> dict:
    """Every random parameter of a case, from its seed alone (JSON-able)."""
    rng = np.random.default_rng([seed, 7])  # stream keyed by the seed only: stable across processes
    subject = SUBJECTS[subject_name].sample_params(rng)
    pool = lighting.hdri_pool(shared)
    src, dst = rng.choice(len(pool), size=2, replace=False)
    lights = {}
    for role, index in (("source", src), ("target", dst)):
        collection, path = pool[int(index)]
        stops = float(rng.uniform(-0.5, 0.5))
        lights[role] = {"hdri": {"collection": collection, "name": path.name},
                        "rotation_z_deg": round(float(rng.uniform(0.0, 360.0)), 3),
                        "strength": round(lighting.normalised_strength(path, stops), 6)}
    # A posed body turns its own head (up to 40 degrees); the camera orbit then only adds a little. The scanned
    # bust cannot turn its head, so the camera orbits further.
    yaw_range = 15.0 if "pose" in subject else 35.0
    camera = {"yaw_deg": round(float(rng.uniform(-yaw_range, yaw_range)), 3),
              "pitch_deg": round(float(rng.uniform(-8, 15)), 3),
              "roll_deg": round(float(rng.uniform(-5, 5)), 3), "fov_deg": round(float(rng.uniform(24, 40)), 3)}
    return {"seed": seed, "subject": {"name": subject_name, **subject}, "camera": camera, **lights}


def hdri_path(ref: dict, shared: Path) -> Path:
    for collection, path in lighting.hdri_pool(shared):
        if collection == ref["collection"] and path.name == ref["name"]:
            return path
    raise FileNotFoundError(f"HDRI {ref} not found")


def _straight(premultiplied: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Un-premultiply inside the matte, 0 outside (Cycles accumulates AOVs/colour weighted by coverage)."""
    inside = alpha > 1e-4
    out = np.zeros_like(premultiplied)
    out[inside] = premultiplied[inside] / alpha[inside, None]
    return out


class Generator:
    """One Stage + one subject, re-used for many cases of the same size/samples."""

    def __init__(self, subject: str, size: int, samples: int, olat: int = 0, shared: Path | None = None,
                 threads: int = 0):
        self.shared = shared or default_shared()
        self.size, self.samples, self.olat = size, samples, olat
        self.stage = Stage(size, size, samples, seed=0, threads=threads)
        self.subject = SUBJECTS[subject](self.shared)
        self.subject.build(self.stage)
        self.olat_dirs = lighting.fibonacci_sphere(olat) if olat else None
        if olat:
            self.stage.build_olat(self.olat_dirs)

    def render_case(self, seed: int) -> tuple[dict[str, np.ndarray], dict]:
        params = sample_case(seed, self.subject.name, self.shared)
        timings: dict[str, float] = {}
        passes, view, _subject = self.render_ground_truth(params, timings)
        alpha = passes["alpha"]

        target_light = params["target"]
        t0 = time.perf_counter()
        target_hdri = hdri_path(target_light["hdri"], self.shared)
        self.stage.set_world(target_hdri, target_light["rotation_z_deg"], target_light["strength"])
        ch = self.stage.render(self.samples)
        timings["target_render"] = time.perf_counter() - t0
        passes["relit"] = _straight(stack(ch, "Combined", "RGB"), alpha)

        if self.olat:
            t0 = time.perf_counter()
            weights = lighting.olat_weights(target_hdri, target_light["rotation_z_deg"], target_light["strength"],
                                            self.olat_dirs)
            passes["relit_olat"] = _straight(np.einsum("nhwc,nc->hwc", self.render_olat_basis(), weights)
                                             .astype(np.float32), alpha)
            timings["olat_render"] = time.perf_counter() - t0
        meta = self.case_meta(params, view, timings)
        meta["target"] = {**target_light, "cam_to_env": self.cam_to_env(target_light, view["R_cam"]).tolist()}
        return passes, meta

    def render_ground_truth(self, params: dict, timings: dict[str, float]
                            ) -> tuple[dict[str, np.ndarray], dict, np.ndarray]:
        """Pose the subject and camera as `params` say and render under the source light: the plate (subject
        over the HDRI), alpha and the ground-truth passes, the view {R_cam, fov_deg, distance_m}, and the subject
        alone (premultiplied by coverage, no background)."""
        t0 = time.perf_counter()
        target, extent = self.subject.apply(params["subject"])
        cam = params["camera"]
        distance = extent / 2.0 / math.tan(math.radians(cam["fov_deg"]) / 2.0)
        r_cam = self.stage.set_camera(target, distance, cam["yaw_deg"], cam["pitch_deg"], cam["roll_deg"],
                                      cam["fov_deg"])
        self.stage.scene.cycles.seed = params["seed"] % (2 ** 31)
        timings["setup"] = time.perf_counter() - t0

        source = params["source"]
        t0 = time.perf_counter()
        self.stage.set_world(hdri_path(source["hdri"], self.shared), source["rotation_z_deg"], source["strength"])
        ch = self.stage.render(self.samples)
        timings["source_render"] = time.perf_counter() - t0
        alpha = np.clip(ch["Combined.A"], 0.0, 1.0)
        subject = stack(ch, "Combined", "RGB")
        passes = {"alpha": alpha, "plate": subject + stack(ch, "Environment", "RGB")}
        normal = stack(ch, "Normal", "XYZ") @ r_cam  # rows: n_cam = R_cam^T n_world
        length = np.linalg.norm(normal, axis=-1, keepdims=True)
        inside = (alpha > 0)[..., None] & (length > 1e-6)
        passes["normal"] = np.where(inside, normal / np.maximum(length, 1e-6), 0.0)
        passes["albedo"] = _straight(stack(ch, AOV_ALBEDO, "RGB"), alpha)
        passes["roughness"] = _straight(ch[f"{AOV_ROUGHNESS}.X"][..., None], alpha)[..., 0]
        # Depth: 0 where unknown (background; edge pixels whose depth sample missed the subject)
        # Cycles' Depth pass is planar (camera -Z); the ground truth is the distance along the pixel's ray.
        rays = camera_rays(self.size, self.size, cam["fov_deg"])
        depth = ch["Depth.Z"] / np.maximum(-rays[..., 2], 1e-6)
        passes["depth"] = np.where((alpha > 0) & (depth < 1e6), depth, 0.0)
        return passes, {"R_cam": r_cam, "fov_deg": cam["fov_deg"], "distance_m": distance}, subject

    def render_olat_basis(self) -> np.ndarray:
        """(N, H, W, 3) float32 one-light-at-a-time images of the posed subject, premultiplied by coverage (world
        black): a sun of irradiance 1 per OLAT direction, all from one render (one light group per sun)."""
        self.stage.set_world(None, 0.0, 0.0)
        self.stage.show_olat(True)
        try:
            ch = self.stage.render(self.samples)
        finally:
            self.stage.show_olat(False)
        return np.stack([stack(ch, f"Combined_olat{i:03d}", "RGB") for i in range(self.olat)])

    @staticmethod
    def cam_to_env(light: dict, r_cam: np.ndarray) -> np.ndarray:
        """The panorama lookup of camera directions under `light` (CONVENTIONS.md): q = Rz(rot) R_cam d_cam."""
        return lighting.rotation_z(math.radians(light["rotation_z_deg"])) @ r_cam

    def case_meta(self, params: dict, view: dict, timings: dict[str, float]) -> dict:
        cam, r_cam = params["camera"], view["R_cam"]
        return {
            "seed": params["seed"], "subject": params["subject"], "width": self.size, "height": self.size,
            "samples": self.samples,
            "camera": {"fov_deg": cam["fov_deg"], "R_cam": r_cam.tolist(), "yaw_deg": cam["yaw_deg"],
                       "pitch_deg": cam["pitch_deg"], "roll_deg": cam["roll_deg"], "distance_m": view["distance_m"]},
            "source": {**params["source"], "cam_to_env": self.cam_to_env(params["source"], r_cam).tolist()},
            "olat": {"count": self.olat, "directions_world": self.olat_dirs.tolist()} if self.olat else None,
            "render_seconds": {k: round(v, 3) for k, v in timings.items()},
            "generator_version": GENERATOR_VERSION,
        }


def write_case(case_dir: Path, passes: dict[str, np.ndarray], meta: dict) -> Path:
    """gt.exr + meta.json into a temp folder beside case_dir, then renamed into place (atomic)."""
    case_dir = Path(case_dir)
    case_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = case_dir.parent / f".{case_dir.name}.tmp{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    write_passes(temp / "gt.exr", passes, layer=GT_LAYER, pass_channels=PASS_CHANNELS, full_precision=FULL_PRECISION)
    (temp / "meta.json").write_text(json.dumps(meta, indent=1))
    if case_dir.exists():
        shutil.rmtree(case_dir)
    os.replace(temp, case_dir)
    return case_dir


def read_case(case_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    """(passes as float32 (H,W) or (H,W,C), meta) of a written case."""
    return read_passes(Path(case_dir) / "gt.exr", GT_LAYER), json.loads((Path(case_dir) / "meta.json").read_text())


def is_complete(case_dir: Path) -> bool:
    return (Path(case_dir) / "gt.exr").is_file() and (Path(case_dir) / "meta.json").is_file()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render virtual light stage ground-truth cases.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--subject", choices=sorted(SUBJECTS), default="makehuman")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--olat", type=int, default=0, help="number of OLAT suns (0: no relit_olat)")
    parser.add_argument("--shared", type=Path, default=None)
    args = parser.parse_args(argv)
    generator = Generator(args.subject, args.size, args.samples, args.olat, args.shared)
    for seed in range(args.seed, args.seed + args.count):
        case_dir = args.out / case_id(args.subject, seed)
        t0 = time.perf_counter()
        passes, meta = generator.render_case(seed)
        write_case(case_dir, passes, meta)
        print(f"{case_dir}  {time.perf_counter() - t0:.1f}s  {meta['render_seconds']}", flush=True)
    return 0
