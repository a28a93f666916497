"""Framing of the bridge protocol: multipart messages ``[msgpack header, payload, ...]``, strict header
decoding, ROUTER envelopes, view topics, and the checks of the common header fields."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgpack

from .constants import DEFAULT_LIMITS, PROTOCOL_VERSION, VIEW_NAME_PATTERN, VIEW_NAME_RE, Limits
from .errors import BadHeaderError, BadVersionError, TooLargeError
from .fields import as_buffer, check_tree, is_int, pack_default, short_repr, unique_str_map, value_kind

__all__ = [
    "encode_message",
    "decode_header",
    "split_envelope",
    "view_topic",
    "decode_frames",
    "check_version",
    "common_field",
    "is_seq",
    "is_stamp",
]

_UINT64 = 2**64
_INT63 = 2**63


def encode_message(header: Mapping[str, Any], payloads: Sequence[Any] = ()) -> list[bytes | memoryview]:
    """Frames of one message: the msgpack header, then the payloads unchanged (no copy).

    Args:
        header: the header map (string keys; numpy scalars are converted, arrays are refused).
        payloads: bytes-like payloads (bytes, bytearray, memoryview, numpy arrays, zmq frames).

    Returns:
        ``[header bytes, payload, ...]``, ready for ``socket.send_multipart``. Do not mutate payload buffers
        before they are sent.

    Raises:
        TypeError: the header holds a value msgpack cannot encode (e.g. a numpy array).
    """
    frames: list[bytes | memoryview] = [msgpack.packb(dict(header), use_bin_type=True, default=pack_default)]
    for p in payloads:
        frames.append(p if isinstance(p, bytes) else as_buffer(p))
    return frames


def decode_header(frame: Any, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Decode a header frame with strict msgpack unpacker limits.

    Args:
        frame: the first frame of a message (bytes-like).
        limits: the limits to enforce.

    Returns:
        The header map: string keys (no duplicates) at every level, only nil/bool/int/float/str/array/map
        values, nesting at most ``limits.max_depth``.

    Raises:
        TooLargeError: the frame exceeds ``limits.max_header_bytes``.
        BadHeaderError: anything else wrong (not msgpack, trailing bytes, not a map, a limit exceeded, ...).
    """
    buf = as_buffer(frame)
    if len(buf) > limits.max_header_bytes:
        raise TooLargeError(f"header is {len(buf)} bytes; max_header_bytes is {limits.max_header_bytes}")
    try:
        obj = msgpack.unpackb(
            buf,
            raw=False,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=unique_str_map,
            max_str_len=limits.max_str_len,
            max_bin_len=0,
            max_array_len=limits.max_array_len,
            max_map_len=limits.max_map_len,
            max_ext_len=0,
        )
    except Exception as e:  # msgpack raises ValueError, StackError, ExtraData, UnicodeDecodeError, ...
        detail = short_repr(str(e) or type(e).__name__, 200)
        raise BadHeaderError(f"header is not valid msgpack within limits: {detail}") from None
    if not isinstance(obj, dict):
        raise BadHeaderError(f"header must be a msgpack map, got {value_kind(obj)}")
    check_tree(obj, limits.max_depth)
    return obj


def split_envelope(frames: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """Split what a ROUTER socket received into ``(envelope, message)``.

    The envelope is the peer identity, plus the empty delimiter a REQ peer adds (a header is never empty, so
    an empty second frame is always a delimiter). Send replies as ``envelope + frames``.
    """
    frames = list(frames)
    cut = 2 if len(frames) > 1 and len(as_buffer(frames[1])) == 0 else 1
    return frames[:cut], frames[cut:]


def view_topic(name: str) -> bytes:
    """PUB topic frame of view ``name``: ``b"view/<name>/"`` (the trailing ``/`` makes prefixes exact)."""
    if not VIEW_NAME_RE.fullmatch(name):
        raise ValueError(f"view name {name!r} does not match {VIEW_NAME_PATTERN}")
    return f"view/{name}/".encode()


def decode_frames(frames: Sequence[Any], limits: Limits) -> tuple[dict[str, Any], list[memoryview]]:
    """Check the total size of a message and decode its header: ``(header, payload buffers)``."""
    if len(frames) == 0:
        raise BadHeaderError("empty message: the header frame is missing")
    bufs = [as_buffer(f) for f in frames]
    total = sum(len(b) for b in bufs)
    if total > limits.max_message_bytes:
        raise TooLargeError(f"message is {total} bytes; max_message_bytes is {limits.max_message_bytes}")
    return decode_header(bufs[0], limits), bufs[1:]


def check_version(header: Mapping[str, Any]) -> None:
    """Check the header's ``v`` field (BadHeaderError if missing or not an int, BadVersionError if another)."""
    if "v" not in header:
        raise BadHeaderError("missing header field 'v'")
    v = header["v"]
    if not is_int(v):
        raise BadHeaderError(f"header field 'v' must be an integer, got {short_repr(v)}")
    if v != PROTOCOL_VERSION:
        raise BadVersionError(f"protocol version {v} is not supported; this side speaks version {PROTOCOL_VERSION}")


def common_field(header: Mapping[str, Any], key: str, ok: Any, what: str) -> Any:
    """Header field ``key``, which ``ok`` must accept (else BadHeaderError saying it must be ``what``)."""
    if key not in header:
        raise BadHeaderError(f"missing header field {key!r}")
    value = header[key]
    if not ok(value):
        raise BadHeaderError(f"header field {key!r} must be {what}, got {short_repr(value)}")
    return value


def is_seq(value: Any) -> bool:
    """True for a valid ``seq``: an integer in [0, 2**64)."""
    return is_int(value) and 0 <= value < _UINT64


def is_stamp(value: Any) -> bool:
    """True for a valid ``stamp_ns``: an integer in [0, 2**63)."""
    return is_int(value) and 0 <= value < _INT63
