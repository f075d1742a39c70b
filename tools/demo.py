"""The README's main job: relight a real portrait under one of Blender's bundled world HDRIs, in headless Blender.

    .venv/bin/python tools/demo.py [--plate IMAGE] [--out out/demo] [--world forest.exr]

1. The plate: scikit-image's public-domain astronaut portrait (or --plate).
2. A scene whose world is Blender's bundled HDRI and whose camera frames the plate, saved as <out>/scene.blend.
3. The command-line contract on it, with the "scene's HDRI world" lighting path:
   relight PLATE --out OUT --world-blend scene.blend  ->  <stem>.exr and <stem>_preview.png
4. The same scene with the compositor wired (plate -> passes Image node -> Recombine group -> output), saved as
   <stem>_compositor.blend: open it in Blender and move the gain sliders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from package_loader import ROOT, load_package


def astronaut_plate(out: Path) -> Path:
    import skimage.data
    from PIL import Image

    path = out / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(path)
    return path


def build_scene(blend_path: Path, world_hdri: Path, width: int, height: int) -> None:
    """A scene lit by the world HDRI, with a 40-degree camera looking along +Y at eye height."""
    import math

    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = width, height
    world = bpy.data.worlds.new("Portrait Relight World")
    nodes = world.node_tree.nodes
    texture = nodes.new("ShaderNodeTexEnvironment")
    texture.image = bpy.data.images.load(str(world_hdri))
    background = next(n for n in nodes if n.type == "BACKGROUND")
    world.node_tree.links.new(texture.outputs["Color"], background.inputs["Color"])
    scene.world = world
    camera_data = bpy.data.cameras.new("Camera")
    camera_data.sensor_fit = "AUTO"
    camera_data.angle = math.radians(40.0)
    camera = bpy.data.objects.new("Camera", camera_data)
    camera.location = (0.0, -3.0, 1.6)
    camera.rotation_euler = (math.radians(90.0), 0.0, 0.0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    bpy.ops.wm.save_as_mainfile(filepath=str(blend_path))


def wire_compositor(plate_path: Path, exr_path: Path, blend_path: Path) -> None:
    """Open the scene, add the plate and the relit passes to the compositor, save as a new .blend."""
    import bpy

    from portrait_relight.operators.compositor import compositor_tree, insert_nodes
    from portrait_relight.operators.world import world_lighting

    scene = bpy.context.scene
    tree = compositor_tree(scene)
    plate_node = tree.nodes.new("CompositorNodeImage")
    plate_node.image = bpy.data.images.load(str(plate_path))
    plate_node.location = (0, 0)
    width, height = plate_node.image.size
    lighting = world_lighting(scene, width, height)
    backdrop = lighting.environment.view(width, height, lighting.fov_deg)
    insert_nodes(scene, plate_node, exr_path, backdrop)
    bpy.ops.wm.save_as_mainfile(filepath=str(blend_path))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plate", type=Path, help="portrait to relight (default: the astronaut)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    parser.add_argument("--world", default="forest.exr", help="one of Blender's bundled world HDRIs")
    args = parser.parse_args()
    load_package()
    import bpy

    from portrait_relight.inference.io.imageio import read_plate
    from portrait_relight.operators import cli

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    plate_path = args.plate.resolve() if args.plate else astronaut_plate(out)
    height, width = read_plate(plate_path).shape[:2]
    world_hdri = Path(bpy.utils.system_resource("DATAFILES", path="studiolights/world")) / args.world
    scene_blend = out / "scene.blend"
    build_scene(scene_blend, world_hdri, width, height)

    status = cli.main([str(plate_path), "--out", str(out), "--world-blend", str(scene_blend)])
    if status != 0:
        return status
    compositor_blend = out / f"{plate_path.stem}_compositor.blend"
    wire_compositor(plate_path, out / f"{plate_path.stem}.exr", compositor_blend)
    print(f"wrote {compositor_blend}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
