"""Face detection with BlazeFace short range (MediaPipe's model via ONNX), as MediaPipe's published graph
face_detection_short_range.pbtxt does it: letterbox to 128x128, SSD anchors, weighted non-maximum suppression.

The model's contract is in inference/models/CONTRACTS.md (NHWC float32 inputs, TFLite tensor names); images are
sRGB-encoded RGB in [0, 1] (callers encode with io.imageio.linear_to_srgb first). Coordinates returned are
full-image pixels: x right, y down, origin at the top-left corner of the image (pixel centres at +0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..models.registry import FACE_DETECTOR
from ..models.session import OnnxModel, load_model
from ..settings import RelightSettings

# BlazeFace short range (face_detection_short_range.pbtxt): 128x128 input, SSD anchors from strides 8,16,16,16
# with one aspect ratio plus one interpolated scale per layer (2 anchors/cell), fixed anchor size 1x1.
DETECTOR_SIZE = 128
DETECTOR_STRIDES = (8, 16, 16, 16)
ANCHORS_PER_LAYER = 2
DETECTOR_SCALE = 128.0  # x/y/w/h_scale of TensorsToDetectionsCalculator
SCORE_CLIP = 100.0
MIN_DETECTION_SCORE = 0.5
NMS_IOU = 0.3
# Detection keypoints, in MediaPipe's order. "right" = the subject's right, i.e. the image-left one.
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")


@dataclass(frozen=True)
class FaceDetection:
    """box: (x0, y0, x1, y1) pixels; keypoints: (6, 2) pixels in KEYPOINT_NAMES order; score in [0, 1]."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def settings_or_default(settings: RelightSettings | None) -> RelightSettings:
    return settings if settings is not None else RelightSettings()


def run_image_model(model: OnnxModel, tensor_nhwc: np.ndarray) -> list[np.ndarray]:
    """Run a one-input image model; accepts NCHW models too (a user's re-export), judged from the input shape."""
    shape = model.input_shape(0)
    if len(shape) == 4 and shape[1] == 3 and shape[-1] != 3:
        tensor_nhwc = tensor_nhwc.transpose(0, 3, 1, 2)
    out = model.run(tensor_nhwc)
    return [out[name] for name in model.outputs]


def _ssd_anchors() -> np.ndarray:
    """(896, 2) anchor centres in [0, 1] of the 128x128 input; layers sharing a stride share one grid."""
    centres = []
    layer = 0
    while layer < len(DETECTOR_STRIDES):
        stride = DETECTOR_STRIDES[layer]
        same = 1
        while layer + same < len(DETECTOR_STRIDES) and DETECTOR_STRIDES[layer + same] == stride:
            same += 1
        cells = math.ceil(DETECTOR_SIZE / stride)
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=-1)
        centres.append(np.repeat(grid, ANCHORS_PER_LAYER * same, axis=0))
        layer += same
    return np.concatenate(centres).astype(np.float32)


_ANCHORS = _ssd_anchors()


def _to_uint8_rgb(image_srgb: np.ndarray) -> np.ndarray:
    img = np.asarray(image_srgb, np.float32)
    if img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    return (np.clip(img[..., :3], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _letterbox(image_srgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit the whole image into a black-bordered square of DETECTOR_SIZE (MediaPipe keep_aspect_ratio + ZERO
    border). Returns the (1, S, S, 3) tensor in [-1, 1] and, per axis, (scale, first tensor pixel) so that
    image pixel coordinate = (tensor pixel coordinate - first) * scale."""
    from PIL import Image

    h, w = image_srgb.shape[:2]
    side = max(h, w)
    scale = side / DETECTOR_SIZE
    new_w = max(1, round(w / scale))
    new_h = max(1, round(h / scale))
    # PIL's antialiased resize: a 4K frame squeezed to 128 px must not alias.
    small = np.asarray(Image.fromarray(_to_uint8_rgb(image_srgb)).resize((new_w, new_h), Image.BILINEAR))
    canvas = np.zeros((DETECTOR_SIZE, DETECTOR_SIZE, 3), np.float32)
    top = (DETECTOR_SIZE - new_h) // 2
    left = (DETECTOR_SIZE - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = small / 255.0
    tensor = canvas * 2.0 - 1.0  # black padding becomes -1 like the reference's zero border
    # Exact per-axis scales: the rounded resize can stretch an axis by up to half a tensor pixel.
    return tensor[None], np.array([w / new_w, h / new_h]), np.array([left, top], np.float64)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)

    def area(b):
        return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)

    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray):
    """BlazeFace's tie resolution: each cluster of overlapping candidates (IoU > NMS_IOU with the best
    remaining one) is replaced by their score-weighted mean box/keypoints, keeping the best score."""
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    alive = np.ones(len(scores), bool)
    kept = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        cluster = alive & (box_iou(boxes[i], boxes) > NMS_IOU)
        cluster[i] = True
        weights = scores[cluster][:, None]
        box = (boxes[cluster] * weights).sum(0) / weights.sum()
        kps = (keypoints[cluster] * weights[:, :, None]).sum(0) / weights.sum()
        kept.append((box, kps, float(scores[i])))
        alive &= ~cluster
    return kept


def detect_faces(
    image_srgb: np.ndarray, settings: RelightSettings | None = None, min_score: float = MIN_DETECTION_SCORE
) -> list[FaceDetection]:
    """Faces in an sRGB-encoded (H, W, 3) float image in [0, 1], best score first. Any size or aspect."""
    settings = settings_or_default(settings)
    tensor, scale, first = _letterbox(image_srgb)
    outputs = run_image_model(load_model(FACE_DETECTOR, settings), tensor)
    # Tell the outputs apart by shape, not name: regressors (1, 896, 16), classificators (1, 896, 1).
    regressors = next(o for o in outputs if o.shape[-1] == 16).reshape(-1, 16)
    logits = next(o for o in outputs if o.shape[-1] == 1).reshape(-1)
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
    keep = scores >= min_score
    if not keep.any():
        return []
    raw, anchors, scores = regressors[keep], _ANCHORS[keep], scores[keep]
    # Offsets are in input pixels relative to the anchor centre (x first: reverse_output_order).
    centre = raw[:, 0:2] / DETECTOR_SCALE + anchors
    size = raw[:, 2:4] / DETECTOR_SCALE
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    kps = raw[:, 4:16].reshape(-1, 6, 2) / DETECTOR_SCALE + anchors[:, None, :]
    result = []
    for box, kp, score in _weighted_nms(boxes, kps, scores):
        # Normalised tensor coordinates -> image pixels (undo the letterbox).
        box_px = (box.reshape(2, 2) * DETECTOR_SIZE - first) * scale
        kp_px = (kp * DETECTOR_SIZE - first) * scale
        result.append(FaceDetection(box_px.reshape(4).astype(np.float32), kp_px.astype(np.float32), score))
    return result
