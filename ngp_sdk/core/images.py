"""Image files in and out: PNG/JPEG/TIFF through libvips (``pyvips``, the ``gigapixel`` extra) or imageio,
OpenEXR through the ``OpenEXR`` package.

:func:`read_image` is the one reader of the SDK: pixels stay in their stored precision (``uint8``/``uint16``
sRGB codes, ``float16``/``float32`` linear EXR values) and every primitive applies the same rule to them
(integer codes are sRGB-encoded, floats are linear). With ``pyvips`` installed, files are decoded strip by strip
straight into the result, so a gigapixel TIFF (BigTIFF, tiled or striped), PNG or JPEG needs about its own
stored size in memory; without it imageio decodes the whole file first (about twice that).
:func:`save_image` writes linear float RGB.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ngp_sdk.core.errors import DataError
from ngp_sdk.core.files import default_file_mode

__all__ = [
    "EXR_SUFFIXES",
    "LDR_SUFFIXES",
    "VIPS_SUFFIXES",
    "PROGRESS_MIN_PIXELS",
    "read_image",
    "read_image_header",
    "codes_to_uint8",
    "save_image",
    "linear_to_srgb",
    "linear_to_srgb_codes",
    "srgb_to_linear",
]

EXR_SUFFIXES = (".exr",)
LDR_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tga", ".tif", ".tiff", ".webp")
#: Formats decoded by libvips when ``pyvips`` is installed (the others always go through imageio).
VIPS_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
#: Rows decoded per strip by the libvips reader.
_STRIP_ROWS = 256
#: Image work over at least this many pixels shows a progress bar when asked for (decoding, evaluating,
#: rendering); smaller images finish in a blink.
PROGRESS_MIN_PIXELS = 1 << 24


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB EOTF on values in [0, 1]."""
    v = np.asarray(v, dtype=np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb_codes(v: np.ndarray) -> np.ndarray:
    """Linear values (clipped to [0, 1]) as 8-bit sRGB codes, rounded to nearest."""
    return (linear_to_srgb(v) * 255.0 + 0.5).astype(np.uint8)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """Inverse sRGB EOTF; input clipped to [0, 1]."""
    v = np.clip(np.asarray(v, dtype=np.float32), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055).astype(np.float32)


def _read_exr(path: Path) -> np.ndarray:
    """EXR channels R, G, B (or Y) and A if present, layer prefixes ignored, stacked in their stored float type."""
    import OpenEXR

    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            ch = {name.split(".")[-1]: np.array(c.pixels, copy=True) for name, c in f.channels().items()}
    except Exception as e:  # OpenEXR raises plain RuntimeError/Exception on corrupt files
        raise DataError(f"cannot read image {path}: {e}") from None
    if all(k in ch for k in "RGB"):
        planes = [ch["R"], ch["G"], ch["B"]]
    elif "Y" in ch:
        planes = [ch["Y"]] * 3
    else:
        raise DataError(f"EXR image {path} has no R, G, B or Y channels (found {sorted(ch)})")
    if "A" in ch:
        planes.append(ch["A"])
    dtype = np.float16 if all(p.dtype == np.float16 for p in planes) else np.float32
    return np.stack([p.astype(dtype) for p in planes], axis=-1)


def _vips():
    """The ``pyvips`` module, or None when it (or its libvips binary) is not installed."""
    try:
        import pyvips
    except (ImportError, OSError):
        return None
    return pyvips


#: libvips band formats -> NumPy dtypes the reader keeps.
_VIPS_DTYPES = {"uchar": np.uint8, "ushort": np.uint16, "float": np.float32}


def _read_vips(pyvips, path: Path, rgb: bool, progress: bool) -> np.ndarray:
    """Decode with libvips in sequential strips of :data:`_STRIP_ROWS` rows straight into the result."""
    try:
        im = pyvips.Image.new_from_file(str(path), access="sequential")
        if im.interpretation not in ("srgb", "rgb", "b-w", "rgb16", "grey16", "multiband", "scrgb"):
            # CMYK, Lab, ... : let libvips convert to (s)RGB, keeping an alpha band
            im = im.colourspace("rgb16" if im.format == "ushort" else "srgb")
    except pyvips.Error as e:
        raise DataError(f"cannot read image {path}: {str(e).strip()}") from None
    dtype = _VIPS_DTYPES.get(im.format)
    if dtype is None:
        raise DataError(f"image {path} has unsupported pixel type {im.format!r} (8/16-bit integer or float32)")
    bands, h, w = im.bands, im.height, im.width
    if bands not in (1, 2, 3, 4):
        raise DataError(f"image {path} has {bands} channels; expected grey, grey+alpha, RGB or RGBA")
    alpha = bands in (2, 4)
    n_out = 3 if rgb or not alpha else 4
    out = np.empty((h, w, n_out), dtype=dtype)
    from tqdm import tqdm

    show = progress and h * w >= PROGRESS_MIN_PIXELS
    with tqdm(total=h, unit="row", desc=f"read {path.name}", disable=not show, leave=False) as bar:
        for y in range(0, h, _STRIP_ROWS):
            rows = min(_STRIP_ROWS, h - y)
            try:
                mem = im.crop(0, y, w, rows).write_to_memory()
            except pyvips.Error as e:
                raise DataError(f"cannot read image {path} (rows {y}..{y + rows}): {str(e).strip()}") from None
            strip = np.frombuffer(mem, dtype=dtype).reshape(rows, w, bands)
            if bands >= 3:
                out[y:y + rows] = strip[..., :n_out]
            else:  # grey (+ alpha)
                out[y:y + rows, :, :3] = strip[..., :1]
                if n_out == 4:
                    out[y:y + rows, :, 3] = strip[..., 1]
            bar.update(rows)
    return out


def read_image(path: str | os.PathLike, *, rgb: bool = False, progress: bool = False) -> np.ndarray:
    """Read an image file in its stored precision: the one image reader of the SDK.

    Returns ``[H, W, 3]`` or ``[H, W, 4]`` (straight alpha kept unless ``rgb``):

    - PNG / JPEG / TIFF / other 8- and 16-bit files: ``uint8`` or ``uint16`` sRGB-encoded codes (full scale 255 or
      65535; the PNG convention), never converted to float here; grey becomes RGB, grey + alpha RGBA, 1-bit
      images ``uint8`` 0/255; float32 TIFFs stay float32 (linear);
    - OpenEXR: linear ``float16`` (or ``float32`` when a channel is stored as 32-bit float).

    Consumers apply one rule: integer codes are sRGB (``srgb_to_linear(code / full_scale)``), floats are linear.

    Args:
        path: the file.
        rgb: drop alpha (decoded strip by strip, so no RGBA copy of a large file is made).
        progress: show a progress bar over the rows (libvips reader).

    Raises:
        DataError: missing file, unknown layout or dtype, unreadable content.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image not found: {p}")
    suffix = p.suffix.lower()
    pyvips = _vips() if suffix in VIPS_SUFFIXES else None
    if pyvips is not None:
        return _read_vips(pyvips, p, rgb, progress)
    if suffix in EXR_SUFFIXES:
        img = _read_exr(p)
    else:
        import imageio.v3 as iio

        try:
            img = np.asarray(iio.imread(p))
        except Exception as e:  # noqa: BLE001 - any reader failure becomes a DataError naming the file
            raise DataError(f"cannot read image {p}: {e}") from None
        if img.dtype == np.bool_:
            img = img.astype(np.uint8) * 255
        elif img.dtype not in (np.uint8, np.uint16):
            raise DataError(f"image {p} has unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4) or img.shape[0] < 1 or img.shape[1] < 1:
        raise DataError(f"image {p} has unsupported shape {img.shape}")
    if img.shape[2] in (1, 2):  # grey (+ alpha)
        img = np.concatenate([np.repeat(img[..., :1], 3, axis=2), img[..., 1:]], axis=2)
    if rgb:
        img = img[..., :3]
    return np.ascontiguousarray(img)


def read_image_header(path: str | os.PathLike) -> tuple[int, int, bool, bool]:
    """``(width, height, has_alpha, is_hdr)`` of an image file without decoding its pixels.

    Raises:
        DataError: when the header cannot be read.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in EXR_SUFFIXES:
            import OpenEXR

            with OpenEXR.File(str(path), header_only=True) as f:  # the header is cleared on exit
                hdr = f.header()
                (x0, y0), (x1, y1) = (np.asarray(v) for v in hdr["dataWindow"])
                names = {c.name.split(".")[-1] for c in hdr["channels"]}
            return int(x1 - x0 + 1), int(y1 - y0 + 1), "A" in names, True
        from PIL import Image

        with Image.open(path) as im:
            alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
            return int(im.size[0]), int(im.size[1]), alpha, False
    except Exception as e:  # noqa: BLE001
        raise DataError(f"cannot read the header of image {path}: {e}") from e


def codes_to_uint8(img: np.ndarray) -> np.ndarray:
    """Integer sRGB codes as 8-bit codes: ``uint16`` rounded to the nearest of 256 levels, ``uint8`` unchanged."""
    if img.dtype == np.uint16:
        return ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if img.dtype != np.uint8:
        raise DataError(f"expected integer image codes, got {img.dtype}")
    return img


def save_image(path: str | os.PathLike, linear_rgb: np.ndarray) -> Path:
    """Write float linear RGB ``[H, W, 3]``: EXR keeps linear floats, other formats get 8-bit sRGB.

    ``uint8`` input is taken as 8-bit sRGB codes and written as they are (PNG/JPEG/...; EXR decodes them to
    linear first). The file is written to a temporary name first and renamed, so a reader never sees half a file.
    """
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    suffix = p.suffix.lower()
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=p.suffix)
    os.close(fd)
    os.chmod(tmp, default_file_mode())  # mkstemp makes 0o600
    try:
        if suffix in EXR_SUFFIXES:
            import OpenEXR

            header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
            lin = srgb_to_linear(linear_rgb / 255.0) if linear_rgb.dtype == np.uint8 else linear_rgb
            rgb = np.ascontiguousarray(lin.astype(np.float32))
            with OpenEXR.File(header, {"RGB": rgb}) as f:
                f.write(tmp)
        elif suffix in LDR_SUFFIXES:
            import imageio.v3 as iio

            u8 = linear_rgb if linear_rgb.dtype == np.uint8 else linear_to_srgb_codes(linear_rgb)
            iio.imwrite(tmp, u8, extension=suffix)
        else:
            raise DataError(f"{p}: unsupported output type {suffix!r}; use .png, .jpg or .exr")
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p
