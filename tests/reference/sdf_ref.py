"""Float64 NumPy references for :mod:`warp_kernels.sdf`: analytic signed distances and tessellation bounds."""

from __future__ import annotations

import numpy as np

__all__ = ["sphere_sdf", "box_sdf", "inscribed_mesh_gap"]


def sphere_sdf(points: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance to a sphere: ``[N, 3] -> [N]`` (negative inside)."""
    return np.linalg.norm(np.asarray(points, np.float64) - center, axis=-1) - radius


def box_sdf(points: np.ndarray, center: np.ndarray, half_extents: np.ndarray) -> np.ndarray:
    """Exact signed distance to an axis-aligned box: ``[N, 3] -> [N]`` (negative inside)."""
    q = np.abs(np.asarray(points, np.float64) - center) - half_extents
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
    inside = np.minimum(q.max(axis=-1), 0.0)
    return outside + inside


def inscribed_mesh_gap(vertices: np.ndarray, faces: np.ndarray, center: np.ndarray, radius: float) -> float:
    """Largest gap between a sphere and a mesh inscribed in it: ``radius - min face-plane distance``.

    For a convex mesh whose vertices lie on the sphere, the mesh's distance field differs from the sphere's by
    at most this much everywhere.
    """
    tri = np.asarray(vertices, np.float64)[faces] - center
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return float(radius - np.abs(np.einsum("ij,ij->i", n, tri[:, 0])).min())
