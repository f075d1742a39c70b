"""Evaluation: metric functions against hand-computed values, and the evaluation command end to end on a
synthetic light stage case written in the exact gt.exr / meta.json format (no Blender render needed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import skimage.data

from portrait_relight.evaluation import metrics
from portrait_relight.evaluation.cases import find_cases, read_case
from portrait_relight.evaluation.report import CONTACT_COLUMNS, format_table, json_safe, mean_rows
from portrait_relight.evaluation.rows import ROW_NAMES, case_settings
from portrait_relight.evaluation.run import evaluate_case, main
from portrait_relight.inference.io.imageio import read_hdri, srgb_to_linear
from portrait_relight.inference.lighting.camera import camera_rays
from portrait_relight.inference.lighting.environment import CAMERA_TO_CENTRED_PANORAMA, Environment, rotation_z
from portrait_relight.inference.resample import resize
from portrait_relight.inference.settings import RelightSettings
from portrait_relight.inference.stages import geometry, lightmaps, matting


def disc(height: int, width: int, cy: int, cx: int, radius: int) -> np.ndarray:
    y, x = np.mgrid[:height, :width]
    return (((y - cy) ** 2 + (x - cx) ** 2) <= radius**2).astype(np.float32)


# ----------------------------------------------------------------------------------------------- alpha
def test_alpha_metrics_of_a_perfect_matte_are_zero():
    a = disc(64, 64, 32, 32, 20)
    assert metrics.alpha_metrics(a, a) == {"alpha_sad": 0.0, "alpha_mse": 0.0, "alpha_grad": 0.0}


def test_alpha_sad_and_mse_of_a_shifted_disc_match_the_analytic_count():
    # Every row of a digital disc is one run of pixels: a one-pixel shift changes exactly its two end pixels,
    # and a disc of integer radius R about an integer centre covers 2R + 1 rows.
    radius = 20
    gt = disc(64, 64, 32, 32, radius)
    pred = disc(64, 64, 32, 33, radius)
    changed = 2 * (2 * radius + 1)
    assert metrics.alpha_sad(pred, gt) == pytest.approx(changed / 1000.0)
    assert metrics.alpha_mse(pred, gt) == pytest.approx(changed / (64 * 64))


def test_alpha_gradient_error_of_a_step_edge():
    # A unit step filtered by a Gaussian derivative of std s has gradient magnitude = the Gaussian pdf, whose
    # squares sum (per row) to 1 / (2 sqrt(pi) s). Against an all-zero prediction: Grad = H / (2 sqrt(pi) s) / 1000.
    height, width = 40, 64
    gt = np.zeros((height, width), np.float32)
    gt[:, width // 2 :] = 1.0
    expected = height / (2.0 * math.sqrt(math.pi) * metrics.GRADIENT_SIGMA) / 1000.0
    assert metrics.GRADIENT_SIGMA == 1.4
    # 3 %: the sampled derivative-of-Gaussian kernel differs from the continuous pdf by ~2 % at s = 1.4
    # (another sigma, e.g. 1.0 or 2.0, is off by 40 % or more).
    assert metrics.alpha_gradient_error(np.zeros_like(gt), gt) == pytest.approx(expected, rel=0.03)


# ----------------------------------------------------------------------------------------------- normals
def test_normal_metrics_perfect_and_flipped_by_90_degrees():
    alpha = disc(32, 32, 16, 16, 10)
    gt = np.zeros((32, 32, 3), np.float32)
    gt[alpha > 0] = (0.0, 0.0, 1.0)
    perfect = metrics.normal_metrics(gt, gt, alpha)
    assert perfect["normal_mean_deg"] == pytest.approx(0.0, abs=1e-4)
    assert perfect["normal_under_11.25_pct"] == 100.0
    flipped = np.zeros_like(gt)
    flipped[alpha > 0] = (1.0, 0.0, 0.0)
    m = metrics.normal_metrics(flipped, gt, alpha)
    assert m["normal_mean_deg"] == pytest.approx(90.0) and m["normal_median_deg"] == pytest.approx(90.0)
    assert m["normal_under_30_pct"] == 0.0
    # a missing prediction (zero vector) counts as 90 degrees, not as NaN or 0
    assert metrics.normal_metrics(np.zeros_like(gt), gt, alpha)["normal_mean_deg"] == pytest.approx(90.0)


def test_normal_percentages_count_pixels_under_each_threshold():
    alpha = np.ones((1, 4), np.float32)
    gt = np.tile(np.array([0.0, 0.0, 1.0], np.float32), (1, 4, 1))
    angles = np.radians([5.0, 15.0, 25.0, 60.0])  # one pixel in each bucket
    pred = np.stack([np.sin(angles), np.zeros(4), np.cos(angles)], axis=-1)[None].astype(np.float32)
    m = metrics.normal_metrics(pred, gt, alpha)
    assert m["normal_mean_deg"] == pytest.approx(26.25, abs=1e-3)
    assert m["normal_median_deg"] == pytest.approx(20.0, abs=1e-3)
    assert (m["normal_under_11.25_pct"], m["normal_under_22.5_pct"], m["normal_under_30_pct"]) == (25, 50, 75)


# ----------------------------------------------------------------------------------------------- colour
def test_scale_invariant_mse_ignores_exposure_only():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.1, 0.9, (16, 16, 3))
    mask = np.ones((16, 16), bool)
    assert metrics.scale_invariant_mse(3.0 * gt, gt, mask) == pytest.approx(0.0, abs=1e-12)
    # orthogonal prediction: best scale is 0, error is the ground truth's mean square
    pred, truth = np.array([[[1.0, 0.0, 0.0]]]), np.array([[[0.0, 1.0, 0.0]]])
    assert metrics.scale_invariant_mse(pred, truth, np.ones((1, 1), bool)) == pytest.approx(1.0 / 3.0)
    assert metrics.scale_invariant_mse(np.zeros_like(gt), gt, mask) == pytest.approx(np.mean(gt**2))


def test_psnr_on_display_values_inside_the_mask():
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    gt = np.full((8, 8, 3), srgb_to_linear(np.float32(0.5)))
    pred = np.full((8, 8, 3), srgb_to_linear(np.float32(0.6)))
    pred[~mask] = 100.0  # outside the matte: ignored
    assert metrics.psnr(pred, gt, mask) == pytest.approx(20.0, abs=1e-3)  # display error 0.1 -> 20 dB
    assert metrics.psnr(gt, gt, mask) == math.inf
    assert metrics.psnr(gt * 5.0, np.ones_like(gt), mask) == math.inf  # clipped to [0, 1] first


def test_exposed_psnr_forgives_the_exposure_and_nothing_else():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0.05, 0.6, (16, 16, 3))
    alpha = np.ones((16, 16))
    darker = metrics.relit_metrics(0.5 * gt, gt, alpha)
    assert darker["relit_psnr"] < 20.0 and darker["relit_psnr_exposed"] == math.inf
    assert metrics.best_scale(0.5 * gt, gt, alpha > 0) == pytest.approx(2.0)
    # a wrong picture stays wrong at its best exposure: the exposed PSNR equals the plain one of s* x the picture
    shuffled = gt[::-1, ::-1]
    wrong = metrics.relit_metrics(0.5 * shuffled, gt, alpha)
    scale = metrics.best_scale(shuffled, gt, alpha > 0)
    assert wrong["relit_psnr_exposed"] == pytest.approx(metrics.psnr(scale * shuffled, gt, alpha > 0), abs=1e-4)
    assert wrong["relit_psnr_exposed"] < 20.0


def test_masked_ssim_perfect_inside_the_matte_whatever_the_background():
    plate = srgb_to_linear(skimage.data.astronaut()[::4, ::4] / 255.0)
    mask = disc(*plate.shape[:2], 64, 64, 40) > 0
    other = plate.copy()
    other[~mask] = 0.0
    assert metrics.masked_ssim(other, plate, mask) == pytest.approx(1.0)
    assert metrics.masked_ssim(plate[::-1], plate, mask) < 0.8
    tiny = np.zeros((5, 5), bool)
    tiny[1:4, 1:4] = True  # smaller than the Gaussian window: falls back to a 3x3 window
    assert metrics.masked_ssim(plate, plate, np.pad(tiny, ((0, 123), (0, 123)))) == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------- report
def test_mean_rows_skips_failures_and_missing_metrics():
    rows = [{"v1": {"relit_psnr": 20.0, "alpha_sad": 1.0}, "naive composite": {"relit_psnr": 10.0}},
            {"v1": {"error": "no face"}, "naive composite": {"relit_psnr": 14.0}}]
    means = mean_rows(rows, ("v1", "naive composite"))
    assert means["v1"] == {"cases": 1, "relit_psnr": 20.0, "alpha_sad": 1.0}
    assert means["naive composite"] == {"cases": 2, "relit_psnr": 12.0}
    table = format_table(means).splitlines()
    assert table[2].split()[:3] == ["v1", "1", "1.00"] and " - " in table[3]
    assert json.loads(json.dumps(json_safe({"a": math.inf, "b": math.nan}))) == {"a": "inf", "b": None}


# ----------------------------------------------------------------------------------------------- end to end
HDRI_NAME = "eval_test_key_light.exr"
SOURCE_HDRI_NAME = "eval_test_other_light.exr"
FOV_DEG = 35.0
STRENGTH = 2.0
ALBEDO = (0.55, 0.42, 0.35)


def write_exr(path, channels: dict[str, np.ndarray]) -> None:
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    planes = {name: np.ascontiguousarray(v, np.float32) for name, v in channels.items()}
    with OpenEXR.File(header, planes) as exr:
        exr.write(str(path))


def key_light_hdri(left: bool) -> np.ndarray:
    """32 x 64 equirect: dim blue-grey sky plus a bright warm square to one side."""
    radiance = np.full((32, 64, 3), (0.05, 0.06, 0.08), np.float32)
    column = 16 if left else 48
    radiance[12:20, column - 4 : column + 4] = (6.0, 5.0, 4.0)
    return radiance


def lighting(name: str, rotation_deg: float) -> dict:
    cam_to_env = rotation_z(math.radians(rotation_deg)) @ CAMERA_TO_CENTRED_PANORAMA
    return {"hdri": {"collection": "shared", "name": name}, "rotation_z_deg": rotation_deg, "strength": STRENGTH,
            "cam_to_env": cam_to_env.tolist()}


@pytest.fixture(scope="module")
def synthetic_case(tmp_path_factory):
    """The astronaut as plate; its own product matte and normals as ground truth; a constant albedo; ground
    truth relit = albedo * the product's diffuse light map under the target HDRI (no specular)."""
    root = tmp_path_factory.mktemp("lightstage")
    hdri_dir = root / "shared" / "data" / "hdri"
    hdri_dir.mkdir(parents=True)
    # Source and target differ (light on opposite sides), so using the wrong one shows up in the relit error.
    write_exr(hdri_dir / HDRI_NAME, dict(zip("RGB", np.moveaxis(key_light_hdri(left=True), -1, 0))))
    write_exr(hdri_dir / SOURCE_HDRI_NAME, dict(zip("RGB", np.moveaxis(key_light_hdri(left=False), -1, 0))))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PORTRAIT_RELIGHT_SHARED", str(root / "shared"))
        plate = resize(srgb_to_linear(skimage.data.astronaut() / 255.0), 256, 256)
        settings = RelightSettings(fov_deg=FOV_DEG, normals="classical")  # the v1 row's
        alpha = matting.estimate_matte(plate, settings).alpha
        normal = geometry.estimate_normals(plate, alpha, settings).normal
        inside = (alpha > 0)[..., None]
        albedo = np.where(inside, np.array(ALBEDO, np.float32), 0.0).astype(np.float32)
        target = lighting(HDRI_NAME, 30.0)
        environment = Environment(read_hdri(hdri_dir / HDRI_NAME) * STRENGTH, np.array(target["cam_to_env"]))
        maps = lightmaps.light_maps(lightmaps.prefilter(environment), normal, camera_rays(256, 256, FOV_DEG),
                                    alpha > 0)
        relit = albedo * maps.diffuse * inside
        case_dir = root / "cases" / "case_0000"
        case_dir.mkdir(parents=True)
        channels = {"gt.alpha.A": alpha, "gt.roughness.V": np.full_like(alpha, 0.5),
                    "gt.depth.Z": np.where(alpha > 0, 3.0, 1e10)}
        for pass_name, value, suffixes in (("plate", plate, "RGB"), ("normal", normal, "XYZ"),
                                           ("albedo", albedo, "RGB"), ("relit", relit, "RGB")):
            channels.update({f"gt.{pass_name}.{c}": value[..., i] for i, c in enumerate(suffixes)})
        write_exr(case_dir / "gt.exr", channels)
        meta = {"seed": 0, "subject": {"kind": "synthetic"}, "width": 256, "height": 256, "samples": 1,
                "camera": {"fov_deg": FOV_DEG, "R_cam": np.eye(3).tolist()},
                "source": lighting(SOURCE_HDRI_NAME, 0.0), "target": target,
                "render_seconds": 0.0, "generator_version": "test"}
        (case_dir / "meta.json").write_text(json.dumps(meta))
        rows = evaluate_case(case_dir, RelightSettings())
        yield {"case_dir": case_dir, "rows": rows, "plate": plate, "shared": root / "shared"}


def test_case_is_read_in_the_light_stage_format(synthetic_case):
    case = read_case(synthetic_case["case_dir"])
    assert find_cases(synthetic_case["case_dir"].parent) == [synthetic_case["case_dir"]]
    assert case.passes["plate"].shape == (256, 256, 3) and case.passes["alpha"].shape == (256, 256)
    assert np.array_equal(case.passes["plate"], synthetic_case["plate"])
    assert case_settings(case, RelightSettings()).fov_deg == FOV_DEG  # the case camera, not the default 40


def test_evaluate_case_rows_and_product_consistency(synthetic_case):
    rows = synthetic_case["rows"]
    assert tuple(rows) == ROW_NAMES and not [r for r in rows.values() if "error" in r]
    ours = rows["v1"]
    # The ground truth *is* v1's matte and normals on this plate: the wiring must reproduce them.
    assert ours["alpha_sad"] < 0.01 and ours["normal_mean_deg"] < 0.5
    assert set(rows["naive composite"]) == {"relit_simse", "relit_ssim", "relit_psnr", "relit_psnr_exposed"}
    for estimated in ("light from background", "light from background v1"):  # same matte, estimated light
        assert rows[estimated]["alpha_sad"] == ours["alpha_sad"] and rows[estimated]["relit_simse"] > 0
    assert rows["light from background"]["relit_simse"] != rows["light from background v1"]["relit_simse"]
    # With GT normals equal to v1's, the composed oracle must match the product pipeline itself.
    assert rows["oracle normals"]["relit_simse"] == pytest.approx(ours["relit_simse"], rel=1e-3, abs=1e-7)
    assert rows["oracle normals"]["relit_psnr"] == pytest.approx(ours["relit_psnr"], abs=0.01)
    assert rows["oracle alpha"]["alpha_sad"] == 0.0
    assert rows["oracle normals+albedo"]["albedo_simse"] < 1e-10
    # the all-learned path with one input from the ground truth: that input is exact, the rest are the nets'
    assert rows["all learned, oracle albedo"]["albedo_simse"] < 1e-10
    assert rows["all learned, oracle albedo"]["normal_mean_deg"] == rows["all learned"]["normal_mean_deg"]
    assert rows["all learned, oracle normals"]["normal_mean_deg"] < 0.5 < rows["all learned"]["normal_mean_deg"]


def test_oracle_relighting_beats_the_naive_composite(synthetic_case):
    rows = synthetic_case["rows"]
    naive, oracle = rows["naive composite"], rows["oracle normals+albedo"]
    # Only the product's small specular term separates the oracle from this ground truth.
    assert oracle["relit_simse"] < 0.05 * naive["relit_simse"]
    assert oracle["relit_psnr"] > naive["relit_psnr"] + 10.0
    assert oracle["relit_ssim"] > naive["relit_ssim"] + 0.1
    assert rows["oracle alpha+normals+albedo"]["relit_simse"] < 0.05 * naive["relit_simse"]


def test_evaluate_command_writes_report_and_contact_sheet(synthetic_case, tmp_path, capsys, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("PORTRAIT_RELIGHT_SHARED", str(synthetic_case["shared"]))
    out = tmp_path / "report"
    assert main(["--cases", str(synthetic_case["case_dir"].parent), "--out", str(out), "--tile", "64"]) == 0
    printed = capsys.readouterr().out
    assert "oracle normals+albedo" in printed and "PSNR" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["mean"]["v1"]["cases"] == 1
    assert report["cases"]["case_0000"]["rows"]["v1"]["relit_psnr"] == pytest.approx(
        synthetic_case["rows"]["v1"]["relit_psnr"], abs=1e-6)
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.size == (64 * len(CONTACT_COLUMNS), 2 * 14 + 64)


def test_evaluate_without_cases_is_a_one_line_error(tmp_path, capsys):
    assert main(["--cases", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no evaluation cases" in err


def test_default_cases_come_from_the_light_stage_evaluation_set(synthetic_case, tmp_path, monkeypatch):
    """Without --cases, `make eval` asks lightstage.eval_set.ensure_eval_set (stubbed here: rendering needs
    Blender and minutes) for the fixed evaluation set, with the cache folder; --cases folders are only read."""
    import shutil
    import sys
    import types

    calls = []

    def ensure_eval_set(cache_dir):
        calls.append(cache_dir)
        case = cache_dir / "lightstage" / "eval-test" / "case_0000"
        if not case.exists():
            shutil.copytree(synthetic_case["case_dir"], case)
        return [case]

    stub = types.ModuleType("portrait_relight.lightstage.eval_set")
    stub.ensure_eval_set = ensure_eval_set
    monkeypatch.setitem(sys.modules, "portrait_relight.lightstage.eval_set", stub)
    monkeypatch.setenv("PORTRAIT_RELIGHT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PORTRAIT_RELIGHT_SHARED", str(synthetic_case["shared"]))
    # an explicit folder is only read: a typo never starts rendering
    assert main(["--cases", str(tmp_path / "typo"), "--out", str(tmp_path / "a")]) == 2 and not calls
    assert main(["--out", str(tmp_path / "b")]) == 0
    assert calls == [tmp_path / "cache"]
    assert (tmp_path / "b" / "report.json").is_file()
