"""The primitive registry and the task protocols: what the Session, the CLI and the bridge dispatch on."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from ngp_sdk import Session
from ngp_sdk.core.errors import ConfigError, SnapshotError
from ngp_sdk.core.registry import Primitive, get_primitive, primitives, register_primitive
from ngp_sdk.core.task import LiveTask, MeshExporter, Task, WorldRenderer


def test_built_in_primitives_are_registered_with_complete_tasks():
    names = [p.name for p in primitives()]
    assert names[:4] == ["image", "nerf", "nrc", "sdf"]
    for spec in primitives():
        assert issubclass(spec.task, Task)
        assert not getattr(spec.task, "__abstractmethods__", None), spec.name  # every protocol method implemented
        assert spec.task.primitive == spec.name
    assert issubclass(get_primitive("nerf").task, (WorldRenderer, MeshExporter))
    assert issubclass(get_primitive("sdf").task, MeshExporter)
    live = get_primitive("nerf").create_live
    assert live is not None and get_primitive("image").create_live is None


def test_unknown_primitive_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown primitive 'nope'.*image, nerf, nrc, sdf"):
        get_primitive("nope")
    with pytest.raises(ConfigError, match="no live mode"):
        Session.live("image")


def test_a_task_missing_a_protocol_method_cannot_be_built():
    class Half(Task):
        primitive = "half"

        def step(self) -> dict[str, float]:
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Half()
    with pytest.raises(ConfigError, match="Task"):
        Session(object())  # type: ignore[arg-type]


class _Counter(Task):
    """A minimal primitive: counts steps; its state is one number."""

    primitive = "counter"

    def __init__(self, start: int = 0, device: Any = None):
        self.step_count = 0
        self.value = start

    @classmethod
    def from_data(cls, start: int = 0, *, config: Any = None, device: Any = None) -> _Counter:
        return cls(start)

    def warmup(self) -> None:
        pass

    def step(self) -> dict[str, float]:
        self.value += 1
        self.step_count += 1
        return {"loss": 1.0 / self.value}

    def render(self, **kwargs: Any) -> np.ndarray:
        return np.full((2, 2, 3), self.value, np.float32)

    def evaluate(self) -> dict[str, float]:
        return {"value": float(self.value)}

    def config_dict(self) -> dict[str, Any]:
        return {}

    def state_dict(self, *, include_optimizer: bool = False) -> dict[str, Any]:
        return {"value": self.value}

    @classmethod
    def from_state(cls, config, state, *, device=None, **kwargs) -> _Counter:
        t = cls(int(state["value"]))
        return t


def test_a_new_primitive_is_one_registry_entry(tmp_path):
    register_primitive(Primitive(name="counter", summary="counts", task=_Counter, create=_Counter.from_data))
    s = Session.create("counter", 5)
    r = s.train(steps=3)
    assert r.steps == 3 and s.evaluate() == {"value": 8.0} and s.status()["primitive"] == "counter"
    loaded = Session.load(s.save(tmp_path / "c.msgpack"))
    assert loaded.primitive == "counter" and loaded.render()[0, 0, 0] == 8.0
    with pytest.raises(ConfigError, match="already registered"):
        register_primitive(Primitive(name="counter", summary="", task=Task, create=_Counter.from_data))
    with pytest.raises(SnapshotError, match="cannot continue as a live session"):
        Session.live_from_snapshot(tmp_path / "c.msgpack")


def test_snapshot_of_an_unknown_primitive_is_a_snapshot_error(tmp_path):
    from ngp_sdk.core.snapshot import write_snapshot

    path = write_snapshot(tmp_path / "x.msgpack", {"primitive": "teapot", "config": {}, "state": {}})
    with pytest.raises(SnapshotError, match="unknown primitive 'teapot'"):
        Session.load(path)


def test_live_nerf_is_a_live_task(device):
    s = Session.live_nerf(device=device, capacity=4)
    assert isinstance(s.task, LiveTask) and s.task.capacity == 4 and s.task.frame_count == 0
    assert not s.task.ready() and s.status()["frame_count"] == 0


def test_the_cli_lists_every_registered_primitive():
    r = subprocess.run([sys.executable, "-m", "ngp_sdk.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for name in ("image", "nerf", "sdf", "render", "export", "demo"):
        assert name in r.stdout
