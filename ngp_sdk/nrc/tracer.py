"""Progressive path tracing of a :class:`~ngp_sdk.nrc.scene.Scene` (the NRC primitive's ground truth and baseline)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import warp as wp

from ngp_sdk.core.errors import DataError
from ngp_sdk.nrc.scene import Scene
from warp_kernels.path_tracing import trace_paths

__all__ = ["PathTracer"]


class PathTracer:
    """Accumulates path-traced samples of a scene's film; memory is one RGB float buffer whatever the spp.

    Args:
        scene: the scene (its sensor's film size is the image size).
        device: Warp device (``None`` = Warp's current, resolved once).
        seed: base seed; every launch gets a new one derived from it.
    """

    def __init__(self, scene: Scene, *, device: Any = None, seed: int = 0):
        self.scene = scene
        self.gpu_scene = scene.upload(device)
        self.device = self.gpu_scene.device
        self.width, self.height = scene.sensor.width, scene.sensor.height
        self.accum = wp.zeros(self.width * self.height, dtype=wp.vec3, device=self.device)
        self.launches = 0
        self.spp = 0
        self.seed = int(seed)
        self.seconds = 0.0

    def reset(self) -> None:
        """Forget the accumulated samples (e.g. after the scene or camera changed)."""
        self.accum.zero_()
        self.launches = 0
        self.spp = 0

    def add_samples(self, spp: int = 1) -> None:
        """Trace ``spp`` more paths per pixel into the accumulator."""
        if spp < 1:
            raise DataError(f"spp must be >= 1, got {spp}")
        g = self.gpu_scene
        t0 = time.perf_counter()
        trace_paths(g.kernel_args(), self.width, self.height, self.accum, spp=spp,
                    seed=self.seed * 1_000_003 + self.launches, max_depth=self.scene.max_depth,
                    rr_depth=self.scene.rr_depth)
        wp.synchronize_device(self.device)
        self.seconds += time.perf_counter() - t0
        self.launches += 1
        self.spp += spp

    def image(self) -> np.ndarray:
        """The mean of all accumulated samples: float32 linear RGB ``[H, W, 3]``."""
        if self.spp == 0:
            raise DataError("no samples yet: call add_samples first")
        return (self.accum.numpy() / np.float32(self.spp)).reshape(self.height, self.width, 3)

    def render(self, spp: int, *, batch: int = 16, progress: bool = False) -> np.ndarray:
        """Reset, then accumulate ``spp`` paths per pixel in launches of at most ``batch`` (progress bar)."""
        from tqdm import tqdm

        self.reset()
        with tqdm(total=spp, unit="spp", desc="path tracing", disable=not progress, leave=False) as bar:
            while self.spp < spp:
                k = min(batch, spp - self.spp)
                self.add_samples(k)
                bar.update(k)
        return self.image()
