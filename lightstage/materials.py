"""Shader node set-ups for the subjects: procedural skin, the scanned head's textures, eyes, hair, cloth.

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


# Skin tints (multipliers of the skin's base colour) painted through MPFB's UV-space masks (CC0).
SKIN_TINTS = {"lips": (0.95, 0.52, 0.55), "eyelids": (0.72, 0.64, 0.64), "ears": (1.0, 0.80, 0.78)}
SKIN_TINT_MASKS = {name: f"mpfb_{name}.jpg" for name in SKIN_TINTS}
HAIR_CAP_ATTRIBUTE = "hair_cap"  # soft 0..1 point attributes of the body mesh (hair.py computes them)
BROW_ATTRIBUTE = "brow"


def _mix(tree, a, b, factor):
    """Colour mix node: a..b by factor; each argument is a socket or a plain value."""
    node = tree.nodes.new("ShaderNodeMix")
    node.data_type = "RGBA"
    for name, value in (("A", a), ("B", b), ("Factor", factor)):
        if isinstance(value, bpy.types.NodeSocket):
            tree.links.new(value, node.inputs[name])
        else:  # the Factor socket is a float, the colour sockets want RGBA
            node.inputs[name].default_value = value if name == "Factor" else (*value, 1.0)
    return node.outputs["Result"]


def _multiply(tree, colour, value, factor):
    node = tree.nodes.new("ShaderNodeMix")
    node.data_type = "RGBA"
    node.blend_type = "MULTIPLY"
    node.inputs["Factor"].default_value = 1.0
    tree.links.new(colour, node.inputs["A"])
    node.inputs["B"].default_value = (*value, 1.0)
    return _mix(tree, colour, node.outputs["Result"], factor)


def _scaled(tree, socket, scale: float):
    node = tree.nodes.new("ShaderNodeMath")
    node.operation = "MULTIPLY"
    tree.links.new(socket, node.inputs[0])
    node.inputs[1].default_value = scale
    return node.outputs[0]


def _skin_tints(tree, colour, params: dict, masks: dict, hair: dict | None):
    """Lips/eyelids/ears through the UV masks, then the scalp and brows toward the hair colour."""
    uv = tree.nodes.new("ShaderNodeUVMap")
    for name, tint in SKIN_TINTS.items():
        strength = params.get(name, 0.0)
        if name not in masks or strength <= 0.0:
            continue
        tex = tree.nodes.new("ShaderNodeTexImage")
        tex.image = masks[name]
        tex.interpolation = "Linear"
        tree.links.new(uv.outputs["UV"], tex.inputs["Vector"])
        colour = _multiply(tree, colour, tint, _scaled(tree, tex.outputs["Color"], strength))
    if hair:
        for attribute, key, strength in ((HAIR_CAP_ATTRIBUTE, "scalp", hair["scalp_tint"]),
                                         (BROW_ATTRIBUTE, "brow", hair["brow_tint"])):
            node = tree.nodes.new("ShaderNodeAttribute")
            node.attribute_name = attribute
            colour = _mix(tree, colour, hair[key], _scaled(tree, node.outputs["Fac"], strength))
    return colour


def procedural_skin(params: dict, masks: dict | None = None, hair: dict | None = None) -> "bpy.types.Material":
    """Principled skin: melanin base colour with mottling noise, roughness variation, pore bump, SSS.

    params: melanin, hue_shift, mottling (0..1), roughness, roughness_var, pore_strength, sss_weight, and
    optional tint strengths lips/eyelids/ears (0..1) applied through `masks` (name -> mask image).
    hair: {scalp: linear RGB, scalp_tint, brow: linear RGB, brow_tint} darkens the hair cap/brows (stubble)."""
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
    colour = _mix(tree, base, blotchy, ramp.outputs["Result"])
    colour = _skin_tints(tree, colour, params, masks or {}, hair)
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


# Hair colours from light to dark (sRGB "look" colours of Direct Coloring), indexed by a melanin-like value.
HAIR_PALETTE_SRGB = np.array([
    [0.85, 0.74, 0.55],  # platinum blond
    [0.66, 0.50, 0.30],  # blond
    [0.45, 0.30, 0.17],  # dark blond / light brown
    [0.27, 0.17, 0.10],  # brown
    [0.14, 0.09, 0.055],  # dark brown
    [0.05, 0.035, 0.028],  # black
])
RED_HAIR_SRGB = np.array([[0.72, 0.36, 0.16], [0.35, 0.12, 0.06]])  # strawberry blond .. auburn
GREY_HAIR_SRGB = np.array([[0.85, 0.85, 0.83], [0.45, 0.44, 0.43]])  # white .. salt and pepper


def _palette(palette: np.ndarray, t: float) -> np.ndarray:
    pos = float(np.clip(t, 0.0, 1.0)) * (len(palette) - 1)
    i = min(int(pos), len(palette) - 2)
    return palette[i] * (1 - (pos - i)) + palette[i + 1] * (pos - i)


def hair_colour(params: dict) -> tuple[float, float, float]:
    """Linear hair colour from {melanin 0..1, kind natural|red|grey, hue_jitter}."""
    palette = {"natural": HAIR_PALETTE_SRGB, "red": RED_HAIR_SRGB, "grey": GREY_HAIR_SRGB}[params["kind"]]
    h, s, v = colorsys.rgb_to_hsv(*_palette(palette, params["melanin"]))
    srgb = colorsys.hsv_to_rgb((h + params["hue_jitter"]) % 1.0, s, v)
    return tuple(float(c) for c in srgb_to_linear(srgb))


def hair(name: str) -> "bpy.types.Material":
    """Principled Hair BSDF (Chiang) with Direct Coloring: its Color is the colour the fibre assembly reflects
    after multiple scattering (Blender converts it to an absorption coefficient), so that Color is the hair's
    albedo and goes to the gt_albedo AOV; gt_roughness gets the longitudinal roughness. Values: set_hair."""
    material = bpy.data.materials.new(name)
    tree = material.node_tree
    tree.nodes.clear()
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    output.target = "CYCLES"
    bsdf = tree.nodes.new("ShaderNodeBsdfHairPrincipled")
    bsdf.model = "CHIANG"
    bsdf.parametrization = "COLOR"
    bsdf.inputs["Radial Roughness"].default_value = 0.3
    bsdf.inputs["Random Roughness"].default_value = 0.0
    tree.links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    colour = tree.nodes.new("ShaderNodeRGB")
    colour.name = "HairColour"
    roughness = tree.nodes.new("ShaderNodeValue")
    roughness.name = "HairRoughness"
    tree.links.new(colour.outputs[0], bsdf.inputs["Color"])
    tree.links.new(roughness.outputs[0], bsdf.inputs["Roughness"])
    _aov(tree, AOV_ALBEDO, colour.outputs[0], True)
    _aov(tree, AOV_ROUGHNESS, roughness.outputs[0], False)
    return material


def set_hair(material, colour, roughness: float) -> None:
    material.node_tree.nodes["HairColour"].outputs[0].default_value = (*colour, 1.0)
    material.node_tree.nodes["HairRoughness"].outputs[0].default_value = roughness


def cloth(name: str) -> "bpy.types.Material":
    """Principled cloth: base colour with a faint fibre-noise variation, sheen, and a weave/knit bump from two
    crossed wave textures (object coordinates, metres). Per-case values: set_cloth."""
    material, tree, bsdf = _new_material(name)
    coords = tree.nodes.new("ShaderNodeTexCoord")
    noise = tree.nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 60.0
    tree.links.new(coords.outputs["Object"], noise.inputs["Vector"])
    shade = tree.nodes.new("ShaderNodeMapRange")  # colour variation 0.9..1.1
    shade.inputs["To Min"].default_value = 0.9
    shade.inputs["To Max"].default_value = 1.1
    tree.links.new(noise.outputs["Fac"], shade.inputs["Value"])
    rgb = tree.nodes.new("ShaderNodeRGB")
    rgb.name = "ClothColour"
    scaled = tree.nodes.new("ShaderNodeVectorMath")
    scaled.operation = "SCALE"
    tree.links.new(rgb.outputs[0], scaled.inputs[0])
    tree.links.new(shade.outputs["Result"], scaled.inputs["Scale"])
    colour = scaled.outputs["Vector"]
    tree.links.new(colour, bsdf.inputs["Base Color"])
    roughness = tree.nodes.new("ShaderNodeValue")
    roughness.name = "ClothRoughness"
    tree.links.new(roughness.outputs[0], bsdf.inputs["Roughness"])
    bsdf.name = "ClothBSDF"
    bsdf.inputs["Specular IOR Level"].default_value = 0.3
    height = None
    for axis in ("X", "Z"):
        wave = tree.nodes.new("ShaderNodeTexWave")
        wave.name = "Weave" + axis
        wave.bands_direction = axis
        wave.inputs["Distortion"].default_value = 2.0
        tree.links.new(coords.outputs["Object"], wave.inputs["Vector"])
        if height is None:
            height = wave.outputs["Fac"]
        else:
            add = tree.nodes.new("ShaderNodeMath")
            tree.links.new(height, add.inputs[0])
            tree.links.new(wave.outputs["Fac"], add.inputs[1])
            height = add.outputs[0]
    bump = tree.nodes.new("ShaderNodeBump")
    bump.name = "WeaveBump"
    bump.inputs["Distance"].default_value = 0.0005
    tree.links.new(height, bump.inputs["Height"])
    tree.links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    _aov(tree, AOV_ALBEDO, colour, True)
    _aov(tree, AOV_ROUGHNESS, roughness.outputs[0], False)
    return material


def set_cloth(material, colour, roughness: float, sheen: float, weave_scale: float, bump: float) -> None:
    nodes = material.node_tree.nodes
    nodes["ClothColour"].outputs[0].default_value = (*colour, 1.0)
    nodes["ClothRoughness"].outputs[0].default_value = roughness
    nodes["ClothBSDF"].inputs["Sheen Weight"].default_value = sheen
    nodes["ClothBSDF"].inputs["Sheen Roughness"].default_value = 0.4
    for axis in ("X", "Z"):
        nodes["Weave" + axis].inputs["Scale"].default_value = weave_scale
    nodes["WeaveBump"].inputs["Strength"].default_value = bump
