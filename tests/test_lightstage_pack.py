"""Training shards (lightstage/training_format.py): a tiny rendered case survives packing within the stated
quantisation bounds, shards respect the size limit, the panoramas keep the HDRI's light, bad input is rejected."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

pytest.importorskip("bpy")

from package_loader import ROOT  # noqa: E402

from portrait_relight.inference.errors import RelightInputError  # noqa: E402
from portrait_relight.inference.io.imageio import linear_to_srgb  # noqa: E402
from portrait_relight.lightstage import lighting  # noqa: E402
from portrait_relight.lightstage import training_format as tf  # noqa: E402
from portrait_relight.lightstage.generate import Generator, hdri_path, read_case, write_case  # noqa: E402

SIZE, SAMPLES, OLAT, SEED = 64, 4, 4, 11


@pytest.fixture(scope="module")
def cases(shared_dir, tmp_path_factory):
    """Two case folders: one tiny rendered case and a copy of it under another name."""
    root = tmp_path_factory.mktemp("cases")
    generator = Generator("makehuman", SIZE, SAMPLES, olat=OLAT, shared=shared_dir)
    first = write_case(root / "makehuman_000011", *generator.render_case(SEED))
    second = root / "makehuman_000012"
    shutil.copytree(first, second)
    return [first, second]


@pytest.fixture(scope="module")
def packed(cases, shared_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    return out, tf.pack_cases(cases, out, shared=shared_dir)


def test_round_trip_is_within_the_quantisation_bounds(cases, packed):
    _, shards = packed
    assert len(shards) == 1
    loaded = tf.load_shard(shards[0])
    assert [c["id"] for c in loaded] == [p.name for p in cases]
    passes, meta = read_case(cases[0])
    case = loaded[0]
    assert case["meta"] == meta
    for name, pixels in passes.items():
        assert case[name].shape == pixels.shape and case[name].dtype == np.float32, name
    alpha = passes["alpha"]
    assert np.abs(case["alpha"] - alpha).max() <= 0.5 / 255 + 1e-6
    inside = np.linalg.norm(passes["normal"], axis=-1) > 0
    assert inside.sum() > 100
    cos = (case["normal"][inside] * passes["normal"][inside]).sum(-1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 1.0
    assert np.all(case["normal"][~inside] == 0)
    for name in ("plate", "relit", "relit_olat", "depth"):  # float16: relative error within half an ulp
        big = np.abs(passes[name]) > 1e-3
        rel = np.abs(case[name] - passes[name])[big] / np.abs(passes[name][big])
        assert rel.max() < 1e-3, name
    srgb_error = np.abs(linear_to_srgb(case["albedo"]) - linear_to_srgb(np.clip(passes["albedo"], 0, 1)))
    assert srgb_error.max() <= 0.5 / 255 + 1e-5
    assert np.abs(case["roughness"] - np.clip(passes["roughness"], 0, 1)).max() <= 0.5 / 255 + 1e-6
    for r, role in enumerate(tf.ROLES):
        assert np.allclose(case["cam_to_env"][r], meta[role]["cam_to_env"], atol=1e-6)
        assert case["strength"][r] == pytest.approx(meta[role]["strength"], rel=1e-6)
    raw = next(tf.iter_shard(shards[0], decode=False))
    assert raw["alpha"].dtype == np.uint8 and raw["normal"].dtype == np.int8 and raw["plate"].dtype == np.float16


def test_panoramas_keep_the_hdris_light(cases, packed, shared_dir):
    _, shards = packed
    case = tf.load_shard(shards[0])[0]
    for role in tf.ROLES:
        ref = case["meta"][role]["hdri"]
        full = lighting.load_hdri(hdri_path(ref, shared_dir)) * case["meta"][role]["strength"]
        small = case[f"{role}_panorama"]
        assert small.shape == tf.PANORAMA_SIZE + (3,)
        # solid-angle-weighted light per quadrant (upper/lower x left/right half) agrees: energy is kept and
        # nothing is flipped or shifted
        def quadrants(p):
            weighted = p * lighting.solid_angles(*p.shape[:2])[..., None]
            h, w = p.shape[:2]
            return np.array([weighted[r * h // 2:(r + 1) * h // 2, c * w // 2:(c + 1) * w // 2].sum((0, 1))
                             for r in range(2) for c in range(2)])

        assert np.allclose(quadrants(small), quadrants(full), rtol=0.02), role


def test_shards_respect_the_size_limit(cases, shared_dir, tmp_path):
    out = tmp_path / "small"
    one_case = sum(i.compress_size for i in zipfile.ZipFile(tf.pack_cases(cases[:1], tmp_path / "one",
                                                                         shared=shared_dir)[0]).infolist())
    limit = 1.3 * one_case  # room for one case, not two
    shards = tf.pack_cases(cases, out, max_shard_bytes=limit, shared=shared_dir)
    assert len(shards) == 2
    assert all(p.stat().st_size <= limit for p in shards)
    index = json.loads((out / "index.json").read_text())
    assert [s["cases"] for s in index["shards"]] == [[cases[0].name], [cases[1].name]]
    with pytest.raises(RelightInputError, match="shard limit"):
        tf.pack_cases(cases[:1], tmp_path / "tiny", max_shard_bytes=0.3 * one_case, shared=shared_dir)


def test_bad_input_is_rejected(tmp_path, shared_dir, packed):
    not_a_case = tmp_path / "empty"
    not_a_case.mkdir()
    with pytest.raises(RelightInputError, match="not a light-stage case"):
        tf.pack_cases([not_a_case], tmp_path / "out", shared=shared_dir)
    _, shards = packed
    other = tmp_path / "other.npz"
    np.savez(other, index=np.frombuffer(json.dumps({"format": tf.FORMAT, "version": 99}).encode(), np.uint8))
    with pytest.raises(RelightInputError, match="v99"):
        tf.load_shard(other)
    with pytest.raises(RelightInputError, match="does not exist"):
        tf.load_shard(tmp_path / "missing.npz")


def test_cli_packs_a_folder(cases, tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "lightstage_pack.py"), "--cases",
                             str(cases[0].parent), "--out", str(out), "--max-shard-mb", "60"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "2 cases -> 1 shards" in result.stdout
    assert len(tf.load_shard(out / "shard-00000.npz")) == 2
