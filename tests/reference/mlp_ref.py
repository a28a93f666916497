"""Float64 NumPy oracle for ``warp_kernels.mlp``: forward, backward and finite differences.

Independent of the kernel module: layer shapes are rebuilt here from the layout's plain fields
(``n_input``, ``n_output``, ``n_neurons``, ``n_hidden_layers``, ``output_activation``).
Convention: flat params, ``W_k`` row-major ``[n_out, n_in]``, input layer first; ``h_k = act(h_{k-1} @ W_k^T)``,
ReLU on hidden layers, no biases.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ref_layer_shapes", "ref_weights", "mlp_forward_ref", "mlp_backward_ref", "mlp_fd_grad_ref"]


def ref_layer_shapes(layout) -> list[tuple[int, int]]:
    """``(n_out, n_in)`` per layer."""
    dims = [layout.n_input] + [layout.n_neurons] * layout.n_hidden_layers + [layout.n_output]
    return [(dims[k + 1], dims[k]) for k in range(len(dims) - 1)]


def ref_weights(layout, params: np.ndarray) -> list[np.ndarray]:
    """Float64 weight matrices unpacked from the flat buffer (checks its length)."""
    p = np.asarray(params, dtype=np.float64).ravel()
    out, off = [], 0
    for n_out, n_in in ref_layer_shapes(layout):
        out.append(p[off : off + n_out * n_in].reshape(n_out, n_in))
        off += n_out * n_in
    assert off == p.size, f"params has {p.size} values, layout needs {off}"
    return out


def _output_act(z: np.ndarray, name: str) -> np.ndarray:
    if name == "none":
        return z
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "exp":
        return np.exp(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    raise ValueError(name)


def _output_act_grad(z: np.ndarray, name: str) -> np.ndarray:
    """d act / dz (relu: 0 at z == 0)."""
    if name == "none":
        return np.ones_like(z)
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-z))
        return s * (1.0 - s)
    if name == "exp":
        return np.exp(z)
    if name == "relu":
        return (z > 0.0).astype(np.float64)
    raise ValueError(name)


def mlp_forward_ref(layout, params: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Return ``y`` [N, n_output] and the pre-activations ``z_k`` of every layer (float64)."""
    h = np.asarray(x, dtype=np.float64)
    weights = ref_weights(layout, params)
    zs = []
    for k, w in enumerate(weights):
        z = h @ w.T
        zs.append(z)
        h = np.maximum(z, 0.0) if k < len(weights) - 1 else _output_act(z, layout.output_activation)
    return h, zs


def mlp_backward_ref(layout, params: np.ndarray, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``dL/dparams`` (flat, float64) and ``dL/dx`` for ``L = sum(dy * y)``."""
    x = np.asarray(x, dtype=np.float64)
    weights = ref_weights(layout, params)
    _, zs = mlp_forward_ref(layout, params, x)
    inputs = [x] + [np.maximum(z, 0.0) for z in zs[:-1]]
    g = np.asarray(dy, dtype=np.float64) * _output_act_grad(zs[-1], layout.output_activation)
    grads: list[np.ndarray] = [None] * len(weights)  # type: ignore[list-item]
    for k in range(len(weights) - 1, -1, -1):
        grads[k] = g.T @ inputs[k]
        g = g @ weights[k]
        if k > 0:
            g = g * (zs[k - 1] > 0.0)
    return np.concatenate([gk.ravel() for gk in grads]), g


def mlp_fd_grad_ref(layout, params: np.ndarray, x: np.ndarray, dy: np.ndarray, eps: float = 1e-6):
    """Central finite differences of ``L = sum(dy * y)`` w.r.t. params and x (float64, slow: tiny configs)."""
    p = np.asarray(params, dtype=np.float64).copy()
    x = np.asarray(x, dtype=np.float64).copy()
    dy = np.asarray(dy, dtype=np.float64)

    def loss(pp, xx):
        return float(np.sum(dy * mlp_forward_ref(layout, pp, xx)[0]))

    def fd(arr, f):
        g = np.zeros_like(arr)
        flat, gflat = arr.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            lp = f()
            flat[i] = old - eps
            lm = f()
            flat[i] = old
            gflat[i] = (lp - lm) / (2 * eps)
        return g

    return fd(p, lambda: loss(p, x)), fd(x, lambda: loss(p, x))
