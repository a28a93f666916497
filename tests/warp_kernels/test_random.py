"""warp_kernels.random against its uint32 NumPy reference."""

from __future__ import annotations

import numpy as np
import warp as wp

from tests.reference import random_ref as ref
from warp_kernels.random import pcg_hash, rand01


@wp.kernel
def _rand_kernel(seed: wp.uint32, stream: wp.uint32, out: wp.array(dtype=float), h: wp.array(dtype=wp.uint32)):
    i = wp.tid()
    out[i] = rand01(seed, stream, wp.uint32(i))
    h[i] = pcg_hash(wp.uint32(i) * wp.uint32(2654435761))


def test_rand01_and_pcg_hash_match_reference(device):
    r = wp.zeros(4096, dtype=float, device=device)
    h = wp.zeros(4096, dtype=wp.uint32, device=device)
    wp.launch(_rand_kernel, dim=4096, inputs=[12345, 7, r, h], device=device)
    np.testing.assert_array_equal(r.numpy(), ref.rand01(12345, 7, np.arange(4096)))
    with np.errstate(over="ignore"):
        keys = np.arange(4096, dtype=np.uint32) * np.uint32(2654435761)
    np.testing.assert_array_equal(h.numpy(), ref.pcg_hash(keys))
    u = r.numpy()
    assert u.min() >= 0.0 and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.02
    # streams and seeds give different sequences
    other = wp.zeros(4096, dtype=float, device=device)
    wp.launch(_rand_kernel, dim=4096, inputs=[12345, 8, other, h], device=device)
    assert np.mean(other.numpy() == u) < 0.01
