"""Live NeRF: frames added while the background thread trains; ring and keyframe replacement; snapshots."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from ngp_sdk import Session
from ngp_sdk.core.cameras import Intrinsics
from ngp_sdk.core.errors import ConfigError, DataError
from tests.ngp_sdk.nerf.synthetic_nerf import CAMERA_ANGLE_X, camera_positions, look_at_nerf, render_sphere
from tests.ngp_sdk.nerf.test_nerf_task import TINY

SIZE = 32
FOCAL = 0.5 * SIZE / math.tan(0.5 * CAMERA_ANGLE_X)
INTR = Intrinsics(width=SIZE, height=SIZE, fx=FOCAL, fy=FOCAL, cx=SIZE / 2, cy=SIZE / 2)


def _wait(pred, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_frames_added_while_training_and_loss_decreases(device):
    s = Session.live_nerf(TINY, capacity=12, min_frames=3, device=device)
    assert not s.task.ready() and s.task.frame_count == 0
    losses: list[float] = []
    s.start()
    try:
        assert s.status()["state"] in ("waiting", "training") and s.status()["frame_count"] == 0
        poses = [look_at_nerf(p) for p in camera_positions(24, 3.0, 0)]

        def feed():
            for i, m in enumerate(poses):
                assert s.task.add_frame(render_sphere(m, SIZE), m, INTR) == i
                time.sleep(0.03)

        t = threading.Thread(target=feed)
        t.start()
        _wait(lambda: s.step_count >= 5)
        first = s.status()["loss"]
        t.join(30)
        _wait(lambda: s.step_count >= 200)
        losses = [first, s.status()["loss"]]
        st = s.status()
    finally:
        s.stop()
    assert st["frame_count"] == 12 and st["frames_added"] == 24 and st["error"] is None
    assert losses[1] < 0.5 * losses[0]
    # the ring kept the 12 newest frames: slot i holds frame 12 + i
    np.testing.assert_allclose(s.task._slot_nerf[:12], np.stack(poses[12:]), atol=1e-12)
    img = s.task.render_world(poses[-1], INTR)  # a kept training view, rendered in the NeRF world frame
    gt = render_sphere(poses[-1], SIZE)
    hit = gt[..., 3] > 0
    assert np.abs(img.rgb[hit] - gt[..., :3][hit] / 255.0).mean() < 0.2


def test_keyframes_keep_distinct_poses(device):
    s = Session.live_nerf(TINY, capacity=4, policy="keyframes", device=device)
    centres = [(3.0, 0.0, 0.0), (2.95, 0.0, 0.5), (-3.0, 0.0, 0.0), (0.0, 3.0, 0.0)]  # frames 0 and 1 are close
    poses = [look_at_nerf(np.array(c)) for c in centres]
    for i, m in enumerate(poses):
        assert s.task.add_frame(render_sphere(m, SIZE), m, INTR) == i
    near = look_at_nerf(np.array([-3.0, 0.05, 0.0]))  # almost frame 2: redundant, discarded
    assert s.task.add_frame(render_sphere(near, SIZE), near, INTR) == -1
    assert s.task.status()["frames_discarded"] == 1
    new = look_at_nerf(np.array([0.0, -3.0, 0.0]))  # far from all: replaces one frame of the closest pair
    assert s.task.add_frame(render_sphere(new, SIZE), new, INTR) == 4
    assert s.task.frame_count == 4
    kept = s.task._slot_nerf
    assert any(np.allclose(p, new) for p in kept)
    assert sum(any(np.allclose(p, q) for p in kept) for q in poses[:2]) == 1
    assert all(any(np.allclose(p, q) for p in kept) for q in poses[2:])
    s.step()  # trains on the uploaded frames


def test_bad_frames_and_options_raise(device, tmp_path):
    with pytest.raises(ConfigError, match="policy"):
        Session.live_nerf(TINY, policy="lru", device=device)
    with pytest.raises(ConfigError, match="min_frames"):
        Session.live_nerf(TINY, capacity=2, min_frames=3, device=device)
    s = Session.live_nerf(TINY, capacity=4, device=device)
    with pytest.raises(DataError, match="no frames"):
        s.step()
    m = look_at_nerf(np.array([0.0, 3.0, 0.0]))
    s.task.add_frame(render_sphere(m, SIZE)[..., :3], m, INTR)  # RGB scene
    with pytest.raises(DataError, match="RGB"):
        s.task.add_frame(render_sphere(m, SIZE), m, INTR)
    with pytest.raises(DataError, match="larger"):
        big = Intrinsics(width=64, height=64, fx=FOCAL, fy=FOCAL, cx=32, cy=32)
        s.task.add_frame(np.zeros((64, 64, 3), np.uint8), m, big)
    with pytest.raises(DataError, match="intrinsics"):
        s.task.add_frame(np.zeros((16, 16, 3), np.uint8), m, INTR)
    small = Intrinsics(width=16, height=16, fx=FOCAL / 2, fy=FOCAL / 2, cx=8, cy=8)
    assert s.task.add_frame(np.zeros((16, 16, 3), np.uint8), m, small) == 1  # smaller frames share the buffer
    for _ in range(3):
        s.step()
    path = s.save(tmp_path / "live.ingp")
    restored = Session.load(path, device=device)
    assert restored.task.scene.n_cameras == 2 and restored.step_count == 3
    live = Session.live_nerf_from_snapshot(path, capacity=8, device=device)
    assert live.step_count == 3 and live.task.frame_count == 0 and live.task.capacity == 8
