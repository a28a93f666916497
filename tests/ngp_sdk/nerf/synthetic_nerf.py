"""A tiny NeRF scene made in code: a coloured sphere rendered analytically, written as a Blender-style dataset.

The sphere (radius 0.6, centred at the NeRF origin) is coloured by its normal, ``0.5 + 0.5 * n``; cameras sit
on a sphere of radius 3 looking at the origin (Blender-synthetic conventions: OpenGL camera axes, ``+z`` up,
``camera_angle_x``). Pixels that miss the sphere are transparent (RGBA with straight alpha).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ngp_sdk.nerf.synthetic import CAMERA_ANGLE_X, camera_positions, look_at_nerf

__all__ = [
    "CAMERA_ANGLE_X",
    "SPHERE_RADIUS",
    "camera_positions",
    "look_at_nerf",
    "render_sphere",
    "write_sphere_dataset",
]

SPHERE_RADIUS = 0.6


def render_sphere(c2w: np.ndarray, size: int) -> np.ndarray:
    """uint8 RGBA ``[size, size, 4]`` image of the sphere seen by NeRF camera ``c2w`` (pixel centres)."""
    f = 0.5 * size / math.tan(0.5 * CAMERA_ANGLE_X)
    ij = np.arange(size) + 0.5
    x, y = np.meshgrid(ij, ij)
    d_cam = np.stack([(x - size / 2) / f, -(y - size / 2) / f, -np.ones_like(x)], axis=-1)
    d = d_cam @ c2w[:3, :3].T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    o = c2w[:3, 3]
    b = d @ o
    disc = b * b - (o @ o - SPHERE_RADIUS**2)
    hit = disc > 0
    t = -b - np.sqrt(np.maximum(disc, 0))
    n = (o + t[..., None] * d) / SPHERE_RADIUS
    rgb = np.clip(0.5 + 0.5 * n, 0, 1)
    img = np.zeros((size, size, 4), np.uint8)
    img[..., :3] = np.where(hit[..., None], np.rint(rgb * 255), 0).astype(np.uint8)
    img[..., 3] = np.where(hit, 255, 0).astype(np.uint8)
    return img


def write_sphere_dataset(folder: Path, *, n_train: int = 12, n_val: int = 2, size: int = 32,
                         radius: float = 3.0) -> Path:
    """Write ``transforms_train.json`` / ``transforms_val.json`` and PNGs into ``folder``; return it."""
    import imageio.v3 as iio

    folder = Path(folder)
    for split, n, seed in (("train", n_train, 0), ("val", n_val, 1)):
        (folder / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for i, pos in enumerate(camera_positions(n, radius, seed)):
            c2w = look_at_nerf(pos)
            iio.imwrite(folder / split / f"r_{i}.png", render_sphere(c2w, size))
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": c2w.tolist()})
        (folder / f"transforms_{split}.json").write_text(
            json.dumps({"camera_angle_x": CAMERA_ANGLE_X, "frames": frames}, indent=1))
    return folder
