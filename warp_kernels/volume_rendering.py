"""Volume rendering on packed samples: weights from densities, compositing, and the hand-written backward.

Per ray, samples ``i = 0..N-1`` in order of increasing t (the layout of
:class:`warp_kernels.ray_marching.RaySamples`: ray ``r`` owns ``[packed_info[r, 0], packed_info[r, 0] +
packed_info[r, 1])``), with activated density ``sigma_i >= 0`` (1/length), interval ``dt_i = t_end - t_start``
and midpoint ``m_i = (t_start + t_end) / 2``:

* ``alpha_i = 1 - exp(-sigma_i * dt_i)``, ``T_0 = 1``, ``T_{i+1} = T_i * (1 - alpha_i)``,
  ``w_i = T_i * alpha_i``;
* **early termination** (instant-ngp ``compute_loss_kernel_train_nerf``): a sample whose transmittance on
  arrival ``T_i`` is below ``min_transmittance`` (default 1e-4), and every later sample of the ray, gets
  weight 0 and gradient 0. ``min_transmittance=0`` disables it;
* colour ``C = sum_i w_i c_i + (1 - O) * bg`` (``bg`` optional, per ray or constant), opacity
  ``O = sum_i w_i`` (= ``1 - T_K`` after the K kept samples), depth ``D = sum_i w_i m_i`` (not normalised
  by O).

The backward is O(samples) per ray (instant-ngp / nerfacc): a forward pass stores ``T_{i+1}`` in the gradient
array, then a reverse pass accumulates the suffix sums ``S_j = sum_{i>j} w_i q_i`` directly (no
``total - prefix`` cancellation), with ``q_i = <dL/dC, c_i> + dL/dO + dL/dD m_i + dL/dw_i``::

    dL/dsigma_j = dt_j * (T_{j+1} q_j - S_j - T_K <dL/dC, bg>)
    dL/dc_j     = w_j dL/dC
    dL/dbg      = (1 - O) dL/dC

All kernels are per ray and write only their own ray's samples, so CPU launches split across threads and the
results are deterministic on CPU and CUDA (no atomics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import warp as wp

from .device import KernelArgumentError, check_array, common_device
from .parallel import launch_split

__all__ = [
    "DEFAULT_MIN_TRANSMITTANCE",
    "alpha_from_optical_depth",
    "RenderedRays",
    "CompositeGradients",
    "render_weight_from_density",
    "render_weight_from_density_backward",
    "composite_rays",
    "composite_rays_backward",
]

#: instant-ngp's training EPSILON: samples reached with less transmittance are dropped.
DEFAULT_MIN_TRANSMITTANCE = 1e-4

#: below this optical thickness alpha uses a series (1 - exp(-x) cancels in float32)
_SERIES_X = wp.constant(0.05)


@wp.func
def alpha_from_optical_depth(x: float) -> float:
    """``1 - exp(-x)`` for ``x >= 0``, accurate for small x."""
    if x < _SERIES_X:
        return x * (1.0 - 0.5 * x * (1.0 - x / 3.0 * (1.0 - 0.25 * x)))
    return 1.0 - wp.exp(-x)


@wp.kernel
def _weights_kernel(
    offset: int,
    packed_info: wp.array2d(dtype=wp.int32),
    t_starts: wp.array(dtype=float),
    t_ends: wp.array(dtype=float),
    sigmas: wp.array(dtype=float),
    min_transmittance: float,
    weights: wp.array(dtype=float),
    transmittance: wp.array(dtype=float),
    alphas: wp.array(dtype=float),
):
    r = wp.tid() + offset
    start = int(packed_info[r, 0])
    count = int(packed_info[r, 1])
    T = wp.float32(1.0)
    for s in range(start, start + count):
        x = sigmas[s] * (t_ends[s] - t_starts[s])
        a = alpha_from_optical_depth(x)
        transmittance[s] = T
        alphas[s] = a
        # T only decreases: once below the threshold, every later sample is terminated too
        if T < min_transmittance:
            weights[s] = 0.0
        else:
            weights[s] = T * a
        T = T * wp.exp(-x)


@wp.kernel
def _composite_kernel(
    offset: int,
    packed_info: wp.array2d(dtype=wp.int32),
    t_starts: wp.array(dtype=float),
    t_ends: wp.array(dtype=float),
    sigmas: wp.array(dtype=float),
    rgbs: wp.array(dtype=wp.vec3),
    background: wp.array(dtype=wp.vec3),
    bg_stride: int,
    min_transmittance: float,
    colors: wp.array(dtype=wp.vec3),
    opacities: wp.array(dtype=float),
    depths: wp.array(dtype=float),
):
    r = wp.tid() + offset
    start = int(packed_info[r, 0])
    count = int(packed_info[r, 1])
    T = wp.float32(1.0)
    c = wp.vec3(0.0)
    o = wp.float32(0.0)
    dep = wp.float32(0.0)
    for s in range(start, start + count):
        if T < min_transmittance:
            break
        ts = t_starts[s]
        te = t_ends[s]
        x = sigmas[s] * (te - ts)
        w = T * alpha_from_optical_depth(x)
        c = c + w * rgbs[s]
        o = o + w
        dep = dep + w * 0.5 * (ts + te)
        T = T * wp.exp(-x)
    colors[r] = c + (1.0 - o) * background[r * bg_stride]
    opacities[r] = o
    depths[r] = dep


@wp.kernel
def _backward_kernel(
    offset: int,
    packed_info: wp.array2d(dtype=wp.int32),
    t_starts: wp.array(dtype=float),
    t_ends: wp.array(dtype=float),
    sigmas: wp.array(dtype=float),
    rgbs: wp.array(dtype=wp.vec3),
    rgb_stride: int,
    background: wp.array(dtype=wp.vec3),
    bg_stride: int,
    grad_colors: wp.array(dtype=wp.vec3),
    gc_stride: int,
    grad_opacities: wp.array(dtype=float),
    go_stride: int,
    grad_depths: wp.array(dtype=float),
    gd_stride: int,
    grad_weights: wp.array(dtype=float),
    gw_stride: int,
    min_transmittance: float,
    grad_sigmas: wp.array(dtype=float),
    grad_rgbs: wp.array(dtype=wp.vec3),
    write_rgb_grad: int,
    grad_background: wp.array(dtype=wp.vec3),
    write_bg_grad: int,
):
    r = wp.tid() + offset
    start = int(packed_info[r, 0])
    count = int(packed_info[r, 1])
    gc = grad_colors[r * gc_stride]
    go = grad_opacities[r * go_stride]
    gd = grad_depths[r * gd_stride]

    # forward: K kept samples; grad_sigmas[s] temporarily holds T_{s+1}
    T = wp.float32(1.0)
    kept = wp.int32(0)
    o = wp.float32(0.0)
    for s in range(start, start + count):
        if T < min_transmittance:
            break
        x = sigmas[s] * (t_ends[s] - t_starts[s])
        o = o + T * alpha_from_optical_depth(x)
        T = T * wp.exp(-x)
        grad_sigmas[s] = T
        kept += 1
    t_final = T
    bg_term = t_final * wp.dot(gc, background[r * bg_stride])

    # samples after termination: no weight, no gradient
    for s in range(start + kept, start + count):
        grad_sigmas[s] = 0.0
        if write_rgb_grad != 0:
            grad_rgbs[s] = wp.vec3(0.0)

    # reverse: suffix sums S_j = sum_{i>j} w_i q_i
    suffix = wp.float32(0.0)
    for jj in range(kept):
        s = start + kept - 1 - jj
        ts = t_starts[s]
        te = t_ends[s]
        dt = te - ts
        t_next = grad_sigmas[s]
        t_here = wp.float32(1.0)
        if s > start:
            t_here = grad_sigmas[s - 1]
        w = t_here * alpha_from_optical_depth(sigmas[s] * dt)
        q = wp.dot(gc, rgbs[s * rgb_stride]) + go + gd * 0.5 * (ts + te) + grad_weights[s * gw_stride]
        grad_sigmas[s] = dt * (t_next * q - suffix - bg_term)
        if write_rgb_grad != 0:
            grad_rgbs[s] = w * gc
        suffix = suffix + w * q
    if write_bg_grad != 0:
        grad_background[r] = (1.0 - o) * gc


@dataclass(frozen=True)
class RenderedRays:
    """Per-ray outputs of :func:`composite_rays`: colors float32 ``[n, 3]``, opacities and depths ``[n]``."""

    colors: wp.array
    opacities: wp.array
    depths: wp.array


@dataclass(frozen=True)
class CompositeGradients:
    """Gradients of :func:`composite_rays_backward`.

    Attributes:
        sigmas: float32 ``[S]`` dL/dsigma.
        rgbs: float32 ``[S, 3]`` dL/drgb.
        background: float32 ``[n, 3]`` dL/dbg per ray (sum over rays for a constant background), or None
            without a background.
    """

    sigmas: wp.array
    rgbs: wp.array
    background: wp.array | None


def _vec3_input(a, name: str, shape0: int | None, device: wp.context.Device) -> wp.array:
    """Accept wp.vec3 ``[n]`` or contiguous float32 ``[n, 3]`` (viewed as vec3, no copy)."""
    if isinstance(a, wp.array) and a.dtype == wp.float32 and a.ndim == 2 and a.shape[1] == 3:
        check_array(a, name, shape=(shape0, 3), device=device)
        if not a.is_contiguous:
            raise KernelArgumentError(f"{name} must be contiguous")
        return a.view(wp.vec3)
    check_array(a, name, dtype=wp.vec3, shape=(shape0,), device=device)
    return a


def _check_samples(packed_info, t_starts, t_ends, sigmas, device) -> tuple[int, int]:
    check_array(packed_info, "packed_info", dtype=wp.int32, shape=(None, 2), device=device)
    check_array(t_starts, "t_starts", dtype=wp.float32, shape=(None,), device=device)
    n_samples = t_starts.shape[0]
    check_array(t_ends, "t_ends", dtype=wp.float32, shape=(n_samples,), device=device)
    check_array(sigmas, "sigmas", dtype=wp.float32, shape=(n_samples,), device=device)
    if device.is_cpu and packed_info.shape[0]:
        info = packed_info.numpy()
        if info.min() < 0 or int((info[:, 0].astype(np.int64) + info[:, 1]).max()) > n_samples:
            raise KernelArgumentError(f"packed_info addresses samples outside [0, {n_samples})")
    return packed_info.shape[0], n_samples


def _background(background, n_rays: int, device) -> tuple[wp.array, int]:
    """``(array, stride)``: None -> black, 3 floats -> constant, wp.vec3 [n] / float32 [n, 3] -> per ray."""
    if background is None:
        return wp.zeros(1, dtype=wp.vec3, device=device), 0
    if isinstance(background, wp.array):
        return _vec3_input(background, "background", n_rays, device), 1
    vals = [float(v) for v in background]
    if len(vals) != 3:
        raise KernelArgumentError(f"background must be None, 3 floats or a per-ray array, got {background!r}")
    return wp.array([wp.vec3(*vals)], dtype=wp.vec3, device=device), 0


def _optional_per_ray(a, name: str, dtype, n_rays: int, device) -> tuple[wp.array, int]:
    if a is None:
        return wp.zeros(1, dtype=dtype, device=device), 0
    if dtype == wp.vec3:
        return _vec3_input(a, name, n_rays, device), 1
    check_array(a, name, dtype=dtype, shape=(n_rays,), device=device)
    return a, 1


def _check_min_transmittance(v: float) -> float:
    if not 0.0 <= v < 1.0:
        raise KernelArgumentError(f"min_transmittance must be in [0, 1), got {v}")
    return float(v)


def render_weight_from_density(
    t_starts: wp.array,
    t_ends: wp.array,
    sigmas: wp.array,
    packed_info: wp.array,
    *,
    min_transmittance: float = DEFAULT_MIN_TRANSMITTANCE,
    device: wp.context.Devicelike = None,
) -> tuple[wp.array, wp.array, wp.array]:
    """Per-sample rendering weights ``w_i = T_i * alpha_i`` (nerfacc ``render_weight_from_density``).

    Args:
        t_starts: float32 ``[S]`` interval starts (distance units).
        t_ends: float32 ``[S]`` interval ends.
        sigmas: float32 ``[S]`` activated densities (>= 0, 1/distance units).
        packed_info: int32 ``[n_rays, 2]`` ``(first sample, count)`` per ray (checked on CPU; on CUDA an
            out-of-range entry is undefined behaviour); samples of no ray get 0.
        min_transmittance: early-termination threshold (samples arriving with ``T_i`` below it get weight 0).
        device: launch device; ``None`` = the arrays' device.

    Returns:
        ``(weights, transmittance, alphas)``, float32 ``[S]`` each; ``transmittance[i] = T_i`` on arrival and
        ``alphas`` are reported for every sample, terminated or not.
    """
    dev = common_device([t_starts, t_ends, sigmas, packed_info], device)
    n_rays, n_samples = _check_samples(packed_info, t_starts, t_ends, sigmas, dev)
    min_t = _check_min_transmittance(min_transmittance)
    weights = wp.zeros(n_samples, dtype=wp.float32, device=dev)
    trans = wp.zeros(n_samples, dtype=wp.float32, device=dev)
    alphas = wp.zeros(n_samples, dtype=wp.float32, device=dev)
    launch_split(
        _weights_kernel, n_rays, [packed_info, t_starts, t_ends, sigmas, min_t, weights, trans, alphas], dev
    )
    return weights, trans, alphas


def render_weight_from_density_backward(
    t_starts: wp.array,
    t_ends: wp.array,
    sigmas: wp.array,
    packed_info: wp.array,
    grad_weights: wp.array,
    *,
    min_transmittance: float = DEFAULT_MIN_TRANSMITTANCE,
    device: wp.context.Devicelike = None,
) -> wp.array:
    """dL/dsigma ``[S]`` from dL/dweights ``[S]`` (float32): ``dt_j (T_{j+1} g_j - sum_{i>j} w_i g_i)``."""
    dev = common_device([t_starts, t_ends, sigmas, packed_info, grad_weights], device)
    n_rays, n_samples = _check_samples(packed_info, t_starts, t_ends, sigmas, dev)
    check_array(grad_weights, "grad_weights", dtype=wp.float32, shape=(n_samples,), device=dev)
    grads = _run_backward(
        dev,
        n_rays,
        n_samples,
        packed_info,
        t_starts,
        t_ends,
        sigmas,
        None,
        None,
        None,
        None,
        None,
        grad_weights,
        _check_min_transmittance(min_transmittance),
        want_rgb=False,
    )
    return grads.sigmas


def composite_rays(
    t_starts: wp.array,
    t_ends: wp.array,
    sigmas: wp.array,
    rgbs: wp.array,
    packed_info: wp.array,
    *,
    background=None,
    min_transmittance: float = DEFAULT_MIN_TRANSMITTANCE,
    device: wp.context.Devicelike = None,
) -> RenderedRays:
    """Composite packed samples into per-ray colour, opacity and depth (instant-ngp / nerfacc).

    Args:
        t_starts: float32 ``[S]`` interval starts.
        t_ends: float32 ``[S]`` interval ends.
        sigmas: float32 ``[S]`` activated densities (>= 0).
        rgbs: per-sample colours, wp.vec3 ``[S]`` or float32 ``[S, 3]``.
        packed_info: int32 ``[n_rays, 2]`` ``(first sample, count)``.
        background: None (black), 3 floats (one colour), or wp.vec3 ``[n_rays]`` / float32 ``[n_rays, 3]``;
            composited as ``C + (1 - O) * bg``.
        min_transmittance: early-termination threshold (see the module docstring).
        device: launch device; ``None`` = the arrays' device.

    Returns:
        :class:`RenderedRays`: colors float32 ``[n, 3]``, opacities ``[n]``, depths ``[n]``
        (``sum_i w_i t_mid_i``).
    """
    dev = common_device([t_starts, t_ends, sigmas, rgbs, packed_info], device)
    n_rays, n_samples = _check_samples(packed_info, t_starts, t_ends, sigmas, dev)
    rgbs = _vec3_input(rgbs, "rgbs", n_samples, dev)
    bg, bg_stride = _background(background, n_rays, dev)
    colors = wp.empty((n_rays, 3), dtype=wp.float32, device=dev)
    opacities = wp.empty(n_rays, dtype=wp.float32, device=dev)
    depths = wp.empty(n_rays, dtype=wp.float32, device=dev)
    launch_split(
        _composite_kernel,
        n_rays,
        [
            packed_info,
            t_starts,
            t_ends,
            sigmas,
            rgbs,
            bg,
            bg_stride,
            _check_min_transmittance(min_transmittance),
            colors.view(wp.vec3),
            opacities,
            depths,
        ],
        dev,
    )
    return RenderedRays(colors, opacities, depths)


def composite_rays_backward(
    t_starts: wp.array,
    t_ends: wp.array,
    sigmas: wp.array,
    rgbs: wp.array,
    packed_info: wp.array,
    grad_colors: wp.array | None,
    grad_opacities: wp.array | None = None,
    grad_depths: wp.array | None = None,
    *,
    background=None,
    min_transmittance: float = DEFAULT_MIN_TRANSMITTANCE,
    device: wp.context.Devicelike = None,
) -> CompositeGradients:
    """Backward of :func:`composite_rays` (same inputs) given per-ray output gradients.

    Args:
        grad_colors: dL/dcolor, wp.vec3 ``[n]`` or float32 ``[n, 3]``; None = 0.
        grad_opacities: dL/dopacity float32 ``[n]``; None = 0.
        grad_depths: dL/ddepth float32 ``[n]``; None = 0.
        Other arguments as :func:`composite_rays`.

    Returns:
        :class:`CompositeGradients` (dL/dsigma ``[S]``, dL/drgb ``[S]``, dL/dbg per ray or None).
    """
    dev = common_device(
        [t_starts, t_ends, sigmas, rgbs, packed_info, grad_colors, grad_opacities, grad_depths], device
    )
    n_rays, n_samples = _check_samples(packed_info, t_starts, t_ends, sigmas, dev)
    rgbs = _vec3_input(rgbs, "rgbs", n_samples, dev)
    return _run_backward(
        dev,
        n_rays,
        n_samples,
        packed_info,
        t_starts,
        t_ends,
        sigmas,
        rgbs,
        background,
        grad_colors,
        grad_opacities,
        grad_depths,
        None,
        _check_min_transmittance(min_transmittance),
        want_rgb=True,
    )


def _run_backward(
    dev,
    n_rays,
    n_samples,
    packed_info,
    t_starts,
    t_ends,
    sigmas,
    rgbs,
    background,
    grad_colors,
    grad_opacities,
    grad_depths,
    grad_weights,
    min_t,
    *,
    want_rgb: bool,
) -> CompositeGradients:
    rgb_arr, rgb_stride = (wp.zeros(1, dtype=wp.vec3, device=dev), 0) if rgbs is None else (rgbs, 1)
    bg, bg_stride = _background(background, n_rays, dev)
    gc, gc_stride = _optional_per_ray(grad_colors, "grad_colors", wp.vec3, n_rays, dev)
    go, go_stride = _optional_per_ray(grad_opacities, "grad_opacities", wp.float32, n_rays, dev)
    gd, gd_stride = _optional_per_ray(grad_depths, "grad_depths", wp.float32, n_rays, dev)
    gw, gw_stride = (
        (wp.zeros(1, dtype=wp.float32, device=dev), 0) if grad_weights is None else (grad_weights, 1)
    )
    # zeros: samples outside every ray's range keep a zero gradient
    grad_sigmas = wp.zeros(n_samples, dtype=wp.float32, device=dev)
    grad_rgbs = wp.zeros((n_samples if want_rgb else 1, 3), dtype=wp.float32, device=dev)
    want_bg = want_rgb and background is not None
    grad_bg = wp.zeros((n_rays if want_bg else 1, 3), dtype=wp.float32, device=dev)
    launch_split(
        _backward_kernel,
        n_rays,
        [
            packed_info,
            t_starts,
            t_ends,
            sigmas,
            rgb_arr,
            rgb_stride,
            bg,
            bg_stride,
            gc,
            gc_stride,
            go,
            go_stride,
            gd,
            gd_stride,
            gw,
            gw_stride,
            min_t,
            grad_sigmas,
            grad_rgbs.view(wp.vec3),
            int(want_rgb),
            grad_bg.view(wp.vec3),
            int(want_bg),
        ],
        dev,
    )
    return CompositeGradients(grad_sigmas, grad_rgbs if want_rgb else None, grad_bg if want_bg else None)
