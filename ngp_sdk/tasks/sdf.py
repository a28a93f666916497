"""The SDF primitive: fit a mesh's signed distance function with a 3D hash grid + MLP."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import warp as wp

from warp_kernels._common import resolve_device
from warp_kernels.losses import compute_loss
from warp_kernels.sdf import build_mesh, mesh_signed_distance, sample_sdf_training_points

from ..data.meshes import TriangleMesh, normalize_to_unit_cube
from ..errors import DataError, SnapshotError
from ..optim import Optimizer
from ..sdf_config import SdfConfig
from ..sdf_field import SdfField
from .base import register_task

__all__ = ["SdfTask"]

#: Points per inference chunk in :meth:`SdfTask.evaluate` and :meth:`SdfTask.render`.
EVAL_CHUNK = 1 << 18


@register_task
class SdfTask:
    """Train a neural SDF of a triangle mesh normalised into ``[0, 1]^3`` (negative inside).

    Each step draws ``batch_size`` points the instant-ngp way (4/8 on the surface, 3/8 near it, 1/8 uniform),
    computes ground-truth distances against the mesh BVH and fits them with the MAPE loss.

    Args:
        config: SDF configuration.
        mesh: the training mesh in its own coordinates; ``None`` for a task restored from a snapshot.
        scale: normalisation scale when ``mesh`` is None (``normalized = vertices * scale + offset``).
        offset: normalisation offset ``[3]`` when ``mesh`` is None.
        device: ``None`` = Warp's current device, resolved once.

    Raises:
        DataError: when neither a mesh nor its normalisation is given.
    """

    primitive: ClassVar[str] = "sdf"

    def __init__(self, config: SdfConfig, mesh: TriangleMesh | None = None, *, scale: float | None = None,
                 offset: np.ndarray | None = None, device=None):
        self.device = resolve_device(device)
        self.config = config
        self.mesh_name = mesh.name if mesh is not None else None
        self._mesh: wp.Mesh | None = None
        if mesh is not None:
            normalized, s, o = normalize_to_unit_cube(mesh)
            self.scale, self.offset = float(s), np.asarray(o, dtype=np.float32).reshape(3)
            self._mesh = build_mesh(normalized.vertices, normalized.faces, self.device)
        elif scale is not None and offset is not None:
            self.scale, self.offset = float(scale), np.asarray(offset, dtype=np.float32).reshape(3)
        else:
            raise DataError("an SDF task needs a mesh or its normalisation (scale, offset)")
        seed = config.training.seed
        self.field = SdfField(config.encoding, config.network, device=self.device, seed=seed)
        self.optimizer = Optimizer(config.optimizer, self.field.param_groups())
        self.step_count = 0
        self._ws = self.field.mlp.new_workspace()
        b = config.training.batch_size
        self._dpred = wp.empty((b, 1), dtype=wp.float32, device=self.device)
        self._loss = wp.zeros(1, dtype=wp.float32, device=self.device)

    # -- training ------------------------------------------------------------------------------------------
    def _require_mesh(self) -> wp.Mesh:
        if self._mesh is None:
            raise DataError("this SDF task was restored without its mesh; pass mesh= to train or evaluate")
        return self._mesh

    def warmup(self) -> None:
        """Compile every kernel of a step on a tiny batch; parameters are left unchanged."""
        mesh = self._require_mesh()
        pos, dist = sample_sdf_training_points(mesh, 256, 0)
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
        pos, dist = sample_sdf_training_points(mesh, b, seed)
        pred = self.field.forward(pos)
        loss = compute_loss(self.config.loss.otype, pred, dist.reshape((b, 1)), grad_out=self._dpred,
                            mean_out=self._loss, return_value=True)
        self.field.backward(self._dpred)
        self.optimizer.step()
        self.step_count += 1
        return {"loss": float(loss)}

    @property
    def samples_per_step(self) -> int:
        return self.config.training.batch_size

    # -- inference -----------------------------------------------------------------------------------------
    def predict(self, points: np.ndarray, *, chunk: int = EVAL_CHUNK) -> np.ndarray:
        """Predicted signed distances float32 ``[N]`` at normalised points ``[N, 3]`` (EMA weights if any)."""
        pts = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, 3)
        params = self.optimizer.inference_params()
        out = np.empty(pts.shape[0], dtype=np.float32)
        for start in range(0, pts.shape[0], chunk):
            x = wp.array(pts[start:start + chunk], dtype=wp.float32, device=self.device)
            out[start:start + x.shape[0]] = self.field.infer(x, params, workspace=self._ws).numpy()[:, 0]
        return out

    def render(self, *, width: int = 256, height: int = 256, axis: int = 2, position: float = 0.5,
               **_: Any) -> np.ndarray:
        """An orthographic slice of the SDF through ``axis = position`` as float32 RGB ``[height, width, 3]``.

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
        return np.clip(img, 0, 1).astype(np.float32)

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
        state: dict[str, Any] = {
            "scale": self.scale,
            "offset": [float(v) for v in self.offset],
            "params": self.field.state_dict(),
            "step": self.step_count,
            "mesh_name": self.mesh_name,
        }
        opt = self.optimizer.snapshot(include_optimizer=include_optimizer)
        if opt is not None:
            state["optimizer"] = opt
        return state

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, Any], *, device=None,
                   mesh: TriangleMesh | None = None) -> SdfTask:
        cfg = SdfConfig.from_dict(config)
        try:
            scale = float(state["scale"])
            offset = np.asarray([float(v) for v in state["offset"]], dtype=np.float32)
            params = state["params"]
            step = int(state.get("step", 0))
        except (KeyError, TypeError, ValueError) as e:
            raise SnapshotError(f"SDF snapshot state is incomplete ({e})") from None
        if offset.shape != (3,):
            raise SnapshotError(f"SDF snapshot offset must have 3 values, got {offset.shape[0]}")
        task = cls(cfg, mesh, scale=scale, offset=offset, device=device)
        task.field.load_state_dict(params)
        if "optimizer" in state:
            task.optimizer.restore(state["optimizer"], step)
        task.step_count = step
        return task
