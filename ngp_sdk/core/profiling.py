"""Per-phase wall-clock breakdown of training steps (``PhaseTimer``), off by default and free when off.

A task owns one timer and hands it to the pieces it coordinates (field, optimizer, occupancy grid); each wraps
its phases in ``with timer.phase("name"):``. Disabled, ``phase`` returns one shared no-op context (a dict
lookup and an attribute check per phase). Enabled, each phase adds ``perf_counter`` time to its total; on a
CUDA device the timer synchronises at both ends of a phase so kernel time lands in the phase that launched it
(that serialisation makes an enabled timer slow the step down on a GPU; on the CPU Warp launches are
synchronous and the overhead is ~1 us per phase).

Nested phases are timed separately and reported by their own names; a phase's total includes its children.
Names use ``/`` for the hierarchy by convention (``"backward/encoding"``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import warp as wp

__all__ = ["PhaseTimer"]


class PhaseTimer:
    """Accumulates seconds per named phase.

    Args:
        device: the device whose kernels the phases launch (synchronised around phases when it is CUDA).
        enabled: start enabled.
    """

    def __init__(self, device=None, *, enabled: bool = False):
        self.device = device
        self.enabled = enabled
        self.totals: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.steps = 0

    def _sync(self) -> None:
        if self.device is not None and getattr(self.device, "is_cuda", False):
            wp.synchronize_device(self.device)

    @contextlib.contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - t0
            self.counts[name] = self.counts.get(name, 0) + 1

    def phase(self, name: str) -> contextlib.AbstractContextManager:
        """Context manager timing one occurrence of phase ``name`` (a no-op while disabled)."""
        if not self.enabled:
            return contextlib.nullcontext()
        return self._timed(name)

    def count_step(self) -> None:
        """Count one step (the denominator of :meth:`summary`'s per-step figures) while enabled."""
        if self.enabled:
            self.steps += 1

    def reset(self) -> None:
        """Forget every total."""
        self.totals.clear()
        self.counts.clear()
        self.steps = 0

    def summary(self, total: str | None = "step") -> dict[str, dict[str, float]]:
        """``{phase: {"ms_per_step", "calls_per_step", "share"}}`` sorted by time, ``share`` of phase ``total``.

        Args:
            total: the phase the shares are fractions of (e.g. the whole step); None = the sum of all phases.
        """
        steps = max(self.steps, 1)
        denom = self.totals.get(total, 0.0) if total is not None else sum(self.totals.values())
        out = {}
        for name, sec in sorted(self.totals.items(), key=lambda kv: -kv[1]):
            out[name] = {"ms_per_step": 1e3 * sec / steps, "calls_per_step": self.counts[name] / steps,
                         "share": sec / denom if denom > 0 else 0.0}
        return out
