"""Occupancy-grid ray marching into packed samples (instant-ngp ``generate_training_samples_nerf`` semantics).

Rays live in instant-ngp's internal space (scene in the unit cube, cascades around ``(0.5, 0.5, 0.5)``, see
:mod:`warp_kernels.occupancy_grid`). Each ray is clipped to the AABB and to ``[t_min, t_max]``, then marched:

* **Step size** (instant-ngp ``calc_dt``): steps are unit increments in a "stepping space" ``n(t)`` that is
  linear with slope ``1/MIN_CONE_STEPSIZE`` for small t, logarithmic (``log(t) / log(1 + cone_angle)``, i.e.
  ``dt ~= t * cone_angle``) in between, and linear with slope ``1/MAX_CONE_STEPSIZE`` for large t; so
  ``dt ~= clamp(t * cone_angle, MIN_CONE_STEPSIZE, MAX_CONE_STEPSIZE)``. ``cone_angle <= 1e-5`` gives fixed
  steps of ``MIN_CONE_STEPSIZE = sqrt(3)/1024``. A sample at ``t`` spans ``[t, t + dt)`` and sits at
  ``origin + t * direction`` (the interval start, as instant-ngp feeds the network).
* **Jitter**: the first sample is at ``n(t_start) + u``, ``u`` uniform in [0, 1) per ray (0 when
  ``jitter=False``). All samples of a ray then lie on the lattice ``n(t_start) + u + k`` for integer k; this
  implementation computes every ``t`` from its lattice index (no accumulated rounding), which is
  instant-ngp's ``t += calc_dt(t)`` in exact arithmetic.
* **Empty space**: a sample is emitted only where the bitfield is occupied at cascade
  ``mip_from_dt(dt, pos)``;
  otherwise the ray jumps to the next voxel boundary of that cascade, rounded up to whole steps (at least one)
  in stepping space (instant-ngp ``advance_to_next_voxel``), so skipping never moves a ray off its lattice.
* At most ``max_samples_per_ray`` samples per ray (instant-ngp ``NERF_STEPS() = 1024``).

Two passes (count, exclusive prefix sum, fill) give an exact packed layout: the samples of ray ``r`` are
``[packed_info[r, 0], packed_info[r, 0] + packed_info[r, 1])``, ordered by increasing t. With a sample budget
(``max_total_samples``) the longest prefix of rays that fits is kept and later rays get zero samples;
:attr:`RaySamples.n_samples_requested` tells the caller how to resize its next batch of rays (instant-ngp
``NerfCounters::update_after_training``). Both passes split rays across CPU threads (disjoint writes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import warp as wp

from .device import KernelArgumentError, check_array, common_device
from .occupancy_grid import (
    MAX_CONE_STEPSIZE,
    MIN_CONE_STEPSIZE,
    NERF_CASCADES,
    NERF_GRID_N_CELLS,
    NERF_GRIDSIZE,
    grid_occupied_at,
    mip_from_dt,
)
from .parallel import launch_split, num_cpu_threads, split_range
from .random import rand01

__all__ = [
    "DEFAULT_MAX_SAMPLES_PER_RAY",
    "STREAM_MARCH_JITTER",
    "RaySamples",
    "StepParams",
    "make_step_params",
    "default_cone_angle",
    "default_aabb",
    "to_stepping_space",
    "from_stepping_space",
    "ray_aabb_intersect",
    "distance_to_next_voxel",
    "march_span",
    "find_next_sample",
    "march_rays",
    "adapt_rays_per_batch",
]

#: instant-ngp NERF_STEPS(): cap on samples per training ray.
DEFAULT_MAX_SAMPLES_PER_RAY = 1024
#: RNG stream (see :func:`warp_kernels.random.rand01`) of the per-ray start jitter.
STREAM_MARCH_JITTER = 16
#: cone angles at or below this use fixed MIN_CONE_STEPSIZE steps (instant-ngp's 1e-5).
_LINEAR_CONE_ANGLE = 1e-5
_INT32_MAX = 2**31 - 1
#: CPU launches split across threads once every thread gets this many rays.
_MIN_RAYS_PER_THREAD = 32

_MIN_STEP = wp.constant(MIN_CONE_STEPSIZE)
_MAX_STEP = wp.constant(MAX_CONE_STEPSIZE)
_GRIDSIZE_F = wp.constant(float(NERF_GRIDSIZE))
_BIG = wp.constant(3.0e38)
_STREAM_JITTER = wp.constant(wp.uint32(STREAM_MARCH_JITTER))
#: largest stepping-space jump per skip, and the step index at which a ray stops (far from int32 overflow;
#: only reached by degenerate rays, e.g. directions of length ~0 with an enormous t range).
_MAX_SKIP = wp.constant(1.0e8)
_MAX_STEP_INDEX = wp.constant(1 << 30)


@wp.struct
class StepParams:
    """Host-precomputed constants of the stepping space for one cone angle (see :func:`make_step_params`)."""

    linear: int
    log1p_c: float
    a: float
    b: float
    at: float
    bt: float


def make_step_params(cone_angle: float) -> StepParams:
    """Stepping-space constants (instant-ngp ``to_stepping_space``), computed in float64 on the host.

    ``a = n(at)`` and ``b = n(bt)`` are the stepping-space positions where the logarithmic part starts and
    ends; ``at = MIN_CONE_STEPSIZE / log(1 + c)`` and ``bt = MAX_CONE_STEPSIZE / log(1 + c)`` are where the
    log part's step ``t * log(1 + c)`` equals the smallest and the largest step.
    """
    if not (cone_angle >= 0.0 and math.isfinite(cone_angle)):
        raise KernelArgumentError(f"cone_angle must be finite and >= 0, got {cone_angle}")
    p = StepParams()
    if cone_angle <= _LINEAR_CONE_ANGLE:
        p.linear, p.log1p_c, p.a, p.b, p.at, p.bt = 1, 0.0, 0.0, 0.0, 0.0, 0.0
        return p
    l1p = math.log1p(cone_angle)
    p.linear = 0
    p.log1p_c = l1p
    p.a = (math.log(MIN_CONE_STEPSIZE) - math.log(l1p)) / l1p
    p.b = (math.log(MAX_CONE_STEPSIZE) - math.log(l1p)) / l1p
    p.at = MIN_CONE_STEPSIZE / l1p
    p.bt = MAX_CONE_STEPSIZE / l1p
    return p


def default_cone_angle(n_cascades: int) -> float:
    """instant-ngp's ``cone_angle_constant``: 0 for unit-cube scenes (aabb_scale 1), else 1/256."""
    return 0.0 if n_cascades <= 1 else 1.0 / 256.0


def default_aabb(n_cascades: int) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """instant-ngp's AABB for ``aabb_scale = 2**(n_cascades-1)``: the cube of side aabb_scale around 0.5."""
    half = 0.5 * float(1 << (n_cascades - 1))
    return (0.5 - half,) * 3, (0.5 + half,) * 3


@wp.func
def to_stepping_space(t: float, p: StepParams) -> float:
    """Stepping-space coordinate of distance ``t`` (one unit = one step)."""
    if p.linear != 0:
        return t / _MIN_STEP
    if t <= p.at:
        return (t - p.at) / _MIN_STEP + p.a
    if t <= p.bt:
        return wp.log(t) / p.log1p_c
    return (t - p.bt) / _MAX_STEP + p.b


@wp.func
def from_stepping_space(n: float, p: StepParams) -> float:
    """Inverse of :func:`to_stepping_space`."""
    if p.linear != 0:
        return n * _MIN_STEP
    if n <= p.a:
        return (n - p.a) * _MIN_STEP + p.at
    if n <= p.b:
        return wp.exp(n * p.log1p_c)
    return (n - p.b) * _MAX_STEP + p.bt


@wp.func
def ray_aabb_intersect(o: wp.vec3, d: wp.vec3, bmin: wp.vec3, bmax: wp.vec3) -> wp.vec2:
    """Slab test: ``(t_near, t_far)``, empty when ``t_near > t_far``; axes with ``d == 0`` handled exactly."""
    t_near = -_BIG
    t_far = _BIG
    for a in range(3):
        if d[a] != 0.0:
            ta = (bmin[a] - o[a]) / d[a]
            tb = (bmax[a] - o[a]) / d[a]
            t_near = wp.max(t_near, wp.min(ta, tb))
            t_far = wp.min(t_far, wp.max(ta, tb))
        elif o[a] < bmin[a] or o[a] > bmax[a]:
            return wp.vec2(1.0, 0.0)
    return wp.vec2(t_near, t_far)


@wp.func
def distance_to_next_voxel(pos: wp.vec3, d: wp.vec3, res: float) -> float:
    """Distance along ``d`` from ``pos`` to the next boundary of a grid with ``res`` cells per unit length.

    The grid is aligned with ``0.5`` (cascade cells); axes with ``d == 0`` never hit a boundary (instant-ngp
    divides by zero there). Never negative.
    """
    t = _BIG
    for a in range(3):
        p = res * (pos[a] - 0.5)
        if d[a] > 0.0:
            t = wp.min(t, (wp.floor(p + 1.0) - p) / d[a])
        elif d[a] < 0.0:
            t = wp.min(t, (wp.floor(p) - p) / d[a])
    return wp.max(t / res, 0.0)


@wp.func
def march_span(o: wp.vec3, d: wp.vec3, aabb_min: wp.vec3, aabb_max: wp.vec3, t_min: float, t_max: float,
                params: StepParams, jitter: int, seed: wp.uint32, r: int) -> wp.vec3:
    """``(t0, t1, n0)`` of a ray: its clipped interval and the stepping-space position of lattice index 0;
    ``t0 > t1`` (no samples) for rays missing the box, empty intervals and zero, NaN or infinite input."""
    hit = ray_aabb_intersect(o, d, aabb_min, aabb_max)
    t0 = wp.max(hit[0], t_min)
    t1 = wp.min(hit[1], t_max)
    d2 = wp.dot(d, d)
    # comparisons are False for NaN: zero, NaN or infinite directions and empty intervals give no samples
    if t0 <= t1 and d2 > 0.0 and d2 < _BIG and wp.abs(wp.dot(o, o)) < _BIG:
        n0 = to_stepping_space(t0, params)
        if jitter != 0:
            n0 = n0 + rand01(seed, _STREAM_JITTER, wp.uint32(r))
        return wp.vec3(t0, t1, n0)
    return wp.vec3(1.0, 0.0, 0.0)


@wp.func
def find_next_sample(o: wp.vec3, d: wp.vec3, span: wp.vec3, k: int, params: StepParams,
                 bitfield: wp.array(dtype=wp.uint8), max_cascade: int, aabb_min: wp.vec3, aabb_max: wp.vec3):
    """The first occupied sample at lattice index ``>= k`` of a ray with ``span = (t0, t1, n0)``:
    ``(index, t, dt, position)``, index -1 when the ray leaves its interval first. Empty cells are skipped to
    the next voxel boundary of their cascade, rounded up to whole steps (instant-ngp ``advance_to_next_voxel``)."""
    t0 = span[0]
    t1 = span[1]
    n0 = span[2]
    if not (t0 <= t1):
        return -1, 0.0, 0.0, wp.vec3(0.0)
    kk = k
    while kk < _MAX_STEP_INDEX:
        n = n0 + float(kk)
        # max/clamp only undo float32 rounding: mathematically t >= t0 and the point is inside the AABB
        t = wp.max(from_stepping_space(n, params), t0)
        if not (t <= t1):
            return -1, 0.0, 0.0, wp.vec3(0.0)
        pos = wp.min(wp.max(o + t * d, aabb_min), aabb_max)
        dt = from_stepping_space(n + 1.0, params) - t
        mip = mip_from_dt(dt, pos, max_cascade)
        if grid_occupied_at(pos, bitfield, mip):
            return kk, t, dt, pos
        res = _GRIDSIZE_F / float(1 << mip)
        t_target = t + distance_to_next_voxel(pos, d, res)
        if not (t_target <= t1):
            return -1, 0.0, 0.0, wp.vec3(0.0)
        delta = to_stepping_space(t_target, params) - n
        if not (delta > 0.5):
            delta = 0.5
        kk += int(wp.ceil(wp.min(delta, _MAX_SKIP)))
    return -1, 0.0, 0.0, wp.vec3(0.0)


@wp.kernel
def _march_kernel(
    offset: int,
    origins: wp.array(dtype=wp.vec3),
    directions: wp.array(dtype=wp.vec3),
    bitfield: wp.array(dtype=wp.uint8),
    max_cascade: int,
    aabb_min: wp.vec3,
    aabb_max: wp.vec3,
    params: StepParams,
    t_min: float,
    t_max: float,
    max_samples_per_ray: int,
    jitter: int,
    seed: wp.uint32,
    write: int,
    max_total: int,
    n_kept_samples: int,
    counts: wp.array(dtype=wp.int32),
    offsets: wp.array(dtype=wp.int32),
    packed_info: wp.array2d(dtype=wp.int32),
    ray_indices: wp.array(dtype=wp.int32),
    t_starts: wp.array(dtype=float),
    t_ends: wp.array(dtype=float),
    positions: wp.array(dtype=wp.vec3),
    sample_dirs: wp.array(dtype=wp.vec3),
):
    r = wp.tid() + offset
    limit = max_samples_per_ray
    base = wp.int32(0)
    if write != 0:
        cnt = int(counts[r])
        base = int(offsets[r])
        if base + cnt > max_total:
            packed_info[r, 0] = wp.int32(n_kept_samples)
            packed_info[r, 1] = wp.int32(0)
            return
        packed_info[r, 0] = wp.int32(base)
        packed_info[r, 1] = wp.int32(cnt)
        if cnt == 0:
            return
        limit = cnt

    o = origins[r]
    d = directions[r]
    span = march_span(o, d, aabb_min, aabb_max, t_min, t_max, params, jitter, seed, r)
    j = wp.int32(0)
    k = wp.int32(0)
    while j < limit:
        kf, t, dt, pos = find_next_sample(o, d, span, k, params, bitfield, max_cascade, aabb_min, aabb_max)
        if kf < 0:
            break
        if write != 0:
            s = base + j
            ray_indices[s] = wp.int32(r)
            t_starts[s] = t
            t_ends[s] = t + dt
            positions[s] = pos
            sample_dirs[s] = d
        j += 1
        k = kf + 1
    if write == 0:
        counts[r] = wp.int32(j)


@wp.kernel
def _summary_kernel(
    n: int,
    counts: wp.array(dtype=wp.int32),
    offsets: wp.array(dtype=wp.int32),
    budget: int,
    summary: wp.array(dtype=wp.int32),
):
    # summary = (total samples, rays kept, samples kept); kept rays: the longest prefix fitting the budget
    i = wp.tid()
    incl = int(offsets[i]) + int(counts[i])
    if i == n - 1:
        summary[0] = wp.int32(incl)
    if incl <= budget:
        last = i == n - 1
        if not last:
            last = int(offsets[i + 1]) + int(counts[i + 1]) > budget
        if last:
            summary[1] = wp.int32(i + 1)
            summary[2] = wp.int32(incl)


@dataclass(frozen=True)
class RaySamples:
    """Packed samples of a batch of rays (all arrays on the marching device).

    Attributes:
        ray_indices: int32 ``[S]`` ray of each sample.
        t_starts: float32 ``[S]`` interval start along the (unit) ray direction; the sample point.
        t_ends: float32 ``[S]`` interval end, ``t_starts + dt``.
        positions: float32 ``[S, 3]`` sample points ``origin + t_start * direction`` (internal space).
        directions: float32 ``[S, 3]`` unit direction of each sample's ray (input of the SH encoding).
        packed_info: int32 ``[n_rays, 2]`` ``(first sample, count)`` per ray; dropped or empty rays have
            count 0.
        n_samples: S, samples kept.
        n_rays_kept: rays ``[0, n_rays_kept)`` are complete; later rays were dropped by the budget.
        n_samples_requested: samples all rays would have produced without the budget.
    """

    ray_indices: wp.array
    t_starts: wp.array
    t_ends: wp.array
    positions: wp.array
    directions: wp.array
    packed_info: wp.array
    n_samples: int
    n_rays_kept: int
    n_samples_requested: int


def _vec3_input(a: wp.array, name: str, device: wp.context.Device) -> wp.array:
    """Accept wp.vec3 ``[n]`` or contiguous float32 ``[n, 3]`` (viewed as vec3, no copy)."""
    if isinstance(a, wp.array) and a.dtype == wp.float32 and a.ndim == 2 and a.shape[1] == 3:
        check_array(a, name, device=device)
        if not a.is_contiguous:
            raise KernelArgumentError(f"{name} must be contiguous")
        return a.view(wp.vec3)
    check_array(a, name, dtype=wp.vec3, shape=(None,), device=device)
    return a


def _parse_aabb(aabb, n_cascades: int) -> tuple[wp.vec3, wp.vec3]:
    lo, hi = default_aabb(n_cascades) if aabb is None else aabb
    lo = np.asarray(lo, dtype=np.float64).reshape(-1)
    hi = np.asarray(hi, dtype=np.float64).reshape(-1)
    if lo.shape != (3,) or hi.shape != (3,) or not np.all(np.isfinite(lo)) or not np.all(lo <= hi):
        raise KernelArgumentError(f"aabb must be ((x0, y0, z0), (x1, y1, z1)) with min <= max, got {aabb!r}")
    return wp.vec3(*lo.tolist()), wp.vec3(*hi.tolist())


def march_rays(
    origins: wp.array,
    directions: wp.array,
    bitfield: wp.array,
    *,
    n_cascades: int,
    aabb=None,
    cone_angle: float | None = None,
    t_min: float = 0.0,
    t_max: float = math.inf,
    max_samples_per_ray: int = DEFAULT_MAX_SAMPLES_PER_RAY,
    max_total_samples: int | None = None,
    jitter: bool = True,
    seed: int = 0,
    device: wp.context.Devicelike = None,
) -> RaySamples:
    """March rays through the occupancy bitfield and return exactly-packed samples.

    Args:
        origins: ray origins, wp.vec3 ``[n]`` or float32 ``[n, 3]``, instant-ngp internal space.
        directions: unit ray directions, same layout (t is then a distance).
        bitfield: uint8 ``[n_cascades * 128**3 / 8]`` occupancy bitfield
            (:func:`warp_kernels.occupancy_grid.compute_occupancy_bitfield`).
        n_cascades: number of cascades K; the finest cascade a sample may use is 0, the coarsest K-1.
        aabb: ``((xmin, ymin, zmin), (xmax, ymax, zmax))``; default: the cube of side ``2**(K-1)`` around 0.5.
        cone_angle: step growth per unit distance; default 1/256 when K > 1 else 0 (instant-ngp).
        t_min: near distance; marching starts at ``max(aabb entry, t_min)``.
        t_max: far distance; no sample starts beyond ``min(aabb exit, t_max)``.
        max_samples_per_ray: cap per ray (>= 0).
        max_total_samples: optional budget on the total; rays after the longest fitting prefix are dropped.
        jitter: random start offset in [0, 1) step per ray (training); False starts at the entry point.
        seed: jitter seed (ray ``r`` uses ``rand01(seed, STREAM_MARCH_JITTER, r)``).
        device: launch device; ``None`` = the arrays' device.

    Returns:
        :class:`RaySamples`. Reads back three integers from the device (sizes of the packed arrays); the total
        sample count must stay below 2**31 (int32 offsets).
    """
    dev = common_device([origins, directions, bitfield], device)
    origins = _vec3_input(origins, "origins", dev)
    directions = _vec3_input(directions, "directions", dev)
    n = origins.shape[0]
    if directions.shape[0] != n:
        raise KernelArgumentError(f"directions has {directions.shape[0]} rays, origins {n}")
    if not (isinstance(n_cascades, (int, np.integer)) and 1 <= n_cascades <= NERF_CASCADES):
        raise KernelArgumentError(f"n_cascades must be an int in [1, {NERF_CASCADES}], got {n_cascades!r}")
    check_array(
        bitfield, "bitfield", dtype=wp.uint8, shape=(n_cascades * NERF_GRID_N_CELLS // 8,), device=dev
    )
    if max_samples_per_ray < 0:
        raise KernelArgumentError(f"max_samples_per_ray must be >= 0, got {max_samples_per_ray}")
    budget = _INT32_MAX if max_total_samples is None else int(max_total_samples)
    if budget < 0:
        raise KernelArgumentError(f"max_total_samples must be >= 0, got {max_total_samples}")
    if math.isnan(t_min) or math.isnan(t_max):
        raise KernelArgumentError("t_min and t_max must not be NaN")
    lo, hi = _parse_aabb(aabb, n_cascades)
    params = make_step_params(default_cone_angle(n_cascades) if cone_angle is None else float(cone_angle))
    t_lo = float(np.clip(t_min, -3.0e38, 3.0e38))
    t_hi = float(np.clip(t_max, -3.0e38, 3.0e38))

    counts = wp.zeros(n, dtype=wp.int32, device=dev)
    offsets = wp.zeros(n, dtype=wp.int32, device=dev)
    packed_info = wp.zeros((n, 2), dtype=wp.int32, device=dev)

    def run(write: int, max_total: int, n_kept: int, outs: list) -> None:
        ray_idx, t_s, t_e, pos, dirs = outs
        launch_split(
            _march_kernel,
            n,
            [
                origins,
                directions,
                bitfield,
                n_cascades - 1,
                lo,
                hi,
                params,
                t_lo,
                t_hi,
                int(max_samples_per_ray),
                int(bool(jitter)),
                int(seed) & 0xFFFFFFFF,
                write,
                max_total,
                n_kept,
                counts,
                offsets,
                packed_info,
                ray_idx,
                t_s,
                t_e,
                pos.view(wp.vec3),
                dirs.view(wp.vec3),
            ],
            dev,
            pieces=pieces,
        )

    # a ray costs hundreds of loop iterations: split across CPU threads from a few dozen rays on, not from
    # launch_split's default (sized for one-element threads)
    pieces = split_range(n, num_cpu_threads()) if dev.is_cpu and n >= _MIN_RAYS_PER_THREAD * 2 else None

    def empty_outputs(s: int) -> list:
        return [
            wp.empty(s, dtype=wp.int32, device=dev),
            wp.empty(s, dtype=wp.float32, device=dev),
            wp.empty(s, dtype=wp.float32, device=dev),
            wp.empty((s, 3), dtype=wp.float32, device=dev),
            wp.empty((s, 3), dtype=wp.float32, device=dev),
        ]

    if n == 0:
        outs = empty_outputs(0)
        return RaySamples(*outs, packed_info=packed_info, n_samples=0, n_rays_kept=0, n_samples_requested=0)

    run(0, budget, 0, empty_outputs(0))
    wp.utils.array_scan(counts, offsets, inclusive=False)
    summary = wp.zeros(3, dtype=wp.int32, device=dev)
    wp.launch(_summary_kernel, dim=n, inputs=[n, counts, offsets, budget, summary], device=dev)
    total, n_rays_kept, n_samples = (int(v) for v in summary.numpy())
    outs = empty_outputs(n_samples)
    run(1, budget, n_samples, outs)
    return RaySamples(
        *outs,
        packed_info=packed_info,
        n_samples=n_samples,
        n_rays_kept=n_rays_kept,
        n_samples_requested=total,
    )


def adapt_rays_per_batch(
    n_rays: int,
    n_samples_measured: int,
    target_samples: int,
    *,
    granularity: int = 256,
    max_rays: int = 1 << 18,
) -> int:
    """Rays for the next batch so that it produces about ``target_samples`` samples.

    instant-ngp ``NerfCounters::update_after_training``: ``n_rays * target / measured``, rounded up to a
    multiple of ``granularity`` (tcnn's batch granularity, 256) and capped at ``max_rays`` (2**18). With no
    measured samples the batch size is kept.

    Args:
        n_rays: rays of the batch just marched.
        n_samples_measured: samples it produced (e.g. :attr:`RaySamples.n_samples_requested`, or the count
            left after early termination as instant-ngp does).
        target_samples: desired samples per batch.
        granularity: the result is a positive multiple of this.
        max_rays: upper bound of the result.
    """
    if n_rays < 0 or n_samples_measured < 0 or target_samples <= 0 or granularity <= 0 or max_rays <= 0:
        raise KernelArgumentError("adapt_rays_per_batch needs non-negative counts and positive sizes")
    if n_samples_measured == 0:
        return max(granularity, min(n_rays, max_rays))
    rays = int(n_rays * target_samples / n_samples_measured)
    rays = max(granularity, -(-rays // granularity) * granularity)
    return min(rays, max_rays)
