"""Layer 2: stateful modules that own flat parameter buffers and their gradients.

- :class:`HashGrid` — a multiresolution hash encoding (one flat table for all levels).
- :class:`Mlp` — a tiny fully-connected network (one flat weight buffer).
- :class:`GridMlpField` — a hash grid feeding an MLP; primitives subclass it (image, SDF).

Every module exposes :meth:`param_groups` (what the optimizer updates) and ``state_dict``/``load_state_dict``
(NumPy arrays for snapshots). Forward passes take an optional ``params`` override so inference can run on
the optimizer's EMA copy without touching the live weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import warp as wp

from ngp_sdk.core.config import HashGridConfig, NetworkConfig
from ngp_sdk.core.device import check_device, resolve_device
from ngp_sdk.core.errors import SnapshotError
from warp_kernels.hash_encoding import (
    hash_encode,
    hash_encode_backward,
    hash_encode_input_grad,
    init_hash_grid_params,
)
from warp_kernels.mlp import MlpWorkspace, init_mlp_params, mlp_backward, mlp_forward

__all__ = ["ParamGroup", "ParamsState", "HashGrid", "Mlp", "GridMlpField", "load_flat"]


@dataclass(frozen=True)
class ParamGroup:
    """A flat parameter buffer, its gradient and how the optimizer treats it.

    Attributes:
        name: unique key (used in snapshots and for EMA copies).
        params: float32 ``[P]``.
        grads: float32 ``[P]``, accumulated by backward passes, zeroed by the optimizer step.
        kind: ``"hash"`` (skip entries whose gradient is exactly zero, no L2) or ``"mlp"`` (L2 regularised).
    """

    name: str
    params: wp.array
    grads: wp.array
    kind: str


def load_flat(target: wp.array, value: np.ndarray, name: str) -> None:
    """Copy a snapshot's float32 array into the flat buffer ``target`` after checking dtype and shape.

    Raises:
        SnapshotError: naming ``name`` when the array does not match the buffer.
    """
    value = np.asarray(value)
    if value.dtype != np.float32 or value.shape != tuple(target.shape):
        raise SnapshotError(f"parameter {name!r}: expected float32 {tuple(target.shape)}, got {value.dtype} "
                            f"{value.shape}; the snapshot does not match its config")
    target.assign(wp.array(value, dtype=wp.float32, device=target.device))


class ParamsState:
    """Snapshot helpers for anything with :meth:`param_groups`: parameters by group name, as NumPy arrays."""

    def param_groups(self) -> list[ParamGroup]:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        return {g.name: g.params.numpy().copy() for g in self.param_groups()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for g in self.param_groups():
            if g.name not in state:
                raise SnapshotError(f"snapshot lacks parameters {g.name!r}")
            load_flat(g.params, state[g.name], g.name)


class HashGrid:
    """Multiresolution hash encoding with its own table and gradient.

    Args:
        config: encoding configuration.
        n_dims: input dimension (2 or 3).
        device: ``None`` = Warp's current device, resolved once.
        seed: initialisation seed (U(-1e-4, 1e-4)).
        name: parameter-group name.
    """

    def __init__(self, config: HashGridConfig, n_dims: int, *, device=None, seed: int = 0, name: str = "encoding"):
        self.device = resolve_device(device)
        self.config = config
        self.layout = config.layout(n_dims)
        self.name = name
        self.params = wp.array(init_hash_grid_params(self.layout, seed), dtype=wp.float32, device=self.device)
        self.grads = wp.zeros_like(self.params)

    @property
    def n_output_dims(self) -> int:
        return self.layout.n_output_dims

    def forward(self, x: wp.array, *, params: wp.array | None = None, out: wp.array | None = None) -> wp.array:
        """Encode ``x`` float32 ``[N, n_dims]`` -> ``[N, n_levels * F]``.

        Raises:
            DeviceError: ``x`` lives on another device than the table.
        """
        check_device(x, self.device, "positions")
        return hash_encode(self.layout, x, self.params if params is None else params, out=out)

    def backward(self, x: wp.array, grad_output: wp.array) -> None:
        """Accumulate dL/dtable into :attr:`grads`."""
        hash_encode_backward(self.layout, x, grad_output, self.grads)

    def input_grad(self, x: wp.array, grad_output: wp.array, *, params: wp.array | None = None,
                   n_levels: int | None = None) -> wp.array:
        """dL/dx ``[N, n_dims]`` (normals, eikonal terms); ``n_levels``: the coarsest levels only."""
        return hash_encode_input_grad(self.layout, x, self.params if params is None else params, grad_output,
                                      n_levels=n_levels)

    def param_groups(self) -> list[ParamGroup]:
        return [ParamGroup(self.name, self.params, self.grads, "hash")]


class Mlp:
    """Tiny MLP with one flat weight buffer, its gradient and a reusable workspace.

    Args:
        config: network configuration.
        n_input: input width.
        n_output: output width.
        device: ``None`` = Warp's current device.
        seed: initialisation seed.
        backend: ``"auto"`` (BLAS on CPU, tiles on CUDA), ``"blas"`` or ``"tile"``.
        name: parameter-group name.
    """

    def __init__(
        self,
        config: NetworkConfig,
        n_input: int,
        n_output: int,
        *,
        device=None,
        seed: int = 0,
        backend: str = "auto",
        name: str = "network",
    ):
        self.device = resolve_device(device)
        self.config = config
        self.layout = config.layout(n_input, n_output)
        self.backend = backend
        self.name = name
        self.params = wp.array(init_mlp_params(self.layout, seed), dtype=wp.float32, device=self.device)
        self.grads = wp.zeros_like(self.params)
        self._train_ws = MlpWorkspace(self.layout, self.device)

    def forward(self, x: wp.array, *, params: wp.array | None = None, workspace: MlpWorkspace | None = None,
                keep_activations: bool = True) -> wp.array:
        """``x`` ``[N, n_input]`` -> ``[N, n_output]`` (a view into the workspace, valid until its next use).

        Raises:
            DeviceError: ``x`` lives on another device than the weights.
        """
        check_device(x, self.device, "MLP input")
        return mlp_forward(self.layout, self.params if params is None else params, x, backend=self.backend,
                           workspace=self._train_ws if workspace is None else workspace,
                           keep_activations=keep_activations)

    def backward(self, grad_output: wp.array, *, need_input_grad: bool = True) -> wp.array | None:
        """Accumulate dL/dweights into :attr:`grads`; return dL/dinput of the latest training forward."""
        return mlp_backward(self.layout, self.params, self._train_ws, grad_output, grad_params=self.grads,
                            need_dx=need_input_grad, accumulate=True)

    def new_workspace(self) -> MlpWorkspace:
        """A separate workspace, e.g. for rendering on another thread while training."""
        return MlpWorkspace(self.layout, self.device)

    def param_groups(self) -> list[ParamGroup]:
        return [ParamGroup(self.name, self.params, self.grads, "mlp")]


class GridMlpField(ParamsState):
    """A hash grid (``n_dims``-D) followed by an MLP with ``n_output_dims`` outputs; subclasses fix both.

    Args:
        encoding: hash-grid configuration.
        network: MLP configuration.
        device: ``None`` = Warp's current device.
        seed: initialisation seed.
    """

    n_dims: int = 3
    n_output_dims: int = 1

    def __init__(self, encoding: HashGridConfig, network: NetworkConfig, *, device=None, seed: int = 0):
        self.device = resolve_device(device)
        self.grid = HashGrid(encoding, self.n_dims, device=self.device, seed=seed)
        self.mlp = Mlp(network, self.grid.n_output_dims, self.n_output_dims, device=self.device, seed=seed + 1)
        self._features: wp.array | None = None
        self._x: wp.array | None = None

    def param_groups(self) -> list[ParamGroup]:
        return self.grid.param_groups() + self.mlp.param_groups()

    def forward(self, x: wp.array) -> wp.array:
        """Training forward on positions ``[N, n_dims]`` in [0, 1]; keeps what :meth:`backward` needs.

        Returns:
            float32 ``[N, n_output_dims]`` (a view into the training workspace).
        """
        check_device(x, self.device, "positions")
        n = x.shape[0]
        if self._features is None or self._features.shape[0] != n:
            self._features = wp.empty((n, self.grid.n_output_dims), dtype=wp.float32, device=self.device)
        self._x = x
        self.grid.forward(x, out=self._features)
        return self.mlp.forward(self._features)

    def backward(self, grad_output: wp.array) -> None:
        """Backpropagate dL/doutput ``[N, n_output_dims]`` of the latest :meth:`forward` into both gradients."""
        d_features = self.mlp.backward(grad_output, need_input_grad=True)
        self.grid.backward(self._x, d_features)

    def infer(self, x: wp.array, params: dict[str, wp.array] | None = None,
              workspace: MlpWorkspace | None = None) -> wp.array:
        """Inference on ``[N, n_dims]`` with optional parameter overrides (e.g. EMA) and a private workspace."""
        check_device(x, self.device, "positions")
        params = params or {}
        feats = self.grid.forward(x, params=params.get(self.grid.name))
        ws = workspace if workspace is not None else self.mlp.new_workspace()
        return self.mlp.forward(feats, params=params.get(self.mlp.name), workspace=ws, keep_activations=False)
