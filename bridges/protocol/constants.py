"""Constants of the bridge protocol: version, endpoints, encodings, camera models, limits and defaults.

Leaf module of :mod:`bridges.protocol` (imports nothing from it). :data:`CONFIGURE_DEFAULTS` is the one place
the defaults of a ``configure`` request live: :class:`~bridges.protocol.messages.Configure` takes its field
defaults from it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
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
    "CAMERA_ID_MAX_LEN",
    "COVARIANCE_SYMMETRY_TOLERANCE",
    "PRIMITIVES",
    "MESH_FORMATS",
    "TRAINING_STATES",
    "CAPABILITIES",
    "VIEW_NAME_PATTERN",
    "VIEW_NAME_RE",
    "REPLY_FIELDS",
    "REPLY_FIELDS_V2",
    "reply_fields",
    "Limits",
    "DEFAULT_LIMITS",
    "ConfigureDefaults",
    "CONFIGURE_DEFAULTS",
]

#: The newest version of this protocol: the ``v`` field of every header a client of this package sends by default.
PROTOCOL_VERSION = 2
#: Every version a server of this package speaks; it answers each request in the request's own ``v``.
PROTOCOL_VERSIONS = (1, 2)
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
#: Longest ``camera_id`` of an ``add_frame`` (characters).
CAMERA_ID_MAX_LEN = 64
#: Largest accepted ``|C - C^T|`` of a ``pose_covariance``, relative to ``max(1, max |C|)`` (version 2).
COVARIANCE_SYMMETRY_TOLERANCE = 1e-6
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
    "camera_id",
    "pose_refinement",
    "depth_supervision",
)
#: Allowed view names (``set_view`` / ``clear_view``): they become part of a PUB topic.
VIEW_NAME_PATTERN = r"[A-Za-z0-9_.\-]{1,64}"
#: :data:`VIEW_NAME_PATTERN`, compiled.
VIEW_NAME_RE = re.compile(VIEW_NAME_PATTERN)

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
#: :data:`REPLY_FIELDS` of protocol version 2: ``hello_ok`` always announces every version spoken and the endpoints.
REPLY_FIELDS_V2: dict[str, tuple[str, ...]] = {
    **REPLY_FIELDS,
    "hello": (*REPLY_FIELDS["hello"], "protocols", "endpoints"),
}


def reply_fields(version: int) -> dict[str, tuple[str, ...]]:
    """The fields every ``<type>_ok`` reply of protocol ``version`` carries (see :data:`REPLY_FIELDS`)."""
    return REPLY_FIELDS if version == 1 else REPLY_FIELDS_V2


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
        max_zmq_frame_bytes: largest single ZeroMQ frame the server reads (its ``ZMQ_MAXMSGSIZE``); a larger
            frame makes ZeroMQ close the sender's connection before the server sees the message, so it cannot be
            answered. 0 (the default) means ``2 * max_message_bytes``: a message over ``max_message_bytes`` whose
            frames are each within this limit is read and answered with ``too_large``.
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
    max_zmq_frame_bytes: int = 0

    def __post_init__(self) -> None:
        if not self.max_zmq_frame_bytes:
            object.__setattr__(self, "max_zmq_frame_bytes", 2 * self.max_message_bytes)

    def to_dict(self) -> dict[str, int | float]:
        """The limits as a plain dict, e.g. for the ``limits`` field of a ``hello`` reply."""
        return dataclasses.asdict(self)


#: The default limits (both protocol versions).
DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, kw_only=True)
class ConfigureDefaults:
    """Defaults of the optional fields of a ``configure`` request (and of :class:`Configure`'s attributes).

    ``primitive`` is required on the wire; its value here is only the default of a client-built ``Configure``.

    Attributes:
        primitive: the primitive a client-built ``Configure`` creates.
        config: model config overrides (empty: the primitive's defaults); read-only, copied per request.
        aabb_scale: side of the scene box in internal units.
        scale: world units -> internal units factor.
        offset: internal-unit offset added after scaling.
        capacity: most frames kept for training.
        min_frames: frames needed before training starts.
    """

    primitive: str = "nerf"
    config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    aabb_scale: int = 1
    scale: float = 0.33
    offset: tuple[float, float, float] = (0.5, 0.5, 0.5)
    capacity: int = 256
    min_frames: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The defaults as a plain dict (``config`` as a new dict)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["config"] = dict(self.config)
        return out


#: Defaults of a ``configure`` request: the single source for :class:`Configure` and the server's CLI.
CONFIGURE_DEFAULTS = ConfigureDefaults()
