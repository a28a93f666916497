"""Float64 NumPy references of the path tracer's BSDFs (local frame, z = normal; eval includes cos(wo))."""

from __future__ import annotations

import numpy as np


def fresnel_conductor(cos_i: np.ndarray, eta: float, k: float) -> np.ndarray:
    """Unpolarised conductor Fresnel reflectance from the complex IOR (exact formula, via complex arithmetic)."""
    if eta <= 0:
        return np.ones_like(cos_i)
    n = complex(eta, k)
    c = np.clip(cos_i, 0, 1).astype(np.complex128)
    s2 = 1 - c * c
    ct = np.sqrt(1 - s2 / (n * n))  # cos of the (complex) transmitted angle
    rs = (c - n * ct) / (c + n * ct)
    rp = (n * c - ct) / (n * c + ct)
    return 0.5 * (np.abs(rs) ** 2 + np.abs(rp) ** 2)


def ggx_d(m: np.ndarray, alpha: float) -> np.ndarray:
    z = m[..., 2]
    a2 = alpha * alpha
    t = z * z * (a2 - 1) + 1
    return np.where(z > 0, a2 / (np.pi * t * t), 0.0)


def ggx_g1(w: np.ndarray, m: np.ndarray, alpha: float) -> np.ndarray:
    z = w[..., 2]
    c2 = np.clip(z * z, 1e-300, 1.0)
    tan2 = (1 - c2) / c2
    g = 2 / (1 + np.sqrt(1 + alpha * alpha * tan2))
    return np.where(np.sum(w * m, -1) * z > 0, g, 0.0)


def diffuse_eval(reflectance, wi, wo):
    ok = (wi[..., 2] > 0) & (wo[..., 2] > 0)
    return np.where(ok[..., None], np.asarray(reflectance) / np.pi * wo[..., 2:3], 0.0)


def diffuse_pdf(wi, wo):
    return np.where((wi[..., 2] > 0) & (wo[..., 2] > 0), wo[..., 2] / np.pi, 0.0)


def rough_conductor_eval(reflectance, alpha, eta, k, wi, wo):
    ok = (wi[..., 2] > 0) & (wo[..., 2] > 0)
    m = wi + wo
    m = m / np.linalg.norm(m, axis=-1, keepdims=True)
    d = ggx_d(m, alpha)
    g = ggx_g1(wi, m, alpha) * ggx_g1(wo, m, alpha)
    cos_im = np.sum(wi * m, -1)
    f = np.stack([fresnel_conductor(cos_im, e, kk) for e, kk in zip(eta, k, strict=True)], -1)
    val = np.asarray(reflectance) * f * (d * g / (4 * np.where(ok, wi[..., 2], 1.0)))[..., None]
    return np.where(ok[..., None], val, 0.0)


def rough_conductor_pdf(alpha, wi, wo):
    ok = (wi[..., 2] > 0) & (wo[..., 2] > 0)
    m = wi + wo
    m = m / np.linalg.norm(m, axis=-1, keepdims=True)
    dv = ggx_d(m, alpha) * ggx_g1(wi, m, alpha) * np.maximum(np.sum(wi * m, -1), 0) / np.where(ok, wi[..., 2], 1)
    return np.where(ok, dv / (4 * np.abs(np.sum(wo * m, -1))), 0.0)
