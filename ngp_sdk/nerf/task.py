"""The NeRF primitive: posed photos -> radiance field (instant-ngp's NeRF testbed, on packed samples).

One training step (``NerfTask.step``)::

    random image + pixel per ray, uint8 target over a random background   (warp_kernels.nerf_batch)
    -> camera rays with lens distortion                                  (warp_kernels.rays)
    -> occupancy-grid marching with jitter, sample budget                (warp_kernels.ray_marching)
    -> NerfField forward -> compositing over the same background         (volume_rendering)
    -> Huber loss on colour -> composite backward -> field backward -> Adam (+EMA)
    -> rays per batch adapted so the next batch has ~target_samples samples

and every ``grid_update_interval`` steps an occupancy-grid update (all cells during warm-up, then
``grid_update_fraction`` of the cells uniformly plus as many biased to occupied cells).

Colours live in the dataset's 8-bit code space (sRGB / 255, what NeRF papers train and evaluate in);
:meth:`NerfTask.render` returns linear RGB like every task (convert with ``linear_to_srgb`` to compare), while
:meth:`NerfTask.render_view` and :meth:`NerfTask.evaluate` work in code space. Evaluation composites
ground-truth alpha over white (the Blender-synthetic convention) unless told otherwise.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar

import numpy as np
import warp as wp

from ngp_sdk.core.cameras import Intrinsics, nerf_matrix_to_ngp, ngp_to_nerf_matrix, z_depth_per_ray_distance
from ngp_sdk.core.config import config_from
from ngp_sdk.core.device import resolve_device
from ngp_sdk.core.errors import DataError, SnapshotError
from ngp_sdk.core.images import srgb_to_linear
from ngp_sdk.core.meshes import Mesh
from ngp_sdk.core.metrics import psnr, ssim
from ngp_sdk.core.optim import Optimizer
from ngp_sdk.core.profiling import PhaseTimer
from ngp_sdk.core.task import MeshExporter, Task, WorldRenderer, restore_training_state, training_state
from ngp_sdk.nerf.config import NerfConfig
from ngp_sdk.nerf.data import NerfDataset, composite_alpha, load_nerf_dataset
from ngp_sdk.nerf.export import extract_mesh
from ngp_sdk.nerf.field import NerfField
from ngp_sdk.nerf.occupancy import OccupancyGrid
from ngp_sdk.nerf.refine import CameraRefiner, coarse_to_fine_weights, write_refined_transforms
from ngp_sdk.nerf.render import RenderedImage, RenderSettings, alive_samples, render_camera
from ngp_sdk.nerf.scene import NerfScene
from warp_kernels.adam import adam_step, ema_update
from warp_kernels.depth_supervision import depth_l1_loss, gather_depth_targets
from warp_kernels.losses import compute_loss
from warp_kernels.nerf_batch import sample_training_rays
from warp_kernels.ray_marching import adapt_rays_per_batch, march_rays
from warp_kernels.rays import generate_rays
from warp_kernels.volume_rendering import composite_rays, composite_rays_backward

__all__ = ["NerfTask", "SAMPLE_BUDGET_FACTOR"]

#: Rays per batch are a multiple of this (fine enough for the ~1000-ray batches of a 2^16-sample target).
RAY_GRANULARITY = 64
#: Sample buffers hold this many times ``target_samples``; rays beyond the budget are dropped for a step.
SAMPLE_BUDGET_FACTOR = 1.25


class NerfTask(Task, WorldRenderer, MeshExporter):
    """Train and render a NeRF.

    Args:
        config: NeRF configuration (``per_level_scale`` is resolved for the scene's ``aabb_scale``).
        dataset: training data; ``None`` for a render-only task restored from a snapshot (then ``scene``).
        scene: camera metadata when there is no dataset.
        eval_dataset: default data of :meth:`evaluate` (else the training data).
        device: ``None`` = Warp's current device, resolved once.
    """

    primitive: ClassVar[str] = "nerf"

    def __init__(self, config: NerfConfig, dataset: NerfDataset | None = None, *, scene: NerfScene | None = None,
                 eval_dataset: NerfDataset | None = None, device=None):
        self.device = resolve_device(device)
        if dataset is not None:
            scene = NerfScene.from_dataset(dataset)
        elif scene is None:
            raise DataError("a NeRF task needs a dataset or the scene metadata of a snapshot")
        self.scene = scene
        self.config = config.resolved(scene.aabb_scale)
        t = self.config.training
        #: per-phase time of training steps (``task.timer.enabled = True`` to collect; see ``summary()``)
        self.timer = PhaseTimer(self.device)
        self.field = NerfField(self.config, scene.aabb, device=self.device, seed=t.seed, timer=self.timer)
        self.optimizer = Optimizer(self.config.optimizer, self.field.param_groups(), timer=self.timer)
        self.grid = OccupancyGrid(scene.n_cascades, self.device)
        self.step_count = 0
        self.n_rays = t.initial_rays
        self.total_samples = 0
        self.eval_dataset = eval_dataset
        dev = self.device
        params, dist, model = scene.camera_arrays()
        self._cams = (wp.array(scene.poses, dtype=wp.float32, device=dev), wp.array(params, device=dev),
                      wp.array(dist, device=dev), wp.array(model, dtype=wp.int32, device=dev))
        #: pose corrections of the training cameras (``training.optimize_extrinsics``), else None
        self.refiner: CameraRefiner | None = None
        self._depths: wp.array | None = None  # float32 [n_images, row_len] z-depth rows (NeRF world units)
        self._ray_bufs: dict[str, wp.array] = {}
        self._sel_bufs: tuple[wp.array, wp.array] | None = None
        self.total_alive = 0
        self._loss = wp.zeros(1, dtype=wp.float32, device=dev)
        self.dataset: NerfDataset | None = None
        if (t.optimize_extrinsics or t.optimize_focal_length) and dataset is not None:
            self._enable_refiner(np.full(scene.n_cameras, t.optimize_extrinsics), focal=t.optimize_focal_length)
        if dataset is not None:
            self._attach(dataset)
            if t.mark_untrained and scene.n_cameras:
                sizes = np.array([(k.width, k.height) for k in scene.intrinsics], dtype=np.int32).reshape(-1, 2)
                self.grid.mark_untrained(self._cams[0], self._cams[1], wp.array(sizes, device=dev))

    @classmethod
    def from_data(cls, data: str | os.PathLike | NerfDataset, *, config=None, downscale: int = 1,
                  device=None) -> NerfTask:
        """A task training on ``data``: a dataset, a transforms file or a folder (its ``train`` split)."""
        ds = data if isinstance(data, NerfDataset) else load_nerf_dataset(data, split="train", downscale=downscale)
        return cls(config_from(NerfConfig, config), ds, device=device)

    # -- data ----------------------------------------------------------------------------------------------
    def _attach(self, dataset: NerfDataset) -> None:
        if dataset.is_hdr:
            raise DataError("HDR (EXR) NeRF datasets are not supported yet; convert the images to 8-bit")
        if len(dataset) != self.scene.n_cameras:
            raise DataError(f"dataset has {len(dataset)} images, the scene {self.scene.n_cameras} cameras")
        ds = dataset.with_images()
        imgs = ds.images
        if isinstance(imgs, np.ndarray):
            rows = imgs.reshape(len(ds), -1)
        else:  # frames of different sizes: pad every row to the longest
            rows = np.zeros((len(imgs), max(im.size for im in imgs)), dtype=np.uint8)
            for i, im in enumerate(imgs):
                rows[i, : im.size] = im.reshape(-1)
        self.dataset = ds
        self._pixels = wp.array(rows, dtype=wp.uint8, device=self.device, copy=not self.device.is_cpu)
        self._sizes = wp.array(ds.image_sizes, dtype=wp.int32, device=self.device)
        if ds.has_depth and self.config.training.depth_supervision_lambda > 0:
            depth_rows = np.zeros((len(ds), int(max(w * h for w, h in ds.image_sizes))), np.float32)
            for i in range(len(ds)):
                d = ds.load_depth(i)
                if d is not None:
                    depth_rows[i, : d.size] = d.reshape(-1)
            self._depths = wp.array(depth_rows, dtype=wp.float32, device=self.device)
            self._seed_grid_from_depth(range(len(ds)))

    def _seed_grid_from_depth(self, cameras) -> int:
        """Seed the occupancy grid with the surface points of the given cameras' depth images (every pixel up
        to 2^16 per image, a regular subset beyond). Returns the cells seeded."""
        sizes = self._sizes.numpy()
        points = []
        for c in cameras:
            w, h = (int(v) for v in sizes[c])
            step = max(1, int(np.ceil(np.sqrt(w * h / 65536))))
            ys, xs = np.mgrid[0:h:step, 0:w:step]
            xy = wp.array(np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1).astype(np.float32), device=self.device)
            cams = wp.full(xy.shape[0], int(c), dtype=wp.int32, device=self.device)
            o, d = generate_rays(*self._cams, cams, xy)
            t = gather_depth_targets(self._depths, self._sizes, xy, cams, self._cams[0], d,
                                     depth_scale=self.scene.scale).numpy()
            keep = t > 0
            points.append(o.numpy()[keep] + t[keep, None] * d.numpy()[keep])
        return self.grid.seed_points(np.concatenate(points)) if points else 0

    @property
    def depth_supervision(self) -> bool:
        """Whether depth supervises training (``training.depth_supervision_lambda > 0``; offline: with depth data)."""
        return self.config.training.depth_supervision_lambda > 0 and self._depths is not None

    def _enable_refiner(self, refine: np.ndarray, *, focal: bool = False) -> CameraRefiner:
        """Create the camera refiner over the current cameras; rays are generated from its corrected poses (and
        camera parameters with ``focal``)."""
        t = self.config.training
        self.refiner = CameraRefiner(self._cams[0].numpy(), self.device, learning_rate=t.extrinsic_learning_rate,
                                     l2_reg=t.extrinsic_l2_reg, interval=t.extrinsic_update_interval, refine=refine,
                                     cam_params=self._cams[1].numpy() if focal else None,
                                     focal_learning_rate=t.intrinsic_learning_rate,
                                     decay_updates=t.extrinsic_decay_updates, local=t.extrinsic_local_axes,
                                     pivot=self.scene.centre if t.extrinsic_pivot == "scene" else None)
        r = self.refiner
        self._cams = (r.poses, r.params if r.params is not None else self._cams[1], *self._cams[2:])
        return r

    def _refining(self) -> bool:
        r = self.refiner
        return (r is not None and (r.active or r.params is not None)
                and self.step_count >= self.config.training.extrinsic_start_step)

    def _apply_coarse_to_fine(self) -> None:
        """Set the field's level weights for the current step: BARF's schedule (``training.coarse_to_fine_steps``)
        while poses are refined - configured, or a live frame asked for it - else every level fully."""
        t = self.config.training
        if t.coarse_to_fine_steps <= 0:
            return
        on = t.optimize_extrinsics or (self.refiner is not None and self.refiner.active)
        self.field.set_level_weights(coarse_to_fine_weights(
            self.step_count - t.extrinsic_start_step, self.config.encoding.n_levels,
            steps=t.coarse_to_fine_steps if on else 0, start_levels=t.coarse_to_fine_start_levels))

    def _require_data(self) -> NerfDataset:
        if self.dataset is None:
            raise DataError("this NeRF task was restored without its images; pass dataset= to train")
        return self.dataset

    def _training_source(self) -> tuple[wp.array, wp.array, int]:
        """``(pixels, sizes, n_channels)`` the training sampler draws from (a live task: its valid frames only).

        Raises:
            DataError: the task has no training images.
        """
        n_channels = self._require_data().n_channels
        return self._pixels, self._sizes, n_channels

    def _select_scratch(self, n: int) -> tuple[wp.array, wp.array]:
        """``(indices [>= n], scratch [>= 2n])`` int32 buffers of the sample selection, grown as needed."""
        if self._sel_bufs is None or self._sel_bufs[0].shape[0] < n:
            cap = max(n, int(self.config.training.target_samples * SAMPLE_BUDGET_FACTOR))
            self._sel_bufs = (wp.empty(cap, dtype=wp.int32, device=self.device),
                              wp.empty(2 * cap, dtype=wp.int32, device=self.device))
        return self._sel_bufs

    def _rays(self, n: int) -> dict[str, wp.array]:
        """Per-ray buffers (grown to the largest batch), as views of ``n`` rays."""
        old = self._ray_bufs["cam"].shape[0] if self._ray_bufs else 0
        if old < n:
            cap, dev, f = max(n, 2 * old), self.device, wp.float32
            self._ray_bufs = {"xy": wp.empty((cap, 2), dtype=f, device=dev),
                              "cam": wp.empty(cap, dtype=wp.int32, device=dev),
                              **{k: wp.zeros(cap, dtype=f, device=dev) for k in ("tdepth", "ddepth", "ldepth")},
                              **{k: wp.empty((cap, 3), dtype=f, device=dev)
                                 for k in ("target", "bg", "origins", "dirs", "dcolor")}}
        return {k: v[:n] for k, v in self._ray_bufs.items()}

    # -- training ------------------------------------------------------------------------------------------
    @property
    def samples_per_step(self) -> int:
        """Target samples per step (the measured count is in each step's ``n_samples`` metric)."""
        return self.config.training.target_samples

    def warmup(self) -> None:
        """Compile every kernel of a step and of a grid update; parameters, grid and counters are unchanged."""
        self._training_source()
        saved_rays, saved_grid = self.n_rays, self.grid
        scratch = OccupancyGrid(self.grid.n_cascades, self.device)
        try:
            self.grid, self.n_rays = scratch, 256
            self._forward_backward(seed=0)
            for g in self.field.param_groups():
                g.grads.zero_()
            scratch.update(self._density_fn, warmup=False, fraction=1e-4, decay=0.95, seed=0)
        finally:
            self.grid, self.n_rays = saved_grid, saved_rays
        z = wp.zeros(16, dtype=wp.float32, device=self.device)
        adam_step(z, wp.zeros_like(z), wp.zeros_like(z), wp.zeros_like(z), step=1, learning_rate=0.0,
                  skip_zero_grad=True)
        ema_update(wp.zeros_like(z), z, decay=0.5, step=1)

    def _density_fn(self, positions: wp.array, out: wp.array) -> wp.array:
        return self.field.density(positions, self.optimizer.inference_params(), out=out)

    def _grid_due(self) -> bool:
        t = self.config.training
        return self.step_count > 0 and self.step_count % t.grid_update_interval == 0

    def _update_grid(self) -> None:
        t = self.config.training
        self.grid.update(self._density_fn, warmup=self.step_count < t.grid_warmup_steps,
                         fraction=t.grid_update_fraction, decay=t.grid_decay,
                         seed=(t.seed * 7919 + self.grid.n_updates) & 0x7FFFFFFF)

    def _forward_backward(self, seed: int) -> dict[str, float]:
        """Sample, march, render, loss and backward of one batch (gradients accumulate in the field)."""
        t = self.config.training
        n = self.n_rays
        b = self._rays(n)
        pixels, sizes, n_channels = self._training_source()
        phase = self.timer.phase
        with phase("batch"):
            sample_training_rays(pixels, sizes, n, seed=seed, n_channels=n_channels,
                                 random_background=t.random_background, pixel_xy=b["xy"], cam_index=b["cam"],
                                 targets=b["target"], backgrounds=b["bg"])
            generate_rays(*self._cams, b["cam"], b["xy"], origins=b["origins"], directions=b["dirs"])
            depth_on = self._depths is not None  # depth rows are kept only with depth_supervision_lambda > 0
            if depth_on:
                gather_depth_targets(self._depths[: sizes.shape[0]], sizes, b["xy"], b["cam"], self._cams[0],
                                     b["dirs"], depth_scale=self.scene.scale, out=b["tdepth"])
        with phase("march"):
            s = march_rays(b["origins"], b["dirs"], self.grid.bitfield, n_cascades=self.grid.n_cascades,
                           aabb=self.scene.aabb, max_samples_per_ray=t.max_samples_per_ray,
                           max_total_samples=int(t.target_samples * SAMPLE_BUDGET_FACTOR), jitter=True, seed=seed)
        n_alive = 0
        if s.n_samples:
            sigma = self.field.forward_density(s.positions)
            with phase("forward/select"):
                alive = alive_samples(s, sigma, t.min_transmittance, self._select_scratch(s.n_samples))
            rgb = self.field.forward_color(s.directions, alive)
            n_alive = alive.shape[0]
        else:
            sigma, rgb = s.t_starts, s.positions  # empty
        k = s.n_rays_kept
        with phase("composite"):
            r = composite_rays(s.t_starts, s.t_ends, sigma, rgb, s.packed_info, background=b["bg"],
                               min_transmittance=t.min_transmittance)
            loss = compute_loss(self.config.loss.otype, r.colors[:k], b["target"][:k], grad_out=b["dcolor"][:k],
                                huber_delta=t.huber_delta, mean_out=self._loss, return_value=True)
            extra: dict[str, float] = {}
            if depth_on:
                depth_l1_loss(r.depths[:k], b["tdepth"][:k], weight=t.depth_supervision_lambda,
                              grad_out=b["ddepth"][:k], loss_terms=b["ldepth"][:k])
                extra["depth_loss"] = float(b["ldepth"][:k].numpy().sum()) if k else 0.0
            if s.n_samples:
                g = composite_rays_backward(s.t_starts, s.t_ends, sigma, rgb, s.packed_info, b["dcolor"],
                                            grad_depths=b["ddepth"] if depth_on else None,
                                            background=b["bg"], min_transmittance=t.min_transmittance)
        if s.n_samples:
            refine = self._refining()
            levels = min(t.extrinsic_gradient_levels, self.config.encoding.n_levels) or None
            grad_x = self.field.backward(g.sigmas, g.rgbs, position_grad=refine, position_levels=levels)
            if refine:
                with phase("refine"):
                    self.refiner.accumulate(s.packed_info, s.t_starts, grad_x, b["dirs"], b["cam"], n_rays=k,
                                            grad_scale=self.field.unit_cube_scale, pixel_xy=b["xy"])
        return {"loss": float(loss), "n_samples": float(s.n_samples), "n_alive": float(n_alive), "n_rays": float(k),
                "n_samples_requested": float(s.n_samples_requested), **extra}

    def step(self) -> dict[str, float]:
        """One training step.

        Returns:
            ``loss`` (mean over the rays kept), ``n_samples`` (marched samples: density network forward and
            backward), ``n_alive`` (of those, the ones compositing reached: colour network), ``n_rays`` (rays
            kept within the sample budget) and ``n_samples_requested`` (samples all rays would have made).
        """
        self._training_source()
        t = self.config.training
        self._apply_coarse_to_fine()
        with self.timer.phase("step"):
            if self._grid_due():
                with self.timer.phase("grid_update"):
                    self._update_grid()
            seed = (t.seed * 1_000_003 + self.step_count) & 0xFFFFFFFF
            m = self._forward_backward(seed)
            if m["n_samples"]:
                self.optimizer.step()
                if self._refining():
                    self.refiner.end_step()
        self.timer.count_step()
        self.step_count += 1
        self.total_samples += int(m["n_samples"])
        self.total_alive += int(m["n_alive"])
        self.n_rays = adapt_rays_per_batch(self.n_rays, int(m["n_samples_requested"]), t.target_samples,
                                           granularity=RAY_GRANULARITY, max_rays=t.max_rays)
        return m

    # -- inference -----------------------------------------------------------------------------------------
    def _settings(self, background) -> RenderSettings:
        t = self.config.training
        if background is None:
            background = (1.0, 1.0, 1.0) if self.scene.has_alpha else (0.0, 0.0, 0.0)
        return RenderSettings(background=tuple(float(v) for v in background), min_transmittance=t.min_transmittance,
                              max_samples_per_ray=t.max_samples_per_ray)

    def camera_frames(self) -> NerfScene:
        """The cameras trained on (a live task: the frames held now), as a :class:`~ngp_sdk.nerf.scene.NerfScene`."""
        return self.scene

    def training_poses(self) -> np.ndarray:
        """float64 ``[n, 4, 4]`` camera-to-world of the training cameras in the NeRF world frame (OpenGL axes),
        with the learned corrections when poses are refined (else the poses as given)."""
        scene = self.camera_frames()
        if self.refiner is None or scene.n_cameras == 0:
            return np.array(scene.nerf_poses, np.float64)
        internal = self.refiner.corrected_poses()[: scene.n_cameras].astype(np.float64)
        out = ngp_to_nerf_matrix(internal, self.scene.scale, self.scene.offset)
        if out.shape[-2] == 3:
            out = np.concatenate([out, np.broadcast_to([0.0, 0.0, 0.0, 1.0], out.shape[:-2] + (1, 4))], axis=-2)
        return out

    def export_poses(self, path: str | os.PathLike) -> str:
        """Write the training cameras with their refined poses as an instant-ngp ``transforms.json`` (atomic).

        Image paths are written relative to the file's folder when the task has its dataset. Returns the path.
        """
        scene = self.camera_frames()
        f = 1.0 if self.refiner is None else self.refiner.focal_scale
        if f != 1.0:
            scene = dataclasses.replace(scene, intrinsics=tuple(dataclasses.replace(k, fx=k.fx * f, fy=k.fy * f)
                                                                 for k in scene.intrinsics))
        return write_refined_transforms(path, scene, self.training_poses(),
                                        self.dataset.image_paths if self.dataset is not None else None,
                                        downscale=self.dataset.downscale if self.dataset is not None else 1)

    def render_view(self, c2w: np.ndarray, intrinsics: Intrinsics, *, background=None) -> RenderedImage:
        """Render an internal-space camera (``c2w [3, 4]``, OpenCV axes); colours in the data's code space.

        ``background`` defaults to white for data with alpha, else black. Depth is in internal units.
        """
        return render_camera(self.field, self.grid, c2w, intrinsics, aabb=self.scene.aabb,
                             settings=self._settings(background), params=self.optimizer.inference_params())

    def render_world(self, c2w: np.ndarray, intrinsics: Intrinsics, *, background=None) -> RenderedImage:
        """Render a camera given in the scene's NeRF world frame (4x4 camera-to-world, OpenGL axes).

        Returns:
            Colours in the data's code space; ``depth`` as z-depth along the optical axis in NeRF world units
            (0 where nothing was hit; distortion is ignored when converting ray distance to z-depth).
        """
        pose = nerf_matrix_to_ngp(np.asarray(c2w, np.float64), self.scene.scale, self.scene.offset)[:3]
        img = self.render_view(pose.astype(np.float32), intrinsics, background=background)
        depth = (img.depth * z_depth_per_ray_distance(intrinsics) / self.scene.scale).astype(np.float32)
        return dataclasses.replace(img, depth=depth)

    def render(self, *, view: int = 0, c2w: np.ndarray | None = None, intrinsics: Intrinsics | None = None,
               width: int | None = None, height: int | None = None, background=None, with_depth: bool = False,
               with_ground_truth: bool = False, **_: Any) -> np.ndarray:
        """Render a view as float32 linear RGB ``[H, W * k, 3]``.

        Args:
            view: training camera to render when ``c2w`` is None.
            c2w: internal camera-to-world ``[3, 4]`` (OpenCV axes); with ``intrinsics`` (default: the view's).
            intrinsics: camera intrinsics; ``width``/``height`` rescale them.
            width: output width in pixels (default: the camera's).
            height: output height in pixels.
            background: colour behind the scene (code space); default white with alpha data, else black.
            with_depth: append a depth map (near = bright) to the right.
            with_ground_truth: append the training image of ``view`` (needs the dataset; same background).
        """
        if not 0 <= view < self.scene.n_cameras:
            raise DataError(f"view {view} is out of range for {self.scene.n_cameras} cameras")
        pose = self.scene.poses[view] if c2w is None else np.asarray(c2w, np.float32).reshape(3, 4)
        intr = (intrinsics or self.scene.intrinsics[view]).resized(width, height)
        img = self.render_view(pose, intr, background=background)
        panels = [img.rgb]
        if with_ground_truth:
            ds = self._require_data()
            gt = composite_alpha(ds.images[view], self._settings(background).background)
            if gt.shape != img.rgb.shape:
                raise DataError(f"ground truth is {gt.shape[1]}x{gt.shape[0]}, the render {intr.width}x{intr.height}")
            panels.append(gt)
        if with_depth:
            d = img.depth
            far = float(d.max()) if d.size and d.max() > 0 else 1.0
            vis = np.where(img.opacity > 0.01, 1.0 - d / far, 0.0).astype(np.float32)
            panels.append(np.repeat(vis[..., None], 3, axis=2))
        return srgb_to_linear(np.clip(np.concatenate(panels, axis=1), 0, 1))

    def extract_mesh(self, *, resolution: int = 256, threshold: float = 2.5, min_component: float = 0.01) -> Mesh:
        """Marching-cubes mesh of the density (vertex colours, NeRF world frame); see
        :func:`~ngp_sdk.nerf.export.extract_mesh`."""
        return extract_mesh(self, resolution=resolution, threshold=threshold, min_component=min_component)

    def evaluate(self, dataset: NerfDataset | str | None = None, *, max_images: int | None = None,
                 background=None) -> dict[str, float]:
        """Mean PSNR and SSIM (code space, [0, 1]) over the images of ``dataset``.

        Args:
            dataset: data to compare with, or the name of a split beside the training data (``"val"``,
                ``"test"``; loaded at the training downscale). Default: ``eval_dataset``, else the training
                data. Images are rendered at their own resolution with their own cameras.
            max_images: evaluate only the first ``max_images`` images.
            background: colour the ground-truth alpha is composited over and the render's backdrop; default
                white (the Blender-synthetic convention) for data with alpha, black otherwise.
        """
        if isinstance(dataset, str):
            train = self._require_data()
            dataset = load_nerf_dataset(train.json_paths[0].parent, split=dataset, downscale=train.downscale)
        ds = dataset or self.eval_dataset or self._require_data()
        poses = self.scene.poses_of(ds)
        n = len(ds) if max_images is None else max(0, min(len(ds), int(max_images)))
        if n == 0:
            raise DataError("evaluate needs at least one image")
        bg = background if background is not None else ((1.0, 1.0, 1.0) if ds.has_alpha else (0.0, 0.0, 0.0))
        psnrs, ssims = [], []
        for i in range(n):
            img = self.render_view(poses[i], ds.intrinsics[i], background=bg)
            gt = composite_alpha(ds.images[i] if ds.images is not None else ds.load_image(i), bg)
            psnrs.append(psnr(img.rgb, gt))
            ssims.append(ssim(img.rgb, gt))
        return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "n_images": float(n)}

    # -- snapshots -----------------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def state_dict(self, *, include_optimizer: bool = False) -> dict[str, Any]:
        state = {"scene": self.scene.state_dict(), "grid": self.grid.state_dict(), "n_rays": self.n_rays,
                 "total_samples": self.total_samples, **training_state(self, include_optimizer=include_optimizer)}
        if self.refiner is not None:
            state["camera_refinement"] = self.refiner.state_dict()
        return state

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, Any], *, device=None,
                   dataset: NerfDataset | None = None, eval_dataset: NerfDataset | None = None) -> NerfTask:
        cfg = NerfConfig.from_dict(config)
        try:
            scene = NerfScene.from_state(state["scene"])
            params, grid = state["params"], state["grid"]
            step = int(state.get("step", 0))
        except (KeyError, TypeError, ValueError) as e:
            raise SnapshotError(f"NeRF snapshot state is incomplete ({e})") from None
        if dataset is not None:
            scene.check_compatible(dataset)
        task = cls(cfg, dataset, scene=scene, eval_dataset=eval_dataset, device=device)
        restore_training_state(task, state, params, step)
        task.grid.load_state_dict(grid)
        task.n_rays = int(state.get("n_rays", task.n_rays))
        task.total_samples = int(state.get("total_samples", 0))
        if "camera_refinement" in state and dataset is not None:
            refiner = task.refiner or task._enable_refiner(
                np.ones(scene.n_cameras, bool), focal="focal_log_scale" in state["camera_refinement"])
            refiner.load_state_dict(state["camera_refinement"])
        task._apply_coarse_to_fine()
        return task

    def __repr__(self) -> str:
        return (f"NerfTask(step={self.step_count}, cameras={self.scene.n_cameras}, aabb_scale={self.scene.aabb_scale}, "
                f"rays={self.n_rays}, device={self.device})")
