"""The reusable Cycles scene of the virtual light stage: camera, HDRI world, passes, OLAT suns.

One `Stage` is built per process and re-used for every sample: only what changes (world image, rotation,
camera pose, subject) is touched between renders, so Cycles keeps its compiled kernels and loaded images.

Orientation follows CONVENTIONS.md: the world is an Environment Texture looked up with the direction rotated by
a Mapping node (POINT, Z rotation), so for a camera-space direction d the panorama direction is
q = Rz(rot_z) @ R_cam @ d, i.e. cam_to_env = Rz(rot_z) @ R_cam, exactly what operators/world.py reads back.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import weakref
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector

VIEW_LAYER = "ViewLayer"
AOV_ALBEDO = "gt_albedo"  # shader AOVs: exact base colour / roughness, unlike DiffCol (Fresnel-weighted)
AOV_ROUGHNESS = "gt_roughness"


def reset_blender() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)


class Stage:
    """A Cycles scene with a camera, an HDRI world and the ground-truth passes enabled."""

    def __init__(self, width: int, height: int, samples: int, seed: int = 0, threads: int = 0):
        reset_blender()
        scene = bpy.context.scene
        self.scene = scene
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        scene.cycles.seed = seed
        scene.cycles.use_animated_seed = False
        scene.cycles.use_adaptive_sampling = True
        scene.cycles.use_denoising = True
        scene.cycles.denoiser = "OPENIMAGEDENOISE"
        scene.cycles.max_bounces = 6
        scene.cycles.transparent_max_bounces = 8
        scene.render.threads_mode = "FIXED" if threads else "AUTO"
        if threads:
            scene.render.threads = threads
        scene.render.resolution_x, scene.render.resolution_y = width, height
        scene.render.resolution_percentage = 100
        # Transparent film: Combined is the premultiplied subject, its alpha is the coverage, and the
        # Environment pass is the (1 - alpha)-weighted background, so plate = Combined + Env in one render.
        scene.render.film_transparent = True
        scene.view_settings.view_transform = "Standard"
        settings = scene.render.image_settings
        settings.media_type = "MULTI_LAYER_IMAGE"
        settings.file_format = "OPEN_EXR_MULTILAYER"
        settings.color_depth = "32"
        settings.exr_codec = "ZIP"
        layer = scene.view_layers[0]
        layer.name = VIEW_LAYER
        layer.use_pass_environment = True
        layer.use_pass_normal = True
        layer.use_pass_z = True
        for name in (AOV_ALBEDO, AOV_ROUGHNESS):
            aov = layer.aovs.add()
            aov.name = name
            aov.type = "COLOR" if name == AOV_ALBEDO else "VALUE"
        self.layer = layer
        self._build_camera()
        self._build_world()
        self.olat_lights: list[bpy.types.Object] = []
        self._tmp = Path(tempfile.mkdtemp(prefix="lightstage_"))  # Cycles writes each render here
        weakref.finalize(self, shutil.rmtree, self._tmp, True)
        self._images: dict[str, bpy.types.Image] = {}

    # ----------------------------------------------------------------------------------------------- camera
    def _build_camera(self) -> None:
        data = bpy.data.cameras.new("GTCamera")
        data.sensor_fit = "AUTO"
        self.camera = bpy.data.objects.new("GTCamera", data)
        self.scene.collection.objects.link(self.camera)
        self.scene.camera = self.camera

    def set_camera(self, target: np.ndarray, distance: float, yaw_deg: float, pitch_deg: float, roll_deg: float,
                   fov_deg: float) -> np.ndarray:
        """Orbit the camera around `target` (subject looks toward -Y, Z up); returns R_cam (3x3).

        yaw turns the camera to the subject's left/right (the head appears turned), pitch raises it."""
        yaw, pitch, roll = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
        # the camera sits in front of the face (-Y) and looks back at it
        offset = np.array([math.sin(yaw) * math.cos(pitch), -math.cos(yaw) * math.cos(pitch), math.sin(pitch)])
        position = np.asarray(target, float) + distance * offset
        back = offset  # camera +Z axis points away from the subject
        right = np.cross(np.array([0.0, 0.0, 1.0]), back)
        right /= np.linalg.norm(right)
        up = np.cross(back, right)
        c, s = math.cos(roll), math.sin(roll)
        right, up = c * right + s * up, -s * right + c * up
        rotation = np.stack([right, up, back], axis=1)
        matrix = Matrix.Identity(4)
        matrix.col[0][:3], matrix.col[1][:3], matrix.col[2][:3] = (Vector(v) for v in rotation.T)
        matrix.translation = Vector(position)
        self.camera.matrix_world = matrix
        self.camera.data.angle = math.radians(fov_deg)  # AUTO fit: across the larger image side
        self.camera.data.clip_start = 0.01
        return rotation

    # ------------------------------------------------------------------------------------------------ world
    def _build_world(self) -> None:
        world = bpy.data.worlds.new("GTWorld")
        self.scene.world = world
        tree = world.node_tree
        tree.nodes.clear()
        coords = tree.nodes.new("ShaderNodeTexCoord")
        mapping = tree.nodes.new("ShaderNodeMapping")
        mapping.vector_type = "POINT"
        env = tree.nodes.new("ShaderNodeTexEnvironment")
        env.interpolation = "Linear"
        background = tree.nodes.new("ShaderNodeBackground")
        output = tree.nodes.new("ShaderNodeOutputWorld")
        tree.links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
        tree.links.new(mapping.outputs["Vector"], env.inputs["Vector"])
        tree.links.new(env.outputs["Color"], background.inputs["Color"])
        tree.links.new(background.outputs["Background"], output.inputs["Surface"])
        self.world_mapping, self.world_texture, self.world_background = mapping, env, background

    def load_image(self, path: Path, colorspace: str = "Linear Rec.709") -> "bpy.types.Image":
        key = str(path)
        if key not in self._images:
            image = bpy.data.images.load(key, check_existing=True)
            image.colorspace_settings.name = colorspace
            self._images[key] = image
        return self._images[key]

    def set_world(self, hdri_path: Path | None, rotation_z_deg: float, strength: float) -> None:
        """HDRI world (None: black, used for OLAT renders) rotated about Z by the Mapping node."""
        if hdri_path is None:
            self.world_background.inputs["Strength"].default_value = 0.0
            return
        self.world_texture.image = self.load_image(hdri_path)
        self.world_mapping.inputs["Rotation"].default_value = (0.0, 0.0, math.radians(rotation_z_deg))
        self.world_background.inputs["Strength"].default_value = strength

    # ------------------------------------------------------------------------------------------------- OLAT
    def build_olat(self, directions_world: np.ndarray) -> None:
        """One sun per direction (unit, world frame, pointing from the subject toward the light), each in its
        own light group so a single render yields every one-light-at-a-time image. The sun's angular diameter
        gives it about the solid angle of its Voronoi cell (4 pi / N), so it looks like that patch of sky."""
        count = len(directions_world)
        angle = 2.0 * math.acos(1.0 - 2.0 / count)
        for i, direction in enumerate(directions_world):
            name = f"olat{i:03d}"
            self.layer.lightgroups.add(name=name)
            light = bpy.data.lights.new(name, "SUN")
            light.energy = 1.0  # irradiance 1 W/m^2 on a surface facing it
            light.angle = angle
            obj = bpy.data.objects.new(name, light)
            # a sun shines along its local -Z: point -Z away from `direction`
            obj.rotation_euler = Vector(-direction).to_track_quat("-Z", "Y").to_euler()
            obj.lightgroup = name
            obj.hide_render = True
            self.scene.collection.objects.link(obj)
            self.olat_lights.append(obj)

    def show_olat(self, visible: bool) -> None:
        for obj in self.olat_lights:
            obj.hide_render = not visible

    # ----------------------------------------------------------------------------------------------- render
    def render(self, samples: int | None = None) -> dict[str, np.ndarray]:
        """Render and return every channel of the view layer, float32, rows top to bottom."""
        if samples is not None:
            self.scene.cycles.samples = samples
        path = self._tmp / "render.exr"
        self.scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        return read_channels(path, VIEW_LAYER + ".")


def read_channels(path: Path, prefix: str) -> dict[str, np.ndarray]:
    """{'Combined.R': (H, W) float32, ...} for the channels whose names start with `prefix`."""
    import OpenEXR

    # Blender 5.0 writes multilayer EXRs as multi-part files (one part per pass): read every part
    with OpenEXR.File(str(path), separate_channels=True) as exr:
        return {name[len(prefix):]: np.asarray(ch.pixels, np.float32)
                for part in exr.parts for name, ch in part.channels.items() if name.startswith(prefix)}


def stack(channels: dict[str, np.ndarray], name: str, suffixes: str) -> np.ndarray:
    return np.stack([channels[f"{name}.{s}"] for s in suffixes], axis=-1)
