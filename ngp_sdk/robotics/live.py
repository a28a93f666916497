"""Live ROS messages -> posed frames, without ROS: the logic of ``samples/ros2_node.py``, testable anywhere.

:class:`LiveFrameAssembler` takes messages as a subscriber receives them (``/tf``, ``/tf_static``, CameraInfo,
images) and turns each image into a :class:`~ngp_sdk.robotics.frames.PosedFrame` once the TF data covers its
stamp -- the conversions of the bag importer (:mod:`ngp_sdk.robotics.messages`, :class:`~ngp_sdk.robotics.tf.TfBuffer`)
applied online. Images whose pose is not known yet wait (at most ``max_wait_ns``); TF older than ``keep_ns``
is dropped so a node runs for days in bounded memory.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ngp_sdk.robotics.frames import PosedFrame, camera_name, default_camera_info_topic
from ngp_sdk.robotics.messages import (
    CameraModel,
    camera_from_info,
    decode_compressed_image,
    decode_image,
    header_stamp_ns,
    optical_to_nerf,
)
from ngp_sdk.robotics.tf import TfBuffer, TfError

__all__ = ["LiveFrameAssembler"]


class LiveFrameAssembler:
    """Posed frames from live messages.

    Args:
        image_topics: image topics (one camera each); their CameraInfo topics are ``camera_info`` beside them
            unless ``camera_info_topics`` says otherwise.
        world_frame: frame the poses are expressed in.
        camera_frame: optical frame of the camera(s); None = each image's ``header.frame_id``.
        max_wait_ns: how long an image may wait for TF covering its stamp before it is dropped.
        keep_ns: TF history kept.
    """

    def __init__(self, image_topics: list[str], *, camera_info_topics: list[str] | None = None,
                 world_frame: str = "map", camera_frame: str | None = None, max_wait_ns: int = 500_000_000,
                 keep_ns: int = 30_000_000_000):
        infos = camera_info_topics or [default_camera_info_topic(t) for t in image_topics]
        self.info_topic = dict(zip(image_topics, infos, strict=True))
        self.names = {t: camera_name(t) for t in image_topics}
        self.world_frame, self.camera_frame = world_frame, camera_frame
        self.max_wait_ns, self.keep_ns = int(max_wait_ns), int(keep_ns)
        self.tf = TfBuffer()
        self.models: dict[str, CameraModel] = {}
        self._waiting: deque[tuple[str, Any, int]] = deque()
        self._index = 0
        #: optical frame id of every camera seen (camera name -> frame)
        self.frame_ids: dict[str, str] = {}
        self.dropped = {"no_camera_info": 0, "no_tf": 0}

    def on_tf(self, msg: Any, *, static: bool = False) -> list[PosedFrame]:
        """A ``tf2_msgs/TFMessage``; returns the waiting frames it completes."""
        self.tf.add_message(msg, static=static)
        return self._flush()

    def on_camera_info(self, topic: str, msg: Any) -> None:
        """A ``sensor_msgs/CameraInfo`` on ``topic`` (the latest one is used)."""
        self.models[topic] = camera_from_info(msg)

    def on_image(self, topic: str, msg: Any, *, compressed: bool = False) -> list[PosedFrame]:
        """An image (or ``compressed`` image) on ``topic``; returns the frames ready now (maybe this one)."""
        self._waiting.append((topic, msg, int(compressed)))
        return self._flush()

    def _flush(self) -> list[PosedFrame]:
        ready, keep = [], deque()
        newest = None
        while self._waiting:
            topic, msg, compressed = self._waiting.popleft()
            stamp = header_stamp_ns(msg)
            newest = stamp if newest is None else max(newest, stamp)
            model = self.models.get(self.info_topic.get(topic, ""))
            if model is None:
                self.dropped["no_camera_info"] += 1
                continue
            frame_id = self.camera_frame or str(msg.header.frame_id).lstrip("/")
            try:
                c2w = optical_to_nerf(self.tf.lookup(self.world_frame, frame_id, stamp))
            except TfError:
                keep.append((topic, msg, compressed))
                continue
            image = decode_compressed_image(msg) if compressed else decode_image(msg)
            if model.undistort is not None:
                image = model.undistort(image)
            name = self.names.get(topic, camera_name(topic))
            self.frame_ids[name] = frame_id
            ready.append(PosedFrame(camera=name, index=self._index,
                                    stamp_ns=stamp, image=image, intrinsics=model.intrinsics, c2w=c2w))
            self._index += 1
        horizon = None if newest is None else newest - self.max_wait_ns
        for item in keep:
            if horizon is not None and header_stamp_ns(item[1]) < horizon:
                self.dropped["no_tf"] += 1
            else:
                self._waiting.append(item)
        if newest is not None:
            self.tf.prune(newest - self.keep_ns)
        return ready
