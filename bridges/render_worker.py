"""A worker thread for the server's slow requests (renders, mesh exports, view renders).

The server's poll thread owns every client-facing socket; a render can take a second or more, and while it ran
on the poll thread no other request (a frame acknowledgement, a status) was answered. The worker takes jobs from
a bounded queue, runs them, and hands the finished multipart message back to the poll thread over an ``inproc``
PAIR socket, so each ZeroMQ socket is still used by exactly one thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import zmq

__all__ = ["RenderWorker"]

log = logging.getLogger(__name__)

#: How often an idle worker checks whether it should stop, in seconds.
_IDLE_POLL_S = 0.1


class RenderWorker:
    """Run jobs off the poll thread and send their results to ``address`` (an inproc PAIR the caller binds).

    Args:
        ctx: the server's ZeroMQ context (inproc endpoints are per context).
        address: ``inproc://...`` endpoint of the poll thread's PAIR socket, already bound.
        run: turns a job into the frames to send back (or None to send nothing); must not raise.
        max_pending: most jobs waiting; :meth:`submit` refuses more.
    """

    def __init__(self, ctx: zmq.Context, address: str, run: Callable[[Any], list[Any] | None], *,
                 max_pending: int = 8):
        self._ctx = ctx
        self._address = address
        self._run = run
        self._jobs: queue.Queue = queue.Queue(maxsize=max_pending)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def max_pending(self) -> int:
        return self._jobs.maxsize

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ngp-render", daemon=True)
            self._thread.start()

    def submit(self, job: Any) -> bool:
        """Queue a job; False when ``max_pending`` jobs are already waiting (the caller answers "busy")."""
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            return False
        return True

    def stop(self, timeout: float = 30.0) -> bool:
        """Ask the thread to finish its current job and exit; True when it did within ``timeout``."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        out = self._ctx.socket(zmq.PAIR)
        out.linger = 0
        out.connect(self._address)
        try:
            while not self._stop.is_set():
                try:
                    job = self._jobs.get(timeout=_IDLE_POLL_S)
                except queue.Empty:
                    continue
                frames = self._run(job)
                if frames is None:
                    continue
                try:
                    out.send_multipart(frames, zmq.NOBLOCK, copy=False)
                except zmq.ZMQError:  # the poll thread is gone (shutting down): drop the result
                    log.debug("render worker could not hand back a result")
        finally:
            out.close(0)
