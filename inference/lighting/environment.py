"""Target lighting as an equirectangular panorama plus its orientation relative to the camera.

Directions follow CONVENTIONS.md. A direction d_cam in camera space (OpenGL) maps into the panorama's own frame
(Blender world frame, Z up, with the world's Mapping rotation already applied) as q = cam_to_env @ d_cam, and
q is looked up with Blender's equirect rule: u = 0.5 - atan2(q_y, q_x) / 2pi, v = 1 - acos(q_z) / pi
(v = 0 is the bottom row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Camera space -> a panorama whose centre column is straight ahead of the camera and whose top is camera +Y:
# forward (0,0,-1) -> +X, right (1,0,0) -> -Y, up (0,1,0) -> +Z.
CAMERA_TO_CENTRED_PANORAMA = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def rotation_z(angle_rad: float) -> np.ndarray:
    """Right-handed rotation about +Z (counter-clockwise seen from +Z), as Blender's Mapping node applies it."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Environment:
    """radiance: (h, 2h, 3) float32 scene-linear equirect, row 0 = top. cam_to_env: (3, 3) rotation."""

    radiance: np.ndarray
    cam_to_env: np.ndarray

    @staticmethod
    def centred(radiance: np.ndarray, rotation_deg: float = 0.0) -> "Environment":
        """An HDRI whose image centre is straight ahead, turned by `rotation_deg` about the vertical axis
        (same sense as Blender's Mapping Z rotation)."""
        m = rotation_z(math.radians(rotation_deg)) @ CAMERA_TO_CENTRED_PANORAMA
        return Environment(np.ascontiguousarray(radiance, np.float32), m)

    def env_directions(self, dirs_cam: np.ndarray) -> np.ndarray:
        """Camera-space directions (..., 3) -> panorama-frame directions (..., 3)."""
        return dirs_cam @ self.cam_to_env.T.astype(dirs_cam.dtype)

    def sample(self, dirs_cam: np.ndarray) -> np.ndarray:
        """Bilinear radiance seen along camera-space unit directions (..., 3) -> (..., 3) float32."""
        return sample_equirect(self.radiance, self.env_directions(dirs_cam))

    def view(self, width: int, height: int, fov_deg: float) -> np.ndarray:
        """The panorama as a (height, width) pinhole camera sees it: the composite's default backdrop.

        A 1080p frame has ~8x more pixels per radian than a 2k panorama, so looking up every pixel (a trig-heavy
        2-megapixel lookup) mostly interpolates between the same few texels. The lookup runs on a grid with about
        four samples per panorama texel and is enlarged bilinearly (pixel centres line up: camera_rays and
        resize both use pixel centres); where the camera is coarser than the panorama every pixel is looked up."""
        from ..resample import resize
        from .camera import camera_rays, half_extents

        texels_per_radian = self.radiance.shape[1] / (2.0 * math.pi)
        tan_x, tan_y = half_extents(width, height, fov_deg)
        pixels_per_radian = max(width / (2.0 * tan_x), height / (2.0 * tan_y))  # at the image centre
        scale = min(1.0, 4.0 * texels_per_radian / pixels_per_radian)
        grid_w, grid_h = max(2, math.ceil(width * scale)), max(2, math.ceil(height * scale))
        if grid_w >= width or grid_h >= height:
            return self.sample(camera_rays(width, height, fov_deg))
        return resize(self.sample(camera_rays(grid_w, grid_h, fov_deg)), height, width)


def direction_to_uv(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Panorama-frame unit directions -> (u, v) in [0, 1); v = 0 at the bottom (CONVENTIONS.md)."""
    u = np.mod(0.5 - np.arctan2(q[..., 1], q[..., 0]) / (2.0 * np.pi), 1.0)
    v = 1.0 - np.arccos(np.clip(q[..., 2], -1.0, 1.0)) / np.pi
    return u, v


def uv_to_direction(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inverse of direction_to_uv."""
    phi = (0.5 - u) * 2.0 * np.pi
    theta = (1.0 - v) * np.pi
    st = np.sin(theta)
    x, y = st * np.cos(phi), st * np.sin(phi)
    return np.stack([x, y, np.broadcast_to(np.cos(theta), x.shape)], axis=-1)


def pixel_directions(height: int, width: int) -> np.ndarray:
    """(height, width, 3) panorama-frame unit directions through the centres of an equirect's pixels."""
    u = (np.arange(width) + 0.5) / width
    v = 1.0 - (np.arange(height) + 0.5) / height
    return uv_to_direction(u[None, :], v[:, None])


def sample_equirect(radiance: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Bilinear lookup (wrapping in u, clamped in v) of panorama-frame unit directions q (..., 3)."""
    h, w = radiance.shape[:2]
    u, v = direction_to_uv(q)
    x = u * w - 0.5
    y = (1.0 - v) * h - 0.5
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx = (x - x0)[..., None].astype(np.float32)
    fy = (y - y0)[..., None].astype(np.float32)
    x0m, x1m = np.mod(x0, w), np.mod(x0 + 1, w)
    y0c, y1c = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    top = radiance[y0c, x0m] * (1 - fx) + radiance[y0c, x1m] * fx
    bottom = radiance[y1c, x0m] * (1 - fx) + radiance[y1c, x1m] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)
