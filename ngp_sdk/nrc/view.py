"""Radiance caching in the browser viewer: the path tracer follows the browser's camera and every frame trains
the cache; while the camera rests the frames are averaged, so the picture converges."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ngp_sdk.core.cameras import Intrinsics, opencv_to_opengl
from ngp_sdk.core.images import linear_to_srgb
from ngp_sdk.core.view import SceneView, ViewLayers
from ngp_sdk.nrc.scene import Sensor
from ngp_sdk.nrc.task import NrcTask

__all__ = ["NrcSceneView"]


class NrcSceneView(SceneView):
    """:class:`~ngp_sdk.core.view.SceneView` of an :class:`~ngp_sdk.nrc.task.NrcTask` (the scene's world frame).

    The film keeps the scene's size (the cache's training buffers are sized for it): a render traces one frame
    (one training step) with the browser camera's field of view over the film's wider side, crops the film to the
    canvas's aspect and scales it to the canvas. Frames of an unchanged camera are averaged.
    """

    progressive = False
    continuous = True

    def __init__(self, task: NrcTask):
        self.task = task
        m = np.asarray(task.renderer.scene.sensor.to_world, np.float64)
        self.up = m[:3, 1] / np.linalg.norm(m[:3, 1])
        self._key: bytes | None = None
        self._sum: np.ndarray | None = None
        self._count = 0

    @property
    def frames_averaged(self) -> int:
        """Frames in the picture shown now (reset when the camera moves)."""
        return self._count

    def sensor_for(self, c2w: np.ndarray, intrinsics: Intrinsics) -> Sensor:
        """The film-sized sensor at world camera ``c2w`` (OpenGL) whose view contains the canvas ``intrinsics``."""
        s = self.task.renderer.scene.sensor
        c2w = np.asarray(c2w, np.float64)
        tan_x = intrinsics.width / (2.0 * intrinsics.fx)
        tan_y = intrinsics.height / (2.0 * intrinsics.fy)
        film_tan_x = max(tan_x, tan_y * s.width / s.height)
        to_world = np.eye(4)
        to_world[:3, 0], to_world[:3, 1], to_world[:3, 2] = -c2w[:3, 0], c2w[:3, 1], -c2w[:3, 2]
        to_world[:3, 3] = c2w[:3, 3]
        return dataclasses.replace(s, to_world=to_world, fov=math.degrees(2 * math.atan(film_tan_x)), fov_axis="x")

    def render(self, c2w: np.ndarray, intrinsics: Intrinsics) -> ViewLayers:
        scene = self.task.renderer.scene
        fw, fh = scene.sensor.width, scene.sensor.height
        c2w = np.asarray(c2w, np.float64)
        sensor = self.sensor_for(c2w, intrinsics)
        film_tan_x = math.tan(math.radians(sensor.fov) / 2)
        self.task.renderer.gpu_scene.set_camera(sensor)
        self.task.step()
        frame = self.task.last_frame
        key = np.round(np.concatenate([c2w[:3].ravel(), [film_tan_x]]), 9).tobytes()
        if key != self._key or self._sum is None:
            self._key, self._sum, self._count = key, np.zeros_like(frame, np.float64), 0
        self._sum += frame
        self._count += 1
        mean = (self._sum / self._count).astype(np.float32)
        # the canvas's part of the film: pixel centres of the canvas mapped onto film pixels (nearest)
        film_tan_y = film_tan_x * fh / fw
        u = ((np.arange(intrinsics.width) + 0.5 - intrinsics.cx) / intrinsics.fx) / film_tan_x
        v = ((np.arange(intrinsics.height) + 0.5 - intrinsics.cy) / intrinsics.fy) / film_tan_y
        cols = np.clip(((u + 1.0) * 0.5 * fw).astype(np.int64), 0, fw - 1)
        rows = np.clip(((v + 1.0) * 0.5 * fh).astype(np.int64), 0, fh - 1)
        rgb = linear_to_srgb(np.clip(mean[rows][:, cols], 0.0, 1.0))
        h, w = rgb.shape[:2]
        return ViewLayers(rgb=rgb.astype(np.float32), depth=np.zeros((h, w), np.float32),
                          opacity=np.ones((h, w), np.float32))

    def scene_box(self) -> tuple[np.ndarray, np.ndarray]:
        v = np.asarray(self.task.renderer.scene.vertices, np.float64)
        return v.min(axis=0), v.max(axis=0)

    def default_camera(self) -> tuple[np.ndarray, float]:
        s = self.task.renderer.scene.sensor
        m = np.asarray(s.to_world, np.float64)
        c2w = np.eye(4)
        c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = -m[:3, 0], m[:3, 1], -m[:3, 2], m[:3, 3]
        tan_half = math.tan(math.radians(s.fov) / 2)
        if s.fov_axis == "x":
            tan_half *= s.height / s.width
        return c2w, 2 * math.atan(tan_half)

    def to_internal(self, c2w: np.ndarray) -> np.ndarray:
        return opencv_to_opengl(np.asarray(c2w, np.float64))[:3]

    def from_internal(self, c2w: np.ndarray) -> np.ndarray:
        m = np.eye(4)
        m[:3] = np.asarray(c2w, np.float64).reshape(-1, 4)[:3]
        return opencv_to_opengl(m)
