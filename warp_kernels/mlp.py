"""Tiny fully-connected network in the style of tiny-cuda-nn's FullyFusedMLP, with two back ends.

Network: no biases, ``n_hidden_layers`` hidden layers of ``n_neurons`` (16/32/64/128) with ReLU, then a
linear output layer with ``output_activation`` (none | sigmoid | exp | relu). ``n_hidden_layers == 0`` is
one linear layer input -> output. Layer k computes ``h_k = act(h_{k-1} @ W_k^T)``.

Parameters: ONE flat float32 buffer per network. ``W_k`` is stored row-major with shape ``[n_out_k, n_in_k]``,
layers packed one after another, input layer first (:attr:`MlpLayout.layer_shapes` / ``layer_offsets``).

Activations are row-major ``[N, width]`` float32 Warp arrays. Usage::

    ws = MlpWorkspace(layout, device)
    y = mlp_forward(layout, params, x, workspace=ws)          # y lives in ws: valid until the next forward
    dx = mlp_backward(layout, params, ws, dy, grad_params=g)  # g = dL/dparams; dx lives in ws as well

The workspace keeps a reference to ``x`` and the activations of the latest forward; ``x`` and ``params``
must not change between a forward and its backward.

Back ends (``backend=``): ``"blas"`` (CPU only) runs NumPy's multi-threaded matmul on zero-copy views of
the Warp buffers, writing into preallocated outputs, with in-place ReLU and fused masks split over the
CPU cores; ``"tile"`` runs fused Warp tile kernels (:mod:`warp_kernels.mlp_tile`, the GPU path, also
runnable on CPU). ``"auto"`` picks ``"blas"`` on CPU and ``"tile"`` on CUDA. Gradients of the tile back
end are summed with atomics: non-deterministic in the last bits on CUDA.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import numpy as np
import warp as wp

from warp_kernels import mlp_tile
from warp_kernels.device import DeviceMismatchError, KernelArgumentError, check_array, common_device, resolve_device
from warp_kernels.parallel import num_cpu_threads, run_on_threads, split_range

__all__ = [
    "ACTIVATIONS",
    "BACKENDS",
    "WIDTHS",
    "MlpLayout",
    "MlpWorkspace",
    "init_mlp_params",
    "mlp_backward",
    "mlp_forward",
]

ACTIVATIONS = ("none", "sigmoid", "exp", "relu")
BACKENDS = ("auto", "blas", "tile")
WIDTHS = (16, 32, 64, 128)

#: Elementwise NumPy passes over fewer values than this run on the calling thread only.
_MIN_SPLIT_VALUES = 1 << 16


@dataclass(frozen=True, kw_only=True)
class MlpLayout:
    """Shape of a tiny MLP: sizes, depth and output activation (hidden activation is always ReLU)."""

    n_input: int
    n_output: int
    n_neurons: int = 64
    n_hidden_layers: int = 2
    output_activation: str = "none"

    def __post_init__(self) -> None:
        for name in ("n_input", "n_output", "n_neurons", "n_hidden_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"MlpLayout.{name} must be an int, got {value!r}")
        if self.n_input < 1 or self.n_output < 1:
            raise ValueError(f"MlpLayout needs n_input >= 1 and n_output >= 1, got {self.n_input}, {self.n_output}")
        if self.n_neurons not in WIDTHS:
            raise ValueError(f"MlpLayout.n_neurons must be one of {WIDTHS}, got {self.n_neurons}")
        if self.n_hidden_layers < 0:
            raise ValueError(f"MlpLayout.n_hidden_layers must be >= 0, got {self.n_hidden_layers}")
        if self.output_activation not in ACTIVATIONS:
            raise ValueError(
                f"MlpLayout.output_activation must be one of {ACTIVATIONS}, got {self.output_activation!r}"
            )

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """``(n_out, n_in)`` of each weight matrix, input layer first."""
        if self.n_hidden_layers == 0:
            return [(self.n_output, self.n_input)]
        w = self.n_neurons
        return [(w, self.n_input)] + [(w, w)] * (self.n_hidden_layers - 1) + [(self.n_output, w)]

    @property
    def layer_offsets(self) -> list[int]:
        """Offset of each weight matrix in the flat parameter buffer."""
        offsets = [0]
        for n_out, n_in in self.layer_shapes[:-1]:
            offsets.append(offsets[-1] + n_out * n_in)
        return offsets

    @property
    def n_params(self) -> int:
        """Length of the flat parameter buffer."""
        return sum(n_out * n_in for n_out, n_in in self.layer_shapes)


def init_mlp_params(layout: MlpLayout, seed: int = 0) -> np.ndarray:
    """Xavier-uniform weights per layer (``U(-s, s)``, ``s = sqrt(6 / (fan_in + fan_out))``, as tcnn)."""
    rng = np.random.default_rng(seed)
    parts = [
        rng.uniform(-1.0, 1.0, n_out * n_in) * math.sqrt(6.0 / (n_in + n_out)) for n_out, n_in in layout.layer_shapes
    ]
    return np.concatenate(parts).astype(np.float32)


def _weights(layout: MlpLayout, flat: np.ndarray) -> list[np.ndarray]:
    """``[n_out, n_in]`` views of each layer in a flat NumPy buffer."""
    return [
        flat[off : off + n_out * n_in].reshape(n_out, n_in)
        for off, (n_out, n_in) in zip(layout.layer_offsets, layout.layer_shapes, strict=True)
    ]


def _relu_inplace(h: np.ndarray) -> None:
    np.maximum(h, np.float32(0.0), out=h)


def _relu_grad_inplace(g: np.ndarray, h: np.ndarray, mask: np.ndarray) -> None:
    np.greater(h, np.float32(0.0), out=mask)
    np.multiply(g, mask, out=g)


def _activate_inplace(y: np.ndarray, activation: str) -> None:
    if activation == "sigmoid":  # 0.5 * tanh(z / 2) + 0.5: no overflow for large |z|
        y *= np.float32(0.5)
        np.tanh(y, out=y)
        y *= np.float32(0.5)
        y += np.float32(0.5)
    elif activation == "exp":
        with np.errstate(over="ignore"):
            np.exp(y, out=y)
    elif activation == "relu":
        np.maximum(y, np.float32(0.0), out=y)


class MlpWorkspace:
    """Reusable buffers of one layout on one device, and what the latest forward saved for its backward.

    Hidden activations live in slots ``[slots * rows, n_neurons]`` (slot k = output of hidden layer k,
    ``rows`` = capacity rounded up to ``mlp_tile.TILE_M``; the tile kernels may write the padded rows).
    Buffers grow to the largest batch seen and never shrink; the views of each ``(batch size, backend)``
    are cached, so a repeated batch size allocates nothing. The arrays returned by :func:`mlp_forward`
    (``y``) and :func:`mlp_backward` (``dx``) are views into this workspace, overwritten by the next call.
    """

    def __init__(self, layout: MlpLayout, device: wp.context.Devicelike = None) -> None:
        self.layout = layout
        self.device = resolve_device(device)
        self._rows = 0
        self._slots = 0
        self._bufs: dict[str, wp.array] = {}
        self._scratch: dict[str, np.ndarray] = {}
        self._views: dict[tuple[int, str], dict] = {}
        self._x: wp.array | None = None
        self._backend: str | None = None
        self._saved = False

    @property
    def batch_size(self) -> int | None:
        """Rows of the latest forward that kept its activations (None if there is none)."""
        return self._x.shape[0] if self._saved else None

    def _ensure(self, n: int, slots: int) -> None:
        rows = max(1, -(-n // mlp_tile.TILE_M)) * mlp_tile.TILE_M
        if rows <= self._rows and slots <= self._slots:
            return
        self._rows, self._slots = max(rows, self._rows), max(slots, self._slots)
        lay, dev = self.layout, self.device
        self._bufs = {
            # one row stands in when nothing is kept (the tile kernel never touches it then)
            "hidden": wp.empty((self._slots * self._rows or 1, lay.n_neurons), dtype=wp.float32, device=dev),
            "y": wp.empty((self._rows, lay.n_output), dtype=wp.float32, device=dev),
        }  # "dx" is added by the first backward: inference-only workspaces never hold it
        self._scratch.clear()
        self._views.clear()
        self._saved = False

    def _get_views(self, n: int, backend: str) -> dict:
        """Views of the buffers for ``n`` rows (cached per batch size and back end)."""
        key = (n, backend)
        v = self._views.get(key)
        if v is not None:
            return v
        b = self._bufs
        v = {"y": b["y"][:n]}
        if backend == "blas":
            hid = b["hidden"].numpy()
            v["hidden_np"] = [hid[k * self._rows : k * self._rows + n] for k in range(self._slots)]
            v["y_np"] = v["y"].numpy()
        self._views[key] = v
        return v

    def _get_backward_views(self, n: int, backend: str) -> dict:
        """:meth:`_get_views` plus the ``dx`` buffer, allocated on first use."""
        v = self._get_views(n, backend)
        if "dx" not in v:
            if "dx" not in self._bufs:
                shape = (self._rows, self.layout.n_input)
                self._bufs["dx"] = wp.empty(shape, dtype=wp.float32, device=self.device)
            v["dx"] = self._bufs["dx"][:n]
            if backend == "blas":
                v["dx_np"] = v["dx"].numpy()
        return v

    def _blas_scratch(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """BLAS backward scratch: two gradient buffers, a ReLU mask, dz of the output layer (+ its mask, dW)."""
        s = self._scratch
        if not s:
            w, rows = self.layout.n_neurons, self._rows
            s["grad"] = np.empty((2, rows, w), dtype=np.float32)
            s["mask"] = np.empty((rows, w), dtype=np.bool_)
            s["dz"] = np.empty((rows, self.layout.n_output), dtype=np.float32)
        return s["grad"][0, :n], s["grad"][1, :n], s["mask"][:n], s["dz"][:n]

    def _blas_partials(self, blocks: int) -> np.ndarray:
        """Per-row-block weight-gradient buffers ``[blocks, n_params]`` (reused)."""
        part = self._scratch.get("partials")
        if part is None or part.shape[0] < blocks:
            part = self._scratch["partials"] = np.empty((blocks, self.layout.n_params), dtype=np.float32)
        return part


def _resolve_backend(backend: str, device: wp.context.Device) -> str:
    if backend not in BACKENDS:
        raise KernelArgumentError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "blas" if device.is_cpu else "tile"
    if backend == "blas" and not device.is_cpu:
        raise KernelArgumentError(f"the 'blas' backend runs on the CPU only, arrays are on {device}")
    return backend


def _check_workspace(layout: MlpLayout, ws: MlpWorkspace, device: wp.context.Device) -> None:
    if not isinstance(ws, MlpWorkspace):
        raise KernelArgumentError(f"workspace must be an MlpWorkspace, got {type(ws).__name__}")
    if ws.layout != layout:
        raise KernelArgumentError(f"workspace was made for {ws.layout}, not {layout}")
    if ws.device != device:
        raise DeviceMismatchError(f"workspace is on {ws.device} but the arrays are on {device}")


def _check_contiguous(a: wp.array, name: str) -> None:
    if not a.is_contiguous:
        raise KernelArgumentError(f"{name} must be contiguous (row-major); pass a contiguous copy")


def mlp_forward(
    layout: MlpLayout,
    params: wp.array,
    x: wp.array2d,
    *,
    backend: str = "auto",
    workspace: MlpWorkspace | None = None,
    keep_activations: bool = True,
) -> wp.array2d:
    """Evaluate the network on ``x`` [N, n_input]; return ``y`` [N, n_output] (a view into the workspace).

    Args:
        layout: network shape.
        params: flat float32 weights [layout.n_params] on the same device as ``x``.
        x: contiguous float32 inputs; referenced (not copied) by the workspace for the backward.
        backend: "auto" | "blas" (CPU) | "tile".
        workspace: buffers to reuse; None makes a fresh one (then no backward is possible).
        keep_activations: save what :func:`mlp_backward` needs (False for inference: less memory traffic).

    Raises:
        KernelArgumentError: wrong dtype, shape, device or backend.
    """
    device = common_device([params, x])
    check_array(params, "params", dtype=wp.float32, shape=(layout.n_params,), device=device)
    check_array(x, "x", dtype=wp.float32, shape=(None, layout.n_input), device=device)
    _check_contiguous(x, "x")
    backend = _resolve_backend(backend, device)
    ws = MlpWorkspace(layout, device) if workspace is None else workspace
    _check_workspace(layout, ws, device)

    n, n_hidden = x.shape[0], layout.n_hidden_layers
    if keep_activations:
        slots = n_hidden
    else:  # BLAS ping-pongs between two slots; the tile kernel keeps everything in shared memory
        slots = min(n_hidden, 2) if backend == "blas" else 0
    ws._saved = False
    ws._ensure(n, slots)
    v = ws._get_views(n, backend)
    if backend == "blas":
        _blas_forward(layout, params.numpy(), x.numpy(), v, keep_activations)
    else:
        hid = ws._bufs["hidden"]
        mlp_tile.tile_forward(layout, params, x, hid, ws._rows, keep_activations, v["y"])
    ws._x, ws._backend, ws._saved = x, backend, keep_activations
    return v["y"]


def _blas_forward(layout: MlpLayout, p: np.ndarray, x: np.ndarray, v: dict, keep: bool) -> None:
    weights = _weights(layout, p)
    act = layout.output_activation

    def rows(s: int, e: int) -> None:
        h = x[s:e]
        for k, w in enumerate(weights[:-1]):
            out = v["hidden_np"][k if keep else k % 2][s:e]
            np.matmul(h, w.T, out=out)
            _relu_inplace(out)
            h = out
        y = v["y_np"][s:e]
        np.matmul(h, weights[-1].T, out=y)
        _activate_inplace(y, act)

    _run_row_blocks(rows, x.shape[0])


def mlp_backward(
    layout: MlpLayout,
    params: wp.array,
    workspace: MlpWorkspace,
    dy: wp.array2d,
    *,
    grad_params: wp.array,
    need_dx: bool = True,
    accumulate: bool = False,
) -> wp.array2d | None:
    """Backpropagate ``dy = dL/dy`` [N, n_output] through the latest forward run with ``workspace``.

    Writes ``dL/dparams`` into ``grad_params`` [n_params] (overwrites, or adds when ``accumulate``) and
    returns ``dx = dL/dx`` [N, n_input] (a view into the workspace), or None when ``need_dx`` is False.
    Uses the back end of that forward, which must have run with ``keep_activations=True``.

    Raises:
        KernelArgumentError: wrong dtype, shape or device, or no saved forward in ``workspace``.
    """
    device = common_device([params, dy, grad_params])
    _check_workspace(layout, workspace, device)
    ws = workspace
    if not ws._saved:
        raise KernelArgumentError("workspace holds no activations: run mlp_forward(keep_activations=True) first")
    n = ws._x.shape[0]
    check_array(params, "params", dtype=wp.float32, shape=(layout.n_params,), device=device)
    check_array(grad_params, "grad_params", dtype=wp.float32, shape=(layout.n_params,), device=device)
    check_array(dy, "dy", dtype=wp.float32, shape=(n, layout.n_output), device=device)
    _check_contiguous(dy, "dy")
    v = ws._get_backward_views(n, ws._backend)
    if ws._backend == "blas":
        _blas_backward(layout, ws, params.numpy(), dy.numpy(), grad_params.numpy(), v, need_dx, accumulate)
    else:
        if not accumulate:
            grad_params.zero_()
        hid = ws._bufs["hidden"]
        mlp_tile.tile_backward(layout, params, ws._x, hid, ws._rows, v["y"], dy, grad_params, v["dx"], need_dx)
    return v["dx"] if need_dx else None


def _blas_backward(
    layout: MlpLayout,
    ws: MlpWorkspace,
    p: np.ndarray,
    dy: np.ndarray,
    grad: np.ndarray,
    v: dict,
    need_dx: bool,
    accumulate: bool,
) -> None:
    n = dy.shape[0]
    weights = _weights(layout, p)
    inputs = [ws._x.numpy(), *v["hidden_np"][: layout.n_hidden_layers]]
    g_a, g_b, mask, dz = ws._blas_scratch(n)
    y, act = v["y_np"], layout.output_activation
    blocks = _row_blocks(n)
    partials = ws._blas_partials(len(blocks))  # [blocks, n_params]: per-block dL/dW, summed at the end

    def rows(s: int, e: int, j: int) -> None:
        pw = _weights(layout, partials[j])
        if act == "none":
            g = dy[s:e]
        else:
            g = dz[s:e]
            if act == "sigmoid":  # dy * y * (1 - y)
                np.subtract(np.float32(1.0), y[s:e], out=g)
                g *= y[s:e]
                g *= dy[s:e]
            elif act == "exp":
                np.multiply(dy[s:e], y[s:e], out=g)
            else:
                np.multiply(dy[s:e], y[s:e] > 0, out=g)
        for k in range(len(weights) - 1, -1, -1):
            np.matmul(g.T, inputs[k][s:e], out=pw[k])
            if k > 0:
                g_next = g_a[s:e] if not np.may_share_memory(g, g_a) else g_b[s:e]
                np.matmul(g, weights[k], out=g_next)
                _relu_grad_inplace(g_next, inputs[k][s:e], mask[s:e])
                g = g_next
            elif need_dx:
                np.matmul(g, weights[0], out=v["dx_np"][s:e])

    _run_row_blocks(rows, n, with_index=True)
    total = partials[0] if len(blocks) == 1 else np.add.reduce(partials[: len(blocks)], axis=0)
    if accumulate:
        grad += total
    else:
        grad[...] = total


_BLAS_LIMITED = False


def _single_threaded_blas() -> None:
    """Make NumPy's BLAS single-threaded for the rest of the process (once).

    The BLAS back end splits rows across its own worker threads, each calling single-threaded BLAS with no
    synchronisation between layers. Left multi-threaded, OpenBLAS's worker threads spin for ~0.1 s after every
    call and steal the cores from Warp's CPU launches (measured: 20x slower NeRF steps). Set
    ``NGP_BLAS_THREADS`` to keep another count.
    """
    global _BLAS_LIMITED
    if _BLAS_LIMITED:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(os.environ.get("NGP_BLAS_THREADS", "1")), user_api="blas")
    _BLAS_LIMITED = True


def _row_blocks(n: int) -> list[tuple[int, int]]:
    threads = num_cpu_threads() if n * 64 >= _MIN_SPLIT_VALUES else 1
    return [(s, s + c) for s, c in split_range(n, threads)] or [(0, 0)]


def _run_row_blocks(fn, n: int, *, with_index: bool = False) -> None:
    """Run ``fn(start, end[, block])`` on contiguous row blocks, one per CPU worker, BLAS single-threaded."""
    blocks = _row_blocks(n)
    calls = [
        functools.partial(fn, s, e, j) if with_index else functools.partial(fn, s, e)
        for j, (s, e) in enumerate(blocks)
    ]
    _single_threaded_blas()
    run_on_threads(calls)
