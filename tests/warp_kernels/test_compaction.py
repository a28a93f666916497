"""warp_kernels.compaction against its NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import warp as wp

from tests.reference import compaction_ref as ref
from warp_kernels.compaction import gather_rows, scatter_rows, select_samples
from warp_kernels.device import KernelArgumentError


@pytest.mark.parametrize("n", [0, 1, 7, 9000])
def test_select_gather_scatter(device, n):
    rng = np.random.default_rng(n)
    v = rng.uniform(0, 1, n).astype(np.float32)
    if n:
        v[rng.integers(0, n, max(1, n // 10))] = np.nan  # NaN is never selected
    idx = select_samples(wp.array(v, dtype=wp.float32, device=device), 0.4)
    want = ref.select_samples_ref(v, 0.4)
    np.testing.assert_array_equal(idx.numpy(), want)
    src = rng.normal(size=(n, 5)).astype(np.float32)
    g = gather_rows(wp.array(src, device=device), idx)
    np.testing.assert_array_equal(g.numpy(), ref.gather_rows_ref(src, want))
    out = wp.array(np.full((n, 5), 9.0, np.float32), device=device)
    scatter_rows(g, idx, out)
    np.testing.assert_array_equal(out.numpy(), ref.scatter_rows_ref(src[want], want, n))
    # reusable buffers; too-small buffers are refused
    buf = wp.empty(n + 3, dtype=wp.int32, device=device)
    scratch = wp.empty(2 * n + 3, dtype=wp.int32, device=device)
    np.testing.assert_array_equal(select_samples(wp.array(v, device=device), 0.4, indices=buf,
                                                 scratch=scratch).numpy(), want)
    if n:
        with pytest.raises(KernelArgumentError, match="need"):
            select_samples(wp.array(v, device=device), 0.4, scratch=wp.empty(n, dtype=wp.int32, device=device))
        with pytest.raises(KernelArgumentError, match="outside"):
            gather_rows(wp.array(src, device=device), wp.array(np.array([n], np.int32), device=device))
