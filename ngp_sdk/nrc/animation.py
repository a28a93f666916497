"""Dynamic scenes for the NRC primitive: a light circling its place, or a camera swinging around the scene."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ngp_sdk.core.errors import DataError
from ngp_sdk.nrc.scene import Scene, Sensor

__all__ = ["animate", "light_offset", "orbit_sensor"]


def light_offset(scene: Scene, t: float) -> np.ndarray:
    """Where the lights are at time ``t`` in [0, 1]: a horizontal circle of 15% of the scene's size around their
    place (the axis is the camera's up vector)."""
    lo, hi = scene.vertices.min(axis=0), scene.vertices.max(axis=0)
    r = 0.15 * float(np.max(hi - lo))
    m = np.asarray(scene.sensor.to_world, np.float64)
    up = m[:3, 1] / np.linalg.norm(m[:3, 1])
    a = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 0.0, 1.0])
    a /= np.linalg.norm(a)
    b = np.cross(up, a)
    ang = 2 * math.pi * t
    return r * (math.cos(ang) - 1.0) * a + r * math.sin(ang) * b


def orbit_sensor(scene: Scene, t: float, degrees: float = 20.0) -> Sensor:
    """The sensor swung by ``degrees * sin(2 pi t)`` about the up axis through the scene's centre."""
    m = np.asarray(scene.sensor.to_world, np.float64)
    centre = 0.5 * (scene.vertices.min(axis=0) + scene.vertices.max(axis=0))
    up = m[:3, 1] / np.linalg.norm(m[:3, 1])
    ang = math.radians(degrees * math.sin(2 * math.pi * t))
    k = np.array([[0, -up[2], up[1]], [up[2], 0, -up[0]], [-up[1], up[0], 0]])
    rot = np.eye(3) + math.sin(ang) * k + (1 - math.cos(ang)) * k @ k
    new = np.eye(4)
    new[:3, :3] = rot @ m[:3, :3]
    new[:3, 3] = centre + rot @ (m[:3, 3] - centre)
    return dataclasses.replace(scene.sensor, to_world=new)


def animate(scene: Scene, *, frames: int, what: str = "light", mode: str = "nrc", spp: int = 1,
            config: Any = None, device: Any = None, progress: bool = False) -> tuple[list[np.ndarray], bool]:
    """Render ``frames`` frames of a moving light or camera, the cache training throughout (``mode="nrc"``) or
    plain path tracing (``"pt"``); returns the frames (float32 linear RGB) and whether Ctrl-C stopped it."""
    from tqdm import tqdm

    from ngp_sdk.nrc.renderer import FrameSource

    if what not in ("light", "camera"):
        raise DataError(f"animate the light or the camera, not {what!r}")
    source = FrameSource(scene, mode=mode, spp=spp, config=config, device=device)
    gpu = source.gpu_scene
    out: list[np.ndarray] = []
    try:
        for i in tqdm(range(frames), unit="frame", disable=not progress, leave=False):
            t = i / max(frames, 1)
            if what == "light":
                gpu.move_emitters(light_offset(scene, t))
            else:
                gpu.set_camera(orbit_sensor(scene, t))
            out.append(source.render())
    except KeyboardInterrupt:
        return out, True
    return out, False
