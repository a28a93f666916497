"""Mesh export of a trained NeRF: marching cubes on the density, vertex colours from the colour network.

The density is sampled at the centres of a ``resolution^3`` grid over the scene box (internal space), the
``threshold`` iso-surface is extracted with scikit-image's marching cubes (instant-ngp's default threshold
is 2.5), and every vertex is coloured by the colour network looking *into* the surface (direction = density
gradient, i.e. the inward normal). Vertices are returned in the dataset's NeRF (input) frame; faces are wound
so their normals point out of the dense region. PLY and OBJ files (with vertex colours) are written with
trimesh.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import warp as wp

from .errors import DataError

__all__ = ["Mesh", "extract_mesh", "remove_small_components", "save_mesh"]


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh.

    Attributes:
        vertices: float32 ``[V, 3]`` in the dataset's NeRF frame.
        faces: int32 ``[F, 3]`` counter-clockwise seen from outside.
        colors: uint8 ``[V, 3]`` vertex colours (the data's 8-bit code space).
        normals: float32 ``[V, 3]`` outward unit normals (NeRF frame).
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    normals: np.ndarray


def _density_volume(task, resolution: int, lo: np.ndarray, hi: np.ndarray, params) -> np.ndarray:
    """float32 ``[R, R, R]`` densities at cell centres, indexed ``[x, y, z]`` (internal axes)."""
    r = resolution
    axes = [lo[a] + (np.arange(r, dtype=np.float64) + 0.5) * (hi[a] - lo[a]) / r for a in range(3)]
    vol = np.empty(r * r * r, np.float32)
    slab = max(1, (1 << 20) // (r * r))  # x-slices per batch
    dev = task.field.device
    for x0 in range(0, r, slab):
        x1 = min(r, x0 + slab)
        g = np.stack(np.meshgrid(axes[0][x0:x1], axes[1], axes[2], indexing="ij"), axis=-1).reshape(-1, 3)
        pts = wp.array(g.astype(np.float32), dtype=wp.float32, device=dev)
        vol[x0 * r * r:x1 * r * r] = task.field.density(pts, params).numpy()
    return vol.reshape(r, r, r)


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


def extract_mesh(task, *, resolution: int = 256, threshold: float = 2.5, aabb=None,
                 min_component: float = 0.01) -> Mesh:
    """Marching-cubes mesh of a NeRF task's density field.

    Args:
        task: a :class:`~ngp_sdk.tasks.nerf.NerfTask` (its inference parameters are used).
        resolution: grid cells per axis (memory and time grow with its cube).
        threshold: density iso-value (instant-ngp: 2.5, in internal units).
        aabb: internal box ``(min [3], max [3])`` to mesh (default: the scene box).
        min_component: drop dense components smaller than this fraction of the largest one (floaters);
            0 keeps everything.

    Raises:
        DataError: bad resolution, or no surface at this threshold.
    """
    if not 8 <= int(resolution) <= 1024:
        raise DataError(f"mesh resolution must be in 8..1024, got {resolution}")
    from skimage.measure import marching_cubes

    lo, hi = (np.asarray(v, np.float64).reshape(3) for v in (aabb if aabb is not None else task.scene.aabb))
    params = task.optimizer.inference_params()
    vol = remove_small_components(_density_volume(task, int(resolution), lo, hi, params), threshold, min_component)
    if not (vol.min() < threshold < vol.max()):
        raise DataError(f"no surface: densities span [{vol.min():.3g}, {vol.max():.3g}], threshold {threshold}")
    spacing = tuple((hi - lo) / resolution)
    verts, faces, normals, _ = marching_cubes(vol, level=threshold, spacing=spacing)
    verts = verts + lo + 0.5 * np.asarray(spacing)  # samples sit at cell centres
    # skimage's normals point along -grad(density), i.e. out of the dense region; make the winding agree
    tri = verts[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if np.sum(face_n * normals[faces].sum(axis=1)) < 0:
        faces = faces[:, ::-1]
    n = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    dev = task.field.device
    pos = wp.array(verts.astype(np.float32), dtype=wp.float32, device=dev)
    inward = wp.array((-n).astype(np.float32), dtype=wp.float32, device=dev)
    colors = np.empty((len(verts), 3), np.uint8)
    chunk = 1 << 18
    for s in range(0, len(verts), chunk):
        e = min(len(verts), s + chunk)  # Warp slices must stay in bounds
        _, rgb = task.field.infer(pos[s:e], inward[s:e], params)
        colors[s:e] = np.clip(np.rint(rgb.numpy() * 255), 0, 255).astype(np.uint8)
    # internal -> NeRF frame: a cyclic axis permutation and a positive scale, so orientation is kept
    v_nerf = task.scene.to_nerf(verts).astype(np.float32)
    n_nerf = n[:, [2, 0, 1]].astype(np.float32)
    return Mesh(vertices=v_nerf, faces=np.ascontiguousarray(faces, dtype=np.int32), colors=colors, normals=n_nerf)


def save_mesh(mesh: Mesh, path: str | os.PathLike) -> Path:
    """Write ``.ply`` or ``.obj`` with vertex colours (trimesh)."""
    p = Path(path)
    if p.suffix.lower() not in (".ply", ".obj"):
        raise DataError(f"{p}: mesh files must end in .ply or .obj")
    try:
        import trimesh
    except ImportError:
        raise DataError("mesh export needs trimesh: pip install 'ngp-sdk[mesh]'") from None
    rgba = np.concatenate([mesh.colors, np.full((len(mesh.colors), 1), 255, np.uint8)], axis=1)
    tm = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, vertex_normals=mesh.normals,
                         vertex_colors=rgba, process=False)
    p.parent.mkdir(parents=True, exist_ok=True)
    tm.export(p)
    return p
