"""Float64 NumPy reference of :mod:`warp_kernels.camera_refinement` and :mod:`warp_kernels.depth_supervision`."""

from __future__ import annotations

import numpy as np

__all__ = ["rotation_matrix", "apply_pose_corrections_ref", "camera_gradients_ref", "depth_targets_ref",
           "depth_l1_ref"]


def rotation_matrix(w) -> np.ndarray:
    """``exp([w]x)`` by the matrix exponential's series (not Rodrigues' closed form), float64 ``[3, 3]``."""
    w = np.asarray(w, np.float64)
    k = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
    out, term = np.eye(3), np.eye(3)
    for i in range(1, 30):
        term = term @ k / i
        out = out + term
    return out


def apply_pose_corrections_ref(base: np.ndarray, corr: np.ndarray, pivot=None, local: bool = False) -> np.ndarray:
    """``[n, 3, 4]`` corrected poses: ``R' = exp([w]x) R``, ``c' = p + exp([w]x) (c - p) + tau`` (``p = c`` without a
    pivot); with ``local``, ``w`` and ``tau`` are ``R w``, ``R tau`` of the given numbers."""
    base = np.asarray(base, np.float64)
    out = base.copy()
    for c in range(base.shape[0]):
        r = base[c, :, :3]
        w, tau = np.asarray(corr[c, :3], np.float64), np.asarray(corr[c, 3:], np.float64)
        if local:
            w, tau = r @ w, r @ tau
        e = rotation_matrix(w)
        out[c, :, :3] = e @ r
        p = base[c, :, 3] if pivot is None else np.asarray(pivot, np.float64)
        out[c, :, 3] = p + e @ (base[c, :, 3] - p) + tau
    return out


def camera_gradients_ref(packed_info, t_starts, grad_positions, directions, cam_index, cam_mask, n_cams,
                         grad_scale=(1.0, 1.0, 1.0)) -> np.ndarray:
    """``[n_cams, 6]`` sums of ``(d x sum t_i g_i, sum g_i)`` over each camera's rays (float64)."""
    out = np.zeros((n_cams, 6))
    g_all = np.asarray(grad_positions, np.float64) * np.asarray(grad_scale, np.float64)
    for r, (start, count) in enumerate(np.asarray(packed_info)):
        c = int(cam_index[r])
        if not cam_mask[c] or count == 0:
            continue
        g = g_all[start:start + count]
        t = np.asarray(t_starts, np.float64)[start:start + count]
        out[c, :3] += np.cross(np.asarray(directions[r], np.float64), (t[:, None] * g).sum(0))
        out[c, 3:] += g.sum(0)
    return out


def depth_targets_ref(depths, sizes, pixel_xy, cam_index, c2w, directions, depth_scale=1.0) -> np.ndarray:
    """Target ray distances ``z * scale / cos`` (0 where the depth is invalid), float64 ``[n]``."""
    out = np.zeros(len(pixel_xy))
    for r, (px, py) in enumerate(np.asarray(pixel_xy, np.float64)):
        c = int(cam_index[r])
        w, h = (int(v) for v in sizes[c])
        ix, iy = min(max(int(px), 0), w - 1), min(max(int(py), 0), h - 1)
        z = float(depths[c][iy * w + ix])
        f = np.asarray(c2w[c], np.float64)[:, 2]
        cos = float(np.dot(np.asarray(directions[r], np.float64), f / np.linalg.norm(f)))
        out[r] = z * depth_scale / cos if z > 0 and cos > 1e-6 else 0.0
    return out


def depth_l1_ref(rendered, targets, weight=1.0, n_normalize=None) -> tuple[np.ndarray, float]:
    """``(dL/dD [n], L)`` of ``weight / n * sum_valid |D - t|``."""
    d = np.asarray(rendered, np.float64)
    t = np.asarray(targets, np.float64)
    n = len(d) if n_normalize is None else n_normalize
    valid = t > 0
    grad = np.where(valid, np.sign(d - t), 0.0) * weight / n
    return grad, float(np.abs(d - t)[valid].sum() * weight / n)
