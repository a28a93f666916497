"""Adam, parameter EMA and the exponential learning-rate schedule, as tiny-cuda-nn / instant-ngp use them.

All state lives in flat float32 buffers owned by the caller (parameters, gradients, first and second moments,
EMA copy); the launch functions here update them in place and allocate nothing.

* :func:`adam_step` is tcnn's ``adam_step`` kernel reduced to what instant-ngp uses: optional L2 on the
  gradient (MLP weights), optional skipping of exact-zero gradients (hash tables), bias correction folded into
  the learning rate, and the gradient buffer zeroed in the same pass.
* :func:`ema_update` is tcnn's ``EmaOptimizer`` (full-precision variant): one buffer holding the debiased EMA.
* :func:`exponential_decay_lr` is tcnn's ``ExponentialDecayOptimizer`` in closed form.

Every kernel here is elementwise and deterministic on CPU and CUDA.
"""

from __future__ import annotations

import math

import warp as wp

from .device import KernelArgumentError, check_array, common_device
from .parallel import launch_split

__all__ = ["adam_step", "ema_update", "exponential_decay_lr", "adam_learning_rate"]

# No kernel here is differentiated by Warp: skip adjoint code generation (smaller, faster compiles).
wp.set_module_options({"enable_backward": False})


# ----------------------------------------------------------------------------------------------------------
# Layer 0: kernels
# ----------------------------------------------------------------------------------------------------------


@wp.kernel
def _adam_kernel(
    offset: int,
    params: wp.array(dtype=wp.float32),
    grads: wp.array(dtype=wp.float32),
    m: wp.array(dtype=wp.float32),
    v: wp.array(dtype=wp.float32),
    lr_t: wp.float32,
    beta1: wp.float32,
    beta2: wp.float32,
    epsilon: wp.float32,
    l2_reg: wp.float32,
    skip_zero_grad: int,
    zero_grads: int,
):
    """One Adam update of element ``i``; bias correction is already folded into ``lr_t``."""
    i = wp.tid() + offset
    g = grads[i]
    if skip_zero_grad != 0 and g == 0.0:
        return
    p = params[i]
    g = g + l2_reg * p
    mi = beta1 * m[i] + (1.0 - beta1) * g
    vi = beta2 * v[i] + (1.0 - beta2) * (g * g)
    m[i] = mi
    v[i] = vi
    # Same operation order as tcnn: effective_lr = lr_t / (sqrt(v) + eps); p -= effective_lr * m.
    params[i] = p - (lr_t / (wp.sqrt(vi) + epsilon)) * mi
    if zero_grads != 0:
        grads[i] = 0.0


@wp.kernel
def _adam_param_steps_kernel(
    offset: int,
    params: wp.array(dtype=wp.float32),
    grads: wp.array(dtype=wp.float32),
    m: wp.array(dtype=wp.float32),
    v: wp.array(dtype=wp.float32),
    param_steps: wp.array(dtype=wp.int32),
    learning_rate: wp.float32,
    beta1: wp.float32,
    beta2: wp.float32,
    epsilon: wp.float32,
    l2_reg: wp.float32,
    skip_zero_grad: int,
    zero_grads: int,
):
    """Adam with a per-element step counter, bias-corrected on the device in float32 like tcnn."""
    i = wp.tid() + offset
    g = grads[i]
    if skip_zero_grad != 0 and g == 0.0:
        return
    p = params[i]
    g = g + l2_reg * p
    mi = beta1 * m[i] + (1.0 - beta1) * g
    vi = beta2 * v[i] + (1.0 - beta2) * (g * g)
    m[i] = mi
    v[i] = vi
    s = param_steps[i] + 1
    param_steps[i] = s
    fs = wp.float32(s)
    lr_t = learning_rate * wp.sqrt(1.0 - wp.pow(beta2, fs)) / (1.0 - wp.pow(beta1, fs))
    params[i] = p - (lr_t / (wp.sqrt(vi) + epsilon)) * mi
    if zero_grads != 0:
        grads[i] = 0.0


@wp.kernel
def _ema_kernel(
    offset: int,
    ema: wp.array(dtype=wp.float32),
    params: wp.array(dtype=wp.float32),
    keep: wp.float32,
    take: wp.float32,
):
    """``ema = keep * ema + take * params``; at step 1 (``keep == 0``) the old ``ema`` is never read."""
    i = wp.tid() + offset
    e = take * params[i]
    if keep != 0.0:
        e = keep * ema[i] + e
    ema[i] = e


# ----------------------------------------------------------------------------------------------------------
# Layer 1: launch functions
# ----------------------------------------------------------------------------------------------------------


def _flat(a: wp.array, name: str) -> wp.array:
    """1-D zero-copy view of a contiguous array."""
    if a.ndim == 1:
        return a
    if not a.is_contiguous:
        raise KernelArgumentError(f"{name} must be contiguous to be treated as a flat buffer")
    return a.flatten()


def _check_buffers(named: dict[str, wp.array | None], device: wp.context.Devicelike) -> wp.context.Device:
    """Check the float32 state buffers share one shape and device; return that device."""
    arrays = {k: a for k, a in named.items() if a is not None}
    for name, a in arrays.items():
        if not isinstance(a, wp.array):
            raise KernelArgumentError(f"{name} must be a warp.array, got {type(a).__name__}")
    dev = common_device(arrays.values(), device)
    first_name, first = next(iter(arrays.items()))
    for name, a in arrays.items():
        dtype = wp.int32 if name == "param_steps" else wp.float32
        check_array(a, name, dtype=dtype, device=dev)
        if a.shape != first.shape:
            raise KernelArgumentError(f"{name} has shape {a.shape} but {first_name} has {first.shape}")
        if a.ndim != 1 and not a.is_contiguous:
            raise KernelArgumentError(f"{name} must be 1-D or contiguous")
    return dev


def adam_learning_rate(learning_rate: float, step: int, *, beta1: float = 0.9, beta2: float = 0.99) -> float:
    """Bias-corrected Adam step size ``lr * sqrt(1 - beta2**step) / (1 - beta1**step)`` (float64, host).

    Args:
        learning_rate: base learning rate (after any schedule).
        step: 1-based optimizer step count.
        beta1: first-moment decay.
        beta2: second-moment decay.
    """
    if step < 1:
        raise KernelArgumentError(f"step is 1-based and must be >= 1, got {step}")
    return learning_rate * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)


def adam_step(
    params: wp.array,
    grads: wp.array,
    m: wp.array,
    v: wp.array,
    *,
    step: int,
    learning_rate: float,
    beta1: float = 0.9,
    beta2: float = 0.99,
    epsilon: float = 1e-15,
    l2_reg: float = 0.0,
    skip_zero_grad: bool = False,
    zero_grads: bool = True,
    param_steps: wp.array | None = None,
    device: wp.context.Devicelike = None,
) -> None:
    """One in-place Adam update with tiny-cuda-nn semantics.

    Per element ``i`` (all float32 on the device)::

        g = grads[i]
        if skip_zero_grad and g == 0: skip i entirely (params, m, v, grads untouched)
        g += l2_reg * params[i]
        m[i] = beta1 * m[i] + (1 - beta1) * g
        v[i] = beta2 * v[i] + (1 - beta2) * g * g
        params[i] -= lr_t / (sqrt(v[i]) + epsilon) * m[i]
        if zero_grads: grads[i] = 0

    with ``lr_t = learning_rate * sqrt(1 - beta2**step) / (1 - beta1**step)`` computed on the host in float64
    and rounded to float32 once. instant-ngp passes ``l2_reg=1e-6, skip_zero_grad=False`` for the MLP weights
    and ``l2_reg=0, skip_zero_grad=True`` for the hash tables (tcnn's "non-matrix" parameters). The betas,
    epsilon and l2_reg are used as float32 on the device, as in tcnn.

    tcnn itself keeps one step counter per element, so a hash entry skipped for many steps is bias-corrected
    by the number of updates it actually received. Pass ``param_steps`` to get exactly that: each element's
    counter is incremented when it is updated and the bias correction is computed per element in float32, as
    in tcnn; ``step`` is then only validated. Without ``param_steps`` every element uses the shared ``step``.

    Args:
        params: parameters, float32, any contiguous shape ``[P]``; updated in place.
        grads: gradients of the loss w.r.t. ``params``, float32 ``[P]``; zeroed in place if ``zero_grads``.
        m: first moments, float32 ``[P]`` (start at zero); updated in place.
        v: second moments, float32 ``[P]`` (start at zero); updated in place.
        step: 1-based optimizer step count of this update, shared by all elements.
        learning_rate: base learning rate (after any schedule, see :func:`exponential_decay_lr`).
        beta1: first-moment decay.
        beta2: second-moment decay.
        epsilon: added to ``sqrt(v)`` in the denominator.
        l2_reg: L2 regularisation strength added to the gradient as ``l2_reg * param``.
        skip_zero_grad: leave elements with an exactly-zero gradient completely untouched.
        zero_grads: write 0 to every processed gradient (skipped ones are already 0).
        param_steps: optional int32 ``[P]`` per-element update counters (start at zero), updated in place.
        device: device to run on; ``None`` = the arrays' device. Arrays elsewhere raise
            ``DeviceMismatchError``.

    Raises:
        KernelArgumentError: wrong dtype/shape, ``step < 1``, or a beta outside ``[0, 1)``.
        DeviceMismatchError: arrays on different devices.
    """
    if step < 1:
        raise KernelArgumentError(f"step is 1-based and must be >= 1, got {step}")
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise KernelArgumentError(f"betas must lie in [0, 1), got beta1={beta1}, beta2={beta2}")
    dev = _check_buffers(
        {"params": params, "grads": grads, "m": m, "v": v, "param_steps": param_steps}, device
    )
    n = params.size
    if n == 0:
        return
    flat = [_flat(a, name) for a, name in ((params, "params"), (grads, "grads"), (m, "m"), (v, "v"))]
    flags = [int(bool(skip_zero_grad)), int(bool(zero_grads))]
    hyper = [float(beta1), float(beta2), float(epsilon), float(l2_reg)]  # rounded to float32 by Warp
    if param_steps is None:
        lr_t = adam_learning_rate(learning_rate, step, beta1=beta1, beta2=beta2)
        launch_split(_adam_kernel, n, [*flat, lr_t, *hyper, *flags], dev)
    else:
        steps = _flat(param_steps, "param_steps")
        launch_split(_adam_param_steps_kernel, n, [*flat, steps, float(learning_rate), *hyper, *flags], dev)


def ema_update(
    ema: wp.array,
    params: wp.array,
    *,
    decay: float,
    step: int,
    device: wp.context.Devicelike = None,
) -> None:
    """Update the debiased parameter EMA in place (tcnn ``EmaOptimizer``, single buffer).

    ``ema`` always holds the *debiased* average, ready for inference. Mathematically it equals
    ``ema_raw_t / (1 - decay**t)`` with the biased accumulator ``ema_raw_t = decay * ema_raw_{t-1} +
    (1 - decay) * params_t``, ``ema_raw_0 = 0``; the raw accumulator is never stored because
    ``ema_raw_{t-1} = ema_{t-1} * (1 - decay**(t-1))``. So this computes, per element::

        ema = keep_t * ema + take_t * params
        keep_t = decay * (1 - decay**(t-1)) / (1 - decay**t),   take_t = (1 - decay) / (1 - decay**t)

    with ``keep_t + take_t = 1`` and both factors computed on the host in float64 (tcnn's kernel does the same
    algebra with float32 factors). At ``step == 1`` the result is exactly ``params`` and the previous contents
    of ``ema`` are never read, so it needs no initialisation. Call it once per optimizer step, after
    :func:`adam_step`, with the same ``step``.

    Args:
        ema: float32 ``[P]`` debiased EMA of ``params``; updated in place.
        params: float32 ``[P]`` current parameters.
        decay: EMA decay in ``[0, 1)`` (instant-ngp NeRF: 0.95).
        step: 1-based count of EMA updates including this one.
        device: device to run on; ``None`` = the arrays' device.

    Raises:
        KernelArgumentError: wrong dtype/shape, ``step < 1`` or ``decay`` outside ``[0, 1)``.
        DeviceMismatchError: arrays on different devices.
    """
    if step < 1:
        raise KernelArgumentError(f"step is 1-based and must be >= 1, got {step}")
    if not 0.0 <= decay < 1.0:
        raise KernelArgumentError(f"decay must lie in [0, 1), got {decay}")
    dev = _check_buffers({"ema": ema, "params": params}, device)
    if params.size == 0:
        return
    norm = 1.0 - decay**step
    keep = decay * (1.0 - decay ** (step - 1)) / norm
    take = (1.0 - decay) / norm
    launch_split(_ema_kernel, params.size, [_flat(ema, "ema"), _flat(params, "params"), keep, take], dev)


def exponential_decay_lr(
    base_lr: float,
    step: int,
    *,
    decay_start: int,
    decay_interval: int,
    decay_base: float,
    decay_end: int | None = None,
) -> float:
    """Learning rate of tcnn's ``ExponentialDecay`` optimizer wrapper for the update numbered ``step``.

    tcnn multiplies its learning-rate factor by ``decay_base`` before an update whenever the number of updates
    already done, ``s = step - 1``, satisfies ``decay_start <= s <= decay_end`` and
    ``(s - decay_start) % decay_interval == 0``. In closed form::

        lr = base_lr * decay_base ** k
        k  = 0                                                          if s < decay_start
        k  = (min(s, decay_end) - decay_start) // decay_interval + 1    otherwise

    So the first decayed update is ``step = decay_start + 1`` and each further factor applies every
    ``decay_interval`` updates. instant-ngp NeRF (start 20000, interval 10000, base 0.33): steps 1..20000 use
    ``base_lr``, 20001..30000 use ``0.33 * base_lr``, 30001..40000 use ``0.33**2 * base_lr``, ...

    Args:
        base_lr: the nested optimizer's base learning rate.
        step: 1-based number of the update about to be made (the ``step`` passed to :func:`adam_step`).
        decay_start: updates done before the first decay (tcnn default 10000).
        decay_interval: updates between decays, ``>= 1`` (tcnn default 10000).
        decay_base: factor per decay (tcnn default 0.1).
        decay_end: last ``s`` at which a decay may happen; ``None`` = never stop (tcnn default 10_000_000).

    Returns:
        The learning rate as a Python float.
    """
    if step < 1:
        raise KernelArgumentError(f"step is 1-based and must be >= 1, got {step}")
    if decay_interval < 1:
        raise KernelArgumentError(f"decay_interval must be >= 1, got {decay_interval}")
    s = step - 1
    last = s if decay_end is None else min(s, decay_end)
    if s < decay_start or last < decay_start:
        return float(base_lr)
    k = (last - decay_start) // decay_interval + 1
    return float(base_lr * decay_base**k)
