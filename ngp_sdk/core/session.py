"""The headless :class:`Session`: owns one task, drives training, renders, evaluates and snapshots.

A Session is a coordinator: everything primitive-specific lives in the task it owns (built and restored
through :mod:`ngp_sdk.core.registry`), so the Session never switches on a mode and never imports a primitive.
``step`` and ``render`` take one lock, so a render never sees half an update; the lock is handed over fairly
between the background trainer and everybody else (see :attr:`Session.training_share`).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ngp_sdk.core.errors import ConfigError, SnapshotError
from ngp_sdk.core.progress import progress_bar
from ngp_sdk.core.registry import get_primitive
from ngp_sdk.core.snapshot import read_snapshot, write_snapshot
from ngp_sdk.core.task import Task
from ngp_sdk.core.trainer import BackgroundTrainer

__all__ = ["Session", "TrainResult"]


#: Most seconds of training the background trainer may claim back, before others get the session again, after
#: they held it (a long render is followed by its share of training, up to this, before the next render starts).
MAX_TRAINING_CLAIM_S = 5.0
#: Default and largest :attr:`Session.training_share`.
DEFAULT_TRAINING_SHARE, MAX_TRAINING_SHARE = 0.5, 0.9
#: A trainer that finished a step this recently (seconds) is about to start the next one: others let it.
_TRAINER_GAP_S = 0.05


def check_training_share(share: float) -> float:
    """``share`` as a float when it is a valid :attr:`Session.training_share` (in ``[0, MAX_TRAINING_SHARE]``).

    Raises:
        ConfigError: anything else (NaN included).
    """
    if not 0.0 <= float(share) <= MAX_TRAINING_SHARE:
        raise ConfigError(f"training_share must be a number in [0, {MAX_TRAINING_SHARE}], got {share}")
    return float(share)


class _SessionLock:
    """The session's re-entrant lock, shared fairly between the background trainer and everybody else.

    A plain lock released and re-taken at once by a busy thread is almost never won by a thread waiting for it
    (the waiter must first be scheduled): a render waited for dozens of training steps, or training for a queue
    of renders. Here the time others hold the lock becomes the trainer's *claim*: while the claim is positive the
    trainer goes first, and while it is used up anybody waiting goes first. So training keeps about half of the
    time when renders are asked back to back, and a render waits for the step in progress plus at most the
    claim (:data:`MAX_TRAINING_CLAIM_S`). ``training_share`` sets the claim: each second others held the lock
    earns the trainer ``share / (1 - share)`` seconds (0.5: one second; 0: none, the trainer only takes the
    gaps between others' requests).
    """

    def __init__(self, training_share: float = DEFAULT_TRAINING_SHARE):
        self.training_share = training_share
        self._cv = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._since = 0.0
        self._others_waiting = 0
        self._trainer: int | None = None  # thread id of the background trainer
        self._trainer_waiting = False
        self._trainer_left = -math.inf  # when the trainer last released the lock
        self._claim = 0.0

    @property
    def training_share(self) -> float:
        return self._share

    @training_share.setter
    def training_share(self, share: float) -> None:
        self._share = check_training_share(share)

    def _trainer_first(self) -> bool:
        soon = self._trainer_waiting or time.perf_counter() - self._trainer_left < _TRAINER_GAP_S
        return self._claim > 0.0 and soon

    def __enter__(self) -> _SessionLock:
        me = threading.get_ident()
        with self._cv:
            if self._owner == me:
                self._depth += 1
                return self
            self._others_waiting += 1
            try:
                while self._owner is not None or self._trainer_first():
                    self._cv.wait(_TRAINER_GAP_S)
            finally:
                self._others_waiting -= 1
            self._owner, self._depth, self._since = me, 1, time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._cv:
            self._depth -= 1
            if self._depth:
                return
            now = time.perf_counter()
            if self._owner == self._trainer:
                self._claim = max(self._claim - (now - self._since), 0.0)
                self._trainer_left = now
            else:
                earned = (now - self._since) * self._share / (1.0 - self._share)
                self._claim = min(self._claim + earned, MAX_TRAINING_CLAIM_S)
            self._owner = None
            self._cv.notify_all()

    @contextlib.contextmanager
    def trainer_turn(self) -> Iterator[None]:
        """Hold the lock for one background training step: ``with lock.trainer_turn(): ...``."""
        me = threading.get_ident()
        with self._cv:
            self._trainer, self._trainer_waiting = me, True
            try:
                while self._owner is not None or (self._others_waiting and self._claim <= 0.0):
                    self._cv.wait()
            finally:
                self._trainer_waiting = False
            self._owner, self._depth, self._since = me, 1, time.perf_counter()
        try:
            yield
        finally:
            self.__exit__()


#: How often ``Session.train``'s ``progress_extra`` is asked for its figures (seconds of training).
PROGRESS_EXTRA_PERIOD_S = 5.0


@dataclass(frozen=True)
class TrainResult:
    """Summary of one :meth:`Session.train` call.

    Attributes:
        steps: optimisation steps taken in this call.
        seconds: wall-clock seconds spent in training steps.
        loss: mean loss of the last step.
        samples_per_second: training samples per second over the call.
        interrupted: True when stopped by Ctrl-C (the session stays usable and can be saved).
    """

    steps: int
    seconds: float
    loss: float
    samples_per_second: float
    interrupted: bool = False


class Session:
    """Own one task and drive it.

    Args:
        task: a :class:`~ngp_sdk.core.task.Task`.

    Raises:
        ConfigError: ``task`` is not a Task.
    """

    def __init__(self, task: Task):
        if not isinstance(task, Task):
            raise ConfigError(f"a Session drives a ngp_sdk.core.task.Task, got {type(task).__name__}")
        self.task = task
        self.metrics: dict[str, float] = {}
        self._lock = _SessionLock()
        self._train_seconds = 0.0
        self._trainer = None

    # -- construction --------------------------------------------------------------------------------------
    @classmethod
    def create(cls, primitive: str, *args: Any, **kwargs: Any) -> Session:
        """A session around a new task of the registered ``primitive`` (arguments: see that primitive).

        Raises:
            ConfigError: unknown primitive, or what the primitive raises for bad arguments.
        """
        return cls(get_primitive(primitive).create(*args, **kwargs))

    @classmethod
    def live(cls, primitive: str, config: Any = None, *, device: Any = None, **options: Any) -> Session:
        """A session whose training data arrives at run time (``session.task.add_frame(...)``).

        Raises:
            ConfigError: unknown primitive, one without a live mode, or bad options.
        """
        spec = get_primitive(primitive)
        if spec.create_live is None:
            raise ConfigError(f"the {primitive!r} primitive has no live mode")
        return cls(spec.create_live(config, device=device, **options))

    @classmethod
    def live_from_snapshot(cls, path: str | os.PathLike, *, device: Any = None, **options: Any) -> Session:
        """A live session continuing the model of a snapshot, with no live data yet.

        Raises:
            SnapshotError: unreadable or corrupt snapshot, or its primitive has no live mode.
        """
        doc = read_snapshot(path)
        primitive = doc.get("primitive")
        try:
            spec = get_primitive(primitive) if isinstance(primitive, str) else None
        except ConfigError:
            spec = None
        if spec is None or spec.live_from_snapshot is None or not isinstance(doc.get("config"), dict):
            raise SnapshotError(f"{path}: a {primitive!r} snapshot cannot continue as a live session")
        try:
            task = spec.live_from_snapshot(doc["config"], doc.get("state"), device=device, **options)
        except (ConfigError, TypeError, AttributeError) as e:
            raise SnapshotError(f"{path}: invalid {primitive} snapshot: {e}") from None
        return cls(task)

    @classmethod
    def image(cls, image: Any, *, config: Any = None, device: Any = None) -> Session:
        """A session that fits an image: a path (PNG/JPEG/EXR), an ``ImageData`` or an ``[H, W, 3]``
        uint8/float array; ``config``: an ``ImageConfig``, a dict or a JSON path (default: the built-in base).
        """
        return cls.create("image", image, config=config, device=device)

    @classmethod
    def nrc(cls, scene: Any = None, *, config: Any = None, device: Any = None, **kwargs: Any) -> Session:
        """A session rendering ``scene`` with a neural radiance cache trained online (``step()`` = one frame).

        Args:
            scene: a Mitsuba 3 XML path, a scene description dict, a ``Scene``, or None (the Cornell box).
            config: an ``NrcConfig``, a dict or a JSON path.
            device: Warp device (``None`` = Warp's current).
            kwargs: e.g. ``reference=`` (a ground-truth image for ``evaluate``).
        """
        return cls.create("nrc", scene, config=config, device=device, **kwargs)

    @classmethod
    def sdf(cls, mesh: Any, *, config: Any = None, device: Any = None) -> Session:
        """A session that fits a signed distance function to a triangle mesh.

        Args:
            mesh: an OBJ/PLY/STL path or a loaded :class:`~ngp_sdk.core.meshes.TriangleMesh`.
            config: an ``SdfConfig``, a dict or a JSON path (default: instant-ngp's).
            device: Warp device (``None`` = Warp's current).
        """
        return cls.create("sdf", mesh, config=config, device=device)

    @classmethod
    def nerf(cls, data: Any, *, config: Any = None, downscale: int = 1, device: Any = None) -> Session:
        """A session that fits a NeRF to posed photos.

        Args:
            data: a ``transforms*.json`` file, a dataset folder (its ``transforms_train.json`` when it has
                split files) or a loaded ``NerfDataset``.
            config: a ``NerfConfig``, a dict or a JSON path (default: instant-ngp's).
            downscale: integer image shrink factor when ``data`` is a path.
            device: Warp device (``None`` = Warp's current).
        """
        return cls.create("nerf", data, config=config, downscale=downscale, device=device)

    @classmethod
    def live_nerf(cls, config: Any = None, *, aabb_scale: int = 1, scale: float = 0.33,
                  offset: tuple[float, float, float] = (0.5, 0.5, 0.5), capacity: int = 256, min_frames: int = 1,
                  policy: str = "ring", max_resolution: tuple[int, int] | None = None,
                  device: Any = None) -> Session:
        """A NeRF session whose training frames arrive at run time (``session.task.add_frame(...)``).

        Args:
            config: a ``NerfConfig``, a dict or a JSON path (default: instant-ngp's).
            aabb_scale: side of the internal scene box (power of two, 1..128).
            scale: NeRF world units -> internal units (instant-ngp ``scale``).
            offset: added after scaling (instant-ngp ``offset``).
            capacity: most frames kept for training (a preallocated buffer).
            min_frames: frames needed before background training starts stepping.
            policy: ``"ring"`` (a full buffer replaces the oldest frame) or ``"keyframes"`` (keeps frames whose
                poses differ most; see :mod:`ngp_sdk.nerf.live`).
            max_resolution: ``(width, height)`` bound of the frames; default: the first frame's size.
            device: Warp device (``None`` = Warp's current).
        """
        return cls.live("nerf", config, device=device, aabb_scale=aabb_scale, scale=scale, offset=offset,
                        capacity=capacity, min_frames=min_frames, policy=policy, max_resolution=max_resolution)

    @classmethod
    def live_nerf_from_snapshot(cls, path: str | os.PathLike, *, device: Any = None, **live: Any) -> Session:
        """A live NeRF session continuing the model of a NeRF snapshot, with an empty frame buffer.

        Args:
            path: a NeRF snapshot.
            device: Warp device.
            **live: ``capacity``, ``min_frames``, ``policy``, ``max_resolution`` (see :meth:`live_nerf`).

        Raises:
            SnapshotError: unreadable, corrupt or not a NeRF snapshot.
        """
        doc = read_snapshot(path)
        if doc.get("primitive") != "nerf":
            raise SnapshotError(f"{path}: not a NeRF snapshot (primitive {doc.get('primitive')!r})")
        return cls.live_from_snapshot(path, device=device, **live)

    @property
    def training_share(self) -> float:
        """The share of the session's time background training keeps while others (renders, evaluations, saves)
        ask for it back to back, in [0, :data:`MAX_TRAINING_SHARE`] (default 0.5; like the ``train_util`` of
        nerfstudio's viewer).

        A render waits for the step in progress plus, after others held the session for ``t`` seconds, about
        ``t * share / (1 - share)`` seconds of training (at most :data:`MAX_TRAINING_CLAIM_S`). 0 favours render
        latency (training only fills the gaps between requests); higher values favour training.
        """
        return self._lock.training_share

    @training_share.setter
    def training_share(self, share: float) -> None:
        self._lock.training_share = share

    def locked(self) -> _SessionLock:
        """The lock ``step``/``render`` hold: ``with session.locked():`` sees the model between two steps
        (background training gives way to it after the step in progress)."""
        return self._lock

    @property
    def primitive(self) -> str:
        return self.task.primitive

    @property
    def step_count(self) -> int:
        return self.task.step_count

    # -- training ------------------------------------------------------------------------------------------
    def warmup(self) -> None:
        """Compile/load the kernels of a training step (first use of a config takes seconds)."""
        with self._lock:
            self.task.warmup()

    def step(self) -> dict[str, float]:
        """One training step; returns its metrics."""
        with self._lock:
            m = self.task.step()
        self.metrics.update(m)
        return m

    def train(
        self,
        steps: int | None = None,
        seconds: float | None = None,
        *,
        callback: Callable[[Session, dict[str, float]], bool | None] | None = None,
        progress: bool = False,
        progress_extra: Callable[[Session], dict[str, Any]] | None = None,
    ) -> TrainResult:
        """Train until ``steps`` steps or ``seconds`` of training have passed (whichever comes first).

        Kernels are compiled before the clock starts (:meth:`warmup`). Ctrl-C stops the loop cleanly and
        returns with ``interrupted=True``, so the caller can still save a snapshot.

        Args:
            steps: number of steps; None = unbounded (then ``seconds`` is required).
            seconds: training-time budget in seconds.
            callback: called after every step with ``(session, metrics)``; returning False stops training.
            progress: show a progress bar on stderr: ``37/60 s`` (or ``120/500 steps``), the step, the loss.
            progress_extra: ``progress_extra(session) -> {name: value}`` shown on the bar too (e.g. a PSNR
                estimate), called every :data:`PROGRESS_EXTRA_PERIOD_S` seconds of training; its own time is
                not counted as training time.
        """
        if steps is None and seconds is None:
            raise ConfigError("train() needs steps or seconds")
        if steps is not None and steps < 0 or seconds is not None and not seconds >= 0:
            raise ConfigError("steps and seconds must be >= 0")
        self.warmup()
        bar = progress_bar(steps=steps, seconds=seconds) if progress else None
        extra: dict[str, Any] = {}
        extra_at = 0.0  # the first figures after PROGRESS_EXTRA_PERIOD_S of training
        done, elapsed, loss, interrupted = 0, 0.0, math.nan, False
        samples = self.task.samples_per_step
        try:
            t0 = time.perf_counter()
            step_time = 0.0
            # with a time budget, stop before a step that would end past it (so seconds is never exceeded)
            while (steps is None or done < steps) and (seconds is None or elapsed + step_time <= seconds):
                m = self.step()
                done += 1
                loss = m.get("loss", math.nan)
                now = time.perf_counter() - t0
                step_time = now - elapsed
                if bar is not None:
                    if progress_extra is not None and now - extra_at >= PROGRESS_EXTRA_PERIOD_S:
                        extra, extra_at = progress_extra(self), now
                        t0 += time.perf_counter() - t0 - now  # the bar's figures do not eat the budget
                    bar.update(1 if steps is not None else min(now, seconds) - bar.n)
                    bar.set_postfix_str(", ".join([f"step {self.step_count}", f"loss {loss:.3g}",
                                                   *(f"{k} {v}" for k, v in extra.items())]), refresh=False)
                elapsed = now
                if callback is not None and callback(self, m) is False:
                    break
        except KeyboardInterrupt:
            interrupted = True
            elapsed = time.perf_counter() - t0
        finally:
            if bar is not None:
                bar.close()
        self._train_seconds += elapsed
        rate = samples * done / elapsed if elapsed > 0 else 0.0
        self.metrics.update({"loss": loss, "samples_per_second": rate})
        return TrainResult(steps=done, seconds=elapsed, loss=loss, samples_per_second=rate, interrupted=interrupted)

    # -- background training -------------------------------------------------------------------------------
    def start(self) -> None:
        """Train on a background thread until :meth:`stop`; ``render``/``evaluate``/``save`` stay safe to call.

        Raises:
            ConfigError: if background training is already running.
        """
        if self._trainer is not None and self._trainer.alive:
            raise ConfigError("background training is already running; stop() it first")
        self.warmup()
        self._trainer = BackgroundTrainer(self._background_step, ready=self.task.ready,
                                          samples_per_step=lambda: self.task.samples_per_step)
        self._trainer.start()

    def _background_step(self) -> dict[str, float]:
        """One step of the background trainer, taken under the fair hand-over of :class:`_SessionLock`."""
        with self._lock.trainer_turn():
            return self.step()

    def pause(self) -> None:
        """Pause background training after the current step (no-op when not running)."""
        if self._trainer is not None:
            self._trainer.pause()

    def resume(self) -> None:
        """Resume paused background training."""
        if self._trainer is not None:
            self._trainer.resume()

    def stop(self) -> None:
        """Stop background training (waits for the current step to finish)."""
        if self._trainer is not None:
            self._trainer.stop()

    def status(self) -> dict[str, Any]:
        """Step, last loss, background-training state and throughput, plus task facts (e.g. frame count)."""
        out: dict[str, Any] = {"primitive": self.primitive, "step": self.step_count,
                               "loss": float(self.metrics.get("loss", math.nan))}
        if self._trainer is not None:
            st = self._trainer.status()
            out.update(state=st.state, samples_per_second=st.samples_per_second, error=st.error)
        else:
            out.update(state="idle", samples_per_second=float(self.metrics.get("samples_per_second", 0.0)),
                       error=None)
        out.update(self.task.status())
        return out

    # -- inference -----------------------------------------------------------------------------------------
    def render(self, **kwargs: Any) -> np.ndarray:
        """Render with the task's inference parameters (EMA where configured); see the task for arguments."""
        with self._lock:
            return self.task.render(**kwargs)

    def evaluate(self, **kwargs: Any) -> dict[str, float]:
        """Quality metrics (e.g. PSNR) of the task against its data; see the task for arguments."""
        with self._lock:
            m = self.task.evaluate(**kwargs)
        self.metrics.update(m)
        return m

    # -- snapshots -----------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, include_optimizer: bool = False) -> Path:
        """Write a snapshot (``.ingp`` = zlib msgpack, else msgpack) atomically."""
        with self._lock:
            payload = {
                "primitive": self.task.primitive,
                "config": self.task.config_dict(),
                "step": self.task.step_count,
                "metrics": {k: float(v) for k, v in self.metrics.items()},
                "state": self.task.state_dict(include_optimizer=include_optimizer),
            }
        return write_snapshot(path, payload)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: Any = None, **task_kwargs: Any) -> Session:
        """Restore a session from a snapshot (``task_kwargs`` go to the task, e.g. ``image=`` to keep training)."""
        doc = read_snapshot(path)
        primitive = doc.get("primitive")
        try:
            spec = get_primitive(primitive if isinstance(primitive, str) else repr(primitive))
        except ConfigError as e:
            raise SnapshotError(f"{path}: {e}") from None
        if not isinstance(doc.get("config"), dict) or not isinstance(doc.get("state"), dict):
            raise SnapshotError(f"{path}: snapshot lacks its config or state")
        try:
            task = spec.task.from_state(doc["config"], doc["state"], device=device, **task_kwargs)
        except ConfigError as e:
            raise SnapshotError(f"{path}: invalid config in snapshot: {e}") from None
        session = cls(task)
        metrics = doc.get("metrics")
        if isinstance(metrics, dict):
            session.metrics.update({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
        return session
