"""Tests of warp_kernels.mlp (both back ends) against the float64 oracle tests/reference/mlp_ref.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import warp as wp

from tests.reference.mlp_ref import mlp_backward_ref, mlp_fd_grad_ref, mlp_forward_ref, ref_layer_shapes
from warp_kernels.device import KernelArgumentError
from warp_kernels.mlp import (
    ACTIVATIONS,
    MlpLayout,
    MlpWorkspace,
    init_mlp_params,
    mlp_backward,
    mlp_forward,
)
from warp_kernels.mlp_tile import TILE_M

BATCHES = (1, 37, 200, 4 * TILE_M, 37)  # odd sizes, a multiple of the tile height, then shrink again
BACKENDS = ("blas", "tile")


def _skip_unsupported(backend: str, device) -> None:
    if backend == "blas" and not device.is_cpu:
        pytest.skip("the blas back end is CPU only")


def _run(layout, p, x, dy, device, backend, ws=None):
    """Forward + backward through the Warp API; returns y, dparams, dx as NumPy arrays."""
    params = wp.array(p, dtype=wp.float32, device=device)
    ws = ws or MlpWorkspace(layout, device)
    y = mlp_forward(layout, params, wp.array(x, dtype=wp.float32, device=device), backend=backend, workspace=ws)
    grad = wp.zeros(layout.n_params, dtype=wp.float32, device=device)
    dy_w = wp.array(dy, dtype=wp.float32, device=device)
    dx = mlp_backward(layout, params, ws, dy_w, grad_params=grad)
    return y.numpy(), grad.numpy(), dx.numpy()


def _assert_close(actual, expected, rtol=2e-5, what=""):
    """Float32 result vs float64 oracle: error relative to the largest magnitude in ``expected``."""
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


# ---------------------------------------------------------------- layout and init


def test_layout_shapes_offsets():
    lay = MlpLayout(n_input=32, n_output=16, n_neurons=64, n_hidden_layers=2)
    assert lay.layer_shapes == [(64, 32), (64, 64), (16, 64)]
    assert lay.layer_offsets == [0, 2048, 6144]
    assert lay.n_params == 7168
    lin = MlpLayout(n_input=5, n_output=3, n_hidden_layers=0)
    assert lin.layer_shapes == [(3, 5)] and lin.layer_offsets == [0] and lin.n_params == 15
    for nh in range(4):
        lay = MlpLayout(n_input=7, n_output=3, n_neurons=16, n_hidden_layers=nh)
        assert lay.layer_shapes == ref_layer_shapes(lay)


@pytest.mark.parametrize(
    "bad",
    [
        {"n_input": 0},
        {"n_output": 0},
        {"n_neurons": 48},
        {"n_hidden_layers": -1},
        {"output_activation": "tanh"},
        {"n_input": 2.0},
        {"n_hidden_layers": True},
    ],
)
def test_layout_validation(bad):
    kwargs = {"n_input": 3, "n_output": 2, **bad}
    with pytest.raises(ValueError):
        MlpLayout(**kwargs)


def test_layout_is_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        MlpLayout(3, 2)  # type: ignore[misc]
    lay = MlpLayout(n_input=3, n_output=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lay.n_input = 4  # type: ignore[misc]


def test_init_params_xavier_uniform():
    lay = MlpLayout(n_input=32, n_output=16, n_neurons=64, n_hidden_layers=2)
    p = init_mlp_params(lay, seed=3)
    assert p.dtype == np.float32 and p.shape == (lay.n_params,)
    np.testing.assert_array_equal(p, init_mlp_params(lay, seed=3))
    assert not np.array_equal(p, init_mlp_params(lay, seed=4))
    for off, (n_out, n_in) in zip(lay.layer_offsets, lay.layer_shapes, strict=True):
        w = p[off : off + n_out * n_in]
        bound = np.sqrt(6.0 / (n_in + n_out))
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.9 * bound  # fills the interval
        assert abs(w.mean()) < 0.1 * bound


# ---------------------------------------------------------------- against the float64 reference


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("depth", [0, 1, 2, 3])
@pytest.mark.parametrize("width", [16, 32, 64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_reference(backend, width, depth, activation, device):
    _skip_unsupported(backend, device)
    lay = MlpLayout(n_input=7, n_output=3, n_neurons=width, n_hidden_layers=depth, output_activation=activation)
    rng = np.random.default_rng(width * 10 + depth)
    p = init_mlp_params(lay, seed=depth)
    ws = MlpWorkspace(lay, device)  # one workspace across batch sizes: grows, then reuses smaller views
    for n in BATCHES:
        x = rng.standard_normal((n, lay.n_input)).astype(np.float32)
        dy = rng.standard_normal((n, lay.n_output)).astype(np.float32)
        y, grad, dx = _run(lay, p, x, dy, device, backend, ws)
        y_ref, _ = mlp_forward_ref(lay, p, x)
        grad_ref, dx_ref = mlp_backward_ref(lay, p, x, dy)
        _assert_close(y, y_ref, what=f"y n={n}")
        _assert_close(grad, grad_ref, what=f"dparams n={n}")
        _assert_close(dx, dx_ref, what=f"dx n={n}")


@pytest.mark.parametrize(
    "n_input,n_output,width,depth",
    [(32, 16, 64, 2), (40, 20, 16, 2), (3, 1, 128, 2), (4, 3, 32, 5)],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_other_shapes(backend, n_input, n_output, width, depth, device):
    """Wide inputs/outputs (wider than the hidden layers), 128 neurons, deeper nets."""
    _skip_unsupported(backend, device)
    lay = MlpLayout(
        n_input=n_input, n_output=n_output, n_neurons=width, n_hidden_layers=depth, output_activation="sigmoid"
    )
    rng = np.random.default_rng(5)
    p = init_mlp_params(lay, seed=1)
    x = rng.standard_normal((130, n_input)).astype(np.float32)
    dy = rng.standard_normal((130, n_output)).astype(np.float32)
    y, grad, dx = _run(lay, p, x, dy, device, backend)
    grad_ref, dx_ref = mlp_backward_ref(lay, p, x, dy)
    _assert_close(y, mlp_forward_ref(lay, p, x)[0], what="y")
    _assert_close(grad, grad_ref, what="dparams")
    _assert_close(dx, dx_ref, what="dx")


def test_backends_agree():
    lay = MlpLayout(n_input=32, n_output=16, n_neurons=64, n_hidden_layers=2, output_activation="exp")
    rng = np.random.default_rng(9)
    p = init_mlp_params(lay)
    x = rng.standard_normal((300, 32)).astype(np.float32)
    dy = rng.standard_normal((300, 16)).astype(np.float32)
    blas, tile = _run(lay, p, x, dy, "cpu", "blas"), _run(lay, p, x, dy, "cpu", "tile")
    for a, b, name in zip(blas, tile, ("y", "dparams", "dx"), strict=True):
        _assert_close(a, b, what=name)


def test_empty_batch(device):
    lay = MlpLayout(n_input=3, n_output=2, n_neurons=16, n_hidden_layers=1)
    backend = "blas" if device.is_cpu else "tile"
    y, grad, dx = _run(lay, init_mlp_params(lay), np.zeros((0, 3)), np.zeros((0, 2)), device, backend)
    assert y.shape == (0, 2) and dx.shape == (0, 3)
    assert not grad.any()


# ---------------------------------------------------------------- finite differences


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_reference_matches_finite_differences(activation):
    lay = MlpLayout(n_input=3, n_output=2, n_neurons=16, n_hidden_layers=2, output_activation=activation)
    rng = np.random.default_rng(2)
    p = init_mlp_params(lay, seed=2).astype(np.float64)
    x, dy = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    grad, dx = mlp_backward_ref(lay, p, x, dy)
    fd_grad, fd_dx = mlp_fd_grad_ref(lay, p, x, dy)
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dx, fd_dx, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_warp_gradient_matches_finite_differences(backend, activation, device):
    """Central differences of L = sum(dy * y) through the float32 Warp forward vs the Warp backward.

    Coordinates whose float64 finite difference disagrees with the float64 analytic gradient have a ReLU
    kink inside [-eps, eps] and are skipped (a handful at most).
    """
    _skip_unsupported(backend, device)
    lay = MlpLayout(n_input=4, n_output=3, n_neurons=16, n_hidden_layers=2, output_activation=activation)
    rng = np.random.default_rng(11)
    p = init_mlp_params(lay, seed=11)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    dy = rng.standard_normal((8, 3)).astype(np.float32)
    _, grad, dx = _run(lay, p, x, dy, device, backend)
    grad_ref, dx_ref = mlp_backward_ref(lay, p, x, dy)
    ws = MlpWorkspace(lay, device)

    def loss(pp, xx, warp_forward):
        if warp_forward:
            pw, xw = wp.array(pp, device=device), wp.array(xx, device=device)
            y = mlp_forward(lay, pw, xw, backend=backend, workspace=ws, keep_activations=False).numpy()
        else:
            y = mlp_forward_ref(lay, pp, xx)[0]
        return float(np.sum(dy.astype(np.float64) * y))

    eps, checked = 1e-3, 0
    coords = [("p", i) for i in rng.choice(p.size, 48, replace=False)] + [("x", i) for i in range(x.size)]
    for which, i in coords:
        base, analytic, analytic_ref = (p, grad, grad_ref) if which == "p" else (x, dx, dx_ref)
        fds = []
        for warp_forward in (True, False):
            fd = 0.0
            for sign in (1.0, -1.0):
                pert = base.copy()
                pert.flat[i] += sign * eps
                args = (pert, x) if which == "p" else (p, pert)
                fd += sign * loss(*args, warp_forward) / (2 * eps)
            fds.append(fd)
        fd_warp, fd_ref = fds
        if abs(fd_ref - analytic_ref.flat[i]) > 1e-4 * (1.0 + abs(analytic_ref.flat[i])):
            continue  # kink crossed
        checked += 1
        assert fd_warp == pytest.approx(float(analytic.flat[i]), rel=1e-2, abs=5e-3), (which, i)
    assert checked >= 0.8 * len(coords)


# ---------------------------------------------------------------- API behaviour


@pytest.mark.parametrize("backend", BACKENDS)
def test_accumulate_and_need_dx(backend, device):
    _skip_unsupported(backend, device)
    lay = MlpLayout(n_input=5, n_output=2, n_neurons=32, n_hidden_layers=2, output_activation="sigmoid")
    rng = np.random.default_rng(4)
    p = wp.array(init_mlp_params(lay), device=device)
    x = wp.array(rng.standard_normal((90, 5)).astype(np.float32), device=device)
    dy = wp.array(rng.standard_normal((90, 2)).astype(np.float32), device=device)
    ws = MlpWorkspace(lay, device)
    mlp_forward(lay, p, x, backend=backend, workspace=ws)
    grad = wp.full(lay.n_params, 1.0, dtype=wp.float32, device=device)
    assert mlp_backward(lay, p, ws, dy, grad_params=grad, need_dx=False) is None
    fresh = grad.numpy().copy()
    mlp_backward(lay, p, ws, dy, grad_params=grad, need_dx=False)  # overwrite: same values
    _assert_close(grad.numpy(), fresh)
    mlp_backward(lay, p, ws, dy, grad_params=grad, accumulate=True)
    _assert_close(grad.numpy(), 2.0 * fresh)


@pytest.mark.parametrize("backend", BACKENDS)
def test_workspace_reuses_buffers(backend, device):
    _skip_unsupported(backend, device)
    lay = MlpLayout(n_input=5, n_output=2, n_neurons=16, n_hidden_layers=2)
    p = wp.array(init_mlp_params(lay), device=device)
    grad = wp.zeros(lay.n_params, dtype=wp.float32, device=device)
    ws = MlpWorkspace(lay, device)

    def step(n):
        x = wp.zeros((n, 5), dtype=wp.float32, device=device)
        y = mlp_forward(lay, p, x, backend=backend, workspace=ws)
        dx = mlp_backward(lay, p, ws, wp.zeros((n, 2), dtype=wp.float32, device=device), grad_params=grad)
        return y.ptr, dx.ptr, ws._bufs["hidden"].ptr

    first = step(300)
    assert step(300) == first  # a repeated batch size allocates nothing
    assert step(100) == first  # a smaller one uses views of the same buffers
    assert ws.batch_size == 100
    assert step(1000)[2] != first[2]  # a larger one grows the workspace


@pytest.mark.parametrize("backend", BACKENDS)
def test_inference_forward(backend, device):
    _skip_unsupported(backend, device)
    lay = MlpLayout(n_input=5, n_output=2, n_neurons=16, n_hidden_layers=3, output_activation="relu")
    p = wp.array(init_mlp_params(lay), device=device)
    x_np = np.random.default_rng(0).standard_normal((77, 5)).astype(np.float32)
    x = wp.array(x_np, device=device)
    ws = MlpWorkspace(lay, device)
    y = mlp_forward(lay, p, x, backend=backend, workspace=ws, keep_activations=False).numpy()
    _assert_close(y, mlp_forward_ref(lay, p.numpy(), x_np)[0])
    assert ws.batch_size is None
    with pytest.raises(KernelArgumentError, match="keep_activations"):
        mlp_backward(lay, p, ws, wp.zeros((77, 2), dtype=wp.float32, device=device), grad_params=wp.zeros_like(p))
    y_no_ws = mlp_forward(lay, p, x, backend=backend).numpy()  # a fresh workspace per call
    np.testing.assert_array_equal(y_no_ws, y)


def test_argument_errors(device):
    lay = MlpLayout(n_input=5, n_output=2, n_neurons=16, n_hidden_layers=1)
    p = wp.array(init_mlp_params(lay), device=device)
    x = wp.zeros((10, 5), dtype=wp.float32, device=device)
    ws = MlpWorkspace(lay, device)
    bad_forward = [
        dict(params=wp.zeros(lay.n_params + 1, dtype=wp.float32, device=device)),
        dict(params=wp.zeros(lay.n_params, dtype=wp.float64, device=device)),
        dict(x=wp.zeros((10, 4), dtype=wp.float32, device=device)),
        dict(x=wp.zeros((10, 5), dtype=wp.float64, device=device)),
        dict(x=wp.zeros(50, dtype=wp.float32, device=device)),
        dict(x=wp.zeros((10, 8), dtype=wp.float32, device=device)[:, :5]),  # not contiguous
        dict(x=np.zeros((10, 5), dtype=np.float32)),
        dict(backend="cuda"),
        dict(workspace=MlpWorkspace(MlpLayout(n_input=5, n_output=2, n_neurons=32), device)),
    ]
    for bad in bad_forward:
        args = {"params": p, "x": x, "backend": "auto", "workspace": ws, **bad}
        with pytest.raises(KernelArgumentError):
            mlp_forward(lay, args["params"], args["x"], backend=args["backend"], workspace=args["workspace"])
    mlp_forward(lay, p, x, workspace=ws)
    grad = wp.zeros(lay.n_params, dtype=wp.float32, device=device)
    dy = wp.zeros((10, 2), dtype=wp.float32, device=device)
    for bad_dy, bad_grad in [
        (wp.zeros((11, 2), dtype=wp.float32, device=device), grad),
        (wp.zeros((10, 3), dtype=wp.float32, device=device), grad),
        (dy, wp.zeros(lay.n_params - 1, dtype=wp.float32, device=device)),
        (dy, wp.zeros(lay.n_params, dtype=wp.float64, device=device)),
    ]:
        with pytest.raises(KernelArgumentError):
            mlp_backward(lay, p, ws, bad_dy, grad_params=bad_grad)


def test_blas_backend_is_cpu_only():
    if not wp.is_cuda_available():
        pytest.skip("needs a CUDA device")
    lay = MlpLayout(n_input=3, n_output=2, n_neurons=16)
    p = wp.array(init_mlp_params(lay), device="cuda:0")
    with pytest.raises(KernelArgumentError, match="CPU"):
        mlp_forward(lay, p, wp.zeros((4, 3), dtype=wp.float32, device="cuda:0"), backend="blas")
