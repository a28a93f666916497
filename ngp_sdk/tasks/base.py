"""The task protocol and the primitive registry."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

__all__ = ["Task", "TASKS", "register_task", "restore_training_state", "training_state"]


@runtime_checkable
class Task(Protocol):
    """What a primitive implements so that :class:`~ngp_sdk.session.Session` can drive it.

    ``state_dict``/``from_state`` round-trip everything a snapshot needs (config, parameters, metadata);
    ``from_state`` must not need the training data (a snapshot renders without it).
    """

    primitive: ClassVar[str]
    step_count: int

    def warmup(self) -> None:
        """Compile/load every kernel the training step uses, without changing any state."""

    def step(self) -> dict[str, float]:
        """One optimisation step; returns metrics (at least ``loss``)."""

    def render(self, **kwargs: Any) -> np.ndarray:
        """Render a view (float32 linear RGB ``[H, W, 3]`` for 2D/3D colour outputs)."""

    def evaluate(self) -> dict[str, float]:
        """Quality metrics against the training/eval data (e.g. ``psnr``)."""

    def config_dict(self) -> dict[str, Any]:
        """The tcnn-style JSON config."""

    def state_dict(self, *, include_optimizer: bool = False) -> dict[str, Any]:
        """Everything but the config needed to restore the task."""

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, Any], *, device: Any = None) -> Task:
        """Rebuild a task from a snapshot's config and state."""


TASKS: dict[str, type] = {}


def register_task(cls: type) -> type:
    """Class decorator: make ``cls`` available under ``cls.primitive``."""
    TASKS[cls.primitive] = cls
    return cls


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
