"""Per-shot settings (operators/shot_settings.py): a PropertyGroup on every scene, saved with the .blend, read by
the compositor and sequencer operators (explicit operator properties override it), shown in the sidebar panels."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from operator_registry import registered

bpy = pytest.importorskip("bpy")

from portrait_relight.operators import compositor, jobs, panels, sequencer, shot_settings  # noqa: E402

MODULES = (jobs, shot_settings, compositor, sequencer, panels)


@pytest.fixture(scope="module", autouse=True)
def operators_registered():
    with registered(*MODULES):
        yield


def city_hdri() -> str:
    return os.path.join(bpy.utils.system_resource("DATAFILES", path="studiolights/world"), "city.exr")


def test_settings_register_on_scene_and_survive_save_and_reload(tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    settings = bpy.context.scene.portrait_relight
    assert isinstance(settings, shot_settings.PortraitRelightShotSettings)
    assert shot_settings.shot_values(bpy.context.scene) == shot_settings.ShotValues()  # defaults agree
    settings.lighting = "HDRI"
    settings.hdri_path = "//hdri/city.exr"
    settings.hdri_rotation = 1.25
    settings.background_path = "/plates/bg.exr"
    settings.specular_strength = 0.5
    settings.matting_resolution = 768
    settings.normals = "learned"
    settings.albedo = "learned"
    settings.shading = "learned"
    settings.output_dir = "//renders/relit/"
    other = bpy.data.scenes.new("Other").name  # per shot: another scene keeps its own settings
    blend = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.context.scene.portrait_relight.lighting == "WORLD"
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    values = shot_settings.shot_values(bpy.data.scenes["Scene"])
    assert values == shot_settings.ShotValues("HDRI", "//hdri/city.exr", pytest.approx(1.25), "/plates/bg.exr",
                                              0.5, 768, "learned", "learned", "learned", "//renders/relit/")
    assert shot_settings.shot_values(bpy.data.scenes[other]) == shot_settings.ShotValues()


def test_relight_settings_carry_specular_matting_normals_albedo_and_shading():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    settings = bpy.context.scene.portrait_relight
    assert settings.normals == settings.albedo == settings.shading == "learned"  # the nets are the default
    settings.specular_strength, settings.matting_resolution, settings.normals = 0.25, 1024, "classical"
    settings.albedo, settings.shading = "learned", "classical"
    relight = shot_settings.relight_settings(bpy.context, shot_settings.shot_values(bpy.context.scene), 33.0)
    assert (relight.specular_strength, relight.matting_resolution, relight.fov_deg, relight.normals,
            relight.albedo, relight.shading) == (0.25, 1024, 33.0, "classical", "learned", "classical")


def compositor_scene(tmp_path: Path):
    from PIL import Image
    from skimage import data

    bpy.ops.wm.read_factory_settings(use_empty=True)
    plate = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((128, 128), Image.LANCZOS).save(plate)
    scene = bpy.context.scene
    tree = compositor.compositor_tree(scene)
    node = tree.nodes.new("CompositorNodeImage")
    node.image = bpy.data.images.load(str(plate))
    tree.nodes.active = node
    settings = scene.portrait_relight
    settings.lighting = "HDRI"
    settings.hdri_path = city_hdri()
    return scene, settings


def test_compositor_uses_the_scene_rotation_and_operator_overrides(tmp_path):
    from portrait_relight.inference.io.exr import read_passes

    scene, settings = compositor_scene(tmp_path)
    diffuse = {}
    for name, rotation in (("r0", 0.0), ("r90", math.pi / 2)):
        settings.hdri_rotation = rotation
        settings.output_dir = str(tmp_path / name) + os.sep
        assert bpy.ops.portrait_relight.compositor_relight() == {"FINISHED"}
        diffuse[name] = read_passes(tmp_path / name / "astronaut.exr")["diffuse"]
    assert np.abs(diffuse["r0"] - diffuse["r90"]).mean() > 0.05 * diffuse["r0"].mean()

    # an explicit operator property wins over the scene's setting for that call only
    assert bpy.ops.portrait_relight.compositor_relight(hdri_rotation=0.0,
                                                      output_dir=str(tmp_path / "override") + os.sep) == {"FINISHED"}
    np.testing.assert_array_equal(read_passes(tmp_path / "override" / "astronaut.exr")["diffuse"], diffuse["r0"])
    assert settings.hdri_rotation == pytest.approx(math.pi / 2)
    assert scene.compositing_node_group.nodes[compositor.PASSES_NODE].image is not None


def test_lighting_errors_name_the_setting(tmp_path):
    scene, settings = compositor_scene(tmp_path)
    settings.hdri_path = ""
    settings.output_dir = str(tmp_path / "out") + os.sep
    with pytest.raises(RuntimeError, match="choose an HDRI file"):  # reported by the operator as an error
        bpy.ops.portrait_relight.compositor_relight()


class RecordingLayout:
    """Stands in for UILayout: records the properties and operators a panel draws."""

    def __init__(self, log):
        self.log = log
        self.use_property_split = self.use_property_decorate = False
        self.operator_context, self.scale_y = "INVOKE_DEFAULT", 1.0

    def column(self):
        return self

    def row(self):
        return self

    def prop(self, data, name):
        self.log.append(("prop", name, getattr(data, name)))

    def operator(self, idname, icon="NONE"):
        self.log.append(("operator", idname, self.operator_context))

    def label(self, text="", icon="NONE"):
        self.log.append(("label", text))


@pytest.mark.parametrize("panel, idname", [
    (panels.PORTRAIT_RELIGHT_PT_compositor, "portrait_relight.compositor_relight"),
    (panels.PORTRAIT_RELIGHT_PT_sequencer, "portrait_relight.sequencer_relight"),
])
def test_sidebar_panels_show_the_settings_and_relight_button(panel, idname):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert panel.bl_region_type == "UI" and panel.bl_category == "Portrait Relight"
    assert hasattr(bpy.types, panel.__name__)  # registered
    settings = bpy.context.scene.portrait_relight
    settings.lighting, settings.hdri_rotation = "HDRI", 0.5
    log = []

    class Fake:
        layout = RecordingLayout(log)

    panel.draw(Fake, bpy.context)
    names = [entry[1] for entry in log if entry[0] == "prop"]
    assert names == ["lighting", "hdri_path", "hdri_rotation", "background_path", "specular_strength",
                     "matting_resolution", "normals", "albedo", "shading", "output_dir"]
    assert ("prop", "hdri_rotation", pytest.approx(0.5)) in log
    assert ("operator", idname, "EXEC_DEFAULT") in log
    settings.lighting = "WORLD"
    log.clear()
    panel.draw(Fake, bpy.context)
    assert "hdri_path" not in [entry[1] for entry in log]
