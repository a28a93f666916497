"""The SDF primitive: fit a mesh's signed distance function with a 3D hash grid + MLP."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import warp as wp

from ngp_sdk.core.camera_path import intrinsics_with_fov, look_at
from ngp_sdk.core.cameras import Intrinsics, box_corners, opengl_to_opencv
from ngp_sdk.core.config import config_from
from ngp_sdk.core.device import resolve_device
from ngp_sdk.core.errors import DataError, SnapshotError
from ngp_sdk.core.images import srgb_to_linear
from ngp_sdk.core.meshes import Mesh, TriangleMesh, load_mesh, normalize_to_unit_cube
from ngp_sdk.core.optim import Optimizer
from ngp_sdk.core.task import MeshExporter, Task, restore_training_state, training_state
from ngp_sdk.sdf.config import SdfConfig
from ngp_sdk.sdf.export import extract_sdf_mesh
from ngp_sdk.sdf.field import SdfField
from ngp_sdk.sdf.render import SdfRenderedImage, SdfRenderSettings, render_sdf_camera
from warp_kernels.eikonal import STENCIL, eikonal_loss, eikonal_stencil
from warp_kernels.losses import compute_loss
from warp_kernels.sdf import SurfaceSampler, build_mesh, mesh_signed_distance, sample_sdf_training_points

__all__ = ["SdfTask"]

#: Points per inference chunk in :meth:`SdfTask.evaluate` and :meth:`SdfTask.render`.
EVAL_CHUNK = 1 << 18

#: Default view: from the front-right and above the shape (mesh frame, +y up), vertical field of view in degrees.
DEFAULT_VIEW_DIRECTION = (0.45, 0.35, 1.0)
DEFAULT_FOV_Y = 35.0


class SdfTask(Task, MeshExporter):
    """Train a neural SDF of a triangle mesh normalised into ``[0, 1]^3`` (negative inside).

    Each step draws ``batch_size`` points the instant-ngp way (4/8 on the surface, 3/8 near it, 1/8 uniform),
    computes ground-truth distances against the mesh BVH (sign from the pseudo normal for watertight meshes, from
    the winding number otherwise) and fits them with the MAPE loss, plus the optional eikonal regulariser
    (:class:`~ngp_sdk.sdf.config.EikonalConfig`) on central-difference gradients at the batch's last points.

    Args:
        config: SDF configuration.
        mesh: the training mesh in its own coordinates; ``None`` for a task restored from a snapshot.
        scale: normalisation scale when ``mesh`` is None (``normalized = vertices * scale + offset``).
        offset: normalisation offset ``[3]`` when ``mesh`` is None.
        bounds: the normalised mesh's bounding box ``[2, 3]`` when ``mesh`` is None (frames the default
            camera; default: the unit cube).
        device: ``None`` = Warp's current device, resolved once.

    Frames: the *mesh frame* is the input mesh's coordinates; the *internal frame* is the normalised unit
    cube the field lives in (``internal = mesh * scale + offset``). Internal cameras use OpenCV axes, mesh-frame
    cameras OpenGL axes (like the NeRF task's internal and world cameras).

    Raises:
        DataError: when neither a mesh nor its normalisation is given.
    """

    primitive: ClassVar[str] = "sdf"

    def __init__(self, config: SdfConfig, mesh: TriangleMesh | None = None, *, scale: float | None = None,
                 offset: np.ndarray | None = None, bounds: np.ndarray | None = None, device=None):
        self.device = resolve_device(device)
        self.config = config
        self.mesh_name = mesh.name if mesh is not None else None
        self._mesh: wp.Mesh | None = None
        if mesh is not None:
            normalized, s, o = normalize_to_unit_cube(mesh)
            self.scale, self.offset = float(s), np.asarray(o, dtype=np.float32).reshape(3)
            self._mesh = build_mesh(normalized.vertices, normalized.faces, self.device)
            self._sampler = SurfaceSampler(normalized.vertices, normalized.faces)
            self.bounds = normalized.bounds.astype(np.float32)
            # training signs: the pseudo normal (several times faster) is exact for closed meshes; meshes with
            # holes get the winding number. Evaluation always uses the winding number.
            self._winding_for_training = not mesh.is_watertight
        elif scale is not None and offset is not None:
            self.scale, self.offset = float(scale), np.asarray(offset, dtype=np.float32).reshape(3)
            self.bounds = (np.asarray(bounds, np.float32).reshape(2, 3) if bounds is not None
                           else np.array([[0, 0, 0], [1, 1, 1]], np.float32))
        else:
            raise DataError("an SDF task needs a mesh or its normalisation (scale, offset)")
        seed = config.training.seed
        self.field = SdfField(config.encoding, config.network, device=self.device, seed=seed)
        self.optimizer = Optimizer(config.optimizer, self.field.param_groups())
        self.step_count = 0
        self._ws = self.field.mlp.new_workspace()
        b = config.training.batch_size
        # eikonal regulariser: its stencil points ride in the same forward/backward as the batch
        self._n_eikonal = b // config.eikonal.points_fraction if config.eikonal.weight > 0 else 0
        rows = b + STENCIL * self._n_eikonal
        self._x_all = wp.empty((rows, 3), dtype=wp.float32, device=self.device) if self._n_eikonal else None
        self._dpred = wp.empty((rows, 1), dtype=wp.float32, device=self.device)
        self._loss = wp.zeros(1, dtype=wp.float32, device=self.device)

    @classmethod
    def from_data(cls, mesh: str | os.PathLike | TriangleMesh, *, config: Any = None, device: Any = None) -> SdfTask:
        """A task fitting the signed distance of ``mesh`` (an OBJ/PLY/STL path or a :class:`TriangleMesh`);
        ``config``: an :class:`SdfConfig`, a dict or a JSON path (default: instant-ngp's).

        Raises:
            DataError: unreadable mesh; ConfigError: invalid config.
        """
        data = mesh if isinstance(mesh, TriangleMesh) else load_mesh(mesh)
        return cls(config_from(SdfConfig, config), data, device=device)

    # -- training ------------------------------------------------------------------------------------------
    def _require_mesh(self) -> wp.Mesh:
        if self._mesh is None:
            raise DataError("this SDF task was restored without its mesh; pass mesh= to train or evaluate")
        return self._mesh

    def warmup(self) -> None:
        """Compile every kernel of a step on a tiny batch; parameters are left unchanged."""
        mesh = self._require_mesh()
        pos, dist = sample_sdf_training_points(mesh, 256, 0, use_winding_number=self._winding_for_training,
                                               sampler=self._sampler)
        self.field.infer(pos, workspace=self._ws)
        pred = self.field.forward(pos)
        grad = wp.empty_like(pred)
        compute_loss(self.config.loss.otype, pred, dist.reshape((256, 1)), grad_out=grad)
        self.field.backward(grad)
        for g in self.field.param_groups():
            g.grads.zero_()

    def step(self) -> dict[str, float]:
        """One step of ``batch_size`` samples; returns ``{"loss": ...}``."""
        mesh = self._require_mesh()
        b = self.config.training.batch_size
        seed = (self.config.training.seed * 1_000_003 + self.step_count) & 0x7FFFFFFF
        pos, dist = sample_sdf_training_points(mesh, b, seed, use_winding_number=self._winding_for_training,
                                               sampler=self._sampler)
        m = self._n_eikonal
        x = pos
        if m:  # the last m points of the batch (uniform ones, then near-surface ones) get the eikonal stencil
            x = self._x_all
            wp.copy(x[:b], pos)
            eikonal_stencil(pos[b - m:], self.config.eikonal.step, out=x[b:])
        pred = self.field.forward(x)
        loss = compute_loss(self.config.loss.otype, pred[:b], dist.reshape((b, 1)), grad_out=self._dpred[:b],
                            mean_out=self._loss, return_value=True)
        metrics = {"loss": float(loss)}
        if m:
            e = self.config.eikonal
            eik, _ = eikonal_loss(pred[b:], e.step, weight=e.weight, grad_out=self._dpred[b:])
            metrics = {"loss": float(loss) + eik, "eikonal": eik}
        self.field.backward(self._dpred)
        self.optimizer.step()
        self.step_count += 1
        return metrics

    @property
    def samples_per_step(self) -> int:
        return self.config.training.batch_size

    # -- inference -----------------------------------------------------------------------------------------
    def sdf_fn(self, params: dict[str, wp.array] | None = None):
        """A callback ``points wp [M, 3] -> sdf wp [M]`` (internal frame) over the inference weights, chunked.

        Calls share the task's inference workspace (callers run under the session lock, one at a time).
        """
        params = self.optimizer.inference_params() if params is None else params

        def fn(x: wp.array) -> wp.array:
            out = wp.empty(x.shape[0], dtype=wp.float32, device=self.device)
            for start in range(0, x.shape[0], EVAL_CHUNK):
                stop = min(x.shape[0], start + EVAL_CHUNK)
                y = self.field.infer(x[start:stop], params, workspace=self._ws)
                wp.copy(out, y.flatten(), dest_offset=start)
            return out

        return fn

    def normal_fn(self, params: dict[str, wp.array] | None = None):
        """A callback ``points wp [M, 3] -> unit normals wp [M, 3]`` (the normalised SDF gradient)."""
        params = self.optimizer.inference_params() if params is None else params
        return lambda x: self.field.normals(x, params)

    def predict(self, points: np.ndarray) -> np.ndarray:
        """Predicted signed distances float32 ``[N]`` at internal-frame points ``[N, 3]`` (EMA weights if any)."""
        pts = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, 3)
        return self.sdf_fn()(wp.array(pts, dtype=wp.float32, device=self.device)).numpy()

    def default_camera(self, width: int = 512, height: int = 512,
                       fov_y: float = DEFAULT_FOV_Y) -> tuple[np.ndarray, Intrinsics]:
        """An internal ``c2w [3, 4]`` (OpenCV axes) framing the whole shape, and its pinhole intrinsics."""
        lo, hi = self.bounds.astype(np.float64)
        centre = self.centre
        u = np.asarray(DEFAULT_VIEW_DIRECTION, np.float64)
        u /= np.linalg.norm(u)
        rot = look_at(centre + u, centre, (0.0, 1.0, 0.0))[:, :3]
        # the nearest distance along u at which all 8 box corners project inside the narrower field of view
        corners = box_corners(lo, hi) - centre
        tan_half = np.tan(np.radians(fov_y) / 2) * min(1.0, width / height)
        lateral = np.abs(corners @ rot[:, :2]).max(axis=1)
        distance = 1.05 * float(np.max(corners @ u + lateral / tan_half))
        return look_at(centre + distance * u, centre, (0.0, 1.0, 0.0)), intrinsics_with_fov(width, height, fov_y)

    @property
    def centre(self) -> np.ndarray:
        """Internal-frame centre of the shape's bounding box (the orbit centre)."""
        return 0.5 * (self.bounds[0] + self.bounds[1]).astype(np.float64)

    def render_view(self, c2w: np.ndarray, intrinsics: Intrinsics,
                    settings: SdfRenderSettings | None = None) -> SdfRenderedImage:
        """Sphere-trace an internal camera (``c2w [3, 4]``, OpenCV axes); depth in internal units."""
        return render_sdf_camera(self.sdf_fn(), self.normal_fn(), c2w, intrinsics,
                                 settings=settings or SdfRenderSettings(), device=self.device)

    def render_world(self, c2w: np.ndarray, intrinsics: Intrinsics,
                     settings: SdfRenderSettings | None = None) -> SdfRenderedImage:
        """Sphere-trace a camera in the mesh frame (``c2w [3|4, 4]``, OpenGL axes, like transforms.json).

        Returns depth as the distance along each ray in mesh units; normals are the same in both frames.
        """
        pose = opengl_to_opencv(np.asarray(c2w, np.float64))[:3].copy()
        pose[:, 3] = pose[:, 3] * self.scale + self.offset
        img = self.render_view(pose, intrinsics, settings)
        return SdfRenderedImage(rgb=img.rgb, depth=(img.depth / self.scale).astype(np.float32),
                                normals=img.normals, hit=img.hit)

    def render(self, *, c2w: np.ndarray | None = None, intrinsics: Intrinsics | None = None,
               width: int | None = None, height: int | None = None, shading: str = "lambert",
               ambient_occlusion: bool = False, with_depth: bool = False, with_normals: bool = False,
               **_: Any) -> np.ndarray:
        """A sphere-traced, shaded view as float32 linear RGB ``[H, W * k, 3]``.

        Args:
            c2w: internal camera-to-world ``[3, 4]`` (OpenCV axes); default :meth:`default_camera`.
            intrinsics: camera intrinsics (default: 35 degree pinhole, 512x512 or ``width`` x ``height``).
            width: output width when ``intrinsics`` is None.
            height: output height when ``intrinsics`` is None.
            shading: ``"lambert"`` or ``"normals"``.
            ambient_occlusion: darken creases (SDF ambient occlusion).
            with_depth: append a depth panel (near = bright).
            with_normals: append a normal-map panel.
        """
        w = width or (height or 512)
        h = height or w
        pose, default_intr = self.default_camera(w, h)
        if c2w is not None:
            pose = np.asarray(c2w, np.float64).reshape(-1, 4)[:3]
        img = self.render_view(pose, intrinsics or default_intr,
                               SdfRenderSettings(shading=shading, ambient_occlusion=ambient_occlusion))
        panels = [img.rgb]
        if with_depth:
            panels.append(srgb_to_linear(img.depth_image()))
        if with_normals:
            panels.append(srgb_to_linear(img.normal_image()))
        return np.concatenate(panels, axis=1)

    def render_slice(self, *, width: int = 256, height: int = 256, axis: int = 2,
                     position: float = 0.5) -> np.ndarray:
        """An orthographic slice of the SDF through ``axis = position`` as float32 linear RGB ``[height, width, 3]``.

        Inside is blue, outside orange, with contour bands every 1/64 and the zero level set drawn white.
        """
        if width <= 0 or height <= 0 or axis not in (0, 1, 2):
            raise DataError(f"render: invalid slice {width}x{height} on axis {axis}")
        u = (np.arange(width, dtype=np.float32) + 0.5) / width
        v = (np.arange(height, dtype=np.float32) + 0.5) / height
        uu, vv = np.meshgrid(u, v)
        pts = np.empty((height * width, 3), dtype=np.float32)
        others = [a for a in range(3) if a != axis]
        pts[:, others[0]] = uu.ravel()
        pts[:, others[1]] = vv.ravel()
        pts[:, axis] = position
        d = self.predict(pts).reshape(height, width)
        base = np.where(d[..., None] < 0, np.array([0.2, 0.4, 0.9], np.float32), np.array([0.9, 0.5, 0.1],
                                                                                          np.float32))
        band = 0.8 + 0.2 * np.cos(2 * np.pi * 64 * d)[..., None]
        img = base * band * (1 - np.exp(-8 * np.abs(d)))[..., None] + 0.2 * base
        img = np.where((np.abs(d) < 1.5 / max(width, height))[..., None], 1.0, img)
        return srgb_to_linear(np.clip(img, 0, 1))

    def extract_mesh(self, *, resolution: int = 256, threshold: float | None = None) -> Mesh:
        """Marching-cubes mesh of the zero level set (or ``threshold``, in mesh units) in the mesh frame."""
        level = 0.0 if threshold is None else float(threshold) * self.scale
        m = extract_sdf_mesh(self.sdf_fn(), resolution=resolution, level=level, device=self.device)
        vertices = ((m.vertices.astype(np.float64) - self.offset) / self.scale).astype(np.float32)
        return Mesh(vertices=vertices, faces=m.faces, colors=None, normals=m.normals)

    def evaluate(self, n_points: int = 1 << 18, seed: int = 0) -> dict[str, float]:
        """IoU of inside/outside on uniform points in ``[0, 1]^3`` and mean |error| there (normalised units)."""
        mesh = self._require_mesh()
        pts = np.random.default_rng(seed).random((int(n_points), 3), dtype=np.float32)
        gt = mesh_signed_distance(mesh, wp.array(pts, dtype=wp.float32, device=self.device)).numpy()
        pred = self.predict(pts)
        inside_gt, inside_pred = gt < 0, pred < 0
        union = int(np.count_nonzero(inside_gt | inside_pred))
        inter = int(np.count_nonzero(inside_gt & inside_pred))
        iou = inter / union if union else 1.0
        return {"iou": float(iou), "mean_abs_error": float(np.mean(np.abs(pred - gt)))}

    # -- snapshots -----------------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def state_dict(self, *, include_optimizer: bool = False) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "offset": [float(v) for v in self.offset],
            "mesh_name": self.mesh_name,
            "bounds": self.bounds.astype(float).tolist(),
            **training_state(self, include_optimizer=include_optimizer),
        }

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, Any], *, device=None,
                   mesh: TriangleMesh | None = None) -> SdfTask:
        cfg = SdfConfig.from_dict(config)
        try:
            scale = float(state["scale"])
            offset = np.asarray([float(v) for v in state["offset"]], dtype=np.float32)
            params = state["params"]
            step = int(state.get("step", 0))
            bounds = np.asarray(state["bounds"], np.float32) if "bounds" in state else None
        except (KeyError, TypeError, ValueError) as e:
            raise SnapshotError(f"SDF snapshot state is incomplete ({e})") from None
        if offset.shape != (3,):
            raise SnapshotError(f"SDF snapshot offset must have 3 values, got {offset.shape[0]}")
        if bounds is not None and bounds.shape != (2, 3):
            raise SnapshotError(f"SDF snapshot bounds must be 2x3, got {bounds.shape}")
        task = cls(cfg, mesh, scale=scale, offset=offset, bounds=bounds, device=device)
        restore_training_state(task, state, params, step)
        return task
