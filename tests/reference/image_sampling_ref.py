"""Float64 NumPy reference of bilinear clamp-to-edge image lookups."""

from __future__ import annotations

import numpy as np


def sample_bilinear(image: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``image`` [H, W, C] float64 values, ``pos`` [N, 2] in [0,1] (x right, y down) -> [N, C]."""
    h, w = image.shape[:2]
    px = np.clip(pos[:, 0] * w - 0.5, 0, w - 1)
    py = np.clip(pos[:, 1] * h - 0.5, 0, h - 1)
    x0 = np.minimum(np.floor(px).astype(int), w - 1)
    y0 = np.minimum(np.floor(py).astype(int), h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (px - x0)[:, None]
    fy = (py - y0)[:, None]
    a = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    b = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return a * (1 - fy) + b * fy
