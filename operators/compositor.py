"""Compositor operator: relight the plate of the active Image (or Movie Clip) node.

The plate is the frame the node shows at the scene's current frame: a still image as is; an image sequence or
movie image (Image node: frame_start, frame_offset, frame_duration, use_cyclic, mapped as Blender's image user maps
them) or a movie clip (Movie Clip node: clip.frame_start, clip.frame_offset) at that frame, movies decoded with
PyAV (inference/shots/sources.Movie). Colours are decoded from the image's or clip's colorspace_settings like
Blender (inference/io/colorspace.py). Movie and sequence frames are written as <stem>.<frame>.exr so frames do not
collide.

Writes <output folder>/<plate stem>.exr (multilayer passes), then adds an Image node reading it, a Recombine
group wired to it, and connects the group's composite to the compositor output (5.0: Group Output, 4.5: Composite
node; operators/blender_compat.py). The backdrop the pipeline used is kept as a packed float image so the group's
composite equals the EXR's composite pass at default gains.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import bpy
import numpy as np

from ..inference.errors import RelightInputError
from ..inference.io.exr import write_passes
from ..inference.pipeline import fit_background, make_output_folder, relight
from ..inference.settings import RelightSettings
from ..inference.shots.frames import frame_file, split_frame_number
from ..inference.shots.sources import MOVIE_PADDING, Movie
from ..inference.shots.timeline import clip_frame, image_user_frame
from ..nodes.recombine import ensure_recombine_group
from . import jobs
from .blender_compat import compositor_output, compositor_tree
from .image_utils import array_to_image, blender_color_spaces, image_label, image_to_array
from .lighting import output_folder, resolve_shot_lighting
from .shot_settings import ShotOperator, relight_settings, shot_values

PASSES_NODE = "Portrait Relight Passes"
RECOMBINE_NODE = "Portrait Relight Recombine"
BACKDROP_NODE = "Portrait Relight Backdrop"
RECOMBINE_PASSES = ("albedo", "diffuse", "specular", "alpha")


def plate_node(tree: "bpy.types.NodeTree") -> "bpy.types.Node":
    node = tree.nodes.active
    if node is None or node.type not in {"IMAGE", "MOVIECLIP"} or node.name == PASSES_NODE:
        raise RelightInputError(None, "make an Image or Movie Clip node with the plate active in the compositor")
    if node.type == "IMAGE" and node.image is None:
        raise RelightInputError(None, f"compositor node '{node.name}' has no image")
    if node.type == "MOVIECLIP" and node.clip is None:
        raise RelightInputError(None, f"compositor node '{node.name}' has no movie clip")
    return node


class NodePlate(NamedTuple):
    pixels: np.ndarray  # scene-linear (H, W, 3)
    stem: str  # of the output file
    label: str  # the file (and movie frame) the pixels come from, for messages


def read_movie_frame(path: str, frame: int, colorspace: str) -> NodePlate:
    """Frame `frame` (from 1) of a movie file, stem `<movie stem>.<frame>`."""
    movie = Movie(path, colorspace, blender_color_spaces())
    try:
        if not 1 <= frame <= movie.frame_count:
            raise RelightInputError(path, f"the node shows movie frame {frame} at this scene frame; the movie has "
                                          f"frames 1-{movie.frame_count}")
        return NodePlate(movie.read(frame), f"{movie.name}.{frame:0{MOVIE_PADDING}d}", movie.label(frame))
    finally:
        movie.close()


def read_file_frame(path: Path, colorspace: str) -> NodePlate:
    """One frame file, loaded by Blender as a new image (never the node's own image, whose buffer holds whichever
    frame it showed last) in `colorspace`, then removed."""
    try:
        image = bpy.data.images.load(os.fspath(path), check_existing=False)
    except RuntimeError as exc:
        raise RelightInputError(path, f"Blender cannot read this image ({exc})") from exc
    image.colorspace_settings.name = colorspace
    try:
        return NodePlate(image_to_array(image), path.stem, os.fspath(path))
    finally:
        bpy.data.images.remove(image)


def read_node_plate(node: "bpy.types.Node", scene_frame: int) -> tuple[np.ndarray, str]:
    """(plate, output stem) of an Image or Movie Clip node at scene frame `scene_frame`."""
    return node_plate(node, scene_frame)[:2]


def node_plate(node: "bpy.types.Node", scene_frame: int) -> NodePlate:
    """The plate of an Image or Movie Clip node at scene frame `scene_frame`."""
    if node.type == "IMAGE":
        image = node.image
        if image.source not in {"SEQUENCE", "MOVIE"}:
            return NodePlate(image_to_array(image), Path(image.filepath or image.name).stem or "plate",
                             image_label(image))
        path = image_label(image)
        number = image_user_frame(scene_frame, node.frame_start, node.frame_offset, node.frame_duration,
                                  node.use_cyclic)
        if image.source == "MOVIE":
            return read_movie_frame(path, number, image.colorspace_settings.name)
        return read_file_frame(_frame_file(path, number, scene_frame), image.colorspace_settings.name)
    clip = node.clip
    path = os.path.normpath(bpy.path.abspath(clip.filepath, library=clip.library))
    if clip.source == "MOVIE":
        return read_movie_frame(path, clip_frame(scene_frame, clip.frame_start, clip.frame_offset),
                                clip.colorspace_settings.name)
    # an image sequence clip: its file path is its first frame; clip frame n is n - 1 files further on
    first = split_frame_number(Path(path).name)
    offset = clip_frame(scene_frame, clip.frame_start, clip.frame_offset) - 1
    frame_path = Path(path) if first is None else _frame_file(path, first.number + offset, scene_frame)
    if not frame_path.is_file():
        raise RelightInputError(frame_path, f"frame file of scene frame {scene_frame} not found")
    return read_file_frame(frame_path, clip.colorspace_settings.name)


def _frame_file(path: str, number: int, scene_frame: int) -> Path:
    """The existing file of frame `number` of the image sequence `path` belongs to."""
    try:
        frame_path = frame_file(path, number)
    except ValueError as exc:
        raise RelightInputError(path, "image sequence file name has no frame number") from exc
    if not frame_path.is_file():
        raise RelightInputError(frame_path, f"frame file of scene frame {scene_frame} not found")
    return frame_path


def relight_to_exr(plate: NodePlate, lighting, settings: RelightSettings, exr_path: Path, progress):
    """Worker-thread part: run the pipeline, write the EXR, return the backdrop the composite used."""
    height, width = plate.pixels.shape[:2]
    try:
        result = relight(plate.pixels, lighting.environment, settings, lighting.background,
                         lambda stage, fraction: progress(f"frame 1/1 {stage}", fraction))
    except RelightInputError as exc:
        if exc.path is None:  # stage errors (no person found) know the problem, not the file
            raise RelightInputError(plate.label, exc.problem) from exc
        raise
    write_passes(exr_path, result.passes)
    if lighting.background is not None:
        return fit_background(lighting.background, height, width)
    return lighting.environment.view(width, height, lighting.fov_deg)  # the backdrop relight() composited over


def _node(tree, name: str, bl_idname: str, location) -> "bpy.types.Node":
    """Reuse the node we made last time (re-running replaces results rather than piling up nodes)."""
    node = tree.nodes.get(name)
    if node is None or node.bl_idname != bl_idname:
        node = tree.nodes.new(bl_idname)
        node.name = node.label = name
    node.location = location
    return node


def insert_nodes(scene, source_node, exr_path: Path, backdrop: np.ndarray) -> "bpy.types.Node":
    """Image node on the EXR + Recombine group, wired to the compositor output; returns the group node."""
    tree = compositor_tree(scene)
    image = bpy.data.images.load(str(exr_path), check_existing=True)
    image.reload()  # a re-run overwrote the file
    x, y = source_node.location
    passes = _node(tree, PASSES_NODE, "CompositorNodeImage", (x + 300, y))
    passes.image = image
    missing = [p for p in RECOMBINE_PASSES if p not in passes.outputs]
    if missing:
        raise RelightInputError(exr_path, f"EXR lacks passes {', '.join(missing)}")

    backdrop_image = array_to_image(backdrop, BACKDROP_NODE, image=bpy.data.images.get(BACKDROP_NODE))
    backdrop_image.pack()  # generated pixels would be lost on save otherwise
    backdrop_node = _node(tree, BACKDROP_NODE, "CompositorNodeImage", (x + 300, y - 350))
    backdrop_node.image = backdrop_image

    group = _node(tree, RECOMBINE_NODE, "CompositorNodeGroup", (x + 600, y))
    group.node_tree = ensure_recombine_group()
    for name in RECOMBINE_PASSES:
        tree.links.new(passes.outputs[name], group.inputs[name])
    tree.links.new(backdrop_node.outputs["Image"], group.inputs["background"])
    output = compositor_output(tree)
    output.location = (x + 900, y)
    tree.links.new(group.outputs["composite"], output.inputs[0])
    return group


class PORTRAIT_RELIGHT_OT_compositor_relight(ShotOperator, bpy.types.Operator):
    """Relight the active Image node's plate with the scene's Portrait Relight settings and add the recombine
    node setup"""

    bl_idname = "portrait_relight.compositor_relight"
    bl_label = "Relight Portrait"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        tree = compositor_tree(context.scene, create=False) if context.scene else None
        return tree is not None and tree.nodes.active is not None

    def execute(self, context):
        scene = context.scene
        try:
            source = plate_node(compositor_tree(scene))
            plate = node_plate(source, scene.frame_current)
            height, width = plate.pixels.shape[:2]
            values = shot_values(scene, self)
            lighting = resolve_shot_lighting(values, scene, width, height)
            settings = relight_settings(context, values, lighting.fov_deg)
            out_dir = Path(output_folder(values))
            undo_folder = make_output_folder(out_dir)
            exr_path = out_dir / f"{plate.stem}.exr"
            scene_name, source_name = scene.name, source.name

            def work(progress):
                try:
                    backdrop = relight_to_exr(plate, lighting, settings, exr_path, progress)
                except BaseException:
                    undo_folder()  # a failed job leaves no folder behind that it made
                    raise
                progress.frame_done(f"frame 1/1 relit -> {os.fspath(exr_path)}")
                return backdrop

            def apply(backdrop):
                target = jobs.still_there(bpy.data.scenes, scene_name, "scene", exr_path)
                node = jobs.still_there(compositor_tree(target).nodes, source_name, "plate node", exr_path)
                insert_nodes(target, node, exr_path, backdrop)

            jobs.start("Portrait Relight", work, apply)
        except RelightInputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"relighting {plate.stem} -> {os.fspath(exr_path)}")
        return {"FINISHED"}


def menu_entry(self, _context):
    self.layout.operator(PORTRAIT_RELIGHT_OT_compositor_relight.bl_idname, icon="LIGHT")


def register():
    bpy.utils.register_class(PORTRAIT_RELIGHT_OT_compositor_relight)
    bpy.types.NODE_MT_context_menu.append(menu_entry)


def unregister():
    bpy.types.NODE_MT_context_menu.remove(menu_entry)
    bpy.utils.unregister_class(PORTRAIT_RELIGHT_OT_compositor_relight)
