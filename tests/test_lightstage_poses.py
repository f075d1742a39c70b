"""Training poses and derived samples: a tiny pose (48^2, 12 OLAT suns, few samples) is written and read back,
its OLAT basis weighted by its own HDRI agrees with its direct render, only training seeds render, missing poses
alone are rendered, and derived samples are reproducible, distinct and carry the ground truth unchanged."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bpy")

from portrait_relight.lightstage import derive, lighting, poses  # noqa: E402

SIZE, SAMPLES, OLAT = 48, 16, 12
SEED = poses.FIRST_SEED + 3


@pytest.fixture(scope="module")
def pose(shared_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("poses")
    renderer = poses.PoseRenderer(SIZE, SAMPLES, OLAT, shared=shared_dir)
    [path] = poses.render_poses([SEED], root, lambda: renderer, log=lambda line: None)
    return root, path, poses.read_pose(path)


@pytest.fixture(scope="module")
def pool(shared_dir):
    return derive.HdriPool.from_shared(shared_dir)


def test_pose_file_holds_the_basis_and_ground_truth(pose):
    _, path, data = pose
    assert path.name == f"makehuman_{SEED:06d}.npz" and path.parent.name == "train"
    assert data["olat"].shape == (OLAT, SIZE, SIZE, 3) and data["direct"].shape == (SIZE, SIZE, 3)
    alpha = data["alpha"]
    assert 0.1 < (alpha > 0.5).mean() < 0.9
    inside = alpha > 0
    lengths = np.linalg.norm(data["normal"], axis=-1)
    assert np.allclose(lengths[inside & (lengths > 0)], 1.0, atol=1e-3) and np.all(lengths[~inside] == 0)
    assert np.all(data["olat"][:, ~inside] == 0) and np.all(data["direct"][~inside] == 0)  # premultiplied
    meta = data["meta"]
    assert meta["seed"] == SEED and meta["split"] == "train" and meta["poses_version"] == poses.POSES_VERSION
    assert len(meta["olat"]["directions_world"]) == OLAT


def test_olat_basis_under_the_direct_light_matches_the_direct_render(pose, pool):
    """sum_i w_i OLAT_i with the weights of the pose's own HDRI is the same light as the direct Cycles render:
    equal up to the suns' softer shadows and render noise, on average over the subject."""
    _, _, data = pose
    source = data["meta"]["source"]
    weights = lighting.olat_weights(pool.path(source["hdri"]), source["rotation_z_deg"], source["strength"],
                                    np.asarray(data["meta"]["olat"]["directions_world"]))
    summed = np.einsum("nhwc,nc->hwc", data["olat"], weights)
    core = data["alpha"] > 0.99
    ratio = summed[core].mean(axis=0) / data["direct"][core].mean(axis=0)
    assert np.all(np.abs(ratio - 1.0) < 0.2), ratio


def test_only_training_seeds_render_and_present_poses_are_kept(pose, tmp_path):
    root, path, _ = pose
    for seed in (2000, 1003, poses.FIRST_SEED - 1):  # evaluation seeds and anything below the training range
        with pytest.raises(ValueError, match="not a training pose seed"):
            poses.check_training_seed(seed)
    assert poses.split_of(poses.FIRST_SEED + 10) == "val" and poses.split_of(poses.FIRST_SEED + 11) == "train"
    mtime = path.stat().st_mtime_ns

    def no_renderer():
        raise AssertionError("a present pose was rendered again")

    assert poses.render_poses([SEED], root, no_renderer) == [path] and path.stat().st_mtime_ns == mtime


def test_derived_samples_are_reproducible_and_distinct(pose, pool):
    _, _, data = pose
    first, again = derive.derive_sample(data, 7, pool), derive.derive_sample(data, 7, pool)
    np.testing.assert_array_equal(first["plate"], again["plate"])
    assert first["info"] == again["info"]
    others = [derive.derive_sample(data, seed, pool) for seed in range(8)]
    plates = [s["plate"] for s in others]
    assert all(not np.array_equal(plates[0], p) for p in plates[1:])
    assert {s["info"]["light"]["kind"] for s in others} <= {"olat", "direct"}
    for sample in others:
        assert sample["plate"].shape == (SIZE, SIZE, 3) and sample["plate"].dtype == np.float32
        assert np.isfinite(sample["plate"]).all() and 0.0 <= sample["plate"].min() and sample["plate"].max() <= 1.0
        for name in ("alpha", "normal", "albedo", "roughness", "depth"):
            np.testing.assert_array_equal(sample[name], data[name])


def test_photograph_keeps_a_grey_card_grey_without_its_effects(monkeypatch):
    """With exposure, white balance, blur, noise and JPEG drawn as 'none', a photo of a linear grey ramp decodes
    back to the ramp within 8-bit sRGB quantisation: the encoding round trip is the product's own."""
    class Still:
        def normal(self, loc, scale, size=None):
            return np.zeros(size) if size is not None else 0.0

        def random(self):
            return 1.0  # no blur, sRGB rather than filmic, no JPEG

        def uniform(self, low, high):
            return 0.0

    ramp = np.repeat(np.linspace(0.0, 1.0, 64, dtype=np.float32)[None, :, None], 3, axis=2)
    photo, info = derive._photograph(ramp, Still())
    assert info["encoding"] == "srgb" and "jpeg_quality" not in info and "blur_px" not in info
    np.testing.assert_allclose(photo, ramp, atol=0.01)


def test_auto_white_balance_takes_the_light_colour_out_of_the_photo():
    """A grey scene under blue light photographed with full-strength auto white balance comes out grey; without
    it (the rest of the photo drawn as 'none' by the same fixed draws) it stays blue."""
    class Draws:
        def __init__(self, balance: bool):
            self.balance = balance

        def normal(self, loc, scale, size=None):
            return np.zeros(size) if size is not None else 0.0

        def random(self):
            value, self.balance = (0.0 if self.balance else 1.0), False  # only the first draw is the AWB's
            return value

        def uniform(self, low, high):
            return high  # full strength

    blue_light = np.broadcast_to(np.array([0.10, 0.14, 0.25], np.float32), (32, 32, 3)).copy()
    balanced, info = derive._photograph(blue_light, Draws(True))
    plain, _ = derive._photograph(blue_light, Draws(False))
    assert info["auto_white_balance"] == 1.0
    assert np.ptp(balanced.mean(axis=(0, 1))) < 0.01 * balanced.mean()
    assert plain.mean(axis=(0, 1))[2] > 2 * plain.mean(axis=(0, 1))[0]

