"""Float64 NumPy references for warp_kernels.adam: tcnn Adam, tcnn EMA (two-buffer form) and ExponentialDecay.

These follow tiny-cuda-nn's code paths literally (stateful loops, separate biased accumulator) rather than the
closed forms used by the kernels, so a test comparing the two checks the algebra as well as the arithmetic.
"""

from __future__ import annotations

import numpy as np

__all__ = ["adam_step_ref", "EmaRef", "ExponentialDecayRef"]


def adam_step_ref(
    params: np.ndarray,
    grads: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    *,
    step: int,
    learning_rate: float,
    beta1: float = 0.9,
    beta2: float = 0.99,
    epsilon: float = 1e-15,
    l2_reg: float = 0.0,
    skip_zero_grad: bool = False,
    param_steps: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """One tcnn Adam step in float64; returns new ``(params, m, v, param_steps)`` (inputs untouched).

    With ``param_steps`` the bias correction uses each element's own (incremented) counter, else ``step``.
    """
    p = np.asarray(params, np.float64).copy()
    g = np.asarray(grads, np.float64).copy()
    m = np.asarray(m, np.float64).copy()
    v = np.asarray(v, np.float64).copy()
    steps = None if param_steps is None else np.asarray(param_steps, np.int64).copy()
    active = (g != 0) if skip_zero_grad else np.ones(g.shape, bool)
    g = g + l2_reg * p
    m_new = beta1 * m + (1 - beta1) * g
    v_new = beta2 * v + (1 - beta2) * g * g
    if steps is None:
        t = np.full(g.shape, float(step))
    else:
        steps = np.where(active, steps + 1, steps)
        t = np.maximum(steps, 1).astype(np.float64)  # untouched elements (count 0) are masked out below
    lr_t = learning_rate * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    p_new = p - lr_t * m_new / (np.sqrt(v_new) + epsilon)
    return (
        np.where(active, p_new, p),
        np.where(active, m_new, m),
        np.where(active, v_new, v),
        steps,
    )


class EmaRef:
    """tcnn-style EMA kept as a biased accumulator ``raw`` plus a debiased read-out, in float64."""

    def __init__(self, size: int, decay: float) -> None:
        self.decay = decay
        self.raw = np.zeros(size, np.float64)
        self.step = 0

    def update(self, params: np.ndarray) -> np.ndarray:
        """Advance one step and return the debiased EMA."""
        self.step += 1
        self.raw = self.decay * self.raw + (1 - self.decay) * np.asarray(params, np.float64)
        return self.raw / (1 - self.decay**self.step)


class ExponentialDecayRef:
    """Literal transcription of tcnn's ExponentialDecayOptimizer learning-rate bookkeeping."""

    def __init__(
        self,
        base_lr: float,
        *,
        decay_start: int,
        decay_interval: int,
        decay_base: float,
        decay_end: int = 10_000_000,
    ) -> None:
        self.base_lr = base_lr
        self.decay_start = decay_start
        self.decay_interval = decay_interval
        self.decay_base = decay_base
        self.decay_end = decay_end
        self.factor = 1.0
        self.done = 0  # the nested optimizer's step() before this update

    def next_lr(self) -> float:
        """Learning rate used by the next update (1-based number ``done + 1``), then count the update."""
        s = self.done
        if s == 0:
            self.factor = 1.0
        if (
            s >= self.decay_start
            and (s - self.decay_start) % self.decay_interval == 0
            and s <= self.decay_end
        ):
            self.factor *= self.decay_base
        self.done += 1
        return self.base_lr * self.factor
