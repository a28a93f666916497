"""Ground-truth signed distance to a triangle mesh and instant-ngp's SDF training-point sampler.

Layer 0: the Warp kernel :func:`_signed_distance_kernel`; layer 1: :func:`build_mesh`,
:func:`mesh_signed_distance`, :func:`sample_sdf_training_points`.

Conventions:

- Points are float32 ``[N, 3]`` arrays in the mesh's own space (the unit cube after
  ``ngp_sdk.core.meshes.normalize_to_unit_cube``).
- The sign is negative inside, positive outside. With a mesh built with ``support_winding_number=True``
  (the default of :func:`build_mesh`) the sign comes from the generalised winding number
  (``wp.mesh_query_point_sign_winding_number``), which tolerates small holes; otherwise from the
  angle-weighted pseudo normal (``wp.mesh_query_point_sign_normal``), which needs a watertight mesh and can
  misclassify a point equidistant from many faces (e.g. the exact centre of an icosphere reads as outside).
- ``max_dist`` defaults to a large value (:data:`DEFAULT_MAX_DIST`); a point with no face closer than that
  gets ``+max_dist`` (should not happen for points near the unit cube).

Sampling follows instant-ngp's ``generate_training_samples_sdf`` split of a batch of ``n`` (``n % 8 == 0``):

- ``[0, 4n/8)``: points on the surface, area-weighted over triangles, uniform inside each triangle;
- ``[4n/8, 7n/8)``: fresh surface points plus isotropic logistic noise per axis with scale
  ``s = BOUNDING_RADIUS * offset_scale / 1024`` (instant-ngp's ``m_bounding_radius / 1024`` times
  ``surface_offset_scale``; its ``m_bounding_radius`` is the unit cube's, ``sqrt(3) / 2``, whatever the mesh);
  logistic noise is ``s * log(u / (1 - u))`` with ``u`` uniform in (0, 1) (standard deviation ``s * pi / sqrt(3)``);
- ``[7n/8, n)``: points uniform in the unit cube ``[0, 1]^3``.

Surface points get a distance of exactly 0 without a query (as instant-ngp does); the other points' distances
come from the BVH query.
Random numbers are drawn on the host with NumPy's ``default_rng(seed)``, so a seed reproduces a batch exactly.
"""

from __future__ import annotations

import numpy as np
import warp as wp

from .device import KernelArgumentError, check_array, common_device, resolve_device
from .parallel import launch_split

__all__ = [
    "BOUNDING_RADIUS",
    "DEFAULT_MAX_DIST",
    "SAMPLE_FRACTIONS",
    "build_mesh",
    "mesh_signed_distance",
    "SurfaceSampler",
    "sample_surface_points",
    "sample_sdf_training_points",
]

#: Distance cap of the closest-point query (large: the unit cube's diagonal is ~1.73).
DEFAULT_MAX_DIST = 1.0e6

#: instant-ngp's ``m_bounding_radius`` for SDFs: the radius of the unit cube's bounding sphere.
BOUNDING_RADIUS = 0.5 * 3.0**0.5

#: Eighths of a batch: (surface, near-surface, uniform), in that order.
SAMPLE_FRACTIONS = (4, 3, 1)


@wp.kernel
def _signed_distance_kernel(
    offset: int,
    mesh_id: wp.uint64,
    points: wp.array2d(dtype=wp.float32),
    max_dist: float,
    use_winding: int,
    out: wp.array(dtype=wp.float32),
):
    i = wp.tid() + offset
    p = wp.vec3(points[i, 0], points[i, 1], points[i, 2])
    d = max_dist
    if use_winding != 0:
        q = wp.mesh_query_point_sign_winding_number(mesh_id, p, max_dist)
        if q.result:
            d = q.sign * wp.length(p - wp.mesh_eval_position(mesh_id, q.face, q.u, q.v))
    else:
        q = wp.mesh_query_point_sign_normal(mesh_id, p, max_dist)
        if q.result:
            d = q.sign * wp.length(p - wp.mesh_eval_position(mesh_id, q.face, q.u, q.v))
    out[i] = d


def build_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    device: wp.context.Devicelike = None,
    *,
    support_winding_number: bool = True,
) -> wp.Mesh:
    """Build a ``wp.Mesh`` (BVH) from host arrays.

    Args:
        vertices: ``[V, 3]`` float-like vertex positions.
        faces: ``[F, 3]`` integer vertex indices, counter-clockwise seen from outside.
        device: target device (``None``: Warp's current device).
        support_winding_number: enable winding-number sign queries (more robust, slower to build).

    Returns:
        The mesh; keep a reference to it (and to its arrays, held by the mesh) while its ``id`` is used.

    Raises:
        KernelArgumentError: on wrong shapes, an empty mesh or out-of-range indices.
    """
    dev = resolve_device(device)
    v = np.ascontiguousarray(vertices, dtype=np.float32)
    f = np.ascontiguousarray(faces, dtype=np.int32)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 3:
        raise KernelArgumentError(f"vertices must have shape [V>=3, 3], got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] < 1:
        raise KernelArgumentError(f"faces must have shape [F>=1, 3], got {f.shape}")
    if f.min() < 0 or f.max() >= v.shape[0]:
        raise KernelArgumentError(f"face indices must lie in [0, {v.shape[0]}), got [{f.min()}, {f.max()}]")
    points = wp.array(v, dtype=wp.vec3, device=dev)
    indices = wp.array(f.reshape(-1), dtype=wp.int32, device=dev)
    return wp.Mesh(points=points, indices=indices, support_winding_number=support_winding_number)


def mesh_signed_distance(
    mesh: wp.Mesh,
    points: wp.array,
    *,
    out: wp.array | None = None,
    max_dist: float = DEFAULT_MAX_DIST,
    use_winding_number: bool | None = None,
) -> wp.array:
    """Signed distance from each point to the mesh (negative inside).

    Args:
        mesh: the mesh BVH (see :func:`build_mesh`).
        points: float32 ``[N, 3]`` query points on the mesh's device.
        out: optional float32 ``[N]`` output array.
        max_dist: closest-point search radius; points farther than this from every face get ``+max_dist``.
        use_winding_number: sign from the winding number (True) or the pseudo normal (False);
            default: winding number when the mesh was built with ``support_winding_number=True``.

    Returns:
        float32 ``[N]`` signed distances.

    Raises:
        KernelArgumentError: on wrong dtype/shape/device.
    """
    dev = common_device([points, out], mesh.device)
    check_array(points, "points", dtype=wp.float32, shape=(None, 3), device=dev)
    n = points.shape[0]
    if out is None:
        out = wp.empty(n, dtype=wp.float32, device=dev)
    check_array(out, "out", dtype=wp.float32, shape=(n,), device=dev)
    if use_winding_number is None:
        use_winding_number = bool(getattr(mesh, "support_winding_number", False))
    launch_split(_signed_distance_kernel, n, [mesh.id, points, float(max_dist), int(use_winding_number), out], dev)
    return out


class SurfaceSampler:
    """Area-weighted uniform sampling of a triangle soup (host side), with the per-triangle CDF built once.

    Args:
        vertices: ``[V, 3]`` vertex positions.
        faces: ``[F, 3]`` vertex indices.

    Raises:
        KernelArgumentError: when the mesh has zero total area.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        self._tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)]  # [F, 3, 3]
        tri = self._tri
        area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        total = area.sum()
        if not np.isfinite(total) or total <= 0.0:
            raise KernelArgumentError("the mesh has zero (or non-finite) surface area")
        self._cdf = np.cumsum(area / total)

    @classmethod
    def from_mesh(cls, mesh: wp.Mesh) -> SurfaceSampler:
        """The sampler of a ``wp.Mesh``'s triangles."""
        return cls(mesh.points.numpy().reshape(-1, 3), mesh.indices.numpy().reshape(-1, 3))

    def sample(self, n: int, rng: np.random.Generator, *,
               return_face_index: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """float32 ``[n, 3]`` points on the surface (and int64 ``[n]`` triangle indices with ``return_face_index``)."""
        face = np.minimum(np.searchsorted(self._cdf, rng.random(n), side="right"), len(self._cdf) - 1)
        r1 = np.sqrt(rng.random(n))
        r2 = rng.random(n)
        tri = self._tri
        a, b, c = tri[face, 0], tri[face, 1], tri[face, 2]
        p = ((1.0 - r1)[:, None] * a + (r1 * (1.0 - r2))[:, None] * b + (r1 * r2)[:, None] * c).astype(np.float32)
        return (p, face) if return_face_index else p


def sample_surface_points(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator, *,
                          return_face_index: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Area-weighted uniform samples on a triangle soup (host side); see :class:`SurfaceSampler`.

    Args:
        vertices: ``[V, 3]`` vertex positions.
        faces: ``[F, 3]`` vertex indices.
        n: number of samples.
        rng: NumPy random generator.
        return_face_index: also return the triangle of each sample.

    Returns:
        float32 ``[n, 3]`` points on the surface (and int64 ``[n]`` triangle indices with ``return_face_index``).

    Raises:
        KernelArgumentError: when the mesh has zero total area.
    """
    return SurfaceSampler(vertices, faces).sample(n, rng, return_face_index=return_face_index)


def sample_sdf_training_points(
    mesh: wp.Mesh,
    n: int,
    seed: int,
    *,
    offset_scale: float = 1.0,
    max_dist: float = DEFAULT_MAX_DIST,
    use_winding_number: bool | None = None,
    sampler: SurfaceSampler | None = None,
) -> tuple[wp.array, wp.array]:
    """Draw an SDF training batch the way instant-ngp does (4/8 surface, 3/8 near, 1/8 uniform).

    Args:
        mesh: the mesh BVH, normally normalised into the unit cube.
        n: batch size, a positive multiple of 8.
        seed: seed of the host random generator.
        offset_scale: multiplier of the near-surface noise scale ``BOUNDING_RADIUS / 1024``.
        max_dist: passed to :func:`mesh_signed_distance`.
        use_winding_number: passed to :func:`mesh_signed_distance` (the pseudo-normal sign is several times
            faster and exact for watertight meshes).
        sampler: the mesh's :class:`SurfaceSampler`, built once by a caller that draws many batches
            (default: built from ``mesh`` on each call).

    Returns:
        ``(points, distances)``: float32 ``[n, 3]`` and float32 ``[n]`` on the mesh's device, ordered
        surface ``[0, n/2)`` (distance 0), near-surface ``[n/2, 7n/8)``, uniform ``[7n/8, n)``.

    Raises:
        KernelArgumentError: when ``n`` is not a positive multiple of 8 or the mesh has zero area.
    """
    if n <= 0 or n % 8 != 0:
        raise KernelArgumentError(f"n must be a positive multiple of 8, got {n}")
    base = n // 8
    n_surface, n_near, n_uniform = (k * base for k in SAMPLE_FRACTIONS)
    rng = np.random.default_rng(seed)
    surface = (sampler or SurfaceSampler.from_mesh(mesh)).sample(n_surface + n_near, rng)
    scale = BOUNDING_RADIUS * offset_scale / 1024.0
    u = rng.uniform(1e-7, 1.0 - 1e-7, size=(n_near, 3))
    near = surface[n_surface:] + (scale * np.log(u / (1.0 - u))).astype(np.float32)
    uniform = rng.random((n_uniform, 3), dtype=np.float32)

    host = np.concatenate([surface[:n_surface], near, uniform], axis=0)
    points = wp.array(host, dtype=wp.float32, device=mesh.device)
    distances = wp.zeros(n, dtype=wp.float32, device=mesh.device)
    mesh_signed_distance(mesh, points[n_surface:], out=distances[n_surface:], max_dist=max_dist,
                         use_winding_number=use_winding_number)
    return points, distances
