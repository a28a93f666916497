"""NumPy reference of warp_kernels.random: the PCG hash and rand01 in uint32 wrap-around arithmetic."""

from __future__ import annotations

import numpy as np

__all__ = ["pcg_hash", "rand01"]

_U32 = np.uint32


def pcg_hash(v) -> np.ndarray:
    """PCG-RXS-M-XS hash, uint32 in/out (wrap-around)."""
    v = np.asarray(v, dtype=_U32)
    with np.errstate(over="ignore"):
        state = v * _U32(747796405) + _U32(2891336453)
        word = ((state >> ((state >> _U32(28)) + _U32(4))) ^ state) * _U32(277803737)
    return (word >> _U32(22)) ^ word


def rand01(seed: int, stream: int, counter) -> np.ndarray:
    """Uniform [0, 1) values, bit-identical to ``warp_kernels.random.rand01``."""
    counter = np.asarray(counter, dtype=_U32)
    with np.errstate(over="ignore"):
        h = pcg_hash(
            pcg_hash(pcg_hash(np.full(counter.shape, seed & 0xFFFFFFFF, dtype=_U32)) + _U32(stream)) + counter
        )
    return (h >> _U32(8)).astype(np.float64) / 16777216.0
