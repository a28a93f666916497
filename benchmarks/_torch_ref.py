"""PyTorch CPU implementations of the same math as the Warp kernels, for honest side-by-side ratios.

Only the benchmarks import this (torch is the ``bench`` extra). The hash grid follows tcnn's semantics exactly
(dense/hashed levels, +0.5 offset, modulo) with a nerfstudio-style vectorised gather; the MLP is bias-free
``Linear`` layers with ReLU, like tcnn's FullyFusedMLP.
"""

from __future__ import annotations

import numpy as np
import torch

from warp_kernels.hash_encoding import PRIMES, HashGridLayout


class TorchHashGrid(torch.nn.Module):
    """Multiresolution hash encoding in plain PyTorch (autograd backward)."""

    def __init__(self, layout: HashGridLayout, params: np.ndarray):
        super().__init__()
        self.layout = layout
        f = layout.n_features_per_level
        self.table = torch.nn.Parameter(torch.from_numpy(params.reshape(-1, f).copy()))
        self.register_buffer("scales", torch.from_numpy(layout.scales.astype(np.float32)))
        self.register_buffer("res", torch.from_numpy(layout.resolutions.astype(np.int64)))
        self.register_buffer("sizes", torch.from_numpy(layout.level_sizes.astype(np.int64)))
        self.register_buffer("offsets", torch.from_numpy(layout.offsets[:-1].astype(np.int64)))
        self.register_buffer("hashed", torch.from_numpy(layout.hashed))
        self.register_buffer("primes", torch.tensor(PRIMES[: layout.n_dims], dtype=torch.int64))
        d = layout.n_dims
        c = torch.arange(1 << d)
        self.register_buffer("bits", torch.stack([(c >> k) & 1 for k in range(d)], dim=1))  # [C, d]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, d = x.shape
        pos = x[:, None, :] * self.scales[None, :, None] + 0.5  # [N, L, d]
        g = torch.floor(pos)
        frac = pos - g
        g = g.to(torch.int64)
        corners = g[:, :, None, :] + self.bits[None, None]  # [N, L, C, d]
        u = corners & 0xFFFFFFFF
        hashed_idx = (u[..., 0] * self.primes[0]) & 0xFFFFFFFF
        for k in range(1, d):
            hashed_idx = hashed_idx ^ ((u[..., k] * self.primes[k]) & 0xFFFFFFFF)
        res = self.res[None, :, None]
        dense_idx = u[..., 0] + u[..., 1] * res
        if d == 3:
            dense_idx = dense_idx + u[..., 2] * res * res
        idx = torch.where(self.hashed[None, :, None], hashed_idx, dense_idx) % self.sizes[None, :, None]
        idx = idx + self.offsets[None, :, None]  # [N, L, C]
        w = torch.where(self.bits[None, None].bool(), frac[:, :, None, :], 1 - frac[:, :, None, :]).prod(-1)
        feats = self.table[idx.reshape(-1)].reshape(n, self.layout.n_levels, 1 << d, -1)  # gather
        return (feats * w[..., None]).sum(2).reshape(n, -1)


def torch_mlp(widths: list[int], weights: list[np.ndarray]) -> torch.nn.Sequential:
    """Bias-free MLP with ReLU between layers; ``weights[k]`` is ``[out, in]`` like the flat Warp buffer."""
    layers: list[torch.nn.Module] = []
    for k, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        lin = torch.nn.Linear(a, b, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(weights[k]))
        layers.append(lin)
        if k < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)
