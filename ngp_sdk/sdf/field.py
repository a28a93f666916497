"""The SDF field: 3D hash grid -> MLP -> one signed distance, with analytic normals."""

from __future__ import annotations

import warp as wp

from ngp_sdk.core.fields import GridMlpField

__all__ = ["SdfField"]


class SdfField(GridMlpField):
    """3D hash grid followed by an MLP with one linear output (the signed distance)."""

    n_dims = 3
    n_output_dims = 1

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
