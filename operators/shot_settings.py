"""Per-shot settings: one PropertyGroup on the scene (`scene.portrait_relight`), saved with the .blend.

The compositor and sequencer operators read their settings from the scene's group; an operator property passed
explicitly (scripts: `bpy.ops.portrait_relight.sequencer_relight(lighting="HDRI", hdri_path=...)`) overrides the
scene's value for that call only (`shot_values`). The operator dialogs and the sidebar panels edit the scene's
group, so what the artist sees in the panel is what the next run uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import bpy

from ..inference.settings import RelightSettings
from .lighting import LIGHTING_ITEMS
from .preferences import settings_from_preferences

DEFAULT_OUTPUT_DIR = "//relight/"
DEFAULT_MATTING_RESOLUTION = RelightSettings.matting_resolution
DEFAULT_SPECULAR_STRENGTH = RelightSettings.specular_strength
DEFAULT_NORMALS = RelightSettings.normals
NORMALS_ITEMS = (
    ("classical", "Classical", "Face mesh and silhouette inflation (v1)"),
    ("learned", "Learned", "The geometry net trained on the virtual light stage"),
)
DEFAULT_ALBEDO = RelightSettings.albedo
ALBEDO_ITEMS = (
    ("classical", "Classical", "A white-light shading fit divided out of the plate (v1)"),
    ("learned", "Learned", "The albedo net trained on the virtual light stage: the source light, its colour "
                           "included, divided out"),
)
DEFAULT_SHADING = RelightSettings.shading
SHADING_ITEMS = (
    ("classical", "Classical", "The light maps as they are, specular from a skin/not-skin guess (v1)"),
    ("learned", "Learned", "The shading net trained on the virtual light stage: shadows and occlusion in the "
                           "diffuse shading, per-pixel specular"),
)


def _properties(options: set[str]) -> dict:
    """The shot properties, for the scene's group and (with SKIP_SAVE) as operator overrides."""
    paths = options | {"PATH_SUPPORTS_BLEND_RELATIVE"}  # "//" = next to the .blend file
    return {
        "lighting": bpy.props.EnumProperty(name="Lighting", items=LIGHTING_ITEMS, default="WORLD",
                                           options=options),
        "hdri_path": bpy.props.StringProperty(name="HDRI", subtype="FILE_PATH", options=paths,
                                              description="Equirectangular HDRI (HDRI File lighting)"),
        "hdri_rotation": bpy.props.FloatProperty(
            name="HDRI Rotation", subtype="ANGLE", default=0.0, options=options,
            description="Turns the HDRI about the vertical axis (same sense as a Mapping node's Z rotation)"),
        "background_path": bpy.props.StringProperty(
            name="Background", subtype="FILE_PATH", options=paths,
            description="Image to composite onto (and, with Background Image lighting, the light source). For a "
                        "strip, also an image sequence (name.####.png) or a movie: its first frame goes behind the "
                        "strip's first visible frame, and the light is estimated once from the whole background"),
        "specular_strength": bpy.props.FloatProperty(
            name="Specular Strength", default=DEFAULT_SPECULAR_STRENGTH, min=0.0, soft_max=4.0, options=options,
            description="Gain on the specular term (1 = the skin-like default, 0 = diffuse only)"),
        "matting_resolution": bpy.props.IntProperty(
            name="Matting Resolution", default=DEFAULT_MATTING_RESOLUTION, min=64, soft_min=128, soft_max=2048,
            max=8192, subtype="PIXEL", options=options,
            description="Long edge at which the matte is solved before edge-aware upsampling "
                        "(higher = finer hair, slower)"),
        "normals": bpy.props.EnumProperty(
            name="Normals", items=NORMALS_ITEMS, default=DEFAULT_NORMALS, options=options,
            description="How the subject's surface normals are estimated"),
        "albedo": bpy.props.EnumProperty(
            name="Albedo", items=ALBEDO_ITEMS, default=DEFAULT_ALBEDO, options=options,
            description="How the plate's own light is taken off the subject (its albedo)"),
        "shading": bpy.props.EnumProperty(
            name="Shading", items=SHADING_ITEMS, default=DEFAULT_SHADING, options=options,
            description="How the target light's light maps become the subject's shading"),
        "output_dir": bpy.props.StringProperty(
            name="Output Folder", subtype="DIR_PATH", default=DEFAULT_OUTPUT_DIR, options=paths,
            description="Where the EXR passes are written (// = next to the .blend file)"),
    }


class PortraitRelightShotSettings(bpy.types.PropertyGroup):
    """Portrait Relight settings of one shot (scene)"""

    __annotations__ = _properties(set())


@dataclass(frozen=True)
class ShotValues:
    """A plain snapshot of the settings one run uses (safe to hand to a worker thread)."""

    lighting: str = "WORLD"
    hdri_path: str = ""
    hdri_rotation: float = 0.0
    background_path: str = ""
    specular_strength: float = DEFAULT_SPECULAR_STRENGTH
    matting_resolution: int = DEFAULT_MATTING_RESOLUTION
    normals: str = DEFAULT_NORMALS
    albedo: str = DEFAULT_ALBEDO
    shading: str = DEFAULT_SHADING
    output_dir: str = DEFAULT_OUTPUT_DIR


FIELDS = tuple(field.name for field in dataclasses.fields(ShotValues))


def shot_values(scene: "bpy.types.Scene", operator: "bpy.types.Operator | None" = None) -> ShotValues:
    """The scene's shot settings, with the operator's explicitly set properties taking precedence."""
    group = scene.portrait_relight
    values = {name: getattr(group, name) for name in FIELDS}
    if operator is not None:
        for name in FIELDS:
            if name in operator.properties.bl_rna.properties and operator.properties.is_property_set(name):
                values[name] = getattr(operator, name)
    return ShotValues(**values)


def relight_settings(context, values: ShotValues, fov_deg: float) -> RelightSettings:
    """RelightSettings from the add-on preferences (provider, threads, models) and the shot's settings."""
    settings = settings_from_preferences(context, fov_deg)
    return dataclasses.replace(settings, specular_strength=float(values.specular_strength),
                               matting_resolution=int(values.matting_resolution), normals=values.normals,
                               albedo=values.albedo, shading=values.shading)


def draw_shot_settings(layout: "bpy.types.UILayout", settings: PortraitRelightShotSettings) -> None:
    layout.use_property_split = True
    layout.use_property_decorate = False
    layout.prop(settings, "lighting")
    if settings.lighting == "HDRI":
        layout.prop(settings, "hdri_path")
        layout.prop(settings, "hdri_rotation")
    layout.prop(settings, "background_path")
    layout.prop(settings, "specular_strength")
    layout.prop(settings, "matting_resolution")
    layout.prop(settings, "normals")
    layout.prop(settings, "albedo")
    layout.prop(settings, "shading")
    layout.prop(settings, "output_dir")


class ShotOperator:
    """Mixin for the relight operators: optional per-call overrides of the shot settings (scripting), and an
    invoke dialog that edits the scene's settings (Blender collects the annotations from this mixin)."""

    __annotations__ = _properties({"SKIP_SAVE"})

    def invoke(self, context, _event):
        return context.window_manager.invoke_props_dialog(self)

    def draw(self, context):
        draw_shot_settings(self.layout, context.scene.portrait_relight)


def register():
    bpy.utils.register_class(PortraitRelightShotSettings)
    bpy.types.Scene.portrait_relight = bpy.props.PointerProperty(type=PortraitRelightShotSettings)


def unregister():
    del bpy.types.Scene.portrait_relight
    bpy.utils.unregister_class(PortraitRelightShotSettings)
