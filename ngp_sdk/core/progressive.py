"""Progressive rendering for interactive viewers: a fast low-resolution frame first, full resolution when the camera
rests, and never a queue of stale cameras.

One :class:`ProgressiveRenderer` serves one viewer client. :meth:`~ProgressiveRenderer.submit` replaces the
pending request (the latest camera wins; the replaced one is counted as dropped). The worker thread renders a
preview whose pixel count is chosen from the measured render speed so that it takes about ``preview_seconds``,
publishes it, waits ``settle_seconds`` for a newer camera, then renders the full resolution in bands of rows,
checking between bands whether a newer camera arrived (then the full render is abandoned). While bands come in it
publishes the preview with the finished bands pasted over it every ``partial_seconds``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ngp_sdk.core.cameras import Intrinsics
from ngp_sdk.core.errors import ConfigError
from ngp_sdk.core.view import band_intrinsics

__all__ = ["ViewRequest", "ProgressiveRenderer", "FrameEvent"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewRequest:
    """One camera to show.

    Attributes:
        c2w: world camera-to-world ``[4, 4]`` (OpenGL axes).
        intrinsics: the full-resolution camera (the browser canvas size).
        options: render options passed through to the render callback (mode, exposure, ...); two are read
            here: ``progressive=False`` renders the full resolution at once (no preview, no bands: a primitive
            whose every render costs the same, e.g. a path-traced frame), ``repeat=True`` renders the camera
            again and again until a newer one comes (frames that keep training and accumulating), and
            ``refresh=True`` (the same camera again because the model changed) skips the preview and the partial
            frames: the picture shown stays sharp until the new full-resolution one replaces it; with
            ``rest_share=s`` it also rests between bands so that it takes at most the share ``s`` of the time
            (training goes on meanwhile), the rest cut short by a newer camera.
        issued: ``time.monotonic()`` when the camera was seen.
    """

    c2w: np.ndarray
    intrinsics: Intrinsics
    options: dict[str, Any] = field(default_factory=dict)
    issued: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class FrameEvent:
    """A published frame: ``kind`` is ``preview``, ``partial`` or ``full``; times are ``time.monotonic()``."""

    request: ViewRequest
    kind: str
    size: tuple[int, int]
    published: float

    @property
    def latency(self) -> float:
        """Seconds from the camera being seen to this frame being handed to the page."""
        return self.published - self.request.issued


class ProgressiveRenderer:
    """Render the latest requested camera progressively on a worker thread.

    Args:
        render: ``render(request, intrinsics) -> uint8 [h, w, 3]`` for ``intrinsics`` (a scaled or banded
            version of ``request.intrinsics``); called on the worker thread only.
        publish: ``publish(image uint8 [h, w, 3], request, kind)``; ``kind`` is ``preview``, ``partial`` or
            ``full``. Exceptions are logged, never raised into the worker.
        preview_seconds: target time of a preview render (sets its resolution).
        settle_seconds: how long the camera must rest after a preview before the full render starts.
        band_seconds: target time of one full-resolution band (how often a newer camera is noticed).
        partial_seconds: how often a full render in progress shows its finished bands.
        min_preview: the shorter preview side is at least this many pixels.
        max_events: frame events kept for :attr:`events`.
    """

    def __init__(self, render: Callable[[ViewRequest, Intrinsics], np.ndarray],
                 publish: Callable[[np.ndarray, ViewRequest, str], None], *, preview_seconds: float = 0.25,
                 settle_seconds: float = 0.15, band_seconds: float = 0.3, partial_seconds: float = 1.0,
                 min_preview: int = 24, max_events: int = 1000):
        if preview_seconds <= 0 or settle_seconds < 0 or band_seconds <= 0 or partial_seconds <= 0:
            raise ConfigError("preview_seconds, band_seconds and partial_seconds must be > 0, settle_seconds >= 0")
        self._render = render
        self._publish = publish
        self.preview_seconds = float(preview_seconds)
        self.settle_seconds = float(settle_seconds)
        self.band_seconds = float(band_seconds)
        self.partial_seconds = float(partial_seconds)
        self.min_preview = int(min_preview)
        self._pending: ViewRequest | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._seconds_per_pixel = 2e-5  # of previews (small renders: per-call overhead included)
        self._band_seconds_per_pixel = 2e-5  # of whole full-resolution frames
        self._max_events = max_events
        self.events: list[FrameEvent] = []
        self.dropped = 0
        self.abandoned = 0
        self._busy = False

    # -- control -------------------------------------------------------------------------------------------
    def start(self) -> ProgressiveRenderer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ngp-view-render", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, request: ViewRequest) -> None:
        """Show ``request`` next; a request still waiting is dropped (never queued)."""
        with self._cond:
            if self._pending is not None:
                self.dropped += 1
            self._pending = request
            self._cond.notify_all()

    @property
    def idle(self) -> bool:
        """True when nothing is waiting or being rendered (a refresh may be submitted without cutting one short)."""
        with self._cond:
            return self._pending is None and not self._busy

    @property
    def seconds_per_pixel(self) -> float:
        """The measured render time per pixel (an exponential average)."""
        return self._seconds_per_pixel

    def preview_intrinsics(self, intrinsics: Intrinsics) -> Intrinsics:
        """The preview camera for ``intrinsics``: as many pixels as ``preview_seconds`` allows, same aspect."""
        budget = self.preview_seconds / max(self._seconds_per_pixel, 1e-12)
        k = min(1.0, (budget / (intrinsics.width * intrinsics.height)) ** 0.5)
        short = min(intrinsics.width, intrinsics.height)
        k = max(k, min(1.0, self.min_preview / short))
        w = max(1, round(intrinsics.width * k))
        h = max(1, round(intrinsics.height * k))
        return intrinsics.resized(w, h)

    # -- worker --------------------------------------------------------------------------------------------
    def _take(self, timeout: float | None) -> ViewRequest | None:
        """The pending request (removed), waiting up to ``timeout`` (None: until one comes or stop)."""
        with self._cond:
            if self._pending is None and not self._stop and timeout is None:
                self._busy = False  # idle only while waiting for a new camera
            if self._pending is None and not self._stop:
                self._cond.wait_for(lambda: self._pending is not None or self._stop, timeout)
            req, self._pending = self._pending, None
            if req is not None:
                self._busy = True
            return None if self._stop else req

    def _newer(self) -> bool:
        with self._cond:
            return self._pending is not None or self._stop

    def _timed_render(self, request: ViewRequest, intr: Intrinsics, *, learn: bool) -> tuple[np.ndarray, float]:
        """Render and time; ``learn``: a preview, whose speed sizes the next preview (bands are timed apart: rows
        of empty background render much faster than rows through the scene, and big renders amortise overhead)."""
        t0 = time.perf_counter()
        img = self._render(request, intr)
        seconds = time.perf_counter() - t0
        if learn:
            spp = seconds / (intr.width * intr.height)
            self._seconds_per_pixel = 0.5 * self._seconds_per_pixel + 0.5 * spp
        return img, seconds

    def _emit(self, image: np.ndarray, request: ViewRequest, kind: str) -> None:
        try:
            self._publish(image, request, kind)
        except Exception:  # a closed page must not kill the worker
            log.exception("publishing a %s frame failed", kind)
            return
        self.events.append(FrameEvent(request, kind, (image.shape[1], image.shape[0]), time.monotonic()))
        del self.events[:-self._max_events]

    def _loop(self) -> None:
        req = None
        while True:
            req = req or self._take(None)
            if req is None:
                return
            try:
                newer = self._progress(req)
            except Exception:
                log.exception("rendering a view failed")
                newer = None
            if newer is None and req.options.get("repeat") and not self._newer():
                newer = dataclasses.replace(req, issued=time.monotonic())
            req = newer

    def _progress(self, req: ViewRequest) -> ViewRequest | None:
        """Preview, settle, full bands; returns a newer request that interrupted, or None when done."""
        full = req.intrinsics
        if not req.options.get("progressive", True):
            self._emit(self._timed_render(req, full, learn=True)[0], req, "full")
            return None
        refresh = bool(req.options.get("refresh"))
        if refresh:
            canvas = np.zeros((full.height, full.width, 3), np.uint8)
        else:
            prev_intr = self.preview_intrinsics(full)
            preview, _ = self._timed_render(req, prev_intr, learn=True)
            if (prev_intr.width, prev_intr.height) == (full.width, full.height):
                self._emit(preview, req, "full")
                return None
            self._emit(preview, req, "preview")
            newer = self._take(self.settle_seconds)
            if newer is not None:
                return newer
            if self._newer():
                return self._take(0)
            # full resolution, band by band, on top of the preview scaled up
            ys = (np.arange(full.height) * prev_intr.height // full.height)
            xs = (np.arange(full.width) * prev_intr.width // full.width)
            canvas = preview[ys][:, xs].copy()
        y, last_partial, spent = 0, time.monotonic(), 0.0
        spp = self._band_seconds_per_pixel
        while y < full.height:
            rows = int(self.band_seconds / max(spp * full.width, 1e-12))
            rows = min(full.height - y, max(8, 16384 // full.width, rows))
            canvas[y:y + rows], seconds = self._timed_render(req, band_intrinsics(full, y, rows), learn=False)
            spent += seconds
            y += rows
            share = req.options.get("rest_share") if refresh else None
            if share and y < full.height:
                with self._cond:
                    self._cond.wait_for(lambda: self._pending is not None or self._stop,
                                        seconds * (1.0 - share) / share)
            spp = spent / (y * full.width)  # this frame's speed so far sizes the next band
            if self._newer():
                self.abandoned += 1
                return self._take(0)
            if not refresh and y < full.height and time.monotonic() - last_partial >= self.partial_seconds:
                self._emit(canvas.copy(), req, "partial")
                last_partial = time.monotonic()
        self._band_seconds_per_pixel = spp  # the whole frame's speed sizes the next frame's first band
        self._emit(canvas, req, "full")
        return None
