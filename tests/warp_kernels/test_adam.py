"""Tests for warp_kernels.adam against the float64 tcnn references in tests/reference/adam_ref.py."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference.adam_ref import EmaRef, ExponentialDecayRef, adam_step_ref
from warp_kernels.adam import adam_learning_rate, adam_step, ema_update, exponential_decay_lr
from warp_kernels.device import KernelArgumentError


def _random_grads(rng: np.random.Generator, n: int, zero_frac: float = 0.3) -> np.ndarray:
    g = rng.normal(0.0, 1.0, n) * 10.0 ** rng.uniform(-3, 1, n)
    g[rng.random(n) < zero_frac] = 0.0
    return g.astype(np.float32)


def _state(device, n: int, rng: np.random.Generator):
    p0 = rng.normal(0.0, 1.0, n).astype(np.float32)
    arrs = {
        "params": wp.array(p0, dtype=wp.float32, device=device),
        "grads": wp.zeros(n, dtype=wp.float32, device=device),
        "m": wp.zeros(n, dtype=wp.float32, device=device),
        "v": wp.zeros(n, dtype=wp.float32, device=device),
    }
    return p0, arrs


@pytest.mark.parametrize("n", [257, 10_001])  # 10_001 takes the split (multi-threaded) CPU path
@pytest.mark.parametrize("skip_zero_grad", [False, True])
@pytest.mark.parametrize("l2_reg", [0.0, 1e-6, 0.05])
@pytest.mark.parametrize("per_param_steps", [False, True])
def test_adam_matches_float64_reference(device, n, skip_zero_grad, l2_reg, per_param_steps):
    rng = np.random.default_rng(n + int(skip_zero_grad) + int(l2_reg * 1e7) + 7 * per_param_steps)
    p0, a = _state(device, n, rng)
    steps_wp = wp.zeros(n, dtype=wp.int32, device=device) if per_param_steps else None
    ref_steps = np.zeros(n, np.int64) if per_param_steps else None
    hp = dict(
        learning_rate=1e-2, beta1=0.9, beta2=0.99, epsilon=1e-15, l2_reg=l2_reg, skip_zero_grad=skip_zero_grad
    )
    # The kernel works with float32 hyperparameters, as tcnn does: 1 - float32(0.99) is 1e-6 off 0.01.
    hp32 = {k: (float(np.float32(x)) if k in ("beta1", "beta2", "l2_reg") else x) for k, x in hp.items()}
    never_touched = np.ones(n, bool)
    for step in range(1, 6):
        g = _random_grads(rng, n)
        never_touched &= g == 0
        a["grads"].assign(g)
        # Each step is compared from the kernel's own previous state, so float32 rounding cannot accumulate
        # and the tolerance can be a few ulp of the magnitudes involved.
        p, m, v = (a[k].numpy().astype(np.float64) for k in ("params", "m", "v"))
        adam_step(a["params"], a["grads"], a["m"], a["v"], step=step, param_steps=steps_wp, **hp)
        ref_p, ref_m, ref_v, ref_steps = adam_step_ref(p, g, m, v, step=step, param_steps=ref_steps, **hp32)
        geff = np.abs(g) + l2_reg * np.abs(p)
        ulp = 4 * np.finfo(np.float32).eps
        m_tol = ulp * (0.9 * np.abs(m) + 0.1 * geff) + 1e-30
        assert np.all(np.abs(a["m"].numpy() - ref_m) <= m_tol)
        g_err = ulp * geff  # rounding of g + l2 * p, which may cancel
        v_tol = ulp * np.abs(ref_v) + 0.01 * 2 * np.abs(g + l2_reg * p) * g_err + 1e-30
        assert np.all(np.abs(a["v"].numpy() - ref_v) <= v_tol)
        # Parameter error: rounding of p and of the move, plus the move's sensitivity to the error in m.
        t = np.maximum(ref_steps, 1) if per_param_steps else step
        lr_t = 1e-2 * np.sqrt(1 - 0.99**t) / (1 - 0.9**t)
        move = np.abs(ref_p - p)
        p_tol = ulp * (np.abs(p) + 4 * move) + lr_t * m_tol / (np.sqrt(ref_v) + 1e-15)
        p_tol += move * v_tol / np.maximum(ref_v, 1e-30) + 1e-30
        assert np.all(np.abs(a["params"].numpy() - ref_p) <= p_tol)
        assert np.all(a["grads"].numpy() == 0.0), "gradients must be zeroed by the fused pass"
        if per_param_steps:
            np.testing.assert_array_equal(steps_wp.numpy(), ref_steps)
    if skip_zero_grad and l2_reg == 0.0:
        # Elements whose gradient was zero at every step keep their exact initial value and zero moments.
        assert never_touched.any()
        np.testing.assert_array_equal(a["params"].numpy()[never_touched], p0[never_touched])
        assert np.all(a["m"].numpy()[never_touched] == 0.0)


def test_skip_zero_grad_leaves_skipped_elements_bitwise_untouched(device):
    rng = np.random.default_rng(1)
    n = 64
    _, a = _state(device, n, rng)
    adam_step(
        a["params"], a["grads"], a["m"], a["v"], step=1, learning_rate=1e-2
    )  # grads all zero: m, v stay 0
    a["grads"].assign(_random_grads(rng, n, 0.0))
    adam_step(a["params"], a["grads"], a["m"], a["v"], step=2, learning_rate=1e-2)
    before = {k: x.numpy().copy() for k, x in a.items()}
    g = _random_grads(rng, n, 0.5)
    a["grads"].assign(g)
    adam_step(
        a["params"], a["grads"], a["m"], a["v"], step=3, learning_rate=1e-2, l2_reg=0.1, skip_zero_grad=True
    )
    z = g == 0
    assert z.any() and (~z).any()
    for k in ("params", "m", "v"):
        np.testing.assert_array_equal(a[k].numpy()[z], before[k][z])
        assert np.all(a[k].numpy()[~z] != before[k][~z]), k


def test_without_skip_zero_grad_moments_decay_on_zero_grads(device):
    rng = np.random.default_rng(2)
    _, a = _state(device, 8, rng)
    a["grads"].fill_(1.0)
    adam_step(a["params"], a["grads"], a["m"], a["v"], step=1, learning_rate=1e-2)
    p1, m1 = a["params"].numpy().copy(), a["m"].numpy().copy()
    adam_step(a["params"], a["grads"], a["m"], a["v"], step=2, learning_rate=1e-2)  # zero grads, not skipped
    np.testing.assert_allclose(a["m"].numpy(), 0.9 * m1, rtol=1e-6)
    assert np.all(a["params"].numpy() < p1), "momentum keeps moving the parameters"


def test_zero_grads_false_keeps_gradients(device):
    rng = np.random.default_rng(3)
    _, a = _state(device, 32, rng)
    g = _random_grads(rng, 32)
    a["grads"].assign(g)
    adam_step(a["params"], a["grads"], a["m"], a["v"], step=1, learning_rate=1e-3, zero_grads=False)
    np.testing.assert_array_equal(a["grads"].numpy(), g)


def test_first_step_moves_every_nonzero_grad_element_by_lr(device):
    """Classic Adam invariant: with l2 = 0 the first bias-corrected step has magnitude lr (up to epsilon)."""
    rng = np.random.default_rng(4)
    p0, a = _state(device, 100, rng)
    g = _random_grads(rng, 100, 0.0)
    a["grads"].assign(g)
    adam_step(a["params"], a["grads"], a["m"], a["v"], step=1, learning_rate=0.01)
    delta = a["params"].numpy().astype(np.float64) - p0
    np.testing.assert_allclose(np.abs(delta), 0.01, rtol=1e-4)
    np.testing.assert_array_equal(np.sign(delta), -np.sign(g))


def test_multidimensional_contiguous_buffers(device):
    rng = np.random.default_rng(5)
    shape = (7, 9)
    p0 = rng.normal(size=shape).astype(np.float32)
    g = _random_grads(rng, 63).reshape(shape)
    params = wp.array(p0, dtype=wp.float32, device=device)
    grads = wp.array(g, dtype=wp.float32, device=device)
    m = wp.zeros(shape, dtype=wp.float32, device=device)
    v = wp.zeros(shape, dtype=wp.float32, device=device)
    adam_step(params, grads, m, v, step=1, learning_rate=1e-2, l2_reg=1e-3)
    ref_p, _, _, _ = adam_step_ref(
        p0, g, np.zeros(shape), np.zeros(shape), step=1, learning_rate=1e-2, l2_reg=1e-3
    )
    np.testing.assert_allclose(params.numpy(), ref_p, rtol=1e-5, atol=1e-7)


def test_adam_argument_errors(device):
    a = wp.zeros(10, dtype=wp.float32, device=device)
    b = wp.zeros(10, dtype=wp.float32, device=device)
    c = wp.zeros(10, dtype=wp.float32, device=device)
    with pytest.raises(KernelArgumentError, match="shape"):
        adam_step(a, b, c, wp.zeros(11, dtype=wp.float32, device=device), step=1, learning_rate=1e-2)
    with pytest.raises(KernelArgumentError, match="dtype"):
        adam_step(a, b, c, wp.zeros(10, dtype=wp.float64, device=device), step=1, learning_rate=1e-2)
    with pytest.raises(KernelArgumentError, match="step"):
        adam_step(a, b, c, wp.zeros(10, dtype=wp.float32, device=device), step=0, learning_rate=1e-2)
    with pytest.raises(KernelArgumentError, match="param_steps"):
        adam_step(
            a,
            b,
            c,
            wp.zeros(10, dtype=wp.float32, device=device),
            step=1,
            learning_rate=1e-2,
            param_steps=wp.zeros(10, dtype=wp.float32, device=device),
        )
    with pytest.raises(KernelArgumentError, match="warp.array"):
        adam_step(np.zeros(10, np.float32), b, c, a, step=1, learning_rate=1e-2)


def test_adam_learning_rate_bias_correction():
    assert adam_learning_rate(1.0, 1, beta1=0.9, beta2=0.99) == pytest.approx(np.sqrt(0.01) / 0.1)
    assert adam_learning_rate(2.0, 10**6) == pytest.approx(2.0)


# ------------------------------------------------------------------------------------------------ EMA


def test_ema_matches_two_buffer_reference(device):
    rng = np.random.default_rng(6)
    n, decay = 5000, 0.95
    ema = wp.array(np.full(n, np.nan, np.float32), dtype=wp.float32, device=device)  # never read at step 1
    params = wp.zeros(n, dtype=wp.float32, device=device)
    ref = EmaRef(n, decay)
    for step in range(1, 9):
        p = (rng.normal(size=n) + step).astype(np.float32)
        params.assign(p)
        ema_update(ema, params, decay=decay, step=step)
        expected = ref.update(p)
        np.testing.assert_allclose(ema.numpy(), expected, rtol=2e-6, atol=1e-6)
        if step == 1:
            np.testing.assert_array_equal(ema.numpy(), p)


def test_ema_of_constant_parameters_is_that_constant(device):
    n = 16
    ema = wp.zeros(n, dtype=wp.float32, device=device)
    params = wp.array(np.linspace(-3, 3, n).astype(np.float32), dtype=wp.float32, device=device)
    for step in range(1, 30):
        ema_update(ema, params, decay=0.99, step=step)
    np.testing.assert_allclose(ema.numpy(), params.numpy(), rtol=1e-5, atol=1e-6)


def test_ema_lags_a_ramp(device):
    """Debiased EMA of a ramp p_t = t is strictly below the current value after the first step."""
    ema = wp.zeros(4, dtype=wp.float32, device=device)
    params = wp.zeros(4, dtype=wp.float32, device=device)
    for step in range(1, 6):
        params.fill_(float(step))
        ema_update(ema, params, decay=0.9, step=step)
    expected = EmaRef(1, 0.9)
    for step in range(1, 6):
        val = expected.update(np.array([float(step)]))
    np.testing.assert_allclose(ema.numpy(), val[0], rtol=1e-6)
    assert np.all(ema.numpy() < 5.0)


def test_ema_argument_errors(device):
    a = wp.zeros(4, dtype=wp.float32, device=device)
    with pytest.raises(KernelArgumentError, match="decay"):
        ema_update(a, a, decay=1.0, step=1)
    with pytest.raises(KernelArgumentError, match="step"):
        ema_update(a, a, decay=0.9, step=0)
    with pytest.raises(KernelArgumentError, match="shape"):
        ema_update(a, wp.zeros(5, dtype=wp.float32, device=device), decay=0.9, step=1)


# ------------------------------------------------------------------------------------------------ LR schedule


@pytest.mark.parametrize(
    "cfg",
    [
        dict(decay_start=20, decay_interval=10, decay_base=0.33),
        dict(decay_start=0, decay_interval=1, decay_base=0.5),
        dict(decay_start=5, decay_interval=7, decay_base=0.1, decay_end=30),
        dict(decay_start=40, decay_interval=3, decay_base=0.1, decay_end=20),
    ],
)
def test_exponential_decay_matches_tcnn_bookkeeping(cfg):
    ref = ExponentialDecayRef(1e-2, **cfg)
    for step in range(1, 81):
        assert exponential_decay_lr(1e-2, step, **cfg) == pytest.approx(ref.next_lr(), rel=1e-12), step


def test_exponential_decay_instant_ngp_values():
    cfg = dict(decay_start=20_000, decay_interval=10_000, decay_base=0.33)
    assert exponential_decay_lr(1e-2, 1, **cfg) == 1e-2
    assert exponential_decay_lr(1e-2, 20_000, **cfg) == 1e-2
    assert exponential_decay_lr(1e-2, 20_001, **cfg) == pytest.approx(3.3e-3)
    assert exponential_decay_lr(1e-2, 30_000, **cfg) == pytest.approx(3.3e-3)
    assert exponential_decay_lr(1e-2, 30_001, **cfg) == pytest.approx(1e-2 * 0.33**2)
    assert exponential_decay_lr(1e-2, 35_000, **cfg) == pytest.approx(1e-2 * 0.33**2)


def test_exponential_decay_argument_errors():
    with pytest.raises(KernelArgumentError):
        exponential_decay_lr(1.0, 0, decay_start=1, decay_interval=1, decay_base=0.5)
    with pytest.raises(KernelArgumentError):
        exponential_decay_lr(1.0, 5, decay_start=1, decay_interval=0, decay_base=0.5)
