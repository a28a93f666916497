"""Ray generation: pinhole rays by hand, distorted rays vs the float64 reference, round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import warp as wp
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import rays_ref as ref
from warp_kernels.device import DeviceMismatchError, KernelArgumentError
from warp_kernels.rays import (
    CAMERA_OPENCV,
    CAMERA_OPENCV_FISHEYE,
    CAMERA_PINHOLE,
    generate_rays,
    make_pixel_centers,
)

# fox's camera (instant-ngp data/nerf/fox): 1080x1920, OpenCV k1 k2 p1 p2
FOX_PARAMS = (1375.52, 1374.49, 554.558, 965.268)
FOX_DIST = (0.0578421, -0.0805099, -0.000980296, 0.00015575)
FOX_SIZE = (1080, 1920)
# a wide fisheye (about 200 degrees over the image diagonal): 1000x800, f = 300
FISH_PARAMS = (300.0, 301.0, 497.0, 405.0)
FISH_DIST = (0.05, -0.01, 0.002, -0.0005)
FISH_SIZE = (1000, 800)


def _rotation(axis, angle: float) -> np.ndarray:
    a = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _c2w(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 3, 4))
    for i in range(n):
        out[i, :, :3] = _rotation(rng.normal(size=3), rng.uniform(0, math.pi))
        out[i, :, 3] = rng.uniform(-1, 2, size=3)
    return out


def _arrays(device, c2w, params, dist, models):
    return (
        wp.array(np.asarray(c2w, np.float32), dtype=wp.float32, device=device),
        wp.array(np.asarray(params, np.float32).reshape(-1, 4), dtype=wp.float32, device=device),
        wp.array(np.asarray(dist, np.float32).reshape(-1, 4), dtype=wp.float32, device=device),
        wp.array(np.asarray(models, np.int32).reshape(-1), dtype=wp.int32, device=device),
    )


def _run(device, c2w, params, dist, models, cam_index, pixels):
    cams = _arrays(device, c2w, params, dist, models)
    idx = (
        cam_index if isinstance(cam_index, int) else wp.array(np.asarray(cam_index, np.int32), device=device)
    )
    px = wp.array(np.asarray(pixels, np.float32), dtype=wp.float32, device=device)
    o, d = generate_rays(*cams, idx, px)
    return o.numpy().astype(np.float64), d.numpy().astype(np.float64)


def _uniform_pixels(rng, n, size, margin=0.0):
    w, h = size
    return np.stack([rng.uniform(margin, w - margin, n), rng.uniform(margin, h - margin, n)], axis=1)


def test_pixel_centers_row_major(device):
    px = make_pixel_centers(3, 2, device=device).numpy()
    expected = [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [0.5, 1.5], [1.5, 1.5], [2.5, 1.5]]
    np.testing.assert_array_equal(px, expected)
    with pytest.raises(KernelArgumentError):
        make_pixel_centers(0, 4, device=device)


def test_pinhole_rays_at_known_pixels(device):
    # camera at (1, 2, 3) whose axes are right = +y, down = -z, forward = -x (a proper rotation)
    c2w = np.array([[[0, 0, -1, 1], [1, 0, 0, 2], [0, -1, 0, 3]]], np.float64)
    fx, fy, cx, cy = 100.0, 50.0, 40.0, 30.0
    pixels = np.array([[40.0, 30.0], [140.0, 30.0], [40.0, 80.0], [0.5, 0.5]])
    o, d = _run(device, c2w, [fx, fy, cx, cy], [0, 0, 0, 0], [CAMERA_PINHOLE], 0, pixels)
    np.testing.assert_allclose(o, np.tile([1.0, 2.0, 3.0], (4, 1)), atol=0)
    s = 1 / math.sqrt(2)
    np.testing.assert_allclose(d[0], [-1, 0, 0], atol=1e-7)  # principal point -> forward
    np.testing.assert_allclose(d[1], [-s, s, 0], atol=1e-6)  # one focal length right -> 45 degrees to +y
    np.testing.assert_allclose(d[2], [-s, 0, -s], atol=1e-6)  # one focal length down -> 45 degrees to -z
    cam = np.array([(0.5 - cx) / fx, (0.5 - cy) / fy, 1.0])  # top-left pixel centre
    np.testing.assert_allclose(d[3], c2w[0, :, :3] @ cam / np.linalg.norm(cam), atol=1e-6)


def test_directions_are_unit_and_origins_are_centres(device):
    rng = np.random.default_rng(1)
    c2w = _c2w(3, seed=1)
    c2w[1, :, :3] *= 0.7  # a scaled rotation still gives unit directions
    params = [FOX_PARAMS, FISH_PARAMS, (500, 500, 320, 240)]
    dist = [FOX_DIST, FISH_DIST, (0, 0, 0, 0)]
    models = [CAMERA_OPENCV, CAMERA_OPENCV_FISHEYE, CAMERA_PINHOLE]
    idx = rng.integers(0, 3, 500)
    o, d = _run(device, c2w, params, dist, models, idx, _uniform_pixels(rng, 500, (640, 480)))
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(o, c2w[idx, :, 3], atol=1e-6)


@pytest.mark.parametrize(
    "model, params, dist, size",
    [
        (CAMERA_PINHOLE, FOX_PARAMS, (0, 0, 0, 0), FOX_SIZE),
        (CAMERA_OPENCV, FOX_PARAMS, FOX_DIST, FOX_SIZE),
        (CAMERA_OPENCV, (600, 600, 512, 384), (-0.28, 0.07, 0.0008, -0.0005), (1024, 768)),  # strong barrel
        (CAMERA_OPENCV_FISHEYE, FISH_PARAMS, FISH_DIST, FISH_SIZE),
    ],
)
def test_rays_match_float64_reference(device, model, params, dist, size):
    rng = np.random.default_rng(2)
    c2w = _c2w(2, seed=3)
    pixels = _uniform_pixels(rng, 200, size)
    if model == CAMERA_OPENCV_FISHEYE:  # the (u, v, 1) reference only covers theta < 90 degrees
        keep = np.hypot((pixels[:, 0] - params[2]) / params[0], (pixels[:, 1] - params[3]) / params[1]) < 1.3
        pixels = pixels[keep]
    idx = rng.integers(0, 2, len(pixels))
    o, d = _run(device, c2w, [params] * 2, [dist] * 2, [model] * 2, idx, pixels)
    o_ref, d_ref = ref.generate_rays_ref(c2w, [params] * 2, [dist] * 2, [model] * 2, idx, pixels)
    np.testing.assert_allclose(o, o_ref, atol=1e-6)
    np.testing.assert_allclose(d, d_ref, atol=2e-6)
    if model != CAMERA_PINHOLE:  # the distortion is not a no-op: pinhole rays differ
        _, d_pin = ref.generate_rays_ref(c2w, [params] * 2, [dist] * 2, [CAMERA_PINHOLE] * 2, idx, pixels)
        assert np.max(np.linalg.norm(d_pin - d_ref, axis=1)) > 1e-3


@pytest.mark.parametrize(
    "model, params, dist, size",
    [
        (CAMERA_OPENCV, FOX_PARAMS, FOX_DIST, FOX_SIZE),
        (CAMERA_OPENCV, (600, 600, 512, 384), (-0.28, 0.07, 0.0008, -0.0005), (1024, 768)),
        (CAMERA_OPENCV_FISHEYE, FISH_PARAMS, FISH_DIST, FISH_SIZE),
    ],
)
def test_redistorting_the_ray_hits_the_pixel(device, model, params, dist, size):
    rng = np.random.default_rng(4)
    c2w = _c2w(1, seed=5)
    pixels = _uniform_pixels(rng, 300, size)
    if model == CAMERA_OPENCV_FISHEYE:  # projection through z = 1 needs a forward-facing ray
        keep = np.hypot((pixels[:, 0] - params[2]) / params[0], (pixels[:, 1] - params[3]) / params[1]) < 1.4
        pixels = pixels[keep]
    o, d = _run(device, c2w, params, dist, [model], 0, pixels)
    points = o + 2.5 * d
    back = ref.project_points_ref(points, c2w[0], params, dist, model)
    np.testing.assert_allclose(back, pixels, atol=2e-3)  # pixels


def test_fisheye_beyond_90_degrees(device):
    # points far off-axis map to theta > pi/2: the ray points backwards (z < 0) and re-distorts to the pixel
    params, dist = FISH_PARAMS, FISH_DIST
    pixels = np.array(
        [[params[2] + 560.0, params[3]], [params[2], params[3] - 540.0], [params[2] - 450, 10.0]]
    )
    o, d = _run(device, np.eye(3, 4)[None], params, dist, [CAMERA_OPENCV_FISHEYE], 0, pixels)
    assert np.all(d[:2, 2] < 0)
    theta = np.arccos(np.clip(d[:, 2], -1, 1))
    k1, k2, k3, k4 = dist
    theta_d = theta * (1 + k1 * theta**2 + k2 * theta**4 + k3 * theta**6 + k4 * theta**8)
    r = np.hypot(d[:, 0], d[:, 1])
    back = np.stack(
        [d[:, 0] / r * theta_d * params[0] + params[2], d[:, 1] / r * theta_d * params[1] + params[3]], 1
    )
    np.testing.assert_allclose(back, pixels, atol=5e-3)


@settings(max_examples=25, deadline=None)
@given(
    k1=st.floats(-0.3, 0.3),
    k2=st.floats(-0.1, 0.1),
    p1=st.floats(-0.002, 0.002),
    p2=st.floats(-0.002, 0.002),
    seed=st.integers(0, 2**31 - 1),
)
def test_opencv_round_trip_property(device, k1, k2, p1, p2, seed):
    # realistic lenses over a 60x45 degree field of view; points stay where the distortion is monotonic
    rng = np.random.default_rng(seed)
    params = (800.0, 800.0, 460.0, 345.0)
    dist = (k1, k2, p1, p2)
    pixels = _uniform_pixels(rng, 64, (920, 690))
    uv = ref.undistort(
        np.stack([(pixels[:, 0] - 460) / 800, (pixels[:, 1] - 345) / 800], 1), dist, ref.OPENCV
    )
    ok = np.linalg.norm(
        ref.distort(uv, dist, ref.OPENCV)
        - np.stack([(pixels[:, 0] - 460) / 800, (pixels[:, 1] - 345) / 800], 1),
        axis=1,
    )
    # keep pixels whose float64 preimage converged AND lies where the radial distortion is monotonic from the centre
    # out (d r_d / d r = 1 + 3 k1 r^2 + 5 k2 r^4 > 0 for every radius up to it): beyond the fold a pixel has a second
    # preimage and no undistortion is defined (hypothesis found k1 = -0.28, k2 = -0.06 converging past the fold)
    rho = np.linspace(0.0, 1.0, 33)[None, :] * np.sum(uv**2, axis=1)[:, None]
    monotonic = np.all(1 + 3 * k1 * rho + 5 * k2 * rho**2 > 0, axis=1)
    pixels = pixels[(ok < 1e-9) & monotonic]
    if len(pixels) == 0:
        return
    o, d = _run(device, np.eye(3, 4)[None], params, dist, [CAMERA_OPENCV], 0, pixels)
    back = ref.project_points_ref(o + d, np.eye(3, 4), params, dist, ref.OPENCV)
    np.testing.assert_allclose(back, pixels, atol=5e-3)


def test_outputs_written_in_place(device):
    cams = _arrays(device, np.eye(3, 4)[None], [FOX_PARAMS], [FOX_DIST], [CAMERA_OPENCV])
    px = make_pixel_centers(4, 3, device=device)
    o = wp.zeros((12, 3), dtype=wp.float32, device=device)
    d = wp.zeros((12, 3), dtype=wp.float32, device=device)
    o2, d2 = generate_rays(*cams, 0, px, origins=o, directions=d)
    assert o2 is o and d2 is d
    assert np.all(d.numpy()[:, 2] > 0)


def test_empty_launch(device):
    cams = _arrays(device, np.eye(3, 4)[None], [FOX_PARAMS], [FOX_DIST], [CAMERA_OPENCV])
    o, d = generate_rays(*cams, 0, wp.empty((0, 2), dtype=wp.float32, device=device))
    assert o.shape == (0, 3) and d.shape == (0, 3)


def test_argument_errors(device):
    cams = _arrays(device, np.eye(3, 4)[None], [FOX_PARAMS], [FOX_DIST], [CAMERA_OPENCV])
    px = make_pixel_centers(2, 2, device=device)
    with pytest.raises(KernelArgumentError):
        generate_rays(*cams, 1, px)  # only camera 0 exists
    with pytest.raises(KernelArgumentError):
        generate_rays(*cams, wp.array(np.array([0, 0, 3, 0], np.int32), device=device), px)
    with pytest.raises(KernelArgumentError):
        generate_rays(*cams, wp.array(np.zeros(3, np.int32), device=device), px)  # wrong length
    with pytest.raises(KernelArgumentError):
        generate_rays(cams[0], cams[1], cams[2], wp.array(np.array([7], np.int32), device=device), 0, px)
    with pytest.raises(KernelArgumentError):
        generate_rays(*cams, 0, wp.zeros((4, 3), dtype=wp.float32, device=device))  # pixel_xy must be [n, 2]
    with pytest.raises(KernelArgumentError):
        generate_rays(wp.zeros((1, 4, 4), dtype=wp.float32, device=device), *cams[1:], 0, px)
    with pytest.raises(KernelArgumentError):
        generate_rays(*cams[:3], wp.zeros(1, dtype=wp.float64, device=device), 0, px)


@pytest.mark.skipif(not wp.is_cuda_available(), reason="needs a CUDA device")
def test_device_mismatch_raises():
    cams = _arrays("cpu", np.eye(3, 4)[None], [FOX_PARAMS], [FOX_DIST], [CAMERA_OPENCV])
    px = make_pixel_centers(2, 2, device="cuda:0")
    with pytest.raises(DeviceMismatchError):
        generate_rays(*cams, 0, px)


@pytest.mark.skipif(not wp.is_cuda_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(6)
    c2w = _c2w(2, seed=6)
    args = (c2w, [FOX_PARAMS, FISH_PARAMS], [FOX_DIST, FISH_DIST], [CAMERA_OPENCV, CAMERA_OPENCV_FISHEYE])
    idx = rng.integers(0, 2, 1000)
    pixels = _uniform_pixels(rng, 1000, (1000, 800))
    o_c, d_c = _run("cpu", *args, idx, pixels)
    o_g, d_g = _run("cuda:0", *args, idx, pixels)
    np.testing.assert_allclose(o_g, o_c, atol=1e-6)
    np.testing.assert_allclose(d_g, d_c, atol=1e-5)
