"""Head turn on the neck, arms lowered from MakeHuman's A-pose, and framings (pure numpy, no bpy).

Everything works on base-mesh vertices in Blender's frame (`makehuman_data.to_blender`: Z up, the subject faces
-Y, its left is +X, metres) plus the mesh's vertex groups, whose `joint-*` groups are little cubes around
MakeHuman's joint centres; they are morphed and posed like every other vertex, so joints are read from the
vertices at hand.

Skinning: each region gets a weight in [0, 1] computed once from the rest mesh (`Poser`); a vertex is rotated by
its weight times the joint's angle (the rotation is interpolated, not the matrices blended), which keeps a twisted
neck from collapsing the way linear blend skinning does. The head rotation is split over two pivots, the neck
joint and the head joint (skull base), so the neck bends along its length instead of kinking at one point.

Pose angles (degrees): head_yaw > 0 turns the face toward the subject's left (+X); head_pitch > 0 lifts the chin;
head_roll > 0 tilts the top of the head toward the subject's left; arm_lower rotates each upper arm down toward
the body about the shoulder joint (MakeHuman's A-pose holds the arms ~40 degrees from vertical).
"""

from __future__ import annotations

import numpy as np

FRAMINGS = ("close", "head_shoulders", "waist_up")
POSE_KEYS = ("head_yaw_deg", "head_pitch_deg", "head_roll_deg", "arm_lower_deg")
ZERO_POSE = {key: 0.0 for key in POSE_KEYS}

# Head/neck weights, on the rest mesh, in the neck frame: origin the neck joint, `up` the neck axis (toward the
# head joint), `forward` the face direction. The head-neck boundary runs from under the chin (front, low) to the
# skull base (back, high): the coordinate up + HEAD_TILT * forward is constant along it.
HEAD_TILT = 0.385
HEAD_RAMP_START = -0.35  # fraction of the neck length where the weight starts rising from 0 (neck base)
HEAD_RAMP_END = 0.62  # ... and reaches 1 (just under the chin / at the skull base)
NECK_RADIUS = (0.09, 0.13)  # horizontal distance from the neck axis where the weight fades: shoulders stay put
NECK_BASE = (-0.6, -0.2)  # neck-length fractions below the neck joint where any head weight fades out
NECK_SHARE = 0.5  # share of the head rotation taken at the neck joint; the rest at the head joint
# Arm weights: ramp along the upper-arm axis from the shoulder joint, gated to vertices near that axis so the
# chest, back and flank under the armpit stay put (metres on the rest base mesh, hm08).
ARM_RAMP = (-0.08, 0.14)
ARM_GATE = (0.05, 0.10)


def sample_pose(rng: np.random.Generator) -> dict:
    """A random portrait pose (JSON-able, degrees)."""
    r = lambda lo, hi: round(float(rng.uniform(lo, hi)), 3)  # noqa: E731 (compact sampling)
    return {"head_yaw_deg": r(-40.0, 40.0), "head_pitch_deg": r(-15.0, 20.0), "head_roll_deg": r(-10.0, 10.0),
            "arm_lower_deg": r(20.0, 30.0)}


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def joint(vertices: np.ndarray, groups: dict[str, np.ndarray], name: str) -> np.ndarray:
    """Centre of the `joint-<name>` helper cube."""
    return vertices[groups[f"joint-{name}"]].mean(axis=0)


def rotation_matrix(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    k = _unit(np.asarray(axis, float))
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle_rad) * kx + (1.0 - np.cos(angle_rad)) * (kx @ kx)


def axis_angle(rotation: np.ndarray) -> tuple[np.ndarray, float]:
    """(unit axis, angle in [0, pi]) of a rotation matrix; axis +Z for the identity."""
    angle = float(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)))
    axis = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]])
    norm = np.linalg.norm(axis)
    if norm < 1e-9:
        if angle < 1e-6:
            return np.array([0.0, 0.0, 1.0]), 0.0
        # angle ~ pi: the axis is the column of R + I with the largest norm (never reached for portrait poses)
        sym = rotation + np.eye(3)
        return _unit(sym[:, np.argmax(np.linalg.norm(sym, axis=0))]), angle
    return axis / norm, angle


def head_rotation(pose: dict) -> np.ndarray:
    """World rotation of the head: roll about the forward axis, then pitch, then yaw about +Z."""
    yaw, pitch, roll = (np.radians(pose.get(k, 0.0)) for k in POSE_KEYS[:3])
    return (rotation_matrix([0, 0, 1], yaw) @ rotation_matrix([1, 0, 0], -pitch)
            @ rotation_matrix([0, 1, 0], roll))


def _rotate(points: np.ndarray, pivot: np.ndarray, axis: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rodrigues per point: rotate (N,3) points about `pivot` + `axis` by per-point angles (N,)."""
    p = points - pivot
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
    return pivot + p * cos + np.cross(axis, p) * sin + axis * (p @ axis)[:, None] * (1.0 - cos)


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip((points - a) @ ab / float(ab @ ab), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1)


class Poser:
    """Skinning weights computed once from a rest mesh (the base mesh; they transfer to every morph of it, since
    morphs keep the topology); `apply` poses any morphed copy, reading the joints from that copy."""

    def __init__(self, groups: dict[str, np.ndarray], rest_vertices: np.ndarray):
        self.groups = groups
        rest = np.asarray(rest_vertices, float)
        self.head_weight = self._head_weights(rest)
        self.arm_weight = {side: self._arm_weights(rest, side) for side in "lr"}

    def _head_weights(self, rest: np.ndarray) -> np.ndarray:
        neck, head = joint(rest, self.groups, "neck"), joint(rest, self.groups, "head")
        up = head - neck
        length = float(np.linalg.norm(up))
        up /= length
        forward = _unit(np.array([0.0, -1.0, 0.0]) - up * (-up[1]))  # face direction, orthogonal to the neck
        rel = rest - neck
        height = (rel @ up + HEAD_TILT * (rel @ forward)) / length
        radial = np.linalg.norm(rel - np.outer(rel @ up, up), axis=1)
        beside = 1.0 - _smoothstep((radial - NECK_RADIUS[0]) / (NECK_RADIUS[1] - NECK_RADIUS[0]))
        # the fade only applies low on the neck: high up, wide vertices (ears, skull) are head
        beside = np.maximum(beside, _smoothstep(height / HEAD_RAMP_END))
        # and nothing below the neck base moves, however far forward (the tilt lifts the chest's coordinate)
        above_base = _smoothstep((rel @ up / length - NECK_BASE[0]) / (NECK_BASE[1] - NECK_BASE[0]))
        return _smoothstep((height - HEAD_RAMP_START) / (HEAD_RAMP_END - HEAD_RAMP_START)) * beside * above_base

    def _arm_weights(self, rest: np.ndarray, side: str) -> np.ndarray:
        shoulder, elbow = joint(rest, self.groups, f"{side}-shoulder"), joint(rest, self.groups, f"{side}-elbow")
        axis = _unit(elbow - shoulder)
        along = (rest - shoulder) @ axis
        ramp = _smoothstep((along - ARM_RAMP[0]) / (ARM_RAMP[1] - ARM_RAMP[0]))
        # distance to the limb's bones: upper arm, forearm, and wrist to thumb / middle / little finger tips
        bones = [("shoulder", "elbow"), ("elbow", "hand"), ("hand", "finger-1-4"), ("hand", "finger-3-4"),
                 ("hand", "finger-5-4")]
        distance = np.min([_segment_distance(rest, joint(rest, self.groups, f"{side}-{a}"),
                                             joint(rest, self.groups, f"{side}-{b}")) for a, b in bones], axis=0)
        gate = 1.0 - _smoothstep((distance - ARM_GATE[0]) / (ARM_GATE[1] - ARM_GATE[0]))
        return ramp * gate

    def apply(self, vertices: np.ndarray, pose: dict) -> np.ndarray:
        """(N,3) posed copy of `vertices` (the rest mesh or a morph of it, same vertex order)."""
        v = np.array(vertices, float)
        lower = np.radians(pose.get("arm_lower_deg", 0.0))
        if lower:
            for side in "lr":
                w = self.arm_weight[side]
                moving = w > 0
                shoulder = joint(v, self.groups, f"{side}-shoulder")
                arm = joint(v, self.groups, f"{side}-elbow") - shoulder
                # the axis normal to the plane of the arm and the vertical: a positive angle swings the arm down
                hinge = _unit(np.cross(arm, [0.0, 0.0, -1.0]))
                v[moving] = _rotate(v[moving], shoulder, hinge, w[moving] * lower)
        axis, angle = axis_angle(head_rotation(pose))
        if angle:
            w = self.head_weight
            moving = w > 0
            neck, head = joint(v, self.groups, "neck"), joint(v, self.groups, "head")
            # chain: the neck joint takes NECK_SHARE of the angle, the (moved) head joint the rest
            neck_part = np.minimum(w[moving] / NECK_SHARE, 1.0) * NECK_SHARE * angle
            head_part = np.clip((w[moving] - NECK_SHARE) / (1.0 - NECK_SHARE), 0.0, 1.0) * (1 - NECK_SHARE) * angle
            bent = _rotate(v[moving], neck, axis, neck_part)
            head_pivot = _rotate(head[None], neck, axis, np.array([NECK_SHARE * angle]))[0]
            v[moving] = _rotate(bent, head_pivot, axis, head_part)
        return v


def pose_vertices(vertices_blender: np.ndarray, groups: dict[str, np.ndarray], pose: dict) -> np.ndarray:
    """One-off posing with weights computed from these vertices (use `Poser` to pose many morphs)."""
    return Poser(groups, vertices_blender).apply(vertices_blender, pose)


def head_indices(poser: Poser) -> np.ndarray:
    """Vertices that move rigidly with the head (weight 1), helper geometry included."""
    return np.nonzero(poser.head_weight >= 1.0)[0]


def framing(vertices: np.ndarray, groups: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, float]:
    """(look-at point, height in metres the square image covers) for a posed body.

    close: the head, chin to crown, sized by the jaw-to-crown joint distance (pose-invariant, so a lifted chin
    does not shrink the frame); head_shoulders: crown to a little below the collar bones; waist_up: crown to
    the waist (spine joint at the navel); lowered arms fit the width."""
    if name not in FRAMINGS:
        raise ValueError(f"unknown framing {name!r}; expected one of {FRAMINGS}")
    eyes = 0.5 * (joint(vertices, groups, "l-eye") + joint(vertices, groups, "r-eye"))
    neck = joint(vertices, groups, "neck")
    if name == "close":
        jaw, crown_joint = joint(vertices, groups, "jaw"), joint(vertices, groups, "head-2")
        centre = 0.5 * (jaw + crown_joint)
        return np.array([eyes[0], eyes[1], centre[2] - 0.01]), 1.25 * float(np.linalg.norm(crown_joint - jaw))
    crown = float(vertices[groups["body"], 2].max())  # arms hang lower: the body's top is the crown
    if name == "head_shoulders":
        clavicles = 0.5 * (joint(vertices, groups, "l-clavicle") + joint(vertices, groups, "r-clavicle"))
        bottom, top, centre_xy = float(clavicles[2]) - 0.07, crown + 0.03, 0.5 * (eyes[:2] + neck[:2])
    else:
        bottom, top, centre_xy = float(joint(vertices, groups, "spine-3")[2]) - 0.03, crown + 0.04, neck[:2]
    height = top - bottom
    return np.array([centre_xy[0], centre_xy[1], bottom + 0.5 * height]), height
