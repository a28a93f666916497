"""Images for the image primitive: pixels kept in their stored precision, read with the SDK's one reader.

8- and 16-bit files keep their ``uint8``/``uint16`` sRGB codes (converted to linear per fetched texel by a lookup
table), EXR files keep their stored ``float16``/``float32`` linear values, ``.npy`` arrays are memory-mapped
(``uint8``/``uint16`` codes are sRGB, floats linear; the file's pages are shared, never copied). Alpha is dropped.
Training happens in linear space; nothing here makes a float copy of the whole image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ngp_sdk.core.errors import DataError
from ngp_sdk.core.images import EXR_SUFFIXES, LDR_SUFFIXES, read_image, srgb_to_linear

#: Raw arrays the loader memory-maps.
ARRAY_SUFFIXES = (".npy",)
_CODE_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}

__all__ = ["ImageData", "load_image"]


@dataclass(frozen=True, eq=False)
class ImageData:
    """An image kept in its stored precision.

    Attributes:
        pixels: ``[H, W, 3]`` uint8/uint16 (codes) or float16/float32 (linear values), C-contiguous; may be a
            read-only ``numpy.memmap``.
        srgb: True when integer codes are sRGB-encoded (False: codes are linear ``v / full_scale``).
        name: where it came from (file path or a label).
    """

    pixels: np.ndarray
    srgb: bool = True
    name: str = "<array>"

    def __post_init__(self) -> None:
        p = self.pixels
        if p.ndim != 3 or p.shape[2] != 3 or p.shape[0] < 1 or p.shape[1] < 1:
            raise DataError(f"{self.name}: image must be [H, W, 3], got shape {p.shape}")
        if p.dtype not in (np.uint8, np.uint16, np.float16, np.float32):
            raise DataError(f"{self.name}: image dtype must be uint8, uint16, float16 or float32, got {p.dtype}")
        if not p.flags.c_contiguous:
            raise DataError(f"{self.name}: image must be C-contiguous")
        if p.dtype.kind == "f":
            step = max(1, (1 << 24) // (p.shape[1] * 3))  # checked in bounded slices
            if not all(np.isfinite(p[y:y + step]).all() for y in range(0, p.shape[0], step)):
                raise DataError(f"{self.name}: image contains NaN or infinite values")

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def bits(self) -> int:
        """Bits per stored channel value (8, 16 or 32)."""
        return int(self.pixels.dtype.itemsize * 8)

    def to_linear(self, values: np.ndarray) -> np.ndarray:
        """Stored values (any shape, this image's dtype) as float32 linear values."""
        scale = _CODE_SCALE.get(values.dtype)
        if scale is None:
            return values.astype(np.float32)
        v = values.astype(np.float32) / np.float32(scale)
        return srgb_to_linear(v) if self.srgb else v

    def linear_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as float32 linear RGB (a bounded slice, never the whole image at once)."""
        return self.to_linear(self.pixels[start:stop])

    def linear_run(self, start: int, count: int) -> np.ndarray:
        """``count`` pixels from row-major index ``start`` as float32 linear RGB ``[count, 3]`` (rows read only)."""
        w = self.width
        r0, r1 = start // w, (start + count - 1) // w + 1
        rows = self.pixels[r0:r1].reshape(-1, 3)
        off = start - r0 * w
        return self.to_linear(rows[off:off + count])

    def linear_pixels(self, index: np.ndarray) -> np.ndarray:
        """Pixels at row-major indices ``index`` ``[N]`` as float32 linear RGB ``[N, 3]``."""
        index = np.asarray(index, dtype=np.int64)
        return self.to_linear(self.pixels[index // self.width, index % self.width])


def load_image(path: str | os.PathLike, *, progress: bool = False) -> ImageData:
    """Load an image for the image primitive, keeping its stored precision and never a float copy.

    PNG/JPEG/TIFF (BigTIFF, tiled or striped; libvips with the ``gigapixel`` extra): ``uint8``/``uint16`` sRGB
    codes, decoded strip by strip. EXR: linear ``float16``/``float32``. ``.npy``: memory-mapped read-only
    (``[H, W, 3]``; integer codes are sRGB, floats linear; ``[H, W, 4]`` is copied without its alpha).

    Args:
        path: the file.
        progress: show a progress bar while decoding.

    Raises:
        DataError: missing file, unknown format or unreadable content.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image not found: {p}")
    suffix = p.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        return _load_array(p)
    if suffix not in EXR_SUFFIXES + LDR_SUFFIXES:
        raise DataError(f"{p}: unsupported image type {suffix!r}; use .png, .jpg, .tif, .exr or .npy")
    px = read_image(p, rgb=True, progress=progress)
    return ImageData(pixels=px, srgb=px.dtype.kind == "u", name=str(p))


def _load_array(p: Path) -> ImageData:
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataError(f"cannot read array {p}: {e}") from None
    if arr.ndim == 2:
        raise DataError(f"{p}: array must be [H, W, 3] (or [H, W, 4]), got a 2-D array {arr.shape}; stack it to RGB")
    if arr.ndim == 3 and arr.shape[2] == 4:
        rgb = np.empty(arr.shape[:2] + (3,), dtype=arr.dtype)
        step = max(1, (1 << 24) // max(1, arr.shape[1] * 4))
        for y in range(0, arr.shape[0], step):
            rgb[y:y + step] = arr[y:y + step, :, :3]
        arr = rgb
    return ImageData(pixels=arr, srgb=arr.dtype.kind == "u", name=str(p))
