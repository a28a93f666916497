"""Training-ray batches for NeRF: random image, random pixel, 8-bit target over a per-ray background.

instant-ngp's ``generate_training_samples_nerf`` picks, for every ray, an image uniformly at random and a
continuous position uniformly inside it; the target is the pixel containing that position. Images with alpha
are composited over a random background colour per ray (the rendered ray is composited over the same colour,
so the network learns opacity instead of a fixed backdrop)::

    target = rgb * a + bg * (1 - a)        rgb, a = pixel / 255 (straight alpha; a = 1 without alpha)

Images are stacked as uint8 rows ``pixels[image, (y * width_i + x) * C + c]`` (``C`` = 3 or 4), so frames of
different sizes share one array (shorter rows are padded). Random numbers come from the counter-based
:func:`warp_kernels.random.rand01` (stream :data:`STREAM_TRAINING_RAYS`, counter ``6 * ray + k``),
so a batch is identical on CPU and CUDA and reproducible by the NumPy reference.
"""

from __future__ import annotations

import numpy as np
import warp as wp

from .device import KernelArgumentError, check_array, common_device
from .parallel import launch_split
from .random import rand01

__all__ = ["STREAM_TRAINING_RAYS", "RAND_PER_RAY", "sample_training_rays"]

#: RNG stream of the training-ray sampler (occupancy grid: 1-3, march jitter: 16).
STREAM_TRAINING_RAYS = 32
#: Random numbers drawn per ray: image, x, y, background r, g, b.
RAND_PER_RAY = 6

_STREAM = wp.constant(wp.uint32(STREAM_TRAINING_RAYS))
_INV255 = wp.constant(1.0 / 255.0)

wp.set_module_options({"enable_backward": False})


@wp.kernel
def _sample_kernel(
    offset: int,
    seed: wp.uint32,
    pixels: wp.array2d(dtype=wp.uint8),
    sizes: wp.array2d(dtype=wp.int32),
    n_channels: int,
    random_bg: int,
    fixed_bg: wp.vec3,
    pixel_xy: wp.array2d(dtype=float),
    cam_index: wp.array(dtype=wp.int32),
    targets: wp.array2d(dtype=float),
    backgrounds: wp.array2d(dtype=float),
):
    r = wp.tid() + offset
    n_images = sizes.shape[0]
    base = wp.uint32(6) * wp.uint32(r)
    img = wp.min(int(rand01(seed, _STREAM, base) * float(n_images)), n_images - 1)
    w = sizes[img, 0]
    h = sizes[img, 1]
    px = rand01(seed, _STREAM, base + wp.uint32(1)) * float(w)
    py = rand01(seed, _STREAM, base + wp.uint32(2)) * float(h)
    ix = wp.min(int(px), w - 1)
    iy = wp.min(int(py), h - 1)
    k = (iy * w + ix) * n_channels
    a = wp.float32(1.0)
    if n_channels == 4:
        a = float(pixels[img, k + 3]) * _INV255
    bg = fixed_bg
    if random_bg != 0:
        bg = wp.vec3(
            rand01(seed, _STREAM, base + wp.uint32(3)),
            rand01(seed, _STREAM, base + wp.uint32(4)),
            rand01(seed, _STREAM, base + wp.uint32(5)),
        )
    for c in range(3):
        targets[r, c] = float(pixels[img, k + c]) * _INV255 * a + bg[c] * (1.0 - a)
        backgrounds[r, c] = bg[c]
    pixel_xy[r, 0] = px
    pixel_xy[r, 1] = py
    cam_index[r] = wp.int32(img)


def sample_training_rays(
    pixels: wp.array,
    sizes: wp.array,
    n_rays: int,
    *,
    seed: int,
    n_channels: int,
    random_background: bool = True,
    background=(0.0, 0.0, 0.0),
    pixel_xy: wp.array | None = None,
    cam_index: wp.array | None = None,
    targets: wp.array | None = None,
    backgrounds: wp.array | None = None,
    device: wp.context.Devicelike = None,
) -> tuple[wp.array, wp.array, wp.array, wp.array]:
    """Draw ``n_rays`` training rays: image, continuous pixel position, target colour and background.

    Args:
        pixels: uint8 ``[n_images, row_len]``: image ``i`` is ``pixels[i, :h_i * w_i * n_channels]`` in
            row-major ``[h_i, w_i, n_channels]`` order.
        sizes: int32 ``[n_images, 2]`` ``(width, height)`` of each image.
        n_rays: rays to draw.
        seed: RNG seed (use a new one every step).
        n_channels: 3 (RGB) or 4 (RGBA, straight alpha).
        random_background: a random colour per ray; False uses ``background`` for every ray.
        background: the constant background (3 floats in [0, 1]) when ``random_background`` is False.
        pixel_xy: optional float32 ``[n_rays, 2]`` output: continuous pixel coordinates (origin at the image's
            top-left corner, as :func:`warp_kernels.rays.generate_rays` takes them).
        cam_index: optional int32 ``[n_rays]`` output: the image (= camera) of each ray.
        targets: optional float32 ``[n_rays, 3]`` output: target colour composited over the background.
        backgrounds: optional float32 ``[n_rays, 3]`` output: the background colour of each ray.
        device: launch device; ``None`` = the arrays' device.

    Returns:
        ``(pixel_xy, cam_index, targets, backgrounds)``.

    Raises:
        KernelArgumentError: wrong shapes or dtypes, image rows shorter than their sizes say, no images.
    """
    dev = common_device([pixels, sizes, pixel_xy, cam_index, targets, backgrounds], device)
    check_array(pixels, "pixels", dtype=wp.uint8, shape=(None, None), device=dev)
    check_array(sizes, "sizes", dtype=wp.int32, shape=(pixels.shape[0], 2), device=dev)
    if n_channels not in (3, 4):
        raise KernelArgumentError(f"n_channels must be 3 or 4, got {n_channels}")
    if pixels.shape[0] == 0:
        raise KernelArgumentError("sample_training_rays needs at least one image")
    if dev.is_cpu:
        s = sizes.numpy().astype(np.int64)
        if s.min() < 1 or int((s[:, 0] * s[:, 1]).max()) * n_channels > pixels.shape[1]:
            raise KernelArgumentError("image sizes do not fit the pixel rows (or are not positive)")
    n = int(n_rays)
    outs = []
    for a, name, dtype, shape in (
        (pixel_xy, "pixel_xy", wp.float32, (n, 2)),
        (cam_index, "cam_index", wp.int32, (n,)),
        (targets, "targets", wp.float32, (n, 3)),
        (backgrounds, "backgrounds", wp.float32, (n, 3)),
    ):
        if a is None:
            a = wp.empty(shape, dtype=dtype, device=dev)
        else:
            check_array(a, name, dtype=dtype, shape=shape, device=dev)
        outs.append(a)
    bg = [float(v) for v in background]
    if len(bg) != 3:
        raise KernelArgumentError(f"background must be 3 floats, got {background!r}")
    launch_split(
        _sample_kernel,
        n,
        [int(seed) & 0xFFFFFFFF, pixels, sizes, int(n_channels), int(bool(random_background)), wp.vec3(*bg), *outs],
        dev,
    )
    return outs[0], outs[1], outs[2], outs[3]
