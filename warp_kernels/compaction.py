"""Stream compaction on the device: select the indices whose value passes a threshold, gather and scatter rows.

Used wherever work shrinks between passes: the NeRF colour network runs only on samples a ray still sees, sphere
tracing keeps only its active rays. One thread per element with disjoint writes, split over CPU cores; the
selection is a flag pass, an exclusive prefix sum and a scatter of the indices, so its order is increasing.
"""

from __future__ import annotations

import warp as wp

from .device import KernelArgumentError, check_array, common_device
from .parallel import launch_split

__all__ = ["select_samples", "gather_rows", "scatter_rows", "gather_ints"]

wp.set_module_options({"enable_backward": False})


@wp.kernel
def _flag_kernel(offset: int, values: wp.array(dtype=float), threshold: float, flags: wp.array(dtype=wp.int32)):
    i = wp.tid() + offset
    flags[i] = wp.where(values[i] >= threshold, 1, 0)


@wp.kernel
def _select_kernel(
    offset: int,
    values: wp.array(dtype=float),
    threshold: float,
    positions: wp.array(dtype=wp.int32),
    indices: wp.array(dtype=wp.int32),
):
    i = wp.tid() + offset
    if values[i] >= threshold:
        indices[positions[i]] = wp.int32(i)


@wp.kernel
def _gather_kernel(
    offset: int, src: wp.array2d(dtype=float), indices: wp.array(dtype=wp.int32), out: wp.array2d(dtype=float)
):
    i = wp.tid() + offset
    r = int(indices[i])
    for j in range(out.shape[1]):
        out[i, j] = src[r, j]


@wp.kernel
def _gather_ints_kernel(
    offset: int, src: wp.array(dtype=wp.int32), indices: wp.array(dtype=wp.int32), out: wp.array(dtype=wp.int32)
):
    i = wp.tid() + offset
    out[i] = src[indices[i]]


@wp.kernel
def _scatter_kernel(
    offset: int, src: wp.array2d(dtype=float), indices: wp.array(dtype=wp.int32), out: wp.array2d(dtype=float)
):
    i = wp.tid() + offset
    r = int(indices[i])
    for j in range(src.shape[1]):
        out[r, j] = src[i, j]


def select_samples(
    values: wp.array,
    threshold: float,
    *,
    indices: wp.array | None = None,
    scratch: wp.array | None = None,
    device: wp.context.Devicelike = None,
) -> wp.array:
    """Indices of the samples with ``values >= threshold``, in increasing order (a stream compaction).

    Args:
        values: float32 ``[S]`` (e.g. the transmittance on arrival of every sample).
        threshold: keep ``values[i] >= threshold`` (NaN is dropped).
        indices: optional int32 ``[>= S]`` output buffer; the result is a view of its first ``A`` entries.
        scratch: optional int32 ``[>= 2 S]`` buffer for the flags and their prefix sum.
        device: launch device; ``None`` = the arrays' device.

    Returns:
        int32 ``[A]``. Reads the count ``A`` back to the host.
    """
    dev = common_device([values, indices, scratch], device)
    check_array(values, "values", dtype=wp.float32, shape=(None,), device=dev)
    n = values.shape[0]
    for a, name, need in ((indices, "indices", n), (scratch, "scratch", 2 * n)):
        if a is not None:
            check_array(a, name, dtype=wp.int32, shape=(None,), device=dev)
            if a.shape[0] < need:
                raise KernelArgumentError(f"{name} holds {a.shape[0]} entries, need {need}")
    if n == 0:  # (Warp refuses to slice an empty array)
        return wp.empty(0, dtype=wp.int32, device=dev)
    if indices is None:
        indices = wp.empty(n, dtype=wp.int32, device=dev)
    if scratch is None:
        scratch = wp.empty(2 * n, dtype=wp.int32, device=dev)
    flags, offsets = scratch[:n], scratch[n : 2 * n]
    launch_split(_flag_kernel, n, [values, float(threshold), flags], dev)
    wp.utils.array_scan(flags, offsets, inclusive=False)
    count = int(offsets[n - 1 : n].numpy()[0]) + int(flags[n - 1 : n].numpy()[0])
    launch_split(_select_kernel, n, [values, float(threshold), offsets, indices], dev)
    return indices[:count]


def gather_rows(
    src: wp.array, indices: wp.array, *, out: wp.array | None = None, device: wp.context.Devicelike = None
) -> wp.array:
    """``out[i] = src[indices[i]]`` for float32 ``src [S, C]`` (strided views fine) and int32 ``indices [A]``.

    Indices must lie in ``[0, S)`` (checked on CPU).
    """
    dev = common_device([src, indices, out], device)
    check_array(src, "src", dtype=wp.float32, shape=(None, None), device=dev)
    _check_indices(indices, src.shape[0], dev)
    a = indices.shape[0]
    if out is None:
        out = wp.empty((a, src.shape[1]), dtype=wp.float32, device=dev)
    else:
        check_array(out, "out", dtype=wp.float32, shape=(a, src.shape[1]), device=dev)
    launch_split(_gather_kernel, a, [src, indices, out], dev)
    return out


def gather_ints(
    src: wp.array, indices: wp.array, *, out: wp.array | None = None, device: wp.context.Devicelike = None
) -> wp.array:
    """``out[i] = src[indices[i]]`` for int32 ``src [S]`` and ``indices [A]`` (e.g. the ids of the rays a
    selection keeps). Indices must lie in ``[0, S)`` (checked on CPU); ``out`` may not alias ``src``."""
    dev = common_device([src, indices, out], device)
    check_array(src, "src", dtype=wp.int32, shape=(None,), device=dev)
    _check_indices(indices, src.shape[0], dev)
    a = indices.shape[0]
    if out is None:
        out = wp.empty(a, dtype=wp.int32, device=dev)
    else:
        check_array(out, "out", dtype=wp.int32, shape=(a,), device=dev)
    launch_split(_gather_ints_kernel, a, [src, indices, out], dev)
    return out


def scatter_rows(
    src: wp.array, indices: wp.array, out: wp.array, *, zero_others: bool = True,
    device: wp.context.Devicelike = None,
) -> wp.array:
    """``out[indices[i]] = src[i]`` for float32 ``src [A, C]`` into ``out [S, C]``; other rows zeroed first.

    Indices must be distinct and lie in ``[0, S)`` (range checked on CPU).
    """
    dev = common_device([src, indices, out], device)
    check_array(src, "src", dtype=wp.float32, shape=(None, None), device=dev)
    check_array(out, "out", dtype=wp.float32, shape=(None, src.shape[1]), device=dev)
    _check_indices(indices, out.shape[0], dev)
    if indices.shape[0] != src.shape[0]:
        raise KernelArgumentError(f"indices has {indices.shape[0]} entries, src {src.shape[0]} rows")
    if zero_others:
        out.zero_()
    launch_split(_scatter_kernel, src.shape[0], [src, indices, out], dev)
    return out


def _check_indices(indices: wp.array, n_rows: int, dev) -> None:
    check_array(indices, "indices", dtype=wp.int32, shape=(None,), device=dev)
    if dev.is_cpu and indices.shape[0]:
        v = indices.numpy()
        if v.min() < 0 or v.max() >= n_rows:
            raise KernelArgumentError(f"indices hold values in [{v.min()}, {v.max()}], outside [0, {n_rows})")
