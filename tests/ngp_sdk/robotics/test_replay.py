"""Replay: a bag streamed into a live session through the bridge, in process and as ``ngp serve --replay``."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from bridges.client import NgpClient
from bridges.replay import replay_bag
from bridges.server import NgpServer
from ngp_sdk.robotics import FrameOptions
from ngp_sdk.robotics.writer import write_capture

pytest.importorskip("rosbags")


def test_replay_configures_and_streams_every_frame_with_its_camera_id(tmp_path, scene_capture):
    images, poses, intr = scene_capture
    info = write_capture(tmp_path / "b", images, poses, intr)
    with NgpServer(None, bind="tcp://127.0.0.1:*", frames_bind=None, views_bind=None, device="cpu") as server:
        stats = replay_bag(tmp_path / "b", server.endpoint, FrameOptions(image_topics=(info["image_topic"],)),
                           rate=0, capacity=16)
        assert stats.done and stats.frames_sent == len(images) == stats.frames_kept
        with NgpClient(server.endpoint, timeout_s=60) as c:
            st = c.status()
            assert st["frame_count"] == len(images) and st["camera_frames"] == {"camera": len(images)}
        task = server.session.task
        # the frames arrived with the poses of the recording, in the session's scene box
        assert np.allclose(task._slot_nerf[: len(images)], poses, atol=1e-6)
        assert task.scene.aabb_scale == 1 and abs(task.scene.offset[0] - 0.5) < 0.02


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_replay_from_the_command_line(tmp_path, scene_capture):
    images, poses, intr = scene_capture
    info = write_capture(tmp_path / "b", images, poses, intr, image_rate=20.0)
    eps = [f"tcp://127.0.0.1:{_free_port()}" for _ in range(3)]
    cmd = [sys.executable, "-m", "ngp_sdk.cli", "--device", "cpu", "serve", "--bind", eps[0], "--frames-bind", eps[1],
           "--views-bind", eps[2], "--replay", str(tmp_path / "b"), "--image-topic", info["image_topic"]]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        count = 0
        with NgpClient(eps[0], timeout_s=5) as c:
            while time.monotonic() < deadline and count < len(images):
                try:
                    count = c.status()["frame_count"]
                except TimeoutError:
                    pass
                time.sleep(0.2)
        assert count == len(images)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=60)[0]
    assert "replay of" in out and f"{len(images)} frames" in out


def test_serve_replay_of_a_bad_bag_keeps_serving(tmp_path):
    (tmp_path / "bad.bag").write_bytes(b"#ROSBAG V2.0\n" + b"\0" * 100)
    eps = [f"tcp://127.0.0.1:{_free_port()}" for _ in range(3)]
    cmd = [sys.executable, "-m", "ngp_sdk.cli", "--device", "cpu", "serve", "--bind", eps[0], "--frames-bind", eps[1],
           "--views-bind", eps[2], "--replay", str(tmp_path / "bad.bag"), "--image-topic", "/camera/image_raw"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with NgpClient(eps[0], timeout_s=5) as c:
            assert c.wait_for_server(120)["protocol"] == 2
    finally:
        proc.terminate()
        out = proc.communicate(timeout=60)[0]
    assert "replay failed: BagError: cannot read bag" in out
