"""Messages of the bridge protocol: the typed requests (:class:`Request` and one subclass per ``type``),
:data:`REQUEST_TYPES`, :func:`parse_request`, and the reply / error / view headers and :func:`parse_reply`.

Validation is table driven: :data:`REQUEST_TYPES` maps each ``type`` string to its :class:`Request` subclass,
whose ``_parse`` reads and checks its own fields.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .cameras import (
    CameraIntrinsics,
    covariance_to_wire,
    pose_to_wire,
    read_camera,
    read_covariance,
    read_intrinsics,
    read_pose,
)
from .codecs import depth_from_layout, encode_depth, encode_image, image_from_layout, read_layout
from .constants import (
    CAMERA_ID_MAX_LEN,
    CONFIGURE_DEFAULTS,
    DEFAULT_LIMITS,
    DEPTH_ENCODINGS,
    FRAME_ENCODINGS,
    MESH_FORMATS,
    PRIMITIVES,
    PROTOCOL_VERSION,
    PROTOCOL_VERSIONS,
    VIEW_NAME_RE,
    Limits,
    reply_fields,
)
from .errors import (
    ERROR_CODES,
    BadFieldError,
    BadHeaderError,
    BadIntrinsicsError,
    BadPoseError,
    PayloadMismatchError,
    ProtocolError,
    TooLargeError,
    UnknownTypeError,
    UnsupportedError,
    error_from_code,
)
from .fields import FieldReader, short_repr
from .framing import (
    check_version,
    common_field,
    decode_frames,
    encode_message,
    is_seq,
    is_stamp,
    recover_fields,
)

__all__ = [
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
    "Reply",
    "make_reply",
    "make_error",
    "make_view",
    "parse_reply",
]

_COMMON_FIELDS = ("v", "type", "seq", "stamp_ns")


def _camera_wire(req: Render | SetView) -> dict[str, Any]:
    fields = {
        "width": req.intrinsics.width,
        "height": req.intrinsics.height,
        "intrinsics": req.intrinsics.to_wire(),
        "pose": pose_to_wire(req.pose, "opengl"),
        "encoding": req.encoding,
        "depth": req.depth,
        "quality": req.quality,
    }
    if req.background is not None:
        _need_version(req, 2, "background")
        fields["background"] = [float(c) for c in req.background]
    return fields


def _need_version(req: Request, version: int, name: str) -> None:
    if req.version < version:
        raise ValueError(f"{name!r} needs protocol version {version}; this {req.TYPE!r} is version {req.version}")


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
        version: protocol version, the header's ``v`` (the reply comes in the same version).
    """

    TYPE: ClassVar[str] = ""
    PAYLOADS: ClassVar[tuple[int, int]] = (0, 0)

    seq: int
    stamp_ns: int | None = None
    version: int = PROTOCOL_VERSION

    @classmethod
    def _parse(cls, r: FieldReader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        r.done()
        return cls(**common)

    def _wire(self) -> tuple[dict[str, Any], list[Any]]:
        return {}, []

    def to_frames(self) -> list[bytes | memoryview]:
        """The request as message frames (client side)."""
        fields, payloads = self._wire()
        header = make_request(self.TYPE, self.seq, stamp_ns=self.stamp_ns, v=self.version, **fields)
        return encode_message(header, payloads)


@dataclass(frozen=True, kw_only=True)
class Hello(Request):
    """``hello``: handshake; the reply lists the server version, capabilities and limits.

    Attributes:
        client: free-form client name and version (optional, for logs).
    """

    TYPE: ClassVar[str] = "hello"
    client: str = ""

    @classmethod
    def _parse(cls, r: FieldReader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        client = r.string("client", default="")
        r.done()
        return cls(**common, client=client)

    def _wire(self) -> tuple[dict[str, Any], list[Any]]:
        return ({"client": self.client} if self.client else {}), []


@dataclass(frozen=True, kw_only=True)
class Configure(Request):
    """``configure``: create a new session (replacing any previous one).

    The defaults of the optional fields are those of :data:`~bridges.protocol.constants.CONFIGURE_DEFAULTS`.

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
    primitive: str = CONFIGURE_DEFAULTS.primitive
    config: dict[str, Any] = field(default_factory=lambda: dict(CONFIGURE_DEFAULTS.config))
    aabb_scale: int = CONFIGURE_DEFAULTS.aabb_scale
    scale: float = CONFIGURE_DEFAULTS.scale
    offset: tuple[float, float, float] = CONFIGURE_DEFAULTS.offset
    capacity: int = CONFIGURE_DEFAULTS.capacity
    min_frames: int = CONFIGURE_DEFAULTS.min_frames

    @classmethod
    def _parse(cls, r: FieldReader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        primitive = r.string("primitive", choices=PRIMITIVES)
        config = r.raw_map("config", default=dict(CONFIGURE_DEFAULTS.config))
        aabb_scale = r.integer("aabb_scale", lo=1, hi=128, default=CONFIGURE_DEFAULTS.aabb_scale)
        if aabb_scale & (aabb_scale - 1):
            raise r.invalid("aabb_scale", "a power of two", aabb_scale)
        scale = r.number("scale", positive=True, default=CONFIGURE_DEFAULTS.scale)
        offset = r.numbers("offset", lengths=(3,), default=CONFIGURE_DEFAULTS.offset)
        capacity = r.integer(
            "capacity", lo=1, hi=limits.max_frames, default=CONFIGURE_DEFAULTS.capacity, hi_error=TooLargeError
        )
        min_frames = r.integer("min_frames", lo=1, hi=capacity, default=CONFIGURE_DEFAULTS.min_frames)
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
        camera_id: which camera of a rig took the frame (``""``: not given).
        pose_noisy: version 2: the pose is approximate; the server refines it while training.
        pose_covariance: version 2: float64 ``[6, 6]`` covariance of the pose, order ``(rx, ry, rz, tx, ty, tz)``
            (a small world-axes rotation about the camera centre in rad, then the centre's shift in world units),
            or None. A covariance that is not all zeros makes the frame noisy too (see :attr:`noisy`).
    """

    TYPE: ClassVar[str] = "add_frame"
    PAYLOADS: ClassVar[tuple[int, int]] = (1, 2)
    image: np.ndarray
    intrinsics: CameraIntrinsics
    pose: np.ndarray
    depth: np.ndarray | None = None
    encoding: str = "rgb8"
    camera_id: str = ""
    pose_noisy: bool = False
    pose_covariance: np.ndarray | None = None

    @property
    def noisy(self) -> bool:
        """Whether the server should refine this frame's pose: ``pose_noisy``, or a covariance not all zeros."""
        return self.pose_noisy or (self.pose_covariance is not None and bool(np.any(self.pose_covariance)))

    @classmethod
    def _parse(cls, r: FieldReader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        v2 = common["version"] >= 2
        unknown_encoding = UnsupportedError if v2 else None
        image = read_layout(r.mapping("image"), limits, FRAME_ENCODINGS, unknown_encoding=unknown_encoding)
        intrinsics = read_intrinsics(r.mapping("intrinsics", error=BadIntrinsicsError), image.width, image.height)
        pose = read_pose(r.mapping("pose", error=BadPoseError))
        depth_reader = r.mapping("depth", default=None)
        depth = None if depth_reader is None else read_layout(depth_reader, limits, tuple(DEPTH_ENCODINGS), depth=True,
                                                              unknown_encoding=unknown_encoding)
        camera_id = r.string("camera_id", default="", max_len=CAMERA_ID_MAX_LEN)
        pose_noisy, covariance = False, None
        if v2:
            pose_noisy = r.boolean("pose_noisy", default=False)
            raw_covariance = r.raw("pose_covariance", default=None)
            covariance = None if raw_covariance is None else read_covariance(raw_covariance)
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
            image=image_from_layout(image, payloads[0]),
            intrinsics=intrinsics,
            pose=pose,
            depth=None if depth is None else depth_from_layout(depth, payloads[1]),
            encoding=image.encoding,
            camera_id=camera_id,
            pose_noisy=pose_noisy,
            pose_covariance=covariance,
        )

    def _wire(self) -> tuple[dict[str, Any], list[Any]]:
        if self.encoding not in ("rgb8", "rgba8", "png", "jpeg"):
            raise ValueError(f"to_frames sends rgb8, rgba8, png or jpeg images, not {self.encoding!r}")
        image_field, payload = encode_image(self.image, self.encoding)
        fields = {"image": image_field, "intrinsics": self.intrinsics.to_wire(), "pose": pose_to_wire(self.pose)}
        payloads = [payload]
        if self.camera_id:
            fields["camera_id"] = self.camera_id
        if self.pose_noisy:
            _need_version(self, 2, "pose_noisy")
            fields["pose_noisy"] = True
        if self.pose_covariance is not None:
            _need_version(self, 2, "pose_covariance")
            fields["pose_covariance"] = covariance_to_wire(self.pose_covariance)
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
        background: version 2: RGB in [0, 1] (colour code space) behind the scene, or None for the server's
            default.
    """

    TYPE: ClassVar[str] = "render"
    pose: np.ndarray
    intrinsics: CameraIntrinsics
    encoding: str = "rgb8"
    depth: bool = False
    quality: int = 90
    background: tuple[float, float, float] | None = None

    @property
    def width(self) -> int:
        """Output width in pixels."""
        return self.intrinsics.width

    @property
    def height(self) -> int:
        """Output height in pixels."""
        return self.intrinsics.height

    @classmethod
    def _parse(cls, r: FieldReader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        camera = read_camera(r, limits, common["version"])
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
    def _parse(cls, r: FieldReader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
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
    def _parse(cls, r: FieldReader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
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
        pose, intrinsics, encoding, depth, quality, background: as in :class:`Render`.
    """

    TYPE: ClassVar[str] = "set_view"
    name: str
    rate: float
    pose: np.ndarray
    intrinsics: CameraIntrinsics
    encoding: str = "rgb8"
    depth: bool = False
    quality: int = 90
    background: tuple[float, float, float] | None = None

    @classmethod
    def _parse(cls, r: FieldReader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        name = r.string("name", pattern=VIEW_NAME_RE)
        rate = r.number("rate", positive=True, hi=limits.max_view_rate_hz)
        camera = read_camera(r, limits, common["version"])
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
    def _parse(cls, r: FieldReader, payloads: list[memoryview], limits: Limits, common: dict[str, Any]) -> Request:
        name = r.string("name", pattern=VIEW_NAME_RE, default=None)
        r.done()
        return cls(**common, name=name)

    def _wire(self) -> tuple[dict[str, Any], list[Any]]:
        return ({} if self.name is None else {"name": self.name}), []


#: Request ``type`` -> its class: the dispatch table of :func:`parse_request`.
REQUEST_TYPES: dict[str, type[Request]] = {
    cls.TYPE: cls
    for cls in (Hello, Configure, AddFrame, Render, Status, Save, Load, Pause, Resume, ExportMesh, SetView, ClearView)
}


def _check_version_arg(v: int) -> int:
    if v not in PROTOCOL_VERSIONS:
        raise ValueError(f"protocol version {v!r} is none of {PROTOCOL_VERSIONS}")
    return v


def make_request(type: str, seq: int, *, stamp_ns: int | None = None, v: int = PROTOCOL_VERSION,
                 **fields: Any) -> dict[str, Any]:
    """A request header: ``{"v", "type", "seq", "stamp_ns", **fields}`` (``stamp_ns`` defaults to now).

    Raises:
        ValueError: unknown type or version, or ``seq`` outside uint64.
    """
    if type not in REQUEST_TYPES:
        raise ValueError(f"unknown request type {type!r}; expected one of {tuple(REQUEST_TYPES)}")
    if not is_seq(seq):
        raise ValueError(f"seq must be an integer in [0, 2**64), got {seq!r}")
    stamp = time.time_ns() if stamp_ns is None else stamp_ns
    return {"v": _check_version_arg(v), "type": type, "seq": seq, "stamp_ns": stamp, **fields}


def parse_request(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Request:
    """Validate one request message and return it typed.

    Checks, in order: total size, header size and msgpack decoding, ``v``, ``type``/``seq``/``stamp_ns``
    formats, known ``type``, payload frame count, then the type's own fields and payloads. Versions 1 and 2 are
    accepted; the request's ``version`` says which one it spoke (fields new in version 2 are unknown fields in a
    version-1 request).

    Args:
        frames: ``[header, payload, ...]`` (after :func:`split_envelope` on a ROUTER socket).
        limits: the limits to enforce.

    Returns:
        An instance of the :class:`Request` subclass registered for the header's ``type``.

    Raises:
        ProtocolError: a subclass naming what is wrong; its ``seq`` is set when the header's ``seq`` was readable,
            its ``version`` when the header's ``v`` was a version this side speaks.
    """
    try:
        header, payloads = decode_frames(frames, limits)
    except ProtocolError as e:  # the strict decoder refused the header: read seq, type and v leniently
        if len(frames):
            found = recover_fields(frames[0], limits)
            e.seq, e.request_type, e.version = found.get("seq"), found.get("type"), found.get("v")
        raise
    seq = header.get("seq")
    seq = seq if is_seq(seq) else None
    version = None
    try:
        version = check_version(header)
        kind = common_field(header, "type", lambda x: isinstance(x, str), "a string")
        seq = common_field(header, "seq", is_seq, "an integer in [0, 2**64)")
        stamp_ns = common_field(header, "stamp_ns", is_stamp, "an integer in [0, 2**63)")
        cls = REQUEST_TYPES.get(kind)
        if cls is None:
            raise UnknownTypeError(
                f"unknown message type {short_repr(kind)}; expected one of {', '.join(REQUEST_TYPES)}"
            )
        lo, hi = cls.PAYLOADS
        if not lo <= len(payloads) <= hi:
            expected = str(lo) if lo == hi else f"{lo} to {hi}"
            raise PayloadMismatchError(f"{kind!r} carries {expected} payload frame(s), got {len(payloads)}")
        reader = FieldReader(header, "", BadFieldError, seen=_COMMON_FIELDS)
        return cls._parse(reader, payloads, limits, {"seq": seq, "stamp_ns": stamp_ns, "version": version})
    except ProtocolError as e:
        if e.seq is None:
            e.seq = seq
        if e.version is None:
            e.version = version
        if e.request_type is None and isinstance(header.get("type"), str):
            e.request_type = header["type"]
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
        version: the reply's protocol version (its ``v``: that of the request it answers).
    """

    type: str
    seq: int
    stamp_ns: int
    fields: dict[str, Any]
    payloads: tuple[memoryview, ...] = ()
    version: int = PROTOCOL_VERSION


def _stamp(stamp_ns: int | None) -> int:
    return time.time_ns() if stamp_ns is None else stamp_ns


def make_reply(seq: int, type: str, *, stamp_ns: int | None = None, v: int = PROTOCOL_VERSION,
               **fields: Any) -> dict[str, Any]:
    """A success reply header ``{"v", "type": "<type>_ok", "seq", "stamp_ns", **fields}``.

    Args:
        seq: the request's ``seq``.
        type: the request type (``"render"`` gives ``"render_ok"``).
        stamp_ns: server clock; defaults to now.
        v: protocol version of the reply (that of the request).
        **fields: the reply fields; every field of :func:`~bridges.protocol.constants.reply_fields` of version
            ``v`` for the type must be present.

    Raises:
        ValueError: unknown type or version, or a required field missing (a server bug, not a client error).
    """
    required = reply_fields(_check_version_arg(v))
    if type not in required:
        raise ValueError(f"unknown request type {type!r}")
    missing = [k for k in required[type] if k not in fields]
    if missing:
        raise ValueError(f"a version-{v} {type}_ok reply needs the fields {missing}")
    return {"v": v, "type": f"{type}_ok", "seq": seq, "stamp_ns": _stamp(stamp_ns), **fields}


def make_error(seq: int | None, code: str, message: str, *, stamp_ns: int | None = None,
               request_type: str | None = None, v: int | None = None) -> dict[str, Any]:
    """An error reply header ``{"v", "type": "error", "seq", "stamp_ns", "code", "message", "request_type"}``.

    Args:
        seq: the request's ``seq``, or None (sent as nil) when it could not be read.
        code: one of :data:`ERROR_CODES`.
        message: explanation; cut to 1000 characters.
        request_type: the request's ``type`` when it could be read (at most 64 characters kept), else nil.
        v: the request's protocol version; None (unreadable or unsupported) answers in the newest version.

    Raises:
        ValueError: unknown code or version.
    """
    if code not in ERROR_CODES:
        raise ValueError(f"unknown error code {code!r}; expected one of {tuple(ERROR_CODES)}")
    return {
        "v": PROTOCOL_VERSION if v is None else _check_version_arg(v),
        "type": "error",
        "seq": seq,
        "stamp_ns": _stamp(stamp_ns),
        "code": code,
        "message": message[:1000],
        "request_type": None if request_type is None else str(request_type)[:64],
    }


def make_view(seq: int, name: str, *, stamp_ns: int | None = None, v: int = PROTOCOL_VERSION,
              **fields: Any) -> dict[str, Any]:
    """A ``view`` header for the PUB socket (send as ``[view_topic(name), header, image, depth?]``).

    Args:
        seq: publication counter of this view (0, 1, 2, ...: gaps reveal dropped messages).
        name: the view name.
        stamp_ns: server clock; defaults to now.
        v: protocol version (that of the ``set_view`` request that registered the view).
        **fields: ``step``, ``image`` and, when requested, ``depth``.
    """
    return {"v": _check_version_arg(v), "type": "view", "seq": seq, "stamp_ns": _stamp(stamp_ns), "name": name,
            **fields}


def parse_reply(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Reply:
    """Decode a reply or a view message (drop the topic frame of a view first).

    Raises:
        ProtocolError: the typed error of an ``error`` reply (from its ``code``), or the reply is malformed.
    """
    header, payloads = decode_frames(frames, limits)
    version = check_version(header)
    kind = common_field(header, "type", lambda x: isinstance(x, str), "a string")
    if kind == "error":
        seq = header.get("seq")
        code, message = header.get("code"), header.get("message")
        if not isinstance(code, str) or not isinstance(message, str):
            raise BadHeaderError("an error reply needs string fields 'code' and 'message'")
        raise error_from_code(code, message, seq if is_seq(seq) else None)
    seq = common_field(header, "seq", is_seq, "an integer in [0, 2**64)")
    stamp_ns = common_field(header, "stamp_ns", is_stamp, "an integer in [0, 2**63)")
    if not (kind == "view" or (kind.endswith("_ok") and kind[:-3] in REQUEST_TYPES)):
        raise UnknownTypeError(f"unknown reply type {short_repr(kind)}")
    fields = {k: v for k, v in header.items() if k not in _COMMON_FIELDS}
    return Reply(type=kind, seq=seq, stamp_ns=stamp_ns, fields=fields, payloads=tuple(payloads), version=version)
