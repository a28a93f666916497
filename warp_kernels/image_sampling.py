"""Image lookups for the image primitive: stratified sample positions, bilinear texture fetches, pixel grids.

Images stay in their stored dtype (uint8, uint16, float16 or float32, ``[H, W, C]`` row-major); a lookup
converts only the fetched texels to float32 (integer codes through a 256- or 65536-entry table, e.g. sRGB ->
linear). The training batch
therefore never materialises the whole image as float32, whatever its size.

Coordinates: ``x`` runs right over the width, ``y`` down over the height, both in ``[0, 1]``; pixel ``(i, j)``
(column, row) has its centre at ``((i + 0.5) / W, (j + 0.5) / H)``. Lookups clamp to the edge. Renders of a window
or at another scale use a grid of ``grid_w x grid_h`` output pixels over the same unit square (the grid may be
fractional, e.g. ``W * scale``); a pixel's position depends only on its grid and its integer grid coordinates, so
a window rendered alone equals the same pixels of a larger render bit for bit.
"""


import functools

import numpy as np
import warp as wp

from .device import KernelArgumentError, check_array, common_device
from .parallel import launch_split

__all__ = [
    "srgb_to_linear_lut",
    "generate_stratified_positions",
    "generate_pixel_centres",
    "sample_image_bilinear",
    "IMAGE_DTYPES",
    "bilinear_kernel",
]

#: Texel dtypes :func:`sample_image_bilinear` accepts (each has its own bilinear kernel).
IMAGE_DTYPES = (wp.uint8, wp.uint16, wp.float16, wp.float32)

#: Lookup-table length per integer texel dtype.
_LUT_SIZE = {wp.uint8: 256, wp.uint16: 65536}


def srgb_to_linear_lut(srgb: bool, bits: int = 8) -> np.ndarray:
    """float32 ``[2**bits]`` table mapping an integer code to a linear value (sRGB EOTF, or ``v / (2**bits - 1)``).

    Args:
        srgb: codes are sRGB-encoded (else linear).
        bits: 8 (uint8 images) or 16 (uint16 images).
    """
    if bits not in (8, 16):
        raise KernelArgumentError(f"lookup tables exist for 8- and 16-bit codes, not {bits}")
    v = np.arange(1 << bits, dtype=np.float64) / float((1 << bits) - 1)
    if srgb:
        v = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return v.astype(np.float32)


@wp.kernel(enable_backward=False)
def _stratified_kernel(
    offset: int, seed: int, n: int, m: int, out: wp.array2d(dtype=wp.float32)
):
    i = wp.tid() + offset
    state = wp.rand_init(seed, i)
    u = wp.randf(state)
    v = wp.randf(state)
    if i < m * m:
        # stratum (i % m, i // m) of an m x m grid, jittered inside
        out[i, 0] = (float(i % m) + u) / float(m)
        out[i, 1] = (float(i / m) + v) / float(m)
    else:
        out[i, 0] = u
        out[i, 1] = v


def generate_stratified_positions(n: int, seed: int, *, device=None, out: wp.array | None = None) -> wp.array:
    """``n`` points in ``[0, 1)^2``: one per cell of the largest ``m x m`` grid with ``m*m <= n``, uniform after.

    Args:
        n: number of points.
        seed: RNG seed (use a new one each step).
        device: device when ``out`` is not given.
        out: optional float32 ``[n, 2]`` output.

    Returns:
        float32 ``[n, 2]``.
    """
    device = common_device([out], device)
    if out is None:
        out = wp.empty((n, 2), dtype=wp.float32, device=device)
    check_array(out, "out", dtype=wp.float32, shape=(n, 2), device=device)
    m = int(np.floor(np.sqrt(n)))
    launch_split(_stratified_kernel, n, [int(seed) & 0x7FFFFFFF, n, m, out], device)
    return out


@wp.kernel(enable_backward=False)
def _pixel_centres_kernel(
    offset: int, start: wp.int64, width: wp.int64, x0: wp.int64, y0: wp.int64, grid_w: float, grid_h: float,
    out: wp.array2d(dtype=wp.float32)
):
    k = wp.tid() + offset
    p = start + wp.int64(k)
    out[k, 0] = (float(x0 + p % width) + 0.5) / grid_w
    out[k, 1] = (float(y0 + p / width) + 0.5) / grid_h


def generate_pixel_centres(
    width: int, height: int, start: int, count: int, *, origin: tuple[int, int] = (0, 0),
    grid: tuple[float, float] | None = None, device=None, out: wp.array | None = None
) -> wp.array:
    """Centres of pixels ``start .. start+count-1`` (row-major) of a ``width x height`` window, float32 ``[count, 2]``.

    Args:
        width, height: window size in output pixels.
        start, count: the run of window pixels (row-major index) to generate.
        origin: ``(x0, y0)`` grid coordinates of the window's top-left pixel.
        grid: ``(grid_w, grid_h)`` output pixels across the whole unit square (may be fractional); default: the
            window itself (``(width, height)``, i.e. a full-frame render).
        device: device when ``out`` is not given.
        out: optional float32 ``[>= count, 2]`` output.

    Pixel ``(i, j)`` of the window is at ``((x0 + i + 0.5) / grid_w, (y0 + j + 0.5) / grid_h)``.
    """
    device = common_device([out], device)
    if width < 1 or height < 1 or count < 0 or start < 0 or start + count > width * height:
        raise KernelArgumentError(f"pixels {start}..{start + count} do not lie in a {width}x{height} window")
    gw, gh = (float(width), float(height)) if grid is None else (float(grid[0]), float(grid[1]))
    if not (gw > 0 and gh > 0 and np.isfinite(gw) and np.isfinite(gh)):
        raise KernelArgumentError(f"grid must be positive and finite, got {grid}")
    if out is None:
        out = wp.empty((count, 2), dtype=wp.float32, device=device)
    check_array(out, "out", dtype=wp.float32, shape=(None, 2), device=device)
    if out.shape[0] < count:
        raise KernelArgumentError(f"out holds {out.shape[0]} rows, need {count}")
    launch_split(_pixel_centres_kernel, count,
                 [int(start), int(width), int(origin[0]), int(origin[1]), gw, gh, out], device)
    return out


@functools.cache
def _bilinear_kernel(dtype: type) -> wp.Kernel:
    use_lut = 1 if dtype in _LUT_SIZE else 0

    @wp.func
    def fetch(img: wp.array3d(dtype=dtype), lut: wp.array(dtype=wp.float32), y: int, x: int, c: int):
        if use_lut == 1:
            return lut[int(img[y, x, c])]
        return float(img[y, x, c])

    @wp.kernel(enable_backward=False, module="unique")
    def bilinear(
        offset: int,
        img: wp.array3d(dtype=dtype),
        lut: wp.array(dtype=wp.float32),
        pos: wp.array2d(dtype=wp.float32),
        out: wp.array2d(dtype=wp.float32),
    ):
        i = wp.tid() + offset
        h = img.shape[0]
        w = img.shape[1]
        px = wp.clamp(pos[i, 0] * float(w) - 0.5, 0.0, float(w - 1))
        py = wp.clamp(pos[i, 1] * float(h) - 0.5, 0.0, float(h - 1))
        x0 = wp.min(int(px), w - 1)
        y0 = wp.min(int(py), h - 1)
        x1 = wp.min(x0 + 1, w - 1)
        y1 = wp.min(y0 + 1, h - 1)
        fx = px - float(x0)
        fy = py - float(y0)
        for c in range(out.shape[1]):
            a = fetch(img, lut, y0, x0, c) * (1.0 - fx) + fetch(img, lut, y0, x1, c) * fx
            b = fetch(img, lut, y1, x0, c) * (1.0 - fx) + fetch(img, lut, y1, x1, c) * fx
            out[i, c] = a * (1.0 - fy) + b * fy

    return bilinear


def bilinear_kernel(dtype: type) -> wp.Kernel:
    """The kernel :func:`sample_image_bilinear` launches for images of ``dtype`` (one of :data:`IMAGE_DTYPES`).

    Built once per dtype in its own Warp module (``module="unique"``). Public for ahead-of-time compile checks
    (:mod:`warp_kernels.cuda_check`).
    """
    if dtype not in IMAGE_DTYPES:
        raise KernelArgumentError(f"image dtype must be one of uint8, uint16, float16, float32, got {dtype}")
    return _bilinear_kernel(dtype)


def sample_image_bilinear(
    image: wp.array,
    positions: wp.array,
    *,
    lut: wp.array | None = None,
    out: wp.array | None = None,
) -> wp.array:
    """Bilinearly interpolated texels at ``positions``, converted to float32.

    Args:
        image: ``[H, W, C]`` uint8, uint16, float16 or float32.
        positions: float32 ``[N, 2]`` in ``[0, 1]`` (x right, y down).
        lut: float32 code -> value table, required for integer images: ``[256]`` for uint8, ``[65536]`` for
            uint16 (see :func:`srgb_to_linear_lut`).
        out: optional float32 ``[N, C]``.

    Returns:
        float32 ``[N, C]``.
    """
    device = common_device([image, positions, lut, out])
    if image.dtype not in IMAGE_DTYPES or image.ndim != 3:
        raise KernelArgumentError(
            f"image must be [H, W, C] uint8/uint16/float16/float32, got {image.dtype} {image.shape}")
    check_array(positions, "positions", dtype=wp.float32, shape=(None, 2), device=device)
    n, c = positions.shape[0], image.shape[2]
    if image.dtype in _LUT_SIZE:
        size = _LUT_SIZE[image.dtype]
        if lut is None:
            raise KernelArgumentError(f"{image.dtype.__name__} images need a {size}-entry lut (srgb_to_linear_lut)")
        check_array(lut, "lut", dtype=wp.float32, shape=(size,), device=device)
    elif lut is None:
        lut = wp.zeros(1, dtype=wp.float32, device=device)
    if out is None:
        out = wp.empty((n, c), dtype=wp.float32, device=device)
    check_array(out, "out", dtype=wp.float32, shape=(n, c), device=device)
    launch_split(bilinear_kernel(image.dtype), n, [image, lut, positions, out], device)
    return out
