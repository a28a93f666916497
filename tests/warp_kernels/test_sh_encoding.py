"""SH encoding: forward/backward vs the float64 reference, finite differences, orthonormality on the
sphere."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference import sh_encoding_ref as ref
from warp_kernels.device import KernelArgumentError
from warp_kernels.sh_encoding import SH_N_COEFFS, sh_encode, sh_encode_backward


def _unit_dirs(n: int, seed: int) -> np.ndarray:
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)


def test_forward_matches_reference_for_both_input_layouts(device):
    d = _unit_dirs(5000, 0)  # > 2 * 2048: the CPU launch is split across threads
    want = ref.sh_encode_ref(d.astype(np.float64))
    out2d = sh_encode(wp.array(d, dtype=wp.float32, device=device)).numpy()
    outv = sh_encode(wp.array(d, dtype=wp.vec3, device=device)).numpy()
    assert out2d.shape == (5000, SH_N_COEFFS)
    np.testing.assert_allclose(out2d, want, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(out2d, outv)
    # tcnn's constants are the textbook real SH (Condon-Shortley signs) on the unit sphere
    np.testing.assert_allclose(out2d, ref.real_sh_ref(d.astype(np.float64)), rtol=0, atol=2e-6)


def test_orthonormal_on_the_sphere(device):
    # Gauss-Legendre in z times uniform azimuth integrates polynomials of degree <= 6 exactly
    zs, wz = np.polynomial.legendre.leggauss(8)
    phi = (np.arange(16) + 0.5) * (2 * np.pi / 16)
    z, p = np.meshgrid(zs, phi, indexing="ij")
    r = np.sqrt(1 - z**2)
    d = np.stack([r * np.cos(p), r * np.sin(p), z], axis=-1).reshape(-1, 3)
    w = (wz[:, None] * np.full(16, 2 * np.pi / 16)[None, :]).reshape(-1)
    y = sh_encode(wp.array(d.astype(np.float32), device=device)).numpy().astype(np.float64)
    gram = (y * w[:, None]).T @ y
    np.testing.assert_allclose(gram, np.eye(SH_N_COEFFS), atol=2e-5)


def test_backward_matches_reference(device):
    d = _unit_dirs(300, 1)
    g = np.random.default_rng(2).normal(size=(300, SH_N_COEFFS)).astype(np.float32)
    got = sh_encode_backward(wp.array(d, device=device), wp.array(g, device=device)).numpy()
    want = ref.sh_encode_backward_ref(d.astype(np.float64), g.astype(np.float64))
    assert got.shape == (300, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)


def test_backward_matches_finite_differences_of_the_kernel(device):
    # not unit length on purpose: the gradient is that of the polynomials in R^3 (tcnn)
    d = np.random.default_rng(3).uniform(-1, 1, size=(4, 3))
    g = np.random.default_rng(4).normal(size=(4, SH_N_COEFFS))

    def loss(x: np.ndarray) -> float:
        y = sh_encode(wp.array(x.astype(np.float32), device=device)).numpy().astype(np.float64)
        return float((y * g).sum())

    grad = sh_encode_backward(
        wp.array(d.astype(np.float32), device=device), wp.array(g.astype(np.float32), device=device)
    ).numpy()
    h = 1e-2
    fd = np.zeros_like(d)
    for i in range(d.shape[0]):
        for a in range(3):
            e = np.zeros_like(d)
            e[i, a] = h
            fd[i, a] = (loss(d + e) - loss(d - e)) / (2 * h)
    # central differences of cubics: truncation h^2/6 * f''' plus float32 rounding / h
    np.testing.assert_allclose(grad, fd, rtol=2e-3, atol=2e-3)


def test_out_argument_writes_a_strided_view(device):
    d = _unit_dirs(10, 5)
    buf = wp.zeros((10, 32), dtype=wp.float32, device=device)
    view = buf[:, 16:]
    res = sh_encode(wp.array(d, device=device), out=view)
    assert res.ptr == view.ptr
    full = buf.numpy()
    np.testing.assert_array_equal(full[:, :16], 0.0)
    np.testing.assert_allclose(full[:, 16:], ref.sh_encode_ref(d.astype(np.float64)), atol=2e-6)


def test_argument_checks(device):
    with pytest.raises(KernelArgumentError):
        sh_encode(wp.zeros((4, 2), dtype=wp.float32, device=device))
    with pytest.raises(KernelArgumentError):
        sh_encode(wp.zeros((4, 3), dtype=wp.float32, device=device), out=wp.zeros((4, 9), device=device))
    with pytest.raises(KernelArgumentError):
        sh_encode_backward(
            wp.zeros((4, 3), dtype=wp.float32, device=device), wp.zeros((3, 16), device=device)
        )


def test_empty_input(device):
    assert sh_encode(wp.zeros((0, 3), dtype=wp.float32, device=device)).shape == (0, SH_N_COEFFS)
