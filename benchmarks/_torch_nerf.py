"""The NeRF model of :class:`ngp_sdk.nerf.field.NerfField` in plain PyTorch, on packed samples (for bench_nerf).

Same math as the Warp path, op for op:

    x      = (p - aabb_min) / (aabb_max - aabb_min)          TorchHashGrid (tcnn-exact, see _torch_ref)
    raw    = density_mlp(hash_grid(x))                       bias-free Linear + ReLU, [S, 16]
    sigma  = exp(min(raw[:, 0], 15))
    alive  = samples whose transmittance on arrival >= min_transmittance (no grad; colour only for these)
    rgb    = sigmoid(colour_mlp([raw[alive], SH4(d[alive])]))
    colour = sum_i T_i alpha_i rgb_i + (1 - opacity) * bg     per ray (exclusive cumsum + index_add)

Training: Huber (smooth-L1 with ``beta = delta``, which is the Warp loss ``d^2 / (2 delta)`` / ``|d| - delta/2``)
mean over rays x 3, autograd backward, ``torch.optim.Adam`` (instant-ngp betas/eps, L2 on the MLPs only) and
an EMA of the parameters like the Warp optimizer. Only the benchmarks import this (torch is the ``bench`` extra).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks._torch_ref import TorchHashGrid, torch_mlp
from warp_kernels.hash_encoding import HashGridLayout

__all__ = ["TorchNerf", "sh_encode", "exclusive_transmittance", "alive_indices", "composite", "make_optimizer",
           "train_step", "render_samples"]

DENSITY_CLAMP = 15.0

_C0, _C1 = 0.28209479177387814, 0.48860251190291987
_C2A, _C2B, _C2C, _C2D = 1.0925484305920792, 0.94617469575755997, 0.31539156525251999, 0.54627421529603959
_C3A, _C3B, _C3C, _C3D, _C3E = (0.59004358992664352, 2.8906114426405538, 0.45704579946446572, 0.3731763325901154,
                                1.4453057213202769)


def sh_encode(d: torch.Tensor) -> torch.Tensor:
    """Degree-4 real SH (16 outputs) of unit directions ``[N, 3]``, the polynomials of warp_kernels.sh_encoding."""
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    xy, xz, yz, x2, y2, z2 = x * y, x * z, y * z, x * x, y * y, z * z
    return torch.stack([
        torch.full_like(x, _C0), -_C1 * y, _C1 * z, -_C1 * x,
        _C2A * xy, -_C2A * yz, _C2B * z2 - _C2C, -_C2A * xz, _C2D * (x2 - y2),
        _C3A * y * (-3.0 * x2 + y2), _C3B * xy * z, _C3C * y * (1.0 - 5.0 * z2), _C3D * z * (5.0 * z2 - 3.0),
        _C3C * x * (1.0 - 5.0 * z2), _C3E * z * (x2 - y2), _C3A * x * (-x2 + 3.0 * y2),
    ], dim=1)


def _mlp_weights(flat: np.ndarray, widths: list[int]) -> list[np.ndarray]:
    out, off = [], 0
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        out.append(flat[off:off + a * b].reshape(b, a))
        off += a * b
    if off != flat.size:
        raise ValueError(f"MLP widths {widths} need {off} weights, got {flat.size}")
    return out


class TorchNerf(torch.nn.Module):
    """Hash grid 3D -> density MLP (16 outputs) ; SH4(direction) -> colour MLP (sigmoid RGB).

    Args:
        layout: the hash grid layout (3D).
        params: flat float32 parameter buffers by Warp group name (``encoding``, ``density_network``,
            ``rgb_network``), as ``NerfField.state_dict()`` returns them.
        density_widths: e.g. ``[32, 64, 16]``.
        color_widths: e.g. ``[32, 64, 64, 3]``.
        aabb: ``(lo [3], hi [3])`` of the scene box (internal space).
    """

    def __init__(self, layout: HashGridLayout, params: dict[str, np.ndarray], density_widths: list[int],
                 color_widths: list[int], aabb):
        super().__init__()
        self.encoding = TorchHashGrid(layout, np.asarray(params["encoding"], np.float32))
        self.density = torch_mlp(density_widths, _mlp_weights(np.asarray(params["density_network"]), density_widths))
        self.color = torch_mlp(color_widths, _mlp_weights(np.asarray(params["rgb_network"]), color_widths))
        lo, hi = (np.asarray(v, np.float32).reshape(3) for v in aabb)
        self.register_buffer("lo", torch.from_numpy(lo))
        self.register_buffer("inv_extent", torch.from_numpy((1.0 / (hi - lo)).astype(np.float32)))

    def density_raw(self, positions: torch.Tensor) -> torch.Tensor:
        """Raw density-network outputs ``[S, 16]`` (column 0 = log-density) of points ``[S, 3]``."""
        return self.density(self.encoding((positions - self.lo) * self.inv_extent))

    @staticmethod
    def sigma(raw: torch.Tensor) -> torch.Tensor:
        return torch.exp(torch.clamp(raw[:, 0], max=DENSITY_CLAMP))

    def rgb(self, raw: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
        """Colours ``[A, 3]`` of density outputs ``[A, 16]`` and direction encodings ``[A, 16]``."""
        return torch.sigmoid(self.color(torch.cat([raw, sh], dim=1)))


def exclusive_transmittance(x: torch.Tensor, ray: torch.Tensor, n_rays: int) -> torch.Tensor:
    """``T_i = exp(-sum_{j<i, same ray} x_j)`` for optical thicknesses ``x`` packed by ray (sorted by ray).

    The prefix sums run in float64 (one global cumsum over all rays); differentiable.
    """
    xd = x.double()
    excl = torch.cumsum(xd, 0) - xd
    counts = torch.bincount(ray, minlength=n_rays)
    first = (torch.cumsum(counts, 0) - counts)[ray]
    return torch.exp(-(excl - excl[first])).to(x.dtype)


def alive_indices(x: torch.Tensor, ray: torch.Tensor, n_rays: int, min_transmittance: float) -> torch.Tensor:
    """Indices of the samples a ray still sees (transmittance on arrival >= ``min_transmittance``)."""
    with torch.no_grad():
        t = exclusive_transmittance(x, ray, n_rays)
        return torch.nonzero(t >= min_transmittance).squeeze(1)


def composite(x: torch.Tensor, rgb: torch.Tensor, ray: torch.Tensor, n_rays: int,
              background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Colours ``[R, 3]`` and opacities ``[R]`` of the alive samples (optical thickness ``x``, colours ``rgb``)."""
    t = exclusive_transmittance(x, ray, n_rays)
    w = t * -torch.expm1(-x)
    color = torch.zeros(n_rays, 3, dtype=rgb.dtype).index_add(0, ray, w[:, None] * rgb)
    opacity = torch.zeros(n_rays, dtype=w.dtype).index_add(0, ray, w)
    return color + (1.0 - opacity)[:, None] * background, opacity


def forward(model: TorchNerf, batch: dict[str, torch.Tensor], n_rays: int, min_transmittance: float):
    """Training forward: ``(colors [R, 3], sigma [S], alive [A], rgb_alive [A, 3])``."""
    raw = model.density_raw(batch["positions"])
    sigma = model.sigma(raw)
    x = sigma * batch["dt"]
    ray = batch["ray_indices"]
    alive = alive_indices(x.detach(), ray, n_rays, min_transmittance)
    ra = ray[alive]
    with torch.no_grad():
        sh = sh_encode(batch["directions"][alive])
    rgb = model.rgb(raw[alive], sh)
    colors, _ = composite(x[alive], rgb, ra, n_rays, batch["background"])
    return colors, sigma, alive, rgb


def make_optimizer(model: TorchNerf, *, lr=1e-2, betas=(0.9, 0.99), eps=1e-15, l2_reg=1e-6):
    """Adam as instant-ngp configures it: L2 on the MLP weights only. Uses the fused CPU kernel when available."""
    groups = [{"params": [model.encoding.table], "weight_decay": 0.0},
              {"params": list(model.density.parameters()) + list(model.color.parameters()), "weight_decay": l2_reg}]
    try:
        return torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps, fused=True), "fused"
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps, foreach=True), "foreach"


def train_step(model: TorchNerf, opt, ema: list[torch.Tensor], batch: dict[str, torch.Tensor], n_rays: int, *,
               min_transmittance: float, huber_delta: float, ema_decay: float) -> float:
    """Forward, Huber loss, backward, Adam step and EMA update; returns the loss."""
    colors, *_ = forward(model, batch, n_rays, min_transmittance)
    loss = F.smooth_l1_loss(colors, batch["target"], beta=huber_delta)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        torch._foreach_lerp_(ema, [p for g in opt.param_groups for p in g["params"]], 1.0 - ema_decay)
    return float(loss)


@torch.no_grad()
def render_samples(model: TorchNerf, view: dict[str, torch.Tensor], n_rays: int, *, min_transmittance: float,
                   background: torch.Tensor, chunk: int = 1 << 11) -> torch.Tensor:
    """Inference over the packed samples of a view: colours ``[R, 3]``.

    Chunks bound the gather's memory; 2^11 samples is the fastest chunk on a 2-core CPU (2x faster than 2^17:
    the [chunk, 16 levels, 8 corners, 3] int64 intermediates then stay in cache).
    """
    pos = view["positions"]
    raw = torch.cat([model.density_raw(pos[i:i + chunk]) for i in range(0, pos.shape[0], chunk)])
    x = model.sigma(raw) * view["dt"]
    ray = view["ray_indices"]
    alive = alive_indices(x, ray, n_rays, min_transmittance)
    rgb = torch.cat([model.rgb(raw[a], sh_encode(view["directions"][a]))
                     for a in torch.split(alive, chunk)]) if alive.numel() else torch.zeros(0, 3)
    colors, _ = composite(x[alive], rgb, ray[alive], n_rays, background)
    return colors
