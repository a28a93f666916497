"""The gigapixel-image primitive: fit an image with a 2D hash grid + MLP, render it at any resolution."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import warp as wp

from ngp_sdk.core.config import config_from
from ngp_sdk.core.device import resolve_device
from ngp_sdk.core.errors import DataError, SnapshotError
from ngp_sdk.core.images import PROGRESS_MIN_PIXELS
from ngp_sdk.core.metrics import psnr_from_mse
from ngp_sdk.core.optim import Optimizer
from ngp_sdk.core.task import Task, restore_training_state, training_state
from ngp_sdk.image.config import ImageConfig
from ngp_sdk.image.data import ImageData, load_image
from ngp_sdk.image.field import ImageField
from ngp_sdk.image.window import Window
from warp_kernels.image_sampling import (
    generate_pixel_centres,
    generate_stratified_positions,
    sample_image_bilinear,
    srgb_to_linear_lut,
)
from warp_kernels.losses import compute_loss

__all__ = ["ImageTask"]

#: Output pixels rendered per chunk (bounds memory for gigapixel renders).
RENDER_CHUNK = 1 << 18


def _squared_error(rgb: np.ndarray, ref: np.ndarray) -> float:
    """Sum of squared differences of two linear images clipped to [0, 1], accumulated in float64."""
    d = (np.clip(rgb, 0, 1) - np.clip(ref, 0, 1)).ravel().astype(np.float64)
    return float(np.dot(d, d))


class ImageTask(Task):
    """Train a neural image; positions are ``(x, y)`` in ``[0, 1]^2`` (x right, y down), colour is linear RGB.

    The image stays in its stored dtype on the device (uint8 sRGB codes or float16/32 linear values); each step
    draws ``batch_size`` stratified positions and fetches bilinear targets, so no float32 copy of the whole
    image is ever made. PSNR is computed in linear space with both images clipped to [0, 1].

    Args:
        config: image configuration.
        image: training image; ``None`` for a render-only task restored from a snapshot.
        size: ``(width, height)`` of the original image when ``image`` is None.
        device: ``None`` = Warp's current device, resolved once.
    """

    primitive: ClassVar[str] = "image"

    def __init__(self, config: ImageConfig, image: ImageData | None = None, *, size: tuple[int, int] | None = None,
                 device=None):
        self.device = resolve_device(device)
        self.config = config
        self.image = image
        if image is not None:
            self.size = (image.width, image.height)
        elif size is not None:
            self.size = (int(size[0]), int(size[1]))
        else:
            raise DataError("an image task needs an image or its (width, height)")
        seed = config.training.seed
        self.field = ImageField(config.encoding, config.network, device=self.device, seed=seed)
        self.optimizer = Optimizer(config.optimizer, self.field.param_groups())
        self.step_count = 0
        self._render_ws = self.field.mlp.new_workspace()
        b = config.training.batch_size
        if image is not None:
            # zero-copy on CPU: Warp wraps the NumPy buffer
            self._image = wp.array(image.pixels, device=self.device, copy=not self.device.is_cpu)
            lut = srgb_to_linear_lut(image.srgb, bits=image.bits) if image.pixels.dtype.kind == "u" else np.zeros(1)
            self._lut = wp.array(lut, dtype=wp.float32, device=self.device)
            self._pos = wp.empty((b, 2), dtype=wp.float32, device=self.device)
            self._target = wp.empty((b, 3), dtype=wp.float32, device=self.device)
            self._dpred = wp.empty((b, 3), dtype=wp.float32, device=self.device)
            self._loss = wp.zeros(1, dtype=wp.float32, device=self.device)

    @classmethod
    def from_data(cls, image: str | os.PathLike | ImageData | np.ndarray, *, config: Any = None,
                  device: Any = None) -> ImageTask:
        """A task fitting ``image``: a path (PNG/JPEG/TIFF/EXR/.npy), an :class:`ImageData` or an ``[H, W, 3]``
        array (uint8/uint16 = sRGB codes, float = linear); ``config``: an :class:`ImageConfig`, a dict, a JSON path
        or a bundled config's name (``"base"``, ``"gigapixel"``).

        Raises:
            DataError: unreadable image or bad array; ConfigError: invalid config.
        """
        if isinstance(image, np.ndarray):
            data = ImageData(pixels=np.ascontiguousarray(image), srgb=image.dtype.kind == "u")
        elif isinstance(image, ImageData):
            data = image
        else:
            data = load_image(image)
        return cls(config_from(ImageConfig, config, primitive="image"), data, device=device)

    # -- training ------------------------------------------------------------------------------------------
    def _require_image(self) -> None:
        if self.image is None:
            raise DataError("this image task was restored without its image; pass the image to train or evaluate")

    def warmup(self) -> None:
        """Compile every kernel of a step on a tiny batch; parameters and gradients are left unchanged."""
        self._require_image()
        n = 256
        pos = generate_stratified_positions(n, 0, device=self.device)
        tgt = sample_image_bilinear(self._image, pos, lut=self._lut)
        pred = self.field.infer(pos, workspace=self._render_ws)
        grad = wp.empty_like(tgt)
        compute_loss(self.config.loss.otype, pred, tgt, grad_out=grad)
        # a forward/backward into scratch gradients, then zero them again
        self.field.forward(pos)
        self.field.backward(grad)
        for g in self.field.param_groups():
            g.grads.zero_()
        from warp_kernels.adam import adam_step

        scratch = wp.zeros(16, dtype=wp.float32, device=self.device)
        adam_step(scratch, wp.zeros_like(scratch), wp.zeros_like(scratch), wp.zeros_like(scratch), step=1,
                  learning_rate=0.0, skip_zero_grad=True)
        if self.optimizer.config.ema is not None:
            from warp_kernels.adam import ema_update

            ema_update(wp.zeros_like(scratch), scratch, decay=0.5, step=1)

    def step(self) -> dict[str, float]:
        """One step of ``batch_size`` samples; returns ``{"loss": ...}``."""
        self._require_image()
        seed = (self.config.training.seed * 1_000_003 + self.step_count) & 0x7FFFFFFF
        generate_stratified_positions(self._pos.shape[0], seed, out=self._pos)
        sample_image_bilinear(self._image, self._pos, lut=self._lut, out=self._target)
        pred = self.field.forward(self._pos)
        loss = compute_loss(self.config.loss.otype, pred, self._target, grad_out=self._dpred, mean_out=self._loss,
                            return_value=True)
        self.field.backward(self._dpred)
        self.optimizer.step()
        self.step_count += 1
        return {"loss": float(loss)}

    @property
    def samples_per_step(self) -> int:
        return self.config.training.batch_size

    # -- inference -----------------------------------------------------------------------------------------
    def render(self, *, width: int | None = None, height: int | None = None,
               region: tuple[float, float, float, float] | None = None, scale: float | None = None,
               window: Window | None = None, chunk: int = RENDER_CHUNK, **_: Any) -> np.ndarray:
        """Render float32 linear RGB ``[h, w, 3]`` in bounded chunks.

        Args:
            width, height: render the whole image plane at this size (default: the original size).
            region: ``(x, y, w, h)`` in original-image pixels to render instead of the whole plane.
            scale: output pixels per original pixel for ``region`` (default 1; > 1 zooms past the training
                resolution).
            window: an explicit :class:`~ngp_sdk.image.window.Window` (overrides the others).
            chunk: pixels per inference launch.
        """
        win = self.window(width=width, height=height, region=region, scale=scale) if window is None else window
        out = np.empty((win.pixels, 3), dtype=np.float32)
        for start, rgb in self.iter_render(win, chunk=chunk):
            out[start:start + rgb.shape[0]] = rgb
        return out.reshape(win.height, win.width, 3)

    def window(self, *, width: int | None = None, height: int | None = None,
               region: tuple[float, float, float, float] | None = None, scale: float | None = None) -> Window:
        """The :class:`~ngp_sdk.image.window.Window` a :meth:`render` with these arguments produces."""
        if region is not None or scale is not None:
            if width is not None or height is not None:
                raise DataError("pass either width/height (whole image) or region/scale, not both")
            return Window.region(self.size, region, 1.0 if scale is None else float(scale))
        return Window.full(width or self.size[0], height or self.size[1])

    def iter_render(self, window: Window, *, chunk: int = RENDER_CHUNK):
        """Yield ``(start, rgb)``: runs of at most ``chunk`` row-major pixels of ``window`` as float32 ``[n, 3]``."""
        if chunk < 1:
            raise DataError(f"chunk must be >= 1, got {chunk}")
        params = self.optimizer.inference_params()
        total = window.pixels
        pos = wp.empty((min(chunk, total), 2), dtype=wp.float32, device=self.device)
        for start in range(0, total, chunk):
            count = min(chunk, total - start)
            p = pos if count == pos.shape[0] else pos[:count]
            generate_pixel_centres(window.width, window.height, start, count, origin=window.origin,
                                   grid=window.grid, out=p)
            yield start, self.field.infer(p, params, workspace=self._render_ws).numpy()

    def evaluate(self, *, pixels: int | None = None, seed: int = 0, chunk: int = RENDER_CHUNK,
                 progress: bool = False) -> dict[str, float]:
        """PSNR (dB) and MSE over the training image, linear values clipped to [0, 1], streamed in chunks.

        Args:
            pixels: evaluate a fixed random subset of this many pixels (``seed``) instead of every pixel.
            seed: subset seed.
            chunk: pixels per inference launch.
            progress: show a progress bar.
        """
        self._require_image()
        w, h = self.size
        total = w * h
        if pixels is not None and pixels < total:
            return self._evaluate_subset(int(pixels), seed, chunk)
        from tqdm import tqdm

        sq = 0.0
        with tqdm(total=total, unit="px", unit_scale=True, desc="evaluate",
                  disable=not progress or total < PROGRESS_MIN_PIXELS, leave=False) as bar:
            for start, rgb in self.iter_render(Window.full(w, h), chunk=chunk):
                ref = self.image.linear_run(start, rgb.shape[0])
                sq += _squared_error(rgb, ref)
                bar.update(rgb.shape[0])
        mse = sq / (total * 3)
        return {"psnr": psnr_from_mse(mse), "mse": mse}

    def _evaluate_subset(self, n: int, seed: int, chunk: int) -> dict[str, float]:
        w, h = self.size
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(w * h, size=n, replace=False) if w * h <= 1 << 26
                      else rng.integers(0, w * h, size=n, dtype=np.int64))
        params = self.optimizer.inference_params()
        sq = 0.0
        for start in range(0, n, chunk):
            part = idx[start:start + chunk]
            xy = np.stack([((part % w).astype(np.float32) + np.float32(0.5)) / np.float32(w),
                           ((part // w).astype(np.float32) + np.float32(0.5)) / np.float32(h)], axis=1)
            pos = wp.array(xy, dtype=wp.float32, device=self.device)
            rgb = self.field.infer(pos, params, workspace=self._render_ws).numpy()
            sq += _squared_error(rgb, self.image.linear_pixels(part))
        mse = sq / (n * 3)
        return {"psnr": psnr_from_mse(mse), "mse": mse, "pixels": n}

    # -- snapshots -----------------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def state_dict(self, *, include_optimizer: bool = False) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "image_name": self.image.name if self.image is not None else None,
            **training_state(self, include_optimizer=include_optimizer),
        }

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, Any], *, device=None,
                   image: ImageData | None = None) -> ImageTask:
        cfg = ImageConfig.from_dict(config)
        try:
            size = tuple(int(v) for v in state["size"])
            params = state["params"]
            step = int(state.get("step", 0))
        except (KeyError, TypeError, ValueError) as e:
            raise SnapshotError(f"image snapshot state is incomplete ({e})") from None
        task = cls(cfg, image, size=None if image is not None else size, device=device)
        restore_training_state(task, state, params, step)
        return task
