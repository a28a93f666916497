"""Scenes made in code, rendered analytically: NeRF data that needs no download (the demo, tests, samples).

A scene is a few diffuse shapes around the NeRF origin (spheres, boxes, discs; plain or with a solid texture),
lit by one directional light (optionally casting shadows); cameras sit on a sphere looking at the origin
(Blender-synthetic conventions: OpenGL camera axes, ``+z`` up, ``camera_angle_x``). Pixels that miss every shape
are transparent (RGBA, straight alpha; with supersampling, alpha is the pixel's coverage), so the data composites
over any background exactly like Blender's lego. :data:`DEMO_SCENE` is the small sphere scene of the tests;
:data:`SHOWCASE_SCENE` the textured, self-shadowing scene of ``ngp demo``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Sphere", "Box", "Disc", "SyntheticScene", "DEMO_SCENE", "SHOWCASE_SCENE", "look_at_nerf",
           "camera_positions", "upper_camera_positions", "render_scene", "write_synthetic_dataset"]

CAMERA_ANGLE_X = 0.69


@dataclass(frozen=True, kw_only=True)
class _Shape:
    """A diffuse shape's surface colour: ``colour`` (RGB in [0, 1]), optionally modulated by a solid texture.

    ``texture``: ``"plain"``, ``"checker"`` (a soft 3-D checker of ``frequency`` cells per unit, dark cells at
    ``contrast`` of the colour) or ``"stripes"`` (bands along z). Solid textures need no UVs and are the same from
    every view, as a NeRF expects.
    """

    colour: tuple[float, float, float]
    texture: str = "plain"
    frequency: float = 4.0
    contrast: float = 0.35

    def albedo(self, p: np.ndarray) -> np.ndarray:
        """``[..., 3]`` colour at world points ``p`` ``[..., 3]``."""
        c = np.asarray(self.colour, dtype=p.dtype)
        if self.texture == "plain":
            return np.broadcast_to(c, p.shape)
        w = 2 * math.pi * self.frequency
        if self.texture == "checker":
            s = np.sin(w * p[..., 0]) * np.sin(w * p[..., 1]) * np.sin(w * p[..., 2])
            t = np.clip(0.5 + 2.5 * s, 0, 1)
        elif self.texture == "stripes":
            t = np.clip(0.5 + 1.5 * np.sin(w * p[..., 2]), 0, 1)
        else:
            raise ValueError(f"unknown texture {self.texture!r}")
        return c * (self.contrast + (1 - self.contrast) * t)[..., None]


@dataclass(frozen=True, kw_only=True)
class Sphere(_Shape):
    """A diffuse sphere: ``centre`` (NeRF units), ``radius``, linear-ish RGB ``colour`` in [0, 1]."""

    centre: tuple[float, float, float]
    radius: float

    def intersect(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hit distance along unit rays ``d [..., 3]`` from origins ``o`` (``[3]`` or ``[..., 3]``; inf: miss)
        and the unit normal there."""
        c = np.asarray(self.centre, dtype=d.dtype)
        oc = o - c
        b = np.sum(d * oc, axis=-1)
        disc = b * b - (np.sum(oc * oc, axis=-1) - self.radius**2)
        root = np.sqrt(np.maximum(disc, 0))
        t = np.where(disc > 0, np.where(-b - root > 1e-6, -b - root, -b + root), np.inf)
        t = np.where(t > 1e-6, t, np.inf)
        with np.errstate(invalid="ignore"):
            n = (o + np.where(np.isfinite(t), t, 0)[..., None] * d - c) / self.radius
        return t, n


@dataclass(frozen=True, kw_only=True)
class Box(_Shape):
    """An axis-aligned diffuse box from corner ``lo`` to corner ``hi``."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]

    def intersect(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.asarray(self.lo, dtype=d.dtype), np.asarray(self.hi, dtype=d.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d
            t0, t1 = (lo - o) * inv, (hi - o) * inv
        tmin, tmax = np.minimum(t0, t1), np.maximum(t0, t1)
        near, far = np.nanmax(tmin, axis=-1), np.nanmin(tmax, axis=-1)
        t = np.where(near > 1e-6, near, far)
        t = np.where((far >= near) & (t > 1e-6), t, np.inf)
        axis = np.where(near > 1e-6, np.nanargmax(tmin, axis=-1), np.nanargmin(tmax, axis=-1))
        n = np.zeros(d.shape, dtype=d.dtype)
        np.put_along_axis(n, axis[..., None], -np.sign(np.take_along_axis(d, axis[..., None], -1)), -1)
        return t, n


@dataclass(frozen=True, kw_only=True)
class Disc(_Shape):
    """A flat diffuse disc (both sides) at ``centre`` facing ``+z``, of ``radius``."""

    centre: tuple[float, float, float]
    radius: float

    def intersect(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(self.centre, dtype=d.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (c[2] - o[..., 2]) / d[..., 2]
        hit = o[..., :2] + np.where(np.isfinite(t), t, 0)[..., None] * d[..., :2] - c[:2]
        t = np.where((t > 1e-6) & (np.sum(hit * hit, axis=-1) <= self.radius**2), t, np.inf)
        n = np.zeros(d.shape, dtype=d.dtype)
        n[..., 2] = np.where(d[..., 2] < 0, 1.0, -1.0)
        return t, n


@dataclass(frozen=True, kw_only=True)
class SyntheticScene:
    """Shapes plus a directional light.

    Attributes:
        spheres: the scene's spheres; ``shapes``: any other shapes (boxes, discs).
        light: direction towards the light; ``ambient``: the unlit share of the colour.
        shadows: trace shadow rays (occlusion of the light by other shapes).
        supersample: ``k`` x ``k`` rays per pixel, averaged (anti-aliased colour, alpha = coverage).
    """

    spheres: tuple[Sphere, ...]
    shapes: tuple[_Shape, ...] = ()
    light: tuple[float, float, float] = (0.4, -0.5, 0.77)
    ambient: float = 0.3
    camera_angle_x: float = CAMERA_ANGLE_X
    camera_radius: float = 3.2
    shadows: bool = False
    supersample: int = 1

    @property
    def all_shapes(self) -> tuple[_Shape, ...]:
        return tuple(self.spheres) + tuple(self.shapes)


DEMO_SCENE = SyntheticScene(spheres=(
    Sphere(centre=(0.0, 0.0, 0.0), radius=0.55, colour=(0.85, 0.25, 0.2)),
    Sphere(centre=(0.7, 0.35, -0.2), radius=0.3, colour=(0.2, 0.6, 0.9)),
    Sphere(centre=(-0.55, 0.5, 0.25), radius=0.25, colour=(0.95, 0.8, 0.2)),
    Sphere(centre=(-0.3, -0.65, -0.3), radius=0.32, colour=(0.3, 0.8, 0.35)),
))

#: The scene of ``ngp demo``: textured shapes on a checkered disc, casting shadows on it and on each other.
SHOWCASE_SCENE = SyntheticScene(
    spheres=(
        Sphere(centre=(0.0, 0.0, 0.05), radius=0.42, colour=(0.9, 0.3, 0.2), texture="checker", frequency=2.5),
        Sphere(centre=(0.62, 0.38, -0.12), radius=0.25, colour=(0.25, 0.55, 0.95), texture="stripes",
               frequency=5.0),
        Sphere(centre=(-0.15, -0.7, -0.2), radius=0.17, colour=(0.95, 0.85, 0.3)),
    ),
    shapes=(
        Box(lo=(-0.85, 0.05, -0.37), hi=(-0.4, 0.5, 0.2), colour=(0.3, 0.8, 0.4), texture="checker",
            frequency=3.0),
        Box(lo=(0.35, -0.6, -0.37), hi=(0.6, -0.35, 0.45), colour=(0.85, 0.85, 0.9), texture="stripes",
            frequency=6.0, contrast=0.5),
        Disc(centre=(0.0, 0.0, -0.37), radius=1.0, colour=(0.9, 0.88, 0.82), texture="checker", frequency=1.5,
             contrast=0.55),
    ),
    light=(0.45, -0.35, 0.82), ambient=0.35, camera_radius=3.0, shadows=True, supersample=2,
)


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


def _shade(scene: SyntheticScene, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour ``[..., 3]``, hit mask ``[...]`` and hit distance ``[...]`` (inf on a miss) of unit rays ``d``."""
    shapes = scene.all_shapes
    best = np.full(d.shape[:-1], np.inf)
    which = np.full(d.shape[:-1], -1)
    normal = np.zeros(d.shape)
    for k, shape in enumerate(shapes):
        t, n = shape.intersect(o, d)
        closer = t < best
        best = np.where(closer, t, best)
        which = np.where(closer, k, which)
        normal = np.where(closer[..., None], n, normal)
    hit = np.isfinite(best)
    light = np.asarray(scene.light, dtype=np.float64)
    light /= np.linalg.norm(light)
    p = o + np.where(hit, best, 0)[..., None] * d
    lit = np.clip(normal @ light, 0, 1)
    if scene.shadows:
        origin = p[hit] + 1e-4 * normal[hit]
        towards = np.broadcast_to(light, origin.shape)
        blocked = np.zeros(origin.shape[0], dtype=bool)
        for shape in shapes:
            blocked |= np.isfinite(shape.intersect(origin, towards)[0])
        lit[hit] = np.where(blocked, 0.0, lit[hit])
    rgb = np.zeros(d.shape)
    for k, shape in enumerate(shapes):
        m = which == k
        if m.any():
            rgb[m] = shape.albedo(p[m]) * (scene.ambient + (1 - scene.ambient) * lit[m])[..., None]
    return rgb, hit, best


def render_scene(scene: SyntheticScene, c2w: np.ndarray, size: int, *, with_depth: bool = False):
    """uint8 RGBA ``[size, size, 4]`` view of ``scene`` from NeRF camera ``c2w`` (straight alpha).

    With ``scene.supersample = k``, ``k x k`` rays per pixel are averaged: colour over the covered part, alpha the
    covered fraction. ``with_depth``: also return float32 ``[size, size]`` z-depth (along the optical axis,
    averaged over the covered part; 0 where nothing is hit) as ``(image, depth)``.
    """
    k = max(1, scene.supersample)
    f = 0.5 * size / math.tan(0.5 * scene.camera_angle_x)
    ij = (np.arange(size * k) + 0.5) / k
    x, y = np.meshgrid(ij, ij)
    d = np.stack([(x - size / 2) / f, -(y - size / 2) / f, -np.ones_like(x)], axis=-1) @ c2w[:3, :3].T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    rgb, hit, dist = _shade(scene, c2w[:3, 3], d)
    cover = hit.reshape(size, k, size, k).mean(axis=(1, 3))
    colour = (rgb * hit[..., None]).reshape(size, k, size, k, 3).sum(axis=(1, 3))
    colour = colour / np.maximum(hit.reshape(size, k, size, k).sum(axis=(1, 3)), 1)[..., None]
    img = np.zeros((size, size, 4), np.uint8)
    img[..., :3] = np.where(cover[..., None] > 0, np.rint(np.clip(colour, 0, 1) * 255), 0).astype(np.uint8)
    img[..., 3] = np.rint(cover * 255).astype(np.uint8)
    if not with_depth:
        return img
    forward = -np.asarray(c2w, np.float64)[:3, 2]
    z = np.where(hit, np.where(hit, dist, 0.0) * (d @ forward), 0.0)
    z_sum = z.reshape(size, k, size, k).sum(axis=(1, 3))
    depth = z_sum / np.maximum(hit.reshape(size, k, size, k).sum(axis=(1, 3)), 1)
    return img, depth.astype(np.float32)


def upper_camera_positions(n: int, radius: float, seed: int, elevation: tuple[float, float]) -> np.ndarray:
    """``n`` positions between ``elevation`` degrees above the z=0 plane (golden spiral in azimuth, jittered)."""
    rng = np.random.default_rng(seed)
    k = np.arange(n) + 0.5
    lo, hi = np.radians(elevation)
    el = np.arcsin(np.sin(lo) + (np.sin(hi) - np.sin(lo)) * k / n)  # uniform in area over the band
    az = k * math.pi * (3 - math.sqrt(5)) + rng.uniform(0, 0.3, n)
    return radius * np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)


def write_synthetic_dataset(folder: str | Path, scene: SyntheticScene = DEMO_SCENE, *, n_train: int = 48,
                            n_val: int = 4, size: int = 64, elevation: tuple[float, float] | None = None,
                            depth: bool = False) -> Path:
    """Render ``scene`` and write a Blender-style dataset (``transforms_{train,val}.json`` + PNGs) into ``folder``.

    ``elevation``: ``(low, high)`` degrees for cameras above the scene only; None spreads them over both
    hemispheres. ``depth``: also write each frame's z-depth as a 16-bit PNG (``depth_path``, instant-ngp's
    ``integer_depth_scale`` = world units per stored unit; 0 = nothing hit).
    """
    import imageio.v3 as iio

    folder = Path(folder)
    for split, n, seed in (("train", n_train, 0), ("val", n_val, 1)):
        (folder / split).mkdir(parents=True, exist_ok=True)
        frames = []
        positions = (camera_positions(n, scene.camera_radius, seed) if elevation is None else
                     upper_camera_positions(n, scene.camera_radius, seed + 7, elevation))
        # depth codes: 0.1 mm steps while the farthest surface fits 16 bits
        depth_scale = max(1e-4, (scene.camera_radius + 3.0) / 65000.0)
        for i, pos in enumerate(positions):
            c2w = look_at_nerf(pos)
            frame = {"file_path": f"./{split}/r_{i}", "transform_matrix": c2w.tolist()}
            if depth:
                img, z = render_scene(scene, c2w, size, with_depth=True)
                codes = np.clip(np.rint(z / depth_scale), 0, 65535).astype(np.uint16)
                iio.imwrite(folder / split / f"r_{i}_depth.png", codes)
                frame["depth_path"] = f"./{split}/r_{i}_depth.png"
            else:
                img = render_scene(scene, c2w, size)
            iio.imwrite(folder / split / f"r_{i}.png", img)
            frames.append(frame)
        doc: dict = {"camera_angle_x": scene.camera_angle_x, "frames": frames}
        if depth:
            doc["integer_depth_scale"] = depth_scale
        (folder / f"transforms_{split}.json").write_text(json.dumps(doc, indent=1))
    return folder
