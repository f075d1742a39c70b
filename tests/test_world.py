"""The scene world -> Environment mapping agrees with what Cycles renders through the same camera.

This is the orientation test: a flipped or rotated panorama lookup would make the relit light come from the
wrong side without any other test noticing.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from portrait_relight.inference.errors import RelightInputError  # noqa: E402
from portrait_relight.inference.lighting.camera import camera_rays  # noqa: E402
from portrait_relight.inference.lighting.environment import Environment  # noqa: E402
from portrait_relight.operators import world as world_module  # noqa: E402
from portrait_relight.operators.image_utils import image_to_array  # noqa: E402

WIDTH, HEIGHT = 48, 32
SUPERSAMPLE = 4


def bundled_hdri(name: str = "forest.exr") -> str:
    return os.path.join(bpy.utils.system_resource("DATAFILES", path="studiolights/world"), name)


def build_scene(hdri: str, mapping_z_deg: float, strength: float, sensor_fit: str = "AUTO"):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    world = bpy.data.worlds.new("HDRI World")
    tree = world.node_tree
    background = next(n for n in tree.nodes if n.type == "BACKGROUND")
    background.inputs["Strength"].default_value = strength
    texture = tree.nodes.new("ShaderNodeTexEnvironment")
    texture.image = bpy.data.images.load(hdri)
    texture.interpolation = "Linear"
    mapping = tree.nodes.new("ShaderNodeMapping")
    mapping.vector_type = "POINT"
    mapping.inputs["Rotation"].default_value = (0.0, 0.0, math.radians(mapping_z_deg))
    coords = tree.nodes.new("ShaderNodeTexCoord")
    tree.links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
    tree.links.new(mapping.outputs["Vector"], texture.inputs["Vector"])
    tree.links.new(texture.outputs["Color"], background.inputs["Color"])
    scene.world = world

    camera_data = bpy.data.cameras.new("Camera")
    camera_data.lens = 30.0
    camera_data.sensor_fit = sensor_fit
    camera = bpy.data.objects.new("Camera", camera_data)
    scene.collection.objects.link(camera)
    camera.rotation_euler = (math.radians(75.0), math.radians(12.0), math.radians(-130.0))
    scene.camera = camera

    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x, render.resolution_y = WIDTH, HEIGHT
    render.resolution_percentage = 100
    render.film_transparent = False
    render.filter_size = 0.01  # a box over the pixel, which the supersampled reference reproduces
    scene.cycles.device = "CPU"
    scene.cycles.samples = 64
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = False
    scene.view_settings.view_transform = "Standard"
    render.image_settings.file_format = "OPEN_EXR"
    render.image_settings.color_depth = "32"
    return scene


def render_to_array(scene, path: str) -> np.ndarray:
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)
    return image_to_array(bpy.data.images.load(path))


def reference(environment: Environment, fov_deg: float) -> np.ndarray:
    rays = camera_rays(WIDTH * SUPERSAMPLE, HEIGHT * SUPERSAMPLE, fov_deg)
    sampled = environment.sample(rays)
    return sampled.reshape(HEIGHT, SUPERSAMPLE, WIDTH, SUPERSAMPLE, 3).mean(axis=(1, 3))


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean() / np.abs(b).mean())


@pytest.mark.parametrize("sensor_fit", ["AUTO", "VERTICAL"])
def test_world_environment_matches_cycles(tmp_path, sensor_fit):
    scene = build_scene(bundled_hdri(), mapping_z_deg=40.0, strength=1.7, sensor_fit=sensor_fit)
    lighting = world_module.world_lighting(scene)
    rendered = render_to_array(scene, str(tmp_path / "world.exr"))
    assert rendered.shape == (HEIGHT, WIDTH, 3)

    ours = reference(lighting.environment, lighting.fov_deg)
    error = relative_error(ours, rendered)
    print(f"relative error vs Cycles: {error:.4f}")
    assert error < 0.08, f"world lookup disagrees with Cycles: mean relative error {error:.3f}"

    # The same comparison must fail for the mistakes this test exists to catch.
    env = lighting.environment
    mirrored = Environment(env.radiance[:, ::-1].copy(), env.cam_to_env)
    unrotated = Environment(env.radiance, world_module.camera_rotation(scene.camera))
    for wrong in (mirrored, unrotated):
        assert relative_error(reference(wrong, lighting.fov_deg), rendered) > 3 * error + 0.05
    too_wide = reference(env, lighting.fov_deg * 1.3)
    assert relative_error(too_wide, rendered) > 2 * error


def test_fov_follows_sensor_fit():
    camera = bpy.data.cameras.new("fov test")
    camera.lens, camera.sensor_width, camera.sensor_height = 50.0, 36.0, 24.0
    horizontal = math.degrees(2 * math.atan(18.0 / 50.0))
    camera.sensor_fit = "AUTO"
    assert world_module.camera_fov_deg(camera, 300, 200) == pytest.approx(horizontal)
    assert world_module.camera_fov_deg(camera, 200, 300) == pytest.approx(horizontal)  # larger dim = height
    camera.sensor_fit = "VERTICAL"
    expected = math.degrees(2 * math.atan(12.0 / 50.0 * 1.5))
    assert world_module.camera_fov_deg(camera, 300, 200) == pytest.approx(expected)


def test_world_without_environment_texture_names_the_world():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.world = bpy.data.worlds.new("Plain Grey")
    with pytest.raises(RelightInputError, match="Plain Grey.*no Environment Texture"):
        world_module.world_lighting(scene)


def world_on_generated_image(fill: float, strength: float):
    """An empty scene with a camera and a world whose Environment Texture is a 2:1 float image filled with `fill`."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.world = bpy.data.worlds.new("Sky World")
    tree = scene.world.node_tree
    background = next(n for n in tree.nodes if n.type == "BACKGROUND")
    background.inputs["Strength"].default_value = strength
    image = bpy.data.images.new("Sky", 16, 8, float_buffer=True)
    image.pixels.foreach_set(np.full(16 * 8 * 4, fill, np.float32))
    texture = tree.nodes.new("ShaderNodeTexEnvironment")
    texture.image = image
    tree.links.new(texture.outputs["Color"], background.inputs["Color"])
    scene.camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(scene.camera)
    return scene


@pytest.mark.parametrize("fill, strength, error", [
    (0.0, 1.0, "image 'Sky': HDRI has no positive light"),
    (np.inf, 1.0, "image 'Sky': HDRI contains NaN or Inf values"),
    (np.nan, 1.0, "image 'Sky': HDRI contains NaN or Inf values"),
    (-1.0, 1.0, "image 'Sky': HDRI has no positive light"),
    (1.0, 0.0, "unsaved .blend: world 'Sky World' has Background strength 0: no light"),
])
def test_world_light_is_checked_like_an_hdri_file(fill, strength, error):
    scene = world_on_generated_image(fill, strength)
    with pytest.raises(RelightInputError) as raised:
        world_module.world_lighting(scene)
    assert str(raised.value).startswith(error)


def test_world_light_keeps_its_strength_and_clamps_compression_noise():
    scene = world_on_generated_image(0.5, 2.0)
    image = scene.world.node_tree.nodes["Environment Texture"].image
    pixels = np.full((8, 16, 4), 0.5, np.float32)
    pixels[0, 0, :3] = -1e-4  # what lossy EXR compression leaves around black: noise, not negative light
    image.pixels.foreach_set(pixels.ravel())
    radiance = world_module.world_lighting(scene).environment.radiance
    assert radiance.min() == 0.0 and radiance.max() == pytest.approx(1.0)
