"""Eikonal regulariser with numerical gradients: ``mean_i (|grad f(x_i)| - 1)^2`` from central differences.

Layer 0: :func:`_stencil_kernel`, :func:`_eikonal_kernel`; layer 1: :func:`eikonal_stencil`,
:func:`eikonal_loss`.

An SDF satisfies ``|grad f| = 1``. Rather than differentiating the analytic input gradient a second time, the
gradient is taken by central differences of the field itself (as Neuralangelo does, Li et al. 2023):
``g_a = (f(x + h e_a) - f(x - h e_a)) / (2 h)``. Then ``d loss / d f`` at the six stencil points is a plain
output gradient, so the field's ordinary backward (hash grid + MLP) trains the regulariser, on any device.

Layout: point ``i`` owns stencil rows ``6 i .. 6 i + 5`` in the order ``+x, -x, +y, -y, +z, -z``.
"""

from __future__ import annotations

import numpy as np
import warp as wp

from .device import KernelArgumentError, check_array, common_device
from .parallel import launch_split

__all__ = ["STENCIL", "eikonal_stencil", "eikonal_loss"]

wp.set_module_options({"enable_backward": False})

#: Stencil rows per point.
STENCIL = 6


@wp.kernel
def _stencil_kernel(offset: int, x: wp.array2d(dtype=wp.float32), h: float, out: wp.array2d(dtype=wp.float32)):
    i = wp.tid() + offset
    for k in range(6):
        for a in range(3):
            out[6 * i + k, a] = x[i, a]
        sign = 1.0
        if k % 2 == 1:
            sign = -1.0
        out[6 * i + k, k // 2] = x[i, k // 2] + sign * h


@wp.kernel
def _eikonal_kernel(
    offset: int,
    values: wp.array2d(dtype=wp.float32),
    h: float,
    grad_scale: float,
    losses: wp.array(dtype=wp.float32),
    grad_out: wp.array2d(dtype=wp.float32),
):
    i = wp.tid() + offset
    g = wp.vec3(0.0)
    for a in range(3):
        g[a] = (values[6 * i + 2 * a, 0] - values[6 * i + 2 * a + 1, 0]) / (2.0 * h)
    n = wp.length(g)
    losses[i] = (n - 1.0) * (n - 1.0)
    # d/dg_a (n - 1)^2 = 2 (n - 1) g_a / n; then d g_a / d f(+-) = +-1 / (2 h)
    c = 0.0
    if n > 0.0:
        c = grad_scale * 2.0 * (n - 1.0) / (n * 2.0 * h)
    for a in range(3):
        grad_out[6 * i + 2 * a, 0] = c * g[a]
        grad_out[6 * i + 2 * a + 1, 0] = -c * g[a]


def eikonal_stencil(points: wp.array, step: float, *, out: wp.array | None = None) -> wp.array:
    """The six central-difference neighbours of each point.

    Args:
        points: float32 ``[M, 3]``.
        step: difference step ``h`` (same units as the points), > 0.
        out: optional float32 ``[6 M, 3]`` output (e.g. a slice of a larger batch).

    Returns:
        float32 ``[6 M, 3]``: rows ``6 i .. 6 i + 5`` are ``x_i +- h e_a`` for a = x, y, z.

    Raises:
        KernelArgumentError: on wrong shapes, dtypes or devices, or a step <= 0.
    """
    dev = common_device([points, out])
    check_array(points, "points", dtype=wp.float32, shape=(None, 3), device=dev)
    m = points.shape[0]
    if not step > 0:
        raise KernelArgumentError(f"step must be > 0, got {step}")
    if out is None:
        out = wp.empty((STENCIL * m, 3), dtype=wp.float32, device=dev)
    check_array(out, "out", dtype=wp.float32, shape=(STENCIL * m, 3), device=dev)
    launch_split(_stencil_kernel, m, [points, float(step), out], dev)
    return out


def eikonal_loss(values: wp.array, step: float, *, weight: float = 1.0,
                 grad_out: wp.array | None = None) -> tuple[float, wp.array]:
    """Eikonal loss ``weight * mean_i (|g_i| - 1)^2`` of field values on :func:`eikonal_stencil` points.

    Args:
        values: float32 ``[6 M, 1]`` field values at the stencil points.
        step: the stencil's difference step ``h``.
        weight: loss weight (the gradient is of the weighted mean).
        grad_out: optional float32 ``[6 M, 1]`` output for ``d loss / d values`` (overwritten).

    Returns:
        ``(loss, grad_out)``: the weighted mean loss and its gradient with respect to ``values``.

    Raises:
        KernelArgumentError: on wrong shapes, dtypes or devices, or a step <= 0.
    """
    dev = common_device([values, grad_out])
    check_array(values, "values", dtype=wp.float32, shape=(None, 1), device=dev)
    rows = values.shape[0]
    if rows % STENCIL != 0 or rows == 0:
        raise KernelArgumentError(f"values must have 6 rows per point, got {rows}")
    if not step > 0:
        raise KernelArgumentError(f"step must be > 0, got {step}")
    m = rows // STENCIL
    if grad_out is None:
        grad_out = wp.empty((rows, 1), dtype=wp.float32, device=dev)
    check_array(grad_out, "grad_out", dtype=wp.float32, shape=(rows, 1), device=dev)
    losses = wp.empty(m, dtype=wp.float32, device=dev)
    launch_split(_eikonal_kernel, m, [values, float(step), float(weight) / m, losses, grad_out], dev)
    return float(weight) * float(np.mean(losses.numpy(), dtype=np.float64)), grad_out
