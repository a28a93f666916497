"""Inference ray marching in windows: march a few samples per live ray, evaluate, composite, compact, repeat.

instant-ngp's inference (``NerfTracer``) never marches a whole ray up front: it advances every live ray by a
few steps, evaluates those samples, composites them front to back into per-ray accumulators and drops the
rays that are opaque or have left the scene before the next round. These are the kernels of one round:

* :func:`march_spans` once per batch: each ray's clipped interval and lattice origin (no jitter);
* :func:`march_window`: the next ``window`` occupied samples of each live ray, resuming at the lattice index
  the previous window stopped at (:func:`warp_kernels.ray_marching.find_next_sample`, the same empty-space
  skipping as :func:`warp_kernels.ray_marching.march_rays`), into fixed slots ``[a * window, a * window +
  counts[a])`` of live ray ``a``; the windows of a ray, concatenated, are exactly the samples
  ``march_rays(..., jitter=False)`` gives it;
* :func:`composite_window_density`: advances each ray's transmittance, opacity and depth over its slots and
  gives the weights of the samples it still sees (the rest get -1, so they never need a colour);
* :func:`composite_window_colors`: adds ``w * rgb`` of those samples.

The float32 operations and their order are those of :func:`warp_kernels.volume_rendering.composite_rays`, so
the accumulated colour, opacity and depth equal compositing the ray's packed samples in one go, whatever the
window sizes (a window only decides how many densities past the termination point are evaluated in vain).
All kernels are per live ray (disjoint writes), split across CPU cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import warp as wp

from .device import KernelArgumentError, check_array, common_device
from .occupancy_grid import NERF_CASCADES, NERF_GRID_N_CELLS
from .parallel import launch_split
from .ray_marching import (
    DEFAULT_MAX_SAMPLES_PER_RAY,
    StepParams,
    default_aabb,
    default_cone_angle,
    find_next_sample,
    make_step_params,
    march_span,
)
from .volume_rendering import DEFAULT_MIN_TRANSMITTANCE, alpha_from_optical_depth

__all__ = [
    "MarchState",
    "WindowSamples",
    "march_spans",
    "march_window",
    "composite_window_density",
    "composite_window_colors",
]

wp.set_module_options({"enable_backward": False})


@wp.kernel
def _span_kernel(
    offset: int,
    origins: wp.array(dtype=wp.vec3),
    directions: wp.array(dtype=wp.vec3),
    aabb_min: wp.vec3,
    aabb_max: wp.vec3,
    params: StepParams,
    t_min: float,
    t_max: float,
    spans: wp.array(dtype=wp.vec3),
    next_index: wp.array(dtype=wp.int32),
    n_emitted: wp.array(dtype=wp.int32),
):
    r = wp.tid() + offset
    spans[r] = march_span(origins[r], directions[r], aabb_min, aabb_max, t_min, t_max, params, 0, wp.uint32(0), r)
    next_index[r] = wp.int32(0)
    n_emitted[r] = wp.int32(0)


@wp.kernel
def _window_kernel(
    offset: int,
    rays: wp.array(dtype=wp.int32),
    origins: wp.array(dtype=wp.vec3),
    directions: wp.array(dtype=wp.vec3),
    spans: wp.array(dtype=wp.vec3),
    bitfield: wp.array(dtype=wp.uint8),
    max_cascade: int,
    aabb_min: wp.vec3,
    aabb_max: wp.vec3,
    params: StepParams,
    max_samples_per_ray: int,
    window: int,
    next_index: wp.array(dtype=wp.int32),
    n_emitted: wp.array(dtype=wp.int32),
    counts: wp.array(dtype=wp.int32),
    finished: wp.array(dtype=wp.int32),
    valid: wp.array(dtype=float),
    t_starts: wp.array(dtype=float),
    t_ends: wp.array(dtype=float),
    positions: wp.array(dtype=wp.vec3),
    sample_dirs: wp.array(dtype=wp.vec3),
):
    a = wp.tid() + offset
    r = int(rays[a])
    o = origins[r]
    d = directions[r]
    span = spans[r]
    k = int(next_index[r])
    j = int(n_emitted[r])
    base = a * window
    c = int(0)
    done = int(0)
    while c < window:
        if j >= max_samples_per_ray:
            done = 1
            break
        kf, t, dt, pos = find_next_sample(o, d, span, k, params, bitfield, max_cascade, aabb_min, aabb_max)
        if kf < 0:
            done = 1
            break
        s = base + c
        t_starts[s] = t
        t_ends[s] = t + dt
        positions[s] = pos
        sample_dirs[s] = d
        valid[s] = 1.0
        c += 1
        j += 1
        k = kf + 1
    if j >= max_samples_per_ray:
        done = 1
    for i in range(c, window):
        valid[base + i] = 0.0
    next_index[r] = wp.int32(k)
    n_emitted[r] = wp.int32(j)
    counts[a] = wp.int32(c)
    finished[a] = wp.int32(done)


@wp.kernel
def _window_density_kernel(
    offset: int,
    rays: wp.array(dtype=wp.int32),
    counts: wp.array(dtype=wp.int32),
    finished: wp.array(dtype=wp.int32),
    window: int,
    t_starts: wp.array(dtype=float),
    t_ends: wp.array(dtype=float),
    sigmas: wp.array(dtype=float),
    min_transmittance: float,
    transmittance: wp.array(dtype=float),
    opacities: wp.array(dtype=float),
    depths: wp.array(dtype=float),
    weights: wp.array(dtype=float),
    alive: wp.array(dtype=float),
):
    # the float32 operations of volume_rendering._composite_kernel, in its order
    a = wp.tid() + offset
    r = int(rays[a])
    base = a * window
    T = transmittance[r]
    o = opacities[r]
    dep = depths[r]
    for i in range(window):
        weights[base + i] = -1.0
    for i in range(int(counts[a])):
        if T < min_transmittance:
            break
        s = base + i
        ts = t_starts[s]
        te = t_ends[s]
        x = sigmas[s] * (te - ts)
        w = T * alpha_from_optical_depth(x)
        weights[s] = w
        o = o + w
        dep = dep + w * 0.5 * (ts + te)
        T = T * wp.exp(-x)
    transmittance[r] = T
    opacities[r] = o
    depths[r] = dep
    more = float(0.0)
    if T >= min_transmittance:
        if finished[a] == 0:
            more = 1.0
    alive[a] = more


@wp.kernel
def _window_color_kernel(
    offset: int,
    rays: wp.array(dtype=wp.int32),
    window: int,
    weights: wp.array(dtype=float),
    rgbs: wp.array(dtype=wp.vec3),
    colors: wp.array(dtype=wp.vec3),
):
    a = wp.tid() + offset
    r = int(rays[a])
    base = a * window
    c = colors[r]
    for i in range(window):
        w = weights[base + i]
        if w < 0.0:
            break
        c = c + w * rgbs[base + i]
    colors[r] = c


@dataclass(frozen=True)
class MarchState:
    """Per-ray state of windowed marching (all ``[n_rays]`` on one device).

    Attributes:
        spans: wp.vec3 ``(t0, t1, n0)``: the clipped interval and the stepping-space position of lattice index 0
            (``t0 > t1``: no samples).
        next_index: int32 lattice index the next window starts at.
        n_emitted: int32 samples emitted so far (capped by ``max_samples_per_ray``).
        n_cascades: cascades of the bitfield the rays are marched through.
        aabb: ``(min, max)`` box as ``wp.vec3``.
        params: stepping-space constants.
    """

    spans: wp.array
    next_index: wp.array
    n_emitted: wp.array
    n_cascades: int
    aabb: tuple[wp.vec3, wp.vec3]
    params: StepParams


@dataclass(frozen=True)
class WindowSamples:
    """Samples of one window: live ray ``a`` owns slots ``[a * window, a * window + counts[a])``.

    Attributes:
        window: slots per live ray.
        counts: int32 ``[A]`` samples in each ray's slots.
        finished: int32 ``[A]`` 1 when the ray has no sample after this window (left its interval or reached
            ``max_samples_per_ray``).
        valid: float32 ``[A * window]`` 1 for a filled slot, 0 for an empty one.
        t_starts, t_ends: float32 ``[A * window]`` sample intervals (unit directions: distances).
        positions, directions: float32 ``[A * window, 3]`` sample points (interval starts) and ray directions.
    """

    window: int
    counts: wp.array
    finished: wp.array
    valid: wp.array
    t_starts: wp.array
    t_ends: wp.array
    positions: wp.array
    directions: wp.array


def _vec3(a: wp.array, name: str, n: int | None, dev) -> wp.array:
    if isinstance(a, wp.array) and a.dtype == wp.float32 and a.ndim == 2 and a.shape[1] == 3:
        check_array(a, name, shape=(n, 3), device=dev)
        if not a.is_contiguous:
            raise KernelArgumentError(f"{name} must be contiguous")
        return a.view(wp.vec3)
    check_array(a, name, dtype=wp.vec3, shape=(n,), device=dev)
    return a


def march_spans(
    origins: wp.array,
    directions: wp.array,
    *,
    n_cascades: int,
    aabb=None,
    cone_angle: float | None = None,
    t_min: float = 0.0,
    t_max: float = math.inf,
    device: wp.context.Devicelike = None,
) -> MarchState:
    """Start windowed marching of rays (no jitter: inference).

    Args:
        origins, directions: wp.vec3 ``[n]`` or float32 ``[n, 3]``, internal space, unit directions.
        n_cascades: cascades K of the bitfield (1..8).
        aabb: ``((x0, y0, z0), (x1, y1, z1))``; default the cube of side ``2**(K-1)`` around 0.5.
        cone_angle: step growth; default 1/256 when K > 1 else 0 (instant-ngp).
        t_min, t_max: near and far distance.
        device: launch device; ``None`` = the arrays' device.

    Returns:
        :class:`MarchState` with every ray at its first sample.
    """
    dev = common_device([origins, directions], device)
    origins = _vec3(origins, "origins", None, dev)
    n = origins.shape[0]
    directions = _vec3(directions, "directions", n, dev)
    if not (isinstance(n_cascades, (int, np.integer)) and 1 <= n_cascades <= NERF_CASCADES):
        raise KernelArgumentError(f"n_cascades must be an int in [1, {NERF_CASCADES}], got {n_cascades!r}")
    if math.isnan(t_min) or math.isnan(t_max):
        raise KernelArgumentError("t_min and t_max must not be NaN")
    lo, hi = default_aabb(n_cascades) if aabb is None else aabb
    lo = np.asarray(lo, dtype=np.float64).reshape(-1)
    hi = np.asarray(hi, dtype=np.float64).reshape(-1)
    if lo.shape != (3,) or hi.shape != (3,) or not np.all(np.isfinite(lo)) or not np.all(lo <= hi):
        raise KernelArgumentError(f"aabb must be ((x0, y0, z0), (x1, y1, z1)) with min <= max, got {aabb!r}")
    box = (wp.vec3(*lo.tolist()), wp.vec3(*hi.tolist()))
    params = make_step_params(default_cone_angle(n_cascades) if cone_angle is None else float(cone_angle))
    spans = wp.empty(n, dtype=wp.vec3, device=dev)
    next_index = wp.empty(n, dtype=wp.int32, device=dev)
    n_emitted = wp.empty(n, dtype=wp.int32, device=dev)
    t_lo = float(np.clip(t_min, -3.0e38, 3.0e38))
    t_hi = float(np.clip(t_max, -3.0e38, 3.0e38))
    launch_split(_span_kernel, n, [origins, directions, *box, params, t_lo, t_hi, spans, next_index, n_emitted], dev)
    return MarchState(spans, next_index, n_emitted, int(n_cascades), box, params)


def march_window(
    state: MarchState,
    origins: wp.array,
    directions: wp.array,
    bitfield: wp.array,
    rays: wp.array,
    window: int,
    *,
    max_samples_per_ray: int = DEFAULT_MAX_SAMPLES_PER_RAY,
    out: WindowSamples | None = None,
    device: wp.context.Devicelike = None,
) -> WindowSamples:
    """March the next ``window`` samples of the live rays ``rays`` and advance their state.

    Args:
        state: from :func:`march_spans` of the same rays (updated in place).
        origins, directions: the rays given to :func:`march_spans`.
        bitfield: uint8 ``[n_cascades * 128**3 / 8]`` occupancy bitfield.
        rays: int32 ``[A]`` distinct ray indices (the live rays).
        window: samples per ray in this window (>= 1).
        max_samples_per_ray: cap on a ray's samples over all windows.
        out: optional buffers of at least ``A * window`` slots (``A`` for counts/finished) to write into (views of
            their prefixes are returned).
        device: launch device; ``None`` = the arrays' device.

    Returns:
        :class:`WindowSamples`.
    """
    dev = common_device([origins, directions, bitfield, rays, state.spans], device)
    origins = _vec3(origins, "origins", None, dev)
    n = origins.shape[0]
    directions = _vec3(directions, "directions", n, dev)
    check_array(state.spans, "state.spans", dtype=wp.vec3, shape=(n,), device=dev)
    check_array(bitfield, "bitfield", dtype=wp.uint8, shape=(state.n_cascades * NERF_GRID_N_CELLS // 8,),
                device=dev)
    check_array(rays, "rays", dtype=wp.int32, shape=(None,), device=dev)
    if not (isinstance(window, (int, np.integer)) and window >= 1):
        raise KernelArgumentError(f"window must be an int >= 1, got {window!r}")
    if max_samples_per_ray < 0:
        raise KernelArgumentError(f"max_samples_per_ray must be >= 0, got {max_samples_per_ray}")
    a = rays.shape[0]
    if a and dev.is_cpu:
        ids = rays.numpy()
        if ids.min() < 0 or ids.max() >= n:
            raise KernelArgumentError(f"rays must lie in [0, {n})")
    s = a * int(window)
    out = _window_buffers(a, s, dev) if out is None else _window_views(out, a, s, dev)
    launch_split(
        _window_kernel,
        a,
        [rays, origins, directions, state.spans, bitfield, state.n_cascades - 1, *state.aabb, state.params,
         int(max_samples_per_ray), int(window), state.next_index, state.n_emitted, out.counts, out.finished,
         out.valid, out.t_starts, out.t_ends, out.positions.view(wp.vec3), out.directions.view(wp.vec3)],
        dev,
    )
    return WindowSamples(int(window), *(getattr(out, f) for f in _FIELDS))


_FIELDS = ("counts", "finished", "valid", "t_starts", "t_ends", "positions", "directions")


def _window_buffers(a: int, s: int, dev) -> WindowSamples:
    return WindowSamples(
        0,
        wp.empty(a, dtype=wp.int32, device=dev),
        wp.empty(a, dtype=wp.int32, device=dev),
        wp.empty(s, dtype=wp.float32, device=dev),
        wp.empty(s, dtype=wp.float32, device=dev),
        wp.empty(s, dtype=wp.float32, device=dev),
        wp.empty((s, 3), dtype=wp.float32, device=dev),
        wp.empty((s, 3), dtype=wp.float32, device=dev),
    )


def _window_views(out: WindowSamples, a: int, s: int, dev) -> WindowSamples:
    views = []
    for f in _FIELDS:
        arr = getattr(out, f)
        need = a if f in ("counts", "finished") else s
        check_array(arr, f"out.{f}", device=dev)
        if arr.shape[0] < need:
            raise KernelArgumentError(f"out.{f} holds {arr.shape[0]} entries, need {need}")
        views.append(arr[:need])
    return WindowSamples(0, *views)


def composite_window_density(
    samples: WindowSamples,
    sigmas: wp.array,
    rays: wp.array,
    transmittance: wp.array,
    opacities: wp.array,
    depths: wp.array,
    *,
    min_transmittance: float = DEFAULT_MIN_TRANSMITTANCE,
    weights: wp.array | None = None,
    alive: wp.array | None = None,
    device: wp.context.Devicelike = None,
) -> tuple[wp.array, wp.array]:
    """Composite a window's densities into the per-ray accumulators (front to back, in place).

    Args:
        samples: the window (:func:`march_window`) of the live rays ``rays [A]``.
        sigmas: float32 ``[A * window]`` activated densities of its slots (only filled slots are read).
        rays: int32 ``[A]`` the live rays.
        transmittance: float32 ``[n_rays]`` transmittance so far (start at 1).
        opacities: float32 ``[n_rays]`` ``sum w`` so far (start at 0).
        depths: float32 ``[n_rays]`` ``sum w * t_mid`` so far (start at 0).
        min_transmittance: early termination (as :func:`warp_kernels.volume_rendering.composite_rays`).
        weights, alive: optional outputs (float32 ``[>= A * window]``, ``[>= A]``).
        device: launch device; ``None`` = the arrays' device.

    Returns:
        ``(weights [A * window], alive [A])``: the weight of every sample the ray still sees (>= 0; -1 for slots
        it does not: empty, or behind the termination point), and 1.0 for rays that may see more (transmittance
        >= ``min_transmittance`` and not finished), else 0.0.
    """
    dev = common_device([sigmas, rays, transmittance, opacities, depths, weights, alive], device)
    a, s = _check_window(samples, rays, dev)
    check_array(sigmas, "sigmas", dtype=wp.float32, shape=(s,), device=dev)
    n = transmittance.shape[0]
    for arr, name in ((transmittance, "transmittance"), (opacities, "opacities"), (depths, "depths")):
        check_array(arr, name, dtype=wp.float32, shape=(n,), device=dev)
    if not 0.0 <= min_transmittance < 1.0:
        raise KernelArgumentError(f"min_transmittance must be in [0, 1), got {min_transmittance}")
    weights = _out(weights, "weights", s, dev)
    alive = _out(alive, "alive", a, dev)
    launch_split(
        _window_density_kernel,
        a,
        [rays, samples.counts, samples.finished, samples.window, samples.t_starts, samples.t_ends, sigmas,
         float(min_transmittance), transmittance, opacities, depths, weights, alive],
        dev,
    )
    return weights, alive


def composite_window_colors(
    samples: WindowSamples,
    weights: wp.array,
    rgbs: wp.array,
    rays: wp.array,
    colors: wp.array,
    *,
    device: wp.context.Devicelike = None,
) -> wp.array:
    """Add ``sum w * rgb`` over a window's visible samples (``weights >= 0``, from
    :func:`composite_window_density`) to ``colors`` (float32 ``[n_rays, 3]`` or wp.vec3 ``[n_rays]``, in place,
    start at 0). ``rgbs``: float32 ``[A * window, 3]`` (rows of invisible slots are not read). Returns ``colors``.
    """
    dev = common_device([weights, rgbs, rays, colors], device)
    a, s = _check_window(samples, rays, dev)
    check_array(weights, "weights", dtype=wp.float32, shape=(s,), device=dev)
    rgb3 = _vec3(rgbs, "rgbs", s, dev)
    col3 = _vec3(colors, "colors", None, dev)
    launch_split(_window_color_kernel, a, [rays, samples.window, weights, rgb3, col3], dev)
    return colors


def _check_window(samples: WindowSamples, rays: wp.array, dev) -> tuple[int, int]:
    check_array(rays, "rays", dtype=wp.int32, shape=(None,), device=dev)
    a = rays.shape[0]
    s = a * samples.window
    check_array(samples.counts, "samples.counts", dtype=wp.int32, shape=(a,), device=dev)
    check_array(samples.t_starts, "samples.t_starts", dtype=wp.float32, shape=(s,), device=dev)
    return a, s


def _out(arr: wp.array | None, name: str, n: int, dev) -> wp.array:
    if arr is None:
        return wp.empty(n, dtype=wp.float32, device=dev)
    check_array(arr, name, dtype=wp.float32, shape=(None,), device=dev)
    if arr.shape[0] < n:
        raise KernelArgumentError(f"{name} holds {arr.shape[0]} entries, need {n}")
    return arr[:n]
