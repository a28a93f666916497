"""Image-quality metrics of the NeRF literature: PSNR and SSIM on colours in [0, 1]."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr_from_mse", "psnr", "ssim"]


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for signals with peak 1."""
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1] (peak 1), both clipped to [0, 1]."""
    d = np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1).astype(np.float64)
    return psnr_from_mse(float(np.mean(d * d)))


def _gaussian_filter(x: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    """Separable Gaussian over the first two axes with 'valid' borders (11-tap window, as the NeRF papers)."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    h, w = x.shape[:2]
    y = sum(k[i] * x[i:h - 2 * radius + i] for i in range(k.size))
    return sum(k[i] * y[:, i:w - 2 * radius + i] for i in range(k.size))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two ``[H, W, C]`` images in [0, 1]: Gaussian window (sigma 1.5, 11 taps), K1 0.01, K2 0.03.

    Uses ``skimage.metrics.structural_similarity`` when scikit-image is installed (with the settings of the
    NeRF papers); otherwise an equivalent NumPy implementation (valid-window mean).
    """
    a = np.clip(a, 0, 1).astype(np.float64)
    b = np.clip(b, 0, 1).astype(np.float64)
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        structural_similarity = None
    if structural_similarity is not None and min(a.shape[:2]) >= 11:
        return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True,
                                           sigma=1.5, use_sample_covariance=False))
    return _ssim_numpy(a, b)


def _ssim_numpy(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = 0.01**2, 0.03**2
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {a.shape[1]}x{a.shape[0]}")
    mu_a, mu_b = _gaussian_filter(a), _gaussian_filter(b)
    var_a = _gaussian_filter(a * a) - mu_a**2
    var_b = _gaussian_filter(b * b) - mu_b**2
    cov = _gaussian_filter(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())
