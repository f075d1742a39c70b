"""Compact, torch-free training shards of light-stage cases (numpy only on the reading side).

A shard is one `.npz` (zip, deflate) of at most ~60 MB, so it travels to a GPU machine in one transfer. Members:
- `index`: UTF-8 JSON as uint8 bytes: {"format", "version", "cases": [{"id", "meta", "panoramas": {role: key}}],
  "encodings", "panorama_size"}.
- `cases/<i>/<pass>` per case, quantised as ENCODINGS says (the EXR already stores plate/relit/albedo/roughness
  as half floats; HDR passes stay float16 because they are scene-linear with highlights far above 1 and the
  plate's background is the HDRI itself; an 8-bit sRGB plate would clip those and lose the low end):
    plate, relit, relit_olat  float16 RGB, scene-linear (values clipped to the float16 range)
    alpha                     uint8, round(a * 255)
    normal                    int8 XYZ, round(n * 127), camera space; 0 outside the subject (decoded re-normalised)
    albedo                    uint8 sRGB-encoded (straight colour)
    roughness                 uint8, round(r * 255)
    depth                     float16 metres along the ray, 0 = unknown
    cam_to_env                float32 (2, 3, 3): source, target (q = cam_to_env @ d_cam, CONVENTIONS.md)
    strength                  float32 (2,): source, target Environment strength
- `panoramas/<k>`: each HDRI the shard's cases use, once, area-averaged to PANORAMA_SIZE (h, 2h) float32,
  unscaled; a case's light is strength * panorama looked up at q (inference/lighting/environment.py rules), so light
  maps can be recomputed on the GPU.

`pack_cases` needs the HDRIs (lighting.hdri_pool, which asks bpy where Blender's bundled ones are); `iter_shard` /
`load_shard` need numpy only.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..inference.errors import RelightInputError
from ..inference.io.imageio import atomic_target, commit_atomic, linear_to_srgb, srgb_to_linear

FORMAT = "portrait-relight-lightstage-shard"
FORMAT_VERSION = 1
PANORAMA_SIZE = (32, 64)
ENCODINGS = {"plate": "float16", "relit": "float16", "relit_olat": "float16", "alpha": "uint8-linear",
             "normal": "int8-xyz", "albedo": "uint8-srgb", "roughness": "uint8-linear", "depth": "float16"}
ROLES = ("source", "target")
MEMBER_OVERHEAD = 256  # zip local header + central directory entry (with zip64 extra) per member, generous
FLOAT16_MAX = float(np.finfo(np.float16).max)


# ------------------------------------------------------------------------------------------------ encoding
def encode_pass(name: str, pixels: np.ndarray) -> np.ndarray:
    """Float32 pass as read_case returns it -> its stored array."""
    encoding = ENCODINGS[name]
    x = np.nan_to_num(np.asarray(pixels, np.float32), nan=0.0, posinf=FLOAT16_MAX, neginf=-FLOAT16_MAX)
    if encoding == "float16":
        return np.clip(x, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)
    if encoding == "uint8-linear":
        return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    if encoding == "uint8-srgb":
        return np.round(np.clip(linear_to_srgb(x), 0.0, 1.0) * 255.0).astype(np.uint8)
    if encoding == "int8-xyz":
        return np.round(np.clip(x, -1.0, 1.0) * 127.0).astype(np.int8)
    raise ValueError(f"unknown encoding {encoding}")


def decode_pass(name: str, stored: np.ndarray) -> np.ndarray:
    """Stored array -> float32 pass (normals unit length where non-zero)."""
    encoding = ENCODINGS[name]
    if encoding == "float16":
        return stored.astype(np.float32)
    if encoding == "uint8-linear":
        return stored.astype(np.float32) / 255.0
    if encoding == "uint8-srgb":
        return srgb_to_linear(stored.astype(np.float32) / 255.0)
    if encoding == "int8-xyz":
        n = stored.astype(np.float32) / 127.0
        length = np.linalg.norm(n, axis=-1, keepdims=True)
        return np.where(length > 0, n / np.maximum(length, 1e-12), 0.0).astype(np.float32)
    raise ValueError(f"unknown encoding {encoding}")


def downsample_panorama(pixels: np.ndarray, size: tuple[int, int] = PANORAMA_SIZE) -> np.ndarray:
    """(H, 2H, 3) equirect -> (h, w, 3) float32 area average, rows weighted by their solid angle (sin theta) so
    the panorama's total energy is kept."""
    height, width = pixels.shape[:2]
    h, w = size
    theta = (np.arange(height) + 0.5) / height * np.pi
    weights = np.sin(theta)[:, None, None]
    row_edges = np.round(np.linspace(0, height, h + 1)).astype(int)[:-1]
    col_edges = np.round(np.linspace(0, width, w + 1)).astype(int)[:-1]
    weighted = np.add.reduceat(np.add.reduceat(pixels.astype(np.float64) * weights, row_edges, axis=0),
                               col_edges, axis=1)
    norm = np.add.reduceat(np.broadcast_to(weights, (height, width, 1)), row_edges, axis=0)
    norm = np.add.reduceat(norm, col_edges, axis=1)
    return (weighted / norm).astype(np.float32)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _deflated_size(data: bytes) -> int:
    """Exactly what zipfile's ZIP_DEFLATED (default level) writes for this member."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return len(compressor.compress(data)) + len(compressor.flush())


# ------------------------------------------------------------------------------------------------ packing
def encode_case(passes: dict[str, np.ndarray], meta: dict) -> dict[str, np.ndarray]:
    """One case's stored arrays (pass names plus cam_to_env and strength)."""
    arrays = {name: encode_pass(name, passes[name]) for name in ENCODINGS if name in passes}
    arrays["cam_to_env"] = np.array([meta[role]["cam_to_env"] for role in ROLES], np.float32)
    arrays["strength"] = np.array([meta[role]["strength"] for role in ROLES], np.float32)
    return arrays


class _ShardWriter:
    def __init__(self, path: Path):
        self.path, self.temp = path, atomic_target(path)
        self.zip = zipfile.ZipFile(self.temp, "w", zipfile.ZIP_DEFLATED)
        self.cases: list[dict] = []
        self.panorama_keys: dict[str, str] = {}
        self.bytes = 0

    def add(self, members: dict[str, bytes], sizes: dict[str, int]) -> None:
        for name, data in members.items():
            self.zip.writestr(name, data)
            self.bytes += sizes[name] + MEMBER_OVERHEAD + 2 * len(name)

    def close(self) -> Path:
        index = {"format": FORMAT, "version": FORMAT_VERSION, "encodings": ENCODINGS,
                 "panorama_size": list(PANORAMA_SIZE), "cases": self.cases}
        self.zip.writestr("index.npy", _npy_bytes(np.frombuffer(json.dumps(index).encode(), np.uint8)))
        self.zip.close()
        commit_atomic(self.temp, self.path)
        return self.path

    def abort(self) -> None:
        self.zip.close()
        self.temp.unlink(missing_ok=True)


def pack_cases(case_dirs: list[Path], out_dir: Path, max_shard_bytes: float = 60e6,
               shared: Path | None = None) -> list[Path]:
    """Pack written cases (generate.write_case folders) into `out_dir/shard-NNNNN.npz`, each at most
    `max_shard_bytes`; also writes `out_dir/index.json` (shards, case ids, bytes). Returns the shard paths."""
    from . import lighting
    from .generate import default_shared, read_case

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pool = {(c, p.name): p for c, p in lighting.hdri_pool(shared or default_shared())}
    panoramas: dict[tuple[str, str], bytes] = {}
    shards: list[Path] = []
    summary: list[dict] = []
    writer: _ShardWriter | None = None
    try:
        for case_dir in map(Path, case_dirs):
            if not (case_dir / "gt.exr").is_file() or not (case_dir / "meta.json").is_file():
                raise RelightInputError(case_dir, "not a light-stage case (gt.exr and meta.json expected)")
            passes, meta = read_case(case_dir)
            members = {f"{name}.npy": _npy_bytes(a) for name, a in encode_case(passes, meta).items()}
            refs = {}
            for role in ROLES:
                ref = (meta[role]["hdri"]["collection"], meta[role]["hdri"]["name"])
                if ref not in pool:
                    raise RelightInputError(case_dir, f"{role} HDRI {ref[0]}/{ref[1]} is not in the HDRI pool")
                if ref not in panoramas:
                    panoramas[ref] = _npy_bytes(downsample_panorama(lighting.load_hdri(pool[ref])))
                refs[role] = ref
            sizes = {name: _deflated_size(data) for name, data in members.items()}
            case_bytes = sum(sizes.values()) + len(members) * MEMBER_OVERHEAD + len(json.dumps(meta))
            for _ in range(2):  # the current shard, or else a fresh one
                if writer is None:
                    writer = _ShardWriter(out_dir / f"shard-{len(shards):05d}.npz")
                new_panoramas = {ref: panoramas[ref] for ref in dict.fromkeys(refs.values())
                                 if "/".join(ref) not in writer.panorama_keys}
                extra = sum(_deflated_size(d) + MEMBER_OVERHEAD for d in new_panoramas.values())
                if writer.bytes + case_bytes + extra <= max_shard_bytes or not writer.cases:
                    break
                shards.append(writer.close())
                summary.append({"shard": shards[-1].name, "cases": [c["id"] for c in writer.cases]})
                writer = None
            if writer.bytes + case_bytes + extra > max_shard_bytes:
                raise RelightInputError(case_dir, f"case needs {(case_bytes + extra) / 1e6:.1f} MB, more than "
                                                  f"the shard limit of {max_shard_bytes / 1e6:.1f} MB")
            for ref, data in new_panoramas.items():
                key = f"panoramas/{len(writer.panorama_keys):03d}"
                writer.panorama_keys["/".join(ref)] = key
                writer.add({f"{key}.npy": data}, {f"{key}.npy": _deflated_size(data)})
            prefix = f"cases/{len(writer.cases):05d}/"
            writer.add({prefix + k: v for k, v in members.items()}, {prefix + k: s for k, s in sizes.items()})
            writer.bytes += len(json.dumps(meta))
            writer.cases.append({"id": case_dir.name, "meta": meta,
                                 "panoramas": {role: writer.panorama_keys["/".join(refs[role])]
                                               for role in ROLES}})
        if writer is not None:
            shards.append(writer.close())
            summary.append({"shard": shards[-1].name, "cases": [c["id"] for c in writer.cases]})
            writer = None
    finally:
        if writer is not None:
            writer.abort()
    for entry in summary:
        entry["bytes"] = (out_dir / entry["shard"]).stat().st_size
    index_path = out_dir / "index.json"
    temp = atomic_target(index_path)
    temp.write_text(json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "shards": summary}, indent=1))
    commit_atomic(temp, index_path)
    return shards


# ------------------------------------------------------------------------------------------------ reading
def shard_index(npz: np.lib.npyio.NpzFile, path: Path) -> dict:
    if "index" not in npz.files:
        raise RelightInputError(path, "not a light-stage training shard (no index member)")
    index = json.loads(npz["index"].tobytes().decode())
    if index.get("format") != FORMAT or index.get("version") != FORMAT_VERSION:
        raise RelightInputError(path, f"shard format {index.get('format')} v{index.get('version')}, "
                                      f"expected {FORMAT} v{FORMAT_VERSION}")
    return index


def iter_shard(path: str | os.PathLike, decode: bool = True) -> Iterator[dict]:
    """Cases of a shard in order: {"id", "meta", pass arrays, "cam_to_env" (2,3,3), "strength" (2,),
    "source_panorama"/"target_panorama" (h, 2h, 3) float32 radiance (strength applied)}. decode=False leaves
    the passes as stored (uint8/int8/float16), e.g. to move fewer bytes to the GPU and decode there."""
    path = Path(path)
    if not path.is_file():
        raise RelightInputError(path, "shard does not exist")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise RelightInputError(path, f"cannot read shard ({exc})") from exc
    with npz:
        index = shard_index(npz, path)
        for i, entry in enumerate(index["cases"]):
            prefix = f"cases/{i:05d}/"
            case: dict = {"id": entry["id"], "meta": entry["meta"]}
            for name in ENCODINGS:
                if prefix + name in npz.files:
                    stored = npz[prefix + name]
                    case[name] = decode_pass(name, stored) if decode else stored
            case["cam_to_env"] = npz[prefix + "cam_to_env"]
            case["strength"] = npz[prefix + "strength"]
            for r, role in enumerate(ROLES):
                case[f"{role}_panorama"] = npz[entry["panoramas"][role]] * case["strength"][r]
            yield case


def load_shard(path: str | os.PathLike, decode: bool = True) -> list[dict]:
    return list(iter_shard(path, decode))
