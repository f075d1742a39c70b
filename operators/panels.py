"""Sidebar panels (N panel, "Portrait Relight" tab) in the Compositor and the Sequencer: the scene's shot
settings (shot_settings.py), the Relight buttons, which run directly with those settings (no dialog), and Load
Relit Shot for shots relit outside Blender."""

from __future__ import annotations

import bpy

from . import jobs
from .compositor import PORTRAIT_RELIGHT_OT_compositor_relight
from .sequencer import PORTRAIT_RELIGHT_OT_sequencer_relight
from .shot_import import PORTRAIT_RELIGHT_OT_load_relit_shot
from .shot_settings import draw_shot_settings

CATEGORY = "Portrait Relight"


def draw_panel(layout: "bpy.types.UILayout", context, operator_idname: str) -> None:
    draw_shot_settings(layout.column(), context.scene.portrait_relight)
    row = layout.row()
    row.operator_context = "EXEC_DEFAULT"  # the panel is the dialog
    row.scale_y = 1.4
    row.operator(operator_idname, icon="LIGHT")
    layout.operator(PORTRAIT_RELIGHT_OT_load_relit_shot.bl_idname, icon="FILE_IMAGE")  # farm / ./relight output
    for job in jobs.running_jobs():
        layout.label(text=job.status or job.status_text(), icon="TIME")


class PORTRAIT_RELIGHT_PT_compositor(bpy.types.Panel):
    bl_space_type = "NODE_EDITOR"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_label = "Portrait Relight"

    @classmethod
    def poll(cls, context):
        space = context.space_data
        return context.scene is not None and getattr(space, "tree_type", None) == "CompositorNodeTree"

    def draw(self, context):
        draw_panel(self.layout, context, PORTRAIT_RELIGHT_OT_compositor_relight.bl_idname)


class PORTRAIT_RELIGHT_PT_sequencer(bpy.types.Panel):
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_label = "Portrait Relight"

    @classmethod
    def poll(cls, context):
        return context.scene is not None

    def draw(self, context):
        draw_panel(self.layout, context, PORTRAIT_RELIGHT_OT_sequencer_relight.bl_idname)


CLASSES = (PORTRAIT_RELIGHT_PT_compositor, PORTRAIT_RELIGHT_PT_sequencer)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
