"""Camera ray generation with lens undistortion ("undistort rays, not images").

Layer 0: Warp kernels; layer 1: :func:`generate_rays` and :func:`make_pixel_centers`.

Conventions (instant-ngp's):

- **Pixel coordinates** are continuous, in pixels, with the origin at the top-left *corner* of the image:
  pixel ``(col, row)`` covers ``[col, col + 1) x [row, row + 1)``, so its centre is
  ``(col + 0.5, row + 0.5)``. ``x`` grows to the right, ``y`` downwards.
- **Camera space** has OpenCV axes: ``+x`` right, ``+y`` down, ``+z`` forward (the viewing direction). A pixel
  ``(px, py)`` of a pinhole camera maps to the camera-space direction ``((px - cx) / fx, (py - cy) / fy, 1)``.
- **Camera-to-world matrices** ``c2w`` are float32 ``[n_cams, 3, 4]``: columns 0, 1, 2 are the world-space
  camera axes (right, down, forward) and column 3 the camera centre. This is exactly instant-ngp's internal
  camera matrix (``NerfDataset::nerf_matrix_to_ngp`` of a NeRF/OpenGL pose, see :mod:`ngp_sdk.core.cameras`); the
  rotation part is not required to be orthonormal (directions are normalised at the end).

Intrinsics travel as three per-camera arrays (index ``c`` = camera):

- ``cam_params`` float32 ``[n_cams, 4]``: ``(fx, fy, cx, cy)`` in pixels;
- ``cam_dist``   float32 ``[n_cams, 4]``: distortion coefficients, ``(k1, k2, p1, p2)`` for
  :data:`CAMERA_OPENCV`, ``(k1, k2, k3, k4)`` for :data:`CAMERA_OPENCV_FISHEYE`, ignored for
  :data:`CAMERA_PINHOLE`;
- ``cam_model``  int32   ``[n_cams]``: one of :data:`CAMERA_PINHOLE`, :data:`CAMERA_OPENCV`,
  :data:`CAMERA_OPENCV_FISHEYE`.

Distortion models map an undistorted normalised image point ``(u, v)`` (= direction with ``z = 1``) to the
distorted point that is observed (OpenCV's models, as in instant-ngp's ``opencv_lens_distortion_delta`` and
``opencv_fisheye_lens_distortion_delta``):

- OpenCV: ``r2 = u^2 + v^2``, ``radial = 1 + k1 r2 + k2 r2^2``,
  ``ud = u radial + 2 p1 u v + p2 (r2 + 2 u^2)``, ``vd = v radial + 2 p2 u v + p1 (r2 + 2 v^2)``;
- OpenCV fisheye: ``theta = atan(r)``, ``theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 +
  k4 theta^8)``, ``(ud, vd) = (u, v) theta_d / r``.

Ray generation inverts them per ray: OpenCV by Newton's method in 2D with the analytic Jacobian (instant-ngp's
``iterative_camera_undistortion`` uses central differences; the fixed point is the same), fisheye by a 1D
Newton solve for ``theta`` from ``theta_d`` (as OpenCV's ``fisheye::undistortPoints``). The fisheye direction
is built as ``(sin(theta) ud / rd, sin(theta) vd / rd, cos(theta))``, which equals instant-ngp's ``(u, v, 1)``
up to normalisation for ``theta < pi/2`` and stays valid beyond a 180 degree field of view.
"""

from __future__ import annotations

import warp as wp

from .device import KernelArgumentError, check_array, common_device
from .parallel import launch_split

__all__ = [
    "CAMERA_PINHOLE",
    "CAMERA_OPENCV",
    "CAMERA_OPENCV_FISHEYE",
    "CAMERA_MODEL_CODES",
    "generate_rays",
    "make_pixel_centers",
]

#: Camera model codes stored in ``cam_model`` arrays.
CAMERA_PINHOLE = 0
CAMERA_OPENCV = 1
CAMERA_OPENCV_FISHEYE = 2

#: Model name (as in :class:`ngp_sdk.core.cameras.Intrinsics`) -> code.
CAMERA_MODEL_CODES = {
    "PINHOLE": CAMERA_PINHOLE,
    "OPENCV": CAMERA_OPENCV,
    "OPENCV_FISHEYE": CAMERA_OPENCV_FISHEYE,
}

_OPENCV_ITERATIONS = 20
_FISHEYE_ITERATIONS = 20
_PI = 3.14159265358979


# ----------------------------------------------------------------------------------------------------------
# layer 0: device functions and kernels
# ----------------------------------------------------------------------------------------------------------


@wp.func
def _undistort_opencv(xd: wp.vec2, dist: wp.vec4) -> wp.vec2:
    """Solve ``distort(x) = xd`` for the OpenCV (k1, k2, p1, p2) model by Newton's method."""
    k1 = dist[0]
    k2 = dist[1]
    p1 = dist[2]
    p2 = dist[3]
    u = xd[0]
    v = xd[1]
    for _it in range(_OPENCV_ITERATIONS):
        u2 = u * u
        v2 = v * v
        uv = u * v
        r2 = u2 + v2
        radial = k1 * r2 + k2 * r2 * r2
        dradial = k1 + 2.0 * k2 * r2  # d(radial)/d(r2)
        fu = u + u * radial + 2.0 * p1 * uv + p2 * (r2 + 2.0 * u2) - xd[0]
        fv = v + v * radial + 2.0 * p2 * uv + p1 * (r2 + 2.0 * v2) - xd[1]
        j00 = 1.0 + radial + 2.0 * u2 * dradial + 2.0 * p1 * v + 6.0 * p2 * u
        j01 = 2.0 * uv * dradial + 2.0 * p1 * u + 2.0 * p2 * v
        j10 = 2.0 * uv * dradial + 2.0 * p2 * v + 2.0 * p1 * u
        j11 = 1.0 + radial + 2.0 * v2 * dradial + 2.0 * p2 * u + 6.0 * p1 * v
        det = j00 * j11 - j01 * j10
        if wp.abs(det) < 1.0e-12:
            break
        su = (j11 * fu - j01 * fv) / det
        sv = (j00 * fv - j10 * fu) / det
        u = u - su
        v = v - sv
        if su * su + sv * sv < 1.0e-14:
            break
    return wp.vec2(u, v)


@wp.func
def _fisheye_direction(xd: wp.vec2, dist: wp.vec4) -> wp.vec3:
    """Camera-space unit direction of the distorted normalised point ``xd`` of an OpenCV fisheye lens."""
    rd = wp.length(xd)
    if rd < 1.0e-12:
        return wp.vec3(0.0, 0.0, 1.0)
    k1 = dist[0]
    k2 = dist[1]
    k3 = dist[2]
    k4 = dist[3]
    theta = wp.min(rd, _PI)
    for _it in range(_FISHEYE_ITERATIONS):
        t2 = theta * theta
        t4 = t2 * t2
        t6 = t4 * t2
        t8 = t4 * t4
        f = theta * (1.0 + k1 * t2 + k2 * t4 + k3 * t6 + k4 * t8) - rd
        df = 1.0 + 3.0 * k1 * t2 + 5.0 * k2 * t4 + 7.0 * k3 * t6 + 9.0 * k4 * t8
        if wp.abs(df) < 1.0e-12:
            break
        step = f / df
        theta = wp.clamp(theta - step, 0.0, _PI)
        if wp.abs(step) < 1.0e-7:
            break
    s = wp.sin(theta) / rd
    return wp.vec3(xd[0] * s, xd[1] * s, wp.cos(theta))


@wp.func
def _camera_direction(px: float, py: float, params: wp.vec4, dist: wp.vec4, model: int) -> wp.vec3:
    """Camera-space (OpenCV axes) direction of pixel ``(px, py)``; not normalised."""
    xd = wp.vec2((px - params[2]) / params[0], (py - params[3]) / params[1])
    if model == CAMERA_OPENCV:
        x = _undistort_opencv(xd, dist)
        return wp.vec3(x[0], x[1], 1.0)
    if model == CAMERA_OPENCV_FISHEYE:
        return _fisheye_direction(xd, dist)
    return wp.vec3(xd[0], xd[1], 1.0)


@wp.kernel
def _generate_rays_kernel(
    offset: int,
    c2w: wp.array3d(dtype=wp.float32),
    cam_params: wp.array2d(dtype=wp.float32),
    cam_dist: wp.array2d(dtype=wp.float32),
    cam_model: wp.array(dtype=wp.int32),
    cam_index: wp.array(dtype=wp.int32),
    pixel_xy: wp.array2d(dtype=wp.float32),
    origins: wp.array2d(dtype=wp.float32),
    directions: wp.array2d(dtype=wp.float32),
):
    i = wp.tid() + offset
    c = cam_index[i]
    params = wp.vec4(cam_params[c, 0], cam_params[c, 1], cam_params[c, 2], cam_params[c, 3])
    dist = wp.vec4(cam_dist[c, 0], cam_dist[c, 1], cam_dist[c, 2], cam_dist[c, 3])
    d = _camera_direction(pixel_xy[i, 0], pixel_xy[i, 1], params, dist, cam_model[c])
    w = wp.normalize(
        wp.vec3(
            c2w[c, 0, 0] * d[0] + c2w[c, 0, 1] * d[1] + c2w[c, 0, 2] * d[2],
            c2w[c, 1, 0] * d[0] + c2w[c, 1, 1] * d[1] + c2w[c, 1, 2] * d[2],
            c2w[c, 2, 0] * d[0] + c2w[c, 2, 1] * d[1] + c2w[c, 2, 2] * d[2],
        )
    )
    for r in range(3):
        origins[i, r] = c2w[c, r, 3]
        directions[i, r] = w[r]


@wp.kernel
def _pixel_centers_kernel(offset: int, width: int, out: wp.array2d(dtype=wp.float32)):
    i = wp.tid() + offset
    out[i, 0] = float(i % width) + 0.5
    out[i, 1] = float(i // width) + 0.5


# ----------------------------------------------------------------------------------------------------------
# layer 1: launch functions
# ----------------------------------------------------------------------------------------------------------


def generate_rays(
    c2w: wp.array,
    cam_params: wp.array,
    cam_dist: wp.array,
    cam_model: wp.array,
    cam_index: wp.array | int,
    pixel_xy: wp.array,
    *,
    origins: wp.array | None = None,
    directions: wp.array | None = None,
    device: wp.context.Devicelike = None,
) -> tuple[wp.array, wp.array]:
    """World-space rays through continuous pixel coordinates, with lens undistortion.

    Args:
        c2w: float32 ``[n_cams, 3, 4]`` camera-to-world matrices, columns (right, down, forward, centre)
            in the internal (instant-ngp) convention.
        cam_params: float32 ``[n_cams, 4]``: ``(fx, fy, cx, cy)`` in pixels.
        cam_dist: float32 ``[n_cams, 4]``: distortion coefficients (see the module docstring).
        cam_model: int32 ``[n_cams]``: :data:`CAMERA_PINHOLE`, :data:`CAMERA_OPENCV` or
            :data:`CAMERA_OPENCV_FISHEYE`.
        cam_index: int32 ``[n]`` camera of every ray, in ``[0, n_cams)``; or one ``int`` for all rays. On CPU
            the range is checked; on CUDA an out-of-range index is undefined behaviour.
        pixel_xy: float32 ``[n, 2]`` continuous pixel coordinates (``col + 0.5, row + 0.5`` = pixel centre).
        origins: optional float32 ``[n, 3]`` output to write into.
        directions: optional float32 ``[n, 3]`` output to write into.
        device: device to run on; ``None`` = the device of the arrays (Warp's current device if none).

    Returns:
        ``(origins, directions)``: float32 ``[n, 3]`` ray origins (the camera centres, world units) and unit
        directions in world space.

    Raises:
        KernelArgumentError: on a wrong dtype/shape or an out-of-range camera index (CPU).
        DeviceMismatchError: when the arrays live on different devices.
    """
    idx_arr = cam_index if isinstance(cam_index, wp.array) else None
    dev = common_device(
        [c2w, cam_params, cam_dist, cam_model, idx_arr, pixel_xy, origins, directions], device
    )
    check_array(c2w, "c2w", dtype=wp.float32, shape=(None, 3, 4), device=dev)
    n_cams = c2w.shape[0]
    check_array(cam_params, "cam_params", dtype=wp.float32, shape=(n_cams, 4), device=dev)
    check_array(cam_dist, "cam_dist", dtype=wp.float32, shape=(n_cams, 4), device=dev)
    check_array(cam_model, "cam_model", dtype=wp.int32, shape=(n_cams,), device=dev)
    check_array(pixel_xy, "pixel_xy", dtype=wp.float32, shape=(None, 2), device=dev)
    n = pixel_xy.shape[0]
    if idx_arr is None:
        c = int(cam_index)
        if not 0 <= c < n_cams:
            raise KernelArgumentError(f"cam_index {c} is out of range for {n_cams} cameras")
        idx_arr = wp.full(n, c, dtype=wp.int32, device=dev)
    else:
        check_array(idx_arr, "cam_index", dtype=wp.int32, shape=(n,), device=dev)
        if dev.is_cpu and n > 0:
            view = idx_arr.numpy()
            if view.min() < 0 or view.max() >= n_cams:
                raise KernelArgumentError(
                    f"cam_index holds values in [{view.min()}, {view.max()}], outside [0, {n_cams})"
                )
    if origins is None:
        origins = wp.empty((n, 3), dtype=wp.float32, device=dev)
    else:
        check_array(origins, "origins", dtype=wp.float32, shape=(n, 3), device=dev)
    if directions is None:
        directions = wp.empty((n, 3), dtype=wp.float32, device=dev)
    else:
        check_array(directions, "directions", dtype=wp.float32, shape=(n, 3), device=dev)
    if n == 0:
        return origins, directions
    if dev.is_cpu:
        models = cam_model.numpy()
        if n_cams and (models.min() < 0 or models.max() > CAMERA_OPENCV_FISHEYE):
            raise KernelArgumentError(f"cam_model holds unknown codes {sorted(set(models.tolist()))}")
    launch_split(
        _generate_rays_kernel,
        n,
        [c2w, cam_params, cam_dist, cam_model, idx_arr, pixel_xy, origins, directions],
        dev,
    )
    return origins, directions


def make_pixel_centers(
    width: int, height: int, *, out: wp.array | None = None, device: wp.context.Devicelike = None
) -> wp.array:
    """Centres of all pixels of a ``width x height`` image in row-major order.

    Args:
        width: image width in pixels (> 0).
        height: image height in pixels (> 0).
        out: optional float32 ``[height * width, 2]`` output.
        device: device to run on; ``None`` = ``out``'s device or Warp's current device.

    Returns:
        float32 ``[height * width, 2]``: entry ``row * width + col`` holds ``(col + 0.5, row + 0.5)``.
    """
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise KernelArgumentError(f"image size must be positive, got {width}x{height}")
    dev = common_device([out], device)
    n = width * height
    if out is None:
        out = wp.empty((n, 2), dtype=wp.float32, device=dev)
    else:
        check_array(out, "out", dtype=wp.float32, shape=(n, 2), device=dev)
    launch_split(_pixel_centers_kernel, n, [width, out], dev)
    return out
