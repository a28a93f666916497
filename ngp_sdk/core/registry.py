"""The primitive registry: how the Session, snapshots, the ``ngp`` command and the bridge find a primitive.

Each primitive package (``ngp_sdk.image``, ``ngp_sdk.nerf``, ``ngp_sdk.sdf``) registers one
:class:`Primitive` when it is imported; ``import ngp_sdk`` imports the built-in ones. Packages outside the SDK
add theirs through the entry-point group ``ngp_sdk.primitives`` (an entry point names a module whose import
registers, or a :class:`Primitive` object), loaded the first time the registry is asked for a primitive.
Core code looks primitives up by name here and never imports a primitive package.

Adding a primitive = one package + one :func:`register_primitive` call::

    register_primitive(Primitive(name="mine", summary="...", task=MyTask, create=MyTask.from_data))
    Session.create("mine", data)            # a Session around MyTask.from_data(data)
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ngp_sdk.core.errors import ConfigError
from ngp_sdk.core.task import LiveTask, Task

__all__ = ["Demo", "Primitive", "PLUGIN_GROUP", "register_primitive", "get_primitive", "primitives"]

#: Entry-point group of primitives packaged outside the SDK.
PLUGIN_GROUP = "ngp_sdk.primitives"


@dataclass(frozen=True, kw_only=True)
class Demo:
    """A primitive's ``ngp demo``: data made on the spot, a short training run, pictures.

    Attributes:
        run: ``run(out_dir, *, seconds, device, progress, **options) -> dict`` of results: ``primitive``,
            ``steps``, ``seconds``, ``interrupted``, a ``headline`` sentence, ``outputs`` (label -> path),
            ``next`` (commands to try next) and the figures (``psnr``, ``iou``, ...). ``options`` the demo may
            take: ``orbit_frames``, ``size``.
        seconds: default training time.
        description: one line for ``ngp demo --list``.
    """

    run: Callable[..., dict[str, Any]]
    seconds: float
    description: str


@dataclass(frozen=True, kw_only=True)
class Primitive:
    """Everything the rest of the SDK needs to know about one primitive.

    Attributes:
        name: registry key, stored in snapshots (``"nerf"``).
        summary: one line for help texts.
        task: the task class; its ``from_state`` restores snapshots.
        create: ``create(data, *, config=None, device=None, **kwargs) -> Task`` (``Session.create``).
        create_live: ``create_live(config=None, *, device=None, **options) -> LiveTask`` or None.
        live_from_snapshot: ``(config, state, *, device=None, **options) -> LiveTask`` continuing a snapshot's
            model with fresh live data, or None.
        add_commands: ``add_commands(subparsers)`` adds the primitive's ``ngp`` sub-commands (each sets
            ``handler=`` with ``set_defaults``), or None.
        render_arguments: ``render_arguments(parser)`` adds options to the shared ``ngp render`` command.
        render_frames: ``render_frames(session, args, indices=None) -> [float32 linear RGB [H, W, 3], ...]`` for
            ``ngp render`` (one view, an orbit or a camera path; ``indices``: only those frames of the sequence,
            for ``ngp batch``'s frame ranges), or None when ``ngp render`` does not apply.
        demo: the primitive's ``ngp demo``, or None.
        scene_view: ``scene_view(task) -> SceneView`` (:mod:`ngp_sdk.core.view`) for the browser viewer of a 3D
            primitive, or None.
        open_viewer: ``open_viewer(session, *, host, port, **options) -> viewer`` for a primitive with a viewer
            of its own (an object with ``url`` and ``stop()``), or None; ``ngp view`` uses it before
            ``scene_view``.
    """

    name: str
    summary: str
    task: type[Task]
    create: Callable[..., Task]
    create_live: Callable[..., LiveTask] | None = None
    live_from_snapshot: Callable[..., LiveTask] | None = None
    add_commands: Callable[[Any], None] | None = None
    render_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    render_frames: Callable[..., list] | None = None
    demo: Demo | None = None
    scene_view: Callable[[Task], Any] | None = None
    open_viewer: Callable[..., Any] | None = None


_REGISTRY: dict[str, Primitive] = {}
_LOCK = threading.Lock()
_PLUGINS_LOADED = False


def register_primitive(primitive: Primitive) -> Primitive:
    """Make ``primitive`` known under its name; returns it.

    Raises:
        ConfigError: another primitive is already registered under that name.
    """
    with _LOCK:
        known = _REGISTRY.get(primitive.name)
        if known is not None and known.task is not primitive.task:
            raise ConfigError(f"primitive {primitive.name!r} is already registered (by {known.task.__module__})")
        _REGISTRY[primitive.name] = primitive
    return primitive


def _load_plugins() -> None:
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            obj = ep.load()
        except Exception as e:  # a broken plugin must not take the built-in primitives down
            print(f"warning: ngp primitive plugin {ep.name!r} unavailable: {e}", file=sys.stderr)
            continue
        if isinstance(obj, Primitive):
            register_primitive(obj)


def primitives() -> list[Primitive]:
    """Every registered primitive, in registration order (built-ins first)."""
    _load_plugins()
    with _LOCK:
        return list(_REGISTRY.values())


def get_primitive(name: str) -> Primitive:
    """The primitive registered as ``name``.

    Raises:
        ConfigError: no such primitive (the message lists the known ones).
    """
    with _LOCK:
        found = _REGISTRY.get(name)
    if found is None:
        _load_plugins()
        with _LOCK:
            found = _REGISTRY.get(name)
    if found is None:
        raise ConfigError(f"unknown primitive {name!r}; this SDK knows {', '.join(sorted(_REGISTRY)) or 'none'}")
    return found
