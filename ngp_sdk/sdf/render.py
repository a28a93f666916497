"""Rendering a signed distance field: sphere tracing, normals, Lambert shading and ambient occlusion.

Like :mod:`ngp_sdk.nerf.render`, nothing here owns the field: :func:`render_sdf_camera` takes two callbacks,
``sdf_fn(positions [M, 3]) -> [M]`` and ``normal_fn(positions [M, 3]) -> [M, 3]``, so the trained
:class:`~ngp_sdk.sdf.field.SdfField` and an analytic shape (in tests) share one path. Cameras use the internal
convention of the rest of the SDK: ``c2w [3, 4]`` with OpenCV axes (x right, y down, z forward) in the space the
SDF is defined in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import warp as wp

from ngp_sdk.core.cameras import Intrinsics, camera_ray_tiles
from ngp_sdk.core.errors import DataError
from warp_kernels.sphere_tracing import sphere_trace

__all__ = ["SHADINGS", "SdfRenderSettings", "SdfRenderedImage", "ambient_occlusion", "render_sdf_camera",
           "shade_lambert"]

#: Shading modes of :class:`SdfRenderSettings`.
SHADINGS = ("lambert", "normals")

SdfFn = Callable[[wp.array], wp.array]


@dataclass(frozen=True, kw_only=True)
class SdfRenderSettings:
    """How to render an SDF.

    Attributes:
        shading: ``"lambert"`` (grey clay lit from the upper left of the camera) or ``"normals"``
            (``0.5 + 0.5 n``, world axes).
        ambient_occlusion: darken creases with instant-ngp-style SDF ambient occlusion (5 extra SDF
            evaluations per hit).
        albedo: linear RGB of the surface under Lambert shading.
        ambient: light that reaches every point (fraction of ``albedo``).
        light_dir: direction *towards* the light in camera axes (x right, y down, z forward).
        background: linear RGB where no surface is hit.
        max_steps: sphere-tracing iterations.
        epsilon: hit threshold on ``|sdf|`` (SDF units; the unit cube for the SDF primitive).
        step_scale: fraction of the SDF value stepped each iteration.
        ao_step: spacing of the occlusion probes along the normal (SDF units).
        ao_strength: scale of the occlusion term.
        tile_rays: rays traced at once (bounds memory).
    """

    shading: str = "lambert"
    ambient_occlusion: bool = False
    albedo: tuple[float, float, float] = (0.6, 0.6, 0.6)
    ambient: float = 0.15
    light_dir: tuple[float, float, float] = (-0.35, -0.6, -1.0)
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    max_steps: int = 128
    epsilon: float = 2e-4
    step_scale: float = 0.9
    ao_step: float = 0.015
    ao_strength: float = 12.0
    tile_rays: int = 1 << 16

    def __post_init__(self) -> None:
        if self.shading not in SHADINGS:
            raise DataError(f"unknown shading {self.shading!r}; choose one of {', '.join(SHADINGS)}")


@dataclass(frozen=True)
class SdfRenderedImage:
    """One sphere-traced view.

    Attributes:
        rgb: float32 ``[H, W, 3]`` linear colour.
        depth: float32 ``[H, W]`` distance along each ray to the surface (SDF units; 0 where missed).
        normals: float32 ``[H, W, 3]`` unit surface normals in SDF space (0 where missed).
        hit: bool ``[H, W]``.
    """

    rgb: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    hit: np.ndarray

    def normal_image(self, background=(1.0, 1.0, 1.0)) -> np.ndarray:
        """``0.5 + 0.5 n`` where hit (display codes in [0, 1]), ``background`` elsewhere."""
        vis = 0.5 + 0.5 * self.normals
        return np.where(self.hit[..., None], vis, np.asarray(background, np.float32)).astype(np.float32)

    def depth_image(self) -> np.ndarray:
        """Grey ``[H, W, 3]``: near = bright, far = dark, misses black (display codes in [0, 1])."""
        d = self.depth
        if not self.hit.any():
            return np.zeros((*d.shape, 3), np.float32)
        near, far = float(d[self.hit].min()), float(d[self.hit].max())
        vis = np.where(self.hit, 1.0 - 0.8 * (d - near) / max(far - near, 1e-9), 0.0).astype(np.float32)
        return np.repeat(vis[..., None], 3, axis=2)


def shade_lambert(normals: np.ndarray, light: np.ndarray, albedo, ambient: float) -> np.ndarray:
    """Lambert ``albedo * (ambient + (1 - ambient) * max(0, n . l))``; ``normals [M, 3]``, unit ``light [3]``."""
    cos = np.clip(normals @ np.asarray(light, np.float64), 0.0, None)
    return (np.asarray(albedo, np.float32) * (ambient + (1.0 - ambient) * cos)[:, None]).astype(np.float32)


def ambient_occlusion(sdf_fn: SdfFn, positions: np.ndarray, normals: np.ndarray, *, step: float,
                      strength: float, n_probes: int = 5, device=None) -> np.ndarray:
    """Occlusion factor in ``[0, 1]`` (1 = open) per point, from SDF probes along the normal.

    ``ao = 1 - strength * sum_k (d_k - sdf(p + d_k n)) / 2^k`` with ``d_k = k * step``, k = 1..n_probes: where
    the field at a probe is closer than its distance from the surface, other geometry is near.
    """
    m = positions.shape[0]
    if m == 0:
        return np.ones(0, np.float32)
    ks = np.arange(1, n_probes + 1, dtype=np.float64)
    probes = positions[None, :, :] + (ks * step)[:, None, None] * normals[None, :, :]
    values = sdf_fn(wp.array(probes.reshape(-1, 3).astype(np.float32), dtype=wp.float32, device=device))
    sdf = values.numpy().reshape(n_probes, m).astype(np.float64)
    occ = np.sum(((ks * step)[:, None] - sdf) / (2.0**ks)[:, None], axis=0)
    return np.clip(1.0 - strength * occ, 0.0, 1.0).astype(np.float32)


def render_sdf_camera(
    sdf_fn: SdfFn,
    normal_fn: SdfFn,
    c2w: np.ndarray,
    intrinsics: Intrinsics,
    *,
    settings: SdfRenderSettings,
    aabb=((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    device=None,
) -> SdfRenderedImage:
    """Sphere-trace one camera through its pixel centres (lens distortion included) and shade the hits.

    Args:
        sdf_fn: signed distance callback, ``[M, 3] -> [M]`` (or ``[M, 1]``) float32 Warp arrays.
        normal_fn: unit normal callback, ``[M, 3] -> [M, 3]``.
        c2w: camera-to-world ``[3, 4]`` (OpenCV axes) in SDF space.
        intrinsics: camera intrinsics; the image has their resolution.
        settings: shading and tracing options.
        aabb: box the SDF is valid in.
        device: Warp device of the callbacks' arrays (``None`` = Warp's current).
    """
    dev = wp.get_device(device)
    w, h = intrinsics.width, intrinsics.height
    pose = np.asarray(c2w, np.float64).reshape(-1, 4)[:3]
    if not np.isfinite(pose).all():
        raise DataError("camera pose contains NaN or infinity")
    n = w * h
    depth = np.zeros(n, np.float32)
    normals = np.zeros((n, 3), np.float32)
    hit = np.zeros(n, bool)
    pos_all = np.zeros((n, 3), np.float32)
    tile = max(1, settings.tile_rays)
    for s, e, o, d in camera_ray_tiles(pose, intrinsics, tile, dev):
        r = sphere_trace(o, d, sdf_fn, aabb=aabb, max_steps=settings.max_steps, epsilon=settings.epsilon,
                         step_scale=settings.step_scale)
        hit[s:e] = r.hit.numpy().astype(bool)
        depth[s:e] = np.where(hit[s:e], r.t.numpy(), 0.0)
        pos_all[s:e] = r.positions.numpy()
    idx = np.flatnonzero(hit)
    rgb = np.empty((n, 3), np.float32)
    rgb[:] = np.asarray(settings.background, np.float32)
    if idx.size:
        pos = pos_all[idx]
        nrm = np.zeros((idx.size, 3), np.float32)
        for s in range(0, idx.size, tile):
            chunk = wp.array(pos[s:s + tile], dtype=wp.float32, device=dev)
            nrm[s:s + tile] = normal_fn(chunk).numpy()
        normals[idx] = nrm
        if settings.shading == "normals":
            color = (0.5 + 0.5 * nrm).astype(np.float32)
        else:
            light = pose[:, :3] @ np.asarray(settings.light_dir, np.float64)
            color = shade_lambert(nrm, light / np.linalg.norm(light), settings.albedo, settings.ambient)
        if settings.ambient_occlusion:
            color *= ambient_occlusion(sdf_fn, pos.astype(np.float64), nrm.astype(np.float64),
                                       step=settings.ao_step, strength=settings.ao_strength, device=dev)[:, None]
        rgb[idx] = color
    return SdfRenderedImage(rgb=rgb.reshape(h, w, 3), depth=depth.reshape(h, w), normals=normals.reshape(h, w, 3),
                            hit=hit.reshape(h, w))
