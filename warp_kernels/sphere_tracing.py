"""Sphere tracing of a signed distance function given as a callback (the tracer never owns the field).

Layer 0: :func:`_init_trace_kernel`, :func:`_advance_trace_kernel`, :func:`_compact_kernel`,
:func:`_final_kernel`, :func:`_positions_kernel`; layer 1: :func:`sphere_trace`.

Conventions:

- Rays are float32 ``[N, 3]`` origins and unit directions, in the space the SDF is defined in (the SDF
  primitive's normalised unit cube); ``t`` is the distance along the ray in the same units.
- Tracing starts where the ray enters ``aabb`` (at ``t = 0`` for an origin inside it) and gives up where the ray
  leaves it. Each iteration evaluates the SDF at the still-active rays only (packed, like nerfacc's samples), then
  moves each by ``step_scale * sdf``: a negative value (an overshoot into the inside) moves the ray back, so an
  inexact neural SDF still converges onto its zero level set. The active set is compacted on the device with
  :func:`warp_kernels.nerf_glue.select_samples` (only its size is read back).
- A ray *hits* when ``|sdf| < epsilon``; rays still active after ``max_steps`` iterations count as hits when
  ``|sdf| < 16 * epsilon`` (grazing rays crawl along the surface), else as misses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import warp as wp

from .compaction import gather_rows, select_samples
from .device import KernelArgumentError, check_array, common_device
from .parallel import launch_split
from .ray_marching import ray_aabb_intersect

__all__ = ["SphereTraceResult", "sphere_trace"]

#: Final-iteration tolerance, in multiples of ``epsilon``, for rays that never reached ``|sdf| < epsilon``.
FINAL_TOLERANCE = 16.0


@wp.func
def _write_ray_point(origins: wp.array2d(dtype=wp.float32), directions: wp.array2d(dtype=wp.float32), r: int,
                     t: float, out: wp.array2d(dtype=wp.float32), row: int):
    """``out[row] = origins[r] + t * directions[r]``."""
    for a in range(3):
        out[row, a] = origins[r, a] + t * directions[r, a]


@wp.kernel
def _init_trace_kernel(
    offset: int,
    origins: wp.array2d(dtype=wp.float32),
    directions: wp.array2d(dtype=wp.float32),
    bmin: wp.vec3,
    bmax: wp.vec3,
    t: wp.array(dtype=wp.float32),
    t_far: wp.array(dtype=wp.float32),
    active: wp.array(dtype=wp.float32),
    positions: wp.array2d(dtype=wp.float32),
):
    i = wp.tid() + offset
    o = wp.vec3(origins[i, 0], origins[i, 1], origins[i, 2])
    d = wp.vec3(directions[i, 0], directions[i, 1], directions[i, 2])
    span = ray_aabb_intersect(o, d, bmin, bmax)
    t0 = wp.max(span[0], 0.0)
    t[i] = t0
    t_far[i] = span[1]
    if span[1] >= t0:
        active[i] = 1.0
    else:
        active[i] = 0.0
    _write_ray_point(origins, directions, i, t0, positions, i)


@wp.kernel
def _advance_trace_kernel(
    offset: int,
    ray_index: wp.array(dtype=wp.int32),
    sdf: wp.array(dtype=wp.float32),
    origins: wp.array2d(dtype=wp.float32),
    directions: wp.array2d(dtype=wp.float32),
    t_far: wp.array(dtype=wp.float32),
    epsilon: float,
    step_scale: float,
    t: wp.array(dtype=wp.float32),
    hit: wp.array(dtype=wp.int32),
    alive: wp.array(dtype=wp.float32),
    next_positions: wp.array2d(dtype=wp.float32),
):
    i = wp.tid() + offset
    r = ray_index[i]
    d = sdf[i]
    alive[i] = 0.0
    if wp.abs(d) < epsilon:
        hit[r] = 1
        return
    t_new = t[r] + step_scale * d
    if t_new > t_far[r]:
        return
    t[r] = t_new
    alive[i] = 1.0
    _write_ray_point(origins, directions, r, t_new, next_positions, i)


@wp.kernel
def _compact_kernel(
    offset: int,
    keep: wp.array(dtype=wp.int32),
    ray_index: wp.array(dtype=wp.int32),
    positions: wp.array2d(dtype=wp.float32),
    sdf: wp.array(dtype=wp.float32),
    out_ray_index: wp.array(dtype=wp.int32),
    out_positions: wp.array2d(dtype=wp.float32),
    out_sdf: wp.array(dtype=wp.float32),
):
    i = wp.tid() + offset
    k = keep[i]
    out_ray_index[i] = ray_index[k]
    out_sdf[i] = sdf[k]
    for a in range(3):
        out_positions[i, a] = positions[k, a]


@wp.kernel
def _final_kernel(offset: int, ray_index: wp.array(dtype=wp.int32), sdf: wp.array(dtype=wp.float32),
                  tolerance: float, hit: wp.array(dtype=wp.int32)):
    i = wp.tid() + offset
    if wp.abs(sdf[i]) < tolerance:
        hit[ray_index[i]] = 1


@wp.kernel
def _positions_kernel(
    offset: int,
    origins: wp.array2d(dtype=wp.float32),
    directions: wp.array2d(dtype=wp.float32),
    t: wp.array(dtype=wp.float32),
    out: wp.array2d(dtype=wp.float32),
):
    i = wp.tid() + offset
    _write_ray_point(origins, directions, i, t[i], out, i)


@dataclass(frozen=True)
class SphereTraceResult:
    """Where each ray met the zero level set.

    Attributes:
        t: float32 ``[N]`` distance along the ray of the last iterate (meaningful where ``hit``).
        hit: int32 ``[N]``, 1 where the ray converged onto the surface inside the box.
        positions: float32 ``[N, 3]`` ``origin + t * direction``.
        n_iterations: SDF evaluation rounds that ran.
        n_evaluations: SDF values computed over all rounds (the cost of the trace).
    """

    t: wp.array
    hit: wp.array
    positions: wp.array
    n_iterations: int
    n_evaluations: int


def _compact(keep: wp.array, ray_index: wp.array, positions: wp.array, sdf: wp.array,
             device) -> tuple[wp.array, wp.array, wp.array]:
    """Rows ``keep`` (int32 slot indices) of the active set's ray ids, positions and SDF values."""
    a = keep.shape[0]
    out = (wp.empty(a, dtype=wp.int32, device=device), wp.empty((a, 3), dtype=wp.float32, device=device),
           wp.empty(a, dtype=wp.float32, device=device))
    launch_split(_compact_kernel, a, [keep, ray_index, positions, sdf, *out], device)
    return out


def _as_flat(values: wp.array, m: int, device) -> wp.array:
    if values.ndim == 2 and values.shape[1] == 1:
        values = values.flatten() if values.is_contiguous else wp.clone(values).flatten()
    check_array(values, "sdf_fn result", dtype=wp.float32, shape=(m,), device=device)
    return values


def sphere_trace(
    origins: wp.array,
    directions: wp.array,
    sdf_fn: Callable[[wp.array], wp.array],
    *,
    aabb=((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    max_steps: int = 128,
    epsilon: float = 1e-4,
    step_scale: float = 0.9,
) -> SphereTraceResult:
    """Sphere-trace rays against the zero level set of ``sdf_fn`` inside ``aabb``.

    Args:
        origins: float32 ``[N, 3]`` ray origins.
        directions: float32 ``[N, 3]`` unit ray directions.
        sdf_fn: maps float32 positions ``[M, 3]`` to signed distances float32 ``[M]`` or ``[M, 1]`` on the same
            device (negative inside); called once per iteration with the still-active rays only.
        aabb: ``(min [3], max [3])`` box the SDF is valid in.
        max_steps: most evaluation rounds.
        epsilon: hit threshold on ``|sdf|`` (same units as ``t``).
        step_scale: fraction of the SDF value stepped (< 1 is safer for inexact neural SDFs).

    Returns:
        A :class:`SphereTraceResult`.

    Raises:
        KernelArgumentError: on wrong shapes, dtypes or devices, or invalid options.
    """
    dev = common_device([origins, directions])
    check_array(origins, "origins", dtype=wp.float32, shape=(None, 3), device=dev)
    n = origins.shape[0]
    check_array(directions, "directions", dtype=wp.float32, shape=(n, 3), device=dev)
    if max_steps < 1 or not epsilon > 0 or not 0 < step_scale <= 1:
        raise KernelArgumentError(f"need max_steps >= 1, epsilon > 0 and 0 < step_scale <= 1; got {max_steps}, "
                                  f"{epsilon}, {step_scale}")
    lo, hi = (np.asarray(v, np.float32).reshape(3) for v in aabb)
    t = wp.empty(n, dtype=wp.float32, device=dev)
    t_far = wp.empty(n, dtype=wp.float32, device=dev)
    hit = wp.zeros(n, dtype=wp.int32, device=dev)
    flags = wp.empty(n, dtype=wp.float32, device=dev)
    pos = wp.empty((n, 3), dtype=wp.float32, device=dev)
    launch_split(_init_trace_kernel, n, [origins, directions, wp.vec3(*lo), wp.vec3(*hi), t, t_far, flags, pos], dev)
    # the active set: ray ids, their current positions and (after a round) their latest SDF values
    ray_index = select_samples(flags, 0.5, device=dev)
    pos = gather_rows(pos, ray_index, device=dev)
    last_sdf = wp.zeros(ray_index.shape[0], dtype=wp.float32, device=dev)
    iterations = evaluations = 0
    while ray_index.shape[0] and iterations < max_steps:
        m = ray_index.shape[0]
        values = _as_flat(sdf_fn(pos), m, dev)
        alive = wp.empty(m, dtype=wp.float32, device=dev)
        next_pos = wp.empty((m, 3), dtype=wp.float32, device=dev)
        launch_split(_advance_trace_kernel, m, [ray_index, values, origins, directions, t_far, float(epsilon),
                                                float(step_scale), t, hit, alive, next_pos], dev)
        iterations += 1
        evaluations += m
        ray_index, pos, last_sdf = _compact(select_samples(alive, 0.5, device=dev), ray_index, next_pos, values,
                                            dev)
    # out of iterations: rays crawling along the surface count as hits
    launch_split(_final_kernel, ray_index.shape[0], [ray_index, last_sdf, FINAL_TOLERANCE * float(epsilon), hit],
                 dev)
    positions = wp.empty((n, 3), dtype=wp.float32, device=dev)
    launch_split(_positions_kernel, n, [origins, directions, t, positions], dev)
    return SphereTraceResult(t=t, hit=hit, positions=positions, n_iterations=iterations, n_evaluations=evaluations)
