"""Background training: a thread that calls a step function until stopped, with pause/resume.

The trainer knows nothing of sessions or tasks: it is given ``step`` (the Session passes its own
:meth:`~ngp_sdk.core.session.Session.step`, which holds the session lock for one step, so
``render``/``evaluate``/``save`` from other threads always see parameters between two steps), ``ready`` (a
live task below its minimum frame count returns False and the thread waits instead of stepping) and
``samples_per_step`` (for the throughput figure).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BackgroundTrainer", "TrainerStatus"]


@dataclass(frozen=True)
class TrainerStatus:
    """A consistent snapshot of the trainer's state.

    Attributes:
        state: ``"stopped"``, ``"waiting"`` (task not ready), ``"training"`` or ``"paused"``.
        steps: steps taken by this trainer.
        seconds: seconds spent inside steps.
        samples_per_second: training throughput over the last few seconds.
        error: message of the exception that stopped the thread, if any.
    """

    state: str
    steps: int
    seconds: float
    samples_per_second: float
    error: str | None


class BackgroundTrainer:
    """Run ``step()`` on a daemon thread.

    Args:
        step: one training step (returns its metrics).
        ready: whether a step can run now; None = always.
        samples_per_step: training samples per step, read after each step (throughput); None = 0.
        idle_sleep: seconds to wait between readiness checks when not ready.
    """

    def __init__(self, step: Callable[[], object], *, ready: Callable[[], bool] | None = None,
                 samples_per_step: Callable[[], int] | None = None, idle_sleep: float = 0.05):
        self._step = step
        self._ready = ready or (lambda: True)
        self._samples = samples_per_step or (lambda: 0)
        self._idle_sleep = idle_sleep
        self._cond = threading.Condition()
        self._paused = False
        self._stop = False
        self._waiting = False
        self._steps = 0
        self._seconds = 0.0
        self._window: list[tuple[float, int]] = []  # (time, samples) of recent steps
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name="ngp-trainer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def pause(self) -> None:
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the thread to finish its current step and exit; wait up to ``timeout`` seconds."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def status(self) -> TrainerStatus:
        with self._cond:
            now = time.perf_counter()
            recent = [(t, n) for t, n in self._window if now - t <= 5.0]
            rate = 0.0
            if len(recent) >= 2:
                span = recent[-1][0] - recent[0][0]
                rate = sum(n for _, n in recent[1:]) / span if span > 0 else 0.0
            if not self._thread.is_alive():
                state = "stopped"
            elif self._paused:
                state = "paused"
            elif self._waiting:
                state = "waiting"
            else:
                state = "training"
            return TrainerStatus(state=state, steps=self._steps, seconds=self._seconds,
                                 samples_per_second=rate, error=self._error)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._paused and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                if not self._ready():
                    with self._cond:
                        self._waiting = True
                        self._cond.wait(self._idle_sleep)
                    continue
                t0 = time.perf_counter()
                self._step()
                t1 = time.perf_counter()
                with self._cond:
                    self._waiting = False
                    self._steps += 1
                    self._seconds += t1 - t0
                    self._window.append((t1, int(self._samples())))
                    if len(self._window) > 256:
                        del self._window[:128]
        except Exception as e:  # the thread must not die silently: keep the message for status()
            with self._cond:
                self._error = f"{type(e).__name__}: {e}"
