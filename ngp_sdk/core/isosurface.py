"""Iso-surfaces of sampled fields: a volume sampled at cell centres, marching cubes, floater removal.

The field-agnostic half of mesh export, shared by the NeRF (density) and SDF (distance) extractors:
:func:`sample_volume` evaluates a callback at the centres of a ``resolution^3`` grid over a box,
:func:`extract_isosurface` runs scikit-image's marching cubes with faces wound so their normals point out of the
region above the level, and :func:`remove_small_components` drops small disconnected blobs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import warp as wp

from ngp_sdk.core.errors import DataError

__all__ = ["sample_volume", "extract_isosurface", "remove_small_components"]


def sample_volume(fn: Callable[[wp.array], np.ndarray], resolution: int, lo: np.ndarray, hi: np.ndarray,
                  device) -> np.ndarray:
    """float32 ``[R, R, R]`` values of ``fn(points wp [M, 3]) -> np [M]`` at cell centres, indexed ``[x, y, z]``.

    Raises:
        DataError: ``resolution`` outside 8..1024.
    """
    if not 8 <= int(resolution) <= 1024:
        raise DataError(f"mesh resolution must be in 8..1024, got {resolution}")
    r = int(resolution)
    axes = [lo[a] + (np.arange(r, dtype=np.float64) + 0.5) * (hi[a] - lo[a]) / r for a in range(3)]
    vol = np.empty(r * r * r, np.float32)
    slab = max(1, (1 << 20) // (r * r))  # x-slices per batch
    for x0 in range(0, r, slab):
        x1 = min(r, x0 + slab)
        g = np.stack(np.meshgrid(axes[0][x0:x1], axes[1], axes[2], indexing="ij"), axis=-1).reshape(-1, 3)
        pts = wp.array(g.astype(np.float32), dtype=wp.float32, device=device)
        vol[x0 * r * r:x1 * r * r] = np.asarray(fn(pts)).reshape(-1)
    return vol.reshape(r, r, r)


def extract_isosurface(vol: np.ndarray, level: float, lo, hi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Marching cubes of a cell-centred volume over the box ``[lo, hi]``.

    Args:
        vol: float ``[R, R, R]`` samples at cell centres, indexed ``[x, y, z]``.
        level: iso-value; the region ``vol > level`` is the inside.
        lo: box minimum ``[3]``.
        hi: box maximum ``[3]``.

    Returns:
        ``(vertices float64 [V, 3], faces int64 [F, 3], normals float64 [V, 3])``: faces wound
        counter-clockwise seen from outside, unit normals pointing out of the inside region.

    Raises:
        DataError: when ``level`` is not crossed by the volume.
    """
    from skimage.measure import marching_cubes

    lo, hi = (np.asarray(v, np.float64).reshape(3) for v in (lo, hi))
    if not (vol.min() < level < vol.max()):
        raise DataError(f"no surface: values span [{vol.min():.3g}, {vol.max():.3g}], iso-level {level}")
    spacing = tuple((hi - lo) / vol.shape[0])
    verts, faces, normals, _ = marching_cubes(vol, level=level, spacing=spacing)
    verts = verts + lo + 0.5 * np.asarray(spacing)  # samples sit at cell centres
    # skimage's normals point along -grad(vol), i.e. out of the inside; make the winding agree
    tri = verts[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if np.sum(face_n * normals[faces].sum(axis=1)) < 0:
        faces = faces[:, ::-1]
    n = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return verts, np.ascontiguousarray(faces), n


def remove_small_components(vol: np.ndarray, threshold: float, min_fraction: float) -> np.ndarray:
    """Zero the dense regions (``vol > threshold``, 26-connected) smaller than ``min_fraction`` of the largest.

    Floaters (small isolated blobs of density that only a few training views constrain) become separate
    components of the iso-surface; dropping them leaves the object. ``min_fraction=0`` keeps everything.
    """
    if min_fraction <= 0:
        return vol
    from scipy import ndimage

    labels, n = ndimage.label(vol > threshold, structure=np.ones((3, 3, 3), dtype=bool))
    if n <= 1:
        return vol
    sizes = np.bincount(labels.ravel())[1:]
    small = np.flatnonzero(sizes < min_fraction * sizes.max()) + 1
    out = vol.copy()
    out[np.isin(labels, small)] = 0.0
    return out
