"""NeRF field glue: unit-cube mapping, exp density + colour-input copy, gradient split vs float64 references."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference import nerf_glue_ref as ref
from warp_kernels.device import KernelArgumentError
from warp_kernels.nerf_glue import (
    density_outputs_grad,
    density_outputs_to_sigma,
    positions_to_unit_cube,
    weight_columns,
)


def test_unit_cube_matches_reference(device):
    p = np.random.default_rng(0).uniform(-8, 9, (5000, 3)).astype(np.float32)
    lo, hi = (-7.5, -7.5, -7.5), (8.5, 8.5, 8.5)
    out = positions_to_unit_cube(wp.array(p, device=device), (lo, hi)).numpy()
    np.testing.assert_allclose(out, ref.positions_to_unit_cube_ref(p, lo, hi), rtol=1e-6, atol=1e-6)
    with pytest.raises(KernelArgumentError, match="max > min"):
        positions_to_unit_cube(wp.array(p, device=device), ((0, 0, 0), (1, 0, 1)))


def test_sigma_and_color_input(device):
    rng = np.random.default_rng(1)
    raw = rng.normal(0, 6, (5000, 16)).astype(np.float32)
    raw[:5, 0] = [-40.0, 0.0, 14.9, 15.0, 90.0]  # the cap keeps huge raw values finite
    ci = np.full((5000, 32), 7.0, np.float32)
    ci_w = wp.array(ci, device=device)
    sigma = density_outputs_to_sigma(wp.array(raw, device=device), color_input=ci_w).numpy()
    np.testing.assert_allclose(sigma, ref.density_outputs_to_sigma_ref(raw), rtol=2e-6)
    assert np.all(np.isfinite(sigma)) and sigma[4] == pytest.approx(np.exp(15.0), rel=1e-6)
    got = ci_w.numpy()
    np.testing.assert_array_equal(got[:, :16], raw)
    np.testing.assert_array_equal(got[:, 16:], 7.0)  # the SH half is left alone
    # a strided view (the colour input's first half) as the target
    ci2 = wp.zeros((5000, 32), dtype=wp.float32, device=device)
    density_outputs_to_sigma(wp.array(raw, device=device), color_input=ci2[:, 8:])
    np.testing.assert_array_equal(ci2.numpy()[:, 8:24], raw)


def test_grad_split(device):
    rng = np.random.default_rng(2)
    raw = rng.normal(0, 8, (5000, 16)).astype(np.float32)
    gci = rng.normal(size=(5000, 32)).astype(np.float32)
    gs = rng.normal(size=5000).astype(np.float32)
    out = density_outputs_grad(wp.array(gci, device=device), wp.array(gs, device=device),
                               wp.array(raw, device=device)).numpy()
    np.testing.assert_allclose(out, ref.density_outputs_grad_ref(gci, gs, raw), rtol=2e-6, atol=1e-6)
    # the derivative of sigma = exp(raw) where it is not capped: finite differences
    x = np.array([[0.3] + [0.0] * 15], np.float32)
    d = density_outputs_grad(wp.zeros((1, 32), dtype=wp.float32, device=device),
                             wp.array(np.ones(1, np.float32), device=device), wp.array(x, device=device)).numpy()
    assert d[0, 0] == pytest.approx((np.exp(0.3 + 1e-4) - np.exp(0.3 - 1e-4)) / 2e-4, rel=1e-6)
    with pytest.raises(KernelArgumentError, match="columns"):
        density_outputs_grad(wp.zeros((5, 8), dtype=wp.float32, device=device),
                             wp.zeros(5, dtype=wp.float32, device=device),
                             wp.zeros((5, 16), dtype=wp.float32, device=device))


def test_weight_columns(device):
    rng = np.random.default_rng(3)
    v = rng.normal(size=(3000, 32)).astype(np.float32)
    w = rng.uniform(0, 1, 32).astype(np.float32)
    w[:4], w[-4:] = 1.0, 0.0
    vw = wp.array(v, device=device)
    assert weight_columns(vw, wp.array(w, device=device)) is vw  # in place
    got = vw.numpy()
    np.testing.assert_allclose(got, ref.weight_columns_ref(v, w), rtol=1e-6, atol=0)
    np.testing.assert_array_equal(got[:, -4:], 0.0)
    with pytest.raises(KernelArgumentError):
        weight_columns(vw, wp.ones(16, dtype=wp.float32, device=device))
