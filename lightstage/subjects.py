"""Subjects of the light stage: the scanned Lee Perry-Smith head and parametric MakeHuman bodies.

Each subject is built into the Stage once (`build`) and re-posed/re-shaped per sample (`apply`), returning the
framing (a look-at point and the height in metres the image should cover). Subjects face Blender's -Y, Z up.
`sample_params(rng)` draws every random parameter as plain JSON-able values so meta.json can record them.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from . import clothing, hair, materials, pose
from . import makehuman_data as mh

LEE_PERRY_SMITH = ("data", "heads", "lee_perry_smith")
SKIN_MASKS = ("data", "makehuman", "mpfb2_textures")
BUST_HEIGHT_M = 0.42  # the scan (head + upper chest) is in arbitrary units: scale its height to this


def _mesh_object(name: str, vertices: np.ndarray, faces, face_uvs, uvs) -> "bpy.types.Object":
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(vertices.tolist(), [], faces)
    layer = mesh.uv_layers.new(name="UVMap")
    loop_uvs = np.array([uvs[i] for corner in face_uvs for i in corner], np.float32)
    layer.data.foreach_set("uv", loop_uvs.ravel())
    mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), bool))
    mesh.update()
    return bpy.data.objects.new(name, mesh)


class LeePerrySmith:
    name = "lee_perry_smith"

    def __init__(self, shared: Path):
        self.folder = shared.joinpath(*LEE_PERRY_SMITH)

    @staticmethod
    def sample_params(rng: np.random.Generator) -> dict:
        return {"roughness": round(float(rng.uniform(0.38, 0.55)), 4),
                "sss_weight": round(float(rng.uniform(0.1, 0.3)), 4)}

    def build(self, stage) -> None:
        bpy.ops.import_scene.gltf(filepath=str(self.folder / "LeePerrySmith.glb"))
        self.obj = next(o for o in bpy.context.scene.objects if o.type == "MESH")
        for other in [o for o in bpy.context.scene.objects if o.type != "MESH" and o != stage.camera]:
            bpy.data.objects.remove(other)  # the file's own camera/lamp empties
        # The file's UVs follow three.js's flipY texture convention (v up), which the glTF importer flips
        # again: undo that so Map-COL's lips land on the mouth (checked visually against the albedo pass).
        uv = np.empty(2 * len(self.obj.data.loops), np.float32)
        self.obj.data.uv_layers[0].data.foreach_get("uv", uv)
        uv[1::2] = 1.0 - uv[1::2]
        self.obj.data.uv_layers[0].data.foreach_set("uv", uv)
        scale = BUST_HEIGHT_M / self.obj.dimensions.z
        self.obj.scale = (scale, scale, scale)
        bpy.context.view_layer.update()
        corners = np.array([self.obj.matrix_world @ v.co for v in self.obj.data.vertices])
        self.obj.location = -0.5 * (corners.min(0) + corners.max(0))  # centre the head on the origin
        self.images = {
            "albedo": stage.load_image(self.folder / "Map-COL.jpg", "sRGB"),
            "normal": stage.load_image(self.folder / "Infinite-Level_02_Tangent_SmoothUV.jpg", "Non-Color"),
            "specular": stage.load_image(self.folder / "Map-SPEC.jpg", "Non-Color"),
        }

    def apply(self, params: dict) -> tuple[np.ndarray, float]:
        old = self.obj.data.materials[:]
        self.obj.data.materials.clear()
        self.obj.data.materials.append(materials.scanned_head(self.images, params["roughness"],
                                                              params["sss_weight"]))
        for material in old:
            if material is not None and material.users == 0:
                bpy.data.materials.remove(material)
        # the head is the upper half of the bust: look above the centre, frame head and upper chest
        return np.array([0.0, 0.0, 0.05]), 0.40


class MakeHumanBody:
    name = "makehuman"

    def __init__(self, shared: Path):
        self.shared = shared

    @staticmethod
    def sample_params(rng: np.random.Generator) -> dict:
        ethnic = rng.dirichlet([0.7, 0.7, 0.7])
        face = {stem: round(float(np.clip(rng.normal(0.0, 0.35), -0.8, 0.8)), 3)
                for stem, _, _ in mh.FACE_PAIRS if rng.random() < 0.5}
        r = lambda lo, hi: round(float(rng.uniform(lo, hi)), 4)  # noqa: E731 (compact sampling)
        return {
            "gender": r(0.0, 1.0), "age": r(0.5, 0.95), "muscle": r(0.2, 0.8), "weight": r(0.2, 0.85),
            "proportions": r(0.3, 1.0),
            "ethnic": {k: round(float(v), 4) for k, v in zip(("african", "asian", "caucasian"), ethnic)},
            "head_shape": str(rng.choice(mh.HEAD_SHAPES)), "head_shape_amount": r(0.0, 0.7),
            "face": face,
            "skin": {"melanin": r(0.0, 1.0), "hue_shift": r(-0.015, 0.015), "mottling": r(0.1, 0.5),
                     "roughness": r(0.35, 0.55), "roughness_var": r(0.03, 0.12),
                     "pore_strength": r(0.05, 0.25), "sss_weight": r(0.1, 0.3)},
            "framing": str(rng.choice(["head_shoulders", "head_shoulders", "close", "waist_up"])),
            "pose": pose.sample_pose(rng),  # head turn/tilt on the neck, arms lowered from the A-pose
            **MakeHumanBody._sample_appearance(rng.spawn(1)[0]),
        }

    @staticmethod
    def _sample_appearance(rng: np.random.Generator) -> dict:
        """Hair, garment and skin tints from a child stream: spawning does not advance `rng`, so every other
        parameter of a case (shape, lighting, camera) keeps the value it had before appearance existed."""
        r = lambda lo, hi: round(float(rng.uniform(lo, hi)), 4)  # noqa: E731 (compact sampling)
        return {"tints": {"lips": r(0.3, 0.9), "eyelids": r(0.1, 0.6), "ears": r(0.1, 0.6)},
                "hair": {**hair.sample_params(rng), "seed": int(rng.integers(0, 2 ** 31 - 1))},
                "garment": clothing.sample_params(rng)}

    def build(self, stage) -> None:
        base = mh.base_mesh()
        self.poser = pose.Poser(base.groups, mh.to_blender(base.vertices))  # skin weights, once per process
        self.body = _mesh_object("Body", mh.to_blender(base.vertices), base.faces, base.face_uvs, base.uvs)
        subsurf = self.body.modifiers.new("Smooth", "SUBSURF")
        subsurf.levels, subsurf.render_levels = 1, 1
        stage.scene.collection.objects.link(self.body)
        eyes = mh.eye_mesh(self.shared)
        self.eye_refs = eyes.base_indices
        self.eyes = _mesh_object("Eyes", mh.to_blender(base.vertices[eyes.base_indices]), eyes.faces,
                                 eyes.face_uvs, eyes.uvs)
        stage.scene.collection.objects.link(self.eyes)
        texture = self.shared / "data" / "makehuman" / "eyes" / "materials" / "brown_eye.png"
        self.eyes.data.materials.append(materials.eye(stage.load_image(texture, "sRGB")))
        groups = base.groups
        eyes_l, eyes_r = (mh.to_blender(base.vertices[groups[f"joint-{s}-eye"]]).mean(0) for s in "lr")
        rest = mh.to_blender(base.vertices)
        self.hair = hair.Hair(stage, rest, base.faces, 0.5 * (eyes_l + eyes_r), 0.5 * abs(eyes_l[0] - eyes_r[0]))
        body_vertices = np.unique(np.concatenate([np.asarray(f) for f in base.faces]))
        attributes = {materials.HAIR_CAP_ATTRIBUTE: self.hair.cap, materials.BROW_ATTRIBUTE: self.hair.brow}
        for garment, mask in clothing.garment_masks(rest, groups, body_vertices).items():
            attributes[clothing.attribute_name(garment)] = mask
        for name, values in attributes.items():
            layer = self.body.data.attributes.new(name, "FLOAT", "POINT")
            layer.data.foreach_set("value", np.asarray(values, np.float32))
        self.garment = clothing.Garment(stage, self.body)
        self.skin_masks = {name: stage.load_image(self.shared.joinpath(*SKIN_MASKS, file), "Non-Color")
                           for name, file in materials.SKIN_TINT_MASKS.items()}

    def apply(self, params: dict) -> tuple[np.ndarray, float]:
        weights = mh.macro_weights(params["gender"], params["age"], params["muscle"], params["weight"],
                                   params["proportions"], params["ethnic"])
        weights.update(mh.face_weights(params["face"], params["head_shape"], params["head_shape_amount"]))
        vertices = self.poser.apply(mh.to_blender(mh.morph(weights)), params.get("pose", pose.ZERO_POSE))
        self.body.data.vertices.foreach_set("co", vertices.astype(np.float32).ravel())
        self.body.data.update()
        self.eyes.data.vertices.foreach_set("co", vertices[self.eye_refs].astype(np.float32).ravel())
        self.eyes.data.update()
        old = self.body.data.materials[:]
        self.body.data.materials.clear()
        hair_params = params["hair"]
        hair_colour = materials.hair_colour(hair_params["colour"])
        stubble = {"scalp": hair_colour, "scalp_tint": 0.0 if hair_params["style"] == "bald" else
                   hair_params["scalp_tint"], "brow": tuple(c * hair_params["brow_darkness"] for c in hair_colour),
                   "brow_tint": 0.5 * hair_params["brow_density"]}
        self.body.data.materials.append(materials.procedural_skin({**params["skin"], **params["tints"]},
                                                                  self.skin_masks, stubble))
        for material in old:
            if material is not None and material.users == 0:
                bpy.data.materials.remove(material)
        self.hair.apply(vertices, hair_params, hair_params["seed"])
        self.garment.apply(params["garment"])
        return pose.framing(vertices, mh.base_mesh().groups, params["framing"])


SUBJECTS = {cls.name: cls for cls in (LeePerrySmith, MakeHumanBody)}
