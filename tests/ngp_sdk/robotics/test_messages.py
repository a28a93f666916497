"""ROS message conversions (no ROS): every image encoding, depth, compressed images, CameraInfo models, poses."""

from __future__ import annotations

import io
from types import SimpleNamespace as NS

import imageio.v3 as iio
import numpy as np
import pytest

from ngp_sdk.core.camera_path import matrix_to_quaternion
from ngp_sdk.robotics.messages import (
    MessageError,
    camera_from_info,
    decode_compressed_image,
    decode_depth,
    decode_image,
    image_message_fields,
    nerf_to_optical,
    optical_to_nerf,
    pose_message_to_matrix,
    quaternion_to_matrix,
    stamp_to_ns,
)

RNG = np.random.default_rng(0)


def _image(arr: np.ndarray, encoding: str, pad: int = 0, big: bool = False) -> NS:
    h, w = arr.shape[:2]
    a = arr.astype(arr.dtype.newbyteorder(">" if big else "<"))
    rows = a.reshape(h, -1).view(np.uint8)
    data = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1)
    return NS(height=h, width=w, encoding=encoding, is_bigendian=int(big), step=data.shape[1], data=data.reshape(-1))


@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_decode_to_rgb(pad):
    rgba = RNG.integers(0, 256, (7, 9, 4), dtype=np.uint8)
    rgb = rgba[..., :3]
    assert np.array_equal(decode_image(_image(rgb, "rgb8", pad)), rgb)
    assert np.array_equal(decode_image(_image(rgb[..., ::-1].copy(), "bgr8", pad)), rgb)
    assert np.array_equal(decode_image(_image(rgba, "rgba8", pad)), rgba)
    assert np.array_equal(decode_image(_image(rgba[..., [2, 1, 0, 3]].copy(), "bgra8", pad)), rgba)
    grey = rgb[..., :1].copy()
    assert np.array_equal(decode_image(_image(grey, "mono8", pad)), np.repeat(grey, 3, axis=2))
    g16 = (grey.astype(np.uint16) << 8) | 0x7F
    for big in (False, True):
        assert np.array_equal(decode_image(_image(g16, "mono16", pad, big)), np.repeat(grey, 3, axis=2))


def test_depth_encodings_are_metres_and_invalid_values_are_zero():
    mm = RNG.integers(0, 10000, (5, 6, 1)).astype(np.uint16)
    for big in (False, True):
        d = decode_depth(_image(mm, "16UC1", 3, big))
        assert d.dtype == np.float32 and np.allclose(d, mm[..., 0] / 1000.0)
    m = RNG.uniform(0.1, 5, (5, 6, 1)).astype(np.float32)
    m[0, 0], m[1, 1], m[2, 2] = np.nan, np.inf, -1.0
    d = decode_depth(_image(m, "32FC1"))
    assert d[0, 0] == 0 and d[1, 1] == 0 and d[2, 2] == 0
    assert np.allclose(d[3:], m[3:, :, 0])


@pytest.mark.parametrize("msg, match", [
    (lambda: _image(np.zeros((2, 2, 3), np.uint8), "yuv422"), "unsupported image encoding 'yuv422'"),
    (lambda: _image(np.zeros((2, 2, 1), np.uint16), "16UC1"), "depth encoding"),
    (lambda: NS(height=4, width=4, encoding="rgb8", step=12, data=np.zeros(20, np.uint8)), "holds 20 bytes"),
    (lambda: NS(height=4, width=4, encoding="rgb8", step=8, data=np.zeros(64, np.uint8)), "step 8"),
])
def test_bad_images_raise_clear_errors(msg, match):
    with pytest.raises(MessageError, match=match):
        decode_image(msg())


def test_compressed_jpeg_png_and_garbage():
    rgb = RNG.integers(0, 256, (16, 12, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, RNG.integers(0, 256, (16, 12), dtype=np.uint8)])
    yy, xx = np.mgrid[0:16, 0:12]
    smooth = np.stack([xx * 20, yy * 15, 255 - xx * 10], axis=-1).astype(np.uint8)
    for arr, fmt, ext in ((rgb, "png", ".png"), (rgba, "png", ".png"), (smooth, "bgr8; jpeg compressed bgr8", ".jpg")):
        buf = io.BytesIO()
        iio.imwrite(buf, arr, extension=ext)
        out = decode_compressed_image(NS(format=fmt, data=np.frombuffer(buf.getvalue(), np.uint8)))
        assert out.shape == arr.shape
        if ext == ".png":
            assert np.array_equal(out, arr)
        else:
            assert np.abs(out.astype(int) - arr).mean() < 6  # lossy, but RGB order and layout kept
    with pytest.raises(MessageError, match="neither JPEG nor PNG"):
        decode_compressed_image(NS(format="jpeg", data=np.zeros(10, np.uint8)))


def _info(model="plumb_bob", d=(), w=64, h=48, k=(50.0, 0, 31.5, 0, 52.0, 23.5, 0, 0, 1), **extra):
    return NS(width=w, height=h, k=list(k), d=list(d), distortion_model=model, binning_x=0, binning_y=0,
              roi=NS(x_offset=0, y_offset=0, width=0, height=0), header=NS(frame_id="cam"), **extra)


def test_camera_info_models():
    c = camera_from_info(_info())
    assert c.intrinsics.model == "PINHOLE" and c.undistort is None
    # ROS's principal point counts the first pixel centre as 0; ours as 0.5
    assert (c.intrinsics.cx, c.intrinsics.cy, c.intrinsics.fx, c.intrinsics.fy) == (32.0, 24.0, 50.0, 52.0)
    c = camera_from_info(_info(d=(0.1, -0.02, 0.001, 0.002, 0.0)))
    assert c.intrinsics.model == "OPENCV" and c.intrinsics.dist == (0.1, -0.02, 0.001, 0.002) and c.undistort is None
    c = camera_from_info(_info("equidistant", d=(0.1, 0.01, 0.0, 0.001)))
    assert c.intrinsics.model == "OPENCV_FISHEYE" and c.undistort is None
    c = camera_from_info(_info(d=(0.1, -0.02, 0.0, 0.0, 0.05)))
    assert c.intrinsics.model == "PINHOLE" and c.undistort is not None
    c = camera_from_info(_info("rational_polynomial", d=(0.1, 0.0, 0.0, 0.0, 0.0, 0.2, 0.0, 0.0)))
    assert c.undistort is not None
    # ROS 1 spellings, binning halves the camera
    ros1 = NS(width=64, height=48, K=[50.0, 0, 31.5, 0, 52.0, 23.5, 0, 0, 1], D=[], distortion_model="plumb_bob",
              binning_x=2, binning_y=2, roi=NS(x_offset=0, y_offset=0, width=0, height=0), header=NS(frame_id="c"))
    k = camera_from_info(ros1).intrinsics
    assert (k.width, k.height, k.fx, k.cx) == (32, 24, 25.0, 15.75 + 0.5)


@pytest.mark.parametrize("info, match", [
    (_info(k=(0.0,) * 9), "fx, fy > 0"),
    (_info("unknown_model"), "not supported"),
    (_info(d=(0.1, 0.2, 0.3)), "needs 4 or 5"),
    (_info(d=(np.nan, 0, 0, 0, 0)), "non-finite"),
    (_info(w=0), "image size"),
])
def test_bad_camera_info(info, match):
    with pytest.raises(MessageError, match=match):
        camera_from_info(info)


def test_undistortion_maps_a_distorted_image_onto_the_pinhole_one():
    """A smooth pattern painted in the pinhole image, seen through plumb_bob with k3 (each distorted pixel
    looks up the pinhole pattern at its undistorted position, by float64 fixed-point iteration), undistorted
    again: equals the pattern away from the border."""
    info = _info(d=(0.08, -0.03, 0.001, -0.0015, 0.02))
    cam = camera_from_info(info)
    k = cam.intrinsics
    pattern = lambda x, y: 127.5 + 120 * np.sin(x / 5.0) * np.cos(y / 7.0)  # noqa: E731
    py, px = np.mgrid[0:k.height, 0:k.width] + 0.5
    xd, yd = (px - k.cx) / k.fx, (py - k.cy) / k.fy
    x, y = xd.copy(), yd.copy()
    k1, k2, p1, p2, k3 = info.d
    for _ in range(50):  # invert the distortion (float64 reference)
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        dx, dy = 2 * p1 * x * y + p2 * (r2 + 2 * x * x), p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x, y = (xd - dx) / radial, (yd - dy) / radial
    distorted = pattern(x * k.fx + k.cx, y * k.fy + k.cy).astype(np.float32)
    out = cam.undistort(distorted)
    ref = pattern(px, py)
    inner = (slice(6, -6), slice(6, -6))
    assert np.abs(out[inner] - ref[inner]).max() < 1.5  # bilinear resampling of a smooth pattern


def test_quaternions_poses_and_axes():
    for _ in range(20):
        q = RNG.normal(size=4)
        q /= np.linalg.norm(q)
        r = quaternion_to_matrix(q)
        assert np.allclose(r.T @ r, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)
        q2 = matrix_to_quaternion(r)
        assert np.allclose(q2, q if q[3] >= 0 else -q)
    with pytest.raises(MessageError):
        quaternion_to_matrix((0, 0, 0, 0))
    odom = NS(header=NS(frame_id="odom"), child_frame_id="base_link",
              pose=NS(pose=NS(position=NS(x=1.0, y=2.0, z=3.0), orientation=NS(x=0.0, y=0.0, z=0.0, w=1.0))))
    m, parent, child = pose_message_to_matrix(odom)
    assert (parent, child) == ("odom", "base_link") and np.allclose(m[:3, 3], (1, 2, 3))
    # an optical camera looking along world +x (z forward) is a NeRF camera whose -z points along +x
    opt = np.eye(4)
    opt[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]]).T.T
    gl = optical_to_nerf(opt)
    assert np.allclose(-gl[:3, 2], opt[:3, 2]) and np.allclose(gl[:3, 1], -opt[:3, 1])
    assert np.allclose(nerf_to_optical(gl), opt)
    assert stamp_to_ns(NS(sec=3, nanosec=7)) == 3_000_000_007 and stamp_to_ns(NS(secs=1, nsecs=2)) == 1_000_000_002


def test_rendered_view_message_round_trips():
    rgb = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    f = image_message_fields(rgb, 12_000_000_005, "camera_optical_frame")
    assert f["stamp"] == (12, 5) and f["encoding"] == "rgb8" and f["step"] == 21
    msg = NS(**{k: v for k, v in f.items() if k not in ("stamp", "frame_id")})
    msg.data = np.frombuffer(msg.data, np.uint8)
    assert np.array_equal(decode_image(msg), rgb)
