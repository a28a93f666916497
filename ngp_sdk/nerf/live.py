"""Live NeRF: a NeRF task whose training set grows as posed frames arrive (instant-ngp's empty dataset).

Frames live in fixed-capacity buffers allocated up front, like instant-ngp's ``n_images_for_training``: uint8
pixel rows ``[capacity, max_h * max_w * C]`` plus per-slot sizes and cameras. Training (the unchanged
:class:`~ngp_sdk.nerf.task.NerfTask` step) samples only the slots filled so far.

Thread safety: :meth:`LiveNerfTask.add_frame` never waits for a training step. It converts the frame on the
caller's thread and queues it under a short lock; the training thread uploads queued frames to the device
buffers at the start of its next step (or :meth:`LiveNerfTask.flush`), so a step never sees half a frame.

Replacement policies when the buffer is full:

- ``"ring"``: frame ``i`` replaces frame ``i - capacity`` (the oldest).
- ``"keyframes"``: with ``d(a, b) = |c_a - c_b| + KEYFRAME_ANGLE_WEIGHT * angle(R_a, R_b)`` (camera centres in
  internal units, rotation angle in radians), a new frame is kept only if its distance to the nearest kept
  frame is larger than the smallest nearest-neighbour distance among the kept frames; it then replaces the
  frame that has that smallest distance (the most redundant one). Otherwise it is discarded and
  :meth:`LiveNerfTask.add_frame` returns -1.

Depth and noisy poses: a frame's ``depth`` (z-depth in NeRF world units, 0 = none) supervises the rendered
depth when ``training.depth_supervision_lambda > 0`` (else it is ignored); a frame added with
``refine_pose=True`` (or every frame with ``training.optimize_extrinsics``) gets a learned pose correction
(:class:`~ngp_sdk.nerf.refine.CameraRefiner`, one row per slot; a slot's correction starts over when a new frame
takes it). :meth:`LiveNerfTask.training_poses` returns the held frames' refined poses.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any

import numpy as np
import warp as wp

from ngp_sdk.core.cameras import CAMERA_MODELS, Intrinsics, nerf_matrix_to_ngp, pack_intrinsics
from ngp_sdk.core.config import config_from
from ngp_sdk.core.errors import ConfigError, DataError
from ngp_sdk.core.task import LiveTask
from ngp_sdk.nerf.config import NerfConfig
from ngp_sdk.nerf.scene import NerfScene
from ngp_sdk.nerf.task import NerfTask

__all__ = ["LiveNerfTask", "LIVE_POLICIES", "KEYFRAME_ANGLE_WEIGHT"]

#: Replacement policies of a full live buffer.
LIVE_POLICIES = ("ring", "keyframes")
#: Internal units per radian of camera rotation in the keyframe distance.
KEYFRAME_ANGLE_WEIGHT = 0.25


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class _Frame:
    """A converted frame waiting to be uploaded to its slot."""

    slot: int
    row: np.ndarray
    size: tuple[int, int]
    pose: np.ndarray
    nerf_pose: np.ndarray
    intrinsics: Intrinsics
    depth: np.ndarray | None = None
    refine: bool = False


def _placeholder_scene(aabb_scale: int, scale: float, offset: tuple[float, float, float]) -> NerfScene:
    intr = Intrinsics(width=1, height=1, fx=1.0, fy=1.0, cx=0.5, cy=0.5)
    pose = nerf_matrix_to_ngp(np.eye(4), scale, offset)[:3].astype(np.float32)
    return NerfScene(intrinsics=(intr,), poses=pose[None], nerf_poses=np.eye(4)[None], aabb_scale=aabb_scale,
                     scale=scale, offset=offset)


def _rotation_angle(r: np.ndarray, rs: np.ndarray) -> np.ndarray:
    """Angles (radians) between rotation ``r [3, 3]`` and each of ``rs [n, 3, 3]``."""
    tr = np.einsum("ij,nij->n", r, rs)
    return np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0))


class LiveNerfTask(NerfTask, LiveTask):
    """A :class:`NerfTask` trained on frames added at run time (see the module docstring).

    Args:
        config: NeRF configuration.
        aabb_scale: side of the internal scene box (power of two, 1..128).
        scale: NeRF world units -> internal units.
        offset: added after scaling (NeRF axis order).
        capacity: most frames kept.
        min_frames: frames needed before :meth:`ready` is True.
        policy: ``"ring"`` or ``"keyframes"``.
        max_resolution: ``(width, height)`` bound of every frame; default: the first frame's size.
        device: Warp device.
    """

    def __init__(self, config: NerfConfig, *, aabb_scale: int = 1, scale: float = 0.33,
                 offset: tuple[float, float, float] = (0.5, 0.5, 0.5), capacity: int = 256, min_frames: int = 1,
                 policy: str = "ring", max_resolution: tuple[int, int] | None = None, device=None):
        if aabb_scale < 1 or aabb_scale > 128 or aabb_scale & (aabb_scale - 1):
            raise ConfigError(f"aabb_scale must be a power of two in 1..128, got {aabb_scale}")
        if not (math.isfinite(scale) and scale > 0):
            raise ConfigError(f"scale must be a positive finite number, got {scale}")
        if not 1 <= min_frames <= capacity:
            raise ConfigError(f"need 1 <= min_frames <= capacity, got min_frames={min_frames}, capacity={capacity}")
        if policy not in LIVE_POLICIES:
            raise ConfigError(f"unknown live policy {policy!r}; expected one of {LIVE_POLICIES}")
        offset = tuple(float(v) for v in offset)
        super().__init__(config, None, scene=_placeholder_scene(int(aabb_scale), float(scale), offset), device=device)
        self.capacity, self.min_frames, self.policy = int(capacity), int(min_frames), policy
        self.max_resolution = None if max_resolution is None else (int(max_resolution[0]), int(max_resolution[1]))
        self._channels: int | None = None
        self._frame_lock = threading.Lock()
        self._pending: dict[int, _Frame] = {}
        self._frames_added = 0  # frames accepted (the next frame's index)
        self._frames_discarded = 0
        self._slot_count = 0  # slots filled (accepted, maybe not yet uploaded)
        self._uploaded = 0  # slots the device buffers hold
        self._slot_intr: list[Intrinsics] = []
        self._slot_pose = np.zeros((self.capacity, 3, 4), np.float32)
        self._slot_nerf = np.zeros((self.capacity, 4, 4), np.float64)
        self._nn = np.full(self.capacity, np.inf)  # keyframes: distance to the nearest other kept frame
        self._nn_idx = np.full(self.capacity, -1, np.int64)  # ... and that frame's slot
        self._pixels = None
        self._cams = self._alloc_cams()

    @classmethod
    def from_config(cls, config: Any = None, *, device: Any = None, **options: Any) -> LiveNerfTask:
        """A live task from a :class:`NerfConfig`, a dict, a JSON path or None (the defaults); ``options`` are
        the keyword arguments of the constructor (``aabb_scale``, ``capacity``, ``policy``...)."""
        return cls(config_from(NerfConfig, config), device=device, **options)

    def _alloc_cams(self) -> tuple[wp.array, ...]:
        c, dev = self.capacity, self.device
        params, dist, model = self.scene.camera_arrays()
        return (wp.array(np.repeat(self.scene.poses, c, axis=0), dtype=wp.float32, device=dev),
                wp.array(np.repeat(params, c, axis=0), device=dev), wp.array(np.repeat(dist, c, axis=0), device=dev),
                wp.array(np.repeat(model, c, axis=0), dtype=wp.int32, device=dev))

    # -- frames --------------------------------------------------------------------------------------------
    @property
    def frame_count(self) -> int:
        """Frames held (at most ``capacity``)."""
        return self._slot_count

    @property
    def frames_added(self) -> int:
        """Frames accepted since construction (including those replaced since)."""
        return self._frames_added

    def ready(self) -> bool:
        """True once ``min_frames`` frames were added (background training waits until then)."""
        return self._slot_count >= self.min_frames

    def status(self) -> dict[str, Any]:
        """Frame statistics, merged into :meth:`Session.status`."""
        return {"frame_count": self._slot_count, "capacity": self.capacity, "min_frames": self.min_frames,
                "frames_added": self._frames_added, "frames_discarded": self._frames_discarded,
                "policy": self.policy, "ready": self.ready()}

    def _check_image(self, image: np.ndarray) -> np.ndarray:
        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
            raise DataError(f"a live frame must be uint8 [H, W, 3|4], got {img.dtype} {img.shape}")
        if self._channels is None:
            self._channels = img.shape[2]
            h, w = img.shape[:2]
            mw, mh = self.max_resolution or (w, h)
            self.max_resolution = (mw, mh)
            self._pixels = wp.zeros((self.capacity, mw * mh * self._channels), dtype=wp.uint8, device=self.device)
            self._sizes = wp.array(np.ones((self.capacity, 2), np.int32), dtype=wp.int32, device=self.device)
            if self._channels == 4:
                self.scene = dataclasses.replace(self.scene, has_alpha=True)
        if img.shape[2] == 3 and self._channels == 4:
            img = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
        elif img.shape[2] != self._channels:
            raise DataError("this live scene holds RGB frames (the first frame had no alpha); send RGB, not RGBA")
        mw, mh = self.max_resolution
        if img.shape[1] > mw or img.shape[0] > mh:
            raise DataError(f"frame is {img.shape[1]}x{img.shape[0]}, larger than the live buffer's {mw}x{mh} "
                            "(set by the first frame or max_resolution); downscale it")
        return img

    def _keyframe_slot(self, pose: np.ndarray) -> int | None:
        """Slot a new frame replaces under the keyframe policy, or None to discard it (buffer full)."""
        n = self._slot_count
        d = self._distances(pose, np.arange(n))
        victim = int(np.argmin(self._nn[:n]))
        if not d.min() > self._nn[victim]:
            return None
        return victim

    def _distances(self, pose: np.ndarray, slots: np.ndarray) -> np.ndarray:
        ps = self._slot_pose[slots]
        return (np.linalg.norm(ps[:, :, 3] - pose[:, 3], axis=1)
                + KEYFRAME_ANGLE_WEIGHT * _rotation_angle(pose[:, :3].astype(np.float64), ps[:, :, :3]))

    def _update_neighbours(self, slot: int) -> None:
        """Keyframe bookkeeping after ``slot`` received a new pose: nearest-neighbour distances stay exact."""
        n = self._slot_count
        stale = [i for i in range(n) if i != slot and self._nn_idx[i] == slot]
        others = np.array([i for i in range(n) if i != slot], dtype=np.int64)
        self._nn[slot], self._nn_idx[slot] = np.inf, -1
        if len(others):
            d = self._distances(self._slot_pose[slot], others)
            k = int(np.argmin(d))
            self._nn[slot], self._nn_idx[slot] = d[k], others[k]
            closer = d < self._nn[others]
            self._nn[others[closer]], self._nn_idx[others[closer]] = d[closer], slot
        for i in stale:
            rest = np.array([j for j in range(n) if j != i], dtype=np.int64)
            d = self._distances(self._slot_pose[i], rest)
            k = int(np.argmin(d))
            self._nn[i], self._nn_idx[i] = d[k], rest[k]

    @property
    def depth_supervision(self) -> bool:
        """Whether frames' depth supervises training (``training.depth_supervision_lambda > 0``)."""
        return self.config.training.depth_supervision_lambda > 0

    def add_frame(self, image: np.ndarray, c2w: np.ndarray, intrinsics: Intrinsics,
                  depth: np.ndarray | None = None, *, refine_pose: bool = False) -> int:
        """Add one posed frame; thread-safe with training and never waits for a step.

        Args:
            image: uint8 ``[H, W, 3|4]`` (RGBA: straight alpha; RGB frames in an RGBA scene get alpha 255).
            c2w: 4x4 camera-to-world in the scene's NeRF world frame, OpenGL camera axes.
            intrinsics: the camera, for this image's size.
            depth: optional float ``[H, W]`` z-depth in NeRF world units (0, negative or non-finite = no
                depth); used when :attr:`depth_supervision`.
            refine_pose: the pose is noisy: learn a correction for it (see the module docstring).

        Returns:
            The frame's index (frames accepted before it), or -1 when the keyframe policy discarded it.

        Raises:
            DataError: wrong image type, a frame larger than the buffer, an intrinsics size that differs from
                the image, a pose that is not a finite 4x4.
        """
        m = np.asarray(c2w, np.float64)
        if m.shape != (4, 4) or not np.isfinite(m).all():
            raise DataError(f"c2w must be a finite 4x4 matrix, got shape {m.shape}")
        if intrinsics.model not in CAMERA_MODELS:
            raise DataError(f"unknown camera model {intrinsics.model!r}")
        with self._frame_lock:
            img = self._check_image(image)
            h, w = img.shape[:2]
            if (intrinsics.width, intrinsics.height) != (w, h):
                raise DataError(f"intrinsics are for {intrinsics.width}x{intrinsics.height}, the image is {w}x{h}")
            if depth is not None and self.depth_supervision:
                depth = np.array(depth, np.float32)
                if depth.shape != (h, w):
                    raise DataError(f"depth is {depth.shape}, the image {h}x{w}: they must match")
                depth[~np.isfinite(depth) | (depth < 0)] = 0.0
            else:
                depth = None
            pose = nerf_matrix_to_ngp(m, self.scene.scale, self.scene.offset)[:3].astype(np.float32)
            if self._slot_count < self.capacity:
                slot = self._slot_count
            elif self.policy == "ring":
                slot = self._frames_added % self.capacity
            else:
                slot = self._keyframe_slot(pose)
                if slot is None:
                    self._frames_discarded += 1
                    return -1
            self._slot_pose[slot], self._slot_nerf[slot] = pose, m
            if slot == len(self._slot_intr):
                self._slot_intr.append(intrinsics)
            else:
                self._slot_intr[slot] = intrinsics
            self._pending[slot] = _Frame(slot=slot, row=np.ascontiguousarray(img).reshape(-1).copy(), size=(w, h),
                                         pose=pose, nerf_pose=m, intrinsics=intrinsics, depth=depth,
                                         refine=bool(refine_pose) or self.config.training.optimize_extrinsics)
            self._slot_count = max(self._slot_count, slot + 1)
            if self.policy == "keyframes":
                self._update_neighbours(slot)
            index = self._frames_added
            self._frames_added += 1
            return index

    def flush(self) -> int:
        """Upload queued frames to the device buffers (called by :meth:`step`); returns how many."""
        with self._frame_lock:
            pending, self._pending = self._pending, {}
            count = self._slot_count
        for f in pending.values():
            n = f.row.size
            wp.copy(self._pixels, wp.array(f.row, dtype=wp.uint8, device=self.device),
                    dest_offset=f.slot * self._pixels.shape[1], count=n)
            params, dist, model = pack_intrinsics([f.intrinsics])
            self._upload_depth(f)
            if f.refine and self.refiner is None:
                self._enable_refiner(np.zeros(self.capacity, bool))
            if self.refiner is not None:  # its base pose too (_cams[0] is its corrected poses); correction reset
                self.refiner.set_camera(f.slot, f.pose, f.refine)
            for arr, val, dtype in ((self._sizes, np.array(f.size, np.int32), wp.int32),
                                    (self._cams[0], f.pose.reshape(-1), wp.float32),
                                    (self._cams[1], params.reshape(-1), wp.float32),
                                    (self._cams[2], dist.reshape(-1), wp.float32),
                                    (self._cams[3], model.astype(np.int32).reshape(-1), wp.int32)):
                stride = val.size
                wp.copy(arr, wp.array(val.astype(np.float32 if dtype == wp.float32 else np.int32), dtype=dtype,
                                      device=self.device), dest_offset=f.slot * stride, count=stride)
        self._uploaded = count
        with_depth = [f.slot for f in pending.values() if f.depth is not None]
        if with_depth:
            self._seed_grid_from_depth(with_depth)
        return len(pending)

    def _upload_depth(self, f: _Frame) -> None:
        """The slot's depth row (zeros when the frame has none and other frames had depth)."""
        if f.depth is None and self._depths is None:
            return
        mw, mh = self.max_resolution
        if self._depths is None:
            self._depths = wp.zeros((self.capacity, mw * mh), dtype=wp.float32, device=self.device)
        row = np.zeros(mw * mh, np.float32)
        if f.depth is not None:
            row[: f.depth.size] = f.depth.reshape(-1)
        wp.copy(self._depths, wp.array(row, dtype=wp.float32, device=self.device), dest_offset=f.slot * row.size,
                count=row.size)

    # -- training hooks ------------------------------------------------------------------------------------
    def _training_source(self) -> tuple[wp.array, wp.array, int]:
        if self._uploaded == 0:
            raise DataError("the live NeRF has no frames yet; add_frame() first")
        n = self._uploaded
        return self._pixels[:n], self._sizes[:n], int(self._channels)

    def warmup(self) -> None:
        """Compile the training kernels (needs one frame: before the first, the first step compiles them)."""
        self.flush()
        if self._uploaded:
            super().warmup()

    def step(self) -> dict[str, float]:
        """Upload queued frames, then one :class:`NerfTask` step over the frames held."""
        self.flush()
        return super().step()

    def camera_frames(self) -> NerfScene:
        """The frames held now (their poses and intrinsics; no cameras before the first frame)."""
        if self._slot_count == 0:
            return dataclasses.replace(self.scene, intrinsics=(), poses=np.zeros((0, 3, 4), np.float32),
                                       nerf_poses=np.zeros((0, 4, 4)), file_names=())
        return self._frames_scene()

    # -- snapshots -----------------------------------------------------------------------------------------
    def _frames_scene(self) -> NerfScene:
        n = self._slot_count
        if n == 0:
            return self.scene
        return dataclasses.replace(self.scene, intrinsics=tuple(self._slot_intr[:n]), poses=self._slot_pose[:n].copy(),
                                   nerf_poses=self._slot_nerf[:n].copy(), file_names=())

    def state_dict(self, *, include_optimizer: bool = False) -> dict[str, Any]:
        """As :meth:`NerfTask.state_dict`, with the cameras of the frames held (a snapshot has no pixels)."""
        with self._frame_lock:
            scene = self._frames_scene()
        live, self.scene = self.scene, scene
        try:
            return super().state_dict(include_optimizer=include_optimizer)
        finally:
            self.scene = live

    @classmethod
    def from_snapshot_state(cls, config: dict[str, Any], state: dict[str, Any], *, device=None,
                            **live: Any) -> LiveNerfTask:
        """A live task continuing a NeRF snapshot (model, grid, step) with an empty frame buffer.

        Args:
            config: the snapshot's config.
            state: the snapshot's task state.
            device: Warp device.
            **live: ``capacity``, ``min_frames``, ``policy``, ``max_resolution``.
        """
        base = NerfTask.from_state(config, state, device=device)
        s = base.scene
        task = cls(NerfConfig.from_dict(config), aabb_scale=s.aabb_scale, scale=s.scale, offset=s.offset,
                   device=device, **live)
        task.field, task.grid, task.optimizer = base.field, base.grid, base.optimizer
        task.step_count, task.n_rays, task.total_samples = base.step_count, base.n_rays, base.total_samples
        return task
