"""Wire protocol (versions 1 and 2) of the ngp-sdk ZeroMQ bridge: framing, limits, typed errors, requests, replies.

Every message is a ZeroMQ multipart message ``[header, payload, ...]``: the header is a msgpack map with string
keys, the payloads are raw bytes that header fields describe. Nothing is ever pickled and arrays never travel
as msgpack-numpy. ``docs/protocol.md`` is the normative description; this package implements it and imports
only msgpack, numpy and the standard library (imageio is imported lazily, to decode or encode PNG/JPEG), so any
Python client can use it without Warp or pyzmq.

Server side::

    try:
        request = parse_request(frames, limits)          # a typed Request, e.g. AddFrame
    except ProtocolError as e:
        send(encode_message(make_error(e.seq, e.code, e.message, request_type=e.request_type)))
    else:
        send(encode_message(make_reply(request.seq, request.TYPE, index=3, frame_count=4)))

Client side::

    send(Render(seq=7, pose=c2w, intrinsics=camera, encoding="png").to_frames())
    reply = parse_reply(frames)                          # raises the typed ProtocolError of an error reply
    rgb = decode_image(reply.fields["image"], reply.payloads[0])

Versions: every header carries its protocol version ``v``; requests build version 2 (:data:`PROTOCOL_VERSION`)
unless given ``version=1``, and :func:`parse_request` accepts both (:data:`PROTOCOL_VERSIONS`), so a server answers
each request in its own version.

Validation is table driven: :data:`REQUEST_TYPES` maps each ``type`` string to its :class:`Request` subclass,
whose ``_parse`` reads and checks its own fields.

The package re-exports the public API below; its submodules, each importing only the ones before it:

- :mod:`~bridges.protocol.constants`: version, endpoints, encodings, camera models, pose conventions,
  :class:`Limits` / :data:`DEFAULT_LIMITS`, :data:`REPLY_FIELDS` / :func:`reply_fields`, and
  :data:`CONFIGURE_DEFAULTS` (the defaults of a ``configure`` request).
- :mod:`~bridges.protocol.errors`: :class:`ProtocolError`, one subclass per error code, :data:`ERROR_CODES`,
  :func:`error_from_code`.
- :mod:`~bridges.protocol.fields`: field validation (:class:`~bridges.protocol.fields.FieldReader`) and small
  value helpers.
- :mod:`~bridges.protocol.framing`: :func:`encode_message`, :func:`decode_header`, :func:`split_envelope`,
  :func:`view_topic` and the checks of the common header fields.
- :mod:`~bridges.protocol.codecs`: image and depth payloads (:func:`encode_image`, :func:`decode_image`,
  :func:`encode_depth`, :func:`decode_depth`).
- :mod:`~bridges.protocol.cameras`: :class:`CameraIntrinsics`, :func:`pose_to_wire`, pose / intrinsics readers.
- :mod:`~bridges.protocol.messages`: :class:`Request` and its subclasses, :data:`REQUEST_TYPES`,
  :func:`make_request`, :func:`parse_request`, :class:`Reply`, :func:`make_reply`, :func:`make_error`,
  :func:`make_view`, :func:`parse_reply`.
"""

from __future__ import annotations

from .cameras import CameraIntrinsics, covariance_to_wire, pose_to_wire
from .codecs import decode_depth, decode_image, encode_depth, encode_image
from .constants import (
    CAMERA_MODELS,
    CAPABILITIES,
    COMPRESSED_ENCODINGS,
    CONFIGURE_DEFAULTS,
    DEFAULT_DEPTH_SCALE,
    DEFAULT_FRAME_ENDPOINT,
    DEFAULT_LIMITS,
    DEFAULT_REQUEST_ENDPOINT,
    DEFAULT_VIEW_ENDPOINT,
    DEPTH_ENCODINGS,
    FRAME_ENCODINGS,
    IMAGE_ENCODINGS,
    MESH_FORMATS,
    POSE_CONVENTIONS,
    POSE_TOLERANCE,
    PRIMITIVES,
    PROTOCOL_VERSION,
    PROTOCOL_VERSIONS,
    RAW_ENCODINGS,
    RENDER_ENCODINGS,
    REPLY_FIELDS,
    REPLY_FIELDS_V2,
    TRAINING_STATES,
    VIEW_NAME_PATTERN,
    Limits,
    reply_fields,
)
from .errors import (
    ERROR_CODES,
    BadFieldError,
    BadHeaderError,
    BadIntrinsicsError,
    BadPoseError,
    BadVersionError,
    BusyError,
    InternalError,
    NoSessionError,
    PayloadMismatchError,
    ProtocolError,
    StorageError,
    TooLargeError,
    UnknownTypeError,
    UnsupportedError,
    error_from_code,
)
from .framing import decode_header, encode_message, split_envelope, view_topic
from .messages import (
    REQUEST_TYPES,
    AddFrame,
    ClearView,
    Configure,
    ExportMesh,
    Hello,
    Load,
    Pause,
    Render,
    Reply,
    Request,
    Resume,
    Save,
    SetView,
    Status,
    make_error,
    make_reply,
    make_request,
    make_view,
    parse_reply,
    parse_request,
)

__all__ = [
    # constants
    "PROTOCOL_VERSION",
    "PROTOCOL_VERSIONS",
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
    "REPLY_FIELDS_V2",
    "reply_fields",
    "Limits",
    "DEFAULT_LIMITS",
    "CONFIGURE_DEFAULTS",
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
    "covariance_to_wire",
    "encode_image",
    "encode_depth",
    "decode_image",
    "decode_depth",
]
