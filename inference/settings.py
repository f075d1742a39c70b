"""Settings that travel through the pipeline as one frozen value."""

from __future__ import annotations

from dataclasses import dataclass

# How normals are estimated: the classical v1 stage (face mesh + silhouette inflation) or the learned geometry
# net (stages/normals_net.py; its face landmarks still come from the classical stage).
NORMALS_METHODS = ("classical", "learned")
# How albedo is estimated: the classical v1 stage (a white-light SH shading fit divided out) or the learned albedo
# net (stages/albedo_net.py: the source shading, light colour included, predicted and divided out).
ALBEDO_METHODS = ("classical", "learned")
# How the light maps become shading: v1's fixed blend (the diffuse map as it is, specular lobes from a skin/not-skin
# guess) or the learned shading net (stages/shading_net.py: a corrected diffuse shading with shadows and
# occlusion, and per-pixel lobe weights).
SHADING_METHODS = ("classical", "learned")
# Execution providers (models/session.py maps them to onnxruntime's).
PROVIDERS = ("auto", "cpu", "cuda", "directml", "coreml")
DEFAULT_FOV_DEG = 40.0  # a portrait lens on full frame (~50 mm across the long side) when no camera says otherwise


@dataclass(frozen=True)
class RelightSettings:
    """Everything the pipeline needs besides the arrays.

    fov_deg: camera field of view across the *larger* image dimension (Blender's AUTO sensor fit), degrees.
    matting_resolution: long edge, in pixels, at which closed-form matting runs before edge-aware upsampling.
    specular_strength: global gain on the specular term of the shading (1 = the skin-like default).
    threads: intra-op threads for ONNX Runtime (0 = let the runtime choose).
    provider: 'auto' (CUDA when onnxruntime offers it, else CPU), 'cpu', 'cuda', 'directml' or 'coreml'
        (models/session.py: a provider that is missing or fails to load falls back to the CPU with one message).
    models_dir: folder with ONNX models following inference/models/CONTRACTS.md; None = the bundled ones.
    normals: one of NORMALS_METHODS.
    albedo: one of ALBEDO_METHODS.
    shading: one of SHADING_METHODS.
    """

    fov_deg: float = DEFAULT_FOV_DEG
    matting_resolution: int = 512
    specular_strength: float = 1.0
    threads: int = 0
    provider: str = "auto"
    models_dir: str | None = None
    normals: str = "learned"
    albedo: str = "learned"
    shading: str = "learned"

    def __post_init__(self):
        if self.normals not in NORMALS_METHODS:
            raise ValueError(f"normals '{self.normals}': use one of {', '.join(NORMALS_METHODS)}")
        if self.albedo not in ALBEDO_METHODS:
            raise ValueError(f"albedo '{self.albedo}': use one of {', '.join(ALBEDO_METHODS)}")
        if self.shading not in SHADING_METHODS:
            raise ValueError(f"shading '{self.shading}': use one of {', '.join(SHADING_METHODS)}")
