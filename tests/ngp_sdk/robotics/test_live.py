"""The ROS 2 node's logic without ROS: live messages in arrival order -> the importer's posed frames."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest

from ngp_sdk.robotics.live import LiveFrameAssembler

pytest.importorskip("rosbags")

from ngp_sdk.robotics.bag import Bag  # noqa: E402
from ngp_sdk.robotics.writer import write_capture  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


def test_messages_in_arrival_order_give_the_recorded_poses(tmp_path, scene_capture):
    images, poses, intr = scene_capture
    info = write_capture(tmp_path / "b", images, poses, intr)
    live = LiveFrameAssembler([info["image_topic"]])
    frames = []
    with Bag(tmp_path / "b") as bag:
        for m in bag.messages(bag.topics):
            if m.topic in ("/tf", "/tf_static"):
                frames += live.on_tf(m.msg, static=m.topic == "/tf_static")
            elif m.topic == info["camera_info_topic"]:
                live.on_camera_info(m.topic, m.msg)
            else:
                frames += live.on_image(m.topic, m.msg)
    # every image arrives before the TF sample after it: it waits, then completes
    assert len(frames) == len(images)
    for f, ref_pose, ref_img in zip(frames, poses, images, strict=True):
        assert np.abs(f.c2w - ref_pose).max() < 1e-6 and np.array_equal(f.image, ref_img)
    assert live.frame_ids == {"camera": "camera_optical_frame"}


def _tf(stamp_ns: int, x: float) -> NS:
    t = NS(header=NS(frame_id="map", stamp=NS(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)), child_frame_id="cam",
           transform=NS(translation=NS(x=x, y=0.0, z=0.0), rotation=NS(x=0.0, y=0.0, z=0.0, w=1.0)))
    return NS(transforms=[t])


def _img(stamp_ns: int) -> NS:
    return NS(header=NS(frame_id="cam", stamp=NS(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)), height=2,
              width=2, encoding="mono8", step=2, is_bigendian=0, data=np.arange(4, dtype=np.uint8))


def test_images_wait_for_tf_are_dropped_when_it_never_comes_and_tf_is_pruned():
    live = LiveFrameAssembler(["/cam/image_raw"], max_wait_ns=10**9, keep_ns=5 * 10**9)
    assert live.on_image("/cam/image_raw", _img(10**9)) == []  # no CameraInfo yet: dropped
    assert live.dropped["no_camera_info"] == 1
    live.on_camera_info("/cam/camera_info", NS(width=2, height=2, k=[2.0, 0, 0.5, 0, 2.0, 0.5, 0, 0, 1], d=[],
                                               distortion_model="plumb_bob", header=NS(frame_id="cam")))
    live.on_tf(_tf(0, 0.0))
    assert live.on_image("/cam/image_raw", _img(10**9 // 2)) == []  # TF ends at 0 s: waits
    out = live.on_tf(_tf(10**9, 2.0))
    assert len(out) == 1 and np.isclose(out[0].c2w[0, 3], 1.0)  # lerp between 0 m and 2 m at 0.5 s
    assert live.on_image("/cam/image_raw", _img(3 * 10**9)) == []
    live.on_image("/cam/image_raw", _img(5 * 10**9))  # 2 s later: the 3 s image waited too long
    assert live.dropped["no_tf"] == 1
    for k in range(3, 30):
        live.on_tf(_tf(k * 10**9, float(k)))
    live.on_image("/cam/image_raw", _img(29 * 10**9))
    assert len(live.tf._edges["cam"].stamps) <= 7  # 5 s of history at 1 Hz, plus one before it


def test_the_ros2_node_sample_is_valid_python_and_documented():
    src = (ROOT / "samples" / "ros2_node.py").read_text()
    tree = ast.parse(src)
    doc = ast.get_docstring(tree)
    assert "rclpy" in doc and "image_topics" in doc and "~/rendered" in doc
