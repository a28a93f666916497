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

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "write_snapshot", "read_snapshot", "pack_array", "unpack_array"]

FORMAT_NAME = "ngp-sdk"
FORMAT_VERSION = 1
_ALLOWED_DTYPES = {"<f4", "<f2", "<f8", "<i4", "<i8", "|u1", "<u4", "|b1"}


def pack_array(a: np.ndarray) -> dict[str, Any]:
    """An ndarray as a msgpack-friendly map (little-endian raw bytes)."""
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
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


def write_snapshot(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus format name and version) atomically: temp file in the same folder, then rename.

    ``.ingp`` files are zlib-compressed msgpack (instant-ngp's choice); any other suffix is plain msgpack.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **payload}
    raw = msgpack.packb(doc, default=_encode, use_bin_type=True)
    if p.suffix == ".ingp":
        raw = zlib.compress(raw, 6)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
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
