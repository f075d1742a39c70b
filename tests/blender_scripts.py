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
