"""CPU launch splitting: run one Warp launch as several disjoint launches on Python threads.

A Warp CPU launch runs on one thread, and ``wp.atomic_add`` is a plain add there. The launch goes through
ctypes, which releases the GIL, so disjoint sub-launches on a small thread pool use every core. Every kernel
that is split this way takes ``offset: int`` as its first argument and handles index ``wp.tid() + offset``;
the caller guarantees that different offsets write disjoint memory (for the hash-encoding backward that means
splitting by level, never by point). On CUDA devices, or for small launches, a single launch is issued.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import warp as wp

__all__ = ["num_cpu_threads", "split_range", "launch_split", "run_on_threads"]

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()

#: Launches smaller than this many threads per worker run as one launch (thread hand-off costs ~20 us).
MIN_ITEMS_PER_THREAD = 2048


def num_cpu_threads() -> int:
    """Worker threads for CPU launches: ``$NGP_NUM_THREADS`` or the number of usable cores."""
    env = os.environ.get("NGP_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=num_cpu_threads(), thread_name_prefix="ngp-cpu")
        return _POOL


def split_range(n: int, parts: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into at most ``parts`` contiguous ``(start, count)`` pieces of near-equal size."""
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    out, start = [], 0
    for p in range(parts):
        count = base + (1 if p < extra else 0)
        if count:
            out.append((start, count))
        start += count
    return out


def run_on_threads(calls: Sequence[Callable[[], object]]) -> None:
    """Run ``calls`` concurrently on the CPU worker pool (the first on the calling thread) and wait for all.

    Exceptions propagate. Use it for work that releases the GIL (Warp CPU launches, NumPy/BLAS calls).
    """
    if not calls:
        return
    futures = [_pool().submit(c) for c in calls[1:]]
    try:
        calls[0]()
    finally:
        for f in futures:
            f.result()


def launch_split(
    kernel: wp.Kernel,
    n: int,
    inputs: Sequence,
    device: wp.context.Device,
    *,
    pieces: Sequence[tuple[int, int]] | None = None,
) -> None:
    """Launch ``kernel(offset, *inputs)`` over ``n`` threads, split across CPU cores when it pays.

    Args:
        kernel: a kernel whose first argument is ``offset: int``.
        n: total number of logical threads.
        inputs: the remaining kernel arguments.
        device: resolved device; CUDA devices always get one launch.
        pieces: explicit ``(start, count)`` pieces (e.g. aligned to level boundaries); default splits evenly.
    """
    if n <= 0:
        return
    threads = num_cpu_threads()
    if device.is_cuda or threads == 1 or (pieces is None and n < 2 * MIN_ITEMS_PER_THREAD):
        wp.launch(kernel, dim=n, inputs=[0, *inputs], device=device)
        return
    if pieces is None:
        pieces = split_range(n, threads)
    # load (compile on first use) before fanning out, so worker threads never race to build the same module
    kernel.module.load(device)
    if len(pieces) == 1:
        start, count = pieces[0]
        wp.launch(kernel, dim=count, inputs=[start, *inputs], device=device)
        return
    run_on_threads([
        functools.partial(wp.launch, kernel, dim=count, inputs=[start, *inputs], device=device)
        for start, count in pieces
    ])
