"""Float64 reference of warp_kernels.eikonal."""

from __future__ import annotations

import numpy as np

__all__ = ["eikonal_stencil_ref", "eikonal_loss_ref"]


def eikonal_stencil_ref(points, h):
    """``[6 M, 3]``: ``+x, -x, +y, -y, +z, -z`` neighbours of each point."""
    p = np.asarray(points, np.float64)
    offs = np.array([[h, 0, 0], [-h, 0, 0], [0, h, 0], [0, -h, 0], [0, 0, h], [0, 0, -h]])
    return (p[:, None, :] + offs[None]).reshape(-1, 3)


def eikonal_loss_ref(values, h, weight=1.0):
    """``(loss, d loss / d values [6 M])`` in float64."""
    v = np.asarray(values, np.float64).reshape(-1, 3, 2)
    g = (v[:, :, 0] - v[:, :, 1]) / (2 * h)
    n = np.linalg.norm(g, axis=1)
    m = v.shape[0]
    loss = weight * np.mean((n - 1) ** 2)
    dg = weight / m * 2 * (n - 1)[:, None] * g / np.where(n > 0, n, 1)[:, None]
    grad = np.stack([dg / (2 * h), -dg / (2 * h)], axis=2).reshape(-1)
    return loss, grad
