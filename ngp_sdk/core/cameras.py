"""Camera intrinsics and the pose conventions of ngp-sdk.

Three conventions meet here:

**NeRF / OpenGL** (``transform_matrix`` in Blender, instant-ngp and nerfstudio ``transforms.json`` files):
a 4x4 camera-to-world matrix whose rotation columns are the camera's ``+x`` (right), ``+y`` (up) and ``+z``
(backward) axes in world space -- the camera looks along its ``-z``. The world frame is whatever the file uses
(Blender and COLMAP-converted scenes are usually ``+z`` up); units are arbitrary.

**OpenCV / COLMAP** camera axes: ``+x`` right, ``+y`` down, ``+z`` forward (the viewing direction). Going from
OpenGL to OpenCV camera axes negates the ``y`` and ``z`` columns of the rotation (:func:`opengl_to_opencv`).

**Internal** (instant-ngp's ``nerf_matrix_to_ngp``, what :mod:`warp_kernels.rays` consumes): a 3x4
camera-to-world matrix with OpenCV camera axes -- columns (right, down, forward, centre) -- in a world frame
obtained from the NeRF world by ``p_int = cycle(p_nerf * scale + offset)`` with
``cycle(x, y, z) = (y, z, x)``. With instant-ngp's defaults ``scale = 0.33`` and ``offset = (0.5, 0.5, 0.5)``,
a NeRF scene around the origin lands in the unit cube ``[0, 1]^3`` centred at ``0.5`` (``aabb_scale`` widens
that box around ``0.5``) and NeRF's ``+z`` up becomes internal ``+y``. The rotation columns are *not* scaled,
so ray directions keep unit length while distances shrink by ``scale``. Rays leave the camera along ``+z`` of
camera space: pixel ``(px, py)`` (continuous, ``+0.5`` = pixel centre) of a pinhole camera looks along
``R @ ((px - cx) / fx, (py - cy) / fy, 1)``.

Worked example (tested): a NeRF camera at ``(0, 0, 3)`` with identity rotation (looking down ``-z``) becomes,
with the defaults, a camera at ``(0.5, 1.49, 0.5)`` with columns right ``(0, 0, 1)``, down ``(-1, 0, 0)``,
forward ``(0, -1, 0)``: it looks down at the centre of the unit cube.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import warp as wp

from ngp_sdk.core.errors import DataError
from warp_kernels.rays import CAMERA_MODEL_CODES, generate_rays, make_pixel_centers

__all__ = [
    "NERF_SCALE",
    "NERF_OFFSET",
    "CAMERA_MODELS",
    "Intrinsics",
    "focal_length_from_fov",
    "z_depth_per_ray_distance",
    "box_corners",
    "pack_intrinsics",
    "camera_ray_tiles",
    "opencv_to_opengl",
    "opengl_to_opencv",
    "nerf_matrix_to_ngp",
    "ngp_to_nerf_matrix",
    "nerf_position_to_ngp",
    "ngp_position_to_nerf",
]

#: instant-ngp's default scene scale (``NERF_SCALE``): NeRF units -> internal units.
NERF_SCALE = 0.33
#: instant-ngp's default scene offset, added after scaling (before the axis cycle).
NERF_OFFSET = (0.5, 0.5, 0.5)
#: Supported camera models.
CAMERA_MODELS = tuple(CAMERA_MODEL_CODES)


def _finite(name: str, value) -> float:
    if isinstance(value, (str, bytes, bool)):
        raise DataError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name} must be a number, got {value!r}") from e
    if not math.isfinite(v):
        raise DataError(f"{name} must be finite, got {v}")
    return v


def _positive_int(name: str, value) -> int:
    v = _finite(name, value)
    if v != int(v) or v <= 0:
        raise DataError(f"{name} must be a positive integer, got {value!r}")
    return int(v)


@dataclass(frozen=True, kw_only=True)
class Intrinsics:
    """Intrinsics of one camera image.

    Attributes:
        width: image width in pixels.
        height: image height in pixels.
        fx: horizontal focal length in pixels (> 0).
        fy: vertical focal length in pixels (> 0).
        cx: principal point x in continuous pixel coordinates (``width / 2`` = image centre).
        cy: principal point y in continuous pixel coordinates.
        model: ``"PINHOLE"``, ``"OPENCV"`` or ``"OPENCV_FISHEYE"``.
        dist: 4 distortion coefficients: ``(k1, k2, p1, p2)`` for OPENCV, ``(k1, k2, k3, k4)`` for
            OPENCV_FISHEYE, all zero for PINHOLE. Shorter tuples are zero-padded.

    Raises:
        DataError: on a non-positive size or focal length, a non-finite value, an unknown model, more than
            4 coefficients or non-zero coefficients on a PINHOLE camera.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: str = "PINHOLE"
    dist: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "width", _positive_int("width", self.width))
        set_(self, "height", _positive_int("height", self.height))
        for name in ("fx", "fy", "cx", "cy"):
            set_(self, name, _finite(name, getattr(self, name)))
        if self.fx <= 0 or self.fy <= 0:
            raise DataError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if self.model not in CAMERA_MODEL_CODES:
            raise DataError(f"unknown camera model {self.model!r}; expected one of {CAMERA_MODELS}")
        dist = tuple(_finite(f"dist[{i}]", d) for i, d in enumerate(self.dist))
        if len(dist) > 4:
            raise DataError(f"at most 4 distortion coefficients are supported, got {len(dist)}")
        dist = dist + (0.0,) * (4 - len(dist))
        if self.model == "PINHOLE" and any(dist):
            raise DataError(f"a PINHOLE camera has no distortion, got dist={dist}")
        set_(self, "dist", dist)

    @classmethod
    def from_fov(
        cls,
        *,
        width: int,
        height: int,
        angle_x: float,
        angle_y: float | None = None,
        cx: float | None = None,
        cy: float | None = None,
    ) -> Intrinsics:
        """Pinhole intrinsics from full fields of view in radians (``fy = fx`` when ``angle_y`` is None).

        The principal point defaults to the image centre.
        """
        fx = focal_length_from_fov(width, angle_x)
        fy = fx if angle_y is None else focal_length_from_fov(height, angle_y)
        return cls(
            width=width,
            height=height,
            fx=fx,
            fy=fy,
            cx=width / 2 if cx is None else cx,
            cy=height / 2 if cy is None else cy,
        )

    @property
    def model_code(self) -> int:
        """The ``cam_model`` code of :mod:`warp_kernels.rays`."""
        return CAMERA_MODEL_CODES[self.model]

    @property
    def fov_x(self) -> float:
        """Full horizontal field of view of the undistorted pinhole part, radians."""
        return 2.0 * math.atan(0.5 * self.width / self.fx)

    @property
    def fov_y(self) -> float:
        """Full vertical field of view of the undistorted pinhole part, radians."""
        return 2.0 * math.atan(0.5 * self.height / self.fy)

    def scaled(self, downscale: float) -> Intrinsics:
        """Intrinsics of the image shrunk by ``downscale`` (e.g. 2 = half resolution).

        Sizes are floored (``width // downscale`` for integers; trailing pixels are cropped), focal lengths
        and principal point are divided by ``downscale`` (continuous pixel coordinates scale exactly, since
        the origin is the top-left image corner). Distortion coefficients act on normalised coordinates and
        are unchanged.

        Raises:
            DataError: if ``downscale`` is not positive or the image would vanish.
        """
        k = _finite("downscale", downscale)
        if k <= 0:
            raise DataError(f"downscale must be positive, got {downscale}")
        w, h = int(math.floor(self.width / k)), int(math.floor(self.height / k))
        if w < 1 or h < 1:
            raise DataError(f"downscale {downscale} leaves no pixels of a {self.width}x{self.height} image")
        return replace(
            self, width=w, height=h, fx=self.fx / k, fy=self.fy / k, cx=self.cx / k, cy=self.cy / k
        )

    def resized(self, width: int | None = None, height: int | None = None) -> Intrinsics:
        """Intrinsics of the same camera rendered at ``width x height`` (one given: keep the aspect ratio;
        none: unchanged). Focal lengths and principal point scale with each axis."""
        if width is None and height is None:
            return self
        sx = width / self.width if width is not None else height / self.height
        sy = height / self.height if height is not None else sx
        return replace(self, width=round(self.width * sx), height=round(self.height * sy),
                       fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy)

    def as_arrays(self) -> tuple[np.ndarray, np.ndarray, int]:
        """``(params float32 [4] = (fx, fy, cx, cy), dist float32 [4], model code)``."""
        return (
            np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float32),
            np.array(self.dist, dtype=np.float32),
            self.model_code,
        )


def z_depth_per_ray_distance(intrinsics: Intrinsics) -> np.ndarray:
    """float64 ``[H, W]``: the z-depth (along the optical axis) per unit of distance along each pixel-centre ray of
    a pinhole camera (lens distortion ignored); multiply a ray-distance depth map by it to get z-depth."""
    u = (np.arange(intrinsics.width) + 0.5 - intrinsics.cx) / intrinsics.fx
    v = (np.arange(intrinsics.height) + 0.5 - intrinsics.cy) / intrinsics.fy
    return 1.0 / np.sqrt(1.0 + u[None, :] ** 2 + v[:, None] ** 2)


def box_corners(lo, hi) -> np.ndarray:
    """The 8 corners ``[8, 3]`` (float64) of the axis-aligned box ``lo``..``hi``."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    return np.array([[(lo, hi)[(k >> a) & 1][a] for a in range(3)] for k in range(8)])


def focal_length_from_fov(resolution: float, angle: float) -> float:
    """Focal length in pixels of a full field of view ``angle`` (radians) over ``resolution`` pixels.

    ``0.5 * resolution / tan(0.5 * angle)``, instant-ngp's ``fov_to_focal_length`` (which takes degrees).
    """
    a = _finite("field of view", angle)
    if not 0.0 < a < math.pi:
        raise DataError(f"field of view must be in (0, pi) radians, got {a}")
    return 0.5 * float(resolution) / math.tan(0.5 * a)


def pack_intrinsics(intrinsics: Sequence[Intrinsics]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-camera arrays for :func:`warp_kernels.rays.generate_rays`.

    Returns:
        ``(cam_params float32 [n, 4] = (fx, fy, cx, cy), cam_dist float32 [n, 4], cam_model int32 [n])``.
    """
    n = len(intrinsics)
    params = np.zeros((n, 4), dtype=np.float32)
    dist = np.zeros((n, 4), dtype=np.float32)
    model = np.zeros(n, dtype=np.int32)
    for i, intr in enumerate(intrinsics):
        params[i], dist[i], model[i] = intr.as_arrays()
    return params, dist, model


def camera_ray_tiles(c2w: np.ndarray, intrinsics: Intrinsics, tile_rays: int,
                     device) -> Iterator[tuple[int, int, wp.array, wp.array]]:
    """Rays through the pixel centres of one camera, row-major, ``tile_rays`` at a time (lens distortion applied).

    Args:
        c2w: camera-to-world ``[3, 4]`` (OpenCV axes) in the space the rays are wanted in.
        intrinsics: the camera; ``width * height`` rays.
        tile_rays: rays per tile (>= 1).
        device: Warp device of the ray arrays.

    Yields:
        ``(start, stop, origins [stop - start, 3], directions [stop - start, 3])``; the arrays are views of
        buffers reused by the next tile.
    """
    w, h = intrinsics.width, intrinsics.height
    cam_params, cam_dist, cam_model = (wp.array(a, device=device) for a in pack_intrinsics([intrinsics]))
    c2w_arr = wp.array(np.asarray(c2w, np.float32).reshape(1, 3, 4), dtype=wp.float32, device=device)
    centres = make_pixel_centers(w, h, device=device)
    n = w * h
    tile = max(1, int(tile_rays))
    origins = wp.empty((min(tile, n), 3), dtype=wp.float32, device=device)
    directions = wp.empty_like(origins)
    for s in range(0, n, tile):
        e = min(n, s + tile)
        o, d = origins[: e - s], directions[: e - s]
        generate_rays(c2w_arr, cam_params, cam_dist, cam_model, 0, centres[s:e], origins=o, directions=d)
        yield s, e, o, d


# ----------------------------------------------------------------------------------------------------------
# pose conventions
# ----------------------------------------------------------------------------------------------------------


def _as_pose(c2w, name: str = "c2w") -> np.ndarray:
    a = np.asarray(c2w)
    if a.ndim < 2 or a.shape[-2:] not in ((3, 4), (4, 4)):
        raise DataError(f"{name} must have shape [..., 3, 4] or [..., 4, 4], got {a.shape}")
    return np.array(a, dtype=np.result_type(a.dtype, np.float32))


def _with_bottom_row(m34: np.ndarray, like: np.ndarray) -> np.ndarray:
    if like.shape[-2] == 3:
        return m34
    out = np.zeros(m34.shape[:-2] + (4, 4), dtype=m34.dtype)
    out[..., :3, :] = m34
    out[..., 3, 3] = 1
    return out


def opencv_to_opengl(c2w) -> np.ndarray:
    """Switch camera axes between OpenCV (right, down, forward) and OpenGL (right, up, backward).

    Negates rotation columns 1 and 2 (the camera ``y`` and ``z`` axes); the camera centre and the world
    frame are unchanged. The operation is its own inverse.

    Args:
        c2w: camera-to-world ``[..., 3, 4]`` or ``[..., 4, 4]``.

    Returns:
        A new array of the same shape (float32 stays float32, anything else becomes float64).
    """
    m = _as_pose(c2w)
    m[..., :3, 1:3] *= -1
    return m


def opengl_to_opencv(c2w) -> np.ndarray:
    """Inverse of :func:`opencv_to_opengl` (the same operation): negates camera ``y`` and ``z`` columns."""
    return opencv_to_opengl(c2w)


def nerf_matrix_to_ngp(c2w, scale: float = NERF_SCALE, offset: Sequence[float] = NERF_OFFSET) -> np.ndarray:
    """NeRF (OpenGL camera axes) camera-to-world -> internal convention, exactly as instant-ngp.

    instant-ngp ``NerfDataset::nerf_matrix_to_ngp`` (``scale_columns = false``, not Mitsuba):

    1. negate columns 1 and 2 (OpenGL -> OpenCV camera axes);
    2. translation ``t <- t * scale + offset`` (rotation columns are not scaled);
    3. cycle the rows: the result's rows are rows ``(1, 2, 0)`` of that matrix, i.e. world
       ``(x, y, z) -> (y, z, x)``.

    Args:
        c2w: NeRF camera-to-world ``[..., 3, 4]`` or ``[..., 4, 4]`` (a 4x4's bottom row is ignored).
        scale: scene scale (instant-ngp default 0.33).
        offset: ``(3,)`` offset added after scaling, in NeRF axis order (default ``(0.5, 0.5, 0.5)``).

    Returns:
        Internal camera-to-world of the same shape (a 4x4 gets bottom row ``(0, 0, 0, 1)``).
    """
    m = _as_pose(c2w)
    out = m[..., :3, :].copy()
    out[..., :, 1:3] *= -1
    out[..., :, 3] = out[..., :, 3] * scale + np.asarray(offset, dtype=out.dtype)
    out = out[..., [1, 2, 0], :]
    return _with_bottom_row(out, m)


def ngp_to_nerf_matrix(c2w, scale: float = NERF_SCALE, offset: Sequence[float] = NERF_OFFSET) -> np.ndarray:
    """Inverse of :func:`nerf_matrix_to_ngp` (instant-ngp ``ngp_matrix_to_nerf``).

    Un-cycles the rows (result rows ``(2, 0, 1)``), negates columns 1 and 2 and maps the translation back
    with ``(t - offset) / scale``.

    Args:
        c2w: internal camera-to-world ``[..., 3, 4]`` or ``[..., 4, 4]``.
        scale: the scale used by the forward conversion.
        offset: the offset used by the forward conversion.

    Returns:
        NeRF (OpenGL camera axes) camera-to-world of the same shape.
    """
    m = _as_pose(c2w)
    out = m[..., :3, :][..., [2, 0, 1], :]  # fancy indexing copies
    out[..., :, 1:3] *= -1
    out[..., :, 3] = (out[..., :, 3] - np.asarray(offset, dtype=out.dtype)) / scale
    return _with_bottom_row(out, m)


def nerf_position_to_ngp(p, scale: float = NERF_SCALE, offset: Sequence[float] = NERF_OFFSET) -> np.ndarray:
    """NeRF-world points ``[..., 3]`` -> internal: ``cycle(p * scale + offset)``, cycle(x,y,z) = (y,z,x)."""
    q = np.asarray(p, dtype=np.float64) * scale + np.asarray(offset, dtype=np.float64)
    return q[..., [1, 2, 0]]


def ngp_position_to_nerf(p, scale: float = NERF_SCALE, offset: Sequence[float] = NERF_OFFSET) -> np.ndarray:
    """Internal points ``[..., 3]`` -> NeRF world (inverse of :func:`nerf_position_to_ngp`)."""
    q = np.asarray(p, dtype=np.float64)[..., [2, 0, 1]]
    return (q - np.asarray(offset, dtype=np.float64)) / scale
