"""Float64 reference of warp_kernels.volume_rendering (loops per ray; tiny sizes).

The backward is the full O(N^2) chain rule through every weight (dw_i/dsigma_j for all i, j), written
independently of the kernel's suffix-sum form.
"""

from __future__ import annotations

import numpy as np

__all__ = ["render_weights_ref", "composite_ref", "composite_backward_ref", "weights_backward_ref"]


def _ray_slices(packed_info):
    for start, count in np.asarray(packed_info, dtype=np.int64):
        yield slice(int(start), int(start + count))


def render_weights_ref(t_starts, t_ends, sigmas, packed_info, min_transmittance=1e-4):
    """``(weights, transmittance, alphas)`` [S] float64; terminated samples (T_i < threshold) weigh 0."""
    dt = np.asarray(t_ends, np.float64) - np.asarray(t_starts, np.float64)
    sig = np.asarray(sigmas, np.float64)
    n = sig.size
    w, trans, alpha = np.zeros(n), np.zeros(n), np.zeros(n)
    for sl in _ray_slices(packed_info):
        T = 1.0
        for s in range(sl.start, sl.stop):
            a = -np.expm1(-sig[s] * dt[s])
            trans[s], alpha[s] = T, a
            w[s] = T * a if T >= min_transmittance else 0.0
            T *= 1.0 - a
    return w, trans, alpha


def composite_ref(t_starts, t_ends, sigmas, rgbs, packed_info, background=None, min_transmittance=1e-4):
    """``(colors [n, 3], opacities [n], depths [n])`` with ``C = sum w c + (1 - O) bg``, ``D = sum w
    t_mid``."""
    w, _, _ = render_weights_ref(t_starts, t_ends, sigmas, packed_info, min_transmittance)
    mid = 0.5 * (np.asarray(t_starts, np.float64) + np.asarray(t_ends, np.float64))
    rgb = np.asarray(rgbs, np.float64).reshape(-1, 3)
    info = np.asarray(packed_info)
    n = info.shape[0]
    bg = (
        np.zeros((n, 3))
        if background is None
        else np.broadcast_to(np.asarray(background, np.float64), (n, 3))
    )
    colors, opac, depth = np.zeros((n, 3)), np.zeros(n), np.zeros(n)
    for r, sl in enumerate(_ray_slices(info)):
        opac[r] = w[sl].sum()
        colors[r] = (w[sl, None] * rgb[sl]).sum(axis=0) + (1.0 - opac[r]) * bg[r]
        depth[r] = (w[sl] * mid[sl]).sum()
    return colors, opac, depth


def _weight_jacobian(sig, dt, min_transmittance):
    """dw_i/dsigma_j for one ray [N, N] and the kept mask (prefix with T_i >= threshold)."""
    n = sig.size
    a = -np.expm1(-sig * dt)
    T = np.concatenate([[1.0], np.cumprod(1.0 - a)])[:n]
    kept = T >= min_transmittance
    w = np.where(kept, T * a, 0.0)
    jac = np.zeros((n, n))
    for i in range(n):
        if not kept[i]:
            continue
        for j in range(n):
            if j < i:
                jac[i, j] = -dt[j] * w[i]  # T_i contains exp(-sigma_j dt_j)
            elif j == i:
                jac[i, j] = T[i] * dt[i] * np.exp(-sig[i] * dt[i])
    return jac, w, kept


def weights_backward_ref(t_starts, t_ends, sigmas, packed_info, grad_weights, min_transmittance=1e-4):
    ts, te = np.asarray(t_starts, np.float64), np.asarray(t_ends, np.float64)
    sig = np.asarray(sigmas, np.float64)
    g = np.asarray(grad_weights, np.float64)
    out = np.zeros(sig.size)
    for sl in _ray_slices(packed_info):
        jac, _, _ = _weight_jacobian(sig[sl], te[sl] - ts[sl], min_transmittance)
        out[sl] = jac.T @ g[sl]
    return out


def composite_backward_ref(
    t_starts,
    t_ends,
    sigmas,
    rgbs,
    packed_info,
    grad_colors,
    grad_opacities=None,
    grad_depths=None,
    background=None,
    min_transmittance=1e-4,
):
    """``(dL/dsigma [S], dL/drgb [S, 3], dL/dbg [n, 3])`` by the full Jacobian of the weights."""
    ts, te = np.asarray(t_starts, np.float64), np.asarray(t_ends, np.float64)
    sig = np.asarray(sigmas, np.float64)
    rgb = np.asarray(rgbs, np.float64).reshape(-1, 3)
    info = np.asarray(packed_info)
    n = info.shape[0]
    gc = np.zeros((n, 3)) if grad_colors is None else np.asarray(grad_colors, np.float64).reshape(n, 3)
    go = np.zeros(n) if grad_opacities is None else np.asarray(grad_opacities, np.float64)
    gd = np.zeros(n) if grad_depths is None else np.asarray(grad_depths, np.float64)
    bg = (
        np.zeros((n, 3))
        if background is None
        else np.broadcast_to(np.asarray(background, np.float64), (n, 3))
    )
    g_sig, g_rgb, g_bg = np.zeros(sig.size), np.zeros((sig.size, 3)), np.zeros((n, 3))
    for r, sl in enumerate(_ray_slices(info)):
        jac, w, _ = _weight_jacobian(sig[sl], te[sl] - ts[sl], min_transmittance)
        mid = 0.5 * (ts[sl] + te[sl])
        # L depends on w through C = sum w c + (1 - sum w) bg, O = sum w, D = sum w mid
        dl_dw = rgb[sl] @ gc[r] - bg[r] @ gc[r] + go[r] + gd[r] * mid
        g_sig[sl] = jac.T @ dl_dw
        g_rgb[sl] = w[:, None] * gc[r]
        g_bg[r] = (1.0 - w.sum()) * gc[r]
    return g_sig, g_rgb, g_bg
