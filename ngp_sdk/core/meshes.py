"""Triangle meshes in and out: OBJ, PLY and STL through trimesh, and instant-ngp's unit-cube normalisation.

:func:`load_mesh` reads a :class:`TriangleMesh` (inputs: SDF training shapes, path-tracer scenes);
:func:`save_mesh` writes a :class:`Mesh` (outputs: extracted surfaces with normals and optional vertex colours).

The SDF task trains on a mesh scaled into ``[0, 1]^3``. :func:`normalize_to_unit_cube` does what instant-ngp's
``Testbed::load_mesh`` does: inflate the bounding box by ``padding`` times its diagonal on every side, scale
its longest side to 1 (keeping the aspect ratio) and centre it on ``(0.5, 0.5, 0.5)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ngp_sdk.core.errors import DataError

__all__ = ["MESH_SUFFIXES", "TriangleMesh", "Mesh", "load_mesh", "save_mesh", "normalize_to_unit_cube"]

MESH_SUFFIXES = (".obj", ".ply", ".stl")


@dataclass(frozen=True, eq=False)
class TriangleMesh:
    """An indexed triangle mesh.

    Attributes:
        vertices: float32 ``[V, 3]`` positions.
        faces: int32 ``[F, 3]`` vertex indices (counter-clockwise seen from outside).
        name: where it came from (file path or a label).
    """

    vertices: np.ndarray
    faces: np.ndarray
    name: str = "<array>"

    def __post_init__(self) -> None:
        v = np.ascontiguousarray(self.vertices, dtype=np.float32)
        f = np.asarray(self.faces)
        if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
            raise DataError(f"{self.name}: vertices must have shape [V>0, 3], got {v.shape}")
        if f.ndim != 2 or f.shape[0] == 0:
            raise DataError(f"{self.name}: the mesh has no faces")
        if f.shape[1] != 3:
            raise DataError(f"{self.name}: faces must be triangles, got {f.shape[1]} vertices per face")
        if not np.issubdtype(f.dtype, np.integer):
            raise DataError(f"{self.name}: face indices must be integers, got {f.dtype}")
        if f.min() < 0 or f.max() >= v.shape[0]:
            raise DataError(f"{self.name}: face indices out of range [0, {v.shape[0]})")
        if not np.isfinite(v).all():
            raise DataError(f"{self.name}: vertices contain NaN or infinity")
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "faces", np.ascontiguousarray(f, dtype=np.int32))

    @property
    def bounds(self) -> np.ndarray:
        """float32 ``[2, 3]``: the bounding box's minimum and maximum corner."""
        return np.stack([self.vertices.min(axis=0), self.vertices.max(axis=0)])

    @property
    def is_watertight(self) -> bool:
        """True when every edge is shared by exactly two faces that traverse it in opposite directions
        (closed and consistently oriented, by vertex index)."""
        f = self.faces.astype(np.int64)
        directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        n = int(self.vertices.shape[0])
        key = directed[:, 0] * n + directed[:, 1]
        if np.unique(key).size != key.size:  # an edge used twice in the same direction
            return False
        reverse = directed[:, 1] * n + directed[:, 0]
        return bool(np.isin(reverse, key, assume_unique=True).all())


def _has_non_triangle_faces(path: Path) -> bool:
    """True when an OBJ or ASCII PLY file declares a face with other than 3 vertices (trimesh would split it)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".obj":
            with path.open("r", errors="replace") as fh:
                return any(line.startswith("f ") and len(line.split()) != 4 for line in fh)
        if suffix == ".ply":
            with path.open("rb") as fh:
                header = fh.read(4096)
            if b"format ascii" not in header or b"end_header" not in header:
                return False
            text = path.read_text(errors="replace")
            head, body = text.split("end_header", 1)
            n_vert = n_face = 0
            for line in head.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[0] == "element":
                    n_vert = int(parts[2]) if parts[1] == "vertex" else n_vert
                    n_face = int(parts[2]) if parts[1] == "face" else n_face
            lines = [ln for ln in body.splitlines() if ln.strip()]
            return any(ln.split()[0] != "3" for ln in lines[n_vert : n_vert + n_face])
    except (OSError, ValueError, IndexError):
        return False
    return False


def load_mesh(path: str | Path, *, allow_polygons: bool = False) -> TriangleMesh:
    """Load an OBJ, PLY or STL file as one triangle mesh (scenes are concatenated, ``force="mesh"``).

    Args:
        path: mesh file.
        allow_polygons: accept quads/polygons (triangulated by trimesh) instead of raising.

    Returns:
        The mesh in its file's coordinates.

    Raises:
        DataError: when the file is missing, has an unsupported suffix, cannot be parsed, holds no faces,
            or (unless ``allow_polygons``) holds non-triangle faces.
    """
    import trimesh

    p = Path(path)
    if not p.is_file():
        raise DataError(f"mesh file not found: {p}")
    if p.suffix.lower() not in MESH_SUFFIXES:
        raise DataError(f"{p}: unsupported mesh format {p.suffix!r}; expected one of {MESH_SUFFIXES}")
    if not allow_polygons and _has_non_triangle_faces(p):
        raise DataError(f"{p}: the mesh has non-triangle faces; triangulate it or pass allow_polygons=True")
    try:
        mesh = trimesh.load(p, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for malformed files
        raise DataError(f"{p}: cannot read mesh: {exc}") from exc
    faces = getattr(mesh, "faces", None)
    vertices = getattr(mesh, "vertices", None)
    if faces is None or vertices is None or len(faces) == 0 or len(vertices) == 0:
        raise DataError(f"{p}: the mesh is empty (no triangles)")
    return TriangleMesh(np.asarray(vertices), np.asarray(faces), name=str(p))


def normalize_to_unit_cube(mesh: TriangleMesh, padding: float = 0.005) -> tuple[TriangleMesh, float, np.ndarray]:
    """Scale and translate a mesh into ``[0, 1]^3`` like instant-ngp.

    The bounding box is inflated by ``padding * |diagonal|`` on each side, its longest side is scaled to 1
    and its centre is moved to ``(0.5, 0.5, 0.5)``: ``normalized = vertices * scale + offset``.

    Args:
        mesh: the mesh to normalise.
        padding: inflation per side as a fraction of the bounding box diagonal (instant-ngp: 0.005), >= 0.

    Returns:
        ``(normalized_mesh, scale, offset)`` with ``offset`` float32 ``[3]``; invert with
        ``(normalized - offset) / scale``.

    Raises:
        DataError: for a negative padding or a mesh whose bounding box is a single point.
    """
    if not np.isfinite(padding) or padding < 0:
        raise DataError(f"padding must be a finite number >= 0, got {padding}")
    lo, hi = mesh.bounds.astype(np.float64)
    diag = hi - lo
    inflate = padding * float(np.linalg.norm(diag))
    extent = float((diag + 2.0 * inflate).max())
    if extent <= 0.0:
        raise DataError(f"{mesh.name}: the mesh's bounding box is degenerate (a single point)")
    scale = 1.0 / extent
    offset = 0.5 - 0.5 * (lo + hi) * scale
    vertices = (mesh.vertices.astype(np.float64) * scale + offset).astype(np.float32)
    return TriangleMesh(vertices, mesh.faces, name=mesh.name), scale, offset.astype(np.float32)


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
