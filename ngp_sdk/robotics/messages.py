"""ROS message <-> array conversions, without ROS: images, depth, CameraInfo, poses, TF transforms.

Every function takes a *deserialised message object* and reads it by attribute name, so the same code serves
messages from ``rosbags`` (ROS 1 and ROS 2 bags), from ``rclpy`` (the live node of ``samples/ros2_node.py``) and
plain test doubles (:class:`types.SimpleNamespace`). ROS 1 and ROS 2 spellings are both read (``K`` / ``k``,
``D`` / ``d``, ``stamp.secs`` / ``stamp.sec``).

Conventions (REP 103 / REP 105): a camera's *optical frame* has ``x`` right, ``y`` down, ``z`` forward (OpenCV
camera axes); :func:`optical_to_nerf` turns an optical-frame camera-to-world into the NeRF/OpenGL camera axes of
``transforms.json``. World frames keep their axes and metric units.

Supported image encodings (``sensor_msgs/Image``): colour ``rgb8 bgr8 rgba8 bgra8 mono8 mono16`` (mono16 is
shifted to 8 bits), depth ``16UC1`` (millimetres; ``mono16`` is accepted as depth too) and ``32FC1`` (metres).
``sensor_msgs/CompressedImage``: JPEG and PNG (``format`` as image_transport writes it, e.g. ``"jpeg"`` or
``"bgr8; jpeg compressed bgr8"``). ``sensor_msgs/CameraInfo`` distortion models: ``plumb_bob``,
``rational_polynomial`` and ``equidistant`` (and none); a model the ray generator cannot express (a non-zero
``k3`` or rational term) is removed by resampling the image to a pinhole camera with the same ``K``
(:class:`Undistorter`).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ngp_sdk.core.cameras import Intrinsics
from ngp_sdk.core.errors import DataError

__all__ = [
    "MessageError",
    "COLOR_ENCODINGS",
    "DEPTH_ENCODINGS",
    "stamp_to_ns",
    "header_stamp_ns",
    "decode_image",
    "decode_compressed_image",
    "decode_depth",
    "CameraModel",
    "Undistorter",
    "camera_from_info",
    "quaternion_to_matrix",
    "transform_to_matrix",
    "pose_message_to_matrix",
    "optical_to_nerf",
    "nerf_to_optical",
    "image_message_fields",
]

#: ``sensor_msgs/Image`` colour encodings :func:`decode_image` reads.
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16")
#: Depth encodings :func:`decode_depth` reads (value scale to metres).
DEPTH_ENCODINGS = {"16UC1": 0.001, "mono16": 0.001, "32FC1": 1.0}

_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 1, "16UC1": 1, "32FC1": 1}
_SAMPLE_BYTES = {"mono16": 2, "16UC1": 2, "32FC1": 4}

_OPTICAL_TO_NERF = np.diag([1.0, -1.0, -1.0, 1.0])


class MessageError(DataError):
    """A ROS message cannot be converted: unknown encoding, inconsistent sizes, bad numbers."""


def _field(msg: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        if hasattr(msg, n):
            return getattr(msg, n)
    if default is not None:
        return default
    raise MessageError(f"{type(msg).__name__} has none of the fields {names}")


def stamp_to_ns(stamp: Any) -> int:
    """A ``builtin_interfaces/Time`` (ROS 2: ``sec``/``nanosec``; ROS 1: ``secs``/``nsecs``) in nanoseconds."""
    sec = _field(stamp, "sec", "secs")
    nsec = _field(stamp, "nanosec", "nsecs")
    return int(sec) * 1_000_000_000 + int(nsec)


def header_stamp_ns(msg: Any) -> int:
    """``msg.header.stamp`` in nanoseconds."""
    return stamp_to_ns(msg.header.stamp)


def _raw_array(msg: Any) -> tuple[np.ndarray, str]:
    """``(array [H, W, C] of the encoding's sample type, encoding)`` of a ``sensor_msgs/Image``."""
    enc = str(msg.encoding)
    if enc not in _CHANNELS:
        raise MessageError(f"unsupported image encoding {enc!r}; supported: {', '.join(_CHANNELS)}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    c = _CHANNELS[enc]
    nbytes = _SAMPLE_BYTES.get(enc, 1)
    if h <= 0 or w <= 0:
        raise MessageError(f"image of size {w}x{h}")
    if step < w * c * nbytes:
        raise MessageError(f"{enc} image step {step} < width {w} x {c * nbytes} bytes")
    data = np.frombuffer(memoryview(msg.data).cast("B"), dtype=np.uint8)
    if data.size < h * step:
        raise MessageError(f"{enc} image data holds {data.size} bytes, {w}x{h} with step {step} needs {h * step}")
    rows = data[: h * step].reshape(h, step)[:, : w * c * nbytes]
    if nbytes == 1:
        return rows.reshape(h, w, c), enc
    big = bool(getattr(msg, "is_bigendian", False))
    kind = "f" if enc == "32FC1" else "u"
    dtype = np.dtype(f"{'>' if big else '<'}{kind}{nbytes}")
    return rows.copy().view(dtype).reshape(h, w, c).astype(dtype.newbyteorder("=")), enc


def _to_rgb(arr: np.ndarray, enc: str) -> np.ndarray:
    if enc == "mono16":
        arr = (arr >> 8).astype(np.uint8)
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if enc.startswith("bgr"):
        arr = arr[..., [2, 1, 0, 3]] if arr.shape[2] == 4 else arr[..., ::-1]
    return np.ascontiguousarray(arr)


def decode_image(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/Image`` as ``uint8 [H, W, 3]`` RGB, or ``[H, W, 4]`` RGBA for ``rgba8``/``bgra8``.

    Raises:
        MessageError: unknown or depth encoding, data shorter than ``height * step``, ``step`` too small.
    """
    arr, enc = _raw_array(msg)
    if enc not in COLOR_ENCODINGS:
        raise MessageError(f"{enc!r} is a depth encoding, not a colour image (use it as --depth-topic)")
    return _to_rgb(arr, enc)


def decode_compressed_image(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage`` (JPEG or PNG) as ``uint8 [H, W, 3|4]`` RGB(A)."""
    fmt = str(getattr(msg, "format", "")).lower()
    data = bytes(memoryview(msg.data).cast("B"))
    if "compresseddepth" in fmt:
        raise MessageError(f"compressedDepth images ({msg.format!r}) are not supported; record raw depth")
    if data[:3] == b"\xff\xd8\xff":
        kind = "jpeg"
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        kind = "png"
    else:
        raise MessageError(f"compressed image (format {getattr(msg, 'format', '')!r}) is neither JPEG nor PNG")
    import imageio.v3 as iio

    try:
        img = np.asarray(iio.imread(io.BytesIO(data), extension=f".{'jpg' if kind == 'jpeg' else 'png'}"))
    except Exception as e:
        raise MessageError(f"cannot decode the {kind} image ({type(e).__name__}: {e})") from None
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] in (1, 2):  # grey (+ alpha)
        grey = np.repeat(img[..., :1], 3, axis=2)
        img = grey if img.shape[2] == 1 else np.concatenate([grey, img[..., 1:]], axis=2)
    return np.ascontiguousarray(img.astype(np.uint8))


def decode_depth(msg: Any) -> np.ndarray:
    """A depth ``sensor_msgs/Image`` as float32 ``[H, W]`` metres along the optical axis; 0 = no measurement.

    ``16UC1`` (and ``mono16``) are millimetres, ``32FC1`` metres; NaN, infinities and negative values become 0.
    """
    arr, enc = _raw_array(msg)
    if enc not in DEPTH_ENCODINGS:
        raise MessageError(f"depth topic has encoding {enc!r}; expected one of {', '.join(DEPTH_ENCODINGS)}")
    d = arr[..., 0].astype(np.float32) * np.float32(DEPTH_ENCODINGS[enc])
    d[~np.isfinite(d) | (d < 0)] = 0.0
    return d


# ----------------------------------------------------------------------------------------------------------
# cameras
# ----------------------------------------------------------------------------------------------------------


def _distort(model: str, d: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward distortion of normalised image coordinates (OpenCV's formulas)."""
    if model == "equidistant":
        r = np.hypot(x, y)
        th = np.arctan(r)
        th_d = th * (1 + d[0] * th**2 + d[1] * th**4 + d[2] * th**6 + d[3] * th**8)
        s = np.where(r > 1e-12, th_d / np.maximum(r, 1e-12), 1.0)
        return x * s, y * s
    k1, k2, p1, p2, k3, k4, k5, k6 = (list(d) + [0.0] * 8)[:8]
    r2 = x * x + y * y
    radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


@dataclass(frozen=True, eq=False)
class Undistorter:
    """Resamples images of a distorted camera to the pinhole camera with the same ``K`` (bilinear).

    Attributes:
        source_x, source_y: float32 ``[H, W]`` position in the distorted image of every output pixel centre.
    """

    source_x: np.ndarray
    source_y: np.ndarray

    @classmethod
    def create(cls, model: str, coeffs: np.ndarray, intrinsics: Intrinsics) -> Undistorter:
        k = intrinsics
        px, py = np.meshgrid(np.arange(k.width) + 0.5, np.arange(k.height) + 0.5)
        xd, yd = _distort(model, np.asarray(coeffs, np.float64), (px - k.cx) / k.fx, (py - k.cy) / k.fy)
        return cls((xd * k.fx + k.cx).astype(np.float32), (yd * k.fy + k.cy).astype(np.float32))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Resample ``image`` ``[H, W]`` or ``[H, W, C]``; pixels mapped outside the source become 0."""
        h, w = image.shape[:2]
        if (h, w) != self.source_x.shape:
            cw, ch = self.source_x.shape[1], self.source_x.shape[0]
            raise MessageError(f"image is {w}x{h}, its CameraInfo says {cw}x{ch}")
        x, y = self.source_x - 0.5, self.source_y - 0.5
        inside = (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)
        x0 = np.clip(np.floor(x), 0, w - 1).astype(np.int64)
        y0 = np.clip(np.floor(y), 0, h - 1).astype(np.int64)
        x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
        fx = np.clip(x - x0, 0.0, 1.0)
        fy = np.clip(y - y0, 0.0, 1.0)
        src = image.astype(np.float32)
        if src.ndim == 3:
            fx, fy, inside = fx[..., None], fy[..., None], inside[..., None]
        top = src[y0, x0] * (1 - fx) + src[y0, x1] * fx
        bottom = src[y1, x0] * (1 - fx) + src[y1, x1] * fx
        out = np.where(inside, top * (1 - fy) + bottom * fy, 0.0)
        if image.dtype == np.uint8:
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return out.astype(image.dtype)


@dataclass(frozen=True, eq=False)
class CameraModel:
    """A camera from a ``sensor_msgs/CameraInfo``.

    Attributes:
        intrinsics: the camera of the images handed to training (after ``undistort``, when set).
        undistort: resampler to apply to every image (and depth) first, or None when the model is expressible.
        distortion_model: the CameraInfo's model name.
        frame_id: the CameraInfo's ``header.frame_id``.
    """

    intrinsics: Intrinsics
    undistort: Undistorter | None
    distortion_model: str
    frame_id: str


def camera_from_info(msg: Any) -> CameraModel:
    """Intrinsics of a ``sensor_msgs/CameraInfo`` (``K``, ``D``, ``distortion_model``, binning, ROI).

    ``plumb_bob`` / ``rational_polynomial`` with only ``k1 k2 p1 p2`` non-zero become an ``OPENCV`` camera,
    ``equidistant`` an ``OPENCV_FISHEYE`` one; other coefficients are removed with an :class:`Undistorter`.

    Raises:
        MessageError: zero or non-finite ``K``, unknown model, wrong coefficient count, empty image size.
    """
    w, h = int(msg.width), int(msg.height)
    kmat = np.asarray(_field(msg, "k", "K"), np.float64).reshape(-1)
    d = np.asarray(_field(msg, "d", "D", default=[]), np.float64).reshape(-1)
    model = str(msg.distortion_model or ("plumb_bob" if d.size in (0, 5) else ""))
    if w <= 0 or h <= 0:
        raise MessageError(f"CameraInfo has image size {w}x{h}")
    if kmat.size != 9 or not np.all(np.isfinite(kmat)) or kmat[0] <= 0 or kmat[4] <= 0:
        raise MessageError(f"CameraInfo K must be 9 finite numbers with fx, fy > 0, got {kmat.tolist()}")
    if not np.all(np.isfinite(d)):
        raise MessageError(f"CameraInfo D has non-finite coefficients {d.tolist()}")
    fx, fy, cx, cy = kmat[0], kmat[4], kmat[2], kmat[5]
    bx, by = max(1, int(getattr(msg, "binning_x", 0) or 1)), max(1, int(getattr(msg, "binning_y", 0) or 1))
    roi = getattr(msg, "roi", None)
    if roi is not None and int(getattr(roi, "width", 0)) > 0 and int(getattr(roi, "height", 0)) > 0:
        cx, cy = cx - int(roi.x_offset), cy - int(roi.y_offset)
        w, h = int(roi.width), int(roi.height)
    fx, fy, cx, cy, w, h = fx / bx, fy / by, cx / bx, cy / by, w // bx, h // by
    # ROS's K has the principal point in pixel-index coordinates (first pixel centre at 0); ours puts it at 0.5
    base = dict(width=w, height=h, fx=fx, fy=fy, cx=cx + 0.5, cy=cy + 0.5)
    frame = str(getattr(getattr(msg, "header", None), "frame_id", "") or "")
    if model in ("plumb_bob", "rational_polynomial"):
        n = {"plumb_bob": (0, 4, 5), "rational_polynomial": (0, 4, 5, 8, 12, 14)}[model]
        if d.size not in n:
            raise MessageError(f"CameraInfo {model} needs {' or '.join(map(str, n[1:]))} coefficients, got {d.size}")
        if not np.any(d):
            return CameraModel(Intrinsics(**base), None, model, frame)
        if not np.any(d[4:]):
            return CameraModel(Intrinsics(**base, model="OPENCV", dist=tuple(d[:4])), None, model, frame)
        intr = Intrinsics(**base)
        return CameraModel(intr, Undistorter.create("radial", d, intr), model, frame)
    if model == "equidistant":
        if d.size != 4:
            raise MessageError(f"CameraInfo equidistant needs 4 coefficients, got {d.size}")
        return CameraModel(Intrinsics(**base, model="OPENCV_FISHEYE", dist=tuple(d)), None, model, frame)
    raise MessageError(f"CameraInfo distortion_model {model!r} is not supported "
                       f"(plumb_bob, rational_polynomial, equidistant)")


# ----------------------------------------------------------------------------------------------------------
# poses
# ----------------------------------------------------------------------------------------------------------


def quaternion_to_matrix(q: Any) -> np.ndarray:
    """Rotation matrix (float64 ``[3, 3]``) of a quaternion ``(x, y, z, w)`` (normalised first).

    Raises:
        MessageError: a non-finite or zero quaternion.
    """
    x, y, z, w = (float(v) for v in q)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not (math.isfinite(n) and n > 1e-9):
        raise MessageError(f"quaternion {(x, y, z, w)} is not a rotation")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _xyz(v: Any) -> list[float]:
    out = [float(v.x), float(v.y), float(v.z)]
    if not all(math.isfinite(c) for c in out):
        raise MessageError(f"non-finite vector {out}")
    return out


def transform_to_matrix(t: Any) -> np.ndarray:
    """A ``geometry_msgs/Transform`` (``translation``, ``rotation``) as a float64 ``[4, 4]`` matrix."""
    m = np.eye(4)
    m[:3, :3] = quaternion_to_matrix((t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w))
    m[:3, 3] = _xyz(t.translation)
    return m


def pose_message_to_matrix(msg: Any) -> tuple[np.ndarray, str, str]:
    """``(float64 [4, 4], parent frame, child frame)`` of a ``geometry_msgs/PoseStamped`` or
    ``nav_msgs/Odometry`` (``child`` is ``child_frame_id``, ``""`` for a PoseStamped)."""
    pose = msg.pose.pose if hasattr(msg, "child_frame_id") else msg.pose
    m = np.eye(4)
    o = pose.orientation
    m[:3, :3] = quaternion_to_matrix((o.x, o.y, o.z, o.w))
    m[:3, 3] = _xyz(pose.position)
    return m, str(msg.header.frame_id), str(getattr(msg, "child_frame_id", ""))


def optical_to_nerf(c2w: np.ndarray) -> np.ndarray:
    """Camera-to-world of a ROS optical frame (x right, y down, z forward) -> NeRF/OpenGL camera axes."""
    return np.asarray(c2w, np.float64) @ _OPTICAL_TO_NERF


def nerf_to_optical(c2w: np.ndarray) -> np.ndarray:
    """Inverse of :func:`optical_to_nerf`."""
    return np.asarray(c2w, np.float64) @ _OPTICAL_TO_NERF


def image_message_fields(rgb: np.ndarray, stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """Fields of a ``sensor_msgs/Image`` (``rgb8`` or ``rgba8``) holding ``rgb`` (uint8 ``[H, W, 3|4]``), for
    publishing a rendered view (``sensor_msgs.msg.Image(**fields)`` once ``header`` is built from ``stamp`` /
    ``frame_id``)."""
    a = np.ascontiguousarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4):
        raise MessageError(f"expected uint8 [H, W, 3|4], got {a.dtype} {a.shape}")
    h, w, c = a.shape
    return {"stamp": (int(stamp_ns) // 1_000_000_000, int(stamp_ns) % 1_000_000_000), "frame_id": str(frame_id),
            "height": h, "width": w, "encoding": "rgb8" if c == 3 else "rgba8", "is_bigendian": 0, "step": w * c,
            "data": a.tobytes()}
