"""Frames rendered with the neural radiance cache, which trains online on the same frames' training paths."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import warp as wp

from ngp_sdk.core.errors import DataError
from ngp_sdk.nrc.cache import RadianceCache
from ngp_sdk.nrc.config import NrcConfig
from ngp_sdk.nrc.scene import Scene
from warp_kernels.nrc import NrcFrameBuffers, gather_inputs, trace_nrc_frame

__all__ = ["FrameSource", "NrcRenderer", "relative_mse", "warm_up"]


def warm_up(scene: Scene, config: NrcConfig, device: Any = None) -> None:
    """Compile every kernel of a cached frame with training, on a throw-away 4x4 copy of ``scene``."""
    NrcRenderer(scene.with_film(4, 4), config, device=device).render_frame(train=True)


def relative_mse(image: np.ndarray, reference: np.ndarray) -> float:
    """``mean((image - reference)^2 / (reference^2 + 0.01))`` over pixels and channels (the NRC paper's metric)."""
    ref = np.asarray(reference, np.float64)
    return float(np.mean((np.asarray(image, np.float64) - ref) ** 2 / (ref * ref + 0.01)))


class NrcRenderer:
    """Renders a scene one path per pixel per frame, ending paths in a :class:`RadianceCache` it trains online.

    Args:
        scene: the scene (its film size is the image size).
        config: cache configuration (default :class:`NrcConfig`).
        device: Warp device (``None`` = current, resolved once).
        seed: seed of the paths and the cache initialisation.
    """

    def __init__(self, scene: Scene, config: NrcConfig | None = None, *, device: Any = None, seed: int = 0):
        self.config = config or NrcConfig()
        self.gpu_scene = scene.upload(device)
        self.device = self.gpu_scene.device
        self.scene = scene
        self.width, self.height = scene.sensor.width, scene.sensor.height
        self.cache = RadianceCache(self.config, device=self.device, seed=seed)
        c = self.config.nrc
        pixels = self.width * self.height
        self.buffers = NrcFrameBuffers(pixels, math.ceil(pixels / c.train_stride), c.max_train_vertices,
                                       self.device)
        lo, hi = scene.vertices.min(axis=0), scene.vertices.max(axis=0)
        pad = 0.01 * float(np.max(hi - lo))
        self.box = (lo - pad, hi + pad)
        self.seed = int(seed)
        self.frame = 0
        self.last_loss = float("nan")
        self.timings: dict[str, float] = {"trace": 0.0, "predict": 0.0, "train": 0.0}
        self._rng = np.random.default_rng(seed)

    def render_frame(self, *, train: bool = True) -> np.ndarray:
        """Trace one frame (one path per pixel) and return it as float32 linear RGB ``[H, W, 3]``; with ``train``
        the cache then takes ``steps_per_frame`` optimiser steps on the frame's training records."""
        c = self.config.nrc
        b = self.buffers
        t0 = time.perf_counter()
        trace_nrc_frame(self.gpu_scene, b, seed=self.seed * 7919 + self.frame, spread_c=c.spread_c,
                        train_stride=c.train_stride, train_offset=self.frame % c.train_stride,
                        unbiased_every=c.unbiased_every, box=self.box)
        wp.synchronize_device(self.device)
        t1 = time.perf_counter()
        pred = self.cache.predict(b.query, b.pixels).numpy()
        image = b.prefix.numpy() + b.throughput.numpy() * pred
        t2 = time.perf_counter()
        if train:
            self._train()
        t3 = time.perf_counter()
        self.timings["trace"] += t1 - t0
        self.timings["predict"] += t2 - t1
        self.timings["train"] += t3 - t2
        self.frame += 1
        return image.reshape(self.height, self.width, 3).astype(np.float32)

    def _targets(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat record indices and their radiance targets, from ``L_i = c_i + w_i * L_{i+1}``."""
        b = self.buffers
        k_max = b.max_train_vertices
        counts = b.rec_count.numpy()
        n_paths = int(counts.shape[0])
        end = self.cache.predict(b.end, n_paths).numpy() * (b.end_valid.numpy()[:, None] > 0)
        rc = b.rec_c.numpy().reshape(-1, k_max, 3)[:n_paths]
        rw = b.rec_w.numpy().reshape(-1, k_max, 3)[:n_paths]
        radiance = end.astype(np.float64)
        targets = np.zeros((n_paths, k_max, 3))
        for k in range(k_max - 1, -1, -1):
            active = (k < counts)[:, None]
            radiance = np.where(active, rc[:, k] + rw[:, k] * radiance, radiance)
            targets[:, k] = radiance
        valid = np.arange(k_max)[None, :] < counts[:, None]
        index = np.flatnonzero(valid.ravel())
        return index, targets.reshape(-1, 3)[index]

    def _train(self) -> None:
        index, targets = self._targets()
        if index.size == 0:
            return
        order = self._rng.permutation(index.size)
        batch = self.config.training.batch_size
        for s in range(self.config.nrc.steps_per_frame):
            part = order[s * batch:(s + 1) * batch]
            if part.size == 0:
                break
            idx = wp.array(index[part].astype(np.int32), dtype=wp.int32, device=self.device)
            gather_inputs(self.buffers.records, idx, self.cache.train_inputs)
            tgt = wp.array(np.ascontiguousarray(targets[part], dtype=np.float32), dtype=wp.float32,
                           device=self.device)
            self.last_loss = self.cache.train_step(self.cache.train_inputs, tgt, part.size)

    def render(self, frames: int, *, train: bool = True, accumulate: bool = False) -> np.ndarray:
        """Render ``frames`` frames; return the last one, or their mean with ``accumulate``."""
        if frames < 1:
            raise DataError(f"frames must be >= 1, got {frames}")
        total = None
        for _ in range(frames):
            img = self.render_frame(train=train)
            total = img.astype(np.float64) if total is None else total + img
        return (total / frames).astype(np.float32) if accumulate else img


class FrameSource:
    """Frames of a scene, one per :meth:`render`: ``mode="nrc"`` averages ``spp`` cached frames (the cache
    training on each), ``mode="pt"`` path-traces ``spp`` fresh samples per pixel. ``gpu_scene`` is the device scene
    being rendered (move its lights or camera between frames)."""

    def __init__(self, scene: Scene, *, mode: str = "nrc", spp: int = 1, config: Any = None, device: Any = None):
        from ngp_sdk.core.config import config_from
        from ngp_sdk.nrc.tracer import PathTracer

        if mode not in ("nrc", "pt"):
            raise DataError(f"mode must be nrc or pt, not {mode!r}")
        if spp < 1:
            raise DataError(f"spp must be >= 1, got {spp}")
        self.scene, self.mode, self.spp, self.device = scene, mode, int(spp), device
        if mode == "nrc":
            self.config = config_from(NrcConfig, config, primitive="nrc")
            self._nrc = NrcRenderer(scene, self.config, device=device)
            self.gpu_scene = self._nrc.gpu_scene
        else:
            self._pt = PathTracer(scene, device=device)
            self.gpu_scene = self._pt.gpu_scene

    def warmup(self) -> None:
        """Compile the kernels of a frame on a throw-away 4x4 copy (no state of this source changes)."""
        from ngp_sdk.nrc.tracer import PathTracer

        if self.mode == "nrc":
            warm_up(self.scene, self.config, self.device)
        else:
            PathTracer(self.scene.with_film(4, 4), device=self.device).render(spp=1)

    def render(self) -> np.ndarray:
        """The next frame, float32 linear RGB ``[H, W, 3]``."""
        if self.mode == "pt":
            return self._pt.render(spp=self.spp, batch=self.spp)
        frames = [self._nrc.render_frame(train=True) for _ in range(self.spp)]
        return frames[0] if self.spp == 1 else np.mean(frames, axis=0).astype(np.float32)
