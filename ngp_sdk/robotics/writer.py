"""Writing ROS bags with ``rosbags``' writers: ROS 1 ``.bag``, ROS 2 sqlite3 or MCAP, no ROS installation.

:class:`BagWriter` builds the messages an importer reads (images raw or compressed, depth, CameraInfo, TF,
PoseStamped, Odometry) from arrays, so recordings can be made in code: tests, benchmarks, and exporting renders
or datasets for ROS tools. Stamps are nanoseconds; the log time of a message is its header stamp unless given.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from ngp_sdk.core.camera_path import matrix_to_quaternion
from ngp_sdk.core.cameras import Intrinsics
from ngp_sdk.core.errors import ConfigError

__all__ = ["BagWriter", "BAG_FORMATS", "BASE_TO_OPTICAL", "write_capture"]

#: ``format`` values of :class:`BagWriter`.
BAG_FORMATS = ("ros1", "sqlite3", "mcap")


class BagWriter:
    """Write one bag; use as a context manager.

    Args:
        path: ``.bag`` file (``ros1``) or bag folder (``sqlite3``, ``mcap``); must not exist.
        format: one of :data:`BAG_FORMATS`.
    """

    def __init__(self, path: str | os.PathLike, format: str = "mcap"):
        from rosbags.typesys import Stores, get_typestore

        if format not in BAG_FORMATS:
            raise ConfigError(f"unknown bag format {format!r}; expected one of {BAG_FORMATS}")
        self.path, self.format = Path(path), format
        if format == "ros1":
            from rosbags.rosbag1 import Writer

            self.typestore = get_typestore(Stores.ROS1_NOETIC)
            if "tf2_msgs/msg/TFMessage" not in self.typestore.types:  # not in rosbags' noetic store: tf2_msgs/TFMessage
                from rosbags.typesys import get_types_from_msg

                self.typestore.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms",
                                                           "tf2_msgs/msg/TFMessage"))
            self._writer = Writer(self.path)
            self._serialize = self.typestore.serialize_ros1
        else:
            from rosbags.rosbag2 import StoragePlugin, Writer

            self.typestore = get_typestore(Stores.ROS2_HUMBLE)
            plugin = StoragePlugin.MCAP if format == "mcap" else StoragePlugin.SQLITE3
            self._writer = Writer(self.path, version=9, storage_plugin=plugin)
            self._serialize = self.typestore.serialize_cdr
        self._connections: dict[str, Any] = {}
        self._seq = 0

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._writer.close()

    # -- building blocks -----------------------------------------------------------------------------------
    def _t(self, name: str):
        return self.typestore.types[name]

    def _header(self, stamp_ns: int, frame_id: str):
        time = self._t("builtin_interfaces/msg/Time")(sec=int(stamp_ns) // 1_000_000_000,
                                                      nanosec=int(stamp_ns) % 1_000_000_000)
        extra = {}
        if self.format == "ros1":
            extra["seq"] = self._seq
            self._seq += 1
        return self._t("std_msgs/msg/Header")(stamp=time, frame_id=frame_id, **extra)

    def write(self, topic: str, msgtype: str, msg: Any, log_time_ns: int) -> None:
        """Serialise ``msg`` onto ``topic`` (connection created on first use)."""
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
        self._writer.write(conn, int(log_time_ns), self._serialize(msg, msgtype))

    def _matrix_transform(self, m: np.ndarray):
        m = np.asarray(m, np.float64)
        q = matrix_to_quaternion(m[:3, :3])
        vec = self._t("geometry_msgs/msg/Vector3")(x=float(m[0, 3]), y=float(m[1, 3]), z=float(m[2, 3]))
        quat = self._t("geometry_msgs/msg/Quaternion")(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))
        return vec, quat

    # -- messages --------------------------------------------------------------------------------------------
    def write_image(self, topic: str, stamp_ns: int, image: np.ndarray, *, frame_id: str, encoding: str = "rgb8",
                    log_time_ns: int | None = None) -> None:
        """A ``sensor_msgs/Image``: ``image`` is ``[H, W, C]`` in the channel order and sample type of
        ``encoding`` (``rgb8 bgr8 rgba8 bgra8 mono8`` uint8, ``mono16 16UC1`` uint16, ``32FC1`` float32)."""
        a = np.ascontiguousarray(image)
        h, w = a.shape[:2]
        data = a.astype(a.dtype.newbyteorder("<")).tobytes()
        msg = self._t("sensor_msgs/msg/Image")(header=self._header(stamp_ns, frame_id), height=h, width=w,
                                              encoding=encoding, is_bigendian=0, step=len(data) // h,
                                              data=np.frombuffer(data, np.uint8))
        self.write(topic, "sensor_msgs/msg/Image", msg, stamp_ns if log_time_ns is None else log_time_ns)

    def write_compressed(self, topic: str, stamp_ns: int, rgb: np.ndarray, *, frame_id: str, format: str = "jpeg",
                         log_time_ns: int | None = None) -> None:
        """A ``sensor_msgs/CompressedImage`` (``format`` ``jpeg`` or ``png``) of uint8 RGB(A) ``rgb``."""
        import imageio.v3 as iio

        buf = io.BytesIO()
        iio.imwrite(buf, np.asarray(rgb), extension=".jpg" if format == "jpeg" else ".png")
        msg = self._t("sensor_msgs/msg/CompressedImage")(header=self._header(stamp_ns, frame_id), format=format,
                                                        data=np.frombuffer(buf.getvalue(), np.uint8))
        self.write(topic, "sensor_msgs/msg/CompressedImage", msg, stamp_ns if log_time_ns is None else log_time_ns)

    def write_camera_info(self, topic: str, stamp_ns: int, intrinsics: Intrinsics, *, frame_id: str,
                          distortion_model: str | None = None, d: list[float] | None = None) -> None:
        """A ``sensor_msgs/CameraInfo`` of ``intrinsics`` (``K`` with ROS's pixel-index principal point); the
        distortion defaults to the intrinsics' own (``plumb_bob`` / ``equidistant``)."""
        k = intrinsics
        cx, cy = k.cx - 0.5, k.cy - 0.5
        if distortion_model is None:
            distortion_model = "equidistant" if k.model == "OPENCV_FISHEYE" else "plumb_bob"
            d = list(k.dist) if k.model == "OPENCV_FISHEYE" else [*k.dist, 0.0]
        kmat = np.array([k.fx, 0, cx, 0, k.fy, cy, 0, 0, 1], np.float64)
        pmat = np.array([k.fx, 0, cx, 0, 0, k.fy, cy, 0, 0, 0, 1, 0], np.float64)
        roi = self._t("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        names = ("D", "K", "R", "P") if self.format == "ros1" else ("d", "k", "r", "p")
        fields = dict(zip(names, (np.asarray(d or [], np.float64), kmat, np.eye(3).reshape(-1), pmat), strict=True))
        msg = self._t("sensor_msgs/msg/CameraInfo")(header=self._header(stamp_ns, frame_id), height=k.height,
                                                   width=k.width, distortion_model=distortion_model, binning_x=0,
                                                   binning_y=0, roi=roi, **fields)
        self.write(topic, "sensor_msgs/msg/CameraInfo", msg, stamp_ns)

    def write_tf(self, stamp_ns: int, transforms: list[tuple[str, str, np.ndarray]], *, static: bool = False,
                 log_time_ns: int | None = None) -> None:
        """A ``tf2_msgs/TFMessage`` on ``/tf`` (or ``/tf_static``): ``(parent, child, T_parent_child [4, 4])``."""
        msgs = []
        for parent, child, m in transforms:
            vec, quat = self._matrix_transform(m)
            tr = self._t("geometry_msgs/msg/Transform")(translation=vec, rotation=quat)
            msgs.append(self._t("geometry_msgs/msg/TransformStamped")(header=self._header(stamp_ns, parent),
                                                                     child_frame_id=child, transform=tr))
        msg = self._t("tf2_msgs/msg/TFMessage")(transforms=msgs)
        self.write("/tf_static" if static else "/tf", "tf2_msgs/msg/TFMessage", msg,
                   stamp_ns if log_time_ns is None else log_time_ns)

    def _pose(self, m: np.ndarray):
        vec, quat = self._matrix_transform(m)
        point = self._t("geometry_msgs/msg/Point")(x=vec.x, y=vec.y, z=vec.z)
        return self._t("geometry_msgs/msg/Pose")(position=point, orientation=quat)

    def write_pose(self, topic: str, stamp_ns: int, matrix: np.ndarray, *, frame_id: str) -> None:
        """A ``geometry_msgs/PoseStamped``."""
        msg = self._t("geometry_msgs/msg/PoseStamped")(header=self._header(stamp_ns, frame_id), pose=self._pose(matrix))
        self.write(topic, "geometry_msgs/msg/PoseStamped", msg, stamp_ns)

    def write_odometry(self, topic: str, stamp_ns: int, matrix: np.ndarray, *, frame_id: str,
                       child_frame_id: str) -> None:
        """A ``nav_msgs/Odometry`` (zero twist and covariances)."""
        cov = np.zeros(36, np.float64)
        pwc = self._t("geometry_msgs/msg/PoseWithCovariance")(pose=self._pose(matrix), covariance=cov)
        zero = self._t("geometry_msgs/msg/Vector3")(x=0.0, y=0.0, z=0.0)
        twist = self._t("geometry_msgs/msg/Twist")(linear=zero, angular=zero)
        twc = self._t("geometry_msgs/msg/TwistWithCovariance")(twist=twist, covariance=cov)
        msg = self._t("nav_msgs/msg/Odometry")(header=self._header(stamp_ns, frame_id), child_frame_id=child_frame_id,
                                              pose=pwc, twist=twc)
        self.write(topic, "nav_msgs/msg/Odometry", msg, stamp_ns)


#: ``T_base_link_camera_optical_frame`` of :func:`write_capture`: a camera 10 cm ahead of and 20 cm above the
#: body origin, looking along the body's ``+x`` (REP 103 body: x forward, y left, z up).
BASE_TO_OPTICAL = np.array([[0.0, 0.0, 1.0, 0.1], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.2], [0.0, 0.0, 0.0, 1.0]])


def _blend(a: np.ndarray, b: np.ndarray, u: float) -> np.ndarray:
    from ngp_sdk.robotics.messages import quaternion_to_matrix
    from ngp_sdk.robotics.tf import slerp

    m = np.eye(4)
    m[:3, :3] = quaternion_to_matrix(slerp(matrix_to_quaternion(a[:3, :3]), matrix_to_quaternion(b[:3, :3]), u))
    m[:3, 3] = (1 - u) * a[:3, 3] + u * b[:3, 3]
    return m


def write_capture(path: str | os.PathLike, images: list[np.ndarray], c2w: np.ndarray, intrinsics: Intrinsics, *,
                  format: str = "mcap", image_rate: float = 5.0, tf_rate: float = 30.0,
                  start_ns: int = 1_700_000_000_000_000_000,
                  encoding: str | None = None, compressed: str | None = None, depth: list[np.ndarray] | None = None,
                  image_topic: str = "/camera/image_raw", world_frame: str = "map") -> dict[str, Any]:
    """A robot's capture of posed images as a bag: images at ``image_rate``, ``/tf`` ``world -> base_link`` at
    ``tf_rate`` with stamps not aligned to the images, a static ``base_link -> camera_optical_frame``
    (:data:`BASE_TO_OPTICAL`), ``CameraInfo`` with every image, and optional depth on ``/camera/depth`` (``16UC1``
    millimetres).

    The body stops for each picture (stop-and-shoot): it holds the pose of image ``i`` for 40% of the image
    period on either side of the image stamp and moves between poses by slerp + lerp, so TF interpolated at an
    image stamp gives that image's pose exactly, from TF samples that never coincide with it.

    Args:
        images: uint8 ``[H, W, 3|4]`` per frame (RGBA written as ``rgba8``, unless ``encoding`` says otherwise).
        c2w: ``[n, 4, 4]`` camera-to-world, NeRF/OpenGL camera axes, world units.
        intrinsics: the camera of every image.
        compressed: ``"jpeg"`` or ``"png"`` to write ``sensor_msgs/CompressedImage`` on ``<image_topic>/compressed``.

    Returns:
        ``{"image_topic", "camera_info_topic", "depth_topic", "image_stamps_ns", "tf_stamps_ns"}``.
    """
    from ngp_sdk.robotics.messages import nerf_to_optical

    c2w = np.asarray(c2w, np.float64)
    n = len(images)
    period = int(round(1e9 / image_rate))
    hold = int(0.4 * period)
    stamps = [start_ns + i * period + 13_700_000 for i in range(n)]  # 13.7 ms off any TF sample
    body = [nerf_to_optical(c2w[i]) @ np.linalg.inv(BASE_TO_OPTICAL) for i in range(n)]

    def body_at(t: int) -> np.ndarray:
        i = int(np.clip(np.searchsorted(stamps, t) - 1, 0, n - 1))
        if t <= stamps[i] + hold or i == n - 1:  # before the first image, holding, or after the last
            return body[i]
        u = (t - stamps[i] - hold) / (stamps[i + 1] - stamps[i] - 2 * hold)
        return _blend(body[i], body[i + 1], float(np.clip(u, 0.0, 1.0)))

    info_topic = image_topic.rsplit("/", 1)[0] + "/camera_info"
    depth_topic = image_topic.rsplit("/", 1)[0] + "/depth" if depth is not None else None
    tf_period = 1e9 / tf_rate
    n_tf = int((stamps[-1] + 2 * hold - start_ns) / tf_period) + 2
    tf_stamps = [int(start_ns - hold + k * tf_period) for k in range(n_tf)]
    events: list[tuple[int, int, Any]] = [(t, 0, None) for t in tf_stamps] + [(t, 1, i) for i, t in enumerate(stamps)]
    events.sort(key=lambda e: (e[0], e[1]))
    with BagWriter(path, format) as w:
        w.write_tf(start_ns - hold, [("base_link", "camera_optical_frame", BASE_TO_OPTICAL)], static=True)
        for t, kind, i in events:
            if kind == 0:
                w.write_tf(t, [(world_frame, "base_link", body_at(t))])
                continue
            img = np.asarray(images[i])
            w.write_camera_info(info_topic, t, intrinsics, frame_id="camera_optical_frame")
            if compressed:
                w.write_compressed(image_topic + "/compressed", t, img, frame_id="camera_optical_frame",
                                   format=compressed)
            else:
                enc = encoding or ("rgba8" if img.shape[-1] == 4 else "rgb8")
                w.write_image(image_topic, t, img, frame_id="camera_optical_frame", encoding=enc)
            if depth is not None:
                mm = np.clip(np.rint(np.asarray(depth[i]) * 1000.0), 0, 65535).astype(np.uint16)
                w.write_image(depth_topic, t, mm[..., None], frame_id="camera_optical_frame", encoding="16UC1")
    return {"image_topic": image_topic + ("/compressed" if compressed else ""), "camera_info_topic": info_topic,
            "depth_topic": depth_topic, "image_stamps_ns": stamps, "tf_stamps_ns": tf_stamps}
