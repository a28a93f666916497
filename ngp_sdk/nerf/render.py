"""Rendering a NeRF: rays -> occupancy-grid marching -> field inference -> compositing, in bounded tiles.

Nothing here owns the field or the grid (nerfacc-style): the functions take them as arguments, so training
previews, evaluation, camera paths and the live bridge share one path. Rays are marched without jitter, in
tiles of ``tile_rays`` and in windows along the rays (instant-ngp's inference tracer,
:mod:`warp_kernels.inference_marching`): every live ray marches its next few samples, they are evaluated and
composited, and opaque or finished rays drop out, so nothing behind a ray's termination point is marched or
evaluated beyond the window it falls in, and memory stays within ``sample_budget`` samples whatever the scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import warp as wp

from ngp_sdk.core.cameras import Intrinsics, camera_ray_tiles
from ngp_sdk.nerf.field import NerfField
from ngp_sdk.nerf.occupancy import OccupancyGrid
from warp_kernels.compaction import gather_ints, select_samples
from warp_kernels.inference_marching import (
    WindowSamples,
    composite_window_colors,
    composite_window_density,
    march_spans,
    march_window,
)
from warp_kernels.ray_marching import RaySamples
from warp_kernels.volume_rendering import render_weight_from_density

__all__ = ["RenderSettings", "RenderedImage", "RenderBuffers", "alive_samples", "render_rays", "render_camera"]


@dataclass(frozen=True, kw_only=True)
class RenderSettings:
    """How to render.

    Attributes:
        background: colour behind the scene, 3 floats in the network's colour space.
        min_transmittance: early termination of compositing.
        max_samples_per_ray: marching cap per ray.
        tile_rays: rays per tile (bounds memory with ``sample_budget``).
        sample_budget: most sample slots of one window (all live rays together).
        first_slice: samples per ray of the first window (each later window doubles; see the module).
    """

    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    min_transmittance: float = 1e-4
    max_samples_per_ray: int = 1024
    tile_rays: int = 1 << 16
    sample_budget: int = 1 << 18
    first_slice: int = 8


@dataclass(frozen=True)
class RenderedImage:
    """One rendered view.

    Attributes:
        rgb: float32 ``[H, W, 3]`` colour in the network's colour space (sRGB codes / 255 for 8-bit data).
        depth: float32 ``[H, W]`` expected distance ``sum_i w_i t_i / opacity`` in internal units (0 where
            nothing was hit).
        opacity: float32 ``[H, W]`` accumulated opacity.
    """

    rgb: np.ndarray
    depth: np.ndarray
    opacity: np.ndarray


def alive_samples(samples: RaySamples, sigma: wp.array, min_transmittance: float,
                  buffers: tuple[wp.array, wp.array] | None = None) -> wp.array:
    """int32 indices of the samples a ray still sees: transmittance on arrival >= ``min_transmittance``.

    Exactly the samples compositing keeps (it stops a ray at the first sample below the threshold), so only
    these need a colour. ``buffers`` = optional ``(indices [>= S], scratch [>= 2 S])`` int32 arrays.
    """
    _, trans, _ = render_weight_from_density(samples.t_starts, samples.t_ends, sigma, samples.packed_info,
                                             min_transmittance=min_transmittance)
    idx, scratch = buffers if buffers is not None else (None, None)
    return select_samples(trans, min_transmittance, indices=idx, scratch=scratch)


class RenderBuffers:
    """Scratch of :func:`render_rays` (window slots, row indices, live-ray lists), reused across tiles and
    windows and grown when a call needs more."""

    def __init__(self, device) -> None:
        self.device = device
        self.slots = self.rays = 0

    def ensure(self, slots: int, rays: int) -> RenderBuffers:
        dev = self.device
        if slots > self.slots:
            self.slots = slots
            self.slot_arrays = [wp.empty(shape, dtype=wp.float32, device=dev)
                                for shape in (slots, slots, slots, (slots, 3), (slots, 3))]
            self.weights = wp.empty(slots, dtype=wp.float32, device=dev)
            self.rows = wp.empty(slots, dtype=wp.int32, device=dev)
            self.scratch = wp.empty(2 * slots, dtype=wp.int32, device=dev)
        if rays > self.rays:
            self.rays = rays
            self.ray_arrays = [wp.empty(rays, dtype=wp.int32, device=dev) for _ in range(2)]
            self.alive = wp.empty(rays, dtype=wp.float32, device=dev)
            self.live = [wp.empty(rays, dtype=wp.int32, device=dev) for _ in range(2)]
            self.picked = wp.empty(rays, dtype=wp.int32, device=dev)
            self.ray_scratch = wp.empty(2 * rays, dtype=wp.int32, device=dev)
        return self

    @property
    def window(self) -> WindowSamples:
        """Output buffers for :func:`~warp_kernels.inference_marching.march_window`."""
        return WindowSamples(0, *self.ray_arrays, *self.slot_arrays)


def render_rays(
    field: NerfField,
    grid: OccupancyGrid,
    origins: wp.array,
    directions: wp.array,
    *,
    aabb,
    settings: RenderSettings,
    params: dict[str, wp.array] | None = None,
    out_rgb: np.ndarray,
    out_depth: np.ndarray,
    out_opacity: np.ndarray,
    buffers: RenderBuffers | None = None,
) -> None:
    """Render rays ``[n, 3]`` (internal space) into NumPy outputs ``[n, 3]``, ``[n]``, ``[n]``.

    Windowed marching (:mod:`warp_kernels.inference_marching`): every live ray marches its next ``w`` samples
    (``w = first_slice`` first, doubling each round, at most ``sample_budget`` slots in all), their densities
    are evaluated and composited, the colours of the samples the ray still sees are evaluated and added, and
    opaque or finished rays leave the live set. No sample behind a ray's termination point is marched beyond
    the window it falls in.
    """
    n = origins.shape[0]
    if n == 0:
        return
    dev = field.device
    budget = max(settings.sample_budget, 1)
    first = max(1, settings.first_slice)
    buf = (buffers or RenderBuffers(dev)).ensure(min(budget, n * first), n)
    state = march_spans(origins, directions, n_cascades=grid.n_cascades, aabb=aabb)
    trans = wp.full(n, 1.0, dtype=wp.float32, device=dev)
    opacity = wp.zeros(n, dtype=wp.float32, device=dev)
    depth = wp.zeros(n, dtype=wp.float32, device=dev)
    color = wp.zeros((n, 3), dtype=wp.float32, device=dev)
    rays = buf.live[0][:n]
    wp.copy(rays, wp.array(np.arange(n, dtype=np.int32), dtype=wp.int32, device=dev))
    window, flip = first, 1
    while rays.shape[0]:
        a = rays.shape[0]
        w = max(1, min(window, buf.slots // a, settings.max_samples_per_ray or 1))
        s = march_window(state, origins, directions, grid.bitfield, rays, w,
                         max_samples_per_ray=settings.max_samples_per_ray, out=buf.window)
        sigma = field.begin_density_rows(a * w)
        field.infer_density_rows(s.positions, select_samples(s.valid, 0.5, indices=buf.rows, scratch=buf.scratch),
                                 params)
        weights, alive = composite_window_density(s, sigma, rays, trans, opacity, depth,
                                                  min_transmittance=settings.min_transmittance,
                                                  weights=buf.weights, alive=buf.alive)
        seen = select_samples(weights, 0.0, indices=buf.rows, scratch=buf.scratch)
        if seen.shape[0]:
            rgb = field.infer_color(s.directions, seen, params)
            composite_window_colors(s, weights, rgb, rays, color)
        keep = select_samples(alive, 0.5, indices=buf.picked, scratch=buf.ray_scratch)
        rays = gather_ints(rays, keep, out=buf.live[flip][: keep.shape[0]]) if keep.shape[0] else rays[:0]
        flip, window = 1 - flip, 2 * window
    o = opacity.numpy()
    bg = np.asarray(settings.background, dtype=np.float32)
    out_rgb[:] = color.numpy() + (np.float32(1.0) - o)[:, None] * bg
    out_depth[:] = depth.numpy()
    out_opacity[:] = o


def render_camera(
    field: NerfField,
    grid: OccupancyGrid,
    c2w: np.ndarray,
    intrinsics: Intrinsics,
    *,
    aabb,
    settings: RenderSettings,
    params: dict[str, wp.array] | None = None,
) -> RenderedImage:
    """Render one camera (internal ``c2w [3, 4]``, OpenCV axes) at its intrinsics' resolution, through
    pixel centres, with lens distortion."""
    w, h = intrinsics.width, intrinsics.height
    n = w * h
    rgb = np.empty((n, 3), np.float32)
    depth = np.empty(n, np.float32)
    opacity = np.empty(n, np.float32)
    buffers = RenderBuffers(field.device)
    for s, e, o, d in camera_ray_tiles(c2w, intrinsics, settings.tile_rays, field.device):
        render_rays(field, grid, o, d, aabb=aabb, settings=settings, params=params, out_rgb=rgb[s:e],
                    out_depth=depth[s:e], out_opacity=opacity[s:e], buffers=buffers)
    depth = np.where(opacity > 1e-6, depth / np.maximum(opacity, 1e-6), 0.0).astype(np.float32)
    return RenderedImage(rgb.reshape(h, w, 3), depth.reshape(h, w), opacity.reshape(h, w))
