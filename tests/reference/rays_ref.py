"""Float64 NumPy reference of :mod:`warp_kernels.rays` (instant-ngp's camera model, written independently).

Undistortion follows instant-ngp's ``iterative_lens_undistortion`` literally: Newton's method in 2D on
``x + delta(x) = x0`` with a Jacobian from central differences (relative step 1e-6), up to 100 iterations,
stopping when the squared step drops below 1e-20 (instant-ngp: 1e-10) -- for *both* models, so the fisheye
path of the kernel (a 1D solve for theta) is checked against a different algorithm. Everything is float64.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "PINHOLE",
    "OPENCV",
    "OPENCV_FISHEYE",
    "opencv_distortion_delta",
    "fisheye_distortion_delta",
    "distort",
    "undistort",
    "camera_directions",
    "generate_rays_ref",
    "project_points_ref",
]

PINHOLE, OPENCV, OPENCV_FISHEYE = 0, 1, 2


def opencv_distortion_delta(uv: np.ndarray, dist) -> np.ndarray:
    """instant-ngp ``opencv_lens_distortion_delta``: ``[..., 2] -> [..., 2]`` distortion offset."""
    k1, k2, p1, p2 = (float(x) for x in dist)
    u, v = uv[..., 0], uv[..., 1]
    u2, v2, uv_ = u * u, v * v, u * v
    r2 = u2 + v2
    radial = k1 * r2 + k2 * r2 * r2
    du = u * radial + 2 * p1 * uv_ + p2 * (r2 + 2 * u2)
    dv = v * radial + 2 * p2 * uv_ + p1 * (r2 + 2 * v2)
    return np.stack([du, dv], axis=-1)


def fisheye_distortion_delta(uv: np.ndarray, dist) -> np.ndarray:
    """instant-ngp ``opencv_fisheye_lens_distortion_delta``: ``[..., 2] -> [..., 2]``."""
    k1, k2, k3, k4 = (float(x) for x in dist)
    r = np.sqrt(np.sum(uv * uv, axis=-1))
    safe = np.where(r > np.finfo(np.float64).eps, r, 1.0)
    theta = np.arctan(safe)
    t2 = theta * theta
    thetad = theta * (1 + k1 * t2 + k2 * t2**2 + k3 * t2**3 + k4 * t2**4)
    factor = np.where(r > np.finfo(np.float64).eps, thetad / safe - 1.0, 0.0)
    return uv * factor[..., None]


def _delta(model: int):
    return {OPENCV: opencv_distortion_delta, OPENCV_FISHEYE: fisheye_distortion_delta}[model]


def distort(uv: np.ndarray, dist, model: int) -> np.ndarray:
    """Undistorted normalised points ``[..., 2]`` -> distorted ones (identity for pinhole)."""
    uv = np.asarray(uv, dtype=np.float64)
    if model == PINHOLE:
        return uv.copy()
    return uv + _delta(model)(uv, dist)


def undistort(uv0: np.ndarray, dist, model: int) -> np.ndarray:
    """Invert :func:`distort` point by point with instant-ngp's iterative Newton scheme (float64)."""
    uv0 = np.asarray(uv0, dtype=np.float64)
    if model == PINHOLE:
        return uv0.copy()
    delta = _delta(model)
    out = np.empty_like(uv0)
    flat_in, flat_out = uv0.reshape(-1, 2), out.reshape(-1, 2)
    for n in range(flat_in.shape[0]):
        x0 = flat_in[n]
        x = x0.copy()
        for _ in range(100):
            s0 = max(np.finfo(np.float32).eps, abs(1e-6 * x[0]))
            s1 = max(np.finfo(np.float32).eps, abs(1e-6 * x[1]))
            d = delta(x, dist)
            d0b = delta(x - [s0, 0], dist)
            d0f = delta(x + [s0, 0], dist)
            d1b = delta(x - [0, s1], dist)
            d1f = delta(x + [0, s1], dist)
            jac = np.array(
                [
                    [1 + (d0f[0] - d0b[0]) / (2 * s0), (d1f[0] - d1b[0]) / (2 * s1)],
                    [(d0f[1] - d0b[1]) / (2 * s0), 1 + (d1f[1] - d1b[1]) / (2 * s1)],
                ]
            )
            step = np.linalg.solve(jac, x + d - x0)
            x = x - step
            if step @ step < 1e-20:
                break
        flat_out[n] = x
    return out


def camera_directions(pixel_xy: np.ndarray, params, dist, model: int) -> np.ndarray:
    """Camera-space (OpenCV axes) directions ``(u, v, 1)`` of pixels ``[..., 2]`` -> ``[..., 3]``."""
    fx, fy, cx, cy = (float(x) for x in params)
    pixel_xy = np.asarray(pixel_xy, dtype=np.float64)
    xd = np.stack([(pixel_xy[..., 0] - cx) / fx, (pixel_xy[..., 1] - cy) / fy], axis=-1)
    x = undistort(xd, dist, model)
    return np.concatenate([x, np.ones(x.shape[:-1] + (1,))], axis=-1)


def generate_rays_ref(
    c2w, cam_params, cam_dist, cam_model, cam_index, pixel_xy
) -> tuple[np.ndarray, np.ndarray]:
    """Reference of :func:`warp_kernels.rays.generate_rays`: ``(origins [n, 3], unit directions [n, 3])``."""
    c2w = np.asarray(c2w, dtype=np.float64)
    pixel_xy = np.asarray(pixel_xy, dtype=np.float64)
    cam_index = np.asarray(cam_index)
    n = pixel_xy.shape[0]
    origins = np.empty((n, 3))
    dirs = np.empty((n, 3))
    for i in range(n):
        c = int(cam_index[i])
        d = camera_directions(pixel_xy[i], cam_params[c], cam_dist[c], int(cam_model[c]))
        w = c2w[c, :, :3] @ d
        dirs[i] = w / np.linalg.norm(w)
        origins[i] = c2w[c, :, 3]
    return origins, dirs


def project_points_ref(points: np.ndarray, c2w, params, dist, model: int) -> np.ndarray:
    """instant-ngp ``pos_to_pixel``: world points ``[n, 3]`` -> continuous pixel coordinates ``[n, 2]``."""
    c2w = np.asarray(c2w, dtype=np.float64)
    local = np.linalg.solve(c2w[:, :3], (np.asarray(points, np.float64) - c2w[:, 3]).T).T
    uv = local[:, :2] / local[:, 2:3]
    uvd = distort(uv, dist, model)
    fx, fy, cx, cy = (float(x) for x in params)
    return np.stack([uvd[:, 0] * fx + cx, uvd[:, 1] * fy + cy], axis=-1)
