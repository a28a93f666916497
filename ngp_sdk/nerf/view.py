"""The NeRF primitive in the browser viewer: world-frame renders, scene box and training cameras."""

from __future__ import annotations

import numpy as np

from ngp_sdk.core.cameras import Intrinsics, box_corners, nerf_matrix_to_ngp, ngp_to_nerf_matrix
from ngp_sdk.core.view import SceneView, ViewLayers
from ngp_sdk.nerf.task import NerfTask

__all__ = ["NerfSceneView"]


class NerfSceneView(SceneView):
    """:class:`~ngp_sdk.core.view.SceneView` of a :class:`~ngp_sdk.nerf.task.NerfTask` (or a live one).

    The world frame is the dataset's NeRF frame (``transforms.json``); ``up`` is the mean up axis of the training
    cameras (``+z`` before any camera arrived).
    """

    def __init__(self, task: NerfTask):
        self.task = task

    @property
    def up(self) -> np.ndarray:  # the cameras of a live session change
        """World up: the mean up axis of the cameras (``+z`` without cameras)."""
        poses = self.task.camera_frames().nerf_poses
        up = np.asarray(poses, np.float64)[:, :3, 1].mean(axis=0) if len(poses) else np.zeros(3)
        n = np.linalg.norm(up)
        return up / n if n > 0.3 else np.array([0.0, 0.0, 1.0])

    def render(self, c2w: np.ndarray, intrinsics: Intrinsics) -> ViewLayers:
        img = self.task.render_world(c2w, intrinsics)
        return ViewLayers(rgb=img.rgb, depth=img.depth, opacity=img.opacity)

    def scene_box(self) -> tuple[np.ndarray, np.ndarray]:
        scene = self.task.scene
        lo, hi = scene.aabb
        world = scene.to_nerf(box_corners(lo, hi))
        return world.min(axis=0), world.max(axis=0)

    def cameras(self) -> list[tuple[np.ndarray, Intrinsics]]:
        frames = self.task.camera_frames()
        return [(np.asarray(m, np.float64), k) for m, k in zip(frames.nerf_poses, frames.intrinsics, strict=True)]

    def default_camera(self) -> tuple[np.ndarray, float]:
        cams = self.cameras()
        lo, hi = self.scene_box()
        if cams:  # the first training camera, pulled back so that its neighbours' frustums are in view
            c2w, intr = cams[0]
            c2w = c2w.copy()
            centre = 0.5 * (lo + hi)
            dist = float(np.linalg.norm(c2w[:3, 3] - centre))
            c2w[:3, 3] += 0.35 * dist * c2w[:3, 2]  # backwards: the OpenGL camera looks down -z
            return c2w, intr.fov_y
        centre, size = 0.5 * (lo + hi), float(np.linalg.norm(hi - lo))
        eye = centre + size * np.array([0.6, -0.6, 0.5])
        fwd = (centre - eye) / np.linalg.norm(centre - eye)
        right = np.cross(fwd, self.up)
        right /= np.linalg.norm(right)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(right, fwd), -fwd, eye
        return m, np.radians(50.0)

    def to_internal(self, c2w: np.ndarray) -> np.ndarray:
        s = self.task.scene
        return nerf_matrix_to_ngp(np.asarray(c2w, np.float64), s.scale, s.offset)[:3]

    def from_internal(self, c2w: np.ndarray) -> np.ndarray:
        s = self.task.scene
        m = np.eye(4)
        m[:3] = np.asarray(c2w, np.float64).reshape(-1, 4)[:3]
        return ngp_to_nerf_matrix(m, s.scale, s.offset)
