"""Numerical-gradient eikonal loss: float64 reference, finite differences, and invariants on analytic SDFs."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference.eikonal_ref import eikonal_loss_ref, eikonal_stencil_ref
from warp_kernels.device import KernelArgumentError
from warp_kernels.eikonal import eikonal_loss, eikonal_stencil


def _arr(a, device, shape=None):
    a = np.asarray(a, np.float32)
    return wp.array(a if shape is None else a.reshape(shape), dtype=wp.float32, device=device)


def test_stencil_matches_reference(device):
    pts = np.random.default_rng(0).random((37, 3))
    got = eikonal_stencil(_arr(pts, device), 1e-2).numpy()
    np.testing.assert_allclose(got, eikonal_stencil_ref(pts, 1e-2), atol=1e-7)


def test_loss_and_gradient_match_reference(device):
    rng = np.random.default_rng(1)
    values = rng.normal(size=6 * 53)
    loss, grad = eikonal_loss(_arr(values, device, (-1, 1)), 0.01, weight=0.3)
    loss_ref, grad_ref = eikonal_loss_ref(values.astype(np.float32), 0.01, weight=0.3)
    assert loss == pytest.approx(loss_ref, rel=1e-5)
    np.testing.assert_allclose(grad.numpy()[:, 0], grad_ref, rtol=1e-4, atol=1e-9)


def test_gradient_matches_finite_differences(device):
    rng = np.random.default_rng(2)
    values = rng.normal(scale=0.02, size=6 * 5)
    h, eps = 0.01, 1e-6
    _, grad = eikonal_loss(_arr(values, device, (-1, 1)), h, weight=2.0)
    fd = np.empty_like(values)
    for j in range(values.size):  # float64 FD of the reference loss
        up, dn = values.copy(), values.copy()
        up[j] += eps
        dn[j] -= eps
        fd[j] = (eikonal_loss_ref(up, h, 2.0)[0] - eikonal_loss_ref(dn, h, 2.0)[0]) / (2 * eps)
    np.testing.assert_allclose(grad.numpy()[:, 0], fd, rtol=2e-3, atol=1e-6)


def test_exact_sdf_has_zero_loss_and_scaled_sdf_does_not(device):
    pts = 0.2 + 0.6 * np.random.default_rng(3).random((100, 3))
    stencil = eikonal_stencil_ref(pts, 1e-3)
    sphere = np.linalg.norm(stencil - 0.5, axis=1) - 0.25
    loss, grad = eikonal_loss(_arr(sphere, device, (-1, 1)), 1e-3)
    assert loss < 1e-4 and np.abs(grad.numpy()).max() < 0.05
    loss2, grad2 = eikonal_loss(_arr(2 * sphere, device, (-1, 1)), 1e-3)
    assert loss2 == pytest.approx(1.0, rel=1e-2)  # |grad| = 2 everywhere
    # descending the gradient shrinks the scaled field towards |grad| = 1
    stepped = 2 * sphere - 1e-7 * grad2.numpy()[:, 0]
    assert eikonal_loss(_arr(stepped, device, (-1, 1)), 1e-3)[0] < loss2


def test_bad_arguments(device):
    with pytest.raises(KernelArgumentError):
        eikonal_loss(wp.zeros((7, 1), dtype=wp.float32, device=device), 0.01)
    with pytest.raises(KernelArgumentError):
        eikonal_loss(wp.zeros((6, 1), dtype=wp.float32, device=device), 0.0)
    with pytest.raises(KernelArgumentError):
        eikonal_stencil(wp.zeros((2, 2), dtype=wp.float32, device=device), 0.01)
