"""Float64 NumPy reference of warp_kernels.nerf_glue (the per-sample glue of instant-ngp's NerfNetwork)."""

from __future__ import annotations

import numpy as np

__all__ = ["CLAMP", "positions_to_unit_cube_ref", "density_outputs_to_sigma_ref", "density_outputs_grad_ref",
           "weight_columns_ref"]

CLAMP = 15.0


def positions_to_unit_cube_ref(positions, lo, hi) -> np.ndarray:
    """``(p - lo) / (hi - lo)`` per axis."""
    p = np.asarray(positions, np.float64)
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    return (p - lo) / (hi - lo)


def density_outputs_to_sigma_ref(raw) -> np.ndarray:
    """``exp(min(raw[:, 0], 15))``."""
    return np.exp(np.minimum(np.asarray(raw, np.float64)[:, 0], CLAMP))


def density_outputs_grad_ref(grad_color_input, grad_sigma, raw) -> np.ndarray:
    """``grad_color_input[:, :D]`` plus ``grad_sigma * exp(clamp(raw_0, -15, 15))`` on column 0."""
    raw = np.asarray(raw, np.float64)
    out = np.array(np.asarray(grad_color_input, np.float64)[:, : raw.shape[1]])
    out[:, 0] += np.asarray(grad_sigma, np.float64) * np.exp(np.clip(raw[:, 0], -CLAMP, CLAMP))
    return out


def weight_columns_ref(values, weights) -> np.ndarray:
    """``values[:, j] * weights[j]``."""
    return np.asarray(values, np.float64) * np.asarray(weights, np.float64)[None, :]
