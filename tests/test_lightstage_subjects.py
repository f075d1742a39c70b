"""Light-stage subject appearance: hair on the scalp with its colour in the albedo ground truth, bald subjects
without hair, garments with their colour, skin tints from the MPFB masks, reproducible per seed."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bpy")

import bpy  # noqa: E402

from portrait_relight.lightstage import clothing, hair, materials, pose  # noqa: E402
from portrait_relight.lightstage import makehuman_data as mh  # noqa: E402
from portrait_relight.lightstage.generate import Generator, _straight, sample_case  # noqa: E402
from portrait_relight.lightstage.stage import AOV_ALBEDO, stack  # noqa: E402
from portrait_relight.lightstage.subjects import MakeHumanBody  # noqa: E402

SIZE, SAMPLES = 64, 4


def _first_seed(shared, accept) -> int:
    return next(s for s in range(200) if accept(sample_case(s, "makehuman", shared)["subject"]))


@pytest.fixture(scope="module")
def generator(shared_dir):
    return Generator("makehuman", SIZE, SAMPLES, shared=shared_dir)


@pytest.fixture(scope="module")
def seeds(shared_dir):
    return {"long": _first_seed(shared_dir, lambda s: s["hair"]["style"] == "long"
                                and s["garment"]["type"] != "none"),
            "bald": _first_seed(shared_dir, lambda s: s["hair"]["style"] == "bald")}


def _render_hidden(generator, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(straight albedo, alpha) of the current scene with the named objects hidden."""
    objects = [bpy.data.objects[n] for n in names]
    shown = [not o.hide_render for o in objects]
    for o in objects:
        o.hide_render = True
    try:
        ch = generator.stage.render(SAMPLES)
    finally:
        for o, visible in zip(objects, shown):
            o.hide_render = not visible
    alpha = np.clip(ch["Combined.A"], 0, 1)
    return _straight(stack(ch, AOV_ALBEDO, "RGB"), alpha), alpha


def _positions(obj) -> np.ndarray:
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    out = np.empty(3 * len(evaluated.points), np.float32)
    evaluated.position_data.foreach_get("vector", out)
    return out.reshape(-1, 3)


def test_sampling_covers_styles_and_garments():
    params = [MakeHumanBody.sample_params(np.random.default_rng([s, 7])) for s in range(300)]
    styles = [p["hair"]["style"] for p in params]
    assert set(styles) == set(hair.STYLES)
    assert 0.08 < styles.count("bald") / len(styles) < 0.25
    assert {p["garment"]["type"] for p in params} == set(clothing.GARMENTS)
    assert MakeHumanBody.sample_params(np.random.default_rng([3, 7])) == \
        MakeHumanBody.sample_params(np.random.default_rng([3, 7]))


def hair_guides_and_gaps(generator, params):
    """The scalp guide curves (before the strand modifier) and each point's signed distance from the skin."""
    generator.subject.apply(params)
    from mathutils.bvhtree import BVHTree

    body = generator.subject.body
    vertices = np.array([v.co for v in body.data.vertices])
    bvh = BVHTree.FromPolygons(vertices.tolist(), [tuple(p.vertices) for p in body.data.polygons])
    data = generator.subject.hair.scalp.data  # the guides (before the strand modifier)
    guides = np.empty(3 * len(data.points), np.float32)
    data.position_data.foreach_get("vector", guides)
    strands = guides.reshape(len(data.curves), -1, 3)
    gaps = []
    for point in strands.reshape(-1, 3):
        location, normal, _, _ = bvh.find_nearest(point)
        gaps.append(np.dot(point - np.array(location), np.array(normal)))
    return vertices, strands, np.array(gaps).reshape(strands.shape[:2])


@pytest.mark.parametrize("posed", [False, True])
def test_hair_grows_from_the_scalp_and_stays_outside(generator, seeds, shared_dir, posed):
    params = sample_case(seeds["long"], "makehuman", shared_dir)["subject"]
    if posed:  # a strongly turned, tilted head: the hair must follow it
        params = {**params, "pose": {"head_yaw_deg": 38.0, "head_pitch_deg": 15.0, "head_roll_deg": -8.0,
                                     "arm_lower_deg": 25.0}}
    else:  # the anatomical checks below are in the body's rest frame
        params = {**params, "pose": pose.ZERO_POSE}
    vertices, strands, gaps = hair_guides_and_gaps(generator, params)
    assert np.all(np.abs(gaps[:, 0]) < 0.003)  # rooted on the skin
    assert np.all(gaps[:, 1:] > 0.0005)  # never inside the head or body (held ~2..6 mm out; folds: less)
    assert np.median(gaps[:, 1:]) < 0.02  # lying on the head, not standing off it
    if posed:
        return
    groups = mh.base_mesh().groups
    eye_z = vertices[np.concatenate([groups["joint-l-eye"], groups["joint-r-eye"]])][:, 2].mean()
    eye_y = vertices[groups["joint-l-eye"]][:, 1].mean()
    front = strands[:, 0, 1] < eye_y + 0.04  # roots over the forehead: above the brows, not on the face
    assert front.sum() > 10 and np.all(strands[front, 0, 2] > eye_z + 0.035)
    assert np.all(strands[:, 0, 2] > eye_z - 0.09)  # nothing from the neck
    assert strands[:, 0, 2].max() - strands[:, 0, 2].min() > 0.1  # ...covering the scalp


def test_hair_colour_is_the_albedo_and_covers(generator, seeds):
    passes, meta = generator.render_case(seeds["long"])
    _, alpha_bald = _render_hidden(generator, ("Hair", "Eyebrows"))
    hair_only = (passes["alpha"] > 0.3) & (alpha_bald < 0.01)  # long hair beside the face and neck
    assert hair_only.sum() >= 10
    expected = np.array(materials.hair_colour(meta["subject"]["hair"]["colour"]))
    measured = np.median(passes["albedo"][hair_only], axis=0)
    assert np.allclose(measured, expected, atol=0.01, rtol=0.05), (measured, expected)
    assert passes["alpha"].sum() > alpha_bald.sum() + 10  # the alpha ground truth includes the hair


def test_garment_albedo_is_the_garment_colour(generator, seeds):
    passes, meta = generator.render_case(seeds["long"])
    albedo_bare, _ = _render_hidden(generator, ("Garment",))
    changed = (passes["alpha"] > 0.99) & (np.abs(passes["albedo"] - albedo_bare).max(-1) > 0.02)
    assert changed.mean() > 0.05  # the shirt is a visible part of the frame
    expected = np.array(clothing.garment_colour(meta["subject"]["garment"]))
    measured = np.median(passes["albedo"][changed], axis=0)
    assert np.allclose(measured, expected, atol=0.01, rtol=0.12), (measured, expected)


def test_bald_case_has_no_hair_but_eyebrows(generator, seeds):
    generator.render_case(seeds["bald"])
    subject = generator.subject
    assert len(_positions(subject.hair.scalp)) == 0 and subject.hair.scalp.hide_render
    assert len(_positions(subject.hair.eyebrows)) > 100


def _lip_vertices(subject) -> np.ndarray:
    """Body vertices whose UVs fall inside the MPFB lips mask."""
    image = subject.skin_masks["lips"]
    width, height = image.size
    pixels = np.empty(width * height * image.channels, np.float32)
    image.pixels.foreach_get(pixels)
    mask = pixels.reshape(height, width, image.channels)[..., 0]
    mesh = subject.body.data
    uv = np.empty(2 * len(mesh.loops), np.float32)
    mesh.uv_layers["UVMap"].data.foreach_get("uv", uv)
    uv = uv.reshape(-1, 2)
    values = mask[np.clip((uv[:, 1] * height).astype(int), 0, height - 1),
                  np.clip((uv[:, 0] * width).astype(int), 0, width - 1)]
    loop_vertices = np.empty(len(mesh.loops), np.int64)
    mesh.loops.foreach_get("vertex_index", loop_vertices)
    return np.unique(loop_vertices[values > 0.5])


def test_lip_tint_reddens_the_mouth_albedo(generator, seeds, shared_dir):
    params = sample_case(seeds["bald"], "makehuman", shared_dir)["subject"]
    subject = generator.subject
    lips = _lip_vertices(subject)
    groups = mh.base_mesh().groups
    base = mh.base_mesh().vertices
    mouth = mh.to_blender(base[groups["joint-mouth"]]).mean(0)
    lip_points = mh.to_blender(base[lips])
    # the mask's UV region lands on the mouth of the mesh (around the mouth joint, in front of it)
    assert 20 < len(lips) < 2000
    assert np.all(np.abs(lip_points[:, 0]) < 0.035) and np.all(np.abs(lip_points[:, 2] - mouth[2]) < 0.04)
    colours = []
    for strength in (0.0, 0.9):
        subject.apply({**params, "tints": {**params["tints"], "lips": strength}})
        vertices = np.array([v.co for v in subject.body.data.vertices])[lips]
        target = np.array([0.0, vertices[:, 1].min(), vertices[:, 2].mean()])
        generator.stage.set_camera(target, 0.35, 0.0, 0.0, 0.0, 8.0)  # ~5 cm across: the mouth fills it
        albedo, alpha = _render_hidden(generator, ())
        assert alpha[SIZE // 2, SIZE // 2] > 0.99
        colours.append(albedo[SIZE // 2 - 3: SIZE // 2 + 3, SIZE // 2 - 8: SIZE // 2 + 8].reshape(-1, 3))
        colours.append(albedo[:4].reshape(-1, 3))  # the top rows: skin above the upper lip
    plain, plain_skin, tinted, tinted_skin = colours
    redness = lambda c: np.median(c[:, 0] / np.maximum(c[:, 1], 1e-4))  # noqa: E731
    assert redness(tinted) > 1.2 * redness(plain), (redness(plain), redness(tinted))
    assert abs(redness(tinted_skin) / redness(plain_skin) - 1) < 0.05  # only the lips change


def test_same_seed_same_hair_and_images(generator, seeds):
    first, meta = generator.render_case(seeds["long"])
    guides = _positions(generator.subject.hair.scalp)
    second, meta2 = generator.render_case(seeds["long"])
    assert meta["subject"] == meta2["subject"]
    assert np.array_equal(guides, _positions(generator.subject.hair.scalp))
    for name in ("alpha", "albedo", "plate"):
        assert np.abs(first[name] - second[name]).mean() < 2e-3, name
