"""Procedural garments of the MakeHuman subject: shells grown from the body surface.

The garment object's geometry-nodes modifier reads the evaluated body (after its own modifiers, so any later pose
or smoothing carries over), keeps the points whose garment mask (a body point attribute per garment type,
computed once on the base mesh) is positive, pushes them out along the normal and a Solidify modifier gives the cloth
its thickness and a visible rim at the neckline, hem and cuffs. Per case only the mask name, offset, thickness and
the cloth material's values change.
"""

from __future__ import annotations

import colorsys

import bpy
import numpy as np

from . import materials

GARMENTS = ("none", "tshirt", "sweater", "vneck")
GARMENT_PROBABILITY = (0.1, 0.35, 0.3, 0.25)
SLEEVE_M = {"tshirt": 0.13, "sweater": 0.60, "vneck": 0.60}  # along the arm from the shoulder joint
HEM_Z_M = 0.02  # base mesh: about the hips (waist-up framing never sees lower)


def attribute_name(garment: str) -> str:
    return f"garment_{garment}"


def sample_params(rng: np.random.Generator) -> dict:
    r = lambda lo, hi: round(float(rng.uniform(lo, hi)), 4)  # noqa: E731 (compact sampling)
    garment = str(rng.choice(GARMENTS, p=GARMENT_PROBABILITY))
    return {"type": garment, "hue": r(0.0, 1.0), "saturation": r(0.0, 0.75), "value": r(0.12, 0.85),
            "roughness": r(0.55, 0.95), "sheen": r(0.0, 0.8), "weave_scale": r(250.0, 500.0),
            "bump": r(0.05, 0.3), "offset": r(0.003, 0.006), "thickness": r(0.002, 0.004)}


def garment_colour(params: dict) -> tuple[float, float, float]:
    srgb = colorsys.hsv_to_rgb(params["hue"], params["saturation"], params["value"])
    return tuple(float(c) for c in materials.srgb_to_linear(srgb))


def garment_masks(vertices: np.ndarray, groups: dict[str, np.ndarray], body_vertices: np.ndarray) -> dict:
    """{garment: signed margin (m) per vertex, > 0 inside the garment} on the base mesh (Blender frame, A pose).

    A continuous margin instead of a 0/1 mask lets the shell be cut along a smooth iso-line of the
    (subdivided) body instead of along its quads' edges."""
    joint = {name: vertices[groups[name]].mean(0) for name in
             ("joint-neck", "joint-l-shoulder", "joint-r-shoulder", "joint-l-elbow", "joint-r-elbow",
              "joint-l-clavicle")}
    x, y, z = vertices.T
    along = np.full(len(vertices), -1.0)  # distance along the arm axis from the shoulder joint
    radial = np.full(len(vertices), 1.0)
    for side in "lr":
        shoulder, elbow = joint[f"joint-{side}-shoulder"], joint[f"joint-{side}-elbow"]
        axis = (elbow - shoulder) / np.linalg.norm(elbow - shoulder)
        rel = vertices - shoulder
        on_side = np.sign(x) == np.sign(shoulder[0])
        along[on_side] = (rel @ axis)[on_side]
        radial[on_side] = np.linalg.norm(rel - (rel @ axis)[:, None] * axis, axis=1)[on_side]
    # neckline: a little above the clavicles at the back and sides, a U lower at the front, rising over the
    # shoulders (|x| beyond the neck) so the shoulder tops stay covered
    neck, clavicle_z = joint["joint-neck"], joint["joint-l-clavicle"][2]
    front = np.clip((neck[1] - y) / 0.05, 0.0, 1.0) * np.clip(1.0 - (x / 0.08) ** 2, 0.0, 1.0)
    neck_z = clavicle_z + 0.03 - 0.03 * front + 0.05 * np.clip((np.abs(x) - 0.06) / 0.05, 0.0, 1.0)
    torso = np.minimum.reduce([neck_z - z, z - HEM_Z_M, 0.22 - np.abs(x)])
    outside = np.ones(len(vertices), bool)
    outside[body_vertices] = False  # helper geometry (loose vertices) is never clothed
    masks = {}
    for garment in GARMENTS[1:]:
        sleeve = np.minimum.reduce([SLEEVE_M[garment] - along, along + 0.05, 0.075 - radial])
        margin = np.maximum(torso, sleeve)
        if garment == "vneck":  # open V at the front of the neck
            v_margin = z - (clavicle_z - 0.1 + 1.6 * np.abs(x))
            margin = np.where(y < neck[1] - 0.02, np.minimum(margin, -v_margin), margin)
        margin[outside] = -0.05
        masks[garment] = np.clip(margin, -0.05, 0.05).astype(np.float32)
    return masks


class Garment:
    """One garment object re-targeted per case; hidden for 'none'."""

    def __init__(self, stage, body):
        self.material = materials.cloth("Cloth")
        data = bpy.data.meshes.new("Garment")
        data.materials.append(self.material)
        self.obj = bpy.data.objects.new("Garment", data)
        stage.scene.collection.objects.link(self.obj)
        self.nodes = self._build_modifier(body)
        self.solidify = self.obj.modifiers.new("Thickness", "SOLIDIFY")
        self.solidify.offset = 1.0  # grow outward from the offset shell
        # no even thickness: it scales offsets at sharp corners of the cut border into long spikes

    def _build_modifier(self, body) -> dict:
        tree = bpy.data.node_groups.new("GarmentShell", "GeometryNodeTree")
        tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
        tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
        tree.nodes.new("NodeGroupInput")
        info = tree.nodes.new("GeometryNodeObjectInfo")
        info.inputs["Object"].default_value = body
        info.transform_space = "RELATIVE"
        mask = tree.nodes.new("GeometryNodeInputNamedAttribute")
        mask.data_type = "FLOAT"
        # cut roughly, subdivide what is left (smoother neckline/hem/cuff), then cut along the margin's zero
        rough = self._delete(tree, info.outputs["Geometry"], mask.outputs["Attribute"], -0.02)
        subdivide = tree.nodes.new("GeometryNodeSubdivideMesh")
        subdivide.inputs["Level"].default_value = 2
        tree.links.new(rough, subdivide.inputs["Mesh"])
        cut = self._smooth_border(tree, self._delete(tree, subdivide.outputs["Mesh"], mask.outputs["Attribute"],
                                                     0.0))
        normal = tree.nodes.new("GeometryNodeInputNormal")
        offset = tree.nodes.new("ShaderNodeVectorMath")
        offset.operation = "SCALE"
        tree.links.new(normal.outputs["Normal"], offset.inputs[0])
        position = tree.nodes.new("GeometryNodeSetPosition")
        tree.links.new(cut, position.inputs["Geometry"])
        tree.links.new(offset.outputs["Vector"], position.inputs["Offset"])
        material = tree.nodes.new("GeometryNodeSetMaterial")
        material.inputs["Material"].default_value = self.material
        tree.links.new(position.outputs["Geometry"], material.inputs["Geometry"])
        tree.links.new(material.outputs["Geometry"], tree.nodes.new("NodeGroupOutput").inputs[0])
        self.obj.modifiers.new("Shell", "NODES").node_group = tree
        return {"mask": mask, "offset": offset}

    @staticmethod
    def _delete(tree, geometry, margin, threshold: float):
        """Faces whose (corner-averaged) margin is below threshold go, with their loose edges and points."""
        compare = tree.nodes.new("FunctionNodeCompare")
        compare.data_type = "FLOAT"
        compare.operation = "LESS_THAN"
        compare.inputs["B"].default_value = threshold
        tree.links.new(margin, compare.inputs["A"])
        delete = tree.nodes.new("GeometryNodeDeleteGeometry")
        delete.domain = "FACE"
        tree.links.new(geometry, delete.inputs["Geometry"])
        tree.links.new(compare.outputs["Result"], delete.inputs["Selection"])
        return delete.outputs["Geometry"]

    @staticmethod
    def _smooth_border(tree, geometry):
        """The cut follows face edges, so necklines and cuffs are stair-stepped: relax each border point toward
        its border neighbours (Blur Attribute of the position, border points weighted 1, others 0); a point
        is only moved by less than 3 mm, so corners where borders meet cannot be pulled into spikes."""
        neighbours = tree.nodes.new("GeometryNodeInputMeshEdgeNeighbors")
        one_face = tree.nodes.new("FunctionNodeCompare")
        one_face.data_type = "INT"
        one_face.operation = "EQUAL"
        one_face.inputs["B"].default_value = 1
        tree.links.new(neighbours.outputs["Face Count"], one_face.inputs["A"])
        on_points = tree.nodes.new("GeometryNodeFieldOnDomain")
        on_points.domain = "POINT"
        on_points.data_type = "BOOLEAN"
        tree.links.new(one_face.outputs["Result"], on_points.inputs[0])
        position = tree.nodes.new("GeometryNodeInputPosition")
        blur = tree.nodes.new("GeometryNodeBlurAttribute")
        blur.data_type = "FLOAT_VECTOR"
        blur.inputs["Iterations"].default_value = 6
        tree.links.new(position.outputs["Position"], blur.inputs["Value"])
        tree.links.new(on_points.outputs[0], blur.inputs["Weight"])
        distance = tree.nodes.new("ShaderNodeVectorMath")
        distance.operation = "DISTANCE"
        tree.links.new(position.outputs["Position"], distance.inputs[0])
        tree.links.new(blur.outputs["Value"], distance.inputs[1])
        small = tree.nodes.new("FunctionNodeCompare")
        small.data_type = "FLOAT"
        small.operation = "LESS_THAN"
        small.inputs["B"].default_value = 0.003
        tree.links.new(distance.outputs["Value"], small.inputs["A"])
        both = tree.nodes.new("FunctionNodeBooleanMath")
        both.operation = "AND"
        tree.links.new(on_points.outputs[0], both.inputs[0])
        tree.links.new(small.outputs["Result"], both.inputs[1])
        relax = tree.nodes.new("GeometryNodeSetPosition")
        tree.links.new(geometry, relax.inputs["Geometry"])
        tree.links.new(both.outputs["Boolean"], relax.inputs["Selection"])
        tree.links.new(blur.outputs["Value"], relax.inputs["Position"])
        return relax.outputs["Geometry"]

    def apply(self, params: dict) -> None:
        none = params["type"] == "none"
        self.obj.hide_render = none
        self.nodes["mask"].inputs["Name"].default_value = attribute_name("tshirt" if none else params["type"])
        self.nodes["offset"].inputs["Scale"].default_value = params["offset"]
        self.solidify.thickness = params["thickness"]
        materials.set_cloth(self.material, garment_colour(params), params["roughness"], params["sheen"],
                            params["weave_scale"], params["bump"])
