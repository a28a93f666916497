"""The scene box of a capture in world units: given (``--aabb``) or estimated from the cameras.

The result is instant-ngp's ``scale`` / ``offset`` / ``aabb_scale`` triple (NeRF world -> internal unit cube,
see :mod:`ngp_sdk.core.cameras`), so poses stay in the bag's world frame and metric units in the dataset.

Estimate: for cameras looking at a common region (an object capture), the centre is the point closest to every
optical axis in the least-squares sense, and the scale puts the cameras at instant-ngp's usual distance
(``colmap2nerf`` scales the mean camera distance to 4 NeRF units, and ``scale = 0.33`` then maps +-1.5 units
to the unit cube). When the axes do not meet in front of the cameras (a robot driving forward, an inside-out
sweep) the centre is the cameras' centroid, the box holds every camera with a margin and ``aabb_scale`` 16
lets rays see the surroundings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ngp_sdk.core.cameras import NERF_SCALE
from ngp_sdk.core.errors import DataError

__all__ = ["SceneBox", "scene_box_from_aabb", "estimate_scene_box", "choose_scene_box"]

#: Mean camera distance, in NeRF units, of an object capture after scaling (instant-ngp's colmap2nerf).
OBJECT_CAMERA_DISTANCE = 4.0


@dataclass(frozen=True)
class SceneBox:
    """``scale``, ``offset`` (NeRF axis order) and ``aabb_scale`` of a transforms file, and how they were found."""

    scale: float
    offset: tuple[float, float, float]
    aabb_scale: int
    source: str

    def to_transforms(self) -> dict:
        return {"scale": self.scale, "offset": list(self.offset), "aabb_scale": self.aabb_scale}


def scene_box_from_aabb(aabb: Sequence[float], aabb_scale: int = 1) -> SceneBox:
    """The box ``(x0, y0, z0, x1, y1, z1)`` (world units) mapped onto the unit cube (longest side = 1).

    Raises:
        DataError: not 6 finite numbers, or an empty box.
    """
    a = np.asarray(aabb, np.float64).reshape(-1)
    if a.size != 6 or not np.all(np.isfinite(a)) or np.any(a[3:] <= a[:3]):
        raise DataError(f"--aabb must be x0,y0,z0,x1,y1,z1 with x1 > x0, y1 > y0, z1 > z0; got {a.tolist()}")
    scale = 1.0 / float(np.max(a[3:] - a[:3]))
    centre = 0.5 * (a[:3] + a[3:])
    return SceneBox(scale, tuple(float(v) for v in 0.5 - centre * scale), int(aabb_scale), "aabb")


def estimate_scene_box(c2w: np.ndarray, aabb_scale: int | None = None) -> SceneBox:
    """Estimate the box from camera-to-world matrices ``[n, 4, 4]`` (NeRF/OpenGL camera axes, world units).

    Raises:
        DataError: no cameras, or non-finite poses.
    """
    m = np.asarray(c2w, np.float64)
    if m.ndim != 3 or m.shape[0] == 0 or not np.all(np.isfinite(m)):
        raise DataError("estimating the scene box needs at least one finite camera pose")
    centres = m[:, :3, 3]
    forward = -m[:, :3, 2]  # OpenGL cameras look along -z
    forward /= np.linalg.norm(forward, axis=1, keepdims=True)
    # least-squares point closest to all optical axes: sum (I - d d^T) (p - c) = 0
    proj = np.eye(3)[None] - forward[:, :, None] * forward[:, None, :]
    a, b = proj.sum(0), np.einsum("nij,nj->i", proj, centres)
    eig = np.linalg.eigvalsh(a)
    focus = np.linalg.solve(a, b) if eig[0] > 1e-3 * len(m) else None
    if focus is not None:
        ahead = np.einsum("ni,ni->n", focus[None] - centres, forward)
        if np.mean(ahead > 0) < 0.9:
            focus = None
    if focus is not None:
        dist = float(np.mean(np.linalg.norm(centres - focus, axis=1)))
        scale = NERF_SCALE * OBJECT_CAMERA_DISTANCE / max(dist, 1e-9)
        return SceneBox(scale, tuple(float(v) for v in 0.5 - focus * scale),
                        1 if aabb_scale is None else int(aabb_scale), "cameras (object)")
    centroid = centres.mean(0)
    extent = float(np.max(np.abs(centres - centroid))) if len(m) > 1 else 1.0
    scale = 0.25 / max(extent, 1e-6)  # every camera within the central half of the unit cube
    return SceneBox(scale, tuple(float(v) for v in 0.5 - centroid * scale),
                    16 if aabb_scale is None else int(aabb_scale), "cameras (inside-out)")


def choose_scene_box(aabb: Sequence[float] | None, aabb_scale: int | None,
                     poses: Callable[[], np.ndarray]) -> SceneBox:
    """The box a user gave (``aabb``, with ``aabb_scale`` or 1), else one estimated from ``poses()`` (called only
    then: resolving every camera pose may read a whole bag)."""
    if aabb is not None:
        return scene_box_from_aabb(aabb, 1 if aabb_scale is None else aabb_scale)
    return estimate_scene_box(poses(), aabb_scale)
