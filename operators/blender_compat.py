"""The few bpy differences between Blender 4.5 LTS and 5.0, behind one small helper each.

- Compositor: 4.5 keeps the scene's compositor in `scene.node_tree` (after `scene.use_nodes = True`) and shows the
  result through a Composite node; 5.0 makes it a node group datablock, `scene.compositing_node_group`, whose
  Group Output (an Image output socket on its interface) is the result, and drops `scene.node_tree`/Composite.
- Worlds and materials: a new 4.5 world or material has `use_nodes` False and no node tree; in 5.0 they always
  use nodes (`use_nodes` is deprecated there).
Everything else the extension uses (Sequencer `strips`/`strips_all`, `Strip`, the node group interface, Mix and
Vector Math nodes in compositor groups) is the same in both.
"""

from __future__ import annotations

import bpy

COMPOSITOR_GROUPS = "compositing_node_group" in bpy.types.Scene.bl_rna.properties  # Blender 5.0+
NODES_ALWAYS_ON = bpy.app.version >= (5, 0, 0)


def compositor_tree(scene: "bpy.types.Scene", create: bool = True) -> "bpy.types.NodeTree | None":
    """The scene's compositor node tree; with `create`, made (and switched on) when missing."""
    if COMPOSITOR_GROUPS:
        tree = scene.compositing_node_group
        if tree is None and create:
            tree = bpy.data.node_groups.new(f"{scene.name} Compositing", "CompositorNodeTree")
            scene.compositing_node_group = tree
        return tree
    if create and not scene.use_nodes:
        scene.use_nodes = True  # 4.5 creates scene.node_tree (Render Layers -> Composite) here
    return scene.node_tree if scene.use_nodes else None


def compositor_output(tree: "bpy.types.NodeTree") -> "bpy.types.Node":
    """The node whose first input is the compositor's result (5.0: active Group Output with an Image socket on
    the tree's interface; 4.5: the active Composite node), created when missing."""
    if COMPOSITOR_GROUPS:
        if not any(i.in_out == "OUTPUT" for i in tree.interface.items_tree if i.item_type == "SOCKET"):
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        kind, idname = "GROUP_OUTPUT", "NodeGroupOutput"
    else:
        kind, idname = "COMPOSITE", "CompositorNodeComposite"
    outputs = [n for n in tree.nodes if n.type == kind]
    node = next((n for n in outputs if getattr(n, "is_active_output", True)), outputs[0] if outputs else None)
    if node is None:
        node = tree.nodes.new(idname)
        node.location = (900, 0)
    return node


def world_node_tree(world: "bpy.types.World") -> "bpy.types.NodeTree | None":
    """The world's shader nodes, None when the world does not use them (only possible before 5.0)."""
    if not NODES_ALWAYS_ON and not world.use_nodes:
        return None
    return world.node_tree


def material_node_tree(material: "bpy.types.Material") -> "bpy.types.NodeTree":
    """The material's shader nodes, switched on first where that is still a setting (before 5.0)."""
    if not NODES_ALWAYS_ON and not material.use_nodes:
        material.use_nodes = True
    return material.node_tree
