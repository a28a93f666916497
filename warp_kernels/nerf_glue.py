"""Glue between the pieces of a NeRF field (instant-ngp's ``NerfNetwork``) on packed samples.

The field is ``hash grid(x) -> density MLP -> 16 outputs``; output 0 is log-density, so
``sigma = exp(raw_0)`` (tcnn's "Exponential" on that channel only); the colour MLP sees all 16 raw outputs
followed by the 16 SH coefficients of the direction. These kernels do the small per-sample steps around the
encoders and MLPs:

* :func:`positions_to_unit_cube`: ``x = (p - aabb_min) / (aabb_max - aabb_min)``, the hash grid's input;
* :func:`density_outputs_to_sigma`: ``sigma = exp(min(raw_0, 15))`` and (optionally) the density outputs
  copied into columns ``[0, 16)`` of the colour-network input (the SH coefficients go to ``[16, 32)``);
* :func:`density_outputs_grad`: ``dL/draw = dL/dcolour_input[:, :16]`` plus, on channel 0,
  ``dL/dsigma * exp(clamp(raw_0, -15, 15))``; the SH part of the colour-input gradient is dropped;
* :func:`weight_columns`: ``values[:, j] *= weights[j]`` in place - BARF's coarse-to-fine weights of the
  hash-grid levels, applied to the encoded features (forward) and to their gradient (backward);

The colour network runs only on the samples a ray still sees (transmittance on arrival >= the
early-termination threshold), compacted with :mod:`warp_kernels.compaction` (instant-ngp compacts its training
batch the same way): more than half of a trained scene's marched samples lie behind an opaque surface.

The clamps follow instant-ngp (``network_to_density`` / ``network_to_density_derivative``): the derivative
uses ``exp(clamp(raw, -15, 15))``; the forward is capped at ``exp(15)`` so a runaway raw value can never
produce an infinite density (an opacity of 1 is reached long before). All kernels are one thread per sample
with disjoint writes, split over CPU cores.
"""

from __future__ import annotations

import numpy as np
import warp as wp

from .device import KernelArgumentError, check_array, common_device
from .parallel import launch_split

__all__ = [
    "DENSITY_CLAMP",
    "positions_to_unit_cube",
    "density_outputs_to_sigma",
    "density_outputs_grad",
    "weight_columns",
]

#: |raw log-density| bound of the density derivative, and upper bound of the forward (instant-ngp: 15).
DENSITY_CLAMP = 15.0

_CLAMP = wp.constant(DENSITY_CLAMP)

wp.set_module_options({"enable_backward": False})


@wp.kernel
def _unit_cube_kernel(
    offset: int,
    positions: wp.array2d(dtype=float),
    lo: wp.vec3,
    inv_extent: wp.vec3,
    out: wp.array2d(dtype=float),
):
    i = wp.tid() + offset
    for a in range(3):
        out[i, a] = (positions[i, a] - lo[a]) * inv_extent[a]


@wp.kernel
def _sigma_kernel(
    offset: int,
    raw: wp.array2d(dtype=float),
    sigma: wp.array(dtype=float),
    write_color_input: int,
    color_input: wp.array2d(dtype=float),
):
    i = wp.tid() + offset
    sigma[i] = wp.exp(wp.min(raw[i, 0], _CLAMP))
    if write_color_input != 0:
        for j in range(raw.shape[1]):
            color_input[i, j] = raw[i, j]


@wp.kernel
def _grad_kernel(
    offset: int,
    grad_color_input: wp.array2d(dtype=float),
    grad_sigma: wp.array(dtype=float),
    raw: wp.array2d(dtype=float),
    grad_raw: wp.array2d(dtype=float),
):
    i = wp.tid() + offset
    d = wp.exp(wp.clamp(raw[i, 0], -_CLAMP, _CLAMP))
    grad_raw[i, 0] = grad_color_input[i, 0] + grad_sigma[i] * d
    for j in range(1, raw.shape[1]):
        grad_raw[i, j] = grad_color_input[i, j]


@wp.kernel
def _weight_columns_kernel(offset: int, values: wp.array2d(dtype=float), weights: wp.array(dtype=float)):
    i = wp.tid() + offset
    for j in range(values.shape[1]):
        values[i, j] = values[i, j] * weights[j]


def _aabb(aabb) -> tuple[wp.vec3, wp.vec3]:
    try:
        lo = np.asarray(aabb[0], dtype=np.float64).reshape(3)
        hi = np.asarray(aabb[1], dtype=np.float64).reshape(3)
    except (TypeError, ValueError, IndexError) as e:
        raise KernelArgumentError(f"aabb must be ((x0, y0, z0), (x1, y1, z1)), got {aabb!r}") from e
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(hi > lo)):
        raise KernelArgumentError(f"aabb must be finite with max > min on every axis, got {aabb!r}")
    return wp.vec3(*lo.tolist()), wp.vec3(*(1.0 / (hi - lo)).tolist())


def positions_to_unit_cube(
    positions: wp.array, aabb, *, out: wp.array | None = None, device: wp.context.Devicelike = None
) -> wp.array:
    """Map points of the box ``aabb`` to ``[0, 1]^3`` (the hash grid's input domain).

    Args:
        positions: float32 ``[S, 3]`` points (internal space).
        aabb: ``((xmin, ymin, zmin), (xmax, ymax, zmax))`` with ``max > min``.
        out: optional float32 ``[S, 3]`` output.
        device: launch device; ``None`` = the arrays' device.

    Returns:
        float32 ``[S, 3]``: ``(positions - min) / (max - min)`` (not clamped).
    """
    dev = common_device([positions, out], device)
    check_array(positions, "positions", dtype=wp.float32, shape=(None, 3), device=dev)
    n = positions.shape[0]
    if out is None:
        out = wp.empty((n, 3), dtype=wp.float32, device=dev)
    else:
        check_array(out, "out", dtype=wp.float32, shape=(n, 3), device=dev)
    lo, inv = _aabb(aabb)
    launch_split(_unit_cube_kernel, n, [positions, lo, inv, out], dev)
    return out


def density_outputs_to_sigma(
    raw: wp.array,
    *,
    sigma: wp.array | None = None,
    color_input: wp.array | None = None,
    device: wp.context.Devicelike = None,
) -> wp.array:
    """Densities from the density network's outputs, optionally copying the outputs into the colour input.

    Args:
        raw: float32 ``[S, D]`` density-network outputs (column 0 = log-density).
        sigma: optional float32 ``[S]`` output.
        color_input: optional float32 ``[S, >= D]`` colour-network input (a strided view is fine); columns
            ``[0, D)`` receive ``raw``, the others are left alone.
        device: launch device; ``None`` = the arrays' device.

    Returns:
        float32 ``[S]`` ``sigma = exp(min(raw[:, 0], 15))``.
    """
    dev = common_device([raw, sigma, color_input], device)
    check_array(raw, "raw", dtype=wp.float32, shape=(None, None), device=dev)
    n, d = raw.shape
    if d < 1:
        raise KernelArgumentError("raw needs at least one column (the log-density)")
    if sigma is None:
        sigma = wp.empty(n, dtype=wp.float32, device=dev)
    else:
        check_array(sigma, "sigma", dtype=wp.float32, shape=(n,), device=dev)
    if color_input is not None:
        check_array(color_input, "color_input", dtype=wp.float32, shape=(n, None), device=dev)
        if color_input.shape[1] < d:
            raise KernelArgumentError(f"color_input has {color_input.shape[1]} columns, needs >= {d}")
    dummy = color_input if color_input is not None else wp.empty((0, 0), dtype=wp.float32, device=dev)
    launch_split(_sigma_kernel, n, [raw, sigma, int(color_input is not None), dummy], dev)
    return sigma


def density_outputs_grad(
    grad_color_input: wp.array,
    grad_sigma: wp.array,
    raw: wp.array,
    *,
    out: wp.array | None = None,
    device: wp.context.Devicelike = None,
) -> wp.array:
    """dL/d(density-network outputs) from the colour-input gradient and dL/dsigma.

    Args:
        grad_color_input: float32 ``[S, C]`` with ``C >= D``: dL/d(colour-network input); only its first ``D``
            columns (the density outputs) are used, the direction-encoding columns are dropped.
        grad_sigma: float32 ``[S]`` dL/dsigma.
        raw: float32 ``[S, D]`` the density-network outputs of the forward pass.
        out: optional float32 ``[S, D]`` output.
        device: launch device; ``None`` = the arrays' device.

    Returns:
        float32 ``[S, D]``: ``grad_color_input[:, :D]`` with ``grad_sigma * exp(clamp(raw_0, -15, 15))`` added
        to column 0.
    """
    dev = common_device([grad_color_input, grad_sigma, raw, out], device)
    check_array(raw, "raw", dtype=wp.float32, shape=(None, None), device=dev)
    n, d = raw.shape
    check_array(grad_color_input, "grad_color_input", dtype=wp.float32, shape=(n, None), device=dev)
    if grad_color_input.shape[1] < d:
        raise KernelArgumentError(f"grad_color_input has {grad_color_input.shape[1]} columns, needs >= {d}")
    check_array(grad_sigma, "grad_sigma", dtype=wp.float32, shape=(n,), device=dev)
    if out is None:
        out = wp.empty((n, d), dtype=wp.float32, device=dev)
    else:
        check_array(out, "out", dtype=wp.float32, shape=(n, d), device=dev)
    launch_split(_grad_kernel, n, [grad_color_input, grad_sigma, raw, out], dev)
    return out


def weight_columns(values: wp.array, weights: wp.array, *, device: wp.context.Devicelike = None) -> wp.array:
    """Multiply every column of ``values`` by its weight, in place.

    Args:
        values: float32 ``[S, C]`` (e.g. encoded hash-grid features, or dL/d of them).
        weights: float32 ``[C]`` per-column factors.
        device: launch device; ``None`` = the arrays' device.

    Returns:
        ``values`` (``values[i, j] *= weights[j]``).
    """
    dev = common_device([values, weights], device)
    check_array(values, "values", dtype=wp.float32, shape=(None, None), device=dev)
    check_array(weights, "weights", dtype=wp.float32, shape=(values.shape[1],), device=dev)
    launch_split(_weight_columns_kernel, values.shape[0], [values, weights], dev)
    return values
