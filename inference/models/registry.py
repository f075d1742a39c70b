"""The one table of models: each model's name, what it is for, where it comes from, its checksum and its contract.

Everything that touches a model reads this table: `make models` (tools/build_models.py) builds the models whose
source is a member of a pinned wheel, the stages load them by their spec (models.session.load_model), the user's
models folder is checked against the contracts (models.contracts), and the extension zip ships what is listed.
The written contracts, with their meaning, are inference/models/CONTRACTS.md; tests check it agrees with this table.
Learned nets trained by Portrait Relight register here as `CommittedOnnx` sources.
"""

from __future__ import annotations

from dataclasses import dataclass

MEDIAPIPE_VERSION = "0.10.21"
MEDIAPIPE_LICENCE = (f"Apache-2.0, Google MediaPipe {MEDIAPIPE_VERSION} (https://github.com/google-ai-edge/mediapipe); "
                     "converted by Portrait Relight tools/tflite2onnx")
OWN_LICENCE = "GPL-3.0-or-later, Portrait Relight's own weights, trained on its own virtual light stage"


@dataclass(frozen=True)
class WheelMember:
    """A .tflite file inside a pinned PyPI wheel, converted to ONNX at build time (never committed)."""

    package: str
    version: str
    member: str  # path inside the wheel

    def describe(self) -> str:
        return f"{self.package}=={self.version}:{self.member}"


@dataclass(frozen=True)
class CommittedOnnx:
    """Our own trained ONNX file, committed in inference/models/ under the model's name."""

    training: str  # where its training code and model card live

    def describe(self) -> str:
        return f"committed ONNX ({self.training})"


Dim = int | str  # a fixed size, or the name of a size the model must leave dynamic ("height", "width")
PROBE_SIZE = 128  # what a dynamic dimension is set to when a model is checked by running it


@dataclass(frozen=True)
class ModelContract:
    """What a model (bundled or the user's replacement) must accept and return: one float32 input of this shape
    (MediaPipe's models: static NHWC; our nets: NCHW with dynamic height and width) and float32 outputs of these
    shapes, in this order."""

    input_shape: tuple[Dim, ...]
    output_shapes: tuple[tuple[Dim, ...], ...]  # in output order
    accepts_nchw: bool = False  # the caller transposes for a (1, C, H, W) input (stages/face.py)

    def probe(self, shape: tuple[Dim, ...]) -> tuple[int, ...]:
        """`shape` with its dynamic dimensions set to PROBE_SIZE."""
        return tuple(PROBE_SIZE if isinstance(d, str) else d for d in shape)


@dataclass(frozen=True)
class ModelSpec:
    name: str  # file stem: <name>.onnx, bundled and in a user's models folder
    purpose: str
    source: WheelMember | CommittedOnnx
    sha256: str  # of the source file (the wheel member, or the committed .onnx)
    contract: ModelContract
    licence: str

    @property
    def file_name(self) -> str:
        return f"{self.name}.onnx"


def _mediapipe(member: str) -> WheelMember:
    return WheelMember("mediapipe", MEDIAPIPE_VERSION, member)


SELFIE_SEGMENTATION = ModelSpec(
    "selfie_segmentation", "person/background mask for matting (stages/matting.py)",
    _mediapipe("mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"),
    "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    ModelContract((1, 256, 256, 3), ((1, 256, 256, 1),)), MEDIAPIPE_LICENCE)
FACE_DETECTOR = ModelSpec(
    "face_detection_short_range", "face boxes and 6 keypoints (stages/face.py)",
    _mediapipe("mediapipe/modules/face_detection/face_detection_short_range.tflite"),
    "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    ModelContract((1, 128, 128, 3), ((1, 896, 16), (1, 896, 1)), accepts_nchw=True), MEDIAPIPE_LICENCE)
FACE_LANDMARKS = ModelSpec(
    "face_landmark", "468-point face mesh for the face normals (stages/face.py, stages/geometry.py)",
    _mediapipe("mediapipe/modules/face_landmark/face_landmark.tflite"),
    "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    ModelContract((1, 192, 192, 3), ((1, 1, 1, 1404), (1, 1, 1, 1)), accepts_nchw=True), MEDIAPIPE_LICENCE)

GEOMETRY_NET = ModelSpec(
    "geometry_net", "camera-space normals from the plate and matte on the subject's crop (stages/normals_net.py)",
    CommittedOnnx("training/geometry.py"),
    "e6f83cee3babd2fdd20117150e4269642d45ef56dea7b313c8882f998c6d495d",
    ModelContract((1, 4, "height", "width"), ((1, 3, "height", "width"),)), OWN_LICENCE)

ALBEDO_NET = ModelSpec(
    "albedo_net", "the plate's log source shading from plate, matte and normals on the subject's crop "
                  "(stages/albedo_net.py)",
    CommittedOnnx("training/albedo.py"),
    "4301207a2c475ee3eea79fd87d01105c90fb71d4c31b3e94bfc80edcad7e2a6d",
    ModelContract((1, 7, "height", "width"), ((1, 3, "height", "width"),)), OWN_LICENCE)

SHADING_NET = ModelSpec(
    "shading_net", "diffuse shading ratio and specular lobe weights from foreground, matte, normals, albedo and the "
                   "target light's light maps on the subject's crop (stages/shading_net.py)",
    CommittedOnnx("training/shading.py"),
    "5cb12d92b64564ec4d8643898e96180387d6e0cc125d75fb4663017fe1171325",
    ModelContract((1, 25, "height", "width"), ((1, 7, "height", "width"),)), OWN_LICENCE)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (SELFIE_SEGMENTATION, FACE_DETECTOR, FACE_LANDMARKS,
                                                             GEOMETRY_NET, ALBEDO_NET, SHADING_NET)}


def model_names() -> str:
    """'a.onnx, b.onnx, ...' for messages."""
    return ", ".join(spec.file_name for spec in MODELS.values())
