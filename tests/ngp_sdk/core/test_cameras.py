"""Camera intrinsics and pose conventions (instant-ngp's nerf_matrix_to_ngp) checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import warp as wp

from ngp_sdk.core.cameras import (
    Intrinsics,
    focal_length_from_fov,
    nerf_matrix_to_ngp,
    nerf_position_to_ngp,
    ngp_position_to_nerf,
    ngp_to_nerf_matrix,
    opencv_to_opengl,
    opengl_to_opencv,
    pack_intrinsics,
)
from ngp_sdk.core.errors import DataError
from warp_kernels.rays import CAMERA_OPENCV, CAMERA_OPENCV_FISHEYE, CAMERA_PINHOLE, generate_rays


def _random_nerf_poses(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        out[i, :3, :3] = q * np.sign(np.linalg.det(q))
        out[i, :3, 3] = rng.normal(size=3) * 3
    return out


# ---------------------------------------------------------------------------------------------- poses


def test_nerf_to_ngp_known_camera_defaults():
    # NeRF camera at (0, 0, 3), identity rotation: it looks down -z (OpenGL) at the origin.
    m = np.eye(4)
    m[2, 3] = 3.0
    out = nerf_matrix_to_ngp(m)
    expected = np.array(
        [
            [0.0, -1.0, 0.0, 0.5],  # row 1 of [R diag(1,-1,-1) | 0.33 t + 0.5]
            [0.0, 0.0, -1.0, 0.5 + 0.99],  # row 2
            [1.0, 0.0, 0.0, 0.5],  # row 0
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    np.testing.assert_allclose(out, expected, atol=1e-12)
    # right (0,0,1), down (-1,0,0), forward (0,-1,0): the camera sits above the cube centre and looks down
    np.testing.assert_allclose(out[:3, 2], [0, -1, 0], atol=1e-12)


def test_nerf_to_ngp_known_camera_custom_scale_offset():
    # rotation by 90 degrees about z, t = (1, 2, 3), scale 0.5, offset (0.1, 0.2, 0.3) -- worked by hand:
    # negate columns 1, 2: [[0, 1, 0], [1, 0, 0], [0, 0, -1]]; t' = (0.6, 1.2, 1.8); rows cycled (1, 2, 0).
    m = np.array([[0.0, -1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 1.0, 3.0]])
    out = nerf_matrix_to_ngp(m, scale=0.5, offset=(0.1, 0.2, 0.3))
    expected = np.array([[1.0, 0.0, 0.0, 1.2], [0.0, 0.0, -1.0, 1.8], [0.0, 1.0, 0.0, 0.6]])
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    np.testing.assert_allclose(ngp_to_nerf_matrix(out, scale=0.5, offset=(0.1, 0.2, 0.3)), m, atol=1e-12)


def test_nerf_ngp_round_trip_batched_and_dtypes():
    poses = _random_nerf_poses(7)
    ngp = nerf_matrix_to_ngp(poses, scale=0.2, offset=(0.4, 0.5, 0.6))
    assert ngp.shape == (7, 4, 4) and ngp.dtype == np.float64
    np.testing.assert_allclose(ngp[:, 3], np.tile([0, 0, 0, 1.0], (7, 1)))
    np.testing.assert_allclose(ngp_to_nerf_matrix(ngp, scale=0.2, offset=(0.4, 0.5, 0.6)), poses, atol=1e-12)
    f32 = nerf_matrix_to_ngp(poses[:, :3].astype(np.float32))
    assert f32.dtype == np.float32 and f32.shape == (7, 3, 4)
    assert not np.shares_memory(nerf_matrix_to_ngp(poses), poses)


def test_pose_conversion_agrees_with_positions_and_view_directions():
    poses = _random_nerf_poses(5, seed=1)
    ngp = nerf_matrix_to_ngp(poses, scale=0.3, offset=(0.2, 0.5, 0.7))
    np.testing.assert_allclose(ngp[:, :3, 3], nerf_position_to_ngp(poses[:, :3, 3], 0.3, (0.2, 0.5, 0.7)))
    np.testing.assert_allclose(ngp_position_to_nerf(ngp[:, :3, 3], 0.3, (0.2, 0.5, 0.7)), poses[:, :3, 3])
    # the NeRF viewing direction -z_cam, with world axes cycled, is the internal forward column (+z_cam)
    view_nerf = -poses[:, :3, 2]
    np.testing.assert_allclose(ngp[:, :3, 2], view_nerf[:, [1, 2, 0]], atol=1e-12)
    # NeRF camera up (+y_cam) is internal "down" negated
    np.testing.assert_allclose(-ngp[:, :3, 1], poses[:, [1, 2, 0], 1], atol=1e-12)


def test_opencv_opengl_flip_is_an_involution():
    poses = _random_nerf_poses(3, seed=2)
    cv = opengl_to_opencv(poses)
    np.testing.assert_allclose(cv[:, :3, 0], poses[:, :3, 0])
    np.testing.assert_allclose(cv[:, :3, 1:3], -poses[:, :3, 1:3])
    np.testing.assert_allclose(cv[:, :, 3], poses[:, :, 3])
    np.testing.assert_allclose(opencv_to_opengl(cv), poses)


@pytest.mark.parametrize("shape", [(4,), (3, 3), (2, 4, 3)])
def test_pose_shape_errors(shape):
    with pytest.raises(DataError):
        nerf_matrix_to_ngp(np.zeros(shape))


def test_centre_pixel_ray_of_converted_camera_hits_cube_centre(device):
    # the NeRF camera of the first test, through generate_rays: its centre pixel looks at (0.5, 0.5, 0.5)
    m = np.eye(4)
    m[2, 3] = 3.0
    c2w = nerf_matrix_to_ngp(m)[None, :3].astype(np.float32)
    intr = Intrinsics.from_fov(width=64, height=48, angle_x=0.8)
    params, dist, model = pack_intrinsics([intr])
    o, d = generate_rays(
        wp.array(c2w, dtype=wp.float32, device=device),
        wp.array(params, dtype=wp.float32, device=device),
        wp.array(dist, dtype=wp.float32, device=device),
        wp.array(model, dtype=wp.int32, device=device),
        0,
        wp.array(np.array([[32.0, 24.0], [63.5, 24.0]], np.float32), dtype=wp.float32, device=device),
    )
    o, d = o.numpy(), d.numpy()
    np.testing.assert_allclose(o[0] + 0.99 * d[0], [0.5, 0.5, 0.5], atol=1e-6)
    # the right edge of the image is towards camera "right" = internal +z (NeRF +x)
    assert d[1, 2] > 0.3


# ---------------------------------------------------------------------------------------------- intrinsics


def test_intrinsics_normalise_and_pack():
    a = Intrinsics(
        width=1080.0,
        height=1920,
        fx=1375.52,
        fy=1374.49,
        cx=554.558,
        cy=965.268,
        model="OPENCV",
        dist=(0.0578421, -0.0805099, -0.000980296, 0.00015575),
    )
    assert a.width == 1080 and isinstance(a.width, int)
    b = Intrinsics(width=10, height=8, fx=5, fy=5, cx=5, cy=4, model="OPENCV_FISHEYE", dist=(0.1,))
    assert b.dist == (0.1, 0.0, 0.0, 0.0)
    p = Intrinsics(width=10, height=8, fx=5, fy=6, cx=5, cy=4)
    params, dist, model = pack_intrinsics([a, b, p])
    assert params.dtype == np.float32 and params.shape == (3, 4)
    np.testing.assert_allclose(params[0], [1375.52, 1374.49, 554.558, 965.268], rtol=1e-7)
    np.testing.assert_allclose(dist[1], [0.1, 0, 0, 0], rtol=1e-7)
    assert (
        model.tolist() == [CAMERA_OPENCV, CAMERA_OPENCV_FISHEYE, CAMERA_PINHOLE] and model.dtype == np.int32
    )


def test_intrinsics_scaled():
    a = Intrinsics(
        width=1081, height=1920, fx=1000, fy=1100, cx=540.5, cy=960, model="OPENCV", dist=(0.1, 0, 0, 0)
    )
    s = a.scaled(4)
    assert (s.width, s.height) == (270, 480)  # floored
    assert (s.fx, s.fy, s.cx, s.cy) == (250.0, 275.0, 135.125, 240.0)
    assert s.dist == a.dist and s.model == "OPENCV"
    assert a.scaled(1) == a
    with pytest.raises(DataError):
        a.scaled(0)
    with pytest.raises(DataError):
        a.scaled(5000)


def test_from_fov_and_fov_properties():
    lego = Intrinsics.from_fov(width=800, height=800, angle_x=0.6911112070083618)
    assert lego.fx == pytest.approx(1111.1110311937682, rel=1e-9) and lego.fy == lego.fx
    assert (lego.cx, lego.cy) == (400.0, 400.0)
    assert lego.fov_x == pytest.approx(0.6911112070083618)
    assert focal_length_from_fov(100, math.pi / 2) == pytest.approx(50.0)
    with pytest.raises(DataError):
        focal_length_from_fov(100, 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(fx=0.0),
        dict(fy=-1.0),
        dict(fx=float("nan")),
        dict(cx=float("inf")),
        dict(width=0),
        dict(height=10.5),
        dict(width=True),
        dict(model="FISHEYE624"),
        dict(dist=(0.1, 0, 0, 0)),  # pinhole with distortion
        dict(model="OPENCV", dist=(0.1, 0, 0, 0, 0.2)),
        dict(model="OPENCV", dist=(0.1, float("nan"), 0, 0)),
        dict(fx="12"),
    ],
)
def test_intrinsics_validation(kwargs):
    base = dict(width=10, height=8, fx=5.0, fy=5.0, cx=5.0, cy=4.0)
    with pytest.raises(DataError):
        Intrinsics(**{**base, **kwargs})
