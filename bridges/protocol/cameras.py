"""Poses and intrinsics of the bridge protocol: :class:`CameraIntrinsics`, :func:`pose_to_wire`, and the
readers of the ``pose`` / ``intrinsics`` fields and of the camera fields ``render`` and ``set_view`` share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .constants import (
    CAMERA_MODELS,
    COVARIANCE_SYMMETRY_TOLERANCE,
    POSE_CONVENTIONS,
    POSE_TOLERANCE,
    RENDER_ENCODINGS,
    Limits,
)
from .errors import BadFieldError, BadIntrinsicsError, BadPoseError, TooLargeError, UnsupportedError
from .fields import MISSING, FieldReader, short_repr

__all__ = [
    "CameraIntrinsics",
    "pose_to_wire",
    "read_pose",
    "read_intrinsics",
    "read_camera",
    "read_background",
    "read_covariance",
    "covariance_to_wire",
]

_DIST_LENGTHS: dict[str, tuple[int, ...]] = {"PINHOLE": (0,), "OPENCV": (0, 4), "OPENCV_FISHEYE": (4,)}
# bytes per pixel a render reply may need, per encoding (compressed: bounded by their raw size)
_RENDER_BYTES = {"rgb8": 3, "rgba8": 4, "32FC3": 12, "png": 4, "jpeg": 3}


def read_pose(r: FieldReader) -> np.ndarray:
    """Read and check a ``pose`` field: float64 4x4 camera-to-world, converted to the OpenGL convention."""
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
    """Intrinsics of one camera image (same fields as ``ngp_sdk.core.cameras.Intrinsics``).

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


def read_intrinsics(r: FieldReader, width: int, height: int) -> CameraIntrinsics:
    """Read and check an ``intrinsics`` field of a ``width`` x ``height`` image."""
    model = r.string("model", choices=CAMERA_MODELS, default="PINHOLE")
    fx = r.number("fx", positive=True)
    fy = r.number("fy", positive=True)
    cx = r.number("cx")
    cy = r.number("cy")
    lengths = _DIST_LENGTHS[model]
    dist = r.numbers("dist", lengths=lengths, default=() if 0 in lengths else MISSING)
    r.done()
    dist4 = (*dist, *(0.0,) * (4 - len(dist)))
    return CameraIntrinsics(width=width, height=height, fx=fx, fy=fy, cx=cx, cy=cy, model=model, dist=dist4)


def read_covariance(value: Any) -> np.ndarray:
    """Check a ``pose_covariance`` value: 36 numbers (row-major) or 6 arrays of 6; finite, symmetric within
    :data:`COVARIANCE_SYMMETRY_TOLERANCE` (relative), diagonal >= 0. Returns float64 ``[6, 6]``.

    Raises:
        BadFieldError: anything else.
    """
    what = "36 numbers (a row-major 6x6 matrix) or 6 arrays of 6 numbers"
    rows = value if isinstance(value, list) and len(value) == 6 and all(isinstance(x, list) for x in value) else None
    flat = [x for row in rows for x in row] if rows is not None and all(len(x) == 6 for x in rows) else value
    if not isinstance(flat, list) or len(flat) != 36:
        raise BadFieldError(f"field 'pose_covariance' must be {what}, got {short_repr(value)}")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in flat):
        raise BadFieldError(f"field 'pose_covariance' must hold only numbers, got {short_repr(value)}")
    with np.errstate(all="ignore"):
        c = np.array(flat, dtype=np.float64).reshape(6, 6)
        if not np.isfinite(c).all():
            raise BadFieldError("field 'pose_covariance' must hold finite numbers")
        asym = float(np.abs(c - c.T).max())
        scale = max(1.0, float(np.abs(c).max()))
    if asym > COVARIANCE_SYMMETRY_TOLERANCE * scale:
        raise BadFieldError(f"field 'pose_covariance' must be symmetric: max |C - C^T| = {asym:.3g}")
    if (np.diag(c) < 0).any():
        raise BadFieldError(f"field 'pose_covariance' has a negative variance on its diagonal: {np.diag(c).tolist()}")
    c.flags.writeable = False
    return c


def covariance_to_wire(cov: Any) -> list[float]:
    """A ``pose_covariance`` field (36 numbers, row-major) from a ``[6, 6]`` matrix (or 36 numbers)."""
    c = np.asarray(cov, dtype=np.float64)
    if c.size != 36:
        raise ValueError(f"a pose covariance is 6x6, got shape {c.shape}")
    return [float(x) for x in c.reshape(36)]


def read_background(r: FieldReader) -> tuple[float, float, float] | None:
    """The ``background`` field of a version-2 ``render`` / ``set_view``: 3 numbers in [0, 1], or None if absent."""
    background = r.numbers("background", lengths=(3,), default=None)
    if background is not None and not all(0.0 <= c <= 1.0 for c in background):
        raise BadFieldError(f"field 'background' must hold 3 numbers in [0, 1], got {list(background)}")
    return background


def read_camera(r: FieldReader, limits: Limits, version: int = 1) -> dict[str, Any]:
    """Fields shared by ``render`` and ``set_view``: size, intrinsics, pose, output format and (version 2)
    ``background``, then the check that the output fits in one message."""
    width = r.integer("width", lo=1, hi=limits.max_image_width, hi_error=TooLargeError)
    height = r.integer("height", lo=1, hi=limits.max_image_height, hi_error=TooLargeError)
    intrinsics = read_intrinsics(r.mapping("intrinsics", error=BadIntrinsicsError), width, height)
    pose = read_pose(r.mapping("pose", error=BadPoseError))
    encoding = r.string("encoding", choices=RENDER_ENCODINGS, default="rgb8",
                        choice_error=UnsupportedError if version >= 2 else None)
    depth = r.boolean("depth", default=False)
    quality = r.integer("quality", lo=1, hi=100, default=90)
    background = read_background(r) if version >= 2 else None
    need = width * height * (_RENDER_BYTES[encoding] + 4 * depth) + limits.max_header_bytes
    if need > limits.max_message_bytes:
        raise TooLargeError(
            f"a {width}x{height} {encoding} image{' with depth' if depth else ''} may need {need} bytes; "
            f"max_message_bytes is {limits.max_message_bytes}"
        )
    return {"pose": pose, "intrinsics": intrinsics, "encoding": encoding, "depth": depth, "quality": quality,
            "background": background}
