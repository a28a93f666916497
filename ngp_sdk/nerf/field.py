"""The radiance field of the NeRF primitive (instant-ngp's ``NerfNetwork``) on packed samples.

Per sample (positions in instant-ngp's internal space, unit directions)::

    x      = (p - aabb_min) / (aabb_max - aabb_min)            hash-grid input in [0, 1]^3
    raw    = density_mlp(hash_grid(x))                         [S, 16], raw[:, 0] = log-density
    sigma  = exp(raw[:, 0])                                    density (1 / internal length)
    rgb    = colour_mlp([raw, SH4(d)])                         [S, 3], sigmoid

The backward takes dL/dsigma and dL/drgb per sample (from :func:`warp_kernels.volume_rendering.
composite_rays_backward`) and accumulates into the three parameter groups. Working buffers are kept per
purpose (training, inference) and grow to the largest batch seen; nothing is allocated per step once the
batch size has settled.
"""

from __future__ import annotations

import numpy as np
import warp as wp

from ngp_sdk.core.device import check_device, resolve_device
from ngp_sdk.core.errors import ConfigError
from ngp_sdk.core.fields import HashGrid, Mlp, ParamGroup, ParamsState
from ngp_sdk.core.profiling import PhaseTimer
from ngp_sdk.nerf.config import NerfConfig
from warp_kernels.compaction import gather_rows, scatter_rows
from warp_kernels.nerf_glue import (
    density_outputs_grad,
    density_outputs_to_sigma,
    positions_to_unit_cube,
    weight_columns,
)
from warp_kernels.sh_encoding import SH_N_COEFFS, sh_encode

__all__ = ["NerfField", "DENSITY_OUTPUTS"]

#: Width of the density network's output (instant-ngp: 16; channel 0 is the log-density).
DENSITY_OUTPUTS = 16


class _Buffers:
    """Per-sample scratch of one purpose, grown to the largest batch (views are sliced per call)."""

    _SHAPES = {"x": 3, "features": None, "sigma": 0, "color_in": None, "dirs": 3, "rgb": 3, "arange": -1}
    _INFER_SHAPES = {"pos": 3, "raw": DENSITY_OUTPUTS}
    _TRAIN_SHAPES = {"grad_rgb": 3, "d_color_full": DENSITY_OUTPUTS, "d_raw": DENSITY_OUTPUTS}

    def __init__(self, device, n_features: int, n_color_in: int, training: bool):
        self.device, self.training = device, training
        self.widths = {**self._SHAPES, "features": n_features, "color_in": n_color_in}
        self.widths.update(self._TRAIN_SHAPES if training else self._INFER_SHAPES)
        self.capacity = 0
        self.arrays: dict[str, wp.array] = {}

    def get(self, n: int) -> dict[str, wp.array]:
        if n > self.capacity:
            cap, dev = max(n, 2 * self.capacity), self.device
            self.arrays = {}
            for k, w in self.widths.items():
                if w == -1:  # identity indices, the selection "every sample"
                    self.arrays[k] = wp.array(np.arange(cap, dtype=np.int32), dtype=wp.int32, device=dev)
                else:
                    self.arrays[k] = wp.empty((cap, w) if w else cap, dtype=wp.float32, device=dev)
            self.capacity = cap
        return {k: v[:n] for k, v in self.arrays.items()}


class NerfField(ParamsState):
    """Hash grid + density MLP + SH + colour MLP, with parameter groups for the optimizer.

    Both the training and the inference pass run in two phases: densities of every sample first, then
    colours of a selection of samples (by default all) - the renderer selects the samples a ray still sees,
    so samples behind opaque surfaces never reach the colour network (:func:`warp_kernels.nerf_glue.
    select_samples`). Unselected samples get colour 0 and receive no colour gradient.

    Args:
        config: NeRF configuration (its ``encoding.per_level_scale`` already resolved for the scene).
        aabb: ``(min [3], max [3])`` of the scene box in internal space; the hash grid covers it.
        device: ``None`` = Warp's current device, resolved once.
        seed: initialisation seed.
        timer: phase timer of the training passes (``forward/*``, ``backward/*``); default: a disabled one.
    """

    def __init__(self, config: NerfConfig, aabb, *, device=None, seed: int = 0, timer: PhaseTimer | None = None):
        if config.rgb_network.output_activation != "Sigmoid":
            raise ConfigError("rgb_network.output_activation must be 'Sigmoid' for NeRF colours")
        self.device = resolve_device(device)
        self.config = config
        self.timer = timer or PhaseTimer(self.device)
        lo, hi = (np.asarray(v, dtype=np.float32).reshape(3) for v in aabb)
        self.aabb = (lo, hi)
        self.grid = HashGrid(config.encoding, 3, device=self.device, seed=seed, name="encoding")
        self.density_mlp = Mlp(config.network, self.grid.n_output_dims, DENSITY_OUTPUTS, device=self.device,
                               seed=seed + 1, name="density_network")
        self.color_mlp = Mlp(config.rgb_network, DENSITY_OUTPUTS + SH_N_COEFFS, 3, device=self.device,
                             seed=seed + 2, name="rgb_network")
        n_in = DENSITY_OUTPUTS + SH_N_COEFFS
        self._train = _Buffers(self.device, self.grid.n_output_dims, n_in, training=True)
        self._infer = _Buffers(self.device, self.grid.n_output_dims, n_in, training=False)
        self._rows = _Buffers(self.device, self.grid.n_output_dims, n_in, training=False)  # row subsets
        self._infer_ws = (self.density_mlp.new_workspace(), self.color_mlp.new_workspace())
        self._saved: dict[str, wp.array] | None = None
        self._infer_raw: dict[str, wp.array] | None = None  # buffers of the last inference pass (phase 1)
        self._row_pass = False  # that pass was begun by begin_density_rows
        self._level_weights: wp.array | None = None  # per-column weights of the encoded features (None = 1)

    def set_level_weights(self, weights: np.ndarray | None) -> None:
        """Weigh the hash grid's levels (BARF's coarse-to-fine schedule): float ``[n_levels]`` in [0, 1], applied
        to the encoded features of every pass (training and inference) and to their gradient; None = all 1."""
        if weights is None or np.all(np.asarray(weights) >= 1.0):
            self._level_weights = None
            return
        w = np.asarray(weights, np.float32).reshape(-1)
        if w.shape[0] != self.config.encoding.n_levels or not np.all(np.isfinite(w)):
            raise ConfigError(f"level weights must be {self.config.encoding.n_levels} finite numbers, got {w!r}")
        cols = np.repeat(w, self.config.encoding.n_features_per_level)
        if self._level_weights is None:
            self._level_weights = wp.array(cols, dtype=wp.float32, device=self.device)
        else:
            self._level_weights.assign(cols)

    @property
    def level_weights(self) -> np.ndarray | None:
        """The current level weights ``[n_levels]`` (None when every level counts fully)."""
        if self._level_weights is None:
            return None
        return self._level_weights.numpy()[:: self.config.encoding.n_features_per_level].copy()

    def param_groups(self) -> list[ParamGroup]:
        return self.grid.param_groups() + self.density_mlp.param_groups() + self.color_mlp.param_groups()

    # -- training ------------------------------------------------------------------------------------------
    def forward(self, positions: wp.array, directions: wp.array) -> tuple[wp.array, wp.array]:
        """Training forward of every sample: :meth:`forward_density` then :meth:`forward_color`."""
        return self.forward_density(positions), self.forward_color(directions)

    def forward_density(self, positions: wp.array) -> wp.array:
        """Training forward, phase 1: densities ``sigma`` float32 ``[S]`` of sample points ``[S, 3]``.

        Keeps what :meth:`backward` needs; the result is a view into the field's buffers (valid until the next
        training forward).
        """
        check_device(positions, self.device, "sample positions")
        b = self._train.get(positions.shape[0])
        with self.timer.phase("forward/encoding"):
            positions_to_unit_cube(positions, self.aabb, out=b["x"])
            self.grid.forward(b["x"], out=b["features"])
            if self._level_weights is not None:
                weight_columns(b["features"], self._level_weights)
        with self.timer.phase("forward/density_mlp"):
            raw = self.density_mlp.forward(b["features"])
            density_outputs_to_sigma(raw, sigma=b["sigma"])
        self._saved = {**b, "raw": raw, "selected": None}
        return b["sigma"]

    def forward_color(self, directions: wp.array, selected: wp.array | None = None) -> wp.array:
        """Training forward, phase 2: colours float32 ``[S, 3]`` of the samples of the last phase 1.

        Args:
            directions: float32 ``[S, 3]`` unit ray directions.
            selected: int32 ``[A]`` increasing sample indices to colour (default: all); others get 0.
        """
        s = self._saved
        if s is None or s["selected"] is not None:
            raise RuntimeError("NerfField.forward_color needs forward_density first")
        sel = s["arange"] if selected is None else selected
        s["selected"] = sel
        with self.timer.phase("forward/color"):
            s["rgb_sel"] = self._color(s, directions, sel, None, self.color_mlp._train_ws, keep=True)
        return s["rgb"]

    @property
    def unit_cube_scale(self) -> np.ndarray:
        """float32 ``[3]`` ``1 / (aabb_max - aabb_min)``: dL/dp = dL/dx * this, x the hash grid's input."""
        return (1.0 / (self.aabb[1] - self.aabb[0])).astype(np.float32)

    def backward(self, grad_sigma: wp.array, grad_rgb: wp.array, *, position_grad: bool = False,
                 position_levels: int | None = None) -> wp.array | None:
        """Accumulate parameter gradients from dL/dsigma ``[S]`` and dL/drgb ``[S, 3]`` of the last forward.

        With ``position_grad``, also return dL/dx float32 ``[S, 3]`` with respect to the hash grid's input
        ``x`` (the unit cube; multiply by :attr:`unit_cube_scale` for dL/dp): the density and colour paths
        through the density network, not the view direction (camera refinement uses it); ``position_levels``
        limits it to the coarsest hash-grid levels.
        """
        s = self._saved
        if s is None or s["selected"] is None:
            raise RuntimeError("NerfField.backward needs a training forward (density and colour) first")
        sel = s["selected"]
        a = sel.shape[0]
        with self.timer.phase("backward/color"):
            if a:
                g = gather_rows(grad_rgb, sel, out=s["grad_rgb"][:a])
                d_color_in = self.color_mlp.backward(g, need_input_grad=True)
                scatter_rows(d_color_in[:, :DENSITY_OUTPUTS], sel, s["d_color_full"])
            else:
                s["d_color_full"].zero_()
        with self.timer.phase("backward/density_mlp"):
            density_outputs_grad(s["d_color_full"], grad_sigma, s["raw"], out=s["d_raw"])
            d_features = self.density_mlp.backward(s["d_raw"], need_input_grad=True)
        with self.timer.phase("backward/encoding"):
            if self._level_weights is not None:
                weight_columns(d_features, self._level_weights)
            self.grid.backward(s["x"], d_features)
        grad_x = None
        if position_grad:
            with self.timer.phase("backward/position"):
                grad_x = self.grid.input_grad(s["x"], d_features, n_levels=position_levels)
        self._saved = None
        return grad_x

    def _color(self, b: dict, directions: wp.array, sel: wp.array, params, workspace, keep: bool) -> wp.array:
        """Colour network on the selected rows of ``b`` (raw density outputs in ``b['raw']``); fills ``b['rgb']``."""
        a = sel.shape[0]
        if a == 0:
            b["rgb"].zero_()
            return b["rgb"][:0]
        ci = b["color_in"][:a]
        gather_rows(b["raw"], sel, out=ci[:, :DENSITY_OUTPUTS])
        dirs = gather_rows(directions, sel, out=b["dirs"][:a])
        sh_encode(dirs, out=ci[:, DENSITY_OUTPUTS:])
        rgb_sel = self.color_mlp.forward(ci, params=params, workspace=workspace, keep_activations=keep)
        scatter_rows(rgb_sel, sel, b["rgb"])
        return rgb_sel

    # -- inference -----------------------------------------------------------------------------------------
    def infer(self, positions: wp.array, directions: wp.array,
              params: dict[str, wp.array] | None = None) -> tuple[wp.array, wp.array]:
        """Inference of every sample with optional parameter overrides (e.g. the EMA copies).

        Returns:
            ``(sigma [S], rgb [S, 3])``, views into inference buffers (valid until the next inference call).
        """
        return self.infer_density(positions, params), self.infer_color(directions, None, params)

    def infer_density(self, positions: wp.array, params: dict[str, wp.array] | None = None) -> wp.array:
        """Inference phase 1: ``sigma [S]`` (a view into inference buffers); remembers the density outputs."""
        check_device(positions, self.device, "sample positions")
        params = params or {}
        b, raw = self._density_raw(positions, params)
        density_outputs_to_sigma(raw, sigma=b["sigma"])
        self._infer_raw, self._row_pass = {**b, "raw": raw}, False
        return b["sigma"]

    def infer_color(self, directions: wp.array, selected: wp.array | None = None,
                    params: dict[str, wp.array] | None = None) -> wp.array:
        """Inference phase 2: ``rgb [S, 3]`` of the samples of the last :meth:`infer_density` (selected ones;
        others 0)."""
        if self._infer_raw is None:
            raise RuntimeError("NerfField.infer_color needs infer_density first")
        b = self._infer_raw
        sel = b["arange"] if selected is None else selected
        self._color(b, directions, sel, (params or {}).get(self.color_mlp.name), self._infer_ws[1], keep=False)
        return b["rgb"]

    def begin_density_rows(self, n: int) -> wp.array:
        """Start an inference pass over ``n`` samples whose densities come in row subsets
        (:meth:`infer_density_rows`); returns ``sigma [n]``, zero until a row is evaluated. :meth:`infer_color`
        then colours selected rows of this pass.
        """
        b = self._infer.get(n)
        b["sigma"].zero_()
        self._infer_raw, self._row_pass = b, True
        return b["sigma"]

    def infer_density_rows(self, positions: wp.array, rows: wp.array,
                           params: dict[str, wp.array] | None = None) -> None:
        """Evaluate the densities of ``positions[rows]`` (``positions [n, 3]``, int32 ``rows [A]``) into the
        pass begun by :meth:`begin_density_rows` (same values as :meth:`infer_density` gives those rows)."""
        if self._infer_raw is None or not self._row_pass:
            raise RuntimeError("NerfField.infer_density_rows needs begin_density_rows first")
        check_device(positions, self.device, "sample positions")
        b = self._infer_raw
        a = rows.shape[0]
        if a == 0:
            return
        params = params or {}
        r = self._rows.get(a)
        sub, raw = self._density_raw(gather_rows(positions, rows, out=r["pos"]), params, buffers=r)
        density_outputs_to_sigma(raw, sigma=sub["sigma"])
        scatter_rows(raw, rows, b["raw"], zero_others=False)
        scatter_rows(sub["sigma"].reshape((a, 1)), rows, b["sigma"].reshape((b["sigma"].shape[0], 1)),
                     zero_others=False)

    def density(self, positions: wp.array, params: dict[str, wp.array] | None = None, *,
                out: wp.array | None = None, chunk: int = 1 << 18) -> wp.array:
        """Densities ``sigma`` float32 ``[M]`` at points ``[M, 3]`` (internal space), in bounded chunks.

        Used by the occupancy-grid update and mesh export; ``out`` (float32 ``[M]``) avoids an allocation.
        """
        check_device(positions, self.device, "positions")
        params = params or {}
        m = positions.shape[0]
        if out is None:
            out = wp.empty(m, dtype=wp.float32, device=self.device)
        for start in range(0, m, chunk):
            stop = min(m, start + chunk)
            _, raw = self._density_raw(positions[start:stop], params)
            density_outputs_to_sigma(raw, sigma=out[start:stop])
        self._infer_raw = None
        return out

    def _density_raw(self, positions: wp.array, params: dict[str, wp.array],
                     buffers: dict[str, wp.array] | None = None) -> tuple[dict, wp.array]:
        b = self._infer.get(positions.shape[0]) if buffers is None else buffers
        positions_to_unit_cube(positions, self.aabb, out=b["x"])
        self.grid.forward(b["x"], params=params.get(self.grid.name), out=b["features"])
        if self._level_weights is not None:
            weight_columns(b["features"], self._level_weights)
        raw = self.density_mlp.forward(b["features"], params=params.get(self.density_mlp.name),
                                       workspace=self._infer_ws[0], keep_activations=False)
        return b, raw


