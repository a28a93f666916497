"""Float64 reference of the degree-4 SH encoding (tcnn ``SphericalHarmonics``, input in [-1, 1]^3).

The backward is derived independently of the hand-written kernel derivatives: complex-step differentiation of
the same polynomials (exact to rounding for polynomials).
"""

from __future__ import annotations

import numpy as np

__all__ = ["sh_encode_ref", "sh_jacobian_ref", "sh_encode_backward_ref", "real_sh_ref"]


def sh_encode_ref(d) -> np.ndarray:
    """tcnn's 16 polynomials at ``d`` [n, 3] (float64 or complex128) -> [n, 16]."""
    d = np.asarray(d)
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    xy, xz, yz, x2, y2, z2 = x * y, x * z, y * z, x * x, y * y, z * z
    one = np.ones_like(x)
    return np.stack(
        [
            0.28209479177387814 * one,
            -0.48860251190291987 * y,
            0.48860251190291987 * z,
            -0.48860251190291987 * x,
            1.0925484305920792 * xy,
            -1.0925484305920792 * yz,
            0.94617469575755997 * z2 - 0.31539156525251999,
            -1.0925484305920792 * xz,
            0.54627421529603959 * x2 - 0.54627421529603959 * y2,
            0.59004358992664352 * y * (-3.0 * x2 + y2),
            2.8906114426405538 * xy * z,
            0.45704579946446572 * y * (1.0 - 5.0 * z2),
            0.3731763325901154 * z * (5.0 * z2 - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * z2),
            1.4453057213202769 * z * (x2 - y2),
            0.59004358992664352 * x * (-x2 + 3.0 * y2),
        ],
        axis=1,
    )


def sh_jacobian_ref(d) -> np.ndarray:
    """d(output)/d(direction) [n, 16, 3] by complex-step differentiation."""
    d = np.asarray(d, dtype=np.float64)
    h = 1e-30
    jac = np.empty((d.shape[0], 16, 3))
    for a in range(3):
        dc = d.astype(np.complex128)
        dc[:, a] += 1j * h
        jac[:, :, a] = sh_encode_ref(dc).imag / h
    return jac


def sh_encode_backward_ref(d, grad_out) -> np.ndarray:
    """dL/dd [n, 3] = J^T dL/dout."""
    return np.einsum("nka,nk->na", sh_jacobian_ref(d), np.asarray(grad_out, dtype=np.float64))


def real_sh_ref(d) -> np.ndarray:
    """Textbook real SH (bands 0..3) in tcnn's order and sign convention, for unit d; written from the
    spherical-harmonic normalisations, not from tcnn's simplified polynomials."""
    d = np.asarray(d, dtype=np.float64)
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    pi = np.pi
    k0 = 0.5 / np.sqrt(pi)
    k1 = np.sqrt(3.0 / (4 * pi))
    k2a = 0.5 * np.sqrt(15.0 / pi)
    k2b = 0.25 * np.sqrt(5.0 / pi)
    k2c = 0.25 * np.sqrt(15.0 / pi)
    k3a = 0.25 * np.sqrt(35.0 / (2 * pi))
    k3b = 0.5 * np.sqrt(105.0 / pi)
    k3c = 0.25 * np.sqrt(21.0 / (2 * pi))
    k3d = 0.25 * np.sqrt(7.0 / pi)
    k3e = 0.25 * np.sqrt(105.0 / pi)
    r2 = x * x + y * y + z * z
    return np.stack(
        [
            k0 * np.ones_like(x),
            -k1 * y,
            k1 * z,
            -k1 * x,
            k2a * x * y,
            -k2a * y * z,
            k2b * (3 * z * z - r2),
            -k2a * x * z,
            k2c * (x * x - y * y),
            -k3a * y * (3 * x * x - y * y),
            k3b * x * y * z,
            -k3c * y * (5 * z * z - r2),
            k3d * z * (5 * z * z - 3 * r2),
            -k3c * x * (5 * z * z - r2),
            k3e * z * (x * x - y * y),
            -k3a * x * (x * x - 3 * y * y),
        ],
        axis=1,
    )
