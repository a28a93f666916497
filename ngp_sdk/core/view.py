"""What a viewer needs of a 3D primitive, and how a view is turned into display pixels.

A primitive that can be flown around (NeRF, SDF) gives the viewer a :class:`SceneView`: renders of a camera in
its *world* frame (4x4 camera-to-world, OpenGL axes, like ``transforms.json``) as :class:`ViewLayers`, its scene
box, its training cameras, and the map between world cameras and the internal cameras of camera-path files.
:func:`compose_view` turns layers into an 8-bit picture for one render mode. Nothing here imports a viewer library;
:mod:`ngp_sdk.core.viewer` puts these on a web page.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from ngp_sdk.core.camera_path import matrix_to_quaternion, quaternion_to_matrix
from ngp_sdk.core.cameras import Intrinsics, opencv_to_opengl
from ngp_sdk.core.errors import ConfigError
from ngp_sdk.core.images import linear_to_srgb, srgb_to_linear

__all__ = ["RENDER_MODES", "ViewLayers", "SceneView", "compose_view", "normals_from_depth", "band_intrinsics",
           "c2w_from_wxyz_position", "wxyz_position_from_c2w", "colormap_turbo"]

#: Render modes of the viewer.
RENDER_MODES = ("rgb", "depth", "normals", "opacity")


@dataclass(frozen=True)
class ViewLayers:
    """One rendered camera.

    Attributes:
        rgb: float32 ``[H, W, 3]`` colour in the data's code space (sRGB), [0, 1].
        depth: float32 ``[H, W]`` z-depth in world units, 0 where nothing was hit.
        opacity: float32 ``[H, W]`` accumulated opacity in [0, 1].
        normals: float32 ``[H, W, 3]`` unit world-frame normals (zero where nothing was hit), or None when the
            primitive has none (then they are estimated from depth).
    """

    rgb: np.ndarray
    depth: np.ndarray
    opacity: np.ndarray
    normals: np.ndarray | None = None


class SceneView(abc.ABC):
    """A 3D primitive as the viewer sees it; the viewer calls :meth:`render` under the session lock.

    Attributes:
        up: world up vector ``[3]`` (orbit axis of the browser camera).
        progressive: True: a low-resolution frame first, then full resolution in bands (renders whose cost grows
            with the pixel count); False: every render is one whole frame (e.g. a path-traced frame).
        continuous: render the resting camera again and again (frames that train and accumulate).
    """

    up: np.ndarray = np.array([0.0, 0.0, 1.0])
    progressive: bool = True
    continuous: bool = False

    @abc.abstractmethod
    def render(self, c2w: np.ndarray, intrinsics: Intrinsics) -> ViewLayers:
        """Render a world camera (``c2w [4, 4]``, OpenGL axes)."""

    @abc.abstractmethod
    def scene_box(self) -> tuple[np.ndarray, np.ndarray]:
        """World-frame corners ``(lo [3], hi [3])`` of the box the primitive lives in."""

    def cameras(self) -> list[tuple[np.ndarray, Intrinsics]]:
        """Training cameras as ``(c2w [4, 4] world OpenGL, intrinsics)``; none by default."""
        return []

    @abc.abstractmethod
    def default_camera(self) -> tuple[np.ndarray, float]:
        """A world ``c2w [4, 4]`` (OpenGL) that frames the scene, and its vertical field of view in radians."""

    @abc.abstractmethod
    def to_internal(self, c2w: np.ndarray) -> np.ndarray:
        """World ``c2w [4, 4]`` (OpenGL) -> internal ``[3, 4]`` (OpenCV axes), as camera-path files store it."""

    @abc.abstractmethod
    def from_internal(self, c2w: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_internal`: internal ``[3, 4]`` -> world ``[4, 4]`` (OpenGL)."""


def band_intrinsics(intrinsics: Intrinsics, y0: int, rows: int) -> Intrinsics:
    """The intrinsics of image rows ``y0 .. y0 + rows`` of ``intrinsics`` (same rays, a shorter image)."""
    return Intrinsics(width=intrinsics.width, height=rows, fx=intrinsics.fx, fy=intrinsics.fy, cx=intrinsics.cx,
                      cy=intrinsics.cy - y0, model=intrinsics.model, dist=intrinsics.dist)


def normals_from_depth(depth: np.ndarray, intrinsics: Intrinsics, c2w: np.ndarray) -> np.ndarray:
    """World-frame unit normals ``[H, W, 3]`` of the surface seen in a z-depth map (central differences).

    Pixels with no depth, or next to one, get zero normals. ``c2w`` is the camera's world ``[4, 4]`` (OpenGL).
    """
    h, w = depth.shape
    u = (np.arange(w) + 0.5 - intrinsics.cx) / intrinsics.fx
    v = (np.arange(h) + 0.5 - intrinsics.cy) / intrinsics.fy
    z = depth.astype(np.float64)
    pts = np.stack([u[None, :] * z, v[:, None] * z, z], axis=-1)  # OpenCV camera frame
    valid = z > 0
    dx = np.zeros_like(pts)
    dy = np.zeros_like(pts)
    dx[:, 1:-1] = pts[:, 2:] - pts[:, :-2]
    dy[1:-1] = pts[2:] - pts[:-2]
    n = np.cross(dy, dx)  # points back at the camera in the OpenCV frame
    ok = valid.copy()
    ok[:, 1:-1] &= valid[:, 2:] & valid[:, :-2]
    ok[1:-1] &= valid[2:] & valid[:-2]
    ok[:, [0, -1]] = False
    ok[[0, -1]] = False
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(ok[..., None] & (norm > 0), n / np.maximum(norm, 1e-30), 0.0)
    rot_cv = opencv_to_opengl(np.asarray(c2w, np.float64))[:3, :3]
    return (n @ rot_cv.T).astype(np.float32)


def colormap_turbo(x: np.ndarray) -> np.ndarray:
    """Google's Turbo colormap (polynomial fit) of ``x`` in [0, 1] -> float32 ``[..., 3]`` sRGB in [0, 1]."""
    t = np.clip(np.asarray(x, np.float64), 0.0, 1.0)[..., None]
    r = (0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943)
    g = (0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604)
    b = (0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973)
    out = [sum(c * t[..., 0] ** i for i, c in enumerate(coef)) for coef in (r, g, b)]
    return np.clip(np.stack(out, axis=-1), 0.0, 1.0).astype(np.float32)


def compose_view(layers: ViewLayers, mode: str = "rgb", *, exposure: float = 0.0,
                 depth_range: tuple[float, float] = (0.0, 1.0), intrinsics: Intrinsics | None = None,
                 c2w: np.ndarray | None = None) -> np.ndarray:
    """The 8-bit picture ``uint8 [H, W, 3]`` of one render mode.

    Args:
        layers: the render.
        mode: one of :data:`RENDER_MODES`: ``rgb`` (colour times ``2 ** exposure`` in linear light), ``depth``
            (Turbo over ``depth_range``, black where nothing was hit), ``normals`` (``0.5 + 0.5 n``; estimated
            from depth when the primitive has none, which needs ``intrinsics`` and ``c2w``), ``opacity`` (grey).
        exposure: stops of exposure for ``rgb``.
        depth_range: world distances mapped to the ends of the depth colormap.
        intrinsics: the camera's intrinsics (normals from depth only).
        c2w: the camera's world ``[4, 4]`` (normals from depth only).

    Raises:
        ConfigError: an unknown mode.
    """
    if mode == "rgb":
        rgb = layers.rgb
        if exposure:
            rgb = linear_to_srgb(np.clip(srgb_to_linear(np.clip(rgb, 0, 1)) * 2.0 ** exposure, 0, 1))
        out = rgb
    elif mode == "depth":
        lo, hi = depth_range
        t = (layers.depth - lo) / max(hi - lo, 1e-12)
        out = np.where((layers.depth > 0)[..., None], colormap_turbo(t), 0.0)
    elif mode == "normals":
        n = layers.normals
        if n is None:
            if intrinsics is None or c2w is None:
                raise ConfigError("normals from depth need the camera's intrinsics and c2w")
            n = normals_from_depth(layers.depth, intrinsics, c2w)
        hit = np.linalg.norm(n, axis=-1, keepdims=True) > 0.5
        out = np.where(hit, 0.5 + 0.5 * n, 0.0)
    elif mode == "opacity":
        out = np.repeat(layers.opacity[..., None], 3, axis=2)
    else:
        raise ConfigError(f"unknown render mode {mode!r}; expected one of {RENDER_MODES}")
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def c2w_from_wxyz_position(wxyz, position) -> np.ndarray:
    """World ``c2w [4, 4]`` (OpenGL axes) of a camera given as the OpenCV-axes orientation quaternion ``wxyz``
    (world from camera, as three.js/viser report it) and its position."""
    m = np.eye(4)
    w, x, y, z = np.asarray(wxyz, np.float64)
    m[:3, :3] = quaternion_to_matrix((x, y, z, w))
    m[:3, 3] = np.asarray(position, np.float64)
    return opencv_to_opengl(m)


def wxyz_position_from_c2w(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`c2w_from_wxyz_position`: ``(wxyz [4], position [3])`` of a world ``c2w`` (OpenGL)."""
    cv = opencv_to_opengl(np.asarray(c2w, np.float64))
    x, y, z, w = matrix_to_quaternion(cv[:3, :3])
    return np.array([w, x, y, z]), cv[:3, 3].copy()
