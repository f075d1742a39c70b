"""Add Relit Plate to Scene: a camera-facing card carrying the relit EXR's albedo, normals and matte, so Blender's
own lights and world relight the subject in Cycles and EEVEE and it casts shadows onto the set.

- The card is a quad parented to the active camera at camera-local z = -distance, sized to the camera's frustum
  there for the plate's aspect (the FOV across the larger side, as the pipeline uses it), honouring lens shift.
- Its UVs run along camera +X (U) and +Y (V), so the mesh tangent/bitangent/normal are camera +X/+Y/+Z: the
  camera-space normal pass (OpenGL, CONVENTIONS.md) *is* the tangent-space normal map, encoded 0.5·n + 0.5.
- Blender's Image Texture node reads only the first pass of a multilayer EXR (the pass choice is read-only from
  Python), so the maps are split into one-pass EXRs beside the source (inference/io/card_passes.py) and each is an
  Image Texture; image sequences become SEQUENCE images whose image user follows the scene frame.
- Material: Principled BSDF with the albedo as Base Color, the normal map through a tangent-space Normal Map
  node, the matte as Alpha, and roughness from a `roughness` pass when the EXR has one, else a skin-like constant.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import bpy

from ..inference.errors import RelightInputError
from ..inference.io.card_passes import card_folder, exr_size, split_card_maps
from ..inference.shots.frames import sequence_frames
from ..inference.shots.outputs import pass_file_source
from . import jobs
from .blender_compat import compositor_tree, material_node_tree
from .compositor import PASSES_NODE as COMPOSITOR_PASSES_NODE
from .preferences import addon_preferences, cache_folder
from .world import camera_fov_deg

CARD_NAME = "Relit Plate"
UV_MAP = "UVMap"
SKIN_ROUGHNESS = 0.45
SKIN_IOR = 1.4


def frame_extent(camera_data, width: int, height: int, distance: float) -> tuple[float, float]:
    """(width, height) in camera units of what the camera frames of a width x height image at `distance`."""
    if camera_data.type == "PERSP":
        long_side = 2.0 * distance * math.tan(math.radians(camera_fov_deg(camera_data, width, height)) / 2.0)
    elif camera_data.type == "ORTHO":
        fit = camera_data.sensor_fit
        if fit == "AUTO":
            fit = "HORIZONTAL" if width >= height else "VERTICAL"
        long_side = camera_data.ortho_scale  # spans the fitted dimension
        if fit == "HORIZONTAL" and height > width:
            long_side *= height / width
        elif fit == "VERTICAL" and width > height:
            long_side *= width / height
    else:
        raise RelightInputError(None, f"camera '{camera_data.name}' is panoramic; use a perspective or "
                                      "orthographic camera for a relit plate")
    if width >= height:
        return long_side, long_side * height / width
    return long_side * width / height, long_side


def default_relit_exr(scene: "bpy.types.Scene") -> str:
    """The relit EXR last added by the compositor operator, else the full EXR behind an active relit strip."""
    tree = compositor_tree(scene, create=False)
    node = tree.nodes.get(COMPOSITOR_PASSES_NODE) if tree is not None else None
    if node is not None and node.image is not None and node.image.filepath:
        return bpy.path.abspath(node.image.filepath, library=node.image.library)
    editor = scene.sequence_editor
    strip = editor.active_strip if editor else None
    if strip is not None and strip.type == "IMAGE" and strip.elements:
        first = Path(bpy.path.abspath(strip.directory)) / strip.elements[0].filename
        full = pass_file_source(first)
        if full is not None and full.is_file():
            return str(full)
    return ""


def maps_folder(source: Path, prefs) -> Path:
    """Beside the source when its folder is writable, else under the cache folder."""
    folder = card_folder(source)
    if os.access(folder if folder.is_dir() else folder.parent, os.W_OK):
        return folder
    return cache_folder(prefs) / "cards" / folder.name


def split_all(frames: list[tuple[int, Path]], folder: Path, progress) -> list[dict[str, Path]]:
    """Worker-thread part: split every frame's maps."""
    written = []
    for index, (_number, path) in enumerate(frames):
        progress(f"frame {index + 1}/{len(frames)}", index / len(frames))
        written.append(split_card_maps(path, folder))
    return written


def _image(path: Path, name: str, colorspace: str, sequence: bool) -> "bpy.types.Image":
    image = bpy.data.images.load(str(path), check_existing=True)
    image.reload()  # a re-split overwrote the file
    image.name = name
    image.colorspace_settings.name = colorspace
    if sequence:
        image.source = "SEQUENCE"
    return image


def _texture(nodes, image, frames, frame_start: int, location) -> "bpy.types.Node":
    node = nodes.new("ShaderNodeTexImage")
    node.image = image
    node.interpolation = "Linear"
    node.extension = "EXTEND"
    node.location = location
    if image.source == "SEQUENCE":
        user = node.image_user
        first, last = frames[0][0], frames[-1][0]
        user.frame_duration = last - first + 1
        user.frame_start = frame_start
        user.frame_offset = first - 1  # scene frame `frame_start` shows file number `first`
        user.use_cyclic = False
        user.use_auto_refresh = True
    return node


def build_material(name: str, maps: dict[str, Path], frames, frame_start: int,
                   roughness: float) -> "bpy.types.Material":
    sequence = len(frames) > 1
    material = bpy.data.materials.new(name)
    material.surface_render_method = "DITHERED"  # EEVEE: alpha-tested, casts shadows through the matte
    material.use_transparent_shadow = True
    tree = material_node_tree(material)
    nodes, links = tree.nodes, tree.links
    nodes.clear()
    output = nodes.new("ShaderNodeOutputMaterial")
    output.location = (400, 0)
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.location = (0, 0)
    links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    bsdf.inputs["IOR"].default_value = SKIN_IOR
    bsdf.inputs["Roughness"].default_value = roughness

    uv = nodes.new("ShaderNodeUVMap")
    uv.uv_map = UV_MAP
    uv.location = (-900, 0)

    def texture(map_name: str, colorspace: str, y: float):
        image = _image(maps[map_name], f"{name} {map_name}", colorspace, sequence)
        node = _texture(nodes, image, frames, frame_start, (-600, y))
        node.label = map_name
        links.new(uv.outputs["UV"], node.inputs["Vector"])
        return node

    albedo = texture("albedo", "Linear Rec.709", 300)
    links.new(albedo.outputs["Color"], bsdf.inputs["Base Color"])
    alpha = texture("alpha", "Non-Color", 0)
    links.new(alpha.outputs["Color"], bsdf.inputs["Alpha"])
    normal = texture("normal_map", "Non-Color", -300)
    normal_map = nodes.new("ShaderNodeNormalMap")
    normal_map.space = "TANGENT"
    normal_map.uv_map = UV_MAP
    normal_map.location = (-250, -300)
    links.new(normal.outputs["Color"], normal_map.inputs["Color"])
    links.new(normal_map.outputs["Normal"], bsdf.inputs["Normal"])
    if "roughness" in maps:
        rough = texture("roughness", "Non-Color", -600)
        links.new(rough.outputs["Color"], bsdf.inputs["Roughness"])
    return material


def build_card_mesh(name: str, width: float, height: float) -> "bpy.types.Mesh":
    """A quad in the card's local XY plane facing +Z (the camera), U along +X and V along +Y."""
    mesh = bpy.data.meshes.new(name)
    w, h = width / 2.0, height / 2.0
    mesh.from_pydata([(-w, -h, 0.0), (w, -h, 0.0), (w, h, 0.0), (-w, h, 0.0)], [], [(0, 1, 2, 3)])
    uv = mesh.uv_layers.new(name=UV_MAP)
    for loop, corner in zip(mesh.loops, ((0, 0), (1, 0), (1, 1), (0, 1))):
        uv.data[loop.index].uv = corner
    mesh.update()
    return mesh


class PORTRAIT_RELIGHT_OT_add_relit_card(bpy.types.Operator):
    """Add a camera-facing card with the relit EXR's albedo, normals and matte, lit by the scene's own lights"""

    bl_idname = "portrait_relight.add_relit_card"
    bl_label = "Add Relit Plate to Scene"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(
        name="Relit EXR", subtype="FILE_PATH",
        description="A multilayer EXR written by Portrait Relight (one frame of a sequence picks the whole "
                    "sequence)",
    )
    distance: bpy.props.FloatProperty(
        name="Distance", default=3.0, min=0.001, soft_max=100.0, unit="LENGTH",
        description="Distance of the card in front of the camera; it is sized to fill the frame there",
    )
    frame_start: bpy.props.IntProperty(
        name="Start Frame", default=1, description="Scene frame that shows the first frame of a sequence",
    )
    roughness: bpy.props.FloatProperty(
        name="Roughness", default=SKIN_ROUGHNESS, min=0.0, max=1.0,
        description="Surface roughness when the EXR has no roughness pass (skin-like by default)",
    )

    @classmethod
    def poll(cls, context):
        return context.scene is not None

    def invoke(self, context, _event):
        if not self.filepath:
            self.filepath = default_relit_exr(context.scene)
        self.frame_start = context.scene.frame_start
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        scene = context.scene
        try:
            camera = scene.camera
            if camera is None or camera.type != "CAMERA":
                raise RelightInputError(None, f"scene '{scene.name}' has no active camera to put the card in front of")
            if not self.filepath:
                raise RelightInputError(None, "choose a relit EXR written by Portrait Relight")
            source = Path(bpy.path.abspath(self.filepath))
            if not source.is_file():
                raise RelightInputError(source, "file not found")
            frames = sequence_frames(source)
            folder = maps_folder(source, addon_preferences(context))
            scene_name, camera_name = scene.name, camera.name
            collection_name = context.collection.name if context.collection else None
            distance, frame_start, roughness = self.distance, self.frame_start, self.roughness

            def work(progress):
                with jobs.undone_on_error([folder]):  # no half-split card folder when a frame is not a relit EXR
                    return split_all(frames, folder, progress)

            def apply(written):
                target = jobs.still_there(bpy.data.scenes, scene_name, "scene", folder)
                camera_object = jobs.still_there(bpy.data.objects, camera_name, "camera", folder)
                collection = bpy.data.collections.get(collection_name) if collection_name else None
                create_card(target, collection or target.collection, camera_object, written[0], frames, source,
                            distance, frame_start, roughness)

            jobs.start("Portrait Relight Card", work, apply)
        except RelightInputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


def create_card(scene, collection, camera, maps: dict[str, Path], frames, source: Path, distance: float,
                frame_start: int, roughness: float) -> "bpy.types.Object":
    """Main-thread part: the card object, parented to `camera`, with its material; returns the object."""
    from mathutils import Matrix  # Blender-only module

    stem = card_folder(source).name[: -len("_card")]
    name = f"{CARD_NAME} {stem}"
    material = build_material(name, maps, frames, frame_start, roughness)
    width, height = exr_size(maps["albedo"])  # Blender reports (0, 0) for a multilayer EXR until it is drawn
    card_w, card_h = frame_extent(camera.data, width, height, distance)
    mesh = build_card_mesh(name, card_w, card_h)
    mesh.materials.append(material)
    card = bpy.data.objects.new(name, mesh)
    collection.objects.link(card)
    long_side = max(card_w, card_h)
    card.parent = camera
    # Local coordinates of the card = the camera's, without the camera object's scale.
    scale = camera.matrix_world.to_scale()
    card.matrix_parent_inverse = Matrix.Diagonal((1.0 / scale.x, 1.0 / scale.y, 1.0 / scale.z, 1.0))
    card.location = (camera.data.shift_x * long_side, camera.data.shift_y * long_side, -distance)
    card.rotation_euler = (0.0, 0.0, 0.0)
    card["portrait_relight_source"] = str(source)
    return card


def menu_entry(self, _context):
    self.layout.operator(PORTRAIT_RELIGHT_OT_add_relit_card.bl_idname, icon="LIGHT")


def register():
    bpy.utils.register_class(PORTRAIT_RELIGHT_OT_add_relit_card)
    bpy.types.VIEW3D_MT_image_add.append(menu_entry)


def unregister():
    bpy.types.VIEW3D_MT_image_add.remove(menu_entry)
    bpy.utils.unregister_class(PORTRAIT_RELIGHT_OT_add_relit_card)
