"""Camera pose refinement of the NeRF primitive (instant-ngp's extrinsic optimisation), and pose-error metrics.

:class:`CameraRefiner` keeps, per training camera, the pose it was given (``base``), a correction ``(w, tau)``
(axis-angle rotation about a pivot - the scene centre by default, or the camera centre - and a translation;
:mod:`warp_kernels.camera_refinement`), Adam state, and the corrected poses the task's rays are generated from.
A training step hands it the field's gradient at the sample points; every ``interval`` steps it turns the summed
gradients into gradients of the corrections, takes one Adam step (cameras that got no rays are left alone) and
re-applies the corrections. :func:`coarse_to_fine_weights` is BARF's schedule of the field's levels.

:func:`perturb_nerf_poses` makes the seeded noisy poses of the benchmark and the tests; :func:`pose_errors`
measures rotation (degrees) and position (world units) errors against ground truth.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import warp as wp

from ngp_sdk.core.errors import SnapshotError
from ngp_sdk.core.files import write_text_atomic
from warp_kernels.adam import adam_step
from warp_kernels.camera_refinement import (
    POSE_CORRECTION_DIMS,
    accumulate_camera_gradients,
    apply_focal_corrections,
    apply_pose_corrections,
    camera_gradients_to_parameters,
)

__all__ = ["CameraRefiner", "coarse_to_fine_weights", "perturb_nerf_poses", "pose_errors", "align_poses",
           "alignment_transform", "write_refined_transforms"]


def coarse_to_fine_weights(step: int, n_levels: int, *, steps: int, start_levels: float) -> np.ndarray:
    """BARF's coarse-to-fine weights of ``n_levels`` encoding levels at training step ``step``.

    ``alpha = start_levels + (n_levels - start_levels) * min(step / steps, 1)`` and level ``l`` gets
    ``(1 - cos(pi * clamp(alpha - l, 0, 1))) / 2``: levels below ``alpha - 1`` count fully, those above ``alpha``
    not at all, one level fades in between (Lin et al., BARF, 2021, eq. 14). ``steps`` <= 0: all ones.

    Returns:
        float32 ``[n_levels]`` in [0, 1], non-increasing in ``l``, all 1 from ``step >= steps`` on.
    """
    if steps <= 0:
        return np.ones(n_levels, np.float32)
    alpha = start_levels + (n_levels - start_levels) * min(max(step, 0) / steps, 1.0)
    t = np.clip(alpha - np.arange(n_levels, dtype=np.float64), 0.0, 1.0)
    return ((1.0 - np.cos(np.pi * t)) / 2.0).astype(np.float32)


def _as_pivot(pivot) -> tuple[float, float, float] | None:
    """A pivot as 3 floats (None stays None: each camera's own centre)."""
    return None if pivot is None else tuple(float(v) for v in np.asarray(pivot, np.float64).reshape(3))


class CameraRefiner:
    """Per-camera pose corrections learned by Adam.

    Args:
        base_poses: float32 ``[n, 3, 4]`` internal camera-to-world matrices as given.
        device: resolved Warp device.
        learning_rate: Adam step size.
        l2_reg: L2 pull of the corrections towards zero (the given poses).
        interval: steps whose gradients one update sums.
        refine: bool ``[n]`` cameras to refine (default all).
        cam_params: float32 ``[n, 4]`` ``(fx, fy, cx, cy)`` to refine one focal length shared by all cameras
            (a log-scale of ``fx`` and ``fy``, instant-ngp's ``optimize_focal_length``); None = keep them.
        focal_learning_rate: Adam step of the focal log-scale.
        decay_updates: both steps fall tenfold every this many updates (0 = constant).
        pivot: the point (internal units) every camera's rotation correction turns about; None = the camera's
            own centre (instant-ngp). About the scene's centre, a rotation is an orbit (only parallax changes the
            image) and a translation shifts it: the two no longer pull along nearly the same image motion,
            which a per-parameter Adam step cannot untangle.
        local: corrections in each camera's own axes (right, down, forward), so the weakly observed components
            (orbit, motion along the view) are separate parameters with their own Adam scale.
    """

    def __init__(self, base_poses: np.ndarray, device, *, learning_rate: float = 1e-3, l2_reg: float = 1e-4,
                 interval: int = 1, refine: np.ndarray | None = None, cam_params: np.ndarray | None = None,
                 focal_learning_rate: float = 1e-3, decay_updates: int = 0, pivot=None, local: bool = False):
        base = np.ascontiguousarray(base_poses, np.float32).reshape(-1, 3, 4)
        n = base.shape[0]
        self.device = device
        self.learning_rate, self.l2_reg, self.interval = float(learning_rate), float(l2_reg), int(interval)
        self.decay_updates = int(decay_updates)
        self.pivot = _as_pivot(pivot)
        self.local = bool(local)
        self.base = wp.array(base, dtype=wp.float32, device=device)
        #: corrected poses [n, 3, 4]: what the task's rays are generated from
        self.poses = wp.array(base, dtype=wp.float32, device=device)
        z = np.zeros((n, POSE_CORRECTION_DIMS), np.float32)
        self.corrections, self.grads, self._m, self._v = (wp.array(z, dtype=wp.float32, device=device)
                                                          for _ in range(4))
        mask = np.ones(n, bool) if refine is None else np.asarray(refine, bool).reshape(n)
        self._mask_host = mask.copy()
        self.mask = wp.array(mask.astype(np.int32), dtype=wp.int32, device=device)
        self.n_updates = 0
        self._pending_steps = 0
        #: corrected camera parameters [n, 4] when the focal length is refined (what rays use), else None
        self.params: wp.array | None = None
        self.focal_learning_rate = float(focal_learning_rate)
        if cam_params is not None:
            cp = np.ascontiguousarray(cam_params, np.float32).reshape(n, 4)
            self.base_params = wp.array(cp, dtype=wp.float32, device=device)
            self.params = wp.array(cp, dtype=wp.float32, device=device)
            self.focal_log_scale, self._focal_grad, self._focal_m, self._focal_v = (
                wp.zeros(1, dtype=wp.float32, device=device) for _ in range(4))

    @property
    def focal_scale(self) -> float:
        """The shared focal-length factor learned so far (1 when the focal length is not refined)."""
        return 1.0 if self.params is None else float(np.exp(self.focal_log_scale.numpy()[0]))

    @property
    def n_cameras(self) -> int:
        return self.base.shape[0]

    @property
    def active(self) -> bool:
        """Whether any camera is being refined."""
        return bool(self._mask_host.any())

    def accumulate(self, packed_info: wp.array, t_starts: wp.array, grad_positions: wp.array,
                   directions: wp.array, cam_index: wp.array, *, n_rays: int, grad_scale,
                   pixel_xy: wp.array | None = None) -> None:
        """Add one batch's camera gradients (see :func:`warp_kernels.camera_refinement.accumulate_camera_gradients`;
        ``pixel_xy`` of the rays is needed when the focal length is refined)."""
        focal = None
        if self.params is not None and pixel_xy is not None:
            focal = (pixel_xy, self.params, self.poses, self._focal_grad)
        accumulate_camera_gradients(packed_info, t_starts, grad_positions, directions, cam_index, self.mask,
                                    self.grads, n_rays=n_rays, grad_scale=grad_scale, focal=focal, focal_shared=True)

    def end_step(self) -> bool:
        """Count a training step; every ``interval`` steps update the corrections. Returns whether it did."""
        self._pending_steps += 1
        if self._pending_steps < self.interval:
            return False
        self._pending_steps = 0
        self.n_updates += 1
        decay = 0.1 ** (self.n_updates / self.decay_updates) if self.decay_updates else 1.0
        camera_gradients_to_parameters(self.grads, self.base, self.corrections, pivot=self.pivot, local=self.local)
        adam_step(self.corrections.flatten(), self.grads.flatten(), self._m.flatten(), self._v.flatten(),
                  step=self.n_updates, learning_rate=self.learning_rate * decay, beta1=0.9, beta2=0.99,
                  epsilon=1e-10, l2_reg=self.l2_reg, skip_zero_grad=True)
        self._apply()
        if self.params is not None:
            adam_step(self.focal_log_scale, self._focal_grad, self._focal_m, self._focal_v, step=self.n_updates,
                      learning_rate=self.focal_learning_rate * decay, beta1=0.9, beta2=0.99, epsilon=1e-10,
                      skip_zero_grad=True)
            apply_focal_corrections(self.base_params, self.focal_log_scale, shared=True, out=self.params)
        return True

    def _apply(self) -> None:
        apply_pose_corrections(self.base, self.corrections, pivot=self.pivot, local=self.local, out=self.poses)

    def set_camera(self, index: int, pose: np.ndarray, refine: bool) -> None:
        """A new pose for camera ``index`` (a live frame in a slot): its correction and Adam state start over."""
        z = np.zeros(POSE_CORRECTION_DIMS, np.float32)
        for arr in (self.corrections, self.grads, self._m, self._v):
            wp.copy(arr, wp.array(z, dtype=wp.float32, device=self.device), dest_offset=index * z.size,
                    count=z.size)
        p = np.ascontiguousarray(pose, np.float32).reshape(-1)
        for arr in (self.base, self.poses):
            wp.copy(arr, wp.array(p, dtype=wp.float32, device=self.device), dest_offset=index * 12, count=12)
        self._mask_host[index] = bool(refine)
        wp.copy(self.mask, wp.array([int(bool(refine))], dtype=wp.int32, device=self.device), dest_offset=index,
                count=1)

    def corrected_poses(self) -> np.ndarray:
        """float32 ``[n, 3, 4]`` corrected internal poses (a host copy)."""
        return self.poses.numpy().copy()

    def state_dict(self) -> dict[str, Any]:
        state = {"corrections": self.corrections.numpy().copy(), "m": self._m.numpy().copy(),
                 "v": self._v.numpy().copy(), "mask": self._mask_host.copy(), "n_updates": self.n_updates,
                 "base": self.base.numpy().copy(), "local": self.local,
                 "pivot": None if self.pivot is None else list(self.pivot)}
        if self.params is not None:
            state["focal_log_scale"] = float(self.focal_log_scale.numpy()[0])
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            n = self.n_cameras
            arrays = [np.asarray(state[k], np.float32) for k in ("corrections", "m", "v")]
            if any(a.shape != (n, POSE_CORRECTION_DIMS) for a in arrays):
                raise SnapshotError(f"camera corrections: expected [{n}, 6] arrays, got {[a.shape for a in arrays]}")
            mask = np.asarray(state["mask"], bool).reshape(n)
            self.n_updates = int(state["n_updates"])
            base = np.asarray(state["base"], np.float32) if "base" in state else None
            if base is not None and base.shape != (n, 3, 4):
                raise SnapshotError(f"camera refinement: expected [{n}, 3, 4] base poses, got {base.shape}")
            # the parametrisation the corrections were learned in (older snapshots: camera centre, world axes)
            pivot = _as_pivot(state.get("pivot"))
            local = bool(state.get("local", False))
        except (KeyError, TypeError, ValueError) as e:
            raise SnapshotError(f"camera refinement state is incomplete ({e})") from None
        for dst, a in zip((self.corrections, self._m, self._v), arrays, strict=True):
            dst.assign(wp.array(a, dtype=wp.float32, device=self.device))
        self._mask_host = mask
        self.mask.assign(wp.array(mask.astype(np.int32), dtype=wp.int32, device=self.device))
        if base is not None:  # the poses the corrections apply to (a live slot's, or ones set after loading)
            self.base.assign(wp.array(base, dtype=wp.float32, device=self.device))
        self.pivot, self.local = pivot, local
        self._apply()
        if self.params is not None and "focal_log_scale" in state:
            try:
                s = float(state["focal_log_scale"])
            except (TypeError, ValueError) as e:
                raise SnapshotError(f"camera refinement: bad focal_log_scale ({e})") from None
            self.focal_log_scale.assign(wp.array([s], dtype=wp.float32, device=self.device))
            apply_focal_corrections(self.base_params, self.focal_log_scale, shared=True, out=self.params)


def _axis_angle_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    a = axis / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def perturb_nerf_poses(nerf_poses: np.ndarray, *, rotation_deg: float, translation_fraction: float,
                       seed: int = 0, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Seeded noisy copies of NeRF-world poses ``[n, 4, 4]``: every camera is rotated about its centre by exactly
    ``rotation_deg`` degrees about a random axis and moved by ``translation_fraction`` of its distance to
    ``center`` in a random direction."""
    poses = np.array(nerf_poses, np.float64, copy=True)
    rng = np.random.default_rng(seed)
    for p in poses:
        r = _axis_angle_matrix(rng.normal(size=3), math.radians(rotation_deg))
        p[:3, :3] = r @ p[:3, :3]
        d = rng.normal(size=3)
        p[:3, 3] += d / np.linalg.norm(d) * translation_fraction * np.linalg.norm(p[:3, 3] - np.asarray(center))
    return poses


def alignment_transform(poses: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """float64 ``[4, 4]`` rigid motion ``A`` (no scale) that best aligns the camera centres of ``poses``
    ``[n, 3|4, 4]`` with the reference's (least squares, Kabsch): ``A @ pose`` ~ reference."""
    ca = np.asarray(poses, np.float64)[:, :3, 3]
    cb = np.asarray(reference, np.float64)[:, :3, 3]
    ma, mb = ca.mean(0), cb.mean(0)
    u, _, vt = np.linalg.svd((cb - mb).T @ (ca - ma))
    d = np.sign(np.linalg.det(u @ vt))
    a = np.eye(4)
    a[:3, :3] = u @ np.diag([1.0, 1.0, d]) @ vt
    a[:3, 3] = mb - a[:3, :3] @ ma
    return a


def align_poses(poses: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``poses [n, 3|4, 4]`` moved by :func:`alignment_transform`: the reconstruction's frame is only defined up
    to a rigid motion once poses are refined, so errors are measured after it (as BARF and others do)."""
    a = alignment_transform(poses, reference)
    out = np.array(poses, np.float64, copy=True)
    out[:, :3, :3] = a[:3, :3] @ out[:, :3, :3]
    out[:, :3, 3] = out[:, :3, 3] @ a[:3, :3].T + a[:3, 3]
    return out


def pose_errors(poses: np.ndarray, reference: np.ndarray, *, align: bool = False) -> dict[str, float]:
    """Mean / max rotation error (degrees) and mean position error (world units) of ``[n, 3|4, 4]`` poses;
    ``align``: after :func:`align_poses`."""
    if align:
        poses = align_poses(poses, reference)
    a, b = np.asarray(poses, np.float64)[:, :3], np.asarray(reference, np.float64)[:, :3]
    ra = a[:, :, :3] / np.linalg.norm(a[:, :, :3], axis=1, keepdims=True)
    rb = b[:, :, :3] / np.linalg.norm(b[:, :, :3], axis=1, keepdims=True)
    tr = np.einsum("nij,nij->n", ra, rb)
    ang = np.degrees(np.arccos(np.clip((tr - 1) / 2, -1, 1)))
    pos = np.linalg.norm(a[:, :, 3] - b[:, :, 3], axis=1)
    return {"rotation_deg_mean": float(ang.mean()), "rotation_deg_max": float(ang.max()),
            "position_mean": float(pos.mean())}


def write_refined_transforms(path: str | os.PathLike, scene: Any, nerf_poses: np.ndarray,
                             image_paths: Sequence[Path] | None = None, *, downscale: int = 1) -> str:
    """Write cameras as an instant-ngp ``transforms.json`` (atomic): per frame ``file_path`` (relative to the
    file's folder when ``image_paths`` are known, else the scene's file names), the intrinsics at the images'
    full resolution (``downscale`` undone) and ``transform_matrix`` = ``nerf_poses[i]``; top level ``scale``,
    ``offset`` and ``aabb_scale`` so the file reloads into the same internal frame.

    Args:
        path: output file.
        scene: a :class:`~ngp_sdk.nerf.scene.NerfScene` (intrinsics, file names, scale, offset, aabb_scale).
        nerf_poses: float ``[n, 4, 4]`` NeRF-world camera-to-world matrices (OpenGL axes).
        image_paths: the frames' image files.
        downscale: the factor the intrinsics were shrunk by at load time.
    """
    out = Path(path)
    frames = []
    names = list(scene.file_names) if scene.file_names else [f"frame_{i:05d}" for i in range(scene.n_cameras)]
    for i, k in enumerate(scene.intrinsics):
        if image_paths is not None:
            name = os.path.relpath(Path(image_paths[i]).resolve(), out.resolve().parent)
        else:
            name = names[i]
        f = float(downscale)
        rec: dict[str, Any] = {"file_path": Path(name).as_posix(), "fl_x": k.fx * f, "fl_y": k.fy * f,
                               "cx": k.cx * f, "cy": k.cy * f, "camera_model": k.model,
                               "transform_matrix": np.asarray(nerf_poses[i], np.float64).tolist()}
        if k.model == "OPENCV_FISHEYE":
            rec.update(zip(("k1", "k2", "k3", "k4"), (float(v) for v in k.dist), strict=False))
        elif k.model == "OPENCV":
            rec.update(zip(("k1", "k2", "p1", "p2"), (float(v) for v in k.dist), strict=False))
        frames.append(rec)
    doc = {"scale": float(scene.scale), "offset": [float(v) for v in scene.offset],
           "aabb_scale": int(scene.aabb_scale), "frames": frames}
    write_text_atomic(out, json.dumps(doc, indent=2))
    return str(out)
