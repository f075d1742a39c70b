"""A scene's HDRI world, seen from its active camera, as the pipeline's Environment (CONVENTIONS.md).

The panorama lookup for a camera-space direction d_cam is q = R_map · R_cam · d_cam, where R_cam is the rotation
part of the camera's world matrix and R_map the world Mapping node's rotation (the Z rotation of the usual
"rotate the HDRI" setup; X/Y rotation are honoured too). So cam_to_env = R_map @ R_cam.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import bpy
import numpy as np

from ..inference.errors import RelightInputError
from ..inference.io.imageio import usable_light
from ..inference.lighting.environment import Environment
from .blender_compat import world_node_tree
from .image_utils import image_label, image_to_array


@dataclass(frozen=True)
class WorldLighting:
    environment: Environment
    fov_deg: float  # camera field of view across the larger dimension of the image it is used for


def _blend_label() -> str:
    """What the world's problems are reported against: the .blend file."""
    return bpy.data.filepath or "unsaved .blend"


def _linked_from(socket: "bpy.types.NodeSocket"):
    """The node feeding `socket`, skipping reroutes; None when unlinked."""
    while socket.is_linked:
        node = socket.links[0].from_node
        if node.type != "REROUTE":
            return node
        socket = node.inputs[0]
    return None


def find_environment_texture(world: "bpy.types.World", label: str):
    """(Environment Texture node, strength): prefer the one feeding the world's Background shader."""
    tree = world_node_tree(world)
    if tree is None:
        raise RelightInputError(label, f"world '{world.name}' does not use nodes, so has no Environment Texture")
    for background in (n for n in tree.nodes if n.type == "BACKGROUND"):
        source = _linked_from(background.inputs["Color"])
        if source is not None and source.type == "TEX_ENVIRONMENT":
            return source, float(background.inputs["Strength"].default_value)
    textures = [n for n in tree.nodes if n.type == "TEX_ENVIRONMENT"]
    if not textures:
        raise RelightInputError(label, f"world '{world.name}' has no Environment Texture node")
    return textures[0], 1.0


def mapping_rotation(texture_node) -> np.ndarray:
    """3x3 rotation the world's Mapping node applies to directions before the panorama lookup."""
    mapping = _linked_from(texture_node.inputs["Vector"])
    if mapping is None or mapping.type != "MAPPING":
        return np.eye(3)
    from mathutils import Euler  # Blender-only module, imported where it is used

    rotation = np.array(Euler(mapping.inputs["Rotation"].default_value, "XYZ").to_matrix())
    # TEXTURE mode applies the inverse transform (it moves the texture rather than the coordinates).
    return rotation.T if mapping.vector_type == "TEXTURE" else rotation


def camera_fov_deg(camera_data, width: int, height: int) -> float:
    """Field of view across the larger of width/height, as Blender frames that aspect with this camera."""
    if camera_data.type != "PERSP":
        raise RelightInputError(None, f"camera '{camera_data.name}' is not a perspective camera")
    fit = camera_data.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if width >= height else "VERTICAL"
        sensor = camera_data.sensor_width  # AUTO uses sensor_width for whichever dimension is larger
    else:
        sensor = camera_data.sensor_width if fit == "HORIZONTAL" else camera_data.sensor_height
    half = sensor / (2.0 * camera_data.lens)  # tan of the half angle along the fitted dimension
    if fit == "HORIZONTAL" and height > width:
        half *= height / width
    elif fit == "VERTICAL" and width > height:
        half *= width / height
    return math.degrees(2.0 * math.atan(half))


def camera_rotation(camera: "bpy.types.Object") -> np.ndarray:
    """Rotation part of the camera's evaluated world matrix, with any object scale removed.

    The evaluated copy matters: `matrix_world` of the original object is stale until the depsgraph updates
    (right after a script sets rotation_euler, or with constraints/animation)."""
    if bpy.context.view_layer is not None:
        camera = camera.evaluated_get(bpy.context.evaluated_depsgraph_get())
    matrix = np.array(camera.matrix_world.to_3x3(), np.float64)
    matrix /= np.linalg.norm(matrix, axis=0, keepdims=True)
    return matrix


def world_lighting(scene: "bpy.types.Scene", width: int | None = None, height: int | None = None) -> WorldLighting:
    """The scene's world HDRI oriented into its active camera's frame, plus that camera's FOV.

    width/height: size of the image the lighting is for (default: the scene's render size)."""
    label = _blend_label()
    world = scene.world
    if world is None:
        raise RelightInputError(label, f"scene '{scene.name}' has no world")
    texture, strength = find_environment_texture(world, label)
    if texture.image is None:
        raise RelightInputError(label, f"the Environment Texture of world '{world.name}' has no image")
    if texture.projection != "EQUIRECTANGULAR":
        raise RelightInputError(label, f"world '{world.name}': only equirectangular environment maps are supported")
    hdri_label = image_label(texture.image)
    radiance = image_to_array(texture.image, require_finite=False)  # usable_light names NaN/Inf as an HDRI's
    h, w = radiance.shape[:2]
    if w != 2 * h:
        raise RelightInputError(hdri_label, f"HDRI is {w}x{h}, not an equirectangular 2:1 panorama")
    radiance = usable_light(hdri_label, radiance)  # the same checks as an HDRI file given on its own
    if strength <= 0.0:
        raise RelightInputError(label, f"world '{world.name}' has Background strength {strength:g}: no light")
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        raise RelightInputError(label, f"scene '{scene.name}' has no active camera")
    if width is None or height is None:
        render = scene.render
        width = render.resolution_x * render.pixel_aspect_x
        height = render.resolution_y * render.pixel_aspect_y
    try:
        fov = camera_fov_deg(camera.data, width, height)
    except RelightInputError as exc:
        raise RelightInputError(label, exc.problem) from exc
    cam_to_env = mapping_rotation(texture) @ camera_rotation(camera)
    return WorldLighting(Environment((radiance * strength).astype(np.float32), cam_to_env), fov)


def world_lighting_from_blend(path: str, width: int, height: int) -> WorldLighting:
    """Open a .blend (replacing the current file, as the command line does) and read its scene's world."""
    if not os.path.isfile(path):
        raise RelightInputError(path, "file not found")
    try:
        # use_scripts=False whatever the preferences say: a .blend from elsewhere must not run its registered text
        # blocks or Python drivers here (only Blender's restricted simple expressions are evaluated).
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(path), load_ui=False, use_scripts=False)
    except RuntimeError as exc:
        raise RelightInputError(path, f"not a readable .blend file ({str(exc).strip().splitlines()[-1]})") from exc
    return world_lighting(bpy.context.scene, width, height)
