"""Add Relit Plate to Scene: Blender's own lights relight the card through the EXR's normals, and its matte
cuts it out where the EXR's alpha says.

A synthetic relit EXR (a disc of sphere normals, constant albedo) is put on a card in front of a turned camera and
rendered with Cycles (tiny) under one sun: the lit side of the disc must follow the light (left, right, above),
the shading must follow Lambert's cosine of the EXR's normals, and the rendered alpha must match the EXR's matte.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from operator_registry import registered

bpy = pytest.importorskip("bpy")

from portrait_relight.inference.errors import RelightInputError  # noqa: E402
from portrait_relight.inference.io.card_passes import card_maps  # noqa: E402
from portrait_relight.inference.io.exr import write_passes  # noqa: E402
from portrait_relight.inference.shots.frames import sequence_frames  # noqa: E402
from portrait_relight.operators import card as card_module  # noqa: E402
from portrait_relight.operators.image_utils import image_to_array  # noqa: E402

SIZE = 64
RADIUS = 0.8 * SIZE / 2
DISTANCE = 4.0


@pytest.fixture(scope="module", autouse=True)
def operators_registered():
    with registered(card_module):
        yield


def sphere_passes(albedo: float = 0.6, radius: float = RADIUS) -> dict[str, np.ndarray]:
    """A disc of sphere normals (camera space, OpenGL: +Y up), constant albedo, hard matte."""
    centre = SIZE / 2
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    x, y = (cols - centre) / radius, (centre - rows) / radius
    inside = x * x + y * y < 1.0
    z = np.sqrt(np.clip(1.0 - x * x - y * y, 0.0, 1.0))
    normal = np.where(inside[..., None], np.stack([x, y, z], -1), 0.0).astype(np.float32)
    return {
        "alpha": inside.astype(np.float32),
        "normal": normal,
        "albedo": np.full((SIZE, SIZE, 3), albedo, np.float32),
        "relit": np.zeros((SIZE, SIZE, 4), np.float32),
    }


def build_scene():
    """A camera looking along world +Y from (0, -6, 1.5) (so camera left = world -X), no world light."""
    from mathutils import Euler

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = (0.0, -6.0, 1.5)
    camera.rotation_euler = Euler((math.radians(90.0), 0.0, 0.0))
    scene.camera = camera
    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x = render.resolution_y = SIZE
    render.resolution_percentage = 100
    render.film_transparent = True
    render.filter_size = 0.01
    scene.cycles.device = "CPU"
    scene.cycles.samples = 16
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = False
    scene.view_settings.view_transform = "Standard"
    render.image_settings.file_format = "OPEN_EXR"
    render.image_settings.color_depth = "32"
    scene.world = None
    return scene, camera


def add_sun(scene, camera, direction_cam, strength: float = 3.0):
    """A sun whose light arrives from camera-space direction `direction_cam` (surface -> light)."""
    from mathutils import Vector

    bpy.context.view_layer.update()
    toward_light = camera.matrix_world.to_3x3() @ Vector(direction_cam).normalized()
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = strength
    sun.data.angle = 0.0
    sun.rotation_euler = toward_light.to_track_quat("Z", "Y").to_euler()  # the sun shines along its -Z
    scene.collection.objects.link(sun)
    return sun


def render(scene, path) -> tuple[np.ndarray, np.ndarray]:
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    try:
        return image_to_array(image, with_alpha=True)
    finally:
        bpy.data.images.remove(image)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def test_card_is_relit_by_blender_lights_through_the_normals(tmp_path):
    passes = sphere_passes()
    exr = write_passes(tmp_path / "portrait.exr", passes)
    scene, camera = build_scene()
    assert bpy.ops.portrait_relight.add_relit_card(filepath=str(exr), distance=DISTANCE) == {"FINISHED"}
    card = next(o for o in scene.objects if o.name.startswith(card_module.CARD_NAME))
    assert card.parent == camera
    assert (tmp_path / "portrait_card" / "normal_map" / "portrait.exr").is_file()

    normals, alpha = passes["normal"], passes["alpha"]
    # Judge shading away from the matte edge (the card's edge pixels mix with the transparent film).
    interior = (normals[..., 0] ** 2 + normals[..., 1] ** 2) < 0.85 ** 2
    left, right = interior & (normals[..., 0] < -0.2), interior & (normals[..., 0] > 0.2)
    top, bottom = interior & (normals[..., 1] > 0.2), interior & (normals[..., 1] < -0.2)
    sun = None
    means = {}
    for side, direction in (("left", (-1.0, 0.0, 1.0)), ("right", (1.0, 0.0, 1.0)), ("above", (0.0, 1.0, 1.0))):
        if sun is not None:
            bpy.data.objects.remove(sun)
        sun = add_sun(scene, camera, direction)
        rgb, rendered_alpha = render(scene, tmp_path / f"{side}.exr")
        lum = luminance(rgb)
        means[side] = {name: float(lum[mask].mean()) for name, mask in
                       (("left", left), ("right", right), ("top", top), ("bottom", bottom))}
        # Lambert's cosine of the EXR normals explains the shading (specular adds a little on top).
        light = np.array(direction, np.float32) / np.linalg.norm(direction)
        cosine = np.clip(normals @ light, 0.0, None)
        correlation = np.corrcoef(cosine[interior], lum[interior])[0, 1]
        assert correlation > 0.9, (side, correlation)
        # The rendered cut-out is the EXR's matte.
        ours, theirs = rendered_alpha > 0.5, alpha > 0.5
        iou = (ours & theirs).sum() / (ours | theirs).sum()
        assert iou > 0.9, (side, iou)
    assert means["left"]["left"] > 1.5 * means["left"]["right"], means
    assert means["right"]["right"] > 1.5 * means["right"]["left"], means  # the brighter half flips
    assert means["above"]["top"] > 1.5 * means["above"]["bottom"], means


def test_card_is_relit_in_eevee_too(tmp_path):
    """EEVEE (software OpenGL here, ~20 s for the shader compile): the same material, one light on the left."""
    passes = sphere_passes()
    exr = write_passes(tmp_path / "portrait.exr", passes)
    scene, camera = build_scene()
    scene.render.engine = "BLENDER_EEVEE"
    bpy.ops.portrait_relight.add_relit_card(filepath=str(exr), distance=DISTANCE)
    add_sun(scene, camera, (-1.0, 0.0, 1.0))
    rgb, rendered_alpha = render(scene, tmp_path / "eevee.exr")
    lum, normals, inside = luminance(rgb), passes["normal"], passes["alpha"] > 0.5
    left, right = lum[inside & (normals[..., 0] < -0.2)].mean(), lum[inside & (normals[..., 0] > 0.2)].mean()
    assert left > 2.0 * right, (left, right)
    ours = rendered_alpha > 0.5
    assert (ours & inside).sum() / (ours | inside).sum() > 0.9


def test_card_casts_a_matte_shaped_shadow_on_a_shadow_catcher(tmp_path):
    """Orthographic camera (so shadows shift without perspective): a sun from the left casts the disc, not the
    card's square, onto a shadow catcher wall behind it, offset by (wall - card distance) * tan(light angle)."""
    radius = 0.3 * SIZE / 2
    passes = sphere_passes(radius=radius)
    exr = write_passes(tmp_path / "portrait.exr", passes)
    scene, camera = build_scene()
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = 4.0
    bpy.ops.portrait_relight.add_relit_card(filepath=str(exr), distance=2.0)
    bpy.ops.mesh.primitive_plane_add(size=40.0)
    wall = bpy.context.object
    wall.parent = camera
    wall.location = (0.0, 0.0, -6.0)
    wall.is_shadow_catcher = True
    add_sun(scene, camera, (-0.25, 0.0, 1.0))
    _rgb, rendered_alpha = render(scene, tmp_path / "shadow.exr")

    shift = (6.0 - 2.0) * 0.25 / 4.0 * SIZE  # pixels: world shift / ortho scale * image width
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    disc = (cols - SIZE / 2) ** 2 + (rows - SIZE / 2) ** 2 < radius ** 2
    shadow = (cols - SIZE / 2 - shift) ** 2 + (rows - SIZE / 2) ** 2 < radius ** 2
    wall_only = ~disc
    cast = rendered_alpha > 0.5
    iou = (cast & shadow & wall_only).sum() / ((cast | shadow) & wall_only).sum()
    assert iou > 0.8, iou
    assert rendered_alpha[wall_only & ~shadow].max() < 0.5  # the card's transparent corners cast nothing


def test_card_fills_the_frame_at_any_distance(tmp_path):
    from bpy_extras.object_utils import world_to_camera_view

    exr = write_passes(tmp_path / "plate.exr", sphere_passes())
    scene, camera = build_scene()
    camera.data.lens = 35.0
    for distance in (1.5, 10.0):
        before = set(scene.objects)
        bpy.ops.portrait_relight.add_relit_card(filepath=str(exr), distance=distance)
        (card,) = set(scene.objects) - before
        bpy.context.view_layer.update()
        for vertex in card.data.vertices:  # every corner projects onto a corner of the camera frame
            ndc = world_to_camera_view(scene, camera, card.matrix_world @ vertex.co)
            assert min(abs(ndc.x), abs(ndc.x - 1)) < 1e-4 and min(abs(ndc.y), abs(ndc.y - 1)) < 1e-4, ndc
            assert ndc.z == pytest.approx(distance, rel=1e-4)


def test_image_sequence_animates_with_the_frame(tmp_path):
    for number, albedo in ((7, 0.15), (8, 0.8)):
        write_passes(tmp_path / f"shot.{number:04d}.exr", sphere_passes(albedo))
    assert [n for n, _ in sequence_frames(tmp_path / "shot.0008.exr")] == [7, 8]
    scene, camera = build_scene()
    scene.render.resolution_x = scene.render.resolution_y = 16
    scene.cycles.samples = 8
    add_sun(scene, camera, (0.0, 0.0, 1.0))
    bpy.ops.portrait_relight.add_relit_card(filepath=str(tmp_path / "shot.0007.exr"), distance=DISTANCE,
                                            frame_start=11)
    lum = {}
    for frame in (11, 12):
        scene.frame_set(frame)
        rgb, alpha = render(scene, tmp_path / f"frame{frame}.exr")
        lum[frame] = float(luminance(rgb)[alpha > 0.5].mean())
    assert lum[12] > 3.0 * lum[11], lum
    assert (tmp_path / "shot_card" / "albedo" / "shot.0008.exr").is_file()


def test_default_path_is_the_compositor_passes_exr(tmp_path):
    exr = write_passes(tmp_path / "plate.exr", sphere_passes())
    scene, _camera = build_scene()
    assert card_module.default_relit_exr(scene) == ""
    tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
    scene.compositing_node_group = tree
    node = tree.nodes.new("CompositorNodeImage")
    node.name = card_module.COMPOSITOR_PASSES_NODE
    node.image = bpy.data.images.load(str(exr))
    assert card_module.default_relit_exr(scene) == str(exr)


def test_card_maps_and_errors(tmp_path):
    maps = card_maps(sphere_passes())
    # Flat (0, 0, 1) outside the matte, 0.5 n + 0.5 inside: the tangent-space encoding of the camera normal.
    np.testing.assert_allclose(maps["normal_map"][0, 0], (0.5, 0.5, 1.0))
    centre = maps["normal_map"][SIZE // 2, SIZE // 2]
    assert centre[2] > 0.99
    with pytest.raises(RelightInputError, match="lacks the normal pass"):
        card_maps({"albedo": np.zeros((4, 4, 3)), "alpha": np.zeros((4, 4))}, "x.exr")
    build_scene()
    bpy.data.objects.remove(bpy.context.scene.camera)
    with pytest.raises(RuntimeError, match="no active camera"):
        bpy.ops.portrait_relight.add_relit_card(filepath=str(tmp_path / "missing.exr"))
