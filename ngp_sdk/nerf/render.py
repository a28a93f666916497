"""Rendering a NeRF: rays -> occupancy-grid marching -> field inference -> compositing, in bounded tiles.

Nothing here owns the field or the grid (nerfacc-style): the functions take them as arguments, so training
previews, evaluation, camera paths and the live bridge share one path. Rays are marched without jitter and
in tiles of ``tile_rays``; a tile whose samples exceed ``sample_budget`` is finished in several marching
passes (the ray marcher keeps the longest prefix of rays that fits), so memory stays bounded whatever the
scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import warp as wp

from ngp_sdk.core.cameras import Intrinsics, camera_ray_tiles
from ngp_sdk.nerf.field import NerfField
from ngp_sdk.nerf.occupancy import OccupancyGrid
from warp_kernels.compaction import select_samples
from warp_kernels.ray_marching import RaySamples, march_rays
from warp_kernels.volume_rendering import (
    advance_transmittance,
    composite_rays,
    render_weight_from_density,
    select_sample_slice,
)

__all__ = ["RenderSettings", "RenderedImage", "alive_samples", "render_rays", "render_camera"]


@dataclass(frozen=True, kw_only=True)
class RenderSettings:
    """How to render.

    Attributes:
        background: colour behind the scene, 3 floats in the network's colour space.
        min_transmittance: early termination of compositing.
        max_samples_per_ray: marching cap per ray.
        tile_rays: rays per tile (bounds memory with ``sample_budget``).
        sample_budget: most samples evaluated at once (>= ``max_samples_per_ray``).
        first_slice: samples per ray of the first density slice (early ray termination; see the module).
    """

    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    min_transmittance: float = 1e-4
    max_samples_per_ray: int = 1024
    tile_rays: int = 1 << 14
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
) -> None:
    """Render rays ``[n, 3]`` (internal space) into NumPy outputs ``[n, 3]``, ``[n]``, ``[n]``."""
    n = origins.shape[0]
    budget = max(settings.sample_budget, settings.max_samples_per_ray)
    start = 0
    while start < n:
        s = march_rays(origins[start:], directions[start:], grid.bitfield, n_cascades=grid.n_cascades, aabb=aabb,
                       max_samples_per_ray=settings.max_samples_per_ray, max_total_samples=budget, jitter=False)
        k = s.n_rays_kept
        if s.n_samples:
            sigma = _infer_density_by_slices(field, s, params, settings)
            rgb = field.infer_color(s.directions, alive_samples(s, sigma, settings.min_transmittance), params)
        else:
            sigma = wp.empty(0, dtype=wp.float32, device=field.device)
            rgb = wp.empty((0, 3), dtype=wp.float32, device=field.device)
        r = composite_rays(s.t_starts, s.t_ends, sigma, rgb, s.packed_info[:k], background=settings.background,
                           min_transmittance=settings.min_transmittance)
        out_rgb[start:start + k] = r.colors.numpy()
        out_depth[start:start + k] = r.depths.numpy()
        out_opacity[start:start + k] = r.opacities.numpy()
        start += k


def _infer_density_by_slices(field: NerfField, s: RaySamples, params, settings: RenderSettings) -> wp.array:
    """Densities of the samples compositing reads (others stay 0): slices along the rays, doubling in length."""
    packed = s.packed_info[: s.n_rays_kept]
    sigma = field.begin_density_rows(s.n_samples)
    trans = wp.full(packed.shape[0], 1.0, dtype=wp.float32, device=field.device)
    min_t = settings.min_transmittance
    start, stop = 0, max(1, settings.first_slice)
    while start < settings.max_samples_per_ray:
        rows = select_sample_slice(packed, trans, start, stop, min_transmittance=min_t)
        if rows.shape[0] == 0:
            break
        field.infer_density_rows(s.positions, rows, params)
        advance_transmittance(s.t_starts, s.t_ends, sigma, packed, trans, start, stop, min_transmittance=min_t)
        start, stop = stop, stop + 2 * (stop - start)
    return sigma


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
    for s, e, o, d in camera_ray_tiles(c2w, intrinsics, settings.tile_rays, field.device):
        render_rays(field, grid, o, d, aabb=aabb, settings=settings, params=params, out_rgb=rgb[s:e],
                    out_depth=depth[s:e], out_opacity=opacity[s:e])
    depth = np.where(opacity > 1e-6, depth / np.maximum(opacity, 1e-6), 0.0).astype(np.float32)
    return RenderedImage(rgb.reshape(h, w, 3), depth.reshape(h, w), opacity.reshape(h, w))
