"""Mesh export: marching cubes on a NeRF's density (vertex colours from the colour network) or an SDF.

The density is sampled at the centres of a ``resolution^3`` grid over the scene box (internal space), the
``threshold`` iso-surface is extracted with scikit-image's marching cubes (instant-ngp's default threshold
is 2.5), and every vertex is coloured by the colour network looking *into* the surface (direction = density
gradient, i.e. the inward normal). Vertices are returned in the dataset's NeRF (input) frame; faces are wound
so their normals point out of the dense region. PLY and OBJ files (with vertex colours) are written with
trimesh. :func:`extract_sdf_mesh` meshes the zero level set of any signed distance callback (negative inside)
with the same marching cubes, outward normals and winding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import warp as wp

from .errors import DataError

__all__ = ["Mesh", "extract_isosurface", "extract_mesh", "extract_sdf_mesh", "remove_small_components", "save_mesh"]


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh.

    Attributes:
        vertices: float32 ``[V, 3]`` in the data's frame (NeRF world frame, or the input mesh's frame).
        faces: int32 ``[F, 3]`` counter-clockwise seen from outside.
        colors: uint8 ``[V, 3]`` vertex colours (the data's 8-bit code space), or None.
        normals: float32 ``[V, 3]`` outward unit normals (same frame).
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None
    normals: np.ndarray


def _sample_volume(fn, resolution: int, lo: np.ndarray, hi: np.ndarray, device) -> np.ndarray:
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


def extract_sdf_mesh(sdf_fn, *, resolution: int = 256, aabb=((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
                     level: float = 0.0, device=None) -> Mesh:
    """Marching-cubes mesh of the ``level`` set of a signed distance callback (negative inside).

    Args:
        sdf_fn: ``points [M, 3] -> [M]`` (or ``[M, 1]``) float32 Warp arrays.
        resolution: grid cells per axis over ``aabb``.
        aabb: ``(min [3], max [3])`` box to mesh, in the SDF's space.
        level: iso-value (0 = the surface).
        device: device of the point arrays passed to ``sdf_fn`` (``None`` = Warp's current).

    Returns:
        A closed :class:`Mesh` in the SDF's space with outward normals and no colours (where the surface
        leaves the box, the box's faces close it).

    Raises:
        DataError: bad resolution, or no surface in the box.
    """
    lo, hi = (np.asarray(v, np.float64).reshape(3) for v in aabb)
    vol = _sample_volume(lambda p: -sdf_fn(p).numpy(), resolution, lo, hi, wp.get_device(device))
    # one layer of "outside" around the box closes surfaces the box cuts, so the mesh stays watertight
    cell = (hi - lo) / int(resolution)
    vol = np.pad(vol, 1, constant_values=min(float(vol.min()), -float(level)) - 1.0)
    verts, faces, n = extract_isosurface(vol, -float(level), lo - cell, hi + cell)
    return Mesh(vertices=verts.astype(np.float32), faces=faces.astype(np.int32), colors=None,
                normals=n.astype(np.float32))


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
    lo, hi = (np.asarray(v, np.float64).reshape(3) for v in (aabb if aabb is not None else task.scene.aabb))
    params = task.optimizer.inference_params()
    density = task.field.density
    vol = _sample_volume(lambda p: density(p, params).numpy(), resolution, lo, hi, task.field.device)
    vol = remove_small_components(vol, threshold, min_component)
    verts, faces, n = extract_isosurface(vol, threshold, lo, hi)
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
    """Write ``.ply`` or ``.obj`` (with vertex colours when the mesh has them) with trimesh."""
    p = Path(path)
    if p.suffix.lower() not in (".ply", ".obj"):
        raise DataError(f"{p}: mesh files must end in .ply or .obj")
    try:
        import trimesh
    except ImportError:
        raise DataError("mesh export needs trimesh: pip install 'ngp-sdk[mesh]'") from None
    rgba = None
    if mesh.colors is not None:
        rgba = np.concatenate([mesh.colors, np.full((len(mesh.colors), 1), 255, np.uint8)], axis=1)
    tm = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, vertex_normals=mesh.normals,
                         vertex_colors=rgba, process=False)
    p.parent.mkdir(parents=True, exist_ok=True)
    tm.export(p)
    return p
