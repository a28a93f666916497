"""Posed camera frames out of a bag: images + CameraInfo + TF (or a pose topic) + depth, selected and converted.

This is the one conversion path from a recording to training frames; :mod:`ngp_sdk.robotics.importer` writes
its frames to a dataset, :mod:`ngp_sdk.robotics.replay` streams them into a live session over the bridge.

Two passes over the bag:

1. *Metadata*: ``/tf`` and ``/tf_static`` (or the ``pose_topic``) into a :class:`~ngp_sdk.robotics.tf.TfBuffer`,
   the first ``CameraInfo`` of every camera, the stamps of every image and depth message.
2. *Frames*: the images chosen from the stamps (``every``, ``max_frames``), decoded, undistorted when the
   CameraInfo model needs it, checked for blur (variance of the Laplacian against the running median of that
   camera), posed at their header stamp, dropped when the camera moved less than ``min_translation`` and
   ``min_rotation_deg`` since its last kept frame, and paired with the depth image of the nearest stamp.

Each image topic is one camera (a rig: several topics, each with its CameraInfo, posed through TF from a common
body frame). Its CameraInfo topic defaults to ``camera_info`` beside the image topic, as image_transport names
them (``/cam0/image_raw`` and ``/cam0/image_raw/compressed`` -> ``/cam0/camera_info``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ngp_sdk.core.cameras import Intrinsics
from ngp_sdk.core.errors import ConfigError
from ngp_sdk.robotics.bag import CAMERA_INFO_TYPE, IMAGE_TYPES, POSE_TYPES, TF_TYPE, Bag, BagError
from ngp_sdk.robotics.messages import (
    CameraModel,
    camera_from_info,
    decode_compressed_image,
    decode_depth,
    decode_image,
    header_stamp_ns,
    optical_to_nerf,
    pose_message_to_matrix,
)
from ngp_sdk.robotics.tf import TfBuffer

__all__ = ["FrameOptions", "PosedFrame", "BagFrames", "default_camera_info_topic", "camera_name", "laplacian_variance"]

#: Depth and colour stamps further apart than this are not paired.
DEPTH_PAIR_TOLERANCE_NS = 20_000_000
#: Blur rejection: a frame whose sharpness is below this fraction of its camera's running median is dropped.
BLUR_FRACTION = 0.6
#: Number of recent sharpness values the running median is taken over.
BLUR_WINDOW = 15


@dataclass(frozen=True, kw_only=True)
class FrameOptions:
    """What to take from a bag (the options of ``ngp import rosbag``).

    Attributes:
        image_topics: one topic per camera (``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage``).
        camera_info_topics: a ``sensor_msgs/CameraInfo`` topic per image topic, in the same order; empty =
            ``camera_info`` beside each image topic.
        depth_topic: a depth image topic registered to the *first* camera (``16UC1`` mm or ``32FC1`` m), or None.
        world_frame: TF frame the poses are expressed in.
        camera_frame: TF frame of the cameras' optical frame; None = each image's ``header.frame_id``.
        pose_topic: a ``geometry_msgs/PoseStamped`` or ``nav_msgs/Odometry`` topic giving the pose of its
            ``child_frame_id`` (PoseStamped: of the camera frame) in its ``header.frame_id``, used instead of
            ``/tf`` (``/tf_static`` still connects frames).
        every: keep every ``every``-th image of each camera.
        max_frames: at most this many frames (evenly spaced over the recording), or None.
        blur_reject: drop blurred frames.
        min_translation: metres a camera must move since its last kept frame ...
        min_rotation_deg: ... or degrees it must turn, for a frame to be kept.
        max_tf_gap_s: longest gap in a TF series that poses are interpolated across.
    """

    image_topics: tuple[str, ...]
    camera_info_topics: tuple[str, ...] = ()
    depth_topic: str | None = None
    world_frame: str = "map"
    camera_frame: str | None = None
    pose_topic: str | None = None
    every: int = 1
    max_frames: int | None = None
    blur_reject: bool = False
    min_translation: float = 0.0
    min_rotation_deg: float = 0.0
    max_tf_gap_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.image_topics:
            raise ConfigError("at least one image topic is needed (--image-topic)")
        if self.camera_info_topics and len(self.camera_info_topics) != len(self.image_topics):
            raise ConfigError(f"{len(self.camera_info_topics)} --camera-info-topic for {len(self.image_topics)} "
                              f"--image-topic: give one per image topic, in the same order, or none")
        if self.every < 1:
            raise ConfigError(f"--every must be >= 1, got {self.every}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"--max-frames must be >= 1, got {self.max_frames}")
        if not (self.min_translation >= 0 and self.min_rotation_deg >= 0 and self.max_tf_gap_s > 0):
            raise ConfigError("minimum motion must be >= 0 and the TF gap > 0")

    def info_topics(self) -> tuple[str, ...]:
        return self.camera_info_topics or tuple(default_camera_info_topic(t) for t in self.image_topics)


@dataclass(frozen=True, kw_only=True, eq=False)
class PosedFrame:
    """One training frame.

    Attributes:
        camera: camera name (from its image topic).
        index: the frame's number among the kept frames of the whole bag.
        stamp_ns: the image's header stamp.
        image: uint8 ``[H, W, 3|4]`` RGB(A).
        intrinsics: the camera of ``image``.
        c2w: float64 ``[4, 4]`` camera-to-world in the world frame, NeRF/OpenGL camera axes, world units.
        depth: float32 ``[H, W]`` metres along the optical axis (0 = none), or None.
    """

    camera: str
    index: int
    stamp_ns: int
    image: np.ndarray
    intrinsics: Intrinsics
    c2w: np.ndarray
    depth: np.ndarray | None = None


def default_camera_info_topic(image_topic: str) -> str:
    """``/ns/image_raw[/compressed]`` -> ``/ns/camera_info`` (image_transport's layout)."""
    parts = image_topic.rstrip("/").split("/")
    if parts[-1] in ("compressed", "theora", "compressedDepth"):
        parts = parts[:-1]
    return "/".join(parts[:-1] + ["camera_info"])


def camera_name(image_topic: str) -> str:
    """A short file-system-safe name of a camera: its image topic's namespace (``/cam0/image_raw`` -> ``cam0``)."""
    parts = [p for p in image_topic.split("/") if p and p not in ("compressed", "image_raw", "image", "image_rect",
                                                                  "image_rect_color", "image_color")]
    name = "_".join(parts) or "camera"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def laplacian_variance(image: np.ndarray) -> float:
    """Sharpness: variance of the 4-neighbour Laplacian of the grey image (0..255 scale)."""
    g = image[..., :3].astype(np.float32).mean(axis=2) if image.ndim == 3 else image.astype(np.float32)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var()) if lap.size else 0.0


@dataclass
class _Camera:
    name: str
    topic: str
    info_topic: str
    model: CameraModel | None = None
    frame_id: str | None = None
    stamps: list[int] = field(default_factory=list)  # header stamps of every image, in bag order
    sharpness: list[float] = field(default_factory=list)
    last_kept: np.ndarray | None = None


def _rotation_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


class BagFrames:
    """The posed frames of a bag (see the module docstring); iterate it, or call :meth:`poses` first for the scene.

    Raises:
        BagError: a topic is missing or of the wrong type, a camera has no CameraInfo, an image encoding is
            unknown; :class:`~ngp_sdk.robotics.tf.TfError` when an image stamp has no TF.
    """

    def __init__(self, bag: Bag, options: FrameOptions):
        self.bag, self.options = bag, options
        topics = bag.topics
        pairs = zip(options.image_topics, options.info_topics(), strict=True)
        self.cameras = [_Camera(camera_name(t), t, i) for t, i in pairs]
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            for k, c in enumerate(self.cameras):
                c.name = f"cam{k}_{c.name}"
        for c in self.cameras:
            bag.require(c.topic, IMAGE_TYPES, what="image")
            if c.info_topic not in topics:
                raise BagError(f"CameraInfo absent: no topic {c.info_topic} for images on {c.topic}; record "
                               f"the camera's camera_info or name it with --camera-info-topic")
            bag.require(c.info_topic, CAMERA_INFO_TYPE, what="camera info")
        if options.depth_topic:
            bag.require(options.depth_topic, ("sensor_msgs/msg/Image",), what="depth")
        self.tf = TfBuffer(max_gap_ns=int(options.max_tf_gap_s * 1e9))
        self._depth_stamps: list[int] = []
        self.rejected = {"every": 0, "max_frames": 0, "blur": 0, "motion": 0}
        self._scan()

    # -- pass 1 --------------------------------------------------------------------------------------------
    def _scan(self) -> None:
        o, topics = self.options, self.bag.topics
        by_topic = {c.topic: c for c in self.cameras}
        by_info = {c.info_topic: c for c in self.cameras}
        tf_topics = [t for t in ("/tf", "/tf_static", "tf", "tf_static") if topics.get(t) == TF_TYPE]
        if o.pose_topic:
            self.bag.require(o.pose_topic, POSE_TYPES, what="pose")
            tf_topics = [t for t in tf_topics if t.endswith("tf_static")]
        elif not tf_topics:
            raise BagError(f"bag {self.bag.path} has no /tf or /tf_static topic; give the camera poses with "
                           f"--pose-topic (PoseStamped or Odometry)")
        wanted = [*tf_topics, *by_info, *by_topic, *([o.pose_topic] if o.pose_topic else []),
                  *([o.depth_topic] if o.depth_topic else [])]
        pose_msgs = []
        for m in self.bag.messages(wanted):
            if m.topic in tf_topics:
                self.tf.add_message(m.msg, static=m.topic.endswith("static"))
            elif m.topic in by_info:
                cam = by_info[m.topic]
                if cam.model is None:
                    cam.model = camera_from_info(m.msg)
            elif m.topic in by_topic:
                cam = by_topic[m.topic]
                cam.stamps.append(header_stamp_ns(m.msg) or m.log_time_ns)
                if cam.frame_id is None:
                    cam.frame_id = o.camera_frame or str(m.msg.header.frame_id).lstrip("/")
            elif m.topic == o.pose_topic:
                pose_msgs.append(m.msg)
            else:
                self._depth_stamps.append(header_stamp_ns(m.msg) or m.log_time_ns)
        for c in self.cameras:
            if c.model is None:
                raise BagError(f"CameraInfo absent: topic {c.info_topic} has no messages (camera {c.topic})")
            if not c.stamps:
                raise BagError(f"image topic {c.topic} has no messages")
            if not c.frame_id:
                raise BagError(f"images on {c.topic} have an empty header.frame_id; name the camera's optical frame "
                               f"with --camera-frame")
        for msg in pose_msgs:
            m, parent, child = pose_message_to_matrix(msg)
            child = child or self.cameras[0].frame_id
            self.tf.set_transform(parent or o.world_frame, child, header_stamp_ns(msg), m)
        self._depth_stamps.sort()
        self._chosen = self._choose()

    def _choose(self) -> dict[str, set[int]]:
        """Per camera, the positions (in its image stream) that ``every`` and ``max_frames`` keep."""
        o = self.options
        chosen = {}
        candidates = []
        for c in self.cameras:
            idx = list(range(0, len(c.stamps), o.every))
            self.rejected["every"] += len(c.stamps) - len(idx)
            candidates += [(c.stamps[i], c.name, i) for i in idx]
        candidates.sort()
        if o.max_frames is not None and len(candidates) > o.max_frames:
            pick = np.unique(np.round(np.linspace(0, len(candidates) - 1, o.max_frames)).astype(int))
            self.rejected["max_frames"] += len(candidates) - len(pick)
            candidates = [candidates[i] for i in pick]
        for c in self.cameras:
            chosen[c.name] = {i for _, n, i in candidates if n == c.name}
        return chosen

    @property
    def n_candidates(self) -> int:
        """Frames left after ``every`` / ``max_frames`` (blur and motion may still drop some)."""
        return sum(len(v) for v in self._chosen.values())

    def pose(self, camera: _Camera, stamp_ns: int) -> np.ndarray:
        """Camera-to-world (NeRF axes) of ``camera`` at ``stamp_ns``; raises TfError without TF there."""
        return optical_to_nerf(self.tf.lookup(self.options.world_frame, camera.frame_id, stamp_ns))

    def poses(self) -> np.ndarray:
        """float64 ``[n, 4, 4]`` poses of every candidate frame (for the scene box), without decoding images."""
        out = [self.pose(c, c.stamps[i]) for c in self.cameras for i in sorted(self._chosen[c.name])]
        return np.stack(out)

    def _depth_match(self, stamp: int) -> int | None:
        s = self._depth_stamps
        if not s:
            return None
        j = int(np.searchsorted(s, stamp))
        near = min((abs(s[k] - stamp), s[k]) for k in (j - 1, j) if 0 <= k < len(s))
        return near[1] if near[0] <= DEPTH_PAIR_TOLERANCE_NS else None

    # -- pass 2 --------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[PosedFrame]:
        o = self.options
        by_topic = {c.topic: c for c in self.cameras}
        seen = {c.name: 0 for c in self.cameras}
        first = self.cameras[0]
        depth_wanted = ({self._depth_match(first.stamps[i]) for i in self._chosen[first.name]}
                        if o.depth_topic else set())
        depth: dict[int, np.ndarray] = {}
        waiting: list[PosedFrame] = []  # frames of the first camera whose depth has not arrived yet
        index = 0
        topics = [*by_topic, *([o.depth_topic] if o.depth_topic else [])]
        for m in self.bag.messages(topics):
            if m.topic == o.depth_topic:
                stamp = header_stamp_ns(m.msg) or m.log_time_ns
                if stamp in depth_wanted:
                    d = decode_depth(m.msg)
                    depth[stamp] = d if first.model.undistort is None else first.model.undistort(d)
            else:
                cam = by_topic[m.topic]
                pos = seen[cam.name]
                seen[cam.name] += 1
                if pos not in self._chosen[cam.name]:
                    continue
                frame = self._frame(cam, m, index)
                if frame is None:
                    continue
                index += 1
                match = self._depth_match(frame.stamp_ns) if (cam is first and o.depth_topic) else None
                if match is None:
                    yield frame
                    continue
                waiting.append((frame, match))
            ready = [w for w in waiting if w[1] in depth]
            for w in ready:
                waiting.remove(w)
                yield _with_depth(w[0], depth.pop(w[1]))
        for frame, _ in waiting:  # cannot happen unless the bag ends inside a message pair
            yield frame

    def _frame(self, cam: _Camera, m, index: int) -> PosedFrame | None:
        o = self.options
        stamp = header_stamp_ns(m.msg) or m.log_time_ns
        c2w = self.pose(cam, stamp)
        if cam.last_kept is not None and (o.min_translation > 0 or o.min_rotation_deg > 0):
            moved = float(np.linalg.norm(c2w[:3, 3] - cam.last_kept[:3, 3]))
            turned = _rotation_deg(c2w, cam.last_kept)
            if moved < o.min_translation and turned < o.min_rotation_deg:
                self.rejected["motion"] += 1
                return None
        image = decode_compressed_image(m.msg) if m.msgtype.endswith("CompressedImage") else decode_image(m.msg)
        k = cam.model.intrinsics
        if image.shape[:2] != (k.height, k.width):
            raise BagError(f"an image on {cam.topic} is {image.shape[1]}x{image.shape[0]} but its CameraInfo "
                           f"({cam.info_topic}) says {k.width}x{k.height}")
        if o.blur_reject:
            score = laplacian_variance(image)
            recent = cam.sharpness[-BLUR_WINDOW:]
            cam.sharpness.append(score)
            if len(recent) >= 3 and score < BLUR_FRACTION * float(np.median(recent)):
                self.rejected["blur"] += 1
                return None
        if cam.model.undistort is not None:
            image = cam.model.undistort(image)
        cam.last_kept = c2w
        return PosedFrame(camera=cam.name, index=index, stamp_ns=stamp, image=image, intrinsics=k, c2w=c2w)


def _with_depth(frame: PosedFrame, depth: np.ndarray) -> PosedFrame:
    if depth.shape != frame.image.shape[:2]:
        raise BagError(f"depth image is {depth.shape[1]}x{depth.shape[0]} but camera {frame.camera}'s images are "
                       f"{frame.image.shape[1]}x{frame.image.shape[0]}; the depth must be registered to it")
    return PosedFrame(camera=frame.camera, index=frame.index, stamp_ns=frame.stamp_ns, image=frame.image,
                      intrinsics=frame.intrinsics, c2w=frame.c2w, depth=depth)

