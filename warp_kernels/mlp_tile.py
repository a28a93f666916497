"""Tile back end of the tiny MLP (``warp_kernels.mlp``): Warp tile kernels, the GPU path (also runs on CPU).

One block handles ``TILE_M`` rows of the batch. The forward runs every layer of its row tile in one kernel:
weights are read as tiles straight out of 2D views of the flat parameter buffer, activations stay in shared
memory between layers, and hidden activations are written to the workspace only when they are kept for the
backward. The backward is fused the same way: per row tile it walks the layers from output to input, adds
``dW_k = dz_k^T @ h_{k-1}`` of its rows into the gradient buffer with ``wp.tile_atomic_add`` and keeps
``dz`` in shared memory. Atomic float adds make the summation order, and so the last bits of ``dparams``,
non-deterministic on CUDA; on CPU the tiles run one after another and the result is reproducible.

Kernels come from a cache keyed by ``(n_input, n_output, n_neurons)``: depth and output activation are
runtime arguments (the hidden-layer loop is a dynamic loop, so shared memory does not grow with depth and
one compiled module serves every depth). A batch that is not a multiple of ``TILE_M`` needs no padding of
the inputs: tile loads past the last row read zeros and stores past it are skipped; the padded rows of
the workspace's hidden slots receive zeros, whose gradients are zero.

Shared memory per block (Warp's own count, what a CUDA launch requests) for 32 inputs and 16 outputs:
48 KiB forward / 84 KiB backward at 64 neurons, 128 / 164 KiB at 128 neurons (208 KiB backward with 64
inputs and 64 outputs). An H100/H200 block may use 227 KiB and the CPU arena holds 256 KiB; much wider
inputs at 128 neurons would exceed them (Warp logs the shortfall when it loads the module).
"""

# No ``from __future__ import annotations``: the tile-typed wp.func annotations close over factory ints.
import functools

import warp as wp

__all__ = ["TILE_M", "TILE_THREADS", "ACTIVATION_CODES", "tile_forward", "tile_backward", "tile_kernels"]

#: Rows of the batch per block (tile height).
TILE_M = 64
#: Threads per block on CUDA (CPU launches run one thread per block).
TILE_THREADS = 128
#: Output activation -> runtime code passed to the kernels.
ACTIVATION_CODES = {"none": 0, "sigmoid": 1, "exp": 2, "relu": 3}

_SIGMOID = wp.constant(1)
_EXP = wp.constant(2)
_RELU = wp.constant(3)


@wp.func
def _relu(v: float):
    return wp.max(v, 0.0)


@wp.func
def _relu_grad(g: float, h: float):
    return wp.where(h > 0.0, g, 0.0)


@wp.func
def _sigmoid(v: float):
    return 1.0 / (1.0 + wp.exp(-v))


@wp.func
def _sigmoid_grad(g: float, y: float):
    return g * y * (1.0 - y)


@wp.func
def _exp(v: float):
    return wp.exp(v)


@wp.func
def _exp_grad(g: float, y: float):
    return g * y


@functools.cache
def _output_funcs(n_output: int):
    """``store_output`` (activation + store) and ``output_grad`` (dy -> dz in place), shared by all kernels."""
    TM, NO = TILE_M, n_output

    @wp.func
    def store_output(y: wp.array2d(dtype=float), o: wp.tile[float, TM, NO], act: int, row0: int):
        if act == _SIGMOID:
            wp.tile_store(y, wp.tile_map(_sigmoid, o), offset=(row0, 0))
        elif act == _EXP:
            wp.tile_store(y, wp.tile_map(_exp, o), offset=(row0, 0))
        elif act == _RELU:
            wp.tile_store(y, wp.tile_map(_relu, o), offset=(row0, 0))
        else:
            wp.tile_store(y, o, offset=(row0, 0))

    @wp.func
    def output_grad(g: wp.tile[float, TM, NO], y: wp.array2d(dtype=float), act: int, row0: int):
        if act == _SIGMOID:
            wp.tile_assign(g, wp.tile_map(_sigmoid_grad, g, wp.tile_load(y, shape=(TM, NO), offset=(row0, 0))))
        elif act == _EXP:
            wp.tile_assign(g, wp.tile_map(_exp_grad, g, wp.tile_load(y, shape=(TM, NO), offset=(row0, 0))))
        elif act == _RELU:
            wp.tile_assign(g, wp.tile_map(_relu_grad, g, wp.tile_load(y, shape=(TM, NO), offset=(row0, 0))))

    return store_output, output_grad


@functools.cache
def _deep_kernels(n_input: int, n_output: int, width: int) -> tuple[wp.Kernel, wp.Kernel]:
    """Forward and backward kernels for networks with at least one hidden layer.

    Weight views: ``w_in`` [width, n_input] (first layer); ``w_rest`` [(n_hidden-1)*width + n_output, width]
    holds hidden block k (hid[k] -> hid[k+1]) at rows ``k*width`` and the output layer after them.
    Hidden slot k of the workspace is rows ``[k*stride, k*stride + n)`` of ``hid``. Each stage is a
    ``wp.func`` so its weight and gradient tiles leave shared memory when it returns: the peak is two
    [TILE_M, width] tiles carried across layers plus the largest stage.
    """
    TM, NI, NO, W = TILE_M, n_input, n_output, width
    H = min(W, 64)  # rows of one hidden dW chunk
    N_CHUNKS = W // H
    store_output, output_grad = _output_funcs(n_output)
    module = f"ngp_mlp_tile_{NI}_{NO}_{W}"
    wp.set_module_options({"block_dim": TILE_THREADS}, module)  # the launched variant, for AOT compiles

    @wp.func
    def first_layer(
        x: wp.array2d(dtype=float),
        w_in: wp.array2d(dtype=float),
        row0: int,
        z: wp.tile[float, TM, W],
        h: wp.tile[float, TM, W],
    ):
        xt = wp.tile_load(x, shape=(TM, NI), offset=(row0, 0), storage="shared")
        w0 = wp.tile_load(w_in, shape=(W, NI), storage="shared")
        wp.tile_matmul(xt, wp.tile_transpose(w0), z, alpha=1.0, beta=0.0)
        wp.tile_assign(h, wp.tile_map(_relu, z))

    @wp.func
    def hidden_layer(w_rest: wp.array2d(dtype=float), k: int, z: wp.tile[float, TM, W], h: wp.tile[float, TM, W]):
        wk = wp.tile_load(w_rest, shape=(W, W), offset=(k * W, 0), storage="shared")
        wp.tile_matmul(h, wp.tile_transpose(wk), z, alpha=1.0, beta=0.0)
        wp.tile_assign(h, wp.tile_map(_relu, z))

    @wp.func
    def output_layer(
        w_rest: wp.array2d(dtype=float),
        k: int,
        h: wp.tile[float, TM, W],
        y: wp.array2d(dtype=float),
        act: int,
        row0: int,
    ):
        wo = wp.tile_load(w_rest, shape=(NO, W), offset=(k * W, 0), storage="shared")
        store_output(y, wp.tile_matmul(h, wp.tile_transpose(wo)), act, row0)

    @wp.func
    def output_backward(
        go: wp.tile[float, TM, NO],
        hid: wp.array2d(dtype=float),
        hrow: int,
        w_rest: wp.array2d(dtype=float),
        g_rest: wp.array2d(dtype=float),
        k: int,
        z: wp.tile[float, TM, W],
        g: wp.tile[float, TM, W],
    ):
        h = wp.tile_load(hid, shape=(TM, W), offset=(hrow, 0), storage="shared")
        wp.tile_atomic_add(g_rest, wp.tile_matmul(wp.tile_transpose(go), h), offset=(k * W, 0))
        wo = wp.tile_load(w_rest, shape=(NO, W), offset=(k * W, 0), storage="shared")
        wp.tile_matmul(go, wo, z, alpha=1.0, beta=0.0)
        wp.tile_assign(g, wp.tile_map(_relu_grad, z, h))

    @wp.func
    def weight_grad_rows(
        g: wp.tile[float, TM, W], hp: wp.tile[float, TM, W], g_rest: wp.array2d(dtype=float), row: int, c0: int
    ):
        # rows [c0, c0 + H) of dW: tile_atomic_add returns a copy of its tile, so keep that tile small
        gv = wp.tile_view(g, offset=(0, c0), shape=(TM, H))
        wp.tile_atomic_add(g_rest, wp.tile_matmul(wp.tile_transpose(gv), hp), offset=(row + c0, 0))

    @wp.func
    def hidden_weight_grad(
        g: wp.tile[float, TM, W], hid: wp.array2d(dtype=float), hrow: int, g_rest: wp.array2d(dtype=float), k: int
    ):
        hp = wp.tile_load(hid, shape=(TM, W), offset=(hrow, 0), storage="shared")
        for c in range(N_CHUNKS):
            weight_grad_rows(g, hp, g_rest, k * W, c * H)

    @wp.func
    def hidden_backward(
        w_rest: wp.array2d(dtype=float),
        k: int,
        hid: wp.array2d(dtype=float),
        hrow: int,
        z: wp.tile[float, TM, W],
        g: wp.tile[float, TM, W],
    ):
        hp = wp.tile_load(hid, shape=(TM, W), offset=(hrow, 0), storage="shared")
        wk = wp.tile_load(w_rest, shape=(W, W), offset=(k * W, 0), storage="shared")
        wp.tile_matmul(g, wk, z, alpha=1.0, beta=0.0)
        wp.tile_assign(g, wp.tile_map(_relu_grad, z, hp))

    @wp.func
    def first_backward(
        g: wp.tile[float, TM, W],
        x: wp.array2d(dtype=float),
        row0: int,
        w_in: wp.array2d(dtype=float),
        g_in: wp.array2d(dtype=float),
        need_dx: int,
        dx: wp.array2d(dtype=float),
    ):
        xt = wp.tile_load(x, shape=(TM, NI), offset=(row0, 0), storage="shared")
        wp.tile_atomic_add(g_in, wp.tile_matmul(wp.tile_transpose(g), xt))
        if need_dx != 0:
            w0 = wp.tile_load(w_in, shape=(W, NI), storage="shared")
            wp.tile_store(dx, wp.tile_matmul(g, w0), offset=(row0, 0))

    @wp.kernel(enable_backward=False, module=module)
    def forward(
        x: wp.array2d(dtype=float),
        w_in: wp.array2d(dtype=float),
        w_rest: wp.array2d(dtype=float),
        n_hidden: int,
        act: int,
        save: int,
        stride: int,
        hid: wp.array2d(dtype=float),
        y: wp.array2d(dtype=float),
    ):
        i, _lane = wp.tid()
        row0 = i * TM
        z = wp.tile_zeros(shape=(TM, W), dtype=float, storage="shared")
        h = wp.tile_zeros(shape=(TM, W), dtype=float, storage="shared")
        first_layer(x, w_in, row0, z, h)
        if save != 0:
            wp.tile_store(hid, h, offset=(row0, 0))
        for k in range(n_hidden - 1):
            hidden_layer(w_rest, k, z, h)
            if save != 0:
                wp.tile_store(hid, h, offset=((k + 1) * stride + row0, 0))
        output_layer(w_rest, n_hidden - 1, h, y, act, row0)

    @wp.kernel(enable_backward=False, module=module)
    def backward(
        x: wp.array2d(dtype=float),
        w_in: wp.array2d(dtype=float),
        w_rest: wp.array2d(dtype=float),
        n_hidden: int,
        act: int,
        stride: int,
        hid: wp.array2d(dtype=float),
        y: wp.array2d(dtype=float),
        dy: wp.array2d(dtype=float),
        need_dx: int,
        g_in: wp.array2d(dtype=float),
        g_rest: wp.array2d(dtype=float),
        dx: wp.array2d(dtype=float),
    ):
        i, _lane = wp.tid()
        row0 = i * TM
        last = n_hidden - 1
        go = wp.tile_load(dy, shape=(TM, NO), offset=(row0, 0), storage="shared")
        output_grad(go, y, act, row0)
        z = wp.tile_zeros(shape=(TM, W), dtype=float, storage="shared")
        g = wp.tile_zeros(shape=(TM, W), dtype=float, storage="shared")
        output_backward(go, hid, last * stride + row0, w_rest, g_rest, last, z, g)
        for j in range(last):
            k = last - 1 - j  # hidden block k maps hid[k] -> hid[k + 1]
            hidden_weight_grad(g, hid, k * stride + row0, g_rest, k)
            hidden_backward(w_rest, k, hid, k * stride + row0, z, g)
        first_backward(g, x, row0, w_in, g_in, need_dx, dx)

    return forward, backward


@functools.cache
def _linear_kernels(n_input: int, n_output: int) -> tuple[wp.Kernel, wp.Kernel]:
    """Forward and backward kernels for ``n_hidden_layers == 0`` (one layer ``w`` [n_output, n_input])."""
    TM, NI, NO = TILE_M, n_input, n_output
    store_output, output_grad = _output_funcs(n_output)
    module = f"ngp_mlp_tile_linear_{NI}_{NO}"
    wp.set_module_options({"block_dim": TILE_THREADS}, module)  # the launched variant, for AOT compiles

    @wp.kernel(enable_backward=False, module=module)
    def forward(x: wp.array2d(dtype=float), w: wp.array2d(dtype=float), act: int, y: wp.array2d(dtype=float)):
        i, _lane = wp.tid()
        row0 = i * TM
        xt = wp.tile_load(x, shape=(TM, NI), offset=(row0, 0), storage="shared")
        wt = wp.tile_load(w, shape=(NO, NI), storage="shared")
        store_output(y, wp.tile_matmul(xt, wp.tile_transpose(wt)), act, row0)

    @wp.kernel(enable_backward=False, module=module)
    def backward(
        x: wp.array2d(dtype=float),
        w: wp.array2d(dtype=float),
        act: int,
        y: wp.array2d(dtype=float),
        dy: wp.array2d(dtype=float),
        need_dx: int,
        gw: wp.array2d(dtype=float),
        dx: wp.array2d(dtype=float),
    ):
        i, _lane = wp.tid()
        row0 = i * TM
        go = wp.tile_load(dy, shape=(TM, NO), offset=(row0, 0), storage="shared")
        output_grad(go, y, act, row0)
        xt = wp.tile_load(x, shape=(TM, NI), offset=(row0, 0), storage="shared")
        wp.tile_atomic_add(gw, wp.tile_matmul(wp.tile_transpose(go), xt))
        if need_dx != 0:
            wt = wp.tile_load(w, shape=(NO, NI), storage="shared")
            wp.tile_store(dx, wp.tile_matmul(go, wt), offset=(row0, 0))

    return forward, backward


def tile_kernels(layout) -> dict[str, wp.Kernel]:
    """The ``"forward"`` and ``"backward"`` kernels :func:`tile_forward` / :func:`tile_backward` launch for
    ``layout`` (an :class:`~warp_kernels.mlp.MlpLayout`).

    One Warp module per ``(n_input, n_output, n_neurons)`` (``(n_input, n_output)`` without hidden layers);
    depth and output activation are runtime arguments. The modules' default ``block_dim`` is
    :data:`TILE_THREADS`, the one every launch uses. Public for ahead-of-time compile checks
    (:mod:`warp_kernels.cuda_check`).
    """
    if layout.n_hidden_layers == 0:
        fwd, bwd = _linear_kernels(layout.n_input, layout.n_output)
    else:
        fwd, bwd = _deep_kernels(layout.n_input, layout.n_output, layout.n_neurons)
    return {"forward": fwd, "backward": bwd}


def _weight_views(layout, flat: wp.array) -> tuple[wp.array, ...]:
    """2D views of a flat parameter (or gradient) buffer in the shapes the kernels read."""
    n_first = layout.layer_shapes[0][0] * layout.n_input
    first = flat[:n_first].reshape(layout.layer_shapes[0])
    if layout.n_hidden_layers == 0:
        return (first,)
    return first, flat[n_first:].reshape((-1, layout.n_neurons))


def _launch(kernel, n: int, inputs: list, device) -> None:
    if n > 0:
        wp.launch_tiled(kernel, dim=(n + TILE_M - 1) // TILE_M, inputs=inputs, block_dim=TILE_THREADS, device=device)


def tile_forward(layout, params: wp.array, x: wp.array, hid: wp.array, stride: int, save: bool, y: wp.array):
    """Run the fused forward; ``hid`` [slots*stride, width] receives the hidden activations when ``save``."""
    act = ACTIVATION_CODES[layout.output_activation]
    device = x.device
    fwd = tile_kernels(layout)["forward"]
    if layout.n_hidden_layers == 0:
        _launch(fwd, x.shape[0], [x, *_weight_views(layout, params), act, y], device)
        return
    w_in, w_rest = _weight_views(layout, params)
    inputs = [x, w_in, w_rest, layout.n_hidden_layers, act, int(save), stride, hid, y]
    _launch(fwd, x.shape[0], inputs, device)


def tile_backward(layout, params, x, hid, stride: int, y, dy, grad_params, dx, need_dx: bool) -> None:
    """Add ``dL/dparams`` of the rows of ``dy`` into ``grad_params``; write ``dx`` when ``need_dx``."""
    act = ACTIVATION_CODES[layout.output_activation]
    device = x.device
    bwd = tile_kernels(layout)["backward"]
    if layout.n_hidden_layers == 0:
        (w,) = _weight_views(layout, params)
        (gw,) = _weight_views(layout, grad_params)
        _launch(bwd, x.shape[0], [x, w, act, y, dy, int(need_dx), gw, dx], device)
        return
    w_in, w_rest = _weight_views(layout, params)
    g_in, g_rest = _weight_views(layout, grad_params)
    inputs = [x, w_in, w_rest, layout.n_hidden_layers, act, stride, hid, y, dy, int(need_dx), g_in, g_rest, dx]
    _launch(bwd, x.shape[0], inputs, device)
