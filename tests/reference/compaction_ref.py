"""NumPy reference of warp_kernels.compaction."""

from __future__ import annotations

import numpy as np

__all__ = ["select_samples_ref", "gather_rows_ref", "scatter_rows_ref"]


def select_samples_ref(values, threshold) -> np.ndarray:
    """Increasing indices with ``values >= threshold``."""
    return np.flatnonzero(np.asarray(values, np.float64) >= threshold).astype(np.int32)


def gather_rows_ref(src, indices) -> np.ndarray:
    """``src[indices]``."""
    return np.asarray(src)[np.asarray(indices)]


def scatter_rows_ref(src, indices, n_rows: int) -> np.ndarray:
    """Rows ``src[i]`` at ``indices[i]`` of a zero ``[n_rows, C]`` array."""
    src = np.asarray(src)
    out = np.zeros((n_rows, src.shape[1]), src.dtype)
    out[np.asarray(indices)] = src
    return out
