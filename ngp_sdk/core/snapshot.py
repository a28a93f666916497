"""Snapshot files: versioned msgpack (``.msgpack``) or zlib-compressed msgpack (``.ingp``), written atomically.

Layout of the top-level map (all keys are strings)::

    {"format": "ngp-sdk", "version": 1, "primitive": "image", "config": {...tcnn JSON...},
     "step": int, "metrics": {...}, "state": {...task state...}}

Arrays anywhere inside are maps ``{"__ndarray__": True, "dtype": "<f4", "shape": [...], "data": <bytes>}``;
nothing is pickled. A truncated, corrupt or foreign file raises :class:`~ngp_sdk.core.errors.SnapshotError`.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from ngp_sdk.core.errors import SnapshotError
from ngp_sdk.core.files import default_file_mode

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "write_snapshot", "read_snapshot", "pack_array", "unpack_array"]

FORMAT_NAME = "ngp-sdk"
FORMAT_VERSION = 1
_ALLOWED_DTYPES = {"<f4", "<f2", "<f8", "<i4", "<i8", "|u1", "<u4", "|b1"}


def _stored_layout(a: np.ndarray) -> np.ndarray:
    """``a`` as snapshots store it: C-contiguous and little-endian (no copy when it already is)."""
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return a


def pack_array(a: np.ndarray) -> dict[str, Any]:
    """An ndarray as a msgpack-friendly map (little-endian raw bytes)."""
    a = _stored_layout(a)
    return {"__ndarray__": True, "dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


def unpack_array(m: dict[str, Any], where: str = "array") -> np.ndarray:
    """Inverse of :func:`pack_array`, validating dtype and length."""
    try:
        dtype = np.dtype(m["dtype"])
        shape = tuple(int(s) for s in m["shape"])
        data = m["data"]
    except (KeyError, TypeError, ValueError) as e:
        raise SnapshotError(f"{where}: malformed array entry ({e})") from None
    if dtype.str not in _ALLOWED_DTYPES or not isinstance(data, bytes):
        raise SnapshotError(f"{where}: unsupported array dtype {dtype.str}")
    if any(s < 0 for s in shape) or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(data):
        raise SnapshotError(f"{where}: array data length {len(data)} does not match shape {shape} {dtype}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return pack_array(obj)
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in a snapshot")


def _decode(obj: dict[str, Any]) -> Any:
    if obj.get("__ndarray__") is True:
        return unpack_array(obj)
    return obj


class _Sink:
    """A binary file, optionally behind a zlib stream, written in bounded pieces."""

    _PIECE = 1 << 24

    def __init__(self, f, compress: bool):
        self._f = f
        self._z = zlib.compressobj(6) if compress else None

    def write(self, data) -> None:
        mv = memoryview(data).cast("B")
        for i in range(0, len(mv), self._PIECE):
            piece = mv[i:i + self._PIECE]
            self._f.write(self._z.compress(piece) if self._z is not None else piece)

    def close(self) -> None:
        if self._z is not None:
            self._f.write(self._z.flush())


def _bin_header(n: int) -> bytes:
    """msgpack ``bin 8/16/32`` header of an ``n``-byte payload."""
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    if n < 1 << 32:
        return b"\xc6" + n.to_bytes(4, "big")
    raise SnapshotError(f"an array of {n} bytes is too large for msgpack (4 GiB at most)")


def _stream(obj: Any, sink: _Sink, packer: msgpack.Packer) -> None:
    """msgpack-encode ``obj`` into ``sink`` exactly as ``packb(obj, default=_encode)`` would, but writing array
    data straight from the arrays' memory (no ``tobytes`` copy, no whole-document buffer)."""
    if isinstance(obj, dict):
        sink.write(packer.pack_map_header(len(obj)))
        for k, v in obj.items():
            _stream(k, sink, packer)
            _stream(v, sink, packer)
    elif isinstance(obj, (list, tuple)):
        sink.write(packer.pack_array_header(len(obj)))
        for v in obj:
            _stream(v, sink, packer)
    elif isinstance(obj, np.ndarray):
        a = _stored_layout(obj)
        sink.write(packer.pack_map_header(4))
        for k, v in (("__ndarray__", True), ("dtype", a.dtype.str), ("shape", list(a.shape))):
            sink.write(packer.pack(k))
            sink.write(packer.pack(v))
        sink.write(packer.pack("data"))
        sink.write(_bin_header(a.nbytes))
        if a.nbytes:
            sink.write(a.reshape(-1).view(np.uint8))
    else:
        sink.write(packer.pack(obj))


def write_snapshot(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format name and version) atomically: temp file in the same folder, then rename.

    ``.ingp`` files are zlib-compressed msgpack (instant-ngp's choice); any other suffix is plain msgpack. Arrays
    are streamed from their own memory, so writing needs no second copy of the parameters.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **payload}
    packer = msgpack.Packer(default=_encode, use_bin_type=True, autoreset=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.chmod(tmp, default_file_mode())  # mkstemp makes 0o600
    try:
        with os.fdopen(fd, "wb") as f:
            sink = _Sink(f, compress=p.suffix == ".ingp")
            _stream(doc, sink, packer)
            sink.close()
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


def read_snapshot(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a snapshot written by :func:`write_snapshot`.

    Raises:
        SnapshotError: missing, truncated, corrupt, foreign or newer-version file.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise SnapshotError(f"snapshot not found: {p}") from None
    except OSError as e:
        raise SnapshotError(f"cannot read snapshot {p}: {e.strerror or e}") from None
    if not raw:
        raise SnapshotError(f"{p}: empty file, not a snapshot")
    if raw[:1] == b"\x78":  # zlib header
        try:
            raw = zlib.decompress(raw)
        except zlib.error:
            raise SnapshotError(f"{p}: truncated or corrupt compressed snapshot") from None
    try:
        doc = msgpack.unpackb(raw, object_hook=_decode, raw=False, strict_map_key=True)
    except SnapshotError as e:
        raise SnapshotError(f"{p}: {e}") from None
    except Exception:
        raise SnapshotError(f"{p}: not an ngp-sdk snapshot (truncated, corrupt or another file type)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise SnapshotError(f"{p}: not an ngp-sdk snapshot (no '{FORMAT_NAME}' format marker)")
    version = doc.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise SnapshotError(f"{p}: snapshot format version {version!r} is not supported (this SDK reads <= "
                            f"{FORMAT_VERSION}); upgrade ngp-sdk")
    return doc
