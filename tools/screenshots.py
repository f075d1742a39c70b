"""The README's screenshots, rendered headless with the product's own operators (no UI, no screen grabs).

    .venv/bin/python tools/screenshots.py [--out docs/images] [--size 256]

- compositor.png: the astronaut relit under Blender's bundled forest.exr by the compositor operator (Image node ->
  passes Image node -> Recombine group -> output), rendered through the compositor: plate | composite at the
  default gains | the same with Specular Gain 2 and Diffuse Gain 0.6 (the artist's rebalancing sliders).
- card.png: that relit EXR as a 3D card (Add Relit Plate to Scene) in a small set (floor, back wall), lit by one
  area light from the camera's left, rendered with Cycles; the card casts its matte-shaped shadow on the set.
- sequencer.png: a 3-frame plate strip relit by the sequencer operator, the relit strip added above it, and both
  rendered through the sequencer: top row the plate strip, bottom row the relit strip.

Each `render_*` function renders at a given size into a work folder and returns the arrays it rendered (linear
or display values, as named) for tests/test_screenshots.py; `*_sheet` functions lay them out as the PNGs.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from package_loader import ROOT, load_package

WORLD_HDRI = "forest.exr"
GAINS = {"Specular Gain": 2.0, "Diffuse Gain": 0.6}
MAX_WIDTH = 640
MAX_BYTES = 200_000
GAP = 6
CAPTION = 18
SHEET_BACKGROUND = (32, 32, 32)


# --------------------------------------------------------------------------------------------------- helpers
def _bpy():
    load_package()
    import bpy

    return bpy


def bundled_world(name: str = WORLD_HDRI) -> str:
    bpy = _bpy()
    return os.path.join(bpy.utils.system_resource("DATAFILES", path="studiolights/world"), name)


def _operator_modules():
    from portrait_relight.operators import card, compositor, jobs, sequencer, shot_settings

    return (jobs, shot_settings, compositor, sequencer, card)


def register_operators() -> None:
    """Register what the screenshots drive (idempotent): jobs, shot settings and the three operators."""
    bpy = _bpy()
    # RNA properties are not Python attributes of the type: ask bl_rna whether the settings are registered.
    if "portrait_relight" in bpy.types.Scene.bl_rna.properties:
        return
    for module in _operator_modules():
        module.register()


def unregister_operators() -> None:
    """Undo register_operators (tests share one Blender session with other modules that register them)."""
    bpy = _bpy()
    if "portrait_relight" not in bpy.types.Scene.bl_rna.properties:
        return
    for module in reversed(_operator_modules()):
        module.unregister()


def astronaut(size: int, shift: int = 0):
    """scikit-image's astronaut (NASA, public domain), a square crop shifted right by `shift` source pixels."""
    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.astronaut())
    return image.crop((shift, 0, 500 + shift, 500)).resize((size, size), Image.LANCZOS)


def to_display(linear: np.ndarray) -> np.ndarray:
    """Scene-linear -> 8-bit sRGB (Blender's "Standard" view transform)."""
    from portrait_relight.inference.io.imageio import linear_to_srgb

    return (np.clip(linear_to_srgb(np.clip(linear[..., :3], 0.0, None)), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def render_still(scene, path: Path, exr: bool) -> np.ndarray:
    """Render the scene's current frame to `path`; returns (H, W, 3) linear float (EXR) or uint8 display (PNG)."""
    bpy = _bpy()
    from portrait_relight.operators.image_utils import image_to_array

    settings = scene.render.image_settings
    settings.file_format = "OPEN_EXR" if exr else "PNG"
    settings.color_mode = "RGB"
    settings.color_depth = "32" if exr else "8"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    if exr:
        image = bpy.data.images.load(str(path))
        try:
            return image_to_array(image)[..., :3]
        finally:
            bpy.data.images.remove(image)
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _standard_view(scene) -> None:
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.dither_intensity = 0.0


def sheet(rows: list[list[np.ndarray]], captions: list[list[str]], max_width: int = MAX_WIDTH):
    """Panels (uint8 HWC, equal sizes) in rows with a caption under each; scaled down to max_width if wider.
    Returns (PIL image, boxes): boxes[r][c] = (left, top, right, bottom) of each panel before any scaling."""
    from PIL import Image, ImageDraw

    height, width = rows[0][0].shape[:2]
    columns = max(len(r) for r in rows)
    total_w = columns * width + (columns + 1) * GAP
    total_h = len(rows) * (height + CAPTION) + (len(rows) + 1) * GAP
    canvas = Image.new("RGB", (total_w, total_h), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    boxes = []
    for r, (row, texts) in enumerate(zip(rows, captions)):
        top = GAP + r * (height + CAPTION + GAP)
        boxes.append([])
        for c, (panel, text) in enumerate(zip(row, texts)):
            left = GAP + c * (width + GAP)
            canvas.paste(Image.fromarray(panel), (left, top))
            draw.text((left + 2, top + height + 3), text, fill=(225, 225, 225))
            boxes[-1].append((left, top, left + width, top + height))
    if total_w > max_width:
        canvas = canvas.resize((max_width, round(total_h * max_width / total_w)), Image.LANCZOS)
    return canvas, boxes


def save_png(image, path: Path, max_bytes: int = MAX_BYTES) -> Path:
    """Full-colour PNG, or a 256-colour dithered one when that would exceed max_bytes (docs stay small)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    if path.stat().st_size > max_bytes:
        image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
            path, optimize=True)
    return path


# --------------------------------------------------------------------------------------------------- compositor
def render_compositor(work: Path, size: int) -> dict:
    """The compositor operator on the astronaut under forest.exr, then two compositor renders (default gains and
    GAINS). Returns plate (uint8), exr (path), default and rebalanced (linear renders), and the group node."""
    bpy = _bpy()
    from portrait_relight.operators import compositor

    register_operators()
    work.mkdir(parents=True, exist_ok=True)
    plate_path = work / "astronaut.png"
    astronaut(size).save(plate_path)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.engine = "BLENDER_WORKBENCH"  # nothing in the scene: the compositor makes the picture
    scene.render.use_compositing = True
    _standard_view(scene)
    tree = compositor.compositor_tree(scene)
    node = tree.nodes.new("CompositorNodeImage")
    node.image = bpy.data.images.load(str(plate_path))
    tree.nodes.active = node
    shot = scene.portrait_relight
    shot.lighting = "HDRI"
    shot.hdri_path = bundled_world()
    shot.output_dir = str(work / "relight") + os.sep
    if bpy.ops.portrait_relight.compositor_relight() != {"FINISHED"}:
        raise RuntimeError("the compositor operator did not finish")
    group = tree.nodes[compositor.RECOMBINE_NODE]

    default = render_still(scene, work / "compositor_default.exr", exr=True)
    for name, value in GAINS.items():
        group.inputs[name].default_value = value
    rebalanced = render_still(scene, work / "compositor_rebalanced.exr", exr=True)
    return {"plate": np.asarray(astronaut(size)), "exr": work / "relight" / "astronaut.exr",
            "default": default, "rebalanced": rebalanced}


def compositor_sheet(result: dict, max_width: int = MAX_WIDTH):
    gains = ", ".join(f"{name.split()[0]} x{value:g}" for name, value in reversed(GAINS.items()))
    return sheet([[result["plate"], to_display(result["default"]), to_display(result["rebalanced"])]],
                 [["plate", "relit composite (forest.exr)", gains]], max_width)


# --------------------------------------------------------------------------------------------------- 3D card
def render_card(exr: Path, work: Path, size: int, samples: int = 24) -> dict:
    """The relit EXR as a camera-parented card in a small set, one area light on the camera's left, Cycles.
    Returns the display render (uint8) and the light's side."""
    bpy = _bpy()
    from mathutils import Vector

    register_operators()
    work.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x = render.resolution_y = size
    render.resolution_percentage = 100
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = True
    scene.cycles.max_bounces = 4
    _standard_view(scene)

    world = bpy.data.worlds.new("Set")
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.6, 0.65, 0.75, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.08
    scene.world = world

    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.data.sensor_fit = "AUTO"
    camera.data.angle = math.radians(40.0)
    camera.location = (0.0, -4.0, 1.3)
    camera.rotation_euler = (math.radians(84.0), 0.0, 0.0)  # looking along +Y, a little down at the floor
    scene.collection.objects.link(camera)
    scene.camera = camera

    grey = bpy.data.materials.new("Set grey")
    grey.diffuse_color = (0.5, 0.5, 0.5, 1.0)
    bsdf = grey.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (0.45, 0.42, 0.4, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.9
    for name, location, rotation in (("Floor", (0.0, 2.0, 0.0), (0.0, 0.0, 0.0)),
                                     ("Wall", (0.0, 2.6, 2.0), (math.radians(90.0), 0.0, 0.0))):
        bpy.ops.mesh.primitive_plane_add(size=12.0, location=location, rotation=rotation)
        plane = bpy.context.object
        plane.name = name
        plane.data.materials.append(grey)

    bpy.context.view_layer.update()
    if bpy.ops.portrait_relight.add_relit_card(filepath=str(exr), distance=3.0) != {"FINISHED"}:
        raise RuntimeError("the card operator did not finish")

    light = bpy.data.objects.new("Key", bpy.data.lights.new("Key", "AREA"))
    light.data.energy = 300.0
    light.data.size = 1.5
    light.location = (-3.2, -1.4, 1.9)  # the camera's left, a little in front of the card and above it
    target = Vector((0.0, -1.0, 1.2))  # the card's centre (camera at y=-4, card 3 in front)
    light.rotation_euler = (target - light.location).to_track_quat("-Z", "Y").to_euler()
    scene.collection.objects.link(light)
    display = render_still(scene, work / "card.png", exr=False)
    return {"render": display, "light_side": "left"}


def card_sheet(result: dict, max_width: int = MAX_WIDTH):
    image = result["render"]
    from PIL import Image

    picture = Image.fromarray(image)
    if picture.width > max_width:
        picture = picture.resize((max_width, round(picture.height * max_width / picture.width)), Image.LANCZOS)
    return picture


# --------------------------------------------------------------------------------------------------- sequencer
def render_sequencer(work: Path, size: int, count: int = 3) -> dict:
    """The sequencer operator on a `count`-frame astronaut strip (forest.exr), then each frame rendered through the
    sequencer with the relit strip muted (the plate) and shown (the relit strip above it). Returns uint8 lists
    plates and relit, and the relit strip's single-pass EXR paths."""
    bpy = _bpy()

    register_operators()
    plates_dir = work / "plates"
    plates_dir.mkdir(parents=True, exist_ok=True)
    frames = []
    for frame in range(1, count + 1):
        path = plates_dir / f"plate.{frame:04d}.png"
        astronaut(size, shift=6 * (frame - 1)).save(path)
        frames.append(path)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    render = scene.render
    render.resolution_x = render.resolution_y = size
    render.resolution_percentage = 100
    render.use_sequencer = True
    render.use_compositing = False
    scene.frame_start, scene.frame_end = 1, count
    _standard_view(scene)
    shot = scene.portrait_relight
    shot.lighting = "HDRI"
    shot.hdri_path = bundled_world()
    shot.output_dir = str(work / "relight") + os.sep
    editor = scene.sequence_editor_create()
    strip = editor.strips.new_image("plate", str(frames[0]), channel=1, frame_start=1)
    for path in frames[1:]:
        strip.elements.append(path.name)
    editor.active_strip = strip
    if bpy.ops.portrait_relight.sequencer_relight() != {"FINISHED"}:
        raise RuntimeError("the sequencer operator did not finish")
    relit = editor.strips_all["plate_relit"]

    rows = {"plates": [], "relit": []}
    for muted, key in ((True, "plates"), (False, "relit")):
        relit.mute = muted
        for frame in range(1, count + 1):
            scene.frame_set(frame)
            rows[key].append(render_still(scene, work / f"sequencer_{key}_{frame}.png", exr=False))
    relit.mute = False
    exrs = [Path(bpy.path.abspath(relit.directory)) / e.filename for e in relit.elements]
    return {**rows, "strip_exrs": exrs, "relit_channel": relit.channel, "plate_channel": strip.channel}


def sequencer_sheet(result: dict, max_width: int = MAX_WIDTH):
    count = len(result["plates"])
    return sheet([result["relit"], result["plates"]],
                 [[f"relit strip, frame {f}" for f in range(1, count + 1)],
                  [f"plate strip, frame {f}" for f in range(1, count + 1)]], max_width)


# --------------------------------------------------------------------------------------------------- main
def make_all(out: Path, work: Path, size: int, card_size: int, samples: int, max_width: int = MAX_WIDTH) -> dict:
    timings, results = {}, {}
    started = time.perf_counter()
    results["compositor"] = render_compositor(work / "compositor", size)
    save_png(compositor_sheet(results["compositor"], max_width)[0], out / "compositor.png")
    timings["compositor"] = time.perf_counter() - started

    started = time.perf_counter()
    results["card"] = render_card(results["compositor"]["exr"], work / "card", card_size, samples)
    save_png(card_sheet(results["card"], max_width), out / "card.png")
    timings["card"] = time.perf_counter() - started

    started = time.perf_counter()
    results["sequencer"] = render_sequencer(work / "sequencer", size * 3 // 4)
    save_png(sequencer_sheet(results["sequencer"], max_width)[0], out / "sequencer.png")
    timings["sequencer"] = time.perf_counter() - started
    results["timings"] = timings
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--size", type=int, default=256, help="plate size for the compositor and sequencer")
    parser.add_argument("--card-size", type=int, default=512, help="card render size (square)")
    parser.add_argument("--samples", type=int, default=32, help="Cycles samples for the card render")
    args = parser.parse_args()
    _bpy()
    out = args.out.resolve()
    with tempfile.TemporaryDirectory(prefix="portrait_relight_screens_") as work:
        results = make_all(out, Path(work), args.size, args.card_size, args.samples)
    for name, seconds in results["timings"].items():
        print(f"{out / (name + '.png')}: {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
