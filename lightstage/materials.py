"""Shader node set-ups for the subjects: procedural skin, the scanned head's textures, eyes.

Every material writes its exact base colour and roughness to the shader AOVs the ground truth reads (Cycles'
DiffCol pass is the Fresnel-weighted diffuse colour, and black for hair/eyes' glossy parts).
"""

from __future__ import annotations

import colorsys

import bpy
import numpy as np

from .stage import AOV_ALBEDO, AOV_ROUGHNESS

# Skin albedo palette from very light to very dark (sRGB; roughly Fitzpatrick I..VI swatches of measured skin
# reflectance), indexed by a melanin value in [0, 1]. Linearised before use.
SKIN_PALETTE_SRGB = np.array([
    [0.96, 0.80, 0.71],
    [0.90, 0.70, 0.58],
    [0.80, 0.58, 0.45],
    [0.65, 0.45, 0.33],
    [0.45, 0.30, 0.21],
    [0.28, 0.18, 0.13],
    [0.17, 0.11, 0.08],
])


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def skin_colour(melanin: float, hue_shift: float = 0.0) -> tuple[float, float, float]:
    """Linear base colour for melanin in [0, 1]; hue_shift (about +-0.02) nudges toward red/yellow."""
    pos = float(np.clip(melanin, 0.0, 1.0)) * (len(SKIN_PALETTE_SRGB) - 1)
    i = min(int(pos), len(SKIN_PALETTE_SRGB) - 2)
    srgb = SKIN_PALETTE_SRGB[i] * (1 - (pos - i)) + SKIN_PALETTE_SRGB[i + 1] * (pos - i)
    h, s, v = colorsys.rgb_to_hsv(*srgb)
    srgb = colorsys.hsv_to_rgb((h + hue_shift) % 1.0, s, v)
    return tuple(float(c) for c in srgb_to_linear(srgb))


def _new_material(name: str):
    material = bpy.data.materials.new(name)
    tree = material.node_tree  # Blender 5.0 materials always have a node tree
    tree.nodes.clear()
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    output.target = "CYCLES"
    bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
    tree.links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    return material, tree, bsdf


def _aov(tree, name: str, socket, is_colour: bool) -> None:
    node = tree.nodes.new("ShaderNodeOutputAOV")
    node.aov_name = name
    tree.links.new(socket, node.inputs["Color" if is_colour else "Value"])


def _constant(tree, value: float):
    node = tree.nodes.new("ShaderNodeValue")
    node.outputs[0].default_value = value
    return node.outputs[0]


def _subsurface(bsdf, weight: float, scale_m: float) -> None:
    bsdf.subsurface_method = "RANDOM_WALK_SKIN"
    bsdf.inputs["Subsurface Weight"].default_value = weight
    bsdf.inputs["Subsurface Radius"].default_value = (1.0, 0.35, 0.2)  # red scatters furthest in skin
    bsdf.inputs["Subsurface Scale"].default_value = scale_m


def procedural_skin(params: dict) -> "bpy.types.Material":
    """Principled skin: melanin base colour with mottling noise, roughness variation, pore bump, SSS.

    params: melanin, hue_shift, mottling (0..1), roughness, roughness_var, pore_strength, sss_weight."""
    material, tree, bsdf = _new_material("Skin")
    base = skin_colour(params["melanin"], params["hue_shift"])
    blotchy = tuple(c * f for c, f in zip(base, (1.05, 0.80, 0.78)))  # redder, darker patches
    coords = tree.nodes.new("ShaderNodeTexCoord")
    # object coordinates in metres: mottling at ~2 cm, pores at ~1 mm
    mottle = tree.nodes.new("ShaderNodeTexNoise")
    mottle.inputs["Scale"].default_value = 40.0
    mottle.inputs["Detail"].default_value = 4.0
    tree.links.new(coords.outputs["Object"], mottle.inputs["Vector"])
    ramp = tree.nodes.new("ShaderNodeMapRange")
    ramp.inputs["From Min"].default_value = 0.45
    ramp.inputs["From Max"].default_value = 0.75
    ramp.inputs["To Max"].default_value = params["mottling"]
    tree.links.new(mottle.outputs["Fac"], ramp.inputs["Value"])
    mix = tree.nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.inputs["A"].default_value = (*base, 1.0)
    mix.inputs["B"].default_value = (*blotchy, 1.0)
    tree.links.new(ramp.outputs["Result"], mix.inputs["Factor"])
    colour = mix.outputs["Result"]
    tree.links.new(colour, bsdf.inputs["Base Color"])
    # roughness: base +- variation driven by a second, finer noise
    rough_noise = tree.nodes.new("ShaderNodeTexNoise")
    rough_noise.inputs["Scale"].default_value = 120.0
    tree.links.new(coords.outputs["Object"], rough_noise.inputs["Vector"])
    rough = tree.nodes.new("ShaderNodeMapRange")
    rough.inputs["To Min"].default_value = params["roughness"] - params["roughness_var"]
    rough.inputs["To Max"].default_value = params["roughness"] + params["roughness_var"]
    tree.links.new(rough_noise.outputs["Fac"], rough.inputs["Value"])
    tree.links.new(rough.outputs["Result"], bsdf.inputs["Roughness"])
    # pores: fine Voronoi distance as a bump height
    pores = tree.nodes.new("ShaderNodeTexVoronoi")
    pores.inputs["Scale"].default_value = 1500.0
    tree.links.new(coords.outputs["Object"], pores.inputs["Vector"])
    bump = tree.nodes.new("ShaderNodeBump")
    bump.inputs["Strength"].default_value = params["pore_strength"]
    bump.inputs["Distance"].default_value = 0.0002
    tree.links.new(pores.outputs["Distance"], bump.inputs["Height"])
    tree.links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    _subsurface(bsdf, params["sss_weight"], 0.004)
    _aov(tree, AOV_ALBEDO, colour, True)
    _aov(tree, AOV_ROUGHNESS, rough.outputs["Result"], False)
    return material


def scanned_head(images: dict, roughness: float, sss_weight: float) -> "bpy.types.Material":
    """The Lee Perry-Smith scan: albedo map, tangent-space normal map, specular map as specular level."""
    material, tree, bsdf = _new_material("ScannedHead")
    coords = tree.nodes.new("ShaderNodeUVMap")
    nodes = {}
    for key, image in images.items():
        node = tree.nodes.new("ShaderNodeTexImage")
        node.image = image
        node.interpolation = "Linear"
        tree.links.new(coords.outputs["UV"], node.inputs["Vector"])
        nodes[key] = node
    colour = nodes["albedo"].outputs["Color"]
    tree.links.new(colour, bsdf.inputs["Base Color"])
    normal_map = tree.nodes.new("ShaderNodeNormalMap")
    normal_map.space = "TANGENT"
    tree.links.new(nodes["normal"].outputs["Color"], normal_map.inputs["Color"])
    tree.links.new(normal_map.outputs["Normal"], bsdf.inputs["Normal"])
    spec = tree.nodes.new("ShaderNodeMapRange")  # spec map (0..1) -> specular IOR level 0.2..0.8
    spec.inputs["To Min"].default_value = 0.2
    spec.inputs["To Max"].default_value = 0.8
    tree.links.new(nodes["specular"].outputs["Color"], spec.inputs["Value"])
    tree.links.new(spec.outputs["Result"], bsdf.inputs["Specular IOR Level"])
    bsdf.inputs["Roughness"].default_value = roughness
    _subsurface(bsdf, sss_weight, 0.004)
    _aov(tree, AOV_ALBEDO, colour, True)
    _aov(tree, AOV_ROUGHNESS, _constant(tree, roughness), False)
    return material


def eye(image) -> "bpy.types.Material":
    """MakeHuman eyeball texture under a glossy clear-coat-like surface."""
    material, tree, bsdf = _new_material("Eye")
    tex = tree.nodes.new("ShaderNodeTexImage")
    tex.image = image
    tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.35
    bsdf.inputs["Coat Weight"].default_value = 1.0
    bsdf.inputs["Coat Roughness"].default_value = 0.03
    _aov(tree, AOV_ALBEDO, tex.outputs["Color"], True)
    _aov(tree, AOV_ROUGHNESS, _constant(tree, 0.35), False)
    return material
