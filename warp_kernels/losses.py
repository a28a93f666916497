"""tiny-cuda-nn loss functions with fused gradients, elementwise over predictions ``[N, C]`` float32.

One pass over the elements computes, for ``d = prediction - target``:

* the per-element loss ``w[row] * l(d)`` (optionally written to ``values_out``),
* the gradient ``scale * w[row] * l'(d) / (N * C)`` of the scaled *mean* loss (written to ``grad_out``),
* a float64 partial sum per thread, reduced by a short tree of launches into the mean.

The reduction uses no atomics: every thread owns a fixed set of elements and one partial-sum slot, so the
result is deterministic on CPU and CUDA (for a given device type). On CUDA a thread's elements are strided
``T`` apart (coalesced across threads); on CPU they are contiguous (cache friendly) and the launch is split
over cores with :func:`warp_kernels.parallel.launch_split`.

Loss names follow tcnn's ``otype`` spelling; see :data:`LOSS_NAMES`.
"""

from __future__ import annotations

import warp as wp

from .device import KernelArgumentError, check_array, common_device
from .parallel import MIN_ITEMS_PER_THREAD, launch_split, num_cpu_threads, split_range

__all__ = ["LOSS_NAMES", "compute_loss"]

# No kernel here is differentiated by Warp: skip adjoint code generation (smaller, faster compiles).
wp.set_module_options({"enable_backward": False})

#: Supported loss names (tcnn ``otype`` spelling).
LOSS_NAMES: tuple[str, ...] = ("L2", "L1", "Huber", "RelativeL2", "MAPE")

_LOSS_IDS = {name: i for i, name in enumerate(LOSS_NAMES)}

#: Elements per thread in the loss pass and per thread in each reduction level.
_CUDA_LOSS_CHUNK = 32
_CUDA_REDUCE_CHUNK = 256
_CPU_CHUNK = 256

_LOSS_L2 = wp.constant(0)
_LOSS_L1 = wp.constant(1)
_LOSS_HUBER = wp.constant(2)
_LOSS_RELATIVE_L2 = wp.constant(3)
_LOSS_MAPE = wp.constant(4)


# ----------------------------------------------------------------------------------------------------------
# Layer 0: kernels
# ----------------------------------------------------------------------------------------------------------


@wp.func
def _sign(x: wp.float32) -> wp.float32:
    """-1, 0 or +1 (``wp.sign`` returns +1 at 0)."""
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return 0.0


@wp.func
def _loss_and_grad(loss_id: int, p: wp.float32, y: wp.float32, delta: wp.float32) -> wp.vec2:
    """``(l(d), dl/dp)`` for one element with prediction ``p`` and target ``y``."""
    d = p - y
    if loss_id == _LOSS_L2:
        return wp.vec2(d * d, 2.0 * d)
    if loss_id == _LOSS_L1:
        return wp.vec2(wp.abs(d), _sign(d))
    if loss_id == _LOSS_HUBER:
        ad = wp.abs(d)
        if ad <= delta:
            return wp.vec2(d * d / (2.0 * delta), d / delta)
        return wp.vec2(ad - 0.5 * delta, _sign(d))
    if loss_id == _LOSS_RELATIVE_L2:
        denom = p * p + 0.01  # treated as a constant for the gradient, like tcnn
        return wp.vec2(d * d / denom, 2.0 * d / denom)
    # MAPE
    denom = wp.abs(y) + 0.01
    return wp.vec2(wp.abs(d) / denom, _sign(d) / denom)


@wp.kernel
def _loss_kernel(
    offset: int,
    prediction: wp.array2d(dtype=wp.float32),
    target: wp.array2d(dtype=wp.float32),
    row_weight: wp.array(dtype=wp.float32),
    grad_out: wp.array2d(dtype=wp.float32),
    values_out: wp.array2d(dtype=wp.float32),
    partial: wp.array(dtype=wp.float64),
    loss_id: int,
    delta: wp.float32,
    grad_factor: wp.float32,
    n_elements: int,
    n_cols: int,
    chunk: int,
    thread_stride: int,
    item_stride: int,
    use_weight: int,
    write_grad: int,
    write_values: int,
):
    """Thread ``t`` handles elements ``t * thread_stride + j * item_stride`` for ``j < chunk``."""
    t = wp.tid() + offset
    acc = wp.float64(0.0)
    for j in range(chunk):
        e = t * thread_stride + j * item_stride
        if e >= n_elements:
            break
        row = e // n_cols
        col = e - row * n_cols
        lg = _loss_and_grad(loss_id, prediction[row, col], target[row, col], delta)
        w = wp.float32(1.0)
        if use_weight != 0:
            w = row_weight[row]
        value = w * lg[0]
        acc += wp.float64(value)
        if write_grad != 0:
            grad_out[row, col] = grad_factor * w * lg[1]
        if write_values != 0:
            values_out[row, col] = value
    partial[t] = acc


@wp.kernel
def _sum_kernel(
    offset: int,
    src: wp.array(dtype=wp.float64),
    dst: wp.array(dtype=wp.float64),
    n: int,
    chunk: int,
    thread_stride: int,
    item_stride: int,
):
    """``dst[t] = sum(src[t * thread_stride + j * item_stride] for j < chunk)`` within bounds."""
    t = wp.tid() + offset
    acc = wp.float64(0.0)
    for j in range(chunk):
        e = t * thread_stride + j * item_stride
        if e >= n:
            break
        acc += src[e]
    dst[t] = acc


@wp.kernel
def _finish_mean_kernel(
    src: wp.array(dtype=wp.float64), n: int, inv_count: wp.float64, out: wp.array(dtype=wp.float32)
):
    """Single thread: ``out[0] = float32(sum(src[:n]) * inv_count)``."""
    acc = wp.float64(0.0)
    for i in range(n):
        acc += src[i]
    out[0] = wp.float32(acc * inv_count)


# ----------------------------------------------------------------------------------------------------------
# Layer 1: launch functions
# ----------------------------------------------------------------------------------------------------------


def _layout(n: int, chunk: int, strided: bool) -> tuple[int, int, int]:
    """``(threads, thread_stride, item_stride)`` covering ``n`` items with ``chunk`` items per thread."""
    threads = -(-n // chunk)
    return (threads, 1, threads) if strided else (threads, chunk, 1)


def _launch(kernel: wp.Kernel, threads: int, inputs: list, device: wp.context.Device, items: int) -> None:
    """Launch over ``threads``; on CPU split over cores once the ``items`` they cover make it worthwhile."""
    pieces = None
    if device.is_cpu and items >= 2 * MIN_ITEMS_PER_THREAD:
        pieces = split_range(threads, num_cpu_threads())
    launch_split(kernel, threads, inputs, device, pieces=pieces)


def _check_loss_args(
    prediction: wp.array,
    target: wp.array,
    grad_out: wp.array | None,
    values_out: wp.array | None,
    row_weight: wp.array | None,
    mean_out: wp.array | None,
    device: wp.context.Devicelike,
) -> wp.context.Device:
    arrays = (prediction, target, grad_out, values_out, row_weight, mean_out)
    for a in arrays:
        if a is not None and not isinstance(a, wp.array):
            raise KernelArgumentError(f"loss arguments must be warp.array, got {type(a).__name__}")
    dev = common_device(arrays, device)
    check_array(prediction, "prediction", dtype=wp.float32, shape=(None, None), device=dev)
    shape = tuple(prediction.shape)
    check_array(target, "target", dtype=wp.float32, shape=shape, device=dev)
    if grad_out is not None:
        check_array(grad_out, "grad_out", dtype=wp.float32, shape=shape, device=dev)
    if values_out is not None:
        check_array(values_out, "values_out", dtype=wp.float32, shape=shape, device=dev)
    if row_weight is not None:
        check_array(row_weight, "row_weight", dtype=wp.float32, shape=(shape[0],), device=dev)
    if mean_out is not None:
        check_array(mean_out, "mean_out", dtype=wp.float32, shape=(1,), device=dev)
    return dev


def compute_loss(
    name: str,
    prediction: wp.array,
    target: wp.array,
    *,
    grad_out: wp.array | None = None,
    scale: float = 1.0,
    values_out: wp.array | None = None,
    row_weight: wp.array | None = None,
    huber_delta: float = 0.1,
    mean_out: wp.array | None = None,
    return_value: bool = False,
    device: wp.context.Devicelike = None,
) -> float | wp.array:
    """Mean loss over all ``N * C`` elements, with its gradient written in the same pass.

    With ``d = prediction - target`` and weight ``w = row_weight[row]`` (1 without weights):

    ============  =====================================  ==============================================
    name          l(d)                                   dl/dprediction
    ============  =====================================  ==============================================
    L2            ``d**2``                               ``2 d``
    L1            ``|d|``                                ``sign(d)``
    Huber         ``d**2 / (2 delta)`` if ``|d|<=delta``  ``d / delta``; else ``sign(d)``
                  else ``|d| - delta / 2``
    RelativeL2    ``d**2 / (prediction**2 + 0.01)``      ``2 d / (prediction**2 + 0.01)`` (denominator
                                                         held constant, as in tcnn)
    MAPE          ``|d| / (|target| + 0.01)``            ``sign(d) / (|target| + 0.01)``
    ============  =====================================  ==============================================

    ``sign(0) = 0`` (tcnn uses ``copysign(1, d)``; this only differs for exact zeros such as padded entries).
    The Huber loss is instant-ngp's NeRF Huber (its default ``delta`` there is 1; here 0.1).

    The loss is ``mean = sum(w * l(d)) / (N * C)`` — the weights act like tcnn's ``1 / data_pdf`` and do not
    renormalise the mean (a 0/1 row mask therefore averages over all rows). ``grad_out`` receives
    ``scale * d(mean)/d(prediction) = scale * w * l'(d) / (N * C)`` (overwritten, not accumulated), so
    ``scale = 1`` gives the exact gradient of the mean and ``scale = S`` of the loss scaled by ``S``.
    ``values_out`` receives the unnormalised per-element loss ``w * l(d)``, so its mean is the loss.

    The reduction accumulates in float64 without atomics and is deterministic.

    Args:
        name: one of :data:`LOSS_NAMES`.
        prediction: float32 ``[N, C]`` (strided views such as a column slice are fine).
        target: float32 ``[N, C]``.
        grad_out: optional float32 ``[N, C]`` gradient output.
        scale: factor applied to the gradient only (loss scaling); the returned loss is unscaled.
        values_out: optional float32 ``[N, C]`` per-element loss output.
        row_weight: optional float32 ``[N]`` per-row weight (or 0/1 mask), applied to loss and gradient.
        huber_delta: ``delta`` of the Huber loss (> 0); ignored by the other losses.
        mean_out: optional float32 ``[1]`` array receiving the mean (avoids an allocation per call).
        return_value: read the mean back and return it as a Python float (synchronises the device).
        device: device to run on; ``None`` = the arrays' device. Arrays elsewhere raise
            ``DeviceMismatchError``.

    Returns:
        The mean loss as a float32 ``[1]`` device array (``mean_out`` if given), or a Python float if
        ``return_value``. An empty input (``N * C == 0``) gives 0.

    Raises:
        KernelArgumentError: unknown ``name``, wrong dtype or shape, or ``huber_delta <= 0``.
        DeviceMismatchError: arrays on different devices.
    """
    loss_id = _LOSS_IDS.get(name)
    if loss_id is None:
        raise KernelArgumentError(f"unknown loss {name!r}; valid names: {', '.join(LOSS_NAMES)}")
    if name == "Huber" and not huber_delta > 0.0:
        raise KernelArgumentError(f"huber_delta must be > 0, got {huber_delta}")
    dev = _check_loss_args(prediction, target, grad_out, values_out, row_weight, mean_out, device)
    return _compute_loss(
        loss_id,
        prediction,
        target,
        grad_out,
        values_out,
        row_weight,
        mean_out,
        scale=scale,
        huber_delta=huber_delta,
        return_value=return_value,
        device=dev,
        strided=dev.is_cuda,
    )


def _compute_loss(
    loss_id: int,
    prediction: wp.array,
    target: wp.array,
    grad_out: wp.array | None,
    values_out: wp.array | None,
    row_weight: wp.array | None,
    mean_out: wp.array | None,
    *,
    scale: float,
    huber_delta: float,
    return_value: bool,
    device: wp.context.Device,
    strided: bool,
) -> float | wp.array:
    """Core of :func:`compute_loss` on checked arguments; ``strided`` picks the CUDA (True) or CPU layout."""
    out = mean_out if mean_out is not None else wp.empty(1, dtype=wp.float32, device=device)
    n_rows, n_cols = prediction.shape
    n = n_rows * n_cols
    if n == 0:
        out.zero_()
        return 0.0 if return_value else out

    loss_chunk = _CUDA_LOSS_CHUNK if strided else _CPU_CHUNK
    reduce_chunk = _CUDA_REDUCE_CHUNK if strided else _CPU_CHUNK
    threads, thread_stride, item_stride = _layout(n, loss_chunk, strided)
    partial = wp.empty(threads, dtype=wp.float64, device=device)
    inputs = [
        prediction,
        target,
        row_weight,
        grad_out,
        values_out,
        partial,
        loss_id,
        float(huber_delta),
        float(scale) / n,
        n,
        n_cols,
        loss_chunk,
        thread_stride,
        item_stride,
        int(row_weight is not None),
        int(grad_out is not None),
        int(values_out is not None),
    ]
    _launch(_loss_kernel, threads, inputs, device, n)

    count = threads
    while count > reduce_chunk:
        nxt, thread_stride, item_stride = _layout(count, reduce_chunk, strided)
        dst = wp.empty(nxt, dtype=wp.float64, device=device)
        _launch(
            _sum_kernel, nxt, [partial, dst, count, reduce_chunk, thread_stride, item_stride], device, count
        )
        partial, count = dst, nxt
    wp.launch(_finish_mean_kernel, dim=1, inputs=[partial, count, 1.0 / n, out], device=device)
    return float(out.numpy()[0]) if return_value else out
