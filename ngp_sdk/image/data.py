"""Images for the image primitive: pixels kept in their stored precision, read with the SDK's one reader.

8-bit files keep their ``uint8`` sRGB codes (converted to linear per fetched texel by a lookup table), EXR files
keep their stored ``float16``/``float32`` linear values, 16-bit files become ``float16`` linear (the sRGB rule of
:func:`ngp_sdk.core.images.read_image` applied once). Alpha is dropped. Training happens in linear space.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ngp_sdk.core.errors import DataError
from ngp_sdk.core.images import EXR_SUFFIXES, LDR_SUFFIXES, read_image, srgb_to_linear

__all__ = ["ImageData", "load_image"]


@dataclass(frozen=True, eq=False)
class ImageData:
    """An image kept in its stored precision.

    Attributes:
        pixels: ``[H, W, 3]`` uint8 (codes) or float16/float32 (linear values), C-contiguous.
        srgb: True when uint8 codes are sRGB-encoded (False: codes are linear ``v / 255``).
        name: where it came from (file path or a label).
    """

    pixels: np.ndarray
    srgb: bool = True
    name: str = "<array>"

    def __post_init__(self) -> None:
        p = self.pixels
        if p.ndim != 3 or p.shape[2] != 3 or p.shape[0] < 1 or p.shape[1] < 1:
            raise DataError(f"{self.name}: image must be [H, W, 3], got shape {p.shape}")
        if p.dtype not in (np.uint8, np.float16, np.float32):
            raise DataError(f"{self.name}: image dtype must be uint8, float16 or float32, got {p.dtype}")
        if p.dtype != np.uint8 and not np.isfinite(p).all():
            raise DataError(f"{self.name}: image contains NaN or infinite values")

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def linear_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as float32 linear RGB (a bounded slice, never the whole image at once)."""
        rows = self.pixels[start:stop]
        if rows.dtype == np.uint8:
            v = rows.astype(np.float32) / 255.0
            return srgb_to_linear(v) if self.srgb else v
        return rows.astype(np.float32)


def load_image(path: str | os.PathLike) -> ImageData:
    """Load PNG/JPEG (uint8 sRGB codes) or EXR (linear float) as RGB for the image primitive.

    Alpha is dropped; 16-bit files are converted to float16 linear.

    Raises:
        DataError: missing file, unknown format or unreadable content.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image not found: {p}")
    suffix = p.suffix.lower()
    if suffix not in EXR_SUFFIXES + LDR_SUFFIXES:
        raise DataError(f"{p}: unsupported image type {suffix!r}; use .png, .jpg or .exr")
    px = read_image(p)[:, :, :3]
    if px.dtype == np.uint16:
        lin = srgb_to_linear(px.astype(np.float32) / 65535.0).astype(np.float16)
        return ImageData(pixels=np.ascontiguousarray(lin), srgb=False, name=str(p))
    return ImageData(pixels=np.ascontiguousarray(px), srgb=px.dtype == np.uint8, name=str(p))
