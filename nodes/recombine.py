"""Compositor node group "Portrait Relight Recombine": rebuild the relit plate from the EXR passes with gains.

    relit     = 2^exposure * (albedo * diffuse * diffuse_gain + specular * specular_gain)
    composite = alpha * relit + (1 - alpha) * background

With gains 1 and exposure 0 this reproduces the EXR's `relit` and `composite` passes (ARCHITECTURE.md), so the
artist can rebalance the light without re-running the pipeline.
"""

from __future__ import annotations

import bpy

GROUP_NAME = "Portrait Relight Recombine"

# (name, socket type, default, min, max); the order is the order of the sockets on the group node.
INPUTS = (
    ("albedo", "NodeSocketColor", (0.0, 0.0, 0.0, 1.0), None, None),
    ("diffuse", "NodeSocketColor", (0.0, 0.0, 0.0, 1.0), None, None),
    ("specular", "NodeSocketColor", (0.0, 0.0, 0.0, 1.0), None, None),
    ("alpha", "NodeSocketFloat", 1.0, 0.0, 1.0),
    ("background", "NodeSocketColor", (0.0, 0.0, 0.0, 1.0), None, None),
    ("Diffuse Gain", "NodeSocketFloat", 1.0, 0.0, 10.0),
    ("Specular Gain", "NodeSocketFloat", 1.0, 0.0, 10.0),
    ("Exposure", "NodeSocketFloat", 0.0, -10.0, 10.0),
)
OUTPUTS = (("composite", "NodeSocketColor"), ("relit", "NodeSocketColor"))
# Bump when the wiring changes so existing files get the group rebuilt.
VERSION = 1


def _mix(nodes, blend_type: str, location):
    """An RGBA Mix node (ShaderNodeMix, run by the 4.5 and 5.0 compositors); returns (node, fac, a, b, result)."""
    node = nodes.new("ShaderNodeMix")
    node.data_type = "RGBA"
    node.blend_type = blend_type
    node.clamp_result = False
    node.location = location
    # ShaderNodeMix keeps one socket per data type; the RGBA ones are A/B at 6/7 and the result at 2.
    return node, node.inputs[0], node.inputs[6], node.inputs[7], node.outputs[2]


def _scale(nodes, location):
    node = nodes.new("ShaderNodeVectorMath")
    node.operation = "SCALE"
    node.location = location
    return node, node.inputs[0], node.inputs["Scale"], node.outputs["Vector"]


def _build(group: "bpy.types.NodeTree") -> None:
    group.nodes.clear()
    group.interface.clear()
    for name, socket_type, default, low, high in INPUTS:
        socket = group.interface.new_socket(name, in_out="INPUT", socket_type=socket_type)
        socket.default_value = default
        if low is not None:
            socket.min_value, socket.max_value = low, high
    for name, socket_type in OUTPUTS:
        group.interface.new_socket(name, in_out="OUTPUT", socket_type=socket_type)

    nodes, links = group.nodes, group.links
    group_in = nodes.new("NodeGroupInput")
    group_in.location = (-800, 0)
    group_out = nodes.new("NodeGroupOutput")
    group_out.location = (800, 0)

    shading, fac, a, b, shading_out = _mix(nodes, "MULTIPLY", (-500, 200))  # albedo * diffuse
    fac.default_value = 1.0
    links.new(group_in.outputs["albedo"], a)
    links.new(group_in.outputs["diffuse"], b)

    diffuse_scaled, vec, scale, diffuse_out = _scale(nodes, (-250, 200))
    links.new(shading_out, vec)
    links.new(group_in.outputs["Diffuse Gain"], scale)

    specular_scaled, vec, scale, specular_out = _scale(nodes, (-250, -50))
    links.new(group_in.outputs["specular"], vec)
    links.new(group_in.outputs["Specular Gain"], scale)

    add = nodes.new("ShaderNodeVectorMath")
    add.operation = "ADD"
    add.location = (0, 100)
    links.new(diffuse_out, add.inputs[0])
    links.new(specular_out, add.inputs[1])

    exposure = nodes.new("CompositorNodeExposure")
    exposure.location = (200, 100)
    links.new(add.outputs["Vector"], exposure.inputs["Image"])
    links.new(group_in.outputs["Exposure"], exposure.inputs["Exposure"])

    over, fac, a, b, over_out = _mix(nodes, "MIX", (450, 0))  # (1 - alpha) * background + alpha * relit
    links.new(group_in.outputs["alpha"], fac)
    links.new(group_in.outputs["background"], a)
    links.new(exposure.outputs["Image"], b)

    links.new(over_out, group_out.inputs["composite"])
    links.new(exposure.outputs["Image"], group_out.inputs["relit"])
    group["portrait_relight_version"] = VERSION


def ensure_recombine_group() -> "bpy.types.NodeTree":
    """The recombine group, created on first use and rebuilt only when it is missing or out of date."""
    group = bpy.data.node_groups.get(GROUP_NAME)
    if group is not None and group.bl_idname != "CompositorNodeTree":
        group.name = GROUP_NAME + " (other)"  # a user's unrelated group of the same name keeps existing
        group = None
    if group is None:
        group = bpy.data.node_groups.new(GROUP_NAME, "CompositorNodeTree")
    if group.get("portrait_relight_version") != VERSION:
        _build(group)
    return group
