"""Float64 NumPy reference of the multiresolution hash encoding (tcnn semantics), forward and both backwards."""

from __future__ import annotations

import numpy as np

PRIMES = np.array([1, 2654435761, 805459861], dtype=np.uint64)
MASK32 = np.uint64(0xFFFFFFFF)


def corner_bits(n_dims: int) -> np.ndarray:
    """[2**d, d] 0/1 offsets of the cell corners, corner c has bit d = (c >> d) & 1."""
    c = np.arange(1 << n_dims)
    return np.stack([(c >> d) & 1 for d in range(n_dims)], axis=1)


def grid_indices(layout, level: int, corners: np.ndarray) -> np.ndarray:
    """Table entry (within the level) of integer corners ``[..., d]`` (int64, may be negative)."""
    u = corners.astype(np.int64).astype(np.uint64) & MASK32  # C++ (uint32)(int) cast
    res = np.uint64(int(layout.resolutions[level]))
    size = np.uint64(int(layout.level_sizes[level]))
    if layout.hashed[level]:
        idx = np.zeros(u.shape[:-1], dtype=np.uint64)
        for d in range(layout.n_dims):
            idx ^= (u[..., d] * PRIMES[d]) & MASK32
    else:
        idx = np.zeros(u.shape[:-1], dtype=np.uint64)
        stride = np.uint64(1)
        for d in range(layout.n_dims):
            idx = (idx + u[..., d] * stride) & MASK32
            stride = stride * res
    return (idx % size).astype(np.int64)


def _interp(layout, x: np.ndarray, level: int):
    scale = float(layout.scales[level])
    pos = x * scale + 0.5
    g = np.floor(pos)
    f = pos - g
    if layout.interpolation == "Smoothstep":
        w = f * f * (3 - 2 * f)
        dw = 6 * f * (1 - f) * scale
    else:
        w = f
        dw = np.full_like(f, scale)
    return g.astype(np.int64), w, dw


def encode(layout, x: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Forward: ``x`` [N, d] float64, ``params`` [n_params] -> [N, L*F] float64."""
    n, d = x.shape
    F = layout.n_features_per_level
    table = params.astype(np.float64).reshape(-1, F)
    out = np.zeros((n, layout.n_levels * F))
    bits = corner_bits(d)
    for lv in range(layout.n_levels):
        g, w, _ = _interp(layout, x, lv)
        for b in bits:
            idx = grid_indices(layout, lv, g + b) + int(layout.offsets[lv])
            wt = np.prod(np.where(b == 1, w, 1 - w), axis=1)
            out[:, lv * F : (lv + 1) * F] += wt[:, None] * table[idx]
    return out


def encode_backward(layout, x: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    """dL/dparams [n_params] for dL/dout ``grad_out`` [N, L*F]."""
    F = layout.n_features_per_level
    grad = np.zeros((layout.n_entries, F))
    bits = corner_bits(x.shape[1])
    for lv in range(layout.n_levels):
        g, w, _ = _interp(layout, x, lv)
        for b in bits:
            idx = grid_indices(layout, lv, g + b) + int(layout.offsets[lv])
            wt = np.prod(np.where(b == 1, w, 1 - w), axis=1)
            np.add.at(grad, idx, wt[:, None] * grad_out[:, lv * F : (lv + 1) * F])
    return grad.reshape(-1)


def encode_input_grad(layout, x: np.ndarray, params: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    """dL/dx [N, d] for dL/dout ``grad_out`` [N, L*F] (exact inside cells)."""
    n, d = x.shape
    F = layout.n_features_per_level
    table = params.astype(np.float64).reshape(-1, F)
    gx = np.zeros((n, d))
    bits = corner_bits(d)
    for lv in range(layout.n_levels):
        g, w, dw = _interp(layout, x, lv)
        go = grad_out[:, lv * F : (lv + 1) * F]
        for b in bits:
            idx = grid_indices(layout, lv, g + b) + int(layout.offsets[lv])
            dot = np.sum(go * table[idx], axis=1)
            factors = np.where(b == 1, w, 1 - w)
            for k in range(d):
                dfk = np.where(b[k] == 1, dw[:, k], -dw[:, k])
                others = np.prod(np.delete(factors, k, axis=1), axis=1)
                gx[:, k] += dfk * others * dot
    return gx
