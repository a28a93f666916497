"""Counter-based random numbers for kernels: a PCG hash and uniform floats keyed by (seed, stream, counter).

Every random draw of the kernel library (occupancy-grid samples, training-ray pixels, marching jitter) is a pure
function of ``(seed, stream, counter)``, so a launch gives the same numbers on any device and with any thread
split; its float64 twin is ``tests/reference/random_ref.py``.
"""

from __future__ import annotations

import warp as wp

__all__ = ["pcg_hash", "rand01"]

_PCG_MUL = wp.constant(wp.uint32(747796405))
_PCG_INC = wp.constant(wp.uint32(2891336453))
_PCG_OUT = wp.constant(wp.uint32(277803737))


@wp.func
def pcg_hash(v: wp.uint32) -> wp.uint32:
    """PCG-RXS-M-XS 32-bit hash (uint32 wrap-around arithmetic)."""
    state = v * _PCG_MUL + _PCG_INC
    word = ((state >> ((state >> wp.uint32(28)) + wp.uint32(4))) ^ state) * _PCG_OUT
    return (word >> wp.uint32(22)) ^ word


@wp.func
def rand01(seed: wp.uint32, stream: wp.uint32, counter: wp.uint32) -> float:
    """Uniform float in [0, 1) from ``hash(hash(hash(seed) + stream) + counter)`` (24 random bits)."""
    h = pcg_hash(pcg_hash(pcg_hash(seed) + stream) + counter)
    return float(h >> wp.uint32(8)) * (1.0 / 16777216.0)
