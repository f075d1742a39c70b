"""Scalp hair and eyebrows of the MakeHuman subject as Cycles curves.

Guide strands are grown in numpy from roots fixed on the base mesh (barycentric on its triangles, so they follow
every shape morph): out of the scalp, along a flow field combed away from a crown point, bent by gravity and kept
a few millimetres outside the body (BVH nearest-point collision). Blender's bundled procedural hair node assets
(Duplicate / Curl / Frizz / Noise / Set Hair Curve Profile) then add child strands and detail in a geometry-nodes
modifier whose node inputs are the only thing changed per case. Eyebrows are short guides on a brow band.
Both objects live in the body's rest frame (no pose).
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from mathutils.bvhtree import BVHTree

from . import materials
from .surface_normals import BROW_ROUGHNESS

HAIR_ASSETS = ("assets", "nodes", "procedural_hair_node_assets.blend")
ASSET_GROUPS = ("Duplicate Hair Curves", "Curl Hair Curves", "Frizz Hair Curves", "Hair Curves Noise",
                "Set Hair Curve Profile")
STYLES = ("bald", "short", "long", "curly")
STYLE_PROBABILITY = (0.15, 0.35, 0.30, 0.20)
MAX_GUIDES = 900
BROW_GUIDES = 260
ROOT_SEED = 20240611  # roots are part of the rig, not of a case: fixed so every process builds the same rig


def _asset_groups() -> dict[str, "bpy.types.NodeTree"]:
    path = Path(bpy.utils.system_resource("DATAFILES")).joinpath(*HAIR_ASSETS)
    missing = [name for name in ASSET_GROUPS if name not in bpy.data.node_groups]
    if missing:
        with bpy.data.libraries.load(str(path)) as (source, target):
            target.node_groups = [name for name in source.node_groups if name in missing]
    return {name: bpy.data.node_groups[name] for name in ASSET_GROUPS}


def sample_params(rng: np.random.Generator) -> dict:
    """Hair style, length (m), colour (materials.hair_colour's melanin/red/grey), curl and eyebrow density."""
    r = lambda lo, hi: round(float(rng.uniform(lo, hi)), 4)  # noqa: E731 (compact sampling)
    style = str(rng.choice(STYLES, p=STYLE_PROBABILITY))
    length = {"bald": 0.0, "short": r(0.02, 0.06), "long": r(0.16, 0.30), "curly": r(0.07, 0.14)}[style]
    kind = str(rng.choice(["natural", "red", "grey"], p=[0.8, 0.1, 0.1]))
    return {
        "style": style, "length": length,
        "colour": {"melanin": r(0.0, 1.0), "kind": kind, "hue_jitter": r(-0.02, 0.02)},
        "roughness": r(0.2, 0.4), "density": r(0.7, 1.0), "crown_forward": r(-0.02, 0.05),
        "curl_radius": r(0.005, 0.012), "frizz": r(0.0, 0.004), "scalp_tint": r(0.45, 0.8),
        "brow_density": r(0.4, 1.0), "brow_darkness": r(0.6, 1.0),
    }


def _triangles(faces) -> np.ndarray:
    tris = []
    for face in faces:
        for k in range(1, len(face) - 1):
            tris.append((face[0], face[k], face[k + 1]))
    return np.array(tris, np.int64)


def vertex_normals(vertices: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[tris[:, k]] for k in range(3))
    face_normals = np.cross(b - a, c - a)  # area weighted
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, tris[:, k], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _sample_roots(vertices: np.ndarray, tris: np.ndarray, weight: np.ndarray, count: int, rng) -> tuple:
    """`count` roots distributed by area x mean vertex weight: (triangle index, barycentric (count, 3))."""
    a, b, c = (vertices[tris[:, k]] for k in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1) * weight[tris].mean(1)
    chosen = rng.choice(len(tris), size=count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    return chosen, np.stack([1 - u - v, u, v], axis=1)


def hair_cap_mask(vertices: np.ndarray, eye_centre: np.ndarray) -> np.ndarray:
    """Soft scalp mask (0..1) of base-mesh vertices (Blender frame, metres): above a plane tilted from the
    front hairline (~6 cm above the eyes) down to the nape, away from the ears and the face."""
    rel = vertices - eye_centre  # +y: toward the back of the head
    height = rel[:, 2] - (0.062 - 0.75 * (rel[:, 1] - 0.005))
    ears = np.exp(-((np.abs(rel[:, 0]) - 0.075) ** 2 + (rel[:, 1] - 0.11) ** 2 + (rel[:, 2] + 0.005) ** 2)
                  / (2 * 0.022 ** 2))
    head = (rel[:, 2] > -0.09) & (np.abs(rel[:, 0]) < 0.12) & (rel[:, 1] > -0.05)
    return np.where(head, np.clip(height / 0.012 + 0.5, 0.0, 1.0) * (1.0 - ears), 0.0)


def brow_mask(vertices: np.ndarray, eye_centre: np.ndarray, eye_dx: float) -> np.ndarray:
    """Soft band (0..1) above each eye: the eyebrow arch, thick at the inner end, thinning outward."""
    rel = vertices - eye_centre
    t = (np.abs(rel[:, 0]) - eye_dx) / 0.026  # -1 inner end .. +1 outer end of the brow
    centre = 0.020 + 0.004 * (1 - t ** 2)  # arch above the eye centre
    half = 0.0045 - 0.0015 * t
    inside = (np.abs(t) < 1.0) & (rel[:, 1] < 0.01)
    return np.where(inside, np.clip((half - np.abs(rel[:, 2] - centre)) / 0.0015, 0.0, 1.0), 0.0)


def _grow(roots, normals, tangent_flow, length, points, lift, bend, gravity, offset, bvh, hug_faces=None):
    """(N, points, 3) strands: start along normal*lift + flow, turn toward flow+gravity, stay `offset` (m,
    per point) outside the surface. Over the faces where hug_faces (per polygon) is set, strands are also
    held at that offset (hair lies on the skull under its own weight instead of leaving it tangentially)."""
    count = len(roots)
    strands = np.empty((count, points, 3))
    strands[:, 0] = roots - normals * 0.001  # rooted a millimetre inside (the smoothed surface shrinks a bit)
    step = (length / (points - 1))[:, None]
    down = np.array([0.0, 0.0, -1.0])
    direction = normals * lift + tangent_flow
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    position = roots.copy()
    for k in range(1, points):
        along = k / (points - 1)  # the comb direction fades out along the strand, gravity takes over
        target = tangent_flow * max(0.0, 1.0 - gravity * along) + gravity * along * down
        target /= np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-9)
        direction = direction + bend * (target - direction)
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-9)
        previous = position
        position = position + step * direction
        for i in range(count):  # collision: push back outside the body surface (or hold on the skull)
            location, normal, face, _ = bvh.find_nearest(position[i], 0.05)
            if location is None:
                continue
            location, normal = np.array(location), np.array(normal)
            gap = float(np.dot(position[i] - location, normal))
            if gap < offset[k] or (hug_faces is not None and hug_faces[face] and gap < 0.03):
                position[i] = location + normal * offset[k]
        segment = position - previous  # the projection bends the strand: carry on in its new direction
        direction = segment / np.maximum(np.linalg.norm(segment, axis=1, keepdims=True), 1e-9)
        strands[:, k] = position
    return strands


def _set_curves(obj, strands: np.ndarray) -> None:
    old = obj.data
    data = bpy.data.hair_curves.new(old.name)
    for material in old.materials:
        data.materials.append(material)
    if len(strands):
        data.add_curves([strands.shape[1]] * len(strands))
        data.position_data.foreach_set("vector", strands.astype(np.float32).ravel())
    obj.data = data
    bpy.data.hair_curves.remove(old)


class Hair:
    """Scalp hair + eyebrows for one body; `apply` re-grows the guides for new vertices and parameters."""

    def __init__(self, stage, base_vertices: np.ndarray, faces, eye_centre: np.ndarray, eye_dx: float):
        self.tris = _triangles(faces)
        self.faces = [tuple(f) for f in faces]
        rng = np.random.default_rng(ROOT_SEED)
        self.cap = hair_cap_mask(base_vertices, eye_centre)
        self.hug_faces = np.array([self.cap[list(f)].mean() > 0.05 for f in faces])
        self.brow = brow_mask(base_vertices, eye_centre, eye_dx)
        self.roots = _sample_roots(base_vertices, self.tris, self.cap, MAX_GUIDES, rng)
        self.brow_roots = _sample_roots(base_vertices, self.tris, self.brow, BROW_GUIDES, rng)
        stage.scene.cycles_curves.shape = "RIBBONS"  # camera-facing ribbons: much cheaper than thick curves
        stage.scene.cycles_curves.subdivisions = 2
        self.material = materials.hair("Hair")
        self.brow_material = materials.hair("Eyebrows")
        self.scalp = self._curves_object(stage, "Hair", self.material)
        self.eyebrows = self._curves_object(stage, "Eyebrows", self.brow_material)
        self.nodes = self._build_modifier(self.scalp)
        self.brow_nodes = self._build_modifier(self.eyebrows)

    @staticmethod
    def _curves_object(stage, name: str, material) -> "bpy.types.Object":
        data = bpy.data.hair_curves.new(name)
        data.materials.append(material)
        obj = bpy.data.objects.new(name, data)
        stage.scene.collection.objects.link(obj)
        return obj

    @staticmethod
    def _build_modifier(obj) -> dict:
        """Geometry nodes: guides -> Duplicate (children) -> Curl -> Frizz -> Noise -> profile (radius)."""
        groups = _asset_groups()
        tree = bpy.data.node_groups.new(obj.name + "Strands", "GeometryNodeTree")
        tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
        tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
        socket = tree.nodes.new("NodeGroupInput").outputs[0]
        nodes = {}
        for name in ASSET_GROUPS:
            node = tree.nodes.new("GeometryNodeGroup")
            node.node_tree = groups[name]
            tree.links.new(socket, node.inputs["Geometry"])
            socket = node.outputs["Geometry"]
            nodes[name] = node
        tree.links.new(socket, tree.nodes.new("NodeGroupOutput").inputs[0])
        obj.modifiers.new("Strands", "NODES").node_group = tree
        return nodes

    def apply(self, vertices: np.ndarray, params: dict, seed: int) -> None:
        """Grow guides on `vertices` (morphed base mesh, Blender frame) and set strand/material inputs."""
        colour = materials.hair_colour(params["colour"])
        materials.set_hair(self.material, colour, params["roughness"])
        brow_colour = tuple(c * params["brow_darkness"] for c in colour)
        materials.set_hair(self.brow_material, brow_colour, BROW_ROUGHNESS)
        bvh = BVHTree.FromPolygons(vertices.tolist(), self.faces)
        normals = vertex_normals(vertices, self.tris)
        bald = params["style"] == "bald"
        self.scalp.hide_render = bald
        if bald:
            _set_curves(self.scalp, np.zeros((0, 2, 3)))
        else:
            self._grow_scalp(vertices, normals, params, bvh, seed)
        self._grow_brows(vertices, normals, params, bvh, seed)

    @staticmethod
    def _at_roots(values: np.ndarray, tris: np.ndarray, roots) -> np.ndarray:
        chosen, bary = roots
        return np.einsum("nk,nkd->nd", bary, values[tris[chosen]])

    def _grow_scalp(self, vertices, normals, params, bvh, seed) -> None:
        style, length = params["style"], params["length"]
        count = int(MAX_GUIDES * params["density"])
        roots = self._at_roots(vertices, self.tris, self.roots)[:count]
        root_normals = self._at_roots(normals, self.tris, self.roots)[:count]
        root_normals /= np.linalg.norm(root_normals, axis=1, keepdims=True)
        if style == "short":  # comb away from a crown point near the top (shifted forward: less fringe)
            top = roots[np.argmax(roots[:, 2])]
            flow = roots - (top + np.array([0.0, -0.03 - params["crown_forward"], 0.0]))
        else:  # parted: away from a line over the top, backward; the face stays free
            part_x = params["crown_forward"] * 0.4
            side = np.where(roots[:, 0] >= part_x, 1.0, -1.0)
            flow = np.stack([side, np.full(count, 0.6), np.zeros(count)], axis=1)
        flow -= np.sum(flow * root_normals, axis=1, keepdims=True) * root_normals
        flow /= np.maximum(np.linalg.norm(flow, axis=1, keepdims=True), 1e-9)
        rng = np.random.default_rng([seed, 11])
        lengths = length * rng.uniform(0.8, 1.1, count)
        points = {"short": 6, "long": 14, "curly": 12}[style]
        volume = {"short": 0.003, "long": 0.006, "curly": 0.008}[style]
        offset = np.linspace(0.002, volume, points)
        gravity = {"short": 0.2, "long": 2.0, "curly": 1.2}[style]
        strands = _grow(roots, root_normals, flow, lengths, points, lift=0.3, bend=0.45, gravity=gravity,
                        offset=offset, bvh=bvh, hug_faces=self.hug_faces)
        _set_curves(self.scalp, strands)
        n = self.nodes
        n["Duplicate Hair Curves"].inputs["Amount"].default_value = {"short": 7, "long": 5, "curly": 4}[style]
        n["Duplicate Hair Curves"].inputs["Radius"].default_value = 0.004
        n["Duplicate Hair Curves"].inputs["Seed"].default_value = seed % 100000
        curly = style == "curly"
        n["Curl Hair Curves"].mute = not curly
        n["Curl Hair Curves"].inputs["Radius"].default_value = params["curl_radius"]
        n["Curl Hair Curves"].inputs["Frequency"].default_value = 1.5
        n["Curl Hair Curves"].inputs["Curl Start"].default_value = 0.1
        n["Curl Hair Curves"].inputs["Subdivision"].default_value = 2
        n["Curl Hair Curves"].inputs["Seed"].default_value = seed % 100000
        n["Frizz Hair Curves"].inputs["Distance"].default_value = params["frizz"]
        n["Frizz Hair Curves"].inputs["Seed"].default_value = seed % 100000
        n["Hair Curves Noise"].inputs["Distance"].default_value = 0.002 + 0.01 * length
        n["Hair Curves Noise"].inputs["Scale"].default_value = 8.0
        n["Set Hair Curve Profile"].inputs["Radius"].default_value = 0.00022 if style == "short" else 0.00018
        n["Set Hair Curve Profile"].inputs["Shape"].default_value = 0.3

    def _grow_brows(self, vertices, normals, params, bvh, seed) -> None:
        count = int(BROW_GUIDES * params["brow_density"])
        roots = self._at_roots(vertices, self.tris, self.brow_roots)[:count]
        root_normals = self._at_roots(normals, self.tris, self.brow_roots)[:count]
        root_normals /= np.linalg.norm(root_normals, axis=1, keepdims=True)
        outward = np.stack([np.sign(roots[:, 0]), np.zeros(count), np.full(count, 0.35)], axis=1)
        outward -= np.sum(outward * root_normals, axis=1, keepdims=True) * root_normals
        outward /= np.maximum(np.linalg.norm(outward, axis=1, keepdims=True), 1e-9)
        lengths = np.random.default_rng([seed, 12]).uniform(0.006, 0.010, count)
        strands = _grow(roots, root_normals, outward, lengths, 4, lift=0.25, bend=0.6, gravity=0.0,
                        offset=np.full(4, 0.0006), bvh=bvh)
        _set_curves(self.eyebrows, strands)
        n = self.brow_nodes
        n["Duplicate Hair Curves"].inputs["Amount"].default_value = 1
        n["Duplicate Hair Curves"].inputs["Radius"].default_value = 0.001
        n["Duplicate Hair Curves"].inputs["Seed"].default_value = seed % 100000
        n["Curl Hair Curves"].mute = True
        n["Frizz Hair Curves"].inputs["Distance"].default_value = 0.0005
        n["Hair Curves Noise"].mute = True
        n["Set Hair Curve Profile"].inputs["Radius"].default_value = 0.00012
        n["Set Hair Curve Profile"].inputs["Shape"].default_value = 0.5
