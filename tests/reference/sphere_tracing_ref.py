"""Float64 reference of warp_kernels.sphere_tracing: the same iteration as a plain NumPy loop."""

from __future__ import annotations

import numpy as np

from tests.reference.ray_marching_ref import ray_aabb_intersect

__all__ = ["sphere_trace_ref", "ray_sphere_ref", "pinhole_directions", "closest_approach"]


def sphere_trace_ref(origins, directions, sdf_fn, *, aabb=((0, 0, 0), (1, 1, 1)), max_steps=128, epsilon=1e-4,
                     step_scale=0.9, final_tolerance=16.0):
    """``(t [N], hit [N] bool)`` in float64; ``sdf_fn`` maps ``[M, 3]`` float64 points to ``[M]``."""
    o = np.asarray(origins, np.float64)
    d = np.asarray(directions, np.float64)
    n = o.shape[0]
    t = np.zeros(n)
    t_far = np.zeros(n)
    active = np.zeros(n, bool)
    for i in range(n):
        t_near, tf = ray_aabb_intersect(o[i], d[i], np.asarray(aabb[0], float), np.asarray(aabb[1], float))
        t[i] = max(t_near, 0.0)
        t_far[i] = tf
        active[i] = tf >= t[i]
    hit = np.zeros(n, bool)
    idx = np.flatnonzero(active)
    last = np.zeros(0)
    for _ in range(max_steps):
        if not idx.size:
            break
        v = np.asarray(sdf_fn(o[idx] + t[idx, None] * d[idx]), np.float64).reshape(-1)
        done = np.abs(v) < epsilon
        hit[idx[done]] = True
        t_new = t[idx] + step_scale * v
        alive = ~done & (t_new <= t_far[idx])
        t[idx[alive]] = t_new[alive]
        idx, last = idx[alive], v[alive]
    if idx.size:
        hit[idx[np.abs(last) < final_tolerance * epsilon]] = True
    return t, hit


def ray_sphere_ref(origins, directions, centre, radius):
    """Analytic first intersection ``(t [N], hit [N] bool)`` of unit-direction rays with a sphere (t >= 0)."""
    oc = np.asarray(origins, np.float64) - np.asarray(centre, np.float64)
    d = np.asarray(directions, np.float64)
    b = np.sum(oc * d, axis=1)
    c = np.sum(oc * oc, axis=1) - radius**2
    disc = b * b - c
    hit = disc >= 0
    t = np.where(hit, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    hit &= t >= 0
    return t, hit


def pinhole_directions(c2w, intrinsics):
    """Unit directions ``[H * W, 3]`` (row-major) through the pixel centres of a pinhole camera, ``c2w`` with
    OpenCV axes."""
    w, h = intrinsics.width, intrinsics.height
    u, v = np.meshgrid((np.arange(w) + 0.5 - intrinsics.cx) / intrinsics.fx,
                       (np.arange(h) + 0.5 - intrinsics.cy) / intrinsics.fy)
    d = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3) @ np.asarray(c2w, np.float64)[:, :3].T
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def closest_approach(origins, directions, centre):
    """Distance ``[N]`` from ``centre`` to each ray's line (unit directions): rays whose value is near a sphere's
    radius graze it."""
    oc = np.asarray(origins, np.float64) - np.asarray(centre, np.float64)
    b = np.sum(oc * directions, axis=1)
    return np.sqrt(np.maximum(np.sum(oc * oc, axis=1) - b * b, 0))
