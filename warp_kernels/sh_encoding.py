"""Spherical-harmonics direction encoding, degree 4 (16 coefficients), as tcnn's ``SphericalHarmonics``.

tcnn's encoding takes inputs in [0, 1]^3 and maps them to ``d = 2 * x - 1`` before evaluating the real SH
polynomials (``kernel_sh`` in ``tiny-cuda-nn/encodings/spherical_harmonics.h``; instant-ngp feeds it
``warp_direction(d) = (d + 1) / 2``). **This API takes the unit direction d in [-1, 1]^3 directly**:
our output for ``d`` equals tcnn's output for ``(d + 1) / 2``. The backward is with respect to ``d``
(tcnn's input gradient is twice ours, by the chain rule through ``2x - 1``).

The 16 outputs are tcnn's polynomials in ``(x, y, z) = d``, written with the unit-sphere identities already
applied (e.g. ``Y_6 = 0.946 z^2 - 0.315``), so they are the real SH only for unit d. As in tcnn, the gradient
is that of these polynomials in R^3 (no projection onto the sphere's tangent plane) and d is not normalised.
"""

from __future__ import annotations

import warp as wp

from .device import KernelArgumentError, check_array, common_device
from .parallel import launch_split

__all__ = ["SH_DEGREE", "SH_N_COEFFS", "sh_encode", "sh_encode_backward"]

#: tcnn "degree" (number of bands); outputs = degree**2.
SH_DEGREE = 4
SH_N_COEFFS = SH_DEGREE * SH_DEGREE

_C0 = wp.constant(0.28209479177387814)
_C1 = wp.constant(0.48860251190291987)
_C2A = wp.constant(1.0925484305920792)
_C2B = wp.constant(0.94617469575755997)
_C2C = wp.constant(0.31539156525251999)
_C2D = wp.constant(0.54627421529603959)
_C3A = wp.constant(0.59004358992664352)
_C3B = wp.constant(2.8906114426405538)
_C3C = wp.constant(0.45704579946446572)
_C3D = wp.constant(0.3731763325901154)
_C3E = wp.constant(1.4453057213202769)


@wp.kernel
def _sh_forward_kernel(offset: int, dirs: wp.array(dtype=wp.vec3), out: wp.array2d(dtype=float)):
    i = wp.tid() + offset
    d = dirs[i]
    x = d[0]
    y = d[1]
    z = d[2]
    xy = x * y
    xz = x * z
    yz = y * z
    x2 = x * x
    y2 = y * y
    z2 = z * z
    out[i, 0] = _C0
    out[i, 1] = -_C1 * y
    out[i, 2] = _C1 * z
    out[i, 3] = -_C1 * x
    out[i, 4] = _C2A * xy
    out[i, 5] = -_C2A * yz
    out[i, 6] = _C2B * z2 - _C2C
    out[i, 7] = -_C2A * xz
    out[i, 8] = _C2D * (x2 - y2)
    out[i, 9] = _C3A * y * (-3.0 * x2 + y2)
    out[i, 10] = _C3B * xy * z
    out[i, 11] = _C3C * y * (1.0 - 5.0 * z2)
    out[i, 12] = _C3D * z * (5.0 * z2 - 3.0)
    out[i, 13] = _C3C * x * (1.0 - 5.0 * z2)
    out[i, 14] = _C3E * z * (x2 - y2)
    out[i, 15] = _C3A * x * (-x2 + 3.0 * y2)


@wp.kernel
def _sh_backward_kernel(
    offset: int,
    dirs: wp.array(dtype=wp.vec3),
    grad_out: wp.array2d(dtype=float),
    grad_dirs: wp.array(dtype=wp.vec3),
):
    i = wp.tid() + offset
    d = dirs[i]
    x = d[0]
    y = d[1]
    z = d[2]
    x2 = x * x
    y2 = y * y
    z2 = z * z
    g1 = grad_out[i, 1]
    g2 = grad_out[i, 2]
    g3 = grad_out[i, 3]
    g4 = grad_out[i, 4]
    g5 = grad_out[i, 5]
    g6 = grad_out[i, 6]
    g7 = grad_out[i, 7]
    g8 = grad_out[i, 8]
    g9 = grad_out[i, 9]
    g10 = grad_out[i, 10]
    g11 = grad_out[i, 11]
    g12 = grad_out[i, 12]
    g13 = grad_out[i, 13]
    g14 = grad_out[i, 14]
    g15 = grad_out[i, 15]
    # partial derivatives of each output polynomial, contracted with the output gradient
    dx = (
        -_C1 * g3
        + _C2A * y * g4
        - _C2A * z * g7
        + 2.0 * _C2D * x * g8
        - 6.0 * _C3A * x * y * g9
        + _C3B * y * z * g10
        + _C3C * (1.0 - 5.0 * z2) * g13
        + 2.0 * _C3E * x * z * g14
        + 3.0 * _C3A * (y2 - x2) * g15
    )
    dy = (
        -_C1 * g1
        + _C2A * x * g4
        - _C2A * z * g5
        - 2.0 * _C2D * y * g8
        + 3.0 * _C3A * (y2 - x2) * g9
        + _C3B * x * z * g10
        + _C3C * (1.0 - 5.0 * z2) * g11
        - 2.0 * _C3E * y * z * g14
        + 6.0 * _C3A * x * y * g15
    )
    dz = (
        _C1 * g2
        - _C2A * y * g5
        + 2.0 * _C2B * z * g6
        - _C2A * x * g7
        + _C3B * x * y * g10
        - 10.0 * _C3C * y * z * g11
        + _C3D * (15.0 * z2 - 3.0) * g12
        - 10.0 * _C3C * x * z * g13
        + _C3E * (x2 - y2) * g14
    )
    grad_dirs[i] = wp.vec3(dx, dy, dz)


def _dirs_input(a: wp.array, device: wp.context.Device) -> wp.array:
    """Accept wp.vec3 ``[n]`` or contiguous float32 ``[n, 3]`` (viewed as vec3, no copy)."""
    if isinstance(a, wp.array) and a.dtype == wp.float32 and a.ndim == 2 and a.shape[1] == 3:
        check_array(a, "directions", device=device)
        if not a.is_contiguous:
            raise KernelArgumentError("directions must be contiguous")
        return a.view(wp.vec3)
    check_array(a, "directions", dtype=wp.vec3, shape=(None,), device=device)
    return a


def sh_encode(
    directions: wp.array, *, out: wp.array | None = None, device: wp.context.Devicelike = None
) -> wp.array:
    """Degree-4 real SH of unit directions (tcnn ``SphericalHarmonics``, input already in [-1, 1]^3).

    Args:
        directions: unit vectors, wp.vec3 ``[n]`` or float32 ``[n, 3]`` (not normalised here).
        out: optional float32 ``[n, 16]`` output to overwrite (may be a row-contiguous view).
        device: launch device; ``None`` = the arrays' device.

    Returns:
        float32 ``[n, 16]`` coefficients, tcnn's output order.
    """
    dev = common_device([directions, out], device)
    dirs = _dirs_input(directions, dev)
    n = dirs.shape[0]
    if out is None:
        out = wp.empty((n, SH_N_COEFFS), dtype=wp.float32, device=dev)
    else:
        check_array(out, "out", dtype=wp.float32, shape=(n, SH_N_COEFFS), device=dev)
    launch_split(_sh_forward_kernel, n, [dirs, out], dev)
    return out


def sh_encode_backward(
    directions: wp.array, grad_output: wp.array, *, device: wp.context.Devicelike = None
) -> wp.array:
    """dL/ddirection from dL/dencoding.

    Args:
        directions: the forward input, wp.vec3 ``[n]`` or float32 ``[n, 3]``.
        grad_output: float32 ``[n, 16]`` dL/d(sh_encode(directions)).
        device: launch device; ``None`` = the arrays' device.

    Returns:
        float32 ``[n, 3]`` gradient w.r.t. the direction components (tcnn's input gradient / 2).
    """
    dev = common_device([directions, grad_output], device)
    dirs = _dirs_input(directions, dev)
    n = dirs.shape[0]
    check_array(grad_output, "grad_output", dtype=wp.float32, shape=(n, SH_N_COEFFS), device=dev)
    grad = wp.empty((n, 3), dtype=wp.float32, device=dev)
    launch_split(_sh_backward_kernel, n, [dirs, grad_output, grad.view(wp.vec3)], dev)
    return grad
