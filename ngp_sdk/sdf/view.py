"""The SDF primitive in the browser viewer: sphere-traced world-frame renders and the shape's box."""

from __future__ import annotations

import math

import numpy as np

from ngp_sdk.core.cameras import Intrinsics, opencv_to_opengl, z_depth_per_ray_distance
from ngp_sdk.core.images import linear_to_srgb
from ngp_sdk.core.view import SceneView, ViewLayers
from ngp_sdk.sdf.task import DEFAULT_FOV_Y, SdfTask

__all__ = ["SdfSceneView"]


class SdfSceneView(SceneView):
    """:class:`~ngp_sdk.core.view.SceneView` of an :class:`~ngp_sdk.sdf.task.SdfTask`; the world is the mesh frame
    (``+y`` up, as :meth:`SdfTask.default_camera` frames it)."""

    up = np.array([0.0, 1.0, 0.0])

    def __init__(self, task: SdfTask):
        self.task = task

    def render(self, c2w: np.ndarray, intrinsics: Intrinsics) -> ViewLayers:
        img = self.task.render_world(c2w, intrinsics)
        depth = (img.depth * z_depth_per_ray_distance(intrinsics)).astype(np.float32)
        return ViewLayers(rgb=linear_to_srgb(np.clip(img.rgb, 0.0, 1.0)), depth=depth,
                          opacity=img.hit.astype(np.float32), normals=img.normals)

    def scene_box(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = (np.asarray(b, np.float64) for b in self.task.bounds)
        off = np.asarray(self.task.offset, np.float64)
        return (lo - off) / self.task.scale, (hi - off) / self.task.scale

    def default_camera(self) -> tuple[np.ndarray, float]:
        internal, _ = self.task.default_camera()
        return self.from_internal(internal), math.radians(DEFAULT_FOV_Y)

    def to_internal(self, c2w: np.ndarray) -> np.ndarray:
        m = opencv_to_opengl(np.asarray(c2w, np.float64))[:3].copy()
        m[:, 3] = m[:, 3] * self.task.scale + np.asarray(self.task.offset, np.float64)
        return m

    def from_internal(self, c2w: np.ndarray) -> np.ndarray:
        m = np.eye(4)
        m[:3] = np.asarray(c2w, np.float64).reshape(-1, 4)[:3]
        m[:3, 3] = (m[:3, 3] - np.asarray(self.task.offset, np.float64)) / self.task.scale
        return opencv_to_opengl(m)
