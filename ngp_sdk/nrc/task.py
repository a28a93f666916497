"""The NRC primitive as a :class:`~ngp_sdk.core.task.Task`: one step renders one frame and trains the cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ngp_sdk.core.config import config_from
from ngp_sdk.core.errors import DataError, SnapshotError
from ngp_sdk.core.task import Task, restore_training_state, training_state
from ngp_sdk.nrc.config import NrcConfig
from ngp_sdk.nrc.renderer import NrcRenderer, relative_mse, warm_up
from ngp_sdk.nrc.scene import BUILTIN_SCENES, Scene, build_scene, cornell_box

__all__ = ["NrcTask", "load_scene"]


def load_scene(scene: Any = None, *, width: int | None = None, height: int | None = None) -> Scene:
    """A :class:`Scene` from None (the built-in Cornell box), a built-in scene's name (``cornell-box``,
    ``glossy-box``), a Mitsuba XML path, a description dict or a Scene; ``width``/``height`` override the film.

    Raises:
        SceneError: unreadable or unsupported scene.
    """
    if scene is None:
        s = build_scene(cornell_box(), name="cornell-box")
    elif isinstance(scene, Scene):
        s = scene
    elif isinstance(scene, dict):
        s = build_scene(scene)
    elif isinstance(scene, str) and scene in BUILTIN_SCENES and not Path(scene).exists():
        s = build_scene(BUILTIN_SCENES[scene](), name=scene)
    elif isinstance(scene, (str, os.PathLike)):
        from ngp_sdk.nrc.mitsuba_xml import load_mitsuba_xml

        s = load_mitsuba_xml(Path(scene))
    else:
        raise DataError(f"a scene is a Mitsuba XML path, a description dict or a Scene, not {type(scene).__name__}")
    if width is not None or height is not None:
        s = s.with_film(width or s.sensor.width, height or s.sensor.height)
    return s


class NrcTask(Task):
    """Render a scene with a neural radiance cache trained online: ``step()`` = one frame (one path per pixel).

    Args:
        config: cache configuration.
        scene: the scene.
        device: Warp device (``None`` = current, resolved once).
        reference: optional float32 ``[H, W, 3]`` ground truth for :meth:`evaluate`.
    """

    primitive: ClassVar[str] = "nrc"

    def __init__(self, config: NrcConfig, scene: Scene, *, device: Any = None, reference: np.ndarray | None = None):
        self.config = config
        self.scene_data = scene
        self.renderer = NrcRenderer(scene, config, device=device, seed=config.training.seed)
        self.device = self.renderer.device
        self.reference = reference
        self.last_frame: np.ndarray | None = None
        self.step_count = 0

    @classmethod
    def from_data(cls, scene: Any = None, *, config: Any = None, device: Any = None, **kwargs: Any) -> NrcTask:
        """A task for ``scene`` (None = the Cornell box; an XML path, a dict or a Scene)."""
        return cls(config_from(NrcConfig, config, primitive="nrc"), load_scene(scene), device=device, **kwargs)

    @property
    def cache(self):
        return self.renderer.cache

    @property
    def field(self):
        """The cache's parameters (what :func:`~ngp_sdk.core.task.training_state` snapshots)."""
        return self.renderer.cache

    @property
    def optimizer(self):
        return self.renderer.cache.optimizer

    def warmup(self) -> None:
        """Compile the kernels of a frame (a render without training on a throw-away renderer)."""
        warm_up(self.scene_data, self.config, self.device)

    def step(self) -> dict[str, float]:
        self.last_frame = self.renderer.render_frame(train=True)
        self.step_count += 1
        return {"loss": self.renderer.last_loss}

    @property
    def samples_per_step(self) -> int:
        return self.renderer.width * self.renderer.height

    def render(self, *, frames: int = 1, train: bool = False, accumulate: bool = False, **_: Any) -> np.ndarray:
        """``frames`` new frames with the cache (training it when ``train``); the last, or their mean."""
        return self.renderer.render(frames, train=train, accumulate=accumulate)

    def evaluate(self, *, frames: int = 1, **_: Any) -> dict[str, float]:
        """Relative MSE of a fresh cached frame against :attr:`reference` (needs one)."""
        if self.reference is None:
            raise DataError("evaluate needs a reference image (NrcTask(reference=...) or `ngp nrc reference`)")
        errs = [relative_mse(self.renderer.render_frame(train=False), self.reference) for _ in range(frames)]
        return {"relmse": float(np.median(errs))}

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def state_dict(self, *, include_optimizer: bool = False) -> dict[str, Any]:
        return {"film": [self.renderer.width, self.renderer.height],
                **training_state(self, include_optimizer=include_optimizer)}

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, Any], *, device: Any = None,
                   scene: Any = None, **kwargs: Any) -> NrcTask:
        """Restore a cache for ``scene`` (default: the Cornell box at the snapshot's film size)."""
        cfg = NrcConfig.from_dict(config)
        try:
            params = state["params"]
            step = int(state.get("step", 0))
            film = [int(v) for v in state.get("film", (256, 256))]
        except (KeyError, TypeError, ValueError) as e:
            raise SnapshotError(f"nrc snapshot state is incomplete ({e})") from None
        task = cls(cfg, load_scene(scene, width=film[0], height=film[1]) if scene is None or isinstance(scene, str)
                   else load_scene(scene), device=device, **kwargs)
        restore_training_state(task, state, params, step)
        return task
