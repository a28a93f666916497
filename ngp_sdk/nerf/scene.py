"""Scene metadata of a NeRF snapshot: cameras and the NeRF <-> internal transform, without any image.

A trained NeRF must render, evaluate its cameras and export meshes in the dataset's own (NeRF) frame long
after the images are gone, so a snapshot carries this small record: every training camera's intrinsics and
internal camera-to-world pose, the file's NeRF poses, and ``aabb_scale`` / ``scale`` / ``offset`` / ``up``
(see :mod:`ngp_sdk.core.cameras` for the conventions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ngp_sdk.core.cameras import Intrinsics, nerf_matrix_to_ngp, ngp_position_to_nerf, pack_intrinsics
from ngp_sdk.core.errors import DataError, SnapshotError
from ngp_sdk.nerf.data import NerfDataset
from warp_kernels.occupancy_grid import n_cascades_for_aabb_scale

__all__ = ["NerfScene"]


@dataclass(frozen=True, kw_only=True, eq=False)
class NerfScene:
    """Cameras and scene box of a NeRF dataset (no pixels).

    Attributes:
        intrinsics: per-camera intrinsics at the trained resolution.
        poses: float32 ``[n, 3, 4]`` internal camera-to-world matrices.
        nerf_poses: float64 ``[n, 4, 4]`` the file's (NeRF/OpenGL) camera-to-world matrices.
        aabb_scale: side of the internal scene box, centred at 0.5.
        scale: NeRF -> internal scale.
        offset: NeRF -> internal offset.
        up: internal up vector.
        has_alpha: whether the training images had alpha (then evaluation uses a white background).
        file_names: ``file_path`` of every camera's image.
    """

    intrinsics: tuple[Intrinsics, ...]
    poses: np.ndarray
    nerf_poses: np.ndarray
    aabb_scale: int
    scale: float
    offset: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)
    has_alpha: bool = False
    file_names: tuple[str, ...] = ()

    @classmethod
    def from_dataset(cls, ds: NerfDataset) -> NerfScene:
        return cls(intrinsics=tuple(ds.intrinsics), poses=np.asarray(ds.poses, np.float32),
                   nerf_poses=np.asarray(ds.nerf_poses, np.float64), aabb_scale=int(ds.aabb_scale),
                   scale=float(ds.scale), offset=tuple(float(v) for v in ds.offset),
                   up=tuple(float(v) for v in ds.up), has_alpha=bool(ds.has_alpha),
                   file_names=tuple(ds.file_names))

    @property
    def n_cameras(self) -> int:
        return len(self.intrinsics)

    @property
    def n_cascades(self) -> int:
        """Occupancy cascades for ``aabb_scale`` (instant-ngp)."""
        return n_cascades_for_aabb_scale(self.aabb_scale)

    @property
    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        """Internal scene box ``(min [3], max [3])``: ``0.5 -+ aabb_scale / 2``."""
        half = 0.5 * self.aabb_scale
        return np.full(3, 0.5 - half, np.float32), np.full(3, 0.5 + half, np.float32)

    @property
    def centre(self) -> np.ndarray:
        """Internal position of the NeRF origin (the usual orbit centre)."""
        return np.asarray(self.offset, np.float64)[[1, 2, 0]]

    def camera_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(cam_params [n, 4], cam_dist [n, 4], cam_model [n])`` for :func:`warp_kernels.rays.generate_rays`."""
        return pack_intrinsics(self.intrinsics)

    def to_nerf(self, points: np.ndarray) -> np.ndarray:
        """Internal points ``[..., 3]`` -> the dataset's NeRF frame."""
        return ngp_position_to_nerf(points, self.scale, self.offset)

    def check_compatible(self, ds: NerfDataset) -> None:
        """Raise DataError unless ``ds`` maps NeRF to internal space like this scene (same scale and offset)."""
        if not (np.isclose(ds.scale, self.scale) and np.allclose(ds.offset, self.offset)):
            raise DataError(f"dataset scale/offset ({ds.scale}, {ds.offset}) differ from the trained scene's "
                            f"({self.scale}, {self.offset}); its poses would not line up")

    def poses_of(self, ds: NerfDataset) -> np.ndarray:
        """float32 ``[n, 3, 4]`` internal poses of ``ds``'s cameras in *this* scene's internal frame.

        A dataset in the same NeRF world but normalised with another ``scale`` / ``offset`` (e.g. the val split of
        a capture imported from a bag, whose scene box was estimated) has its file poses re-expressed with this
        scene's scale and offset.
        """
        if np.isclose(ds.scale, self.scale) and np.allclose(ds.offset, self.offset):
            return ds.poses
        return np.stack([nerf_matrix_to_ngp(m, self.scale, self.offset)[:3] for m in ds.nerf_poses]).astype(np.float32)

    # -- snapshots -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        params, dist, model = self.camera_arrays()
        sizes = np.array([(k.width, k.height) for k in self.intrinsics], dtype=np.int32).reshape(-1, 2)
        return {"cam_params": params, "cam_dist": dist, "cam_model": model.astype(np.int32), "sizes": sizes,
                "models": [k.model for k in self.intrinsics], "poses": self.poses,
                "nerf_poses": self.nerf_poses, "aabb_scale": self.aabb_scale, "scale": self.scale,
                "offset": list(self.offset), "up": list(self.up), "has_alpha": self.has_alpha,
                "file_names": list(self.file_names)}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> NerfScene:
        try:
            params, dist = np.asarray(s["cam_params"]), np.asarray(s["cam_dist"])
            sizes, models = np.asarray(s["sizes"]), list(s["models"])
            intr = tuple(Intrinsics(width=int(sizes[i, 0]), height=int(sizes[i, 1]), fx=float(params[i, 0]),
                                    fy=float(params[i, 1]), cx=float(params[i, 2]), cy=float(params[i, 3]),
                                    model=str(models[i]), dist=tuple(float(v) for v in dist[i]))
                         for i in range(len(models)))
            return cls(intrinsics=intr, poses=np.asarray(s["poses"], np.float32).reshape(-1, 3, 4),
                       nerf_poses=np.asarray(s["nerf_poses"], np.float64).reshape(-1, 4, 4),
                       aabb_scale=int(s["aabb_scale"]), scale=float(s["scale"]),
                       offset=tuple(float(v) for v in s["offset"]), up=tuple(float(v) for v in s["up"]),
                       has_alpha=bool(s["has_alpha"]), file_names=tuple(str(v) for v in s["file_names"]))
        except (KeyError, TypeError, ValueError, IndexError, DataError) as e:
            raise SnapshotError(f"NeRF snapshot scene metadata is incomplete or invalid ({e})") from None
