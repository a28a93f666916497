"""What a primitive implements so that :class:`~ngp_sdk.core.session.Session` and the bridge can drive it.

- :class:`Task` — one primitive's training state: step, render, evaluate, snapshot state, config.
- :class:`WorldRenderer` — a task that renders cameras posed in its data's world frame (the bridge's
  ``render`` and views).
- :class:`LiveTask` — a world renderer whose training data arrives at run time (frames in, frame statistics,
  capacity); the bridge's server accepts frames only for these.
- :class:`MeshExporter` — a task that can extract a surface mesh (``ngp export mesh``, the bridge's
  ``export_mesh``).

These are abstract base classes rather than structural protocols: a task declares what it is by inheriting, a
missing method fails when the class is instantiated, and the Session and the server dispatch on
``isinstance`` instead of probing attributes.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ngp_sdk.core.cameras import Intrinsics
    from ngp_sdk.core.meshes import Mesh

__all__ = ["Task", "WorldRenderer", "LiveTask", "MeshExporter", "training_state", "restore_training_state"]


class Task(abc.ABC):
    """One primitive's model and training state.

    ``state_dict``/``from_state`` round-trip everything a snapshot needs besides the config (parameters,
    metadata); ``from_state`` must not need the training data (a snapshot renders without it).

    Attributes:
        primitive: the registry name (``"image"``, ``"nerf"``, ...), stored in snapshots.
        step_count: optimisation steps taken so far.
    """

    primitive: ClassVar[str]
    step_count: int

    @abc.abstractmethod
    def warmup(self) -> None:
        """Compile/load every kernel the training step uses, without changing any state."""

    @abc.abstractmethod
    def step(self) -> dict[str, float]:
        """One optimisation step; returns metrics (at least ``loss``)."""

    @abc.abstractmethod
    def render(self, **kwargs: Any) -> np.ndarray:
        """Render a view (float32 linear RGB ``[H, W, 3]`` for colour outputs)."""

    @abc.abstractmethod
    def evaluate(self, **kwargs: Any) -> dict[str, float]:
        """Quality metrics against the training/eval data (e.g. ``psnr``); options are the task's own."""

    @abc.abstractmethod
    def config_dict(self) -> dict[str, Any]:
        """The tcnn-style JSON config."""

    @abc.abstractmethod
    def state_dict(self, *, include_optimizer: bool = False) -> dict[str, Any]:
        """Everything but the config needed to restore the task."""

    @classmethod
    @abc.abstractmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, Any], *, device: Any = None,
                   **kwargs: Any) -> Task:
        """Rebuild a task from a snapshot's config and state (``kwargs``: e.g. the training data)."""

    @property
    def samples_per_step(self) -> int:
        """Training samples one step processes (throughput figures); 0 when unknown."""
        return 0

    def ready(self) -> bool:
        """Whether a step can run now (background training waits while False)."""
        return True

    def status(self) -> dict[str, Any]:
        """Task facts merged into :meth:`Session.status` (e.g. frame counts); none by default."""
        return {}


class WorldRenderer(abc.ABC):
    """A task that renders cameras given in the world frame of its data."""

    @abc.abstractmethod
    def render_world(self, c2w: np.ndarray, intrinsics: Intrinsics, *, background: Any = None) -> Any:
        """Render a camera given in the world frame of the data (4x4 camera-to-world, OpenGL axes).

        Returns an object with ``rgb`` float ``[H, W, 3]`` (the data's code space, [0, 1]), ``opacity``
        ``[H, W]`` and ``depth`` ``[H, W]`` (z-depth in world units, 0 where nothing was hit).
        """


class LiveTask(Task, WorldRenderer):
    """A world renderer trained on data that arrives while it trains (a robot's camera, ``add_frame``).

    ``add_frame`` must be thread-safe with ``step`` and never wait for a step; ``ready`` turns True once enough
    data arrived; ``status`` reports frame statistics.
    """

    capacity: int

    @abc.abstractmethod
    def add_frame(self, image: np.ndarray, c2w: np.ndarray, intrinsics: Intrinsics,
                  depth: np.ndarray | None = None) -> int:
        """Add one posed frame; returns its index, or -1 when the task's buffer policy discarded it."""

    @property
    @abc.abstractmethod
    def frame_count(self) -> int:
        """Frames held (at most :attr:`capacity`)."""


class MeshExporter(abc.ABC):
    """A task that can extract a triangle mesh of what it learned."""

    @abc.abstractmethod
    def extract_mesh(self, *, resolution: int = 256, **kwargs: Any) -> Mesh:
        """Marching-cubes mesh in the data's frame (see each primitive for its iso-value)."""


def training_state(task: Any, *, include_optimizer: bool) -> dict[str, Any]:
    """The snapshot entries every grid+MLP task shares: ``params``, ``step`` and (optionally) ``optimizer``."""
    state: dict[str, Any] = {"params": task.field.state_dict(), "step": task.step_count}
    opt = task.optimizer.snapshot(include_optimizer=include_optimizer)
    if opt is not None:
        state["optimizer"] = opt
    return state


def restore_training_state(task: Any, state: dict[str, Any], params: Any, step: int) -> None:
    """Inverse of :func:`training_state` on a freshly built task (``params``/``step`` already validated)."""
    task.field.load_state_dict(params)
    if "optimizer" in state:
        task.optimizer.restore(state["optimizer"], step)
    task.step_count = step
