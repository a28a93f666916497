"""Scenes made in code, rendered analytically: NeRF data that needs no download (the demo, tests, samples).

A scene is a few diffuse spheres around the NeRF origin, lit by one directional light; cameras sit on a sphere
looking at the origin (Blender-synthetic conventions: OpenGL camera axes, ``+z`` up, ``camera_angle_x``).
Pixels that miss every sphere are transparent (RGBA, straight alpha), so the data composites over any background
exactly like Blender's lego.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Sphere", "SyntheticScene", "DEMO_SCENE", "look_at_nerf", "camera_positions", "render_scene",
           "write_synthetic_dataset"]

CAMERA_ANGLE_X = 0.69


@dataclass(frozen=True, kw_only=True)
class Sphere:
    """A diffuse sphere: ``centre`` (NeRF units), ``radius``, linear-ish RGB ``colour`` in [0, 1]."""

    centre: tuple[float, float, float]
    radius: float
    colour: tuple[float, float, float]


@dataclass(frozen=True, kw_only=True)
class SyntheticScene:
    """Spheres plus a light; ``shade`` maps a hit to its displayed colour."""

    spheres: tuple[Sphere, ...]
    light: tuple[float, float, float] = (0.4, -0.5, 0.77)
    ambient: float = 0.3
    camera_angle_x: float = CAMERA_ANGLE_X
    camera_radius: float = 3.2


DEMO_SCENE = SyntheticScene(spheres=(
    Sphere(centre=(0.0, 0.0, 0.0), radius=0.55, colour=(0.85, 0.25, 0.2)),
    Sphere(centre=(0.7, 0.35, -0.2), radius=0.3, colour=(0.2, 0.6, 0.9)),
    Sphere(centre=(-0.55, 0.5, 0.25), radius=0.25, colour=(0.95, 0.8, 0.2)),
    Sphere(centre=(-0.3, -0.65, -0.3), radius=0.32, colour=(0.3, 0.8, 0.35)),
))


def look_at_nerf(position: np.ndarray) -> np.ndarray:
    """NeRF (OpenGL axes) camera-to-world 4x4 of a camera at ``position`` looking at the origin, z up."""
    back = position / np.linalg.norm(position)
    right = np.cross([0.0, 0.0, 1.0], back)
    if np.linalg.norm(right) < 1e-6:
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, position
    return m


def camera_positions(n: int, radius: float, seed: int) -> np.ndarray:
    """``n`` positions spread over both hemispheres (golden spiral, jittered), ``[n, 3]``."""
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = k * math.pi * (3 - math.sqrt(5)) + np.random.default_rng(seed).uniform(0, 0.3, n)
    r = np.sqrt(1 - z * z)
    return radius * np.stack([r * np.cos(phi), r * np.sin(phi), 0.8 * z], axis=-1)


def render_scene(scene: SyntheticScene, c2w: np.ndarray, size: int) -> np.ndarray:
    """uint8 RGBA ``[size, size, 4]`` view of ``scene`` from NeRF camera ``c2w`` (pixel centres)."""
    f = 0.5 * size / math.tan(0.5 * scene.camera_angle_x)
    ij = np.arange(size) + 0.5
    x, y = np.meshgrid(ij, ij)
    d = np.stack([(x - size / 2) / f, -(y - size / 2) / f, -np.ones_like(x)], axis=-1) @ c2w[:3, :3].T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    o = c2w[:3, 3]
    best = np.full(x.shape, np.inf)
    rgb = np.zeros(x.shape + (3,))
    light = np.asarray(scene.light, dtype=np.float64)
    light /= np.linalg.norm(light)
    for s in scene.spheres:
        oc = o - np.asarray(s.centre)
        b = d @ oc
        disc = b * b - (oc @ oc - s.radius**2)
        t = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
        closer = (t > 0) & (t < best)
        with np.errstate(invalid="ignore"):  # rays that miss have t = inf: masked by `closer`
            n = (o + t[..., None] * d - np.asarray(s.centre)) / s.radius
            shade = scene.ambient + (1 - scene.ambient) * np.clip(n @ light, 0, 1)
        rgb = np.where(closer[..., None], np.asarray(s.colour) * shade[..., None], rgb)
        best = np.where(closer, t, best)
    hit = np.isfinite(best)
    img = np.zeros((size, size, 4), np.uint8)
    img[..., :3] = np.where(hit[..., None], np.rint(np.clip(rgb, 0, 1) * 255), 0).astype(np.uint8)
    img[..., 3] = np.where(hit, 255, 0).astype(np.uint8)
    return img


def write_synthetic_dataset(folder: str | Path, scene: SyntheticScene = DEMO_SCENE, *, n_train: int = 48,
                            n_val: int = 4, size: int = 64) -> Path:
    """Render ``scene`` and write a Blender-style dataset (``transforms_{train,val}.json`` + PNGs) into ``folder``."""
    import imageio.v3 as iio

    folder = Path(folder)
    for split, n, seed in (("train", n_train, 0), ("val", n_val, 1)):
        (folder / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for i, pos in enumerate(camera_positions(n, scene.camera_radius, seed)):
            c2w = look_at_nerf(pos)
            iio.imwrite(folder / split / f"r_{i}.png", render_scene(scene, c2w, size))
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": c2w.tolist()})
        (folder / f"transforms_{split}.json").write_text(
            json.dumps({"camera_angle_x": scene.camera_angle_x, "frames": frames}, indent=1))
    return folder
