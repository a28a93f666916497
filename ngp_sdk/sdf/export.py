"""SDF mesh export: marching cubes of the zero level set of a signed distance callback (negative inside)."""

from __future__ import annotations

import numpy as np
import warp as wp

from ngp_sdk.core.isosurface import extract_isosurface, sample_volume
from ngp_sdk.core.meshes import Mesh

__all__ = ["extract_sdf_mesh"]


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
    vol = sample_volume(lambda p: -sdf_fn(p).numpy(), resolution, lo, hi, wp.get_device(device))
    # one layer of "outside" around the box closes surfaces the box cuts, so the mesh stays watertight
    cell = (hi - lo) / int(resolution)
    vol = np.pad(vol, 1, constant_values=min(float(vol.min()), -float(level)) - 1.0)
    verts, faces, n = extract_isosurface(vol, -float(level), lo - cell, hi + cell)
    return Mesh(vertices=verts.astype(np.float32), faces=faces.astype(np.int32), colors=None,
                normals=n.astype(np.float32))
