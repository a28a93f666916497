"""Wire protocol (version 1) of the ngp-sdk ZeroMQ bridge: framing, limits, typed errors, requests, replies.

Every message is a ZeroMQ multipart message ``[header, payload, ...]``: the header is a msgpack map with string
keys, the payloads are raw bytes that header fields describe. Nothing is ever pickled and arrays never travel
as msgpack-numpy. ``docs/protocol.md`` is the normative description; this module implements it and imports only
msgpack, numpy and the standard library (imageio is imported lazily, to decode or encode PNG/JPEG), so any
Python client can use it without Warp or pyzmq.

Server side::

    try:
        request = parse_request(frames, limits)          # a typed Request, e.g. AddFrame
    except ProtocolError as e:
        send(encode_message(make_error(e.seq, e.code, e.message)))
    else:
        send(encode_message(make_reply(request.seq, request.TYPE, index=3, frame_count=4)))

Client side::

    send(Render(seq=7, pose=c2w, intrinsics=camera, encoding="png").to_frames())
    reply = parse_reply(frames)                          # raises the typed ProtocolError of an error reply
    rgb = decode_image(reply.fields["image"], reply.payloads[0])

Validation is table driven: :data:`REQUEST_TYPES` maps each ``type`` string to its :class:`Request` subclass,
whose ``_parse`` reads and checks its own fields.
"""

from __future__ import annotations

import dataclasses
import re
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack
import numpy as np

__all__ = [
    # constants
    "PROTOCOL_VERSION",
    "DEFAULT_REQUEST_ENDPOINT",
    "DEFAULT_FRAME_ENDPOINT",
    "DEFAULT_VIEW_ENDPOINT",
    "RAW_ENCODINGS",
    "COMPRESSED_ENCODINGS",
    "FRAME_ENCODINGS",
    "RENDER_ENCODINGS",
    "IMAGE_ENCODINGS",
    "DEPTH_ENCODINGS",
    "DEFAULT_DEPTH_SCALE",
    "CAMERA_MODELS",
    "POSE_CONVENTIONS",
    "POSE_TOLERANCE",
    "PRIMITIVES",
    "MESH_FORMATS",
    "TRAINING_STATES",
    "CAPABILITIES",
    "VIEW_NAME_PATTERN",
    "REPLY_FIELDS",
    "Limits",
    "DEFAULT_LIMITS",
    # errors
    "ProtocolError",
    "BadHeaderError",
    "UnknownTypeError",
    "BadVersionError",
    "PayloadMismatchError",
    "BadPoseError",
    "BadIntrinsicsError",
    "TooLargeError",
    "BadFieldError",
    "NoSessionError",
    "UnsupportedError",
    "StorageError",
    "BusyError",
    "InternalError",
    "ERROR_CODES",
    "error_from_code",
    # framing
    "encode_message",
    "decode_header",
    "split_envelope",
    "view_topic",
    # requests
    "CameraIntrinsics",
    "Request",
    "Hello",
    "Configure",
    "AddFrame",
    "Render",
    "Status",
    "Save",
    "Load",
    "Pause",
    "Resume",
    "ExportMesh",
    "SetView",
    "ClearView",
    "REQUEST_TYPES",
    "make_request",
    "parse_request",
    # replies
    "Reply",
    "make_reply",
    "make_error",
    "make_view",
    "parse_reply",
    # payloads
    "pose_to_wire",
    "encode_image",
    "encode_depth",
    "decode_image",
    "decode_depth",
]

# ---------------------------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------------------------

#: Version of this protocol, the ``v`` field of every header.
PROTOCOL_VERSION = 1
#: ROUTER socket of the server (requests and replies; clients connect a DEALER or a REQ).
DEFAULT_REQUEST_ENDPOINT = "tcp://127.0.0.1:5555"
#: PULL socket of the server (fire-and-forget ``add_frame``; clients connect a PUSH).
DEFAULT_FRAME_ENDPOINT = "tcp://127.0.0.1:5556"
#: PUB socket of the server (``view`` messages; clients connect a SUB).
DEFAULT_VIEW_ENDPOINT = "tcp://127.0.0.1:5557"

#: Raw 8-bit image encodings (ROS ``sensor_msgs/Image`` names) and their channel counts.
RAW_ENCODINGS: dict[str, int] = {"rgb8": 3, "rgba8": 4, "bgr8": 3, "mono8": 1}
#: Compressed image encodings (the whole file in one payload frame).
COMPRESSED_ENCODINGS = ("jpeg", "png")
#: Encodings accepted for ``add_frame`` images.
FRAME_ENCODINGS = (*RAW_ENCODINGS, *COMPRESSED_ENCODINGS)
#: Encodings a client may ask ``render`` / ``set_view`` for (``32FC3``: float32 RGB, no quantisation).
RENDER_ENCODINGS = ("rgb8", "rgba8", "32FC3", "png", "jpeg")
#: Every colour image encoding :func:`decode_image` understands.
IMAGE_ENCODINGS = (*RAW_ENCODINGS, "32FC3", *COMPRESSED_ENCODINGS)
#: Depth encodings and their bytes per pixel.
DEPTH_ENCODINGS: dict[str, int] = {"32FC1": 4, "16UC1": 2}
#: Default ``scale`` of a depth image (scene units per stored unit): metres as float, millimetres as uint16.
DEFAULT_DEPTH_SCALE: dict[str, float] = {"32FC1": 1.0, "16UC1": 0.001}
#: Camera models (as COLMAP names them).
CAMERA_MODELS = ("PINHOLE", "OPENCV", "OPENCV_FISHEYE")
#: Pose conventions: camera axes of the camera-to-world matrix.
POSE_CONVENTIONS = ("opengl", "opencv")
#: Largest accepted ``max |R^T R - I|`` of a pose's rotation part.
POSE_TOLERANCE = 1e-3
#: Primitives a ``configure`` request can create.
PRIMITIVES = ("nerf",)
#: Mesh file formats of ``export_mesh``.
MESH_FORMATS = ("obj", "ply")
#: Values of the ``state`` field of ``status`` / ``pause`` / ``resume`` replies.
TRAINING_STATES = ("unconfigured", "waiting", "training", "paused")
#: Capability names a server may list in its ``hello`` reply.
CAPABILITIES = (
    "nerf",
    "depth_input",
    "render_depth",
    "png",
    "jpeg",
    "export_mesh",
    "save_load",
    "views",
    "push_frames",
)
#: Allowed view names (``set_view`` / ``clear_view``): they become part of a PUB topic.
VIEW_NAME_PATTERN = r"[A-Za-z0-9_.\-]{1,64}"

#: Fields every ``<type>_ok`` reply carries besides ``v``, ``type``, ``seq`` and ``stamp_ns``.
REPLY_FIELDS: dict[str, tuple[str, ...]] = {
    "hello": ("server", "protocol", "capabilities", "limits"),
    "configure": ("primitive", "capacity", "min_frames"),
    "add_frame": ("index", "frame_count"),
    "render": ("image", "step"),
    "status": (
        "state",
        "step",
        "loss",
        "frame_count",
        "samples_per_second",
        "last_frame_seq",
        "frames_rejected",
        "last_frame_error",
    ),
    "save": ("path", "bytes"),
    "load": ("path", "step", "frame_count"),
    "pause": ("state",),
    "resume": ("state",),
    "export_mesh": ("format", "vertex_count", "face_count"),
    "set_view": ("name", "views"),
    "clear_view": ("cleared",),
}

_COMMON_FIELDS = ("v", "type", "seq", "stamp_ns")
_UINT64 = 2**64
_INT63 = 2**63
_VIEW_NAME_RE = re.compile(VIEW_NAME_PATTERN)
_DIST_LENGTHS: dict[str, tuple[int, ...]] = {"PINHOLE": (0,), "OPENCV": (0, 4), "OPENCV_FISHEYE": (4,)}
# encoding -> (dtype, channels) of raw payloads
_PIXEL_FORMATS: dict[str, tuple[type, int]] = {
    **{name: (np.uint8, c) for name, c in RAW_ENCODINGS.items()},
    "32FC3": (np.float32, 3),
    "32FC1": (np.float32, 1),
    "16UC1": (np.uint16, 1),
}
# bytes per pixel a render reply may need, per encoding (compressed: bounded by their raw size)
_RENDER_BYTES = {"rgb8": 3, "rgba8": 4, "32FC3": 12, "png": 4, "jpeg": 3}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Limits the decoder enforces (and a server announces in its ``hello`` reply).

    Headers may never contain msgpack ``bin`` or ``ext`` values: those limits are fixed at 0.

    Attributes:
        max_message_bytes: total bytes of all frames of one message.
        max_header_bytes: bytes of the msgpack header frame.
        max_image_width: largest image width in pixels (frames, renders, views).
        max_image_height: largest image height in pixels.
        max_str_len: longest msgpack string in a header, in bytes.
        max_array_len: most elements of one msgpack array in a header.
        max_map_len: most entries of one msgpack map in a header.
        max_depth: deepest nesting of maps and arrays in a header (the header map itself is depth 1).
        max_frames: largest ``capacity`` of a session (frames kept for training).
        max_mesh_resolution: largest ``resolution`` of ``export_mesh``.
        max_views: most views registered at once with ``set_view`` (enforced by the server).
        max_view_rate_hz: highest ``rate`` of a view, in Hz.
    """

    max_message_bytes: int = 64 * 2**20
    max_header_bytes: int = 64 * 2**10
    max_image_width: int = 8192
    max_image_height: int = 8192
    max_str_len: int = 4096
    max_array_len: int = 1024
    max_map_len: int = 256
    max_depth: int = 16
    max_frames: int = 10000
    max_mesh_resolution: int = 1024
    max_views: int = 16
    max_view_rate_hz: float = 60.0

    def to_dict(self) -> dict[str, int | float]:
        """The limits as a plain dict, e.g. for the ``limits`` field of a ``hello`` reply."""
        return dataclasses.asdict(self)


#: The limits of protocol version 1.
DEFAULT_LIMITS = Limits()

# ---------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------


class ProtocolError(Exception):
    """Base class of every error this protocol reports; ``code`` is what an ``error`` reply carries.

    Args:
        message: human-readable explanation (sent as the ``message`` of the error reply).
        seq: ``seq`` of the offending request when it could be read, else None.

    Attributes:
        code: stable machine-readable error code (class attribute of each subclass).
        message: the message.
        seq: the request's ``seq`` or None.
    """

    code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, seq: int | None = None):
        super().__init__(message)
        self.message = message
        self.seq = seq


class BadHeaderError(ProtocolError):
    """The header frame is missing, not msgpack, not a map, breaks an unpacker limit, or has a bad common field."""

    code = "bad_header"


class UnknownTypeError(ProtocolError):
    """The ``type`` field names no message type of this protocol version."""

    code = "unknown_type"


class BadVersionError(ProtocolError):
    """The ``v`` field is an integer other than :data:`PROTOCOL_VERSION`."""

    code = "bad_version"


class PayloadMismatchError(ProtocolError):
    """The payload frames do not match the header: wrong count, wrong byte length, or undecodable image."""

    code = "payload_mismatch"


class BadPoseError(ProtocolError):
    """A ``pose`` field is missing, malformed, non-finite, not a rigid transform, or of an unknown convention."""

    code = "bad_pose"


class BadIntrinsicsError(ProtocolError):
    """An ``intrinsics`` field is missing, malformed, or out of range (e.g. ``fx <= 0``)."""

    code = "bad_intrinsics"


class TooLargeError(ProtocolError):
    """A message, header, image, render, capacity or mesh resolution exceeds its :class:`Limits`."""

    code = "too_large"


class BadFieldError(ProtocolError):
    """Any other field is missing, unknown, of the wrong type or out of range."""

    code = "bad_field"


class NoSessionError(ProtocolError):
    """The request needs a session and none was configured (or loaded) yet (server side)."""

    code = "no_session"


class UnsupportedError(ProtocolError):
    """The server cannot do this: missing optional package, capability absent, request on the wrong socket."""

    code = "unsupported"


class StorageError(ProtocolError):
    """``save`` / ``load`` failed: unreadable, unwritable, refused or corrupt path (server side)."""

    code = "io_error"


class BusyError(ProtocolError):
    """The server's render queue is full; retry the render / export later."""

    code = "busy"


class InternalError(ProtocolError):
    """An unexpected failure inside the server; the request may be retried."""

    code = "internal"


#: Every error code of this protocol version and its exception class.
ERROR_CODES: dict[str, type[ProtocolError]] = {
    cls.code: cls
    for cls in (
        BadHeaderError,
        UnknownTypeError,
        BadVersionError,
        PayloadMismatchError,
        BadPoseError,
        BadIntrinsicsError,
        TooLargeError,
        BadFieldError,
        NoSessionError,
        UnsupportedError,
        StorageError,
        BusyError,
        InternalError,
    )
}


def error_from_code(code: str, message: str, seq: int | None = None) -> ProtocolError:
    """The typed exception of an ``error`` reply (a client re-raises it).

    Args:
        code: the reply's ``code``; an unknown code (newer server) gives a plain :class:`ProtocolError`
            whose ``code`` attribute is set to it.
        message: the reply's ``message``.
        seq: the reply's ``seq``.
    """
    cls = ERROR_CODES.get(code)
    if cls is not None:
        return cls(message, seq=seq)
    err = ProtocolError(message, seq=seq)
    err.code = code
    return err


# ---------------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """msgpack name of a decoded value's type, for error messages."""
    for typ, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (dict, "map"), (list, "array")):
        if isinstance(value, typ):
            return name
    return "nil" if value is None else type(value).__name__


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _buffer(frame: Any) -> memoryview:
    """A flat byte view of one frame: bytes, bytearray, memoryview or anything with a ``buffer`` (zmq.Frame)."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        view = memoryview(frame)
    elif isinstance(frame, np.ndarray):
        view = memoryview(np.ascontiguousarray(frame).reshape(-1).view(np.uint8))
    elif hasattr(frame, "buffer"):
        view = memoryview(frame.buffer)
    else:
        raise TypeError(f"a frame must be bytes-like, got {type(frame).__name__}")
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot put a {type(obj).__name__} in a header; send arrays as payload frames")


def _unique_str_map(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate map key")
    if not all(type(k) is str for k in out):
        raise ValueError("map keys must be strings")
    return out


def _check_tree(obj: Any, max_depth: int) -> None:
    """Reject nesting deeper than ``max_depth`` and values JSON cannot express (bin, ext, timestamps)."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > max_depth:
                raise BadHeaderError(f"header nests deeper than max_depth={max_depth}")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
        elif not (node is None or isinstance(node, (str, int, float))):
            raise BadHeaderError(f"headers may not contain {type(node).__name__} values (payloads go in frames)")


_MISSING: Any = object()


class _Reader:
    """Typed, validated access to one decoded map; names fields by dotted path and rejects unknown keys."""

    __slots__ = ("_data", "_prefix", "_error", "_seen")

    def __init__(self, data: Mapping[str, Any], prefix: str, error: type[ProtocolError], seen: Sequence[str] = ()):
        self._data = data
        self._prefix = prefix
        self._error = error
        self._seen = set(seen)

    def _name(self, key: str) -> str:
        return f"'{self._prefix}{key}'"

    def _get(self, key: str, default: Any) -> Any:
        self._seen.add(key)
        if key in self._data:
            return self._data[key]
        if default is _MISSING:
            raise self._error(f"missing field {self._name(key)}")
        return default

    def invalid(self, key: str, what: str, value: Any) -> ProtocolError:
        """The error for field ``key`` holding ``value`` where ``what`` was expected."""
        return self._error(f"field {self._name(key)} must be {what}, got {_short(value)}")

    def integer(
        self,
        key: str,
        *,
        lo: int,
        hi: int | None = None,
        default: Any = _MISSING,
        hi_error: type[ProtocolError] | None = None,
    ) -> int:
        value = self._get(key, default)
        if key not in self._data:
            return value
        if not _is_int(value):
            raise self.invalid(key, "an integer", value)
        if value < lo:
            raise self.invalid(key, f">= {lo}", value)
        if hi is not None and value > hi:
            raise (hi_error or self._error)(f"field {self._name(key)} = {value} exceeds the limit {hi}")
        return value

    def number(self, key: str, *, default: Any = _MISSING, positive: bool = False, hi: float | None = None) -> float:
        value = self._get(key, default)
        if key not in self._data:
            return value
        if not _is_number(value) or not np.isfinite(float(value)):
            raise self.invalid(key, "a finite number", value)
        if positive and not value > 0:
            raise self.invalid(key, "> 0", value)
        if hi is not None and value > hi:
            raise self.invalid(key, f"<= {hi}", value)
        return float(value)

    def numbers(self, key: str, *, lengths: tuple[int, ...], default: Any = _MISSING) -> tuple[float, ...]:
        value = self._get(key, default)
        if key not in self._data:
            return value
        what = f"an array of {' or '.join(map(str, lengths))} finite numbers"
        if not isinstance(value, list) or len(value) not in lengths:
            raise self.invalid(key, what, value)
        for i, x in enumerate(value):
            if not _is_number(x) or not np.isfinite(float(x)):
                raise self._error(f"field {self._name(key)}[{i}] must be a finite number, got {_short(x)}")
        return tuple(float(x) for x in value)

    def string(
        self,
        key: str,
        *,
        choices: Sequence[str] | None = None,
        default: Any = _MISSING,
        max_len: int = 256,
        pattern: re.Pattern[str] | None = None,
    ) -> str:
        value = self._get(key, default)
        if key not in self._data:
            return value
        if not isinstance(value, str):
            raise self.invalid(key, "a string", value)
        if choices is not None and value not in choices:
            raise self.invalid(key, f"one of {', '.join(map(repr, choices))}", value)
        if len(value) > max_len:
            raise self._error(f"field {self._name(key)} is longer than {max_len} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.invalid(key, f"a string matching {pattern.pattern}", value)
        return value

    def boolean(self, key: str, *, default: Any = _MISSING) -> bool:
        value = self._get(key, default)
        if key in self._data and not isinstance(value, bool):
            raise self.invalid(key, "true or false", value)
        return value

    def mapping(self, key: str, *, error: type[ProtocolError] | None = None, default: Any = _MISSING) -> Any:
        """A nested map as a :class:`_Reader` reporting with ``error``, or ``default`` when absent."""
        error = error or self._error
        self._seen.add(key)
        if key not in self._data:
            if default is _MISSING:
                raise error(f"missing field {self._name(key)}")
            return default
        value = self._data[key]
        if not isinstance(value, dict):
            raise error(f"field {self._name(key)} must be a map, got {_short(value)}")
        return _Reader(value, f"{self._prefix}{key}.", error)

    def raw_map(self, key: str, *, default: Any = _MISSING) -> dict[str, Any]:
        value = self._get(key, default)
        if key in self._data and not isinstance(value, dict):
            raise self.invalid(key, "a map", value)
        return value

    def done(self) -> None:
        """Reject keys nobody read."""
        unknown = [k for k in self._data if k not in self._seen]
        if unknown:
            names = ", ".join(repr(f"{self._prefix}{k[:40]}") for k in unknown[:5])
            raise self._error(f"unknown field{'s' if len(unknown) > 1 else ''} {names}")


# ---------------------------------------------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------------------------------------------


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
    frames: list[bytes | memoryview] = [msgpack.packb(dict(header), use_bin_type=True, default=_pack_default)]
    for p in payloads:
        frames.append(p if isinstance(p, bytes) else _buffer(p))
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
    buf = _buffer(frame)
    if len(buf) > limits.max_header_bytes:
        raise TooLargeError(f"header is {len(buf)} bytes; max_header_bytes is {limits.max_header_bytes}")
    try:
        obj = msgpack.unpackb(
            buf,
            raw=False,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=_unique_str_map,
            max_str_len=limits.max_str_len,
            max_bin_len=0,
            max_array_len=limits.max_array_len,
            max_map_len=limits.max_map_len,
            max_ext_len=0,
        )
    except Exception as e:  # msgpack raises ValueError, StackError, ExtraData, UnicodeDecodeError, ...
        detail = _short(str(e) or type(e).__name__, 200)
        raise BadHeaderError(f"header is not valid msgpack within limits: {detail}") from None
    if not isinstance(obj, dict):
        raise BadHeaderError(f"header must be a msgpack map, got {_kind(obj)}")
    _check_tree(obj, limits.max_depth)
    return obj


def split_envelope(frames: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """Split what a ROUTER socket received into ``(envelope, message)``.

    The envelope is the peer identity, plus the empty delimiter a REQ peer adds (a header is never empty, so
    an empty second frame is always a delimiter). Send replies as ``envelope + frames``.
    """
    frames = list(frames)
    cut = 2 if len(frames) > 1 and len(_buffer(frames[1])) == 0 else 1
    return frames[:cut], frames[cut:]


def view_topic(name: str) -> bytes:
    """PUB topic frame of view ``name``: ``b"view/<name>/"`` (the trailing ``/`` makes prefixes exact)."""
    if not _VIEW_NAME_RE.fullmatch(name):
        raise ValueError(f"view name {name!r} does not match {VIEW_NAME_PATTERN}")
    return f"view/{name}/".encode()


def _frames(frames: Sequence[Any], limits: Limits) -> tuple[dict[str, Any], list[memoryview]]:
    if len(frames) == 0:
        raise BadHeaderError("empty message: the header frame is missing")
    bufs = [_buffer(f) for f in frames]
    total = sum(len(b) for b in bufs)
    if total > limits.max_message_bytes:
        raise TooLargeError(f"message is {total} bytes; max_message_bytes is {limits.max_message_bytes}")
    return decode_header(bufs[0], limits), bufs[1:]


def _version(header: Mapping[str, Any]) -> None:
    if "v" not in header:
        raise BadHeaderError("missing header field 'v'")
    v = header["v"]
    if not _is_int(v):
        raise BadHeaderError(f"header field 'v' must be an integer, got {_short(v)}")
    if v != PROTOCOL_VERSION:
        raise BadVersionError(f"protocol version {v} is not supported; this side speaks version {PROTOCOL_VERSION}")


def _common_field(header: Mapping[str, Any], key: str, ok: Any, what: str) -> Any:
    if key not in header:
        raise BadHeaderError(f"missing header field {key!r}")
    value = header[key]
    if not ok(value):
        raise BadHeaderError(f"header field {key!r} must be {what}, got {_short(value)}")
    return value


def _is_seq(value: Any) -> bool:
    return _is_int(value) and 0 <= value < _UINT64


def _is_stamp(value: Any) -> bool:
    return _is_int(value) and 0 <= value < _INT63


# ---------------------------------------------------------------------------------------------------------------
# Payload decoding and encoding
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Layout:
    """A validated image/depth description: what one payload frame must contain."""

    encoding: str
    width: int
    height: int
    step: int
    big_endian: bool = False
    scale: float = 1.0


def _layout(r: _Reader, limits: Limits, encodings: Sequence[str], *, depth: bool = False) -> _Layout:
    encoding = r.string("encoding", choices=encodings)
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
    return _Layout(encoding=encoding, width=width, height=height, step=step, big_endian=big_endian, scale=scale)


def _raw_pixels(layout: _Layout, payload: memoryview) -> np.ndarray:
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


def _decode_compressed(layout: _Layout, payload: memoryview) -> np.ndarray:
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
        raise PayloadMismatchError(f"could not decode the {name} payload: {_short(str(e), 200)}") from None
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


def _image_from(layout: _Layout, payload: memoryview) -> np.ndarray:
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


def _depth_from(layout: _Layout, payload: memoryview) -> np.ndarray:
    raw = _raw_pixels(layout, payload)[..., 0]
    with np.errstate(all="ignore"):
        depth = raw.astype(np.float32) * np.float32(layout.scale)
    depth[~np.isfinite(depth) | (depth <= 0)] = 0.0
    return depth


def _field_reader(value: Any, name: str, error: type[ProtocolError] = BadFieldError) -> _Reader:
    if not isinstance(value, Mapping):
        raise error(f"field '{name}' must be a map, got {_short(value)}")
    return _Reader(value, f"{name}.", error)


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
    return _image_from(_layout(_field_reader(image_field, "image"), limits, encodings), _buffer(payload))


def decode_depth(depth_field: Mapping[str, Any], payload: Any, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode a depth payload described by ``{encoding: 32FC1|16UC1, width, height, step?, scale?}``.

    Returns:
        float32 ``[H, W]`` depth in scene units (stored value times ``scale``); 0 marks invalid pixels
        (stored 0, negative, NaN or infinite).
    """
    layout = _layout(_field_reader(depth_field, "depth"), limits, tuple(DEPTH_ENCODINGS), depth=True)
    return _depth_from(layout, _buffer(payload))


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
    return {"encoding": encoding, "width": width, "height": height, "step": step}, _buffer(arr)


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
    return field_, _buffer(arr)


# ---------------------------------------------------------------------------------------------------------------
# Poses and intrinsics
# ---------------------------------------------------------------------------------------------------------------


def _read_pose(r: _Reader) -> np.ndarray:
    values = r.numbers("matrix", lengths=(16,))
    convention = r.string("convention", choices=POSE_CONVENTIONS)
    r.done()
    m = np.array(values, dtype=np.float64).reshape(4, 4)
    if not np.array_equal(m[3], (0.0, 0.0, 0.0, 1.0)):
        raise BadPoseError(f"the last row of pose.matrix must be [0, 0, 0, 1], got {m[3].tolist()}")
    rot = m[:3, :3]
    with np.errstate(all="ignore"):
        err = float(np.abs(rot.T @ rot - np.eye(3)).max())
        det = float(np.linalg.det(rot))
    if not err <= POSE_TOLERANCE:  # also catches NaN from overflow
        raise BadPoseError(f"the rotation of pose.matrix is not orthonormal: max |R^T R - I| = {err:.3g}")
    if not det > 0:
        raise BadPoseError("the rotation of pose.matrix is a reflection (det < 0)")
    if convention == "opencv":
        m[:3, 1:3] *= -1
    return m


def pose_to_wire(c2w: Any, convention: str = "opengl") -> dict[str, Any]:
    """A ``pose`` field from a 4x4 (or 3x4) camera-to-world matrix given in ``convention`` (sent as is).

    Raises:
        ValueError: wrong shape or unknown convention.
    """
    m = np.asarray(c2w, dtype=np.float64)
    if m.shape == (3, 4):
        m = np.vstack([m, (0.0, 0.0, 0.0, 1.0)])
    if m.shape != (4, 4):
        raise ValueError(f"a pose must be 4x4 or 3x4, got {m.shape}")
    if convention not in POSE_CONVENTIONS:
        raise ValueError(f"unknown pose convention {convention!r}; expected one of {POSE_CONVENTIONS}")
    return {"matrix": [float(x) for x in m.reshape(16)], "convention": convention}


@dataclass(frozen=True, kw_only=True)
class CameraIntrinsics:
    """Intrinsics of one camera image (same fields as ``ngp_sdk.cameras.Intrinsics``).

    Attributes:
        width: image width in pixels.
        height: image height in pixels.
        fx: horizontal focal length in pixels (> 0).
        fy: vertical focal length in pixels (> 0).
        cx: principal point x; the image's left edge is 0, the centre of pixel column 0 is 0.5.
        cy: principal point y; the image's top edge is 0, the centre of pixel row 0 is 0.5.
        model: ``"PINHOLE"``, ``"OPENCV"`` or ``"OPENCV_FISHEYE"``.
        dist: ``(k1, k2, p1, p2)`` for OPENCV, ``(k1, k2, k3, k4)`` for OPENCV_FISHEYE, zeros for PINHOLE.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: str = "PINHOLE"
    dist: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def to_wire(self) -> dict[str, Any]:
        """The ``intrinsics`` field (width and height travel in the image / request fields)."""
        dist = [] if self.model == "PINHOLE" else [float(d) for d in self.dist]
        return {"model": self.model, "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "dist": dist}


def _read_intrinsics(r: _Reader, width: int, height: int) -> CameraIntrinsics:
    model = r.string("model", choices=CAMERA_MODELS, default="PINHOLE")
    fx = r.number("fx", positive=True)
    fy = r.number("fy", positive=True)
    cx = r.number("cx")
    cy = r.number("cy")
    lengths = _DIST_LENGTHS[model]
    dist = r.numbers("dist", lengths=lengths, default=() if 0 in lengths else _MISSING)
    r.done()
    dist4 = (*dist, *(0.0,) * (4 - len(dist)))
    return CameraIntrinsics(width=width, height=height, fx=fx, fy=fy, cx=cx, cy=cy, model=model, dist=dist4)


def _read_camera(r: _Reader, limits: Limits) -> dict[str, Any]:
    """Fields shared by ``render`` and ``set_view``: size, intrinsics, pose and output format."""
    width = r.integer("width", lo=1, hi=limits.max_image_width, hi_error=TooLargeError)
    height = r.integer("height", lo=1, hi=limits.max_image_height, hi_error=TooLargeError)
    intrinsics = _read_intrinsics(r.mapping("intrinsics", error=BadIntrinsicsError), width, height)
    pose = _read_pose(r.mapping("pose", error=BadPoseError))
    encoding = r.string("encoding", choices=RENDER_ENCODINGS, default="rgb8")
    depth = r.boolean("depth", default=False)
    quality = r.integer("quality", lo=1, hi=100, default=90)
    need = width * height * (_RENDER_BYTES[encoding] + 4 * depth) + limits.max_header_bytes
    if need > limits.max_message_bytes:
        raise TooLargeError(
            f"a {width}x{height} {encoding} image{' with depth' if depth else ''} may need {need} bytes; "
            f"max_message_bytes is {limits.max_message_bytes}"
        )
    return {"pose": pose, "intrinsics": intrinsics, "encoding": encoding, "depth": depth, "quality": quality}


def _camera_wire(req: Render | SetView) -> dict[str, Any]:
    return {
        "width": req.intrinsics.width,
        "height": req.intrinsics.height,
        "intrinsics": req.intrinsics.to_wire(),
        "pose": pose_to_wire(req.pose, "opengl"),
        "encoding": req.encoding,
        "depth": req.depth,
        "quality": req.quality,
    }


# ---------------------------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Request:
    """Base of the typed requests. ``TYPE`` is the wire ``type``; ``PAYLOADS`` the allowed payload frame counts.

    Attributes:
        seq: request id chosen by the client (uint64), echoed by the reply.
        stamp_ns: sender clock in ns (``add_frame``: capture time). None only on a request built by a client:
            :meth:`to_frames` then stamps it with the current time.
    """

    TYPE: ClassVar[str] = ""
    PAYLOADS: ClassVar[tuple[int, int]] = (0, 0)

    seq: int
    stamp_ns: int | None = None

    @classmethod
    def _parse(cls, r: _Reader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        r.done()
        return cls(**common)

    def _wire(self) -> tuple[dict[str, Any], list[Any]]:
        return {}, []

    def to_frames(self) -> list[bytes | memoryview]:
        """The request as message frames (client side)."""
        fields, payloads = self._wire()
        return encode_message(make_request(self.TYPE, self.seq, stamp_ns=self.stamp_ns, **fields), payloads)


@dataclass(frozen=True, kw_only=True)
class Hello(Request):
    """``hello``: handshake; the reply lists the server version, capabilities and limits.

    Attributes:
        client: free-form client name and version (optional, for logs).
    """

    TYPE: ClassVar[str] = "hello"
    client: str = ""

    @classmethod
    def _parse(cls, r: _Reader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        client = r.string("client", default="")
        r.done()
        return cls(**common, client=client)

    def _wire(self) -> tuple[dict[str, Any], list[Any]]:
        return ({"client": self.client} if self.client else {}), []


@dataclass(frozen=True, kw_only=True)
class Configure(Request):
    """``configure``: create a new session (replacing any previous one).

    Attributes:
        primitive: ``"nerf"``.
        config: model config (instant-ngp / tiny-cuda-nn JSON: ``encoding``, ``network``, ...); empty = defaults.
        aabb_scale: side of the scene box in internal units (power of two, 1..128).
        scale: world units -> internal units factor.
        offset: internal-unit offset added after scaling.
        capacity: most frames kept for training (the oldest is replaced when full).
        min_frames: frames needed before training starts.
    """

    TYPE: ClassVar[str] = "configure"
    primitive: str = "nerf"
    config: dict[str, Any] = field(default_factory=dict)
    aabb_scale: int = 1
    scale: float = 0.33
    offset: tuple[float, float, float] = (0.5, 0.5, 0.5)
    capacity: int = 256
    min_frames: int = 1

    @classmethod
    def _parse(cls, r: _Reader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        primitive = r.string("primitive", choices=PRIMITIVES)
        config = r.raw_map("config", default={})
        aabb_scale = r.integer("aabb_scale", lo=1, hi=128, default=1)
        if aabb_scale & (aabb_scale - 1):
            raise r.invalid("aabb_scale", "a power of two", aabb_scale)
        scale = r.number("scale", positive=True, default=0.33)
        offset = r.numbers("offset", lengths=(3,), default=(0.5, 0.5, 0.5))
        capacity = r.integer("capacity", lo=1, hi=limits.max_frames, default=256, hi_error=TooLargeError)
        min_frames = r.integer("min_frames", lo=1, hi=capacity, default=1)
        r.done()
        return cls(
            **common,
            primitive=primitive,
            config=config,
            aabb_scale=aabb_scale,
            scale=scale,
            offset=offset,
            capacity=capacity,
            min_frames=min_frames,
        )

    def _wire(self) -> tuple[dict[str, Any], list[Any]]:
        fields = {
            "primitive": self.primitive,
            "config": self.config,
            "aabb_scale": self.aabb_scale,
            "scale": self.scale,
            "offset": list(self.offset),
            "capacity": self.capacity,
            "min_frames": self.min_frames,
        }
        return fields, []


@dataclass(frozen=True, kw_only=True, eq=False)
class AddFrame(Request):
    """``add_frame``: one posed camera frame for training (ROUTER: replied; PULL: never replied).

    Attributes:
        image: uint8 ``[H, W, 3]`` RGB or ``[H, W, 4]`` RGBA, possibly a read-only view into the frame.
        intrinsics: the camera (width/height from the image).
        pose: float64 4x4 camera-to-world in the OpenGL/NeRF convention (converted from OpenCV if needed).
        depth: float32 ``[H, W]`` depth along the optical axis in world units (0 = invalid), or None.
        encoding: wire encoding: the one the image arrived in, or the one :meth:`to_frames` sends (``rgb8``,
            ``rgba8``, ``png`` or ``jpeg``; the image must have 3 channels for ``rgb8``, 4 for ``rgba8``).
    """

    TYPE: ClassVar[str] = "add_frame"
    PAYLOADS: ClassVar[tuple[int, int]] = (1, 2)
    image: np.ndarray
    intrinsics: CameraIntrinsics
    pose: np.ndarray
    depth: np.ndarray | None = None
    encoding: str = "rgb8"

    @classmethod
    def _parse(cls, r: _Reader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        image = _layout(r.mapping("image"), limits, FRAME_ENCODINGS)
        intrinsics = _read_intrinsics(r.mapping("intrinsics", error=BadIntrinsicsError), image.width, image.height)
        pose = _read_pose(r.mapping("pose", error=BadPoseError))
        depth_reader = r.mapping("depth", default=None)
        depth = None if depth_reader is None else _layout(depth_reader, limits, tuple(DEPTH_ENCODINGS), depth=True)
        r.done()
        if depth is not None and (depth.width, depth.height) != (image.width, image.height):
            raise BadFieldError(f"depth is {depth.width}x{depth.height} but the image is {image.width}x{image.height}")
        expected = 1 if depth is None else 2
        if len(payloads) != expected:
            raise PayloadMismatchError(
                f"'add_frame' {'with' if depth else 'without'} depth carries {expected} payload frame(s), "
                f"got {len(payloads)}"
            )
        return cls(
            **common,
            image=_image_from(image, payloads[0]),
            intrinsics=intrinsics,
            pose=pose,
            depth=None if depth is None else _depth_from(depth, payloads[1]),
            encoding=image.encoding,
        )

    def _wire(self) -> tuple[dict[str, Any], list[Any]]:
        if self.encoding not in ("rgb8", "rgba8", "png", "jpeg"):
            raise ValueError(f"to_frames sends rgb8, rgba8, png or jpeg images, not {self.encoding!r}")
        image_field, payload = encode_image(self.image, self.encoding)
        fields = {"image": image_field, "intrinsics": self.intrinsics.to_wire(), "pose": pose_to_wire(self.pose)}
        payloads = [payload]
        if self.depth is not None:
            fields["depth"], depth_payload = encode_depth(self.depth)
            payloads.append(depth_payload)
        return fields, payloads


@dataclass(frozen=True, kw_only=True, eq=False)
class Render(Request):
    """``render``: render one view; the reply carries the image (and depth) as payload frames.

    Attributes:
        pose: float64 4x4 camera-to-world, OpenGL/NeRF convention.
        intrinsics: the camera, including the output width and height.
        encoding: output encoding, one of :data:`RENDER_ENCODINGS`.
        depth: also return a ``32FC1`` depth frame.
        quality: JPEG quality 1..100.
    """

    TYPE: ClassVar[str] = "render"
    pose: np.ndarray
    intrinsics: CameraIntrinsics
    encoding: str = "rgb8"
    depth: bool = False
    quality: int = 90

    @property
    def width(self) -> int:
        """Output width in pixels."""
        return self.intrinsics.width

    @property
    def height(self) -> int:
        """Output height in pixels."""
        return self.intrinsics.height

    @classmethod
    def _parse(cls, r: _Reader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        camera = _read_camera(r, limits)
        r.done()
        return cls(**common, **camera)

    def _wire(self) -> tuple[dict[str, Any], list[Any]]:
        return _camera_wire(self), []


@dataclass(frozen=True, kw_only=True)
class Status(Request):
    """``status``: training progress (step, loss, frame count, rate, state)."""

    TYPE: ClassVar[str] = "status"


@dataclass(frozen=True, kw_only=True)
class _PathRequest(Request):
    path: str

    @classmethod
    def _parse(cls, r: _Reader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        path = r.string("path", max_len=limits.max_str_len)
        r.done()
        if not path or "\x00" in path:
            raise r.invalid("path", "a non-empty string without NUL characters", path)
        return cls(**common, path=path)

    def _wire(self) -> tuple[dict[str, Any], list[Any]]:
        return {"path": self.path}, []


@dataclass(frozen=True, kw_only=True)
class Save(_PathRequest):
    """``save``: write a snapshot of the session to ``path`` on the server's file system."""

    TYPE: ClassVar[str] = "save"


@dataclass(frozen=True, kw_only=True)
class Load(_PathRequest):
    """``load``: replace the session by the snapshot at ``path`` on the server's file system."""

    TYPE: ClassVar[str] = "load"


@dataclass(frozen=True, kw_only=True)
class Pause(Request):
    """``pause``: stop training steps (frames are still accepted; rendering still works)."""

    TYPE: ClassVar[str] = "pause"


@dataclass(frozen=True, kw_only=True)
class Resume(Request):
    """``resume``: restart training steps after ``pause``."""

    TYPE: ClassVar[str] = "resume"


@dataclass(frozen=True, kw_only=True)
class ExportMesh(Request):
    """``export_mesh``: marching-cubes mesh of the density field; the reply payload is the file.

    Attributes:
        resolution: grid cells per side of the scene box (16..``max_mesh_resolution``).
        format: ``"ply"`` or ``"obj"``.
        threshold: density iso-level.
    """

    TYPE: ClassVar[str] = "export_mesh"
    resolution: int = 256
    format: str = "ply"
    threshold: float = 2.5

    @classmethod
    def _parse(cls, r: _Reader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        resolution = r.integer("resolution", lo=16, hi=limits.max_mesh_resolution, default=256, hi_error=TooLargeError)
        fmt = r.string("format", choices=MESH_FORMATS, default="ply")
        threshold = r.number("threshold", default=2.5)
        r.done()
        return cls(**common, resolution=resolution, format=fmt, threshold=threshold)

    def _wire(self) -> tuple[dict[str, Any], list[Any]]:
        return {"resolution": self.resolution, "format": self.format, "threshold": self.threshold}, []


@dataclass(frozen=True, kw_only=True, eq=False)
class SetView(Request):
    """``set_view``: register (or replace) a named view streamed on the PUB socket.

    Attributes:
        name: view name (:data:`VIEW_NAME_PATTERN`); the PUB topic is ``view/<name>/``.
        rate: publications per second (> 0, at most ``max_view_rate_hz``).
        pose, intrinsics, encoding, depth, quality: as in :class:`Render`.
    """

    TYPE: ClassVar[str] = "set_view"
    name: str
    rate: float
    pose: np.ndarray
    intrinsics: CameraIntrinsics
    encoding: str = "rgb8"
    depth: bool = False
    quality: int = 90

    @classmethod
    def _parse(cls, r: _Reader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        name = r.string("name", pattern=_VIEW_NAME_RE)
        rate = r.number("rate", positive=True, hi=limits.max_view_rate_hz)
        camera = _read_camera(r, limits)
        r.done()
        return cls(**common, name=name, rate=rate, **camera)

    def _wire(self) -> tuple[dict[str, Any], list[Any]]:
        return {"name": self.name, "rate": self.rate, **_camera_wire(self)}, []


@dataclass(frozen=True, kw_only=True)
class ClearView(Request):
    """``clear_view``: stop streaming view ``name``, or every view when ``name`` is None (field absent)."""

    TYPE: ClassVar[str] = "clear_view"
    name: str | None = None

    @classmethod
    def _parse(cls, r: _Reader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        name = r.string("name", pattern=_VIEW_NAME_RE, default=None)
        r.done()
        return cls(**common, name=name)

    def _wire(self) -> tuple[dict[str, Any], list[Any]]:
        return ({} if self.name is None else {"name": self.name}), []


#: Request ``type`` -> its class: the dispatch table of :func:`parse_request`.
REQUEST_TYPES: dict[str, type[Request]] = {
    cls.TYPE: cls
    for cls in (Hello, Configure, AddFrame, Render, Status, Save, Load, Pause, Resume, ExportMesh, SetView, ClearView)
}


def make_request(type: str, seq: int, *, stamp_ns: int | None = None, **fields: Any) -> dict[str, Any]:
    """A request header: ``{"v", "type", "seq", "stamp_ns", **fields}`` (``stamp_ns`` defaults to now).

    Raises:
        ValueError: unknown type or ``seq`` outside uint64.
    """
    if type not in REQUEST_TYPES:
        raise ValueError(f"unknown request type {type!r}; expected one of {tuple(REQUEST_TYPES)}")
    if not _is_seq(seq):
        raise ValueError(f"seq must be an integer in [0, 2**64), got {seq!r}")
    stamp = time.time_ns() if stamp_ns is None else stamp_ns
    return {"v": PROTOCOL_VERSION, "type": type, "seq": seq, "stamp_ns": stamp, **fields}


def parse_request(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Request:
    """Validate one request message and return it typed.

    Checks, in order: total size, header size and msgpack decoding, ``v``, ``type``/``seq``/``stamp_ns``
    formats, known ``type``, payload frame count, then the type's own fields and payloads.

    Args:
        frames: ``[header, payload, ...]`` (after :func:`split_envelope` on a ROUTER socket).
        limits: the limits to enforce.

    Returns:
        An instance of the :class:`Request` subclass registered for the header's ``type``.

    Raises:
        ProtocolError: a subclass naming what is wrong; its ``seq`` is set when the header's ``seq`` was readable.
    """
    header, payloads = _frames(frames, limits)
    seq = header.get("seq")
    seq = seq if _is_seq(seq) else None
    try:
        _version(header)
        kind = _common_field(header, "type", lambda x: isinstance(x, str), "a string")
        seq = _common_field(header, "seq", _is_seq, "an integer in [0, 2**64)")
        stamp_ns = _common_field(header, "stamp_ns", _is_stamp, "an integer in [0, 2**63)")
        cls = REQUEST_TYPES.get(kind)
        if cls is None:
            raise UnknownTypeError(f"unknown message type {_short(kind)}; expected one of {', '.join(REQUEST_TYPES)}")
        lo, hi = cls.PAYLOADS
        if not lo <= len(payloads) <= hi:
            expected = str(lo) if lo == hi else f"{lo} to {hi}"
            raise PayloadMismatchError(f"{kind!r} carries {expected} payload frame(s), got {len(payloads)}")
        reader = _Reader(header, "", BadFieldError, seen=_COMMON_FIELDS)
        return cls._parse(reader, payloads, limits, {"seq": seq, "stamp_ns": stamp_ns})
    except ProtocolError as e:
        if e.seq is None:
            e.seq = seq
        raise


# ---------------------------------------------------------------------------------------------------------------
# Replies and views
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A decoded reply (``<type>_ok``) or ``view`` message (client side).

    Attributes:
        type: ``"<request type>_ok"`` or ``"view"``.
        seq: the request's ``seq`` (a view: its publication counter).
        stamp_ns: server clock in ns when the reply was made.
        fields: every other header field.
        payloads: the payload frames.
    """

    type: str
    seq: int
    stamp_ns: int
    fields: dict[str, Any]
    payloads: tuple[memoryview, ...] = ()


def _stamp(stamp_ns: int | None) -> int:
    return time.time_ns() if stamp_ns is None else stamp_ns


def make_reply(seq: int, type: str, *, stamp_ns: int | None = None, **fields: Any) -> dict[str, Any]:
    """A success reply header ``{"v", "type": "<type>_ok", "seq", "stamp_ns", **fields}``.

    Args:
        seq: the request's ``seq``.
        type: the request type (``"render"`` gives ``"render_ok"``).
        stamp_ns: server clock; defaults to now.
        **fields: the reply fields; every field of :data:`REPLY_FIELDS` for the type must be present.

    Raises:
        ValueError: unknown type or a required field missing (a server bug, not a client error).
    """
    if type not in REPLY_FIELDS:
        raise ValueError(f"unknown request type {type!r}")
    missing = [k for k in REPLY_FIELDS[type] if k not in fields]
    if missing:
        raise ValueError(f"a {type}_ok reply needs the fields {missing}")
    return {"v": PROTOCOL_VERSION, "type": f"{type}_ok", "seq": seq, "stamp_ns": _stamp(stamp_ns), **fields}


def make_error(seq: int | None, code: str, message: str, *, stamp_ns: int | None = None) -> dict[str, Any]:
    """An error reply header ``{"v", "type": "error", "seq", "stamp_ns", "code", "message"}``.

    Args:
        seq: the request's ``seq``, or None (sent as nil) when it could not be read.
        code: one of :data:`ERROR_CODES`.
        message: explanation; cut to 1000 characters.

    Raises:
        ValueError: unknown code.
    """
    if code not in ERROR_CODES:
        raise ValueError(f"unknown error code {code!r}; expected one of {tuple(ERROR_CODES)}")
    return {
        "v": PROTOCOL_VERSION,
        "type": "error",
        "seq": seq,
        "stamp_ns": _stamp(stamp_ns),
        "code": code,
        "message": message[:1000],
    }


def make_view(seq: int, name: str, *, stamp_ns: int | None = None, **fields: Any) -> dict[str, Any]:
    """A ``view`` header for the PUB socket (send as ``[view_topic(name), header, image, depth?]``).

    Args:
        seq: publication counter of this view (0, 1, 2, ...: gaps reveal dropped messages).
        name: the view name.
        stamp_ns: server clock; defaults to now.
        **fields: ``step``, ``image`` and, when requested, ``depth``.
    """
    return {"v": PROTOCOL_VERSION, "type": "view", "seq": seq, "stamp_ns": _stamp(stamp_ns), "name": name, **fields}


def parse_reply(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Reply:
    """Decode a reply or a view message (drop the topic frame of a view first).

    Raises:
        ProtocolError: the typed error of an ``error`` reply (from its ``code``), or the reply is malformed.
    """
    header, payloads = _frames(frames, limits)
    _version(header)
    kind = _common_field(header, "type", lambda x: isinstance(x, str), "a string")
    if kind == "error":
        seq = header.get("seq")
        code, message = header.get("code"), header.get("message")
        if not isinstance(code, str) or not isinstance(message, str):
            raise BadHeaderError("an error reply needs string fields 'code' and 'message'")
        raise error_from_code(code, message, seq if _is_seq(seq) else None)
    seq = _common_field(header, "seq", _is_seq, "an integer in [0, 2**64)")
    stamp_ns = _common_field(header, "stamp_ns", _is_stamp, "an integer in [0, 2**63)")
    if not (kind == "view" or (kind.endswith("_ok") and kind[:-3] in REQUEST_TYPES)):
        raise UnknownTypeError(f"unknown reply type {_short(kind)}")
    fields = {k: v for k, v in header.items() if k not in _COMMON_FIELDS}
    return Reply(type=kind, seq=seq, stamp_ns=stamp_ns, fields=fields, payloads=tuple(payloads))
