"""Image and depth payload codecs of the bridge protocol: raw pixel layouts (zero-copy views), PNG/JPEG size
sniffing and decoding (imageio, imported lazily), and the encoders clients use."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .constants import (
    COMPRESSED_ENCODINGS,
    DEFAULT_DEPTH_SCALE,
    DEFAULT_LIMITS,
    DEPTH_ENCODINGS,
    IMAGE_ENCODINGS,
    RAW_ENCODINGS,
    Limits,
)
from .errors import BadFieldError, PayloadMismatchError, ProtocolError, TooLargeError, UnsupportedError
from .fields import FieldReader, as_buffer, short_repr

__all__ = [
    "PayloadLayout",
    "read_layout",
    "image_from_layout",
    "depth_from_layout",
    "decode_image",
    "decode_depth",
    "encode_image",
    "encode_depth",
]

# encoding -> (dtype, channels) of raw payloads
_PIXEL_FORMATS: dict[str, tuple[type, int]] = {
    **{name: (np.uint8, c) for name, c in RAW_ENCODINGS.items()},
    "32FC3": (np.float32, 3),
    "32FC1": (np.float32, 1),
    "16UC1": (np.uint16, 1),
}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True, kw_only=True)
class PayloadLayout:
    """A validated image/depth description: what one payload frame must contain."""

    encoding: str
    width: int
    height: int
    step: int
    big_endian: bool = False
    scale: float = 1.0


def read_layout(r: FieldReader, limits: Limits, encodings: Sequence[str], *, depth: bool = False,
                unknown_encoding: type[ProtocolError] | None = None) -> PayloadLayout:
    """Read and check an ``image`` (or, with ``depth``, a ``depth``) field; reject its unknown keys.

    An ``encoding`` string outside ``encodings`` raises ``unknown_encoding`` (default: the reader's error; protocol
    version 2 passes :class:`UnsupportedError`).
    """
    encoding = r.string("encoding", choices=encodings, choice_error=unknown_encoding)
    width = r.integer("width", lo=1, hi=limits.max_image_width, hi_error=TooLargeError)
    height = r.integer("height", lo=1, hi=limits.max_image_height, hi_error=TooLargeError)
    big_endian = r.boolean("is_bigendian", default=False)
    if encoding in COMPRESSED_ENCODINGS:
        step = r.integer("step", lo=0, default=0)
        if step:
            raise r.invalid("step", f"0 or absent for {encoding}", step)
    else:
        dtype, channels = _PIXEL_FORMATS[encoding]
        row = width * channels * np.dtype(dtype).itemsize
        step = r.integer("step", lo=row, default=row)
    scale = r.number("scale", positive=True, default=DEFAULT_DEPTH_SCALE[encoding]) if depth else 1.0
    r.done()
    return PayloadLayout(encoding=encoding, width=width, height=height, step=step, big_endian=big_endian, scale=scale)


def _raw_pixels(layout: PayloadLayout, payload: memoryview) -> np.ndarray:
    """Zero-copy ``[H, W, C]`` view of a raw payload (row padding skipped through strides)."""
    h, step = layout.height, layout.step
    if len(payload) != h * step:
        raise PayloadMismatchError(
            f"payload has {len(payload)} bytes; height * step = {h} * {step} = {h * step} ({layout.encoding})"
        )
    dtype, channels = _PIXEL_FORMATS[layout.encoding]
    dt = np.dtype(dtype)
    if dt.itemsize > 1:
        dt = dt.newbyteorder(">" if layout.big_endian else "<")
    rows = np.frombuffer(payload, dtype=np.uint8, count=h * step).reshape(h, step)
    rows = rows[:, : layout.width * channels * dt.itemsize]
    if dt.itemsize > 1:
        rows = rows.view(dt)
    return rows.reshape(h, layout.width, channels)


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first SOF segment, without decoding (guards against decompression bombs)."""
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if i + 9 > n:
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _imageio() -> Any:
    try:
        import imageio.v3 as iio
    except ImportError as e:
        raise UnsupportedError("PNG and JPEG images need the 'imageio' package on this side") from e
    return iio


def _decode_compressed(layout: PayloadLayout, payload: memoryview) -> np.ndarray:
    """Decode a PNG/JPEG payload to uint8 ``[H, W, 3]`` RGB or ``[H, W, 4]`` RGBA (PNG with alpha)."""
    data = bytes(payload)
    name = layout.encoding.upper()
    size = _png_size(data) if layout.encoding == "png" else _jpeg_size(data)
    if size is None:
        raise PayloadMismatchError(f"payload is not a {name} stream")
    if size != (layout.width, layout.height):
        raise PayloadMismatchError(
            f"{name} stream is {size[0]}x{size[1]}; the header says {layout.width}x{layout.height}"
        )
    iio = _imageio()
    extra = {"mode": "RGB"} if layout.encoding == "jpeg" else {}
    try:
        arr = np.asarray(iio.imread(data, index=0, extension=".png" if layout.encoding == "png" else ".jpg", **extra))
    except Exception as e:  # decoders raise OSError, ValueError, SyntaxError, ... on corrupt streams
        raise PayloadMismatchError(f"could not decode the {name} payload: {short_repr(str(e), 200)}") from None
    if arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[:2] != (layout.height, layout.width):
        raise PayloadMismatchError(f"{name} payload decodes to {arr.dtype} {arr.shape}, not a {name} image")
    channels = arr.shape[2]
    if channels == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif channels == 2:  # grey + alpha
        arr = arr[..., [0, 0, 0, 1]]
    elif channels not in (3, 4):
        raise PayloadMismatchError(f"{name} payload has {channels} channels")
    return np.ascontiguousarray(arr)


def image_from_layout(layout: PayloadLayout, payload: memoryview) -> np.ndarray:
    """Decode an image payload of a checked layout (see :func:`decode_image`)."""
    if layout.encoding in COMPRESSED_ENCODINGS:
        return _decode_compressed(layout, payload)
    pixels = _raw_pixels(layout, payload)
    if layout.encoding == "bgr8":
        return pixels[..., ::-1]
    if layout.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if layout.encoding == "32FC3" and pixels.dtype.byteorder not in "=|":
        return pixels.astype(np.float32)
    return pixels


def depth_from_layout(layout: PayloadLayout, payload: memoryview) -> np.ndarray:
    """Decode a depth payload of a checked layout (see :func:`decode_depth`)."""
    raw = _raw_pixels(layout, payload)[..., 0]
    with np.errstate(all="ignore"):
        depth = raw.astype(np.float32) * np.float32(layout.scale)
    depth[~np.isfinite(depth) | (depth <= 0)] = 0.0
    return depth


def _field_reader(value: Any, name: str, error: type[ProtocolError] = BadFieldError) -> FieldReader:
    if not isinstance(value, Mapping):
        raise error(f"field '{name}' must be a map, got {short_repr(value)}")
    return FieldReader(value, f"{name}.", error)


def decode_image(
    image_field: Mapping[str, Any],
    payload: Any,
    limits: Limits = DEFAULT_LIMITS,
    *,
    encodings: Sequence[str] = IMAGE_ENCODINGS,
) -> np.ndarray:
    """Decode one image payload described by an ``image`` field (request, reply or view).

    Args:
        image_field: ``{encoding, width, height, step?, is_bigendian?}``.
        payload: the payload frame.
        limits: size limits.
        encodings: encodings accepted.

    Returns:
        8-bit encodings: uint8 ``[H, W, 3]`` RGB (``bgr8`` swapped, ``mono8`` replicated) or ``[H, W, 4]``
        RGBA (``rgba8``, PNG with alpha). ``32FC3``: float32 ``[H, W, 3]``. Raw encodings are zero-copy,
        read-only views into the payload where the layout allows (``rgb8``, ``rgba8``, ``bgr8``, ``32FC3``).

    Raises:
        BadFieldError, TooLargeError, PayloadMismatchError, UnsupportedError.
    """
    return image_from_layout(read_layout(_field_reader(image_field, "image"), limits, encodings), as_buffer(payload))


def decode_depth(depth_field: Mapping[str, Any], payload: Any, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode a depth payload described by ``{encoding: 32FC1|16UC1, width, height, step?, scale?}``.

    Returns:
        float32 ``[H, W]`` depth in scene units (stored value times ``scale``); 0 marks invalid pixels
        (stored 0, negative, NaN or infinite).
    """
    layout = read_layout(_field_reader(depth_field, "depth"), limits, tuple(DEPTH_ENCODINGS), depth=True)
    return depth_from_layout(layout, as_buffer(payload))


def encode_image(image: np.ndarray, encoding: str, *, quality: int = 90) -> tuple[dict[str, Any], Any]:
    """Encode an image as an ``image`` field and its payload (raw encodings: zero-copy when contiguous).

    Args:
        image: uint8 ``[H, W, C]`` for the 8-bit encodings (``mono8``: ``[H, W]`` or ``[H, W, 1]``; ``png``:
            1, 3 or 4 channels; ``jpeg``: 1 or 3 channels, alpha dropped), float ``[H, W, 3]`` for ``32FC3``.
            Channels are sent in the order given (``bgr8`` expects a BGR array).
        encoding: one of :data:`IMAGE_ENCODINGS`.
        quality: JPEG quality, 1..100.

    Returns:
        ``(image_field, payload)``.

    Raises:
        ValueError: the array does not fit the encoding.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    channels = arr.shape[2] if arr.ndim == 3 else 0
    if encoding == "32FC3":
        if channels != 3 or arr.dtype.kind != "f":
            raise ValueError(f"32FC3 needs a float [H, W, 3] array, got {arr.dtype} {arr.shape}")
        arr = arr.astype("<f4", copy=False)
    elif arr.dtype != np.uint8 or channels not in (1, 3, 4):
        raise ValueError(f"{encoding} needs a uint8 [H, W, C] array, got {arr.dtype} {np.shape(image)}")
    height, width = arr.shape[:2]
    if encoding in COMPRESSED_ENCODINGS:
        if encoding == "jpeg":
            arr = arr[..., :3] if channels != 1 else arr[..., 0]
            data = _imageio().imwrite("<bytes>", np.ascontiguousarray(arr), extension=".jpg", quality=int(quality))
        else:
            data = _imageio().imwrite(
                "<bytes>", np.ascontiguousarray(arr if channels != 1 else arr[..., 0]), extension=".png"
            )
        return {"encoding": encoding, "width": width, "height": height}, data
    if encoding not in _PIXEL_FORMATS or encoding in DEPTH_ENCODINGS:
        raise ValueError(f"unknown image encoding {encoding!r}; expected one of {IMAGE_ENCODINGS}")
    if channels != _PIXEL_FORMATS[encoding][1]:
        raise ValueError(f"{encoding} needs {_PIXEL_FORMATS[encoding][1]} channels, got {channels}")
    arr = np.ascontiguousarray(arr)
    step = width * channels * arr.dtype.itemsize
    return {"encoding": encoding, "width": width, "height": height, "step": step}, as_buffer(arr)


def encode_depth(depth: np.ndarray) -> tuple[dict[str, Any], Any]:
    """Encode a float ``[H, W]`` depth map (scene units, 0 = invalid) as a ``32FC1`` field and payload."""
    arr = np.asarray(depth)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"depth must be [H, W], got {arr.shape}")
    arr = np.ascontiguousarray(arr.astype("<f4", copy=False))
    height, width = arr.shape
    field_ = {"encoding": "32FC1", "width": width, "height": height, "step": width * 4, "scale": 1.0}
    return field_, as_buffer(arr)
