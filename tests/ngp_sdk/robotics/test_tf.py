"""The TF buffer: chains, slerp + lerp at stamps between samples, and the errors a user gets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from ngp_sdk.robotics.tf import TfBuffer, TfError, slerp

S = 1_000_000_000


def _m(rotvec, t) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    m[:3, 3] = t
    return m


def test_slerp_matches_scipy():
    rng = np.random.default_rng(1)
    for _ in range(50):
        r = Rotation.random(2, random_state=rng)
        u = float(rng.uniform())
        ours = Rotation.from_quat(slerp(r[0].as_quat(), r[1].as_quat(), u))
        ref = Slerp([0, 1], r)([u])[0]
        assert (ours.inv() * ref).magnitude() < 1e-9


def test_interpolation_is_exact_for_constant_velocity_motion_and_chains_compose():
    """map -> base_link turns at a constant rate about z and moves linearly (slerp + lerp reproduce it exactly
    between samples); base_link -> camera is static; the lookup at stamps between samples equals the analytic
    pose."""
    tf = TfBuffer()
    static = _m([0.3, -0.2, 0.1], [0.1, 0.0, 0.2])
    tf.set_transform("base_link", "camera", 0, static, static=True)
    body = lambda t: _m([0, 0, 0.4 * t], [1.0 + 0.5 * t, -0.2 * t, 0.3])  # noqa: E731
    for k in range(31):
        t = k / 30.0
        tf.set_transform("map", "base_link", int(t * S), body(t))
    for t in (0.0123, 0.5, 0.777, 1.0):
        got = tf.lookup("map", "camera", int(round(t * S)))
        assert np.allclose(got, body(t) @ static, atol=1e-9)
    # the inverse direction and a common ancestor that is neither frame
    assert np.allclose(tf.lookup("camera", "map", S // 2), np.linalg.inv(body(0.5) @ static), atol=1e-9)
    tf.set_transform("base_link", "lidar", 0, _m([0, 0.1, 0], [0, 0, 0.5]), static=True)
    got = tf.lookup("lidar", "camera", S // 3)
    assert np.allclose(got, np.linalg.inv(_m([0, 0.1, 0], [0, 0, 0.5])) @ static)
    assert tf.time_range("map", "camera") == (0, S)


def test_samples_out_of_order_are_sorted():
    tf = TfBuffer()
    for k in (3, 0, 2, 1):
        tf.set_transform("map", "b", k * S // 10, _m([0, 0, k * 0.1], [k, 0, 0]))
    assert np.allclose(tf.lookup("map", "b", S // 20)[:3, 3], (0.5, 0, 0))


def test_errors_name_frames_and_stamps():
    tf = TfBuffer(max_gap_ns=S // 2)
    for t in (0, S // 10, 2 * S):  # a 1.9 s gap
        tf.set_transform("map", "base_link", t, _m([0, 0, 0], [0, 0, 0]))
    tf.set_transform("odom", "wheel", 0, np.eye(4), static=True)
    with pytest.raises(TfError, match=r"outside the TF data for map -> base_link \(0.000 s .. 2.000 s"):
        tf.lookup("map", "base_link", 3 * S)
    with pytest.raises(TfError, match="falls in a gap of 1.900 s"):
        tf.lookup("map", "base_link", S)
    with pytest.raises(TfError, match="'camera' is not in the TF data"):
        tf.lookup("map", "camera", 0)
    with pytest.raises(TfError, match="not connected"):
        tf.lookup("map", "wheel", 0)
    with pytest.raises(TfError, match="two parents"):
        tf.set_transform("odom", "base_link", 0, np.eye(4))
