"""Cascaded occupancy (density) grid of instant-ngp: cell indexing, grid-update samples, update and bitfield.

Layout (identical to instant-ngp, ``src/testbed_nerf.cu`` / ``nerf_device.cuh``):

* ``n_cascades`` = K cascades; cascade ``k`` is the cube of half-size ``2**(k-1)`` around ``(0.5, 0.5, 0.5)``
  (cascade 0 is ``[0, 1]^3``), each split into ``NERF_GRIDSIZE**3 = 128**3`` cells.
* ``density_grid``: float32 ``[K * 128**3]``, cascade-major; inside a cascade cells are in Morton (Z-curve)
  order, ``idx = morton3d(x, y, z)`` with the x bit lowest. A value is the optical thickness of the cell's
  density over the smallest step, ``sigma * MIN_CONE_STEPSIZE``. Negative values mark cells that must stay
  empty (instant-ngp's "never seen by a camera" mask); updates keep them.
* ``bitfield``: uint8 ``[K * 128**3 / 8]``; cell ``idx`` of cascade ``k`` is bit ``idx % 8`` of byte
  ``k * 128**3 / 8 + idx // 8``, so one byte is a 2x2x2 block of cells.

An update round (instant-ngp ``Testbed::update_density_grid_nerf``) is:

1. :func:`generate_grid_samples` (or :func:`generate_all_cell_samples` during warm-up): jittered positions
   inside chosen cells plus the cells' global indices;
2. the caller evaluates densities at those positions (an array, or a callback via
   :func:`refresh_occupancy_grid`);
3. :func:`update_occupancy_grid`: ``grid = max(grid * decay, sigma * MIN_CONE_STEPSIZE)`` per cell (decay
   first, then the max over all samples that fell in the cell; masked cells unchanged);
4. :func:`compute_occupancy_bitfield`: ``mean`` of cascade 0 (negative values count as 0), threshold
   ``min(NERF_MIN_OPTICAL_THICKNESS, mean)``, then coarse cascades OR-pooled from finer ones.

Random numbers come from a counter-based PCG hash (:func:`warp_kernels.random.rand01`) of
``(seed, stream, counter)``, so results are identical on CPU and CUDA and reproducible by the NumPy reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import warp as wp

from .compaction import gather_rows
from .device import KernelArgumentError, check_array, common_device, resolve_device
from .parallel import launch_split
from .random import rand01

__all__ = [
    "NERF_GRIDSIZE",
    "NERF_GRID_N_CELLS",
    "NERF_CASCADES",
    "MIN_CONE_STEPSIZE",
    "MAX_CONE_STEPSIZE",
    "NERF_MIN_OPTICAL_THICKNESS",
    "DEFAULT_DECAY",
    "STREAM_GRID_UNIFORM",
    "STREAM_GRID_NONUNIFORM",
    "STREAM_GRID_ALL_CELLS",
    "n_cascades_for_aabb_scale",
    "morton3d",
    "morton3d_invert",
    "cascaded_grid_idx_at",
    "grid_occupied_at",
    "mip_from_pos",
    "mip_from_dt",
    "create_density_grid",
    "create_bitfield",
    "grid_update_sample_counts",
    "generate_grid_samples",
    "generate_all_cell_samples",
    "update_occupancy_grid",
    "compute_occupancy_bitfield",
    "refresh_occupancy_grid",
    "mark_untrained_cells",
    "grid_cell_indices",
]

#: Cells per side of one cascade.
NERF_GRIDSIZE = 128
#: Cells per cascade.
NERF_GRID_N_CELLS = NERF_GRIDSIZE**3
#: instant-ngp's compile-time cascade count; only used for the largest cone step (MAX_CONE_STEPSIZE).
NERF_CASCADES = 8
#: Smallest ray-marching step: sqrt(3) / 1024 (the unit cube's diagonal in 1024 steps).
MIN_CONE_STEPSIZE = math.sqrt(3.0) / 1024.0
#: Largest ray-marching step: the diagonal of a cell of cascade NERF_CASCADES-1 (= sqrt(3)).
MAX_CONE_STEPSIZE = MIN_CONE_STEPSIZE * (1 << (NERF_CASCADES - 1)) * 1024 / NERF_GRIDSIZE
#: Occupancy threshold cap (instant-ngp NERF_MIN_OPTICAL_THICKNESS).
NERF_MIN_OPTICAL_THICKNESS = 0.01
#: Default grid decay per update (instant-ngp ``density_grid_decay``).
DEFAULT_DECAY = 0.95

_GRIDSIZE = wp.constant(NERF_GRIDSIZE)
_N_CELLS = wp.constant(NERF_GRID_N_CELLS)
_BYTES_PER_CASCADE = wp.constant(NERF_GRID_N_CELLS // 8)
_MIN_STEP = wp.constant(MIN_CONE_STEPSIZE)
_MIN_OPTICAL_THICKNESS = wp.constant(NERF_MIN_OPTICAL_THICKNESS)
# Cell-choice hash of instant-ngp's generate_grid_samples_nerf_nonuniform (uint32 arithmetic).
_CELL_HASH_A = wp.constant(wp.uint32(56924617))
_CELL_HASH_B = wp.constant(wp.uint32(19349663))
_CELL_HASH_C = wp.constant(wp.uint32(96925573))
#: Attempts per sample to find a cell above the threshold (instant-ngp uses 10).
_CELL_TRIES = wp.constant(10)
_MEAN_CHUNK = 512

# RNG streams (the ``stream`` argument of rand01) used in this package.
STREAM_GRID_UNIFORM = 1
STREAM_GRID_NONUNIFORM = 2
STREAM_GRID_ALL_CELLS = 3


def n_cascades_for_aabb_scale(aabb_scale: float) -> int:
    """Number of cascades K for instant-ngp's ``aabb_scale`` (smallest K with ``2**(K-1) >= aabb_scale``)."""
    if not aabb_scale > 0:
        raise KernelArgumentError(f"aabb_scale must be > 0, got {aabb_scale}")
    k = 0
    while (1 << k) < aabb_scale:
        k += 1
    return k + 1


# ----------------------------------------------------------------------------------------------------------
# Device functions
# ----------------------------------------------------------------------------------------------------------


@wp.func
def morton3d(x: int, y: int, z: int) -> int:
    """Morton index of cell ``(x, y, z)`` in [0, 128)^3: bit b of x goes to bit 3b, y to 3b+1, z to 3b+2."""
    r = wp.int32(0)
    for b in range(7):
        r = (
            r
            | (((x >> b) & 1) << (3 * b))
            | (((y >> b) & 1) << (3 * b + 1))
            | (((z >> b) & 1) << (3 * b + 2))
        )
    return r


@wp.func
def morton3d_invert(m: int) -> int:
    """Gather bits 0, 3, 6, ... of ``m``: ``x = inv(m)``, ``y = inv(m >> 1)``, ``z = inv(m >> 2)``."""
    r = wp.int32(0)
    for b in range(7):
        r = r | (((m >> (3 * b)) & 1) << b)
    return r


@wp.func
def cascaded_grid_idx_at(pos: wp.vec3, mip: int) -> int:
    """Morton index of the cell of cascade ``mip`` containing ``pos``, or -1 outside that cascade.

    As instant-ngp's ``cascaded_grid_idx_at`` except that coordinates are floored (instant-ngp truncates
    toward zero, which also maps positions less than one cell below the cascade onto cell 0).
    """
    scale = 1.0 / float(1 << mip)
    gx = wp.floor(((pos[0] - 0.5) * scale + 0.5) * float(_GRIDSIZE))
    gy = wp.floor(((pos[1] - 0.5) * scale + 0.5) * float(_GRIDSIZE))
    gz = wp.floor(((pos[2] - 0.5) * scale + 0.5) * float(_GRIDSIZE))
    lim = float(_GRIDSIZE)
    # written so that NaN positions also land outside
    if not (gx >= 0.0 and gx < lim and gy >= 0.0 and gy < lim and gz >= 0.0 and gz < lim):
        return -1
    return morton3d(int(gx), int(gy), int(gz))


@wp.func
def grid_occupied_at(pos: wp.vec3, bitfield: wp.array(dtype=wp.uint8), mip: int) -> bool:
    """True when the bitfield marks the cell of cascade ``mip`` around ``pos`` occupied (False outside)."""
    idx = cascaded_grid_idx_at(pos, mip)
    if idx < 0:
        return False
    byte = int(bitfield[mip * _BYTES_PER_CASCADE + (idx >> 3)])
    return ((byte >> (idx & 7)) & 1) != 0


@wp.func
def mip_from_pos(pos: wp.vec3, max_cascade: int) -> int:
    """Finest cascade containing ``pos``: smallest k with ``max|pos - 0.5| < 2**(k-1)``, clamped to
    max_cascade.

    Equals instant-ngp's frexp-based ``mip_from_pos`` (exponent + 1, clamped) for every nonzero extent; the
    exact centre maps to 0 (instant-ngp: 1). Comparisons with powers of two keep it exact.
    """
    d = pos - wp.vec3(0.5)
    maxval = wp.max(wp.max(wp.abs(d[0]), wp.abs(d[1])), wp.abs(d[2]))
    mip = wp.int32(0)
    thresh = wp.float32(0.5)
    while mip < max_cascade and maxval >= thresh:
        mip += 1
        thresh = thresh * 2.0
    return mip


@wp.func
def mip_from_dt(dt: float, pos: wp.vec3, max_cascade: int) -> int:
    """Cascade for a step ``dt`` at ``pos``: ``max(mip_from_pos, e)``, clamped; e = exponent of ``dt*256``.

    instant-ngp ``mip_from_dt``: steps shorter than half a cascade-0 cell (``dt * 2 * 128 < 1``) use
    ``mip_from_pos``; longer steps look the occupancy up in a coarser cascade, whose cells are about
    ``2 * dt`` wide.
    """
    mip = mip_from_pos(pos, max_cascade)
    d = dt * float(2 * _GRIDSIZE)
    if not (d >= 1.0):
        return mip
    e = wp.int32(1)
    thresh = wp.float32(2.0)
    while e < max_cascade and d >= thresh:
        e += 1
        thresh = thresh * 2.0
    return wp.min(wp.max(mip, e), max_cascade)


@wp.func
def _cell_position(level: int, idx: int, u: wp.vec3) -> wp.vec3:
    """Position of offset ``u`` in [0,1)^3 inside cell ``idx`` (Morton) of cascade ``level``."""
    x = float(morton3d_invert(idx))
    y = float(morton3d_invert(idx >> 1))
    z = float(morton3d_invert(idx >> 2))
    s = float(1 << level)
    inv = 1.0 / float(_GRIDSIZE)
    return wp.vec3(
        ((x + u[0]) * inv - 0.5) * s + 0.5,
        ((y + u[1]) * inv - 0.5) * s + 0.5,
        ((z + u[2]) * inv - 0.5) * s + 0.5,
    )


# ----------------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------------


@wp.kernel
def _generate_samples_kernel(
    offset: int,
    n: int,
    step: wp.uint32,
    seed: wp.uint32,
    stream: wp.uint32,
    thresh: float,
    n_cascades: int,
    jitter: int,
    grid: wp.array(dtype=float),
    out_offset: int,
    positions: wp.array(dtype=wp.vec3),
    indices: wp.array(dtype=wp.int32),
):
    i = wp.tid() + offset
    base = wp.uint32(4) * wp.uint32(i)
    level = int(rand01(seed, stream, base) * float(n_cascades)) % n_cascades
    # instant-ngp: up to 10 hashed candidates; keep the first above `thresh` (else the last one tried)
    h0 = (wp.uint32(i) + step * wp.uint32(n)) * _CELL_HASH_A + _CELL_HASH_C
    idx = wp.int32(0)
    for j in range(_CELL_TRIES):
        idx = int((h0 + wp.uint32(j) * _CELL_HASH_B) % wp.uint32(_N_CELLS))
        if grid[level * _N_CELLS + idx] > thresh:
            break
    u = wp.vec3(0.5)
    if jitter != 0:
        u = wp.vec3(
            rand01(seed, stream, base + wp.uint32(1)),
            rand01(seed, stream, base + wp.uint32(2)),
            rand01(seed, stream, base + wp.uint32(3)),
        )
    positions[out_offset + i] = _cell_position(level, idx, u)
    indices[out_offset + i] = wp.int32(level * _N_CELLS + idx)


@wp.kernel
def _all_cells_kernel(
    offset: int,
    seed: wp.uint32,
    stream: wp.uint32,
    jitter: int,
    positions: wp.array(dtype=wp.vec3),
    indices: wp.array(dtype=wp.int32),
):
    i = wp.tid() + offset
    level = i / _N_CELLS
    idx = i - level * _N_CELLS
    u = wp.vec3(0.5)
    if jitter != 0:
        base = wp.uint32(3) * wp.uint32(i)
        u = wp.vec3(
            rand01(seed, stream, base),
            rand01(seed, stream, base + wp.uint32(1)),
            rand01(seed, stream, base + wp.uint32(2)),
        )
    positions[i] = _cell_position(level, idx, u)
    indices[i] = wp.int32(i)


@wp.kernel
def _iota_kernel(offset: int, out: wp.array(dtype=wp.int32)):
    i = wp.tid() + offset
    out[i] = wp.int32(i)


def _sort_by_cell(positions: wp.array, indices: wp.array) -> tuple[wp.array, wp.array]:
    """The samples ordered by global cell index (a stable radix sort; positions gathered along)."""
    n, dev = indices.shape[0], indices.device
    keys = wp.empty(2 * n, dtype=wp.int32, device=dev)  # radix_sort_pairs needs 2n of scratch
    order = wp.empty(2 * n, dtype=wp.int32, device=dev)
    wp.copy(keys, indices, count=n)
    launch_split(_iota_kernel, n, [order], dev)
    wp.utils.radix_sort_pairs(keys, order, n)
    return gather_rows(positions, order[:n]), keys[:n]


@wp.kernel
def _decay_kernel(offset: int, decay: float, grid: wp.array(dtype=float)):
    i = wp.tid() + offset
    v = grid[i]
    if v > 0.0:
        grid[i] = v * decay


@wp.kernel
def _splat_max_kernel(
    indices: wp.array(dtype=wp.int32),
    densities: wp.array(dtype=float),
    n_cells_total: int,
    grid: wp.array(dtype=float),
):
    i = wp.tid()
    c = int(indices[i])
    if c < 0 or c >= n_cells_total:
        return
    # masked (negative) cells are never written, so reading them here does not race
    if grid[c] < 0.0:
        return
    sigma = densities[i]
    if not (sigma > 0.0):  # also drops NaN
        return
    wp.atomic_max(grid, c, sigma * _MIN_STEP)


@wp.kernel
def _partial_mean_kernel(
    offset: int, grid: wp.array(dtype=float), chunk: int, partials: wp.array(dtype=wp.float64)
):
    c = wp.tid() + offset
    acc = wp.float64(0.0)
    for k in range(chunk):
        acc += wp.float64(wp.max(grid[c * chunk + k], 0.0))
    partials[c] = acc


@wp.kernel
def _final_mean_kernel(partials: wp.array(dtype=wp.float64), n_partials: int, mean: wp.array(dtype=float)):
    acc = wp.float64(0.0)
    for k in range(n_partials):
        acc += partials[k]
    mean[0] = wp.float32(acc / wp.float64(_N_CELLS))


@wp.kernel
def _grid_to_bitfield_kernel(
    offset: int, grid: wp.array(dtype=float), mean: wp.array(dtype=float), bitfield: wp.array(dtype=wp.uint8)
):
    i = wp.tid() + offset
    thresh = wp.min(_MIN_OPTICAL_THICKNESS, mean[0])
    bits = wp.int32(0)
    for j in range(8):
        if grid[i * 8 + j] > thresh:
            bits = bits | (1 << j)
    bitfield[i] = wp.uint8(bits)


@wp.kernel
def _bitfield_max_pool_kernel(offset: int, level: int, bitfield: wp.array(dtype=wp.uint8)):
    # thread i: bytes 8i..8i+7 of cascade level-1 (a 4x4x4 block of cells) -> 8 cells (one byte) of `level`
    i = wp.tid() + offset
    prev_base = (level - 1) * _BYTES_PER_CASCADE
    bits = wp.int32(0)
    for j in range(8):
        if int(bitfield[prev_base + i * 8 + j]) != 0:
            bits = bits | (1 << j)
    q = _GRIDSIZE / 8
    x = morton3d_invert(i) + q
    y = morton3d_invert(i >> 1) + q
    z = morton3d_invert(i >> 2) + q
    dst = level * _BYTES_PER_CASCADE + morton3d(x, y, z)
    bitfield[dst] = wp.uint8(int(bitfield[dst]) | bits)


@wp.kernel
def _cell_indices_kernel(offset: int, positions: wp.array2d(dtype=float), max_cascade: int,
                         out: wp.array(dtype=wp.int32)):
    i = wp.tid() + offset
    pos = wp.vec3(positions[i, 0], positions[i, 1], positions[i, 2])
    mip = mip_from_pos(pos, max_cascade)
    idx = cascaded_grid_idx_at(pos, mip)
    if idx < 0:
        out[i] = -1
    else:
        out[i] = mip * _N_CELLS + idx


# ----------------------------------------------------------------------------------------------------------
# Launch functions
# ----------------------------------------------------------------------------------------------------------


def _check_n_cascades(n_cascades: int) -> None:
    if not (isinstance(n_cascades, (int, np.integer)) and 1 <= n_cascades <= NERF_CASCADES):
        raise KernelArgumentError(f"n_cascades must be an int in [1, {NERF_CASCADES}], got {n_cascades!r}")


def _check_grid(density_grid: wp.array, n_cascades: int, device: wp.context.Device) -> None:
    _check_n_cascades(n_cascades)
    check_array(
        density_grid, "density_grid", dtype=wp.float32, shape=(n_cascades * NERF_GRID_N_CELLS,), device=device
    )


def _check_bitfield(bitfield: wp.array, n_cascades: int, device: wp.context.Device) -> None:
    check_array(
        bitfield, "bitfield", dtype=wp.uint8, shape=(n_cascades * NERF_GRID_N_CELLS // 8,), device=device
    )


def _u32(v: int) -> int:
    return int(v) & 0xFFFFFFFF


def grid_cell_indices(positions: wp.array, *, n_cascades: int, out: wp.array | None = None,
                      device: wp.context.Devicelike = None) -> wp.array:
    """Global cell index (``cascade * 128**3 + morton``) of the finest cascade holding each position, -1 outside
    every cascade (or NaN).

    Args:
        positions: float32 ``[n, 3]`` internal-space positions.
        n_cascades: number of cascades K.
        out: optional int32 ``[n]`` output.
        device: ``None`` = the arrays' device.
    """
    dev = common_device([positions, out], device)
    _check_n_cascades(n_cascades)
    check_array(positions, "positions", dtype=wp.float32, shape=(None, 3), device=dev)
    n = positions.shape[0]
    if out is None:
        out = wp.empty(n, dtype=wp.int32, device=dev)
    else:
        check_array(out, "out", dtype=wp.int32, shape=(n,), device=dev)
    if n:
        launch_split(_cell_indices_kernel, n, [positions, int(n_cascades) - 1, out], dev)
    return out


def create_density_grid(n_cascades: int, *, device: wp.context.Devicelike = None) -> wp.array:
    """Zero density grid, float32 ``[n_cascades * 128**3]`` (Morton order per cascade)."""
    _check_n_cascades(n_cascades)
    return wp.zeros(n_cascades * NERF_GRID_N_CELLS, dtype=wp.float32, device=resolve_device(device))


def create_bitfield(
    n_cascades: int, *, occupied: bool = False, device: wp.context.Devicelike = None
) -> wp.array:
    """Occupancy bitfield uint8 ``[n_cascades * 128**3 / 8]``, all cells empty (or all occupied)."""
    _check_n_cascades(n_cascades)
    n = n_cascades * NERF_GRID_N_CELLS // 8
    dev = resolve_device(device)
    if occupied:
        return wp.full(n, value=255, dtype=wp.uint8, device=dev)
    return wp.zeros(n, dtype=wp.uint8, device=dev)


def grid_update_sample_counts(n_cascades: int, *, warmup: bool, fraction: float = 0.25) -> tuple[int, int]:
    """``(n_uniform, n_nonuniform)`` samples of one update (instant-ngp ``Testbed::training_prep_nerf``).

    Warm-up (training step < 256): ``128**3 * K`` uniform samples, no occupied-biased ones; afterwards
    ``128**3 * K * fraction`` of each (instant-ngp: ``fraction`` 1/4). (Our warm-up path,
    :func:`generate_all_cell_samples`, visits every cell once.)
    """
    _check_n_cascades(n_cascades)
    if warmup:
        return NERF_GRID_N_CELLS * n_cascades, 0
    if not 0 < fraction <= 1:
        raise KernelArgumentError(f"fraction must be in (0, 1], got {fraction}")
    n = max(1, int(NERF_GRID_N_CELLS * n_cascades * fraction))
    return n, n


def generate_grid_samples(
    density_grid: wp.array,
    *,
    n_cascades: int,
    n_uniform: int,
    n_nonuniform: int,
    step: int,
    seed: int,
    jitter: bool = True,
    device: wp.context.Devicelike = None,
) -> tuple[wp.array, wp.array]:
    """Sample positions for a grid update (instant-ngp ``generate_grid_samples_nerf_nonuniform``).

    Each sample picks a cascade uniformly at random, then tries up to 10 hashed cells
    ``((i + step*n) * 56924617 + j * 19349663 + 96925573) mod 128**3`` and keeps the first whose grid value
    exceeds
    the threshold (the last one tried otherwise): ``-0.01`` for the ``n_uniform`` samples (any cell that is
    not
    masked) and ``NERF_MIN_OPTICAL_THICKNESS`` for the ``n_nonuniform`` samples (currently occupied cells).
    The
    position is uniform inside the cell (or its centre when ``jitter`` is False). ``step`` is the update
    counter (instant-ngp ``density_grid_ema_step``): it moves the hashed cells between updates.

    Args:
        density_grid: float32 ``[n_cascades * 128**3]``.
        n_cascades: number of cascades K (1..8).
        n_uniform: samples over all unmasked cells.
        n_nonuniform: samples biased to occupied cells.
        step: update counter (>= 0).
        seed: RNG seed for the cascade choice and the jitter.
        jitter: random offset inside the cell (True) or the cell centre (False).
        device: launch device; ``None`` = the grid's device.

    Returns:
        ``(positions, cell_indices)``: float32 ``[n_uniform + n_nonuniform, 3]`` positions in instant-ngp's
        internal space, and int32 global cell indices ``cascade * 128**3 + morton``, uniform samples first.
    """
    dev = common_device([density_grid], device)
    _check_grid(density_grid, n_cascades, dev)
    if n_uniform < 0 or n_nonuniform < 0 or step < 0:
        raise KernelArgumentError("n_uniform, n_nonuniform and step must be >= 0")
    total = int(n_uniform) + int(n_nonuniform)
    positions = wp.empty((total, 3), dtype=wp.float32, device=dev)
    indices = wp.empty(total, dtype=wp.int32, device=dev)
    parts = (
        (int(n_uniform), -0.01, STREAM_GRID_UNIFORM, 0),
        (int(n_nonuniform), NERF_MIN_OPTICAL_THICKNESS, STREAM_GRID_NONUNIFORM, int(n_uniform)),
    )
    for n, thresh, stream, out_offset in parts:
        launch_split(
            _generate_samples_kernel,
            n,
            [
                n,
                _u32(step),
                _u32(seed),
                stream,
                thresh,
                n_cascades,
                int(bool(jitter)),
                density_grid,
                out_offset,
                positions.view(wp.vec3),
                indices,
            ],
            dev,
        )
    return positions, indices


def generate_all_cell_samples(
    n_cascades: int, *, seed: int, jitter: bool = True, device: wp.context.Devicelike = None
) -> tuple[wp.array, wp.array]:
    """One sample in every cell of every cascade (warm-up updates), jittered inside the cell.

    Returns:
        ``(positions, cell_indices)``: float32 ``[n_cascades * 128**3, 3]`` and int32 ``[n_cascades *
        128**3]``
        with ``cell_indices[i] == i``.
    """
    _check_n_cascades(n_cascades)
    dev = resolve_device(device)
    total = n_cascades * NERF_GRID_N_CELLS
    positions = wp.empty((total, 3), dtype=wp.float32, device=dev)
    indices = wp.empty(total, dtype=wp.int32, device=dev)
    launch_split(
        _all_cells_kernel,
        total,
        [_u32(seed), STREAM_GRID_ALL_CELLS, int(bool(jitter)), positions.view(wp.vec3), indices],
        dev,
    )
    return positions, indices


def update_occupancy_grid(
    density_grid: wp.array,
    cell_indices: wp.array,
    densities: wp.array,
    *,
    n_cascades: int,
    decay: float = DEFAULT_DECAY,
    device: wp.context.Devicelike = None,
) -> wp.array:
    """Decay the grid and max-splat new densities into it, **in place** (instant-ngp
    ``ema_grid_samples_nerf``).

    For every unmasked cell ``c`` (value >= 0):
    ``grid[c] = max(grid[c] * decay, max_{i: cell_indices[i] == c} densities[i] * MIN_CONE_STEPSIZE)``; cells
    without samples just decay, masked cells (< 0) are left alone. As instant-ngp's
    ``splat_grid_samples_nerf_max_nearest_neighbor``, every cascade uses the cascade-0 step
    ``MIN_CONE_STEPSIZE`` for the optical thickness. The splat uses ``wp.atomic_max``; max is
    order-independent, so the result is deterministic on CUDA too. On CPU it runs as a single launch
    (samples of different threads may hit the same cell).

    Args:
        density_grid: float32 ``[n_cascades * 128**3]``, updated in place.
        cell_indices: int32 ``[M]`` global cell indices (from :func:`generate_grid_samples`); out-of-range
            entries are ignored.
        densities: float32 ``[M]`` activated densities ``sigma >= 0`` (1/length units) at the sample
            positions.
        n_cascades: number of cascades K.
        decay: multiplicative decay of the previous values, in [0, 1].
        device: launch device; ``None`` = the arrays' device.

    Returns:
        ``density_grid`` (the same array).
    """
    dev = common_device([density_grid, cell_indices, densities], device)
    _check_grid(density_grid, n_cascades, dev)
    check_array(cell_indices, "cell_indices", dtype=wp.int32, shape=(None,), device=dev)
    check_array(densities, "densities", dtype=wp.float32, shape=(cell_indices.shape[0],), device=dev)
    if not 0.0 <= decay <= 1.0:
        raise KernelArgumentError(f"decay must be in [0, 1], got {decay}")
    launch_split(_decay_kernel, density_grid.shape[0], [float(decay), density_grid], dev)
    if cell_indices.shape[0]:
        wp.launch(
            _splat_max_kernel,
            dim=cell_indices.shape[0],
            inputs=[cell_indices, densities, density_grid.shape[0], density_grid],
            device=dev,
        )
    return density_grid


def compute_occupancy_bitfield(
    density_grid: wp.array,
    *,
    n_cascades: int,
    bitfield: wp.array | None = None,
    device: wp.context.Devicelike = None,
) -> tuple[wp.array, wp.array]:
    """Threshold the grid into the occupancy bitfield (instant-ngp ``update_density_grid_mean_and_bitfield``).

    ``mean`` is the mean of ``max(value, 0)`` over the cells of cascade 0 only; a cell is occupied when its
    value
    exceeds ``min(NERF_MIN_OPTICAL_THICKNESS, mean)`` (``grid_to_bitfield``). Then, for cascades ``k =
    1..K-1``
    in order, every cell of cascade ``k`` that covers a region of cascade ``k-1`` is also marked occupied when
    any of its 8 sub-cells in cascade ``k-1`` is (``bitfield_max_pool``), so coarse cascades conservatively
    contain the fine occupancy. The mean stays on the device (no host synchronisation).

    Args:
        density_grid: float32 ``[n_cascades * 128**3]``.
        n_cascades: number of cascades K.
        bitfield: optional uint8 ``[n_cascades * 128**3 / 8]`` output to overwrite.
        device: launch device; ``None`` = the grid's device.

    Returns:
        ``(bitfield, mean)``: uint8 ``[K * 128**3 / 8]`` and float32 ``[1]``.
    """
    dev = common_device([density_grid, bitfield], device)
    _check_grid(density_grid, n_cascades, dev)
    n_bytes = n_cascades * NERF_GRID_N_CELLS // 8
    if bitfield is None:
        bitfield = wp.empty(n_bytes, dtype=wp.uint8, device=dev)
    else:
        _check_bitfield(bitfield, n_cascades, dev)
    n_partials = NERF_GRID_N_CELLS // _MEAN_CHUNK
    partials = wp.empty(n_partials, dtype=wp.float64, device=dev)
    mean = wp.empty(1, dtype=wp.float32, device=dev)
    launch_split(_partial_mean_kernel, n_partials, [density_grid, _MEAN_CHUNK, partials], dev)
    wp.launch(_final_mean_kernel, dim=1, inputs=[partials, n_partials, mean], device=dev)
    launch_split(_grid_to_bitfield_kernel, n_bytes, [density_grid, mean, bitfield], dev)
    for level in range(1, n_cascades):
        launch_split(_bitfield_max_pool_kernel, NERF_GRID_N_CELLS // 64, [level, bitfield], dev)
    return bitfield, mean


def refresh_occupancy_grid(
    density_grid: wp.array,
    density_fn: Callable[[wp.array], wp.array],
    *,
    n_cascades: int,
    step: int,
    seed: int,
    warmup: bool,
    fraction: float = 0.25,
    decay: float = DEFAULT_DECAY,
    bitfield: wp.array | None = None,
    device: wp.context.Devicelike = None,
) -> tuple[wp.array, wp.array]:
    """One grid update with a density callback: samples -> ``density_fn`` -> update -> bitfield.

    Warm-up rounds visit every cell once (:func:`generate_all_cell_samples`); later rounds draw
    ``128**3 * K * fraction`` uniform plus as many occupied-biased samples (:func:`generate_grid_samples`;
    instant-ngp: ``fraction`` 1/4), which are handed to ``density_fn`` sorted by cell (cascade, then Morton
    order): neighbouring samples then share hash-table cache lines (a lego update: 648 ms instead of 920 ms on
    a 2-core CPU).
    The update takes a max per cell, so the order changes nothing else.

    Args:
        density_grid: float32 ``[n_cascades * 128**3]``, updated in place.
        density_fn: maps float32 positions ``[M, 3]`` (internal space) to float32 activated densities ``[M]``
            on the same device. It may evaluate in batches; it owns no grid state.
        n_cascades: number of cascades K.
        step: update counter (instant-ngp ``density_grid_ema_step``).
        seed: RNG seed of this round.
        warmup: True during the first training steps (instant-ngp: step < 256).
        fraction: samples of a non-warm-up round of each kind, as a fraction of the cells.
        decay: grid decay per update.
        bitfield: optional bitfield to overwrite.
        device: launch device; ``None`` = the grid's device.

    Returns:
        ``(bitfield, mean)`` as :func:`compute_occupancy_bitfield`.
    """
    dev = common_device([density_grid, bitfield], device)
    if warmup:
        positions, indices = generate_all_cell_samples(n_cascades, seed=seed, device=dev)
    else:
        n_uniform, n_nonuniform = grid_update_sample_counts(n_cascades, warmup=False, fraction=fraction)
        positions, indices = generate_grid_samples(
            density_grid,
            n_cascades=n_cascades,
            n_uniform=n_uniform,
            n_nonuniform=n_nonuniform,
            step=step,
            seed=seed,
            device=dev,
        )
        positions, indices = _sort_by_cell(positions, indices)
    densities = density_fn(positions)
    update_occupancy_grid(density_grid, indices, densities, n_cascades=n_cascades, decay=decay, device=dev)
    return compute_occupancy_bitfield(density_grid, n_cascades=n_cascades, bitfield=bitfield, device=dev)


@wp.kernel
def _mark_untrained_kernel(
    offset: int,
    c2w: wp.array3d(dtype=float),
    cam_params: wp.array2d(dtype=float),
    sizes: wp.array2d(dtype=wp.int32),
    n_cams: int,
    grid: wp.array(dtype=float),
):
    i = wp.tid() + offset
    level = i / _N_CELLS
    idx = i - level * _N_CELLS
    p = _cell_position(level, idx, wp.vec3(0.5, 0.5, 0.5))
    radius = 0.8660254 * float(1 << level) / float(_GRIDSIZE)  # half the cell diagonal
    seen = int(0)
    for c in range(n_cams):
        if seen == 0:
            d = wp.vec3(p[0] - c2w[c, 0, 3], p[1] - c2w[c, 1, 3], p[2] - c2w[c, 2, 3])
            vx = c2w[c, 0, 0] * d[0] + c2w[c, 1, 0] * d[1] + c2w[c, 2, 0] * d[2]
            vy = c2w[c, 0, 1] * d[0] + c2w[c, 1, 1] * d[1] + c2w[c, 2, 1] * d[2]
            vz = c2w[c, 0, 2] * d[0] + c2w[c, 1, 2] * d[1] + c2w[c, 2, 2] * d[2]
            if vz > radius:
                u = cam_params[c, 0] * vx / vz + cam_params[c, 2]
                v = cam_params[c, 1] * vy / vz + cam_params[c, 3]
                mx = cam_params[c, 0] * radius / vz
                my = cam_params[c, 1] * radius / vz
                if u >= -mx and u <= float(sizes[c, 0]) + mx and v >= -my and v <= float(sizes[c, 1]) + my:
                    seen = 1
    if seen == 0:
        grid[i] = -1.0


def mark_untrained_cells(
    density_grid: wp.array,
    *,
    n_cascades: int,
    c2w: wp.array,
    cam_params: wp.array,
    sizes: wp.array,
    device: wp.context.Devicelike = None,
) -> wp.array:
    """Set cells that no training camera sees to -1 (instant-ngp's ``mark_untrained_density_grid``).

    A cell counts as seen when a sphere around its centre (half its diagonal) projects, through the pinhole part
    of some camera, into that camera's image and lies in front of it. Cells marked -1 are never occupied (the
    bitfield threshold is positive) and keep their mark through updates (see :func:`update_occupancy_grid`), so
    marching never samples space the training images cannot constrain (no floaters outside the views).

    Args:
        density_grid: float32 ``[K * 128**3]``, updated in place.
        n_cascades: K.
        c2w: float32 ``[n_cams, 3, 4]`` camera-to-world in the internal convention (columns right, down,
            forward, centre), as for :func:`warp_kernels.rays.generate_rays`.
        cam_params: float32 ``[n_cams, 4]`` ``(fx, fy, cx, cy)`` in pixels.
        sizes: int32 ``[n_cams, 2]`` ``(width, height)`` in pixels.

    Returns:
        ``density_grid``.
    """
    _check_n_cascades(n_cascades)
    dev = common_device([density_grid, c2w, cam_params, sizes], device)
    _check_grid(density_grid, n_cascades, dev)
    n = c2w.shape[0]
    check_array(c2w, "c2w", dtype=wp.float32, shape=(n, 3, 4), device=dev)
    check_array(cam_params, "cam_params", dtype=wp.float32, shape=(n, 4), device=dev)
    check_array(sizes, "sizes", dtype=wp.int32, shape=(n, 2), device=dev)
    launch_split(_mark_untrained_kernel, n_cascades * NERF_GRID_N_CELLS, [c2w, cam_params, sizes, n, density_grid],
                 dev)
    return density_grid
