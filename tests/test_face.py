"""Face detection and landmarks on a real portrait (skimage's astronaut, public domain)."""

from __future__ import annotations

import numpy as np
import pytest

from portrait_relight.inference.models.registry import FACE_DETECTOR, FACE_LANDMARKS
from portrait_relight.inference.models.session import BUNDLED_MODELS_DIR
from portrait_relight.inference.stages import face

# Measured once by eye on skimage.data.astronaut() (512x512): the face spans about x 180..272, y 75..180 and the
# eyes sit near (204, 101) and (247, 104). The regions below are generous on purpose.
FACE_REGION = (165, 60, 290, 195)  # x0, y0, x1, y1
EYE_RIGHT_APPROX = (204.0, 101.0)  # subject's right eye = image left
EYE_LEFT_APPROX = (247.0, 104.0)


@pytest.fixture(scope="module", autouse=True)
def _models_present():
    for name in (FACE_DETECTOR.name, FACE_LANDMARKS.name):
        if not (BUNDLED_MODELS_DIR / f"{name}.onnx").is_file():
            pytest.fail(f"{name}.onnx missing in {BUNDLED_MODELS_DIR}: run `make models`")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut().astype(np.float32) / 255.0  # sRGB-encoded already, as the models want


def _inside(xy, region) -> bool:
    x0, y0, x1, y1 = region
    return x0 <= xy[0] <= x1 and y0 <= xy[1] <= y1


def _luma(img: np.ndarray) -> np.ndarray:
    return img @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def test_detects_the_astronaut_face(astronaut):
    detections = face.detect_faces(astronaut)
    assert len(detections) == 1
    d = detections[0]
    assert d.score > 0.8
    x0, y0, x1, y1 = d.box
    assert _inside((x0, y0), FACE_REGION) and _inside((x1, y1), FACE_REGION)
    right_eye, left_eye = d.keypoints[0], d.keypoints[1]
    for eye in (right_eye, left_eye):
        assert x0 <= eye[0] <= x1 and y0 <= eye[1] <= y1
    assert np.linalg.norm(right_eye - EYE_RIGHT_APPROX) < 10 and np.linalg.norm(left_eye - EYE_LEFT_APPROX) < 10
    nose, mouth = d.keypoints[2], d.keypoints[3]
    assert right_eye[1] < nose[1] < mouth[1]


def test_landmarks_land_on_the_face(astronaut):
    lm = face.face_landmarks(astronaut, face.detect_faces(astronaut)[0])
    assert lm.points.shape == (468, 3) and lm.points.dtype == np.float32
    assert lm.presence > 0.9
    right_eye, left_eye = lm.eye_centres()
    assert np.linalg.norm(right_eye - EYE_RIGHT_APPROX) < 6
    assert np.linalg.norm(left_eye - EYE_LEFT_APPROX) < 6
    assert right_eye[0] < left_eye[0]  # subject's right eye is on the image's left
    p = lm.points
    assert p[face.FOREHEAD, 1] < right_eye[1] < p[face.NOSE_TIP, 1] < p[face.UPPER_LIP, 1] < p[face.CHIN, 1]
    # z: the nose tip is among the points nearest the camera (negative), the chin lies behind it.
    assert p[face.NOSE_TIP, 2] < np.percentile(p[:, 2], 5)
    assert p[face.CHIN, 2] > p[face.NOSE_TIP, 2] + 10
    # Eyes (iris, lashes) are darker than the skin around them.
    luma = _luma(astronaut)
    cheek = np.median(luma[125:140, 195:210])
    for eye in (right_eye, left_eye):
        x, y = int(eye[0]), int(eye[1])
        assert luma[y - 2:y + 3, x - 2:x + 3].min() < 0.6 * cheek


def test_flipped_image_gives_mirrored_landmarks(astronaut):
    width = astronaut.shape[1]
    lm = face.find_face(astronaut)
    flipped = face.find_face(np.ascontiguousarray(astronaut[:, ::-1]))
    assert lm is not None and flipped is not None
    right, left = lm.eye_centres()
    f_right, f_left = flipped.eye_centres()
    # The subject's right eye of the mirrored image is the mirror of the original's left eye.
    assert abs(f_right[0] - (width - left[0])) < 3 and abs(f_right[1] - left[1]) < 3
    assert abs(f_left[0] - (width - right[0])) < 3 and abs(f_left[1] - right[1]) < 3
    nose, f_nose = lm.points[face.NOSE_TIP], flipped.points[face.NOSE_TIP]
    assert abs(f_nose[0] - (width - nose[0])) < 3 and abs(f_nose[1] - nose[1]) < 3
    assert abs(f_nose[2] - nose[2]) < 3
    centroid, f_centroid = lm.points[:, :2].mean(0), flipped.points[:, :2].mean(0)
    assert abs(f_centroid[0] - (width - centroid[0])) < 2 and abs(f_centroid[1] - centroid[1]) < 2


# The short-range detector needs the face to be at least ~1/8 of the letterboxed frame, so pads stay moderate.
@pytest.mark.parametrize("pad", [((0, 0), (250, 40)), ((180, 60), (0, 0)), ((20, 20), (0, 280))])
def test_any_aspect_maps_back_to_image_pixels(astronaut, pad):
    """Letterboxed detection and the rotated crop must map back to the padded image's pixels."""
    (top, bottom), (left, right) = pad
    padded = np.pad(astronaut, ((top, bottom), (left, right), (0, 0)), mode="edge")
    reference = face.find_face(astronaut)
    lm = face.find_face(padded)
    assert lm is not None
    shift = np.array([left, top], np.float32)
    for got, want in zip(lm.eye_centres(), reference.eye_centres()):
        assert np.linalg.norm(got - (want + shift)) < 4


def test_large_image_scales_landmarks(astronaut):
    from PIL import Image

    big = np.asarray(Image.fromarray((astronaut * 255).astype(np.uint8)).resize((1400, 1400), Image.BICUBIC))
    lm = face.find_face(big.astype(np.float32) / 255.0)
    reference = face.find_face(astronaut)
    scale = 1400 / 512
    for got, want in zip(lm.eye_centres(), reference.eye_centres()):
        assert np.linalg.norm(got - want * scale) < 4 * scale
    # z follows x's scale.
    assert abs(np.ptp(lm.points[:, 2]) / np.ptp(reference.points[:, 2]) - scale) < 0.15 * scale


def test_rotated_face_is_found_upright_landmarks_follow(astronaut):
    """A head tilted by 90 degrees: the crop must be rotated by the eye line, and the points rotated back."""
    rotated = np.ascontiguousarray(np.rot90(astronaut, k=-1))  # clockwise: image x' = H-1-y, y' = x
    lm = face.find_face(rotated)
    reference = face.find_face(astronaut)
    assert lm is not None
    h = astronaut.shape[0]
    for got, want in zip(lm.eye_centres(), reference.eye_centres()):
        expected = np.array([h - want[1], want[0]])
        assert np.linalg.norm(got - expected) < 6


def test_no_face_in_noise():
    rng = np.random.default_rng(0)
    noise = rng.random((300, 400, 3), dtype=np.float32)
    assert face.detect_faces(noise) == []
    assert face.find_face(np.full((200, 200, 3), 0.5, np.float32)) is None


@pytest.fixture(scope="module")
def astronaut_matte(astronaut) -> np.ndarray:
    from portrait_relight.inference.io.imageio import srgb_to_linear
    from portrait_relight.inference.stages.matting import estimate_matte

    return estimate_matte(srgb_to_linear(astronaut)).alpha


def _wide_plate(astronaut, matte, face_fraction, left, top):
    """The astronaut scaled so her face spans `face_fraction` of a 1920x1080 frame's width, its top-left corner
    at (left, top), on an edge-replicated background; the matte goes through the same transform. Returns the
    plate, the matte and the scale."""
    from portrait_relight.inference.resample import resize

    side = round(512 * face_fraction * 1920 / 92)  # the face is ~92 px wide in the 512 px photo
    scale = side / 512
    h, w = 1080, 1920
    rows, cols = min(side, h - top), min(side, w - left)
    person = resize(astronaut, side, side)[:rows, :cols]
    plate = np.pad(person, ((top, h - top - rows), (left, w - left - cols), (0, 0)), mode="edge")
    alpha = np.zeros((h, w), np.float32)
    alpha[top:top + rows, left:left + cols] = resize(matte, side, side)[:rows, :cols]
    return plate, alpha, scale


@pytest.mark.parametrize("face_fraction, left, top", [(0.06, 1150, 420), (0.08, 150, 300), (0.10, 900, 250)])
def test_small_face_in_a_wide_plate_is_found(astronaut, astronaut_matte, face_fraction, left, top):
    """A medium shot on a 1920x1080 plate: the face is too small for the detector on the whole frame, the
    crops around the matte's head find it, and the landmarks map back to full-frame pixels."""
    plate, alpha, scale = _wide_plate(astronaut, astronaut_matte, face_fraction, left, top)
    assert face.detect_faces(plate) == []  # the whole-frame pass alone misses it
    reference = face.find_face(astronaut)
    lm = face.find_face(plate, alpha=alpha)
    assert lm is not None
    shift = np.array([left, top], np.float32)
    for got, want in zip(lm.eye_centres(), reference.eye_centres()):
        assert np.linalg.norm(got - (want * scale + shift)) < 3
    for x0, y0, side in face.head_crops(alpha):
        assert 0 <= x0 and x0 + side <= 1920 and 0 <= y0 and y0 + side <= 1080


def test_small_face_reaches_the_geometry(astronaut, astronaut_matte):
    """Through geometry's reduced copy of the plate (what the pipeline runs): landmarks, so no 'no person'."""
    from portrait_relight.inference.io.imageio import srgb_to_linear
    from portrait_relight.inference.stages import geometry

    plate, alpha, scale = _wide_plate(astronaut, astronaut_matte, 0.07, 1200, 380)
    result = geometry.estimate_normals(srgb_to_linear(plate), alpha)
    assert result.landmarks is not None
    reference = face.find_face(astronaut)
    for got, want in zip(result.landmarks.eye_centres(), reference.eye_centres()):
        assert np.linalg.norm(got - (want * scale + [1200, 380])) < 4


def test_matte_without_a_face_gives_none():
    """A person-shaped matte over an image with no face: the head crops run and find nothing."""
    h, w = 1080, 1920
    yy, xx = np.mgrid[:h, :w]
    alpha = (np.hypot(xx - 1300, yy - 300) < 90) | ((yy > 420) & (np.abs(xx - 1300) < 260))
    alpha = alpha.astype(np.float32)
    assert len(face.head_crops(alpha)) >= 1
    rng = np.random.default_rng(1)
    assert face.find_face(rng.random((h, w, 3), dtype=np.float32), alpha=alpha) is None
    assert face.find_face(np.full((h, w, 3), 0.5, np.float32), alpha=alpha) is None
    assert face.head_crops(np.zeros((h, w), np.float32)) == []


def test_a_larger_false_detection_does_not_hide_the_face(astronaut, monkeypatch):
    """A weak detection bigger than the face (e.g. on the suit) is checked by the landmark model and passed over."""
    real = face.detect_faces(astronaut)
    bogus = face.FaceDetection(np.array([20, 250, 500, 500], np.float32),
                               np.tile(np.array([[260.0, 375.0]], np.float32), (6, 1)), 0.52)
    assert face.face_landmarks(astronaut, bogus).presence < face.MIN_PRESENCE  # nothing face-like there
    monkeypatch.setattr(face, "detect_faces", lambda image, settings=None: [bogus, *real])
    lm = face.find_face(astronaut)
    assert lm is not None
    right_eye, left_eye = lm.eye_centres()
    assert np.linalg.norm(right_eye - EYE_RIGHT_APPROX) < 10 and np.linalg.norm(left_eye - EYE_LEFT_APPROX) < 10
