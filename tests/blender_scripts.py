"""Script text shared by the tests that run Blender in a subprocess (the installed extension on 5.0 and 4.5)."""

# A scene lit by Blender's bundled forest.exr world, seen by a camera, rendering at `size` (fill in with %).
FOREST_WORLD_SCENE = """
worlds = bpy.utils.system_resource("DATAFILES", path="studiolights/world")
scene = bpy.context.scene
world = bpy.data.worlds.new("HDRI World")
if world.node_tree is None:  # 4.5: a new world has no nodes until asked
    world.use_nodes = True
tree = world.node_tree
texture = tree.nodes.new("ShaderNodeTexEnvironment")
texture.image = bpy.data.images.load(os.path.join(worlds, "forest.exr"))
tree.links.new(texture.outputs["Color"], tree.nodes["Background"].inputs["Color"])
scene.world = world
if scene.camera is None:
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
render = scene.render
render.resolution_x = render.resolution_y = %(size)d
render.resolution_percentage = 100
"""

# With `comp` the scene's compositor tree: relight the plate image through the operator (scene world), and record
# the passes node it added.
COMPOSITOR_RELIGHT = """
plate_node = comp.nodes.new("CompositorNodeImage")
plate_node.image = bpy.data.images.load(plate)
comp.nodes.active = plate_node
result["compositor_op"] = list(bpy.ops.portrait_relight.compositor_relight(
    lighting="WORLD", output_dir=os.path.join(work, "comp") + os.sep))
result["compositor_nodes"] = sorted(n.name for n in comp.nodes)
passes_node = comp.nodes["Portrait Relight Passes"]
result["exr_sockets"] = [o.name for o in passes_node.outputs if o.enabled]
result["exr_path"] = bpy.path.abspath(passes_node.image.filepath)
"""

# Render the compositor alone into <work>/render.exr.
RENDER_COMPOSITOR = """
render.engine = "BLENDER_WORKBENCH"  # nothing to render but the compositor
render.use_compositing = True
render.image_settings.file_format = "OPEN_EXR"
render.image_settings.color_depth = "32"
scene.view_settings.view_transform = "Standard"
render.filepath = os.path.join(work, "render.exr")
bpy.ops.render.render(write_still=True)
result["render_path"] = render.filepath
"""


def script_parts(size: int) -> dict[str, str]:
    """The snippets above by the names the scripts use them under (`%(name)s` at the start of a line)."""
    return {"world_scene": FOREST_WORLD_SCENE % {"size": size}, "compositor_relight": COMPOSITOR_RELIGHT,
            "render_compositor": RENDER_COMPOSITOR}
