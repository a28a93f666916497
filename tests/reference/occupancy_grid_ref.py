"""Float64 NumPy reference of warp_kernels.occupancy_grid (instant-ngp's cascaded density grid).

Written independently of the kernels where possible: the mips use ``np.frexp`` like instant-ngp, and the
bitfield is built on dense ``[128, 128, 128]`` boolean cubes (threshold, 2x2x2 max-pool, Morton packing).
The hash-based choices (RNG, instant-ngp's cell hash) are reproduced bit for bit in uint32 arithmetic.
"""

from __future__ import annotations

import math

import numpy as np

from tests.reference.random_ref import rand01

__all__ = [
    "GRIDSIZE",
    "N_CELLS",
    "MIN_CONE_STEPSIZE",
    "MAX_CONE_STEPSIZE",
    "MIN_OPTICAL_THICKNESS",
    "morton3d",
    "morton3d_invert",
    "cascaded_grid_idx_at",
    "grid_occupied_at",
    "mip_from_pos",
    "mip_from_dt",
    "cell_position",
    "generate_grid_samples_ref",
    "generate_all_cell_samples_ref",
    "update_occupancy_grid_ref",
    "compute_occupancy_bitfield_ref",
    "bitfield_to_cubes",
    "cubes_to_bitfield",
]

GRIDSIZE = 128
N_CELLS = GRIDSIZE**3
MIN_CONE_STEPSIZE = math.sqrt(3.0) / 1024.0
MAX_CONE_STEPSIZE = math.sqrt(3.0)
MIN_OPTICAL_THICKNESS = 0.01

_U32 = np.uint32


def morton3d(x, y, z) -> np.ndarray:
    """Morton index, x in bit 0 (coordinates < 1024)."""
    out = np.zeros(np.broadcast(x, y, z).shape, dtype=np.int64)
    x, y, z = (np.asarray(v, dtype=np.int64) for v in (x, y, z))
    for b in range(10):
        out |= ((x >> b) & 1) << (3 * b)
        out |= ((y >> b) & 1) << (3 * b + 1)
        out |= ((z >> b) & 1) << (3 * b + 2)
    return out


def morton3d_invert(m) -> np.ndarray:
    m = np.asarray(m, dtype=np.int64)
    out = np.zeros(m.shape, dtype=np.int64)
    for b in range(10):
        out |= ((m >> (3 * b)) & 1) << b
    return out


def cascaded_grid_idx_at(pos, mip, dtype=np.float64) -> np.ndarray:
    """Morton index of the cell of cascade ``mip`` containing ``pos`` [n, 3], or -1 outside.

    ``dtype=np.float32`` repeats the kernel's float32 arithmetic step by step (exact checks of kernel output).
    """
    pos = np.asarray(pos, dtype=dtype)
    mip = np.asarray(mip, dtype=np.int64)
    scale = (1.0 / (2.0**mip)).astype(dtype)
    half = dtype(0.5)
    g = np.floor(((pos - half) * scale[..., None] + half) * dtype(GRIDSIZE))
    inside = np.all((g >= 0) & (g < GRIDSIZE), axis=-1)
    gi = np.where(inside[..., None], g, 0).astype(np.int64)
    return np.where(inside, morton3d(gi[..., 0], gi[..., 1], gi[..., 2]), -1)


def grid_occupied_at(pos, bitfield: np.ndarray, mip, dtype=np.float64) -> np.ndarray:
    idx = cascaded_grid_idx_at(pos, mip, dtype)
    mip = np.broadcast_to(np.asarray(mip, dtype=np.int64), idx.shape)
    safe = np.maximum(idx, 0)
    byte = bitfield[mip * (N_CELLS // 8) + (safe >> 3)].astype(np.int64)
    return (idx >= 0) & (((byte >> (safe & 7)) & 1) == 1)


def mip_from_pos(pos, max_cascade: int) -> np.ndarray:
    """instant-ngp: ``clamp(frexp_exponent(max|pos - 0.5|) + 1, 0, max_cascade)`` (exact centre -> 0)."""
    pos = np.asarray(pos, dtype=np.float64)
    maxval = np.max(np.abs(pos - 0.5), axis=-1)
    _, e = np.frexp(maxval)
    mip = np.clip(e + 1, 0, max_cascade)
    return np.where(maxval == 0.0, 0, mip).astype(np.int64)


def mip_from_dt(dt, pos, max_cascade: int) -> np.ndarray:
    mip = mip_from_pos(pos, max_cascade)
    d = np.asarray(dt, dtype=np.float64) * (2 * GRIDSIZE)
    _, e = np.frexp(d)
    return np.where(d < 1.0, mip, np.minimum(np.maximum(mip, e), max_cascade)).astype(np.int64)


def cell_position(level, idx, u) -> np.ndarray:
    """Position of offset ``u`` [n, 3] in [0,1)^3 inside Morton cell ``idx`` of cascade ``level``."""
    idx = np.asarray(idx, dtype=np.int64)
    xyz = np.stack([morton3d_invert(idx), morton3d_invert(idx >> 1), morton3d_invert(idx >> 2)], axis=-1)
    s = (2.0 ** np.asarray(level, dtype=np.float64))[..., None]
    return ((xyz + np.asarray(u, dtype=np.float64)) / GRIDSIZE - 0.5) * s + 0.5


def _choose_cells(grid, n_cascades, n, step, seed, stream, thresh, jitter):
    i = np.arange(n, dtype=np.int64)
    base = (4 * i).astype(_U32)
    # float32 product as in the kernel (bit-identical level choice)
    level = (rand01(seed, stream, base).astype(np.float32) * np.float32(n_cascades)).astype(
        np.int64
    ) % n_cascades
    with np.errstate(over="ignore"):
        h0 = (i.astype(_U32) + _U32(step & 0xFFFFFFFF) * _U32(n)) * _U32(56924617) + _U32(96925573)
        idx = np.zeros(n, dtype=np.int64)
        done = np.zeros(n, dtype=bool)
        for j in range(10):
            cand = ((h0 + _U32(j) * _U32(19349663)) % _U32(N_CELLS)).astype(np.int64)
            idx = np.where(done, idx, cand)
            done |= grid[level * N_CELLS + idx] > thresh
    if jitter:
        u = np.stack([rand01(seed, stream, base + _U32(k)) for k in (1, 2, 3)], axis=-1)
    else:
        u = np.full((n, 3), 0.5)
    return cell_position(level, idx, u), level * N_CELLS + idx


def generate_grid_samples_ref(grid, n_cascades, n_uniform, n_nonuniform, step, seed, jitter=True):
    """Reference of generate_grid_samples: ``(positions [M, 3] float64, cell_indices [M] int64)``."""
    grid = np.asarray(grid, dtype=np.float64)
    p0, c0 = _choose_cells(grid, n_cascades, n_uniform, step, seed, 1, -0.01, jitter)
    p1, c1 = _choose_cells(grid, n_cascades, n_nonuniform, step, seed, 2, MIN_OPTICAL_THICKNESS, jitter)
    return np.concatenate([p0, p1]), np.concatenate([c0, c1])


def generate_all_cell_samples_ref(n_cascades, seed, jitter=True):
    i = np.arange(n_cascades * N_CELLS, dtype=np.int64)
    if jitter:
        base = (3 * i).astype(_U32)
        u = np.stack([rand01(seed, 3, base + _U32(k)) for k in range(3)], axis=-1)
    else:
        u = np.full((i.size, 3), 0.5)
    return cell_position(i // N_CELLS, i % N_CELLS, u), i


def update_occupancy_grid_ref(grid, cell_indices, densities, decay=0.95) -> np.ndarray:
    """``max(prev * decay, max sigma * MIN_CONE_STEPSIZE)`` per unmasked cell; masked (< 0) cells
    unchanged."""
    grid = np.asarray(grid, dtype=np.float64).copy()
    new = np.zeros_like(grid)
    idx = np.asarray(cell_indices, dtype=np.int64)
    sig = np.asarray(densities, dtype=np.float64)
    ok = (idx >= 0) & (idx < grid.size) & (sig > 0)
    np.maximum.at(new, idx[ok], sig[ok] * MIN_CONE_STEPSIZE)
    return np.where(grid < 0, grid, np.maximum(grid * decay, new))


def bitfield_to_cubes(bitfield: np.ndarray, n_cascades: int) -> np.ndarray:
    """uint8 bitfield -> boolean ``[K, 128, 128, 128]`` indexed ``[k, x, y, z]``."""
    bits = np.unpackbits(
        np.asarray(bitfield, dtype=np.uint8).reshape(n_cascades, -1), axis=1, bitorder="little"
    )
    x, y, z = np.meshgrid(*(np.arange(GRIDSIZE),) * 3, indexing="ij")
    m = morton3d(x, y, z)
    return bits[:, m].astype(bool)


def cubes_to_bitfield(cubes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`bitfield_to_cubes`."""
    k = cubes.shape[0]
    x, y, z = np.meshgrid(*(np.arange(GRIDSIZE),) * 3, indexing="ij")
    m = morton3d(x, y, z)
    flat = np.zeros((k, N_CELLS), dtype=np.uint8)
    flat[:, m] = cubes.astype(np.uint8)
    return np.packbits(flat, axis=1, bitorder="little").reshape(-1)


def compute_occupancy_bitfield_ref(grid, n_cascades: int) -> tuple[np.ndarray, float]:
    """Reference bitfield and cascade-0 mean (threshold, then 2x2x2 max-pool into each coarser cascade)."""
    grid = np.asarray(grid, dtype=np.float64).reshape(n_cascades, N_CELLS)
    mean = float(np.maximum(grid[0], 0.0).mean())
    thresh = min(MIN_OPTICAL_THICKNESS, mean)
    x, y, z = np.meshgrid(*(np.arange(GRIDSIZE),) * 3, indexing="ij")
    m = morton3d(x, y, z)
    cubes = grid[:, m] > thresh
    h = GRIDSIZE // 2
    q = GRIDSIZE // 4
    for k in range(1, n_cascades):
        pooled = cubes[k - 1].reshape(h, 2, h, 2, h, 2).any(axis=(1, 3, 5))
        cubes[k, q : q + h, q : q + h, q : q + h] |= pooled
    return cubes_to_bitfield(cubes), mean


def mark_untrained_cells(grid: np.ndarray, n_cascades: int, c2w: np.ndarray, cam_params: np.ndarray,
                         sizes: np.ndarray) -> np.ndarray:
    """Float64 reference of :func:`warp_kernels.occupancy_grid.mark_untrained_cells` (returns a new grid)."""
    out = grid.astype(np.float64).copy()
    n = 128**3
    idx = np.arange(n)

    def inv(m):
        m = m & 0x09249249
        m = (m ^ (m >> 2)) & 0x030C30C3
        m = (m ^ (m >> 4)) & 0x0300F00F
        m = (m ^ (m >> 8)) & 0xFF0000FF
        m = (m ^ (m >> 16)) & 0x000003FF
        return m

    xyz = np.stack([inv(idx), inv(idx >> 1), inv(idx >> 2)], axis=1).astype(np.float64)
    for level in range(n_cascades):
        s = float(1 << level)
        p = ((xyz + 0.5) / 128 - 0.5) * s + 0.5
        radius = 0.8660254 * s / 128
        seen = np.zeros(n, dtype=bool)
        for c in range(len(c2w)):
            rot, centre = c2w[c, :, :3].astype(np.float64), c2w[c, :, 3].astype(np.float64)
            v = (p - centre) @ rot  # camera-space coordinates (R^T (p - c))
            fx, fy, cx, cy = cam_params[c].astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                u = fx * v[:, 0] / v[:, 2] + cx
                w = fy * v[:, 1] / v[:, 2] + cy
                mx, my = fx * radius / v[:, 2], fy * radius / v[:, 2]
            ok = (v[:, 2] > radius) & (u >= -mx) & (u <= sizes[c, 0] + mx) & (w >= -my) & (w <= sizes[c, 1] + my)
            seen |= ok
        out[level * n:(level + 1) * n][~seen] = -1.0
    return out
