"""The radiance cache: hash-encoded position + SH-encoded direction and normal + material -> MLP -> radiance."""

from __future__ import annotations

import warp as wp

from ngp_sdk.core.device import resolve_device
from ngp_sdk.core.fields import HashGrid, Mlp, ParamGroup, ParamsState
from ngp_sdk.core.optim import Optimizer
from ngp_sdk.nrc.config import NrcConfig
from warp_kernels.losses import compute_loss
from warp_kernels.nrc import (
    N_MATERIAL_FEATURES,
    CacheInputs,
    factor_radiance,
    factor_radiance_backward,
    new_cache_inputs,
    pack_network_inputs,
    slice_feature_grad,
)
from warp_kernels.sh_encoding import SH_N_COEFFS, sh_encode

__all__ = ["RadianceCache"]


class RadianceCache(ParamsState):
    """Predicts the radiance scattered from a path vertex towards the previous one (reflectance-factorised).

    Network input per vertex: the hash grid's features of its position (in the scene's box), SH degree 4 of the
    direction and of the normal, and ``[1 - exp(-roughness), diffuse rgb, specular rgb]``; output: three values
    multiplied by ``diffuse + specular reflectance`` (the NRC paper's factorisation).

    Args:
        config: cache configuration.
        device: Warp device (``None`` = current, resolved once).
        seed: initialisation seed.
    """

    def __init__(self, config: NrcConfig, *, device=None, seed: int = 0):
        self.config = config
        self.device = resolve_device(device)
        self.grid = HashGrid(config.encoding, 3, device=self.device, seed=seed)
        self.n_inputs = self.grid.n_output_dims + 2 * SH_N_COEFFS + N_MATERIAL_FEATURES
        self.mlp = Mlp(config.network, self.n_inputs, 3, device=self.device, seed=seed + 1)
        self.optimizer = Optimizer(config.optimizer, self.param_groups())
        self._batch = config.training.batch_size
        self._train_in = new_cache_inputs(self._batch, self.device)
        self._bufs: dict[tuple[str, int], wp.array] = {}
        self._infer_ws = self.mlp.new_workspace()
        self.steps = 0

    def param_groups(self) -> list[ParamGroup]:
        return self.grid.param_groups() + self.mlp.param_groups()

    def _buf(self, name: str, n: int, cols: int) -> wp.array:
        key = (name, cols)
        a = self._bufs.get(key)
        if a is None or a.shape[0] < n:
            a = wp.empty((max(n, 1), cols), dtype=wp.float32, device=self.device)
            self._bufs[key] = a
        return a[:n]

    def _network_inputs(self, inputs: CacheInputs, n: int, grid_params: wp.array | None, tag: str) -> wp.array:
        feats = self._buf(tag + "feats", n, self.grid.n_output_dims)
        self.grid.forward(inputs.position[:n], params=grid_params, out=feats)
        sh_d = sh_encode(inputs.direction[:n], out=self._buf(tag + "shd", n, SH_N_COEFFS))
        sh_n = sh_encode(inputs.normal[:n], out=self._buf(tag + "shn", n, SH_N_COEFFS))
        return pack_network_inputs(feats, sh_d, sh_n, inputs, self._buf(tag + "x", n, self.n_inputs))

    def predict(self, inputs: CacheInputs, n: int) -> wp.array:
        """Radiance float32 ``[n, 3]`` for the first ``n`` vertices of ``inputs``, with the inference (EMA)
        weights (a view into a reused buffer, valid until the next call)."""
        if n == 0:
            return self._buf("pred", 0, 3)
        params = self.optimizer.inference_params() or {}
        x = self._network_inputs(inputs, n, params.get(self.grid.name), "i")
        raw = self.mlp.forward(x, params=params.get(self.mlp.name), workspace=self._infer_ws,
                               keep_activations=False)
        return factor_radiance(raw, inputs, self._buf("pred", n, 3))

    def train_step(self, inputs: CacheInputs, targets: wp.array, n: int) -> float:
        """One optimiser step on ``n`` records (``inputs``/``targets`` ``[n, 3]``); returns the loss."""
        if n == 0:
            return float("nan")
        x = self._network_inputs(inputs, n, None, "t")
        raw = self.mlp.forward(x)
        pred = factor_radiance(raw, inputs, self._buf("tpred", n, 3))
        d_pred = self._buf("dpred", n, 3)
        loss = compute_loss(self.config.loss.otype, pred, targets, grad_out=d_pred, return_value=True)
        d_raw = factor_radiance_backward(raw, d_pred, inputs, self._buf("draw", n, 3))
        d_x = self.mlp.backward(d_raw, need_input_grad=True)
        d_feats = slice_feature_grad(d_x, self._buf("dfeats", n, self.grid.n_output_dims))
        self.grid.backward(inputs.position[:n], d_feats)
        self.optimizer.step()
        self.steps += 1
        return float(loss)

    @property
    def train_inputs(self) -> CacheInputs:
        """A batch-sized :class:`CacheInputs` the caller gathers training records into."""
        return self._train_in
