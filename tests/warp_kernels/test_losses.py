"""Tests for warp_kernels.losses against float64 references, finite differences and invariants."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference.losses_ref import REF_LOSS_NAMES, elementwise_loss_ref, loss_ref
from warp_kernels import losses as losses_mod
from warp_kernels.device import KernelArgumentError
from warp_kernels.losses import LOSS_NAMES, compute_loss

DELTA = 0.1


def _data(rng: np.random.Generator, n: int, c: int, *, away_from_kinks: bool = False):
    target = rng.normal(0.0, 1.0, (n, c)).astype(np.float32)
    if away_from_kinks:
        # |d| in [0.02, 0.08] (Huber quadratic) or [0.13, 0.6] (linear): far from 0 and from delta = 0.1.
        mag = np.where(
            rng.random((n, c)) < 0.5, rng.uniform(0.02, 0.08, (n, c)), rng.uniform(0.13, 0.6, (n, c))
        )
        d = mag * rng.choice([-1.0, 1.0], (n, c))
    else:
        d = rng.normal(0.0, 0.3, (n, c))
        d[rng.random((n, c)) < 0.1] = 0.0  # exact zeros: sign(0) = 0
    return (target + d).astype(np.float32), target


def _wp(a: np.ndarray, device) -> wp.array:
    return wp.array(a, dtype=wp.float32, device=device)


def test_loss_names_match_reference():
    assert LOSS_NAMES == REF_LOSS_NAMES


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(37, 3), (3001, 4)])  # the second one takes the multi-threaded CPU path
def test_loss_value_gradient_and_values_match_reference(device, name, weighted, shape):
    rng = np.random.default_rng([LOSS_NAMES.index(name), int(weighted), shape[0]])
    pred, tgt = _data(rng, *shape)
    w = rng.uniform(0.0, 2.0, shape[0]).astype(np.float32) if weighted else None
    if weighted:
        w[::5] = 0.0  # masked rows
    grad = wp.zeros(shape, dtype=wp.float32, device=device)
    values = wp.zeros(shape, dtype=wp.float32, device=device)
    out = compute_loss(
        name,
        _wp(pred, device),
        _wp(tgt, device),
        grad_out=grad,
        values_out=values,
        scale=128.0,
        row_weight=None if w is None else _wp(w, device),
    )
    assert isinstance(out, wp.array) and out.shape == (1,) and out.dtype == wp.float32
    mean, g_ref, v_ref = loss_ref(name, pred, tgt, row_weight=w, scale=128.0, huber_delta=DELTA)
    assert float(out.numpy()[0]) == pytest.approx(mean, rel=1e-6)
    np.testing.assert_allclose(grad.numpy(), g_ref, rtol=2e-6, atol=1e-12)
    np.testing.assert_allclose(values.numpy(), v_ref, rtol=2e-6, atol=1e-12)
    if weighted:
        assert np.all(grad.numpy()[::5] == 0.0)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_cuda_strided_layout_on_this_device(device, name):
    """The CUDA element layout and reduction tree, exercised on whatever device the tests run on."""
    rng = np.random.default_rng(11)
    shape = (2900, 3)  # 8700 elements -> 272 loss threads -> one 256-wide reduction level + finish
    pred, tgt = _data(rng, *shape)
    grad = wp.zeros(shape, dtype=wp.float32, device=device)
    loss_id = LOSS_NAMES.index(name)
    val = losses_mod._compute_loss(
        loss_id,
        _wp(pred, device),
        _wp(tgt, device),
        grad,
        None,
        None,
        None,
        scale=1.0,
        huber_delta=DELTA,
        return_value=True,
        device=device,
        strided=True,
    )
    mean, g_ref, _ = loss_ref(name, pred, tgt, huber_delta=DELTA)
    assert val == pytest.approx(mean, rel=1e-6)
    np.testing.assert_allclose(grad.numpy(), g_ref, rtol=2e-6, atol=1e-12)


@pytest.mark.parametrize("strided", [False, True])
def test_multi_level_reduction(device, strided):
    """Enough elements for at least one intermediate reduction level in either layout."""
    rng = np.random.default_rng(12)
    shape = (70_001, 1)
    pred, tgt = _data(rng, *shape)
    val = losses_mod._compute_loss(
        LOSS_NAMES.index("L1"),
        _wp(pred, device),
        _wp(tgt, device),
        None,
        None,
        None,
        None,
        scale=1.0,
        huber_delta=DELTA,
        return_value=True,
        device=device,
        strided=strided,
    )
    assert val == pytest.approx(loss_ref("L1", pred, tgt)[0], rel=1e-6)


@pytest.mark.parametrize("name", ["L2", "L1", "Huber", "MAPE"])
def test_gradient_matches_finite_differences(device, name):
    rng = np.random.default_rng(21)
    shape = (5, 3)
    pred, tgt = _data(rng, *shape, away_from_kinks=True)
    grad = wp.zeros(shape, dtype=wp.float32, device=device)
    compute_loss(name, _wp(pred, device), _wp(tgt, device), grad_out=grad)
    g = grad.numpy()
    h = 1e-3
    fd = np.zeros(shape)
    for idx in np.ndindex(*shape):
        plus, minus = pred.copy(), pred.copy()
        plus[idx] += h
        minus[idx] -= h
        step = float(plus[idx]) - float(minus[idx])  # the actual float32 step
        lp = compute_loss(name, _wp(plus, device), _wp(tgt, device), return_value=True)
        lm = compute_loss(name, _wp(minus, device), _wp(tgt, device), return_value=True)
        fd[idx] = (lp - lm) / step
    np.testing.assert_allclose(g, fd, rtol=2e-3, atol=1e-6)


def test_relative_l2_gradient_holds_denominator_constant(device):
    """tcnn's RelativeL2 gradient: FD gradient of d^2 / (p0^2 + 0.01) with p0 frozen, not of the loss."""
    rng = np.random.default_rng(22)
    shape = (4, 3)
    pred, tgt = _data(rng, *shape, away_from_kinks=True)
    grad = wp.zeros(shape, dtype=wp.float32, device=device)
    compute_loss("RelativeL2", _wp(pred, device), _wp(tgt, device), grad_out=grad)
    p0, y = pred.astype(np.float64), tgt.astype(np.float64)
    h = 1e-6
    frozen = ((p0 + h - y) ** 2 - (p0 - h - y) ** 2) / (p0 * p0 + 0.01) / (2 * h) / p0.size
    np.testing.assert_allclose(grad.numpy(), frozen, rtol=1e-5, atol=1e-9)
    true_fd = (
        elementwise_loss_ref("RelativeL2", p0 + h, y)[0] - elementwise_loss_ref("RelativeL2", p0 - h, y)[0]
    )
    true_fd /= 2 * h * p0.size
    assert not np.allclose(grad.numpy(), true_fd, rtol=1e-3)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_invariants(device, name):
    rng = np.random.default_rng(31)
    shape = (64, 3)
    pred, tgt = _data(rng, *shape)
    values = wp.zeros(shape, dtype=wp.float32, device=device)
    grad = wp.full(shape, 7.0, dtype=wp.float32, device=device)  # overwritten, not accumulated
    loss = compute_loss(
        name, _wp(pred, device), _wp(tgt, device), values_out=values, grad_out=grad, return_value=True
    )
    assert isinstance(loss, float) and loss > 0.0
    assert np.all(values.numpy() >= 0.0)
    assert loss == pytest.approx(float(values.numpy().astype(np.float64).mean()), rel=1e-6)
    # Gradient points along d (descent reduces every element's loss) and vanishes where d == 0.
    d = pred.astype(np.float64) - tgt
    g = grad.numpy()
    assert np.all(np.sign(g) == np.sign(d))
    # Perfect prediction: zero loss and zero gradient.
    loss0 = compute_loss(name, _wp(tgt, device), _wp(tgt, device), grad_out=grad, return_value=True)
    assert loss0 == 0.0 and np.all(grad.numpy() == 0.0)


def test_huber_is_continuous_at_delta(device):
    t = np.zeros((1, 2), np.float32)
    eps = 1e-4
    p = np.array([[DELTA - eps, DELTA + eps]], np.float32)
    values = wp.zeros((1, 2), dtype=wp.float32, device=device)
    grad = wp.zeros((1, 2), dtype=wp.float32, device=device)
    compute_loss("Huber", _wp(p, device), _wp(t, device), values_out=values, grad_out=grad)
    v, g = values.numpy()[0], grad.numpy()[0]
    assert v[0] == pytest.approx(DELTA / 2, abs=2e-4) and v[1] == pytest.approx(DELTA / 2, abs=2e-4)
    assert g[0] == pytest.approx(g[1], abs=2e-3)


def test_huber_delta_parameter(device):
    rng = np.random.default_rng(41)
    pred, tgt = _data(rng, 20, 3)
    val = compute_loss("Huber", _wp(pred, device), _wp(tgt, device), huber_delta=0.5, return_value=True)
    assert val == pytest.approx(loss_ref("Huber", pred, tgt, huber_delta=0.5)[0], rel=1e-6)
    assert val != pytest.approx(loss_ref("Huber", pred, tgt, huber_delta=DELTA)[0], rel=1e-3)


def test_strided_column_view_and_mean_out_reuse(device):
    rng = np.random.default_rng(51)
    wide = rng.normal(size=(40, 16)).astype(np.float32)
    tgt = rng.normal(size=(40, 3)).astype(np.float32)
    wide_wp = _wp(wide, device)
    view = wide_wp[:, 2:5]
    assert not view.is_contiguous
    mean_out = wp.zeros(1, dtype=wp.float32, device=device)
    grad_wide = wp.zeros((40, 16), dtype=wp.float32, device=device)
    res = compute_loss("L2", view, _wp(tgt, device), grad_out=grad_wide[:, 2:5], mean_out=mean_out)
    assert res is mean_out
    mean, g_ref, _ = loss_ref("L2", wide[:, 2:5], tgt)
    assert float(mean_out.numpy()[0]) == pytest.approx(mean, rel=1e-6)
    gw = grad_wide.numpy()
    np.testing.assert_allclose(gw[:, 2:5], g_ref, rtol=2e-6)
    assert np.all(gw[:, :2] == 0.0) and np.all(gw[:, 5:] == 0.0)


def test_empty_batch_gives_zero(device):
    empty = wp.zeros((0, 3), dtype=wp.float32, device=device)
    assert compute_loss("L2", empty, empty, return_value=True) == 0.0


def test_argument_errors(device):
    a = wp.zeros((4, 3), dtype=wp.float32, device=device)
    with pytest.raises(KernelArgumentError, match="L2, L1, Huber, RelativeL2, MAPE"):
        compute_loss("l2", a, a)
    with pytest.raises(KernelArgumentError, match="target"):
        compute_loss("L2", a, wp.zeros((4, 2), dtype=wp.float32, device=device))
    with pytest.raises(KernelArgumentError, match="grad_out"):
        compute_loss("L2", a, a, grad_out=wp.zeros((3, 3), dtype=wp.float32, device=device))
    with pytest.raises(KernelArgumentError, match="values_out"):
        compute_loss("L2", a, a, values_out=wp.zeros((4, 3), dtype=wp.float64, device=device))
    with pytest.raises(KernelArgumentError, match="row_weight"):
        compute_loss("L2", a, a, row_weight=wp.zeros(3, dtype=wp.float32, device=device))
    with pytest.raises(KernelArgumentError, match="prediction"):
        compute_loss("L2", wp.zeros(12, dtype=wp.float32, device=device), a)
    with pytest.raises(KernelArgumentError, match="huber_delta"):
        compute_loss("Huber", a, a, huber_delta=0.0)
    with pytest.raises(KernelArgumentError, match="warp.array"):
        compute_loss("L2", np.zeros((4, 3), np.float32), a)
