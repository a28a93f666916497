"""Float64 NumPy references for warp_kernels.losses (tcnn loss functions with their gradients)."""

from __future__ import annotations

import numpy as np

__all__ = ["REF_LOSS_NAMES", "elementwise_loss_ref", "loss_ref"]

REF_LOSS_NAMES = ("L2", "L1", "Huber", "RelativeL2", "MAPE")


def elementwise_loss_ref(
    name: str, prediction: np.ndarray, target: np.ndarray, *, huber_delta: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Per-element ``(l(d), dl/dprediction)`` in float64; ``d = prediction - target``, ``sign(0) = 0``.

    RelativeL2's gradient treats the denominator ``prediction**2 + 0.01`` as a constant (tcnn convention).
    """
    p = np.asarray(prediction, np.float64)
    y = np.asarray(target, np.float64)
    d = p - y
    if name == "L2":
        return d * d, 2 * d
    if name == "L1":
        return np.abs(d), np.sign(d)
    if name == "Huber":
        quad = np.abs(d) <= huber_delta
        value = np.where(quad, d * d / (2 * huber_delta), np.abs(d) - huber_delta / 2)
        grad = np.where(quad, d / huber_delta, np.sign(d))
        return value, grad
    if name == "RelativeL2":
        denom = p * p + 0.01
        return d * d / denom, 2 * d / denom
    if name == "MAPE":
        denom = np.abs(y) + 0.01
        return np.abs(d) / denom, np.sign(d) / denom
    raise ValueError(name)


def loss_ref(
    name: str,
    prediction: np.ndarray,
    target: np.ndarray,
    *,
    row_weight: np.ndarray | None = None,
    scale: float = 1.0,
    huber_delta: float = 0.1,
) -> tuple[float, np.ndarray, np.ndarray]:
    """``(mean loss, scale * d(mean)/d(prediction), per-element weighted values)`` in float64."""
    value, grad = elementwise_loss_ref(name, prediction, target, huber_delta=huber_delta)
    w = np.ones(value.shape[0]) if row_weight is None else np.asarray(row_weight, np.float64)
    value = value * w[:, None]
    grad = grad * w[:, None]
    n = value.size
    return float(value.sum() / n), scale * grad / n, value
