"""The SDF field: 3D hash grid -> MLP -> one signed distance, with analytic normals."""

from __future__ import annotations

import warp as wp

from warp_kernels._common import resolve_device
from warp_kernels.mlp import MlpWorkspace

from .config import HashGridConfig, NetworkConfig
from .fields import HashGrid, Mlp, ParamGroup, ParamsState

__all__ = ["SdfField"]


class SdfField(ParamsState):
    """3D hash grid followed by an MLP with one linear output (the signed distance).

    Args:
        encoding: hash-grid configuration.
        network: MLP configuration (output width forced to 1).
        device: ``None`` = Warp's current device.
        seed: initialisation seed.
    """

    n_output_dims = 1

    def __init__(self, encoding: HashGridConfig, network: NetworkConfig, *, device=None, seed: int = 0):
        self.device = resolve_device(device)
        self.grid = HashGrid(encoding, 3, device=self.device, seed=seed)
        self.mlp = Mlp(network, self.grid.n_output_dims, 1, device=self.device, seed=seed + 1)
        self._features: wp.array | None = None
        self._x: wp.array | None = None

    def param_groups(self) -> list[ParamGroup]:
        return self.grid.param_groups() + self.mlp.param_groups()

    def forward(self, x: wp.array) -> wp.array:
        """Training forward on positions float32 ``[N, 3]`` in [0, 1]; keeps what :meth:`backward` needs.

        Returns:
            float32 ``[N, 1]`` distances (a view into the training workspace).
        """
        n = x.shape[0]
        if self._features is None or self._features.shape[0] != n:
            self._features = wp.empty((n, self.grid.n_output_dims), dtype=wp.float32, device=self.device)
        self._x = x
        self.grid.forward(x, out=self._features)
        return self.mlp.forward(self._features)

    def backward(self, dsdf: wp.array) -> None:
        """Backpropagate dL/dsdf ``[N, 1]`` of the latest :meth:`forward` into both gradient buffers."""
        d_features = self.mlp.backward(dsdf, need_input_grad=True)
        self.grid.backward(self._x, d_features)

    def infer(self, x: wp.array, params: dict[str, wp.array] | None = None,
              workspace: MlpWorkspace | None = None) -> wp.array:
        """Signed distances ``[N, 1]`` at ``x`` ``[N, 3]`` with optional parameter overrides (e.g. EMA)."""
        params = params or {}
        feats = self.grid.forward(x, params=params.get(self.grid.name))
        ws = workspace if workspace is not None else self.mlp.new_workspace()
        return self.mlp.forward(feats, params=params.get(self.mlp.name), workspace=ws, keep_activations=False)

    def gradient(self, x: wp.array, params: dict[str, wp.array] | None = None) -> wp.array:
        """d sdf / d x ``[N, 3]`` (unnormalised): the MLP's input gradient chained through the encoding.

        Runs on private buffers, so neither the training state nor the weight gradients change.
        """
        params = params or {}
        grid_params = params.get(self.grid.name)
        mlp_params = params.get(self.mlp.name, self.mlp.params)
        feats = self.grid.forward(x, params=grid_params)
        ws = self.mlp.new_workspace()
        from warp_kernels.mlp import mlp_backward, mlp_forward

        mlp_forward(self.mlp.layout, mlp_params, feats, backend=self.mlp.backend, workspace=ws,
                    keep_activations=True)
        ones = wp.ones((x.shape[0], 1), dtype=wp.float32, device=self.device)
        scratch = wp.zeros_like(self.mlp.params)
        d_feats = mlp_backward(self.mlp.layout, mlp_params, ws, ones, grad_params=scratch, need_dx=True)
        return self.grid.input_grad(x, d_feats, params=grid_params)

    def normals(self, x: wp.array, params: dict[str, wp.array] | None = None) -> wp.array:
        """Unit normals ``[N, 3]`` (NumPy-normalised gradient, returned as a Warp array on the field's device)."""
        g = self.gradient(x, params).numpy()
        n = g / (((g**2).sum(axis=1, keepdims=True)) ** 0.5 + 1e-12)
        return wp.array(n, dtype=wp.float32, device=self.device)
