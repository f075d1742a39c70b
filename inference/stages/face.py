"""The face: 468 face landmarks (Face Mesh) refined from face detections (face_detection.py), MediaPipe models
run via ONNX, and find_face, which also looks for small faces in head crops of the matte.

The pre/post-processing follows MediaPipe's published graphs (face_detection_front_detection_to_roi.pbtxt,
face_landmark_cpu.pbtxt); the models themselves are described in
inference/models/CONTRACTS.md (NHWC float32 inputs, TFLite tensor names). Models are fed sRGB-encoded RGB in
[0, 1]; the pipeline works scene-linear, so callers encode with imageio.linear_to_srgb first.

Coordinates returned here are full-image pixels: x right, y down, origin at the top-left corner of the image
(pixel centres at +0.5). Landmark z is MediaPipe's relative depth converted to the same pixel scale as x
(negative = toward the camera).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..models.registry import FACE_LANDMARKS
from ..models.session import OnnxModel, load_model
from ..settings import RelightSettings
from .face_detection import (
    NMS_IOU,
    FaceDetection,
    box_iou,
    detect_faces,
    run_image_model,
    settings_or_default,
)

MAX_LANDMARK_TRIES = 3  # detections checked with the landmark model before giving up

# Face Mesh (face_landmark_cpu.pbtxt): 192x192 crop of a square ROI 1.5x the detection box, rotated so the
# eyes are level, values in [0, 1]; the crop border replicates edge pixels.
LANDMARK_SIZE = 192
ROI_SCALE = 1.5
NUM_LANDMARKS = 468
MIN_PRESENCE = 0.5
MAX_REFINE_PASSES = 4

# Small faces (find_face with a matte): extra detector passes on squares around the top of the matte.
HEAD_ASPECT = 1.3  # head height / width: where the head region ends going down the matte
NECK_NARROWING = 0.85  # a row this much narrower than the widest one above it is the neck
HEAD_CROP_SCALES = (2.0, 3.5)  # crop sides in head widths: the face box is then ~1/3 and ~1/5 of the crop
HEAD_CROP_MAX = 0.7  # crops larger than this share of the frame's long side add nothing to the full pass

# A few Face Mesh landmark indices (subject's right = image left for a face looking at the camera).
RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER = 33, 133, 362, 263
RIGHT_EYE_UPPER, RIGHT_EYE_LOWER, LEFT_EYE_UPPER, LEFT_EYE_LOWER = 159, 145, 386, 374
NOSE_TIP, UPPER_LIP, LOWER_LIP, CHIN, FOREHEAD = 1, 13, 14, 152, 10


@dataclass(frozen=True)
class FaceLandmarks:
    """points: (468, 3) float32 full-image pixels (x right, y down, z like x, negative toward the camera).

    presence: the landmark model's face-presence probability. detection: the detection it was refined from.
    """

    points: np.ndarray
    presence: float
    detection: FaceDetection | None = None

    def eye_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(subject's right eye, subject's left eye) centres, (2,) pixels each."""
        right = self.points[[RIGHT_EYE_OUTER, RIGHT_EYE_INNER, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER], :2].mean(0)
        left = self.points[[LEFT_EYE_OUTER, LEFT_EYE_INNER, LEFT_EYE_UPPER, LEFT_EYE_LOWER], :2].mean(0)
        return right, left


def _roi_from_detection(detection: FaceDetection) -> tuple[np.ndarray, float, float]:
    """MediaPipe's face ROI: box centre, square side = ROI_SCALE * longer box side, rotated by the eye line."""
    x0, y0, x1, y1 = detection.box
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float64)
    side = ROI_SCALE * max(x1 - x0, y1 - y0)
    dx, dy = detection.keypoints[1] - detection.keypoints[0]  # subject's right eye -> left eye
    return centre, float(side), math.atan2(float(dy), float(dx))


def _roi_axes(angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Image-pixel directions of the crop's +x (along the eye line) and +y (down the face)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([c, s]), np.array([-s, c])


def _crop(image_srgb: np.ndarray, centre: np.ndarray, side: float, angle: float) -> np.ndarray:
    """(LANDMARK_SIZE, LANDMARK_SIZE, 3) bilinear, edge-replicated rotated square crop of the image."""
    from scipy import ndimage

    ex, ey = _roi_axes(angle)
    step = side / LANDMARK_SIZE
    t = (np.arange(LANDMARK_SIZE) + 0.5) * step - side / 2
    # Image position (pixel-centre convention: pixel j covers [j, j+1)) of every crop pixel centre.
    px = centre[0] + t[None, :] * ex[0] + t[:, None] * ey[0] - 0.5
    py = centre[1] + t[None, :] * ex[1] + t[:, None] * ey[1] - 0.5
    # Work on the bounding region only, prefiltered when shrinking so a big face does not alias.
    h, w = image_srgb.shape[:2]
    r0 = int(np.clip(np.floor(py.min()) - 2, 0, h - 1))
    r1 = int(np.clip(np.ceil(py.max()) + 3, r0 + 1, h))
    c0 = int(np.clip(np.floor(px.min()) - 2, 0, w - 1))
    c1 = int(np.clip(np.ceil(px.max()) + 3, c0 + 1, w))
    region = np.asarray(image_srgb[r0:r1, c0:c1, :3], np.float32)
    if step > 1.5:
        region = ndimage.gaussian_filter(region, sigma=(0.45 * step, 0.45 * step, 0), mode="nearest")
    coords = [py - r0, px - c0]
    channels = [ndimage.map_coordinates(region[..., c], coords, order=1, mode="nearest") for c in range(3)]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def _roi_from_landmarks(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """ROI for a second pass, as MediaPipe's tracking derives it from landmarks: rotation from the outer eye
    corners, square of ROI_SCALE x the landmarks' extent measured in that rotated frame."""
    dx, dy = points[LEFT_EYE_OUTER, :2] - points[RIGHT_EYE_OUTER, :2]
    angle = math.atan2(float(dy), float(dx))
    ex, ey = _roi_axes(angle)
    u, v = points[:, :2] @ ex, points[:, :2] @ ey
    cu, cv = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
    side = ROI_SCALE * max(np.ptp(u), np.ptp(v))
    return cu * ex + cv * ey, float(side), angle


def _landmarks_in_roi(image_srgb: np.ndarray, roi, model: OnnxModel) -> tuple[np.ndarray, float]:
    centre, side, angle = roi
    outputs = run_image_model(model, _crop(image_srgb, centre, side, angle)[None])
    mesh = next(o for o in outputs if o.size == NUM_LANDMARKS * 3).reshape(NUM_LANDMARKS, 3).astype(np.float64)
    flag = float(next(o for o in outputs if o.size == 1).reshape(-1)[0])
    # The face flag is a logit in the converted TFLite model (the graph applies a sigmoid); a model that
    # already outputs a probability is passed through.
    presence = flag if 0.0 <= flag <= 1.0 else 1.0 / (1.0 + math.exp(-flag))
    ex, ey = _roi_axes(angle)
    scale = side / LANDMARK_SIZE  # crop pixels -> image pixels
    u = mesh[:, 0] * scale - side / 2
    v = mesh[:, 1] * scale - side / 2
    points = np.empty((NUM_LANDMARKS, 3), np.float32)
    points[:, 0] = centre[0] + u * ex[0] + v * ey[0]
    points[:, 1] = centre[1] + u * ex[1] + v * ey[1]
    points[:, 2] = mesh[:, 2] * scale  # z shares x's scale (LandmarkProjectionCalculator)
    return points, presence


def face_landmarks(
    image_srgb: np.ndarray, detection: FaceDetection, settings: RelightSettings | None = None, refine: bool = True
) -> FaceLandmarks:
    """468 landmarks of the face found by `detection`, mapped back to full-image pixels.

    With `refine`, a second pass runs on the ROI derived from the first pass's landmarks (what MediaPipe does
    from the second video frame on): the detector's eye keypoints are coarse, and on a tilted head a wrongly
    rotated crop costs the landmark model accuracy; a strongly tilted head needs a few passes to converge.
    A still image can afford the extra ~10 ms per pass."""
    model = load_model(FACE_LANDMARKS, settings_or_default(settings))
    roi = _roi_from_detection(detection)
    points, presence = _landmarks_in_roi(image_srgb, roi, model)
    for _ in range(MAX_REFINE_PASSES if refine else 0):
        if presence < MIN_PRESENCE:
            break
        new_roi = _roi_from_landmarks(points)
        turn = abs((new_roi[2] - roi[2] + math.pi) % (2 * math.pi) - math.pi)
        moved = np.linalg.norm(new_roi[0] - roi[0]) / roi[1]
        if turn < math.radians(2.0) and moved < 0.02:
            break  # converged: the crop would be the same
        refined, refined_presence = _landmarks_in_roi(image_srgb, new_roi, model)
        if refined_presence < MIN_PRESENCE:
            break
        roi, points, presence = new_roi, refined, refined_presence
    return FaceLandmarks(points, presence, detection)


def _shifted(d: FaceDetection, x0: float, y0: float) -> FaceDetection:
    offset = np.array([x0, y0], np.float32)
    return FaceDetection(d.box + np.tile(offset, 2), d.keypoints + offset, d.score)


def head_crops(alpha: np.ndarray) -> list[tuple[int, int, int]]:
    """Square crops (x0, y0, side) around the matted subject's head, for faces too small for the detector on
    the whole frame (a medium shot on a wide plate). The head is the top of the matte: going down from its
    first row, the head region ends at the neck (the row width falls below NECK_NARROWING x the widest row
    so far) or once the region is HEAD_ASPECT times as tall as that widest row, whichever comes first (long
    hair on the shoulders hides the neck). Row widths count matte pixels, so thin stray bits barely count.
    Crops of HEAD_CROP_SCALES x the head width are centred on the face's usual place in the region, clamped
    to the frame; crops nearly as big as the frame are left to the whole-frame pass."""
    solid = np.asarray(alpha) > 0.5
    rows = np.flatnonzero(solid.any(axis=1))
    if rows.size == 0:
        return []
    h, w = solid.shape
    top = int(rows[0])
    band = solid[top:]
    width = band.sum(axis=1)
    widest = np.maximum.accumulate(width)
    depth = np.arange(1, len(band) + 1)
    end = (depth >= HEAD_ASPECT * widest) | ((width < NECK_NARROWING * widest) & (depth > 0.5 * widest))
    stop = int(np.argmax(end)) + 1 if end.any() else len(band)
    head_w = float(widest[stop - 1])
    xs = np.nonzero(band[:stop])[1]
    cx, cy = float(np.median(xs)) + 0.5, top + 0.55 * stop
    crops = []
    for k in HEAD_CROP_SCALES:
        side = int(round(min(k * head_w, h, w)))
        if side < 16 or side > HEAD_CROP_MAX * max(h, w):
            continue
        x0 = int(np.clip(round(cx - side / 2), 0, w - side))
        y0 = int(np.clip(round(cy - side / 2), 0, h - side))
        crops.append((x0, y0, side))
    return crops


def _merge(detections: list[FaceDetection]) -> list[FaceDetection]:
    """One detection per face when the same face was found in several crops: the best score wins."""
    kept: list[FaceDetection] = []
    for d in sorted(detections, key=lambda d: -d.score):
        if not kept or box_iou(d.box, np.stack([k.box for k in kept])).max() <= NMS_IOU:
            kept.append(d)
    return kept


def find_face(
    image_srgb: np.ndarray, settings: RelightSettings | None = None, alpha: np.ndarray | None = None
) -> FaceLandmarks | None:
    """Landmarks of the main subject's face, or None. With a matte, faces whose centre lies outside the
    subject are ignored (people in the background); among the rest the largest that the landmark model confirms
    wins. The matte also points at the head: the detector runs on square crops around it as well as on the whole
    frame, so a face that is small in a wide frame (it needs ~1/8 of the detector's input) is still found
    (~10 ms per crop)."""
    detections = detect_faces(image_srgb, settings)
    if alpha is not None:
        h, w = alpha.shape[:2]
        for x0, y0, side in head_crops(alpha):
            crop = image_srgb[y0:y0 + side, x0:x0 + side]
            detections += [_shifted(d, x0, y0) for d in detect_faces(crop, settings)]
        detections = _merge(detections)

        def inside(d: FaceDetection) -> bool:
            cx = int(np.clip((d.box[0] + d.box[2]) / 2, 0, w - 1))
            cy = int(np.clip((d.box[1] + d.box[3]) / 2, 0, h - 1))
            return alpha[cy, cx] > 0.5

        detections = [d for d in detections if inside(d)]
    # The largest face is the subject, but a weak false detection (a fold of clothing, ~0.5 score) can be larger
    # than the real face: candidates are tried largest first until the landmark model confirms a face.
    for detection in sorted(detections, key=lambda d: -d.area)[:MAX_LANDMARK_TRIES]:
        landmarks = face_landmarks(image_srgb, detection, settings)
        if landmarks.presence >= MIN_PRESENCE:
            return landmarks
    return None
