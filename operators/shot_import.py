"""Operator "Load Relit Shot": bring a shot relit elsewhere (./relight, a farm chunk, `blender -b -c`) into the scene.

Given one file of `DIR/<name>.####.exr` (multilayer passes, inference/shots/), it adds:
- Compositor: an Image node on the EXR sequence (`source = 'SEQUENCE'`) whose frame settings make scene frame F
  show file F (`frame_start` = first file frame, `frame_offset` = first - 1, `frame_duration` = the range), so
  every pass is a socket that follows the timeline.
- Sequencer: an image strip of one pass (composite or relit) starting at scene frame `first`, on the lowest free
  channel. The Sequencer shows only the first pass of a multilayer EXR, so that pass is copied once into one-pass
  `<stem>_<pass>.exr` files beside the shot (through temp files; up-to-date copies are kept).
A gap in the frame numbers (a farm chunk still missing) is refused with one line naming the missing frames.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from ..inference.errors import RelightInputError
from ..inference.io.card_passes import exr_size
from ..inference.shots.frames import format_frames, sequence_frames
from ..inference.shots.outputs import pass_file, write_pass_files
from . import jobs
from .blender_compat import compositor_tree

SHOT_NODE_PREFIX = "Relit Shot "
STRIP_PASSES = ("composite", "relit")


def shot_frames(path: Path) -> list[tuple[int, Path]]:
    """[(frame, file)] of the relit shot `path` belongs to; a single file is frame 1. Gaps are an error."""
    if not path.is_file():
        raise RelightInputError(path, "file not found")
    frames = sequence_frames(path)
    numbers = [number for number, _ in frames]
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        raise RelightInputError(path, f"the shot is missing frames {format_frames(missing)} (a render still "
                                      "running or failed?); relight them first")
    exr_size(frames[0][1])  # not an EXR at all fails here, before anything is added (a header read: cheap)
    return frames if len(frames) > 1 else [(1, path)]


def add_shot_node(scene: "bpy.types.Scene", frames: list[tuple[int, Path]],
                  scene_start: int | None = None) -> "bpy.types.Node":
    """The compositor Image node on the shot's passes, frame-locked to the timeline (reused on re-runs): file
    `frames[0]` shows at scene frame `scene_start` (default: the file's own frame number)."""
    first_number, first_file = frames[0]
    name = SHOT_NODE_PREFIX + first_file.name
    tree = compositor_tree(scene)
    node = tree.nodes.get(name)
    if node is None or node.bl_idname != "CompositorNodeImage":
        node = tree.nodes.new("CompositorNodeImage")
        node.name = node.label = name
        node.location = (-400, -400 - 60 * sum(n.name.startswith(SHOT_NODE_PREFIX) for n in tree.nodes))
    image = bpy.data.images.load(str(first_file), check_existing=True)
    image.reload()
    if len(frames) > 1:
        image.source = "SEQUENCE"
        node.frame_duration = frames[-1][0] - first_number + 1
        node.frame_start = first_number if scene_start is None else scene_start
        node.frame_offset = first_number - 1  # scene frame `frame_start` shows file number `first_number`
        node.use_cyclic = False
        node.use_auto_refresh = True
    node.image = image
    return node


def free_channel(editor, start: int, end: int, lowest: int = 1) -> int:
    """The lowest channel from `lowest` up with no strip overlapping frames [start, end)."""
    channel = lowest
    while any(s.channel == channel and s.frame_final_start < end and s.frame_final_end > start
              for s in editor.strips_all):
        channel += 1
    return channel


def add_shot_strip(scene: "bpy.types.Scene", frames: list[tuple[int, Path]], pass_files: list[Path],
                   pass_name: str) -> "bpy.types.Strip":
    """An image strip of the pass files, frame `first` at scene frame `first`, above everything it overlaps."""
    if scene.sequence_editor is None:
        scene.sequence_editor_create()
    editor = scene.sequence_editor
    name = f"{frames[0][1].stem.rstrip('0123456789').rstrip('._-') or frames[0][1].stem}_{pass_name}"
    old = editor.strips_all.get(name)
    if old is not None:  # re-loading replaces the strip
        editor.strips.remove(old)
    start = frames[0][0] if len(frames) > 1 else scene.frame_current
    channel = free_channel(editor, start, start + len(frames))
    strip = editor.strips.new_image(name, str(pass_files[0]), channel, start)
    for path in pass_files[1:]:
        strip.elements.append(path.name)
    strip.colorspace_settings.name = "Linear Rec.709"
    return strip


class PORTRAIT_RELIGHT_OT_load_relit_shot(bpy.types.Operator):
    """Load a relit shot (DIR/<name>.####.exr from ./relight or a farm) as a frame-locked compositor Image node
    and a Sequencer strip"""

    bl_idname = "portrait_relight.load_relit_shot"
    bl_label = "Load Relit Shot"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(name="File", subtype="FILE_PATH",
                                       description="any frame of the relit shot (<name>.####.exr)")
    filter_glob: bpy.props.StringProperty(default="*.exr", options={"HIDDEN"})
    strip_pass: bpy.props.EnumProperty(
        name="Strip Pass", default="composite",
        items=[("composite", "Composite", "the relit subject over the backdrop"),
               ("relit", "Relit", "the relit subject alone (premultiplied by alpha)")])
    add_strip: bpy.props.BoolProperty(name="Add Sequencer Strip", default=True)

    def invoke(self, context, _event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        scene_name, pass_name = context.scene.name, self.strip_pass
        try:
            frames = shot_frames(Path(bpy.path.abspath(self.filepath)))
            if not self.add_strip:
                add_shot_node(context.scene, frames)
            else:
                def work(progress):
                    sources = [path for _, path in frames]
                    # a frame that is no relit EXR fails the load: the pass files of the frames before it go too
                    with jobs.undone_on_error([pass_file(path, pass_name) for path in sources]):
                        return write_pass_files(sources, pass_name, progress)

                def apply(pass_files):  # node and strip together, once every frame proved a relit EXR
                    target = jobs.still_there(bpy.data.scenes, scene_name, "scene", frames[0][1].parent)
                    add_shot_node(target, frames)
                    add_shot_strip(target, frames, pass_files, pass_name)

                jobs.start("Portrait Relight: load shot", work, apply)
        except RelightInputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"loaded {len(frames)} frame(s) of {frames[0][1].parent}")
        return {"FINISHED"}


def menu_entry(self, _context):
    self.layout.operator(PORTRAIT_RELIGHT_OT_load_relit_shot.bl_idname, icon="FILE_IMAGE")


def register():
    bpy.utils.register_class(PORTRAIT_RELIGHT_OT_load_relit_shot)
    bpy.types.SEQUENCER_MT_add.append(menu_entry)


def unregister():
    bpy.types.SEQUENCER_MT_add.remove(menu_entry)
    bpy.utils.unregister_class(PORTRAIT_RELIGHT_OT_load_relit_shot)
