"""The training harness, the geometry net and the albedo net on a 64^2 fixture: synthetic poses (lit ellipsoids
with exact normals and an exact OLAT basis, so no render is needed) go through the real derivation, crop and
loss. A short run lowers the validation loss, a resumed run continues from its checkpoint, and the exported ONNX
model agrees with torch."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # training/ only; `make test` installs it (requirements-train.txt)

from portrait_relight.inference.settings import RelightSettings  # noqa: E402
from portrait_relight.inference.stages import albedo_net, normals_net  # noqa: E402
from portrait_relight.lightstage import derive, lighting  # noqa: E402
from portrait_relight.training import albedo, geometry, pose_task, shading  # noqa: E402
from portrait_relight.training.harness import RunConfig, export_onnx, train  # noqa: E402
from portrait_relight.training.nets import UNet  # noqa: E402
from portrait_relight.training.warm_start import state_from_onnx  # noqa: E402

SIZE = 64
OLAT = 16


def synthetic_pose(seed: int, pool: derive.HdriPool, occlusion: float = 0.0) -> dict:
    """An ellipsoid 'subject' seen from the front: analytic normals, a Lambertian OLAT basis for OLAT suns, its
    direct render lit by the first pool HDRI. Shaped like read_pose's dict. With `occlusion`, its lower third
    receives that much less of every light (what a chin's shadow or a collar does, and light maps do not know)."""
    rng = np.random.default_rng(seed)
    y, x = (np.mgrid[0:SIZE, 0:SIZE] + 0.5) / SIZE * 2.0 - 1.0
    cx, cy, rx, ry = rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), rng.uniform(0.35, 0.6), rng.uniform(0.45, 0.7)
    u, v = (x - cx) / rx, -(y - cy) / ry
    inside = u * u + v * v < 1.0
    w = np.sqrt(np.clip(1.0 - u * u - v * v, 0.0, 1.0))
    normal = np.stack([u / rx, v / ry, w / min(rx, ry)], axis=-1)
    normal = np.where(inside[..., None], normal / np.linalg.norm(normal, axis=-1, keepdims=True), 0.0)
    alpha = inside.astype(np.float32)
    albedo = np.broadcast_to(rng.uniform(0.2, 0.8, 3), (SIZE, SIZE, 3)) * alpha[..., None]
    directions = lighting.fibonacci_sphere(OLAT)
    r_cam = np.eye(3)  # camera frame = world frame: a world direction is a camera direction
    olat = np.stack([albedo * np.clip(normal @ d, 0.0, None)[..., None] / math.pi for d in directions])
    olat *= 1.0 - occlusion * (v < -0.33)[..., None]
    collection, path = pool.entries[0]
    source = {"hdri": {"collection": collection, "name": path.name}, "rotation_z_deg": 0.0, "strength": 1.0,
              "cam_to_env": np.eye(3).tolist()}
    weights = lighting.panorama_olat_weights(pool.panorama(path), 0.0, 1.0, directions)
    meta = {"seed": seed, "camera": {"fov_deg": 30.0, "R_cam": r_cam.tolist()}, "source": source,
            "olat": {"count": OLAT, "directions_world": directions.tolist()}}
    return {"alpha": alpha, "normal": normal.astype(np.float32), "albedo": albedo.astype(np.float32),
            "roughness": alpha * 0.5, "depth": alpha, "olat": olat.astype(np.float32),
            "direct": np.einsum("nhwc,nc->hwc", olat, weights).astype(np.float32), "meta": meta}


def fixture(shared_dir, folder, occlusion: float = 0.0) -> tuple[derive.HdriPool, dict]:
    pool = derive.HdriPool.from_shared(shared_dir, height=64)
    return pool, {folder / f"pose_{seed}.npz": synthetic_pose(seed, pool, occlusion) for seed in range(12)}


@pytest.fixture(scope="module")
def fixture_poses(shared_dir, tmp_path_factory):
    return fixture(shared_dir, tmp_path_factory.mktemp("synthetic_poses"))


@pytest.fixture(scope="module")
def occluded_poses(shared_dir, tmp_path_factory):
    """For the shading net: light maps alone miss the occlusion, so a short run has something to learn."""
    return fixture(shared_dir, tmp_path_factory.mktemp("occluded_poses"), occlusion=0.8)


def make_task(task_class, fixture_poses):
    pool, poses = fixture_poses
    names = sorted(poses)
    return task_class(names[:9], names[9:], pool, size=SIZE, loader=poses.__getitem__)


@pytest.fixture(scope="module")
def task(fixture_poses):
    return make_task(geometry.GeometryTask, fixture_poses)


@pytest.fixture(scope="module", params=[geometry.GeometryTask, albedo.AlbedoTask, shading.ShadingTask],
                ids=["geometry", "albedo", "shading"])
def any_task(request, fixture_poses, occluded_poses):
    return make_task(request.param, occluded_poses if request.param is shading.ShadingTask else fixture_poses)


def test_prepared_sample_follows_the_contract(task):
    pose = task.load(task.train_poses[0])
    x, target, mask = geometry.prepare(derive.derive_sample(pose, 3, task.pool), SIZE)
    assert x.shape == (4, SIZE, SIZE) and target.shape == (3, SIZE, SIZE) and mask.shape == (1, SIZE, SIZE)
    assert 0.0 <= x.min() and x.max() <= 1.0  # sRGB-encoded plate and the matte
    lengths = np.linalg.norm(target, axis=0)[mask[0] > 0]
    assert mask.mean() > 0.2 and np.allclose(lengths, 1.0, atol=1e-4)
    assert (target[2][mask[0] > 0] > 0).mean() > 0.95  # +Z toward the camera
    mirrored = geometry.prepare(derive.derive_sample(pose, 3, task.pool), SIZE, np.random.default_rng(1))
    assert mirrored[0].shape == x.shape


def test_albedo_sample_follows_the_contract(fixture_poses):
    """The albedo net's target is the log shading that turns the true albedo into the plate; its normals input is
    unit length and faces the camera."""
    task = make_task(albedo.AlbedoTask, fixture_poses)
    sample = derive.derive_sample(task.load(task.train_poses[0]), 3, task.pool)
    x, target, mask = albedo.prepare(sample, SIZE)
    assert x.shape == (7, SIZE, SIZE) and target.shape == (3, SIZE, SIZE) and mask.shape == (1, SIZE, SIZE)
    crop = normals_net.subject_crop(sample["alpha"])
    plate, true_albedo = crop.take(sample["plate"], SIZE), crop.take(sample["albedo"], SIZE)
    inside = mask[0] > 0
    assert inside.mean() > 0.2
    rebuilt = (true_albedo + albedo_net.LOG_EPS) * np.exp(target.transpose(1, 2, 0)) - albedo_net.LOG_EPS
    np.testing.assert_allclose(rebuilt[inside], plate[inside], atol=1e-4)
    normals = x[4:].transpose(1, 2, 0)[inside]
    assert np.allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-3) and (normals[:, 2] > 0).mean() > 0.95


def test_albedo_loss_ignores_one_exposure_per_sample_but_not_the_light_colour(fixture_poses):
    task = make_task(albedo.AlbedoTask, fixture_poses)
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 8, 8, generator=gen)
    output = target + 0.01 * torch.rand(2, 3, 8, 8, generator=gen)
    mask = (torch.rand(2, 1, 8, 8, generator=gen) > 0.3).float()
    base = float(task.loss(output, target, mask))
    exposure = torch.tensor([0.7, -1.3]).view(2, 1, 1, 1)  # a different global offset for each sample
    assert float(task.loss(output + exposure, target, mask)) == pytest.approx(base, abs=1e-5)
    tint = torch.tensor([0.3, 0.0, -0.3]).view(1, 3, 1, 1)  # a colour cast left in the albedo costs
    assert float(task.loss(output + tint, target, mask)) > base + 0.15  # ~0.2: two channels 0.3 off
    assert task.metric(output, target, mask) == pytest.approx(base / math.log(2.0))


@pytest.mark.parametrize("task_class", [geometry.GeometryTask, albedo.AlbedoTask], ids=["geometry", "albedo"])
def test_training_batches_come_in_twins_held_to_agree(fixture_poses, task_class):
    """With a consistency weight, training batches pair each sample with a twin (fresh noise, moved by at most a
    pixel, the same augmentation), and the training loss charges any difference between the twins' outputs."""
    task = make_task(task_class, fixture_poses)
    task.consistency_weight = 1.0  # whatever the task's training default, the twins' machinery is under test
    x, target, mask = next(task.train_batches(np.random.default_rng(0), 4))
    assert x.shape[0] == 4
    for first, second in ((0, 1), (2, 3)):
        plate_difference = (x[first, :3] - x[second, :3]).abs()
        assert 0.0 < plate_difference.mean() < 0.05  # another frame of the same shot, not another sample
        assert (mask[first] != mask[second]).float().mean() < 0.1
    output = torch.randn_like(target)
    agreeing = output.clone()
    agreeing[1::2] = agreeing[0::2]
    assert torch.isclose(task.training_loss(agreeing, target, mask), task.loss(agreeing, target, mask))
    assert task.training_loss(output, target, mask) > task.loss(output, target, mask) + 0.1


def test_shading_pair_renders_its_target_from_the_light_maps(fixture_poses):
    """A relighting pair of a Lambertian fixture (its OLAT basis is exact): the pass contract rendered with the
    net's neutral diffuse (ratio 1) and no specular, from the light maps the product computes for the target's
    light, must give the target (up to the OLAT basis' coarse sampling of the HDRI), and the input must follow
    the contract: unit normals, maps finite."""
    task = make_task(shading.ShadingTask, fixture_poses)
    errors = []
    for seed in range(6):
        pair = task.derive(task.load(task.train_poses[seed % 3]), seed)
        x, target, mask = task.prepare(pair, SIZE)
        assert x.shape == (25, SIZE, SIZE) and target.shape == (21, SIZE, SIZE) and np.isfinite(x).all()
        inside = mask[0] > 0
        assert np.allclose(np.linalg.norm(x[4:7][:, inside], axis=0), 1.0, atol=1e-4)
        neutral = torch.zeros(1, 7, SIZE, SIZE)
        neutral[:, 3:] = -30.0  # no specular
        relit = shading.render_relit(neutral, torch.from_numpy(target[None]))[0].numpy()
        ratio = target[:3][:, inside] / np.maximum(relit[:, inside], 1e-6)
        errors.append(float(np.median(np.abs(np.log(ratio)))))
        if pair["target_info"]["kind"] == "olat":  # a second light, not the plate's: the pair is a relighting
            assert pair["target_info"] != pair["info"]["light"]
    # measured 0.06-0.17 (16 suns sample the HDRI coarsely); the target light turned 180 degrees gives 0.17-1.7
    assert np.mean(errors) < 0.15 and max(errors) < 0.2, errors


def test_learned_albedo_is_the_product_stage_at_the_true_exposure(fixture_poses):
    """The albedo fed to half the shading pairs: the product's albedo-net stage on the plate, times the one factor
    that best fits the true albedo (any other factor fits worse)."""
    task = make_task(shading.ShadingTask, fixture_poses)
    pair = task.derive(task.load(task.train_poses[0]), 5)
    fed = shading.learned_albedo(pair, pair["normal"])
    product = albedo_net.estimate_albedo_learned(pair["plate"], pair["alpha"], pair["normal"],
                                                 np.zeros_like(pair["alpha"]), RelightSettings())
    inside = pair["alpha"] > 0.5
    assert inside.any() and (product[inside] > 0).any()
    factors = fed[inside][product[inside] > 1e-3] / product[inside][product[inside] > 1e-3]
    assert np.ptp(factors) < 1e-4 * factors.mean()

    def misfit(gain: float) -> float:
        return float(((gain * fed[inside] - pair["albedo"][inside]) ** 2).sum())

    assert misfit(1.0) < misfit(1.05) and misfit(1.0) < misfit(0.95)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_shading_pairs_render_with_the_albedo_they_were_fed(fixture_poses, monkeypatch, share):
    """With LEARNED_ALBEDO_SHARE 1, every training pair's input and loss use learned_albedo; with 0, none does."""
    task = make_task(shading.ShadingTask, fixture_poses)
    calls = []

    def stand_in(sample, normals):
        calls.append(normals.shape)
        return np.full_like(sample["albedo"], 0.3)

    monkeypatch.setattr(shading, "LEARNED_ALBEDO_SHARE", share)
    monkeypatch.setattr(shading, "learned_albedo", stand_in)
    pair = task.derive(task.load(task.train_poses[1]), 2)
    _, target, mask = task.prepare(pair, SIZE, np.random.default_rng(0))
    inside = mask[0] > 0
    assert len(calls) == int(share) and inside.any()
    fed_is_stand_in = np.allclose(target[3:6][:, inside], 0.3, atol=1e-4)
    assert fed_is_stand_in == bool(share)


@pytest.mark.parametrize("share", [0.0, 1.0])
@pytest.mark.parametrize("task_class", [albedo.AlbedoTask, shading.ShadingTask], ids=["albedo", "shading"])
def test_training_samples_carry_the_normals_they_were_fed(fixture_poses, monkeypatch, task_class, share):
    """With LEARNED_NORMALS_SHARE 1, every training sample's input normals (and a shading pair's light maps) come
    from learned_normals; with 0, none do. A stand-in facing the camera: its diffuse map is one colour over the
    crop."""
    task = make_task(task_class, fixture_poses)
    calls = []

    def stand_in(sample):
        calls.append(sample["plate"].shape)
        return np.where(sample["alpha"][..., None] > 0.0, np.float32([0.0, 0.0, 1.0]), 0.0).astype(np.float32)

    monkeypatch.setattr(pose_task, "LEARNED_NORMALS_SHARE", share)
    monkeypatch.setattr(pose_task, "learned_normals", stand_in)
    monkeypatch.setattr(shading, "LEARNED_ALBEDO_SHARE", 0.0)
    sample = task.derive(task.load(task.train_poses[1]), 2)
    x, target, mask = task.prepare(sample, SIZE, np.random.default_rng(0))
    inside = mask[0] > 0
    assert len(calls) == int(share) and inside.any()
    facing = np.allclose(np.abs(x[4:7][:, inside]), [[0.0], [0.0], [1.0]], atol=1e-4)  # a mirror flips X only
    assert facing == bool(share)
    if task_class is shading.ShadingTask:
        flat_light = np.ptp(target[6:9][:, inside], axis=1).max() < 1e-4 * target[6:9][:, inside].max()
        assert flat_light == bool(share)


def test_mirrored_samples_flip_the_normals_x_with_the_image():
    from portrait_relight.training.pose_task import mirrored

    rng = np.random.default_rng(0)
    x, target, mask = rng.random((7, 5, 6)), rng.random((3, 5, 6)), rng.random((1, 5, 6))
    fx, ft, fm = mirrored((x, target, mask), {0: (4,)})  # the albedo net's input channel 4 is the normals' X
    assert np.array_equal(fx[4], -x[4][:, ::-1]) and np.array_equal(fx[5], x[5][:, ::-1])
    assert np.array_equal(ft, target[:, :, ::-1]) and np.array_equal(fm, mask[:, :, ::-1])


def test_short_run_lowers_the_loss_and_resumes(any_task, tmp_path):
    task = any_task
    config = RunConfig(batch_size=4, learning_rate=2e-3, validate_every=10)
    model, history = train(task, tmp_path / "run", config, steps=10, log=lambda line: None)
    first = history.val_loss[0]
    model, history = train(task, tmp_path / "run", config, steps=60, log=lambda line: None)  # resumes at 10
    assert history.steps == [10, 20, 30, 40, 50, 60]
    # the shading fixture keeps a floor of ~0.14 (its 16-sun basis against the HDRI's light maps; see
    # test_shading_pair_renders_its_target_from_the_light_maps) under a start of ~0.26
    assert history.val_loss[-1] < (0.8 if task.name == "shading" else 0.7) * first, history.val_loss
    assert history.val_metric[-1] < history.val_metric[0]
    saved = json.loads((tmp_path / "run" / "history.json").read_text())
    assert saved["steps"] == history.steps and (tmp_path / "run" / "curves.png").stat().st_size > 0


def test_onnx_export_matches_torch_at_another_size(any_task, tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    model = any_task.make_model()
    path = export_onnx(model, tmp_path / f"{any_task.name}.onnx", any_task.in_channels, {"net": any_task.name})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, any_task.in_channels, 96, 80), dtype=np.float32)  # not square
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    (got,) = session.run(None, {"input": x})
    assert got.shape == expected.shape == (1, any_task.out_channels, 96, 80)
    assert np.abs(got - expected).max() <= 1e-3 * max(1.0, float(np.abs(expected).max()))
    if any_task.name == "geometry":
        normals = normals_net.unit_normals(got)
        assert np.allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-5)


def test_a_run_starts_from_exported_weights(task, tmp_path):
    """Warm start (training/warm_start.py): an exported net's weights come back into torch exactly, GroupNorm's
    included (the exporter renames them), a new run begins from them, and another net's file is refused."""
    torch.manual_seed(1)
    source = task.make_model()
    with torch.no_grad():
        for parameter in source.parameters():  # GroupNorm's scales and offsets away from their initial 1 and 0
            parameter.add_(0.1 * torch.randn_like(parameter))
    path = export_onnx(source, tmp_path / "geometry.onnx", task.in_channels, {"net": "geometry"})
    model, history = train(task, tmp_path / "run", RunConfig(batch_size=4), steps=0, log=lambda line: None,
                           init=path)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert history.initialised_from.startswith("geometry.onnx sha256 ")
    with pytest.raises(ValueError, match="right shape"):
        state_from_onnx(path, UNet(albedo.AlbedoTask.in_channels, albedo.AlbedoTask.out_channels))


def test_a_net_gaining_global_context_starts_as_the_file_it_warm_starts_from(tmp_path):
    """The albedo net's global context (nets.UNet) is new to weights exported before it: such a file still warm-
    starts it, the context starts at zero and the net computes what the file does (ONNX of the file against torch);
    the context's own weights, once trained, change the output and come back from an export of their own."""
    import onnxruntime as ort

    torch.manual_seed(2)
    channels = (albedo.AlbedoTask.in_channels, albedo.AlbedoTask.out_channels)
    older = UNet(*channels)
    with torch.no_grad():
        for parameter in older.parameters():  # GroupNorm's away from 1 and 0, which the exporter folds away
            parameter.add_(0.1 * torch.randn_like(parameter))
    path = export_onnx(older, tmp_path / "older.onnx", albedo.AlbedoTask.in_channels, {"net": "albedo"})
    model = UNet(*channels, global_context=True)
    model.load_state_dict(state_from_onnx(path, model))
    assert not model.context.weight.any() and not model.context.bias.any()
    x = np.random.default_rng(2).random((1, albedo.AlbedoTask.in_channels, 64, 64), dtype=np.float32)
    (expected,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    with torch.no_grad():
        assert np.abs(model(torch.from_numpy(x)).numpy() - expected).max() < 1e-4
        model.context.bias.add_(1.0)
        trained = model(torch.from_numpy(x)).numpy()
    assert np.abs(trained - expected).max() > 1e-2
    again = UNet(*channels, global_context=True)
    again.load_state_dict(state_from_onnx(export_onnx(model, tmp_path / "newer.onnx", albedo.AlbedoTask.in_channels,
                                                      {"net": "albedo"}), again))
    assert torch.equal(again.context.bias, model.context.bias)


def test_subject_crop_round_trip():
    alpha = np.zeros((90, 120), np.float32)
    alpha[20:70, 30:60] = 1.0
    crop = normals_net.subject_crop(alpha)
    assert crop.side >= 50 and crop.top <= 20 and crop.left <= 30 and crop.top + crop.side >= 70
    rows, cols = np.nonzero(np.ones_like(alpha))
    back = normals_net.guided_values(crop.take(alpha, 64)[..., None], crop.window(alpha), crop, rows, cols)
    back = back.reshape(alpha.shape)  # guided by alpha itself: its edges come back sharp
    assert np.abs(back - alpha)[alpha > 0].mean() < 0.05 and np.abs(back[alpha == 0]).mean() < 0.02
    edge = normals_net.SubjectCrop(-10, -10, 40)  # reaches beyond the plate: zeros there, no wrap-around
    taken = edge.take(np.ones((30, 30), np.float32), 40)
    assert taken[:8, :8].max() == 0.0 and taken[15:35, 15:35].min() == 1.0
