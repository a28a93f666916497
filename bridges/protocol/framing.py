"""Framing of the bridge protocol: multipart messages ``[msgpack header, payload, ...]``, strict header
decoding, ROUTER envelopes, view topics, and the checks of the common header fields."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgpack

from .constants import DEFAULT_LIMITS, PROTOCOL_VERSION, PROTOCOL_VERSIONS, VIEW_NAME_PATTERN, VIEW_NAME_RE, Limits
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
    "recover_seq_and_type",
    "recover_fields",
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


# -- lenient recovery of seq / type from a header the strict decoder rejected ------------------------------------
# msgpack first bytes: (fixed size of the rest, or None) and how to read a variable length / container count
_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2,
          0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
_LEN_BYTES = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}  # bin / str: length, then data
_EXT_LEN = {0xC7: 1, 0xC8: 2, 0xC9: 4}  # ext: length, type byte, data
_COUNT = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}  # array / map 16/32: (count bytes, items/entry)


def _object_end(buf: memoryview, pos: int) -> int:
    """End offset of the msgpack object starting at ``pos`` (any nesting, iteratively); IndexError if cut."""
    pending = 1
    n = len(buf)
    while pending:
        if pos >= n:
            raise IndexError("truncated")
        b = buf[pos]
        pending -= 1
        if b <= 0x7F or b >= 0xE0:
            pos += 1
        elif 0x80 <= b <= 0x8F:
            pending += 2 * (b & 0x0F)
            pos += 1
        elif 0x90 <= b <= 0x9F:
            pending += b & 0x0F
            pos += 1
        elif 0xA0 <= b <= 0xBF:
            pos += 1 + (b & 0x1F)
        elif b in _FIXED:
            pos += 1 + _FIXED[b]
        elif b in _LEN_BYTES:
            k = _LEN_BYTES[b]
            pos += 1 + k + int.from_bytes(buf[pos + 1:pos + 1 + k], "big")
        elif b in _EXT_LEN:
            k = _EXT_LEN[b]
            pos += 2 + k + int.from_bytes(buf[pos + 1:pos + 1 + k], "big")
        elif b in _COUNT:
            k, per = _COUNT[b]
            pending += per * int.from_bytes(buf[pos + 1:pos + 1 + k], "big")
            pos += 1 + k
        else:  # 0xC1 is never used
            raise ValueError("invalid msgpack byte")
    if pos > n:
        raise IndexError("truncated")
    return pos


def recover_fields(frame: Any, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """``seq``, ``type`` and ``v`` read leniently from a header the strict decoder rejected (absent when unreadable).

    Only the first ``max_header_bytes`` bytes are looked at; the top level must be a map; its entries are walked
    (values skipped by size, whatever they hold: deep nesting, long strings, ``bin``/``ext``), stopping at the
    first malformed or cut entry; bytes after the map are ignored. ``seq`` counts when it is an integer in
    0 .. 2^64-1, ``type`` when it is a string of at most ``max_str_len`` bytes, ``v`` when it is a version this
    side speaks; a key seen twice keeps its first value.
    """
    buf = as_buffer(frame)[: limits.max_header_bytes]
    wanted = ("seq", "type", "v")
    found: dict[str, Any] = {}
    try:
        if not buf:
            return {}
        b = buf[0]
        if 0x80 <= b <= 0x8F:
            count, pos = b & 0x0F, 1
        elif b in (0xDE, 0xDF):
            k = _COUNT[b][0]
            count, pos = int.from_bytes(buf[1:1 + k], "big"), 1 + k
        else:
            return {}
        for _ in range(count):
            key_end = _object_end(buf, pos)
            value_end = _object_end(buf, key_end)
            try:
                key = msgpack.unpackb(buf[pos:key_end], raw=False)
            except Exception:
                key = None
            if key in wanted and key not in found:
                try:
                    found[key] = msgpack.unpackb(buf[key_end:value_end], raw=False, max_str_len=limits.max_str_len)
                except Exception:
                    found[key] = None
                if len(found) == len(wanted):
                    break
            pos = value_end
    except (IndexError, ValueError):
        pass
    out: dict[str, Any] = {}
    if is_seq(found.get("seq")):
        out["seq"] = found["seq"]
    if isinstance(found.get("type"), str):
        out["type"] = found["type"]
    if is_int(found.get("v")) and found["v"] in PROTOCOL_VERSIONS:
        out["v"] = found["v"]
    return out


def recover_seq_and_type(frame: Any, limits: Limits = DEFAULT_LIMITS) -> tuple[int | None, str | None]:
    """``(seq, type)`` read leniently from a header the strict decoder rejected, each None when unreadable
    (see :func:`recover_fields`)."""
    found = recover_fields(frame, limits)
    return found.get("seq"), found.get("type")


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


def check_version(header: Mapping[str, Any]) -> int:
    """The header's ``v`` field: BadHeaderError if missing or not an int, BadVersionError if not a version this
    side speaks (:data:`~bridges.protocol.constants.PROTOCOL_VERSIONS`)."""
    if "v" not in header:
        raise BadHeaderError("missing header field 'v'")
    v = header["v"]
    if not is_int(v):
        raise BadHeaderError(f"header field 'v' must be an integer, got {short_repr(v)}")
    if v not in PROTOCOL_VERSIONS:
        spoken = " and ".join(map(str, PROTOCOL_VERSIONS))
        raise BadVersionError(f"protocol version {v} is not supported; this side speaks versions {spoken} "
                              f"(newest {PROTOCOL_VERSION})")
    return v


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
