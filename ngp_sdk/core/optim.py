"""Adam with instant-ngp's policy (+ optional exponential LR decay and parameter EMA) over flat buffers."""

from __future__ import annotations

import numpy as np
import warp as wp

from ngp_sdk.core.config import OptimizerConfig
from ngp_sdk.core.errors import SnapshotError
from ngp_sdk.core.fields import ParamGroup, load_flat
from ngp_sdk.core.profiling import PhaseTimer
from warp_kernels.adam import adam_step, ema_update, exponential_decay_lr

__all__ = ["Optimizer"]


def _host_copies(buffers: dict[str, wp.array]) -> dict[str, np.ndarray]:
    """NumPy copies of named device buffers (snapshots must not alias live state)."""
    return {k: a.numpy().copy() for k, a in buffers.items()}


class Optimizer:
    """Adam over parameter groups: hash tables skip zero-gradient entries, MLP weights get L2.

    Args:
        config: optimizer chain (Adam, optional ExponentialDecay, optional Ema).
        groups: parameter groups of the field(s) to train.
        timer: phase timer (``optimizer/adam``, ``optimizer/ema``); default: a disabled one.
    """

    def __init__(self, config: OptimizerConfig, groups: list[ParamGroup], *, timer: PhaseTimer | None = None):
        self.config = config
        self.timer = timer or PhaseTimer()
        self.groups = list(groups)
        self.step_count = 0
        self._m = {g.name: wp.zeros_like(g.params) for g in self.groups}
        self._v = {g.name: wp.zeros_like(g.params) for g in self.groups}
        self._ema = {g.name: wp.clone(g.params) for g in self.groups} if config.ema is not None else None

    @property
    def learning_rate(self) -> float:
        """Learning rate of the next step (after decay)."""
        base = self.config.adam.learning_rate
        d = self.config.decay
        if d is None:
            return base
        return exponential_decay_lr(base, self.step_count + 1, decay_start=d.decay_start,
                                    decay_interval=d.decay_interval, decay_base=d.decay_base)

    def step(self) -> None:
        """Apply one update from the accumulated gradients, then zero them."""
        lr = self.learning_rate
        self.step_count += 1
        a = self.config.adam
        for g in self.groups:
            hashed = g.kind == "hash"
            with self.timer.phase("optimizer/adam"):
                adam_step(g.params, g.grads, self._m[g.name], self._v[g.name], step=self.step_count,
                          learning_rate=lr, beta1=a.beta1, beta2=a.beta2, epsilon=a.epsilon,
                          l2_reg=0.0 if hashed else a.l2_reg, skip_zero_grad=hashed, zero_grads=True)
            if self._ema is not None:
                with self.timer.phase("optimizer/ema"):
                    ema_update(self._ema[g.name], g.params, decay=self.config.ema.decay, step=self.step_count)

    def inference_params(self) -> dict[str, wp.array] | None:
        """EMA copies by group name when an Ema is configured and has been updated, else None (use live)."""
        if self._ema is None or self.step_count == 0:
            return None
        return self._ema

    def state_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"step": self.step_count, "m": _host_copies(self._m), "v": _host_copies(self._v)}
        if self._ema is not None:
            out["ema"] = _host_copies(self._ema)
        return out

    def snapshot(self, *, include_optimizer: bool) -> dict[str, object] | None:
        """What a task snapshot stores: everything, or only the EMA copy used for inference (None if no EMA)."""
        if include_optimizer:
            return self.state_dict()
        if self._ema is None:
            return None
        return {"ema": _host_copies(self._ema)}  # no copies of the moments

    def restore(self, state: dict[str, object], step: int) -> None:
        """Inverse of :meth:`snapshot`; an EMA-only snapshot keeps ``step`` so the EMA stays in use."""
        full = "m" in state
        self.load_state_dict(state, params_only_ema=not full)
        if not full:
            self.step_count = step

    def load_state_dict(self, state: dict[str, object], *, params_only_ema: bool = False) -> None:
        """Restore moments, step count and EMA (``params_only_ema``: restore only the EMA copies)."""
        try:
            if not params_only_ema:
                self.step_count = int(state["step"])
                for k, a in self._m.items():
                    load_flat(a, np.asarray(state["m"][k]), f"adam m/{k}")
                for k, a in self._v.items():
                    load_flat(a, np.asarray(state["v"][k]), f"adam v/{k}")
            if self._ema is not None and "ema" in state:
                for k, a in self._ema.items():
                    load_flat(a, np.asarray(state["ema"][k]), f"ema/{k}")
        except (KeyError, TypeError) as e:
            raise SnapshotError(f"optimizer state is incomplete: missing {e}") from None
