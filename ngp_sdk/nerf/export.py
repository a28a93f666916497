"""NeRF mesh export: marching cubes on the density, vertex colours from the colour network.

The density is sampled at the centres of a ``resolution^3`` grid over the scene box (internal space), the
``threshold`` iso-surface is extracted with marching cubes (instant-ngp's default threshold is 2.5), and every
vertex is coloured by the colour network looking *into* the surface (direction = density gradient, i.e. the
inward normal). Vertices are returned in the dataset's NeRF (input) frame; faces are wound so their normals
point out of the dense region.
"""

from __future__ import annotations

import numpy as np
import warp as wp

from ngp_sdk.core.isosurface import extract_isosurface, remove_small_components, sample_volume
from ngp_sdk.core.meshes import Mesh

__all__ = ["extract_mesh"]


def extract_mesh(task, *, resolution: int = 256, threshold: float = 2.5, aabb=None,
                 min_component: float = 0.01) -> Mesh:
    """Marching-cubes mesh of a NeRF task's density field.

    Args:
        task: a :class:`~ngp_sdk.nerf.task.NerfTask` (its inference parameters are used).
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
    vol = sample_volume(lambda p: density(p, params).numpy(), resolution, lo, hi, task.field.device)
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
