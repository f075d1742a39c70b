"""lightstage/pose.py on the MakeHuman base mesh: identity at zero pose, rigid head turn by the requested angle,
body below the neck untouched, bounded stretching, lowered arms, framings that contain the head."""

from __future__ import annotations

import math

import numpy as np
import pytest

from portrait_relight.lightstage import makehuman_data as mh
from portrait_relight.lightstage import pose as P


@pytest.fixture(scope="module")
def mesh():
    base = mh.base_mesh()
    rest = mh.to_blender(base.vertices)
    edges = {tuple(sorted((f[i], f[(i + 1) % len(f)]))) for f in base.faces for i in range(len(f))}
    return base.groups, rest, np.array(sorted(edges)), P.Poser(base.groups, rest)


def _edge_ratio(rest, posed, edges):
    before = np.linalg.norm(rest[edges[:, 0]] - rest[edges[:, 1]], axis=1)
    after = np.linalg.norm(posed[edges[:, 0]] - posed[edges[:, 1]], axis=1)
    return after / before


def test_zero_pose_is_identity(mesh):
    groups, rest, _, poser = mesh
    assert np.array_equal(poser.apply(rest, P.ZERO_POSE), rest)
    assert np.array_equal(P.pose_vertices(rest, groups, {}), rest)


@pytest.mark.parametrize("pose", [{"head_yaw_deg": 35.0}, {"head_yaw_deg": -40.0}, {"head_pitch_deg": 20.0},
                                  {"head_pitch_deg": -15.0}, {"head_roll_deg": 10.0},
                                  {"head_yaw_deg": 30.0, "head_pitch_deg": 12.0, "head_roll_deg": -8.0}])
def test_head_turns_rigidly_by_the_requested_rotation(mesh, pose):
    groups, rest, _, poser = mesh
    posed = poser.apply(rest, pose)
    head = P.head_indices(poser)
    assert len(head) > 3000
    expected = P.head_rotation(pose)
    # rigid: the head's vertices, centred, map by exactly the requested rotation (Kabsch fit)
    a = rest[head] - rest[head].mean(0)
    b = posed[head] - posed[head].mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    fitted = (u @ vt).T
    assert np.allclose(fitted, expected, atol=1e-9)
    assert np.abs(b - a @ expected.T).max() < 1e-9
    # the gaze (eye centre -> eye target helper) turns by the requested rotation
    gaze_rest = P.joint(rest, groups, "l-eye-target") - P.joint(rest, groups, "l-eye")
    gaze = P.joint(posed, groups, "l-eye-target") - P.joint(posed, groups, "l-eye")
    assert np.allclose(gaze, expected @ gaze_rest, atol=1e-9)


def test_yaw_sign_turns_the_face_to_the_subjects_left(mesh):
    groups, rest, _, poser = mesh
    posed = poser.apply(rest, {"head_yaw_deg": 30.0})
    gaze = P.joint(posed, groups, "l-eye-target") - P.joint(posed, groups, "l-eye")
    assert gaze[0] > 0 and gaze[1] < 0  # still forward (-Y), now toward +X (the subject's left)
    nose_up = poser.apply(rest, {"head_pitch_deg": 15.0})
    gaze = P.joint(nose_up, groups, "l-eye-target") - P.joint(nose_up, groups, "l-eye")
    assert gaze[2] > 0.2 * np.linalg.norm(gaze)  # chin up: the gaze rises


def test_body_below_the_neck_is_unchanged_and_moves_are_bounded(mesh):
    groups, rest, edges, poser = mesh
    pose = {"head_yaw_deg": 40.0, "head_pitch_deg": 20.0, "head_roll_deg": 10.0}
    posed = poser.apply(rest, pose)
    clavicle_z = P.joint(rest, groups, "l-clavicle")[2]
    below = rest[:, 2] < clavicle_z - 0.01
    assert np.array_equal(posed[below], rest[below])
    # at the collar bones the skin over the jugular notch follows a little, by millimetres
    near = rest[:, 2] < clavicle_z
    assert np.linalg.norm(posed[near] - rest[near], axis=1).max() < 0.003
    # shoulder tops beside the neck stay put too
    shoulders = np.zeros(len(rest), bool)
    shoulders[groups["body"]] = True  # (helper geometry is never rendered)
    shoulders &= (np.abs(rest[:, 0]) > 0.14) & (rest[:, 2] < P.joint(rest, groups, "neck")[2])
    assert np.abs(posed[shoulders] - rest[shoulders]).max() < 1e-12
    # nothing moves further than the crown can on a 40/20/10 degree turn (~0.25 m from the neck joint)
    assert np.linalg.norm(posed - rest, axis=1).max() < 0.2
    ratio = _edge_ratio(rest, posed, edges)
    assert 0.6 < ratio.min() and ratio.max() < 2.0, (ratio.min(), ratio.max())
    assert np.percentile(ratio, 99.9) < 1.6


def test_arms_lower_toward_the_body(mesh):
    groups, rest, edges, poser = mesh
    posed = poser.apply(rest, {"arm_lower_deg": 30.0})
    for side in "lr":
        shoulder = P.joint(rest, groups, f"{side}-shoulder")
        hand_rest, hand = P.joint(rest, groups, f"{side}-hand"), P.joint(posed, groups, f"{side}-hand")
        assert hand[2] < hand_rest[2] - 0.05  # the hand drops
        assert abs(hand[0]) < abs(hand_rest[0]) - 0.1  # and comes in toward the body
        # the arm rotated rigidly by 30 degrees about the shoulder: the hand stays as far from the shoulder
        assert abs(np.linalg.norm(hand - shoulder) - np.linalg.norm(hand_rest - shoulder)) < 1e-9
        upper = P.joint(posed, groups, f"{side}-elbow") - shoulder
        upper_rest = P.joint(rest, groups, f"{side}-elbow") - shoulder
        cos = upper @ upper_rest / np.linalg.norm(upper) / np.linalg.norm(upper_rest)
        assert math.degrees(math.acos(min(cos, 1.0))) == pytest.approx(30.0, abs=0.01)
    # the torso (between the arms, below the armpits) and the head stay put
    torso = (np.abs(rest[:, 0]) < 0.1) & (rest[:, 2] < 0.42) & (rest[:, 2] > 0.0)
    assert np.abs(posed[torso] - rest[torso]).max() < 1e-12
    head = P.head_indices(poser)
    assert np.array_equal(posed[head], rest[head])
    ratio = _edge_ratio(rest, posed, edges)
    assert 0.5 < ratio.min() and ratio.max() < 1.4, (ratio.min(), ratio.max())


def test_posing_a_morphed_body_is_deterministic_and_rigid(mesh):
    groups, rest, _, poser = mesh
    morphed = mh.to_blender(mh.morph(mh.macro_weights(0.8, 0.6, 0.7, 0.8, 0.5, {"african": 0.5, "asian": 0.5})))
    pose = P.sample_pose(np.random.default_rng(3))
    assert set(pose) == set(P.POSE_KEYS) and pose == P.sample_pose(np.random.default_rng(3))
    first = P.pose_vertices(morphed, groups, pose)
    assert np.array_equal(first, P.pose_vertices(morphed, groups, pose))
    # weights from the base mesh transfer to a heavy morph: still a rigid head, bounded stretching
    posed = poser.apply(morphed, pose)
    head = P.head_indices(poser)
    a, b = morphed[head] - morphed[head].mean(0), posed[head] - posed[head].mean(0)
    assert np.abs(b - a @ P.head_rotation(pose).T).max() < 1e-9
    ratio = _edge_ratio(morphed, posed, mesh[2])
    assert 0.5 < ratio.min() and ratio.max() < 2.0, (ratio.min(), ratio.max())


@pytest.mark.parametrize("framing", P.FRAMINGS)
@pytest.mark.parametrize("pose", [{}, {"head_yaw_deg": 40.0, "head_pitch_deg": 20.0},
                                  {"head_pitch_deg": -15.0, "head_roll_deg": -10.0, "arm_lower_deg": 30.0}])
def test_framing_box_contains_the_head(mesh, framing, pose):
    groups, rest, _, poser = mesh
    posed = poser.apply(rest, pose)
    look_at, height = P.framing(posed, groups, framing)
    body = np.zeros(len(rest), bool)
    body[groups["body"]] = True
    head = np.zeros(len(rest), bool)
    head[P.head_indices(poser)] = True
    head_xz = posed[head & body][:, [0, 2]]
    # the square image seen from the front covers look_at +- height/2 across and up
    assert np.all(np.abs(head_xz - look_at[[0, 2]]) <= height / 2), framing
    sizes = {"close": (0.25, 0.36), "head_shoulders": (0.36, 0.5), "waist_up": (0.6, 0.8)}
    assert sizes[framing][0] < height < sizes[framing][1]
    if framing == "waist_up" and pose.get("arm_lower_deg"):  # lowered arms fit the width as well
        in_frame = posed[body & (posed[:, 2] > look_at[2] - height / 2)]
        assert np.abs(in_frame[:, 0] - look_at[0]).max() <= height / 2


def test_unknown_framing_is_rejected(mesh):
    groups, rest, _, _ = mesh
    with pytest.raises(ValueError, match="framing"):
        P.framing(rest, groups, "full_body")
