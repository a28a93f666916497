"""Background training: a thread that steps a session until stopped, with pause/resume.

The thread calls :meth:`Session.step`, which holds the session lock for the duration of one step, so
``render``/``evaluate``/``save`` called from other threads always see parameters between two steps (never a
half-applied update). Tasks that are not ready yet (e.g. a live NeRF below its minimum frame count) report
``ready() == False`` and the thread waits instead of stepping.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

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
    """Run ``session.step()`` on a daemon thread.

    Args:
        session: the session to train.
        idle_sleep: seconds to wait between readiness checks when the task is not ready.
    """

    def __init__(self, session: Session, *, idle_sleep: float = 0.05):
        self._session = session
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
        task = self._session.task
        samples = int(getattr(task, "samples_per_step", 0))
        try:
            while True:
                with self._cond:
                    while self._paused and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                ready = getattr(task, "ready", None)
                if ready is not None and not ready():
                    with self._cond:
                        self._waiting = True
                        self._cond.wait(self._idle_sleep)
                    continue
                t0 = time.perf_counter()
                self._session.step()
                t1 = time.perf_counter()
                with self._cond:
                    self._waiting = False
                    self._steps += 1
                    self._seconds += t1 - t0
                    self._window.append((t1, int(getattr(task, "samples_per_step", samples))))
                    if len(self._window) > 256:
                        del self._window[:128]
        except Exception as e:  # the thread must not die silently: keep the message for status()
            with self._cond:
                self._error = f"{type(e).__name__}: {e}"
