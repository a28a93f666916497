"""Image files in and out: PNG/JPEG through imageio, OpenEXR through the ``OpenEXR`` package.

Pixels stay compact: 8-bit files keep their uint8 sRGB codes (converted to linear per fetched texel by a
lookup table), EXR files keep their stored float16/float32 linear values. Training happens in linear space.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["ImageData", "load_image", "save_image", "linear_to_srgb", "srgb_to_linear"]

EXR_SUFFIXES = (".exr",)
LDR_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tga", ".tif", ".tiff", ".webp")


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


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB EOTF on values in [0, 1]."""
    v = np.asarray(v, dtype=np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """Inverse sRGB EOTF; input clipped to [0, 1]."""
    v = np.clip(np.asarray(v, dtype=np.float32), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055).astype(np.float32)


def _to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise DataError(f"{name}: unsupported image layout {arr.shape}")
    c = arr.shape[2]
    if c == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif c == 2:  # grey + alpha
        arr = np.repeat(arr[:, :, :1], 3, axis=2)
    elif c >= 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)


def _load_exr(path: Path) -> np.ndarray:
    import OpenEXR

    try:
        with OpenEXR.File(str(path)) as f:
            channels = f.channels()
            if "RGB" in channels or "RGBA" in channels:
                px = channels.get("RGBA", channels.get("RGB")).pixels
            else:
                names = {k.split(".")[-1]: v for k, v in channels.items()}
                if all(k in names for k in "RGB"):
                    px = np.stack([names[k].pixels for k in "RGB"], axis=-1)
                elif "Y" in names:
                    px = names["Y"].pixels
                else:
                    raise DataError(f"{path}: EXR has no R/G/B or Y channels (found {sorted(channels)})")
    except DataError:
        raise
    except Exception as e:  # OpenEXR raises plain RuntimeError/Exception on corrupt files
        raise DataError(f"{path}: cannot read EXR: {e}") from None
    px = np.asarray(px)
    if px.dtype not in (np.float16, np.float32):
        px = px.astype(np.float32)
    return px


def load_image(path: str | os.PathLike) -> ImageData:
    """Load PNG/JPEG (uint8 sRGB) or EXR (linear float) as RGB.

    Alpha is dropped; 16-bit PNGs are converted to float16 linear.

    Raises:
        DataError: missing file, unknown format or unreadable content.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image not found: {p}")
    suffix = p.suffix.lower()
    if suffix in EXR_SUFFIXES:
        px = _to_rgb(_load_exr(p), str(p))
        return ImageData(pixels=px, srgb=False, name=str(p))
    if suffix not in LDR_SUFFIXES:
        raise DataError(f"{p}: unsupported image type {suffix!r}; use .png, .jpg or .exr")
    import imageio.v3 as iio

    try:
        arr = np.asarray(iio.imread(p))
    except Exception as e:
        raise DataError(f"{p}: cannot read image: {e}") from None
    arr = _to_rgb(arr, str(p))
    if arr.dtype == np.uint16:
        lin = srgb_to_linear(arr.astype(np.float32) / 65535.0).astype(np.float16)
        return ImageData(pixels=lin, srgb=False, name=str(p))
    if arr.dtype != np.uint8:
        raise DataError(f"{p}: unsupported pixel type {arr.dtype}")
    return ImageData(pixels=arr, srgb=True, name=str(p))


def save_image(path: str | os.PathLike, linear_rgb: np.ndarray) -> Path:
    """Write float linear RGB ``[H, W, 3]``: EXR keeps linear floats, other formats get 8-bit sRGB.

    The file is written to a temporary name first and renamed, so a reader never sees half a file.
    """
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    suffix = p.suffix.lower()
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=p.suffix)
    os.close(fd)
    try:
        if suffix in EXR_SUFFIXES:
            import OpenEXR

            header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
            rgb = np.ascontiguousarray(linear_rgb.astype(np.float32))
            with OpenEXR.File(header, {"RGB": rgb}) as f:
                f.write(tmp)
        elif suffix in LDR_SUFFIXES:
            import imageio.v3 as iio

            u8 = (linear_to_srgb(linear_rgb) * 255.0 + 0.5).astype(np.uint8)
            iio.imwrite(tmp, u8, extension=suffix)
        else:
            raise DataError(f"{p}: unsupported output type {suffix!r}; use .png, .jpg or .exr")
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p
