"""The viewer's pure parts: camera conversions, render modes, normals from depth, progressive rendering."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ngp_sdk.core.camera_path import matrix_to_quaternion, quaternion_to_matrix
from ngp_sdk.core.cameras import Intrinsics, opencv_to_opengl
from ngp_sdk.core.errors import ConfigError
from ngp_sdk.core.progressive import ProgressiveRenderer, ViewRequest
from ngp_sdk.core.view import (
    ViewLayers,
    band_intrinsics,
    c2w_from_wxyz_position,
    colormap_turbo,
    compose_view,
    normals_from_depth,
    wxyz_position_from_c2w,
)


def random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q * np.linalg.det(q)


def test_quaternions_round_trip_every_branch():
    rng = np.random.default_rng(0)
    mats = [random_rotation(rng) for _ in range(50)]
    mats += [np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0]), np.eye(3)]
    for m in mats:
        q = matrix_to_quaternion(m)
        assert q[3] >= 0 and np.isclose(np.linalg.norm(q), 1.0)
        np.testing.assert_allclose(quaternion_to_matrix(q), m, atol=1e-12)


def test_browser_camera_and_world_c2w_convert_both_ways():
    rng = np.random.default_rng(1)
    for _ in range(20):
        c2w = np.eye(4)
        c2w[:3, :3], c2w[:3, 3] = random_rotation(rng), rng.normal(size=3)
        wxyz, pos = wxyz_position_from_c2w(c2w)
        np.testing.assert_allclose(c2w_from_wxyz_position(wxyz, pos), c2w, atol=1e-12)
    # three.js/viser orientation is OpenCV: identity looks down +z; the OpenGL camera looks down its -z column
    m = c2w_from_wxyz_position([1, 0, 0, 0], [0, 0, 0])
    np.testing.assert_allclose(-m[:3, 2], [0, 0, 1])
    np.testing.assert_allclose(m[:3, 1], [0, -1, 0])


def test_band_intrinsics_are_the_rows_of_the_full_camera():
    full = Intrinsics(width=40, height=30, fx=35.0, fy=36.0, cx=19.0, cy=16.5)
    band = band_intrinsics(full, 10, 7)
    for y in (0, 3, 6):
        assert np.isclose((y + 0.5 - band.cy) / band.fy, (y + 10 + 0.5 - full.cy) / full.fy)
    assert (band.width, band.height, band.cx) == (40, 7, full.cx)


def test_normals_from_depth_of_a_tilted_plane_match_the_plane_in_float64():
    intr = Intrinsics(width=48, height=40, fx=40.0, fy=40.0, cx=24.0, cy=20.0)
    # plane n . p = d in the OpenCV camera frame, seen from the origin
    n_cv = np.array([0.3, -0.4, -1.0])
    n_cv /= np.linalg.norm(n_cv)
    d = -2.0
    u = (np.arange(intr.width) + 0.5 - intr.cx) / intr.fx
    v = (np.arange(intr.height) + 0.5 - intr.cy) / intr.fy
    ray = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1))), axis=-1)
    z = d / (ray @ n_cv)  # z-depth: p = z * (u, v, 1)
    rng = np.random.default_rng(2)
    c2w = np.eye(4)
    c2w[:3, :3], c2w[:3, 3] = random_rotation(rng), rng.normal(size=3)
    got = normals_from_depth(z.astype(np.float32), intr, c2w)
    want = opencv_to_opengl(c2w)[:3, :3] @ n_cv  # facing the camera: n_cv points back at the origin
    inner = got[1:-1, 1:-1].reshape(-1, 3)
    np.testing.assert_allclose(inner, np.broadcast_to(want, inner.shape), atol=2e-3)
    assert not got[0].any() and not got[:, -1].any()


def test_render_modes_map_layers_to_8_bit_pictures():
    rgb = np.full((2, 3, 3), 0.5, np.float32)
    layers = ViewLayers(rgb=rgb, depth=np.array([[0, 1, 2], [3, 4, 0]], np.float32),
                        opacity=np.array([[0, 0.5, 1], [1, 1, 0]], np.float32),
                        normals=np.zeros((2, 3, 3), np.float32))
    assert (compose_view(layers, "rgb") == 128).all()
    brighter = compose_view(layers, "rgb", exposure=1.0)
    # one stop doubles linear light: sRGB 0.5 -> linear 0.214 -> 0.428 -> sRGB 0.686
    assert np.all(np.abs(brighter.astype(int) - 175) <= 1)
    depth = compose_view(layers, "depth", depth_range=(0.0, 4.0))
    assert (depth[0, 0] == 0).all() and (depth[1, 2] == 0).all()
    np.testing.assert_array_equal(depth[1, 1], np.round(colormap_turbo(np.array(1.0)) * 255).astype(np.uint8))
    np.testing.assert_array_equal(compose_view(layers, "opacity")[..., 0], [[0, 128, 255], [255, 255, 0]])
    assert (compose_view(layers, "normals") == 0).all()  # zero normals = nothing hit
    with pytest.raises(ConfigError):
        compose_view(layers, "albedo")
    with pytest.raises(ConfigError):  # normals from depth need the camera
        compose_view(ViewLayers(rgb=rgb, depth=layers.depth, opacity=layers.opacity), "normals")


def _pixel_render(delay_per_pixel: float = 0.0, calls: list | None = None):
    """A render callback whose pixel value is a function of its ray (so bands must equal the full image)."""

    def render(req: ViewRequest, intr: Intrinsics) -> np.ndarray:
        if calls is not None:
            calls.append((req, intr))
        time.sleep(delay_per_pixel * intr.width * intr.height)
        u = (np.arange(intr.width) + 0.5 - intr.cx) / intr.fx
        v = (np.arange(intr.height) + 0.5 - intr.cy) / intr.fy
        img = np.zeros((intr.height, intr.width, 3), np.uint8)
        img[..., 0] = np.clip(128 + 100 * u[None, :], 0, 255)
        img[..., 1] = np.clip(128 + 100 * v[:, None], 0, 255)
        img[..., 2] = int(req.options.get("tag", 0))
        return img

    return render


def test_full_frame_is_assembled_from_bands_exactly():
    frames = []
    done = threading.Event()

    def publish(img, req, kind):
        frames.append((img, kind))
        if kind == "full":
            done.set()

    r = ProgressiveRenderer(_pixel_render(2e-6), publish, preview_seconds=0.01, settle_seconds=0.0,
                            band_seconds=0.01, partial_seconds=0.001).start()
    full = Intrinsics(width=200, height=300, fx=150.0, fy=150.0, cx=100.0, cy=150.0)
    try:
        r.submit(ViewRequest(c2w=np.eye(4), intrinsics=full, options={"tag": 7}))
        assert done.wait(30)
    finally:
        r.stop()
    kinds = [k for _, k in frames]
    assert kinds[0] == "preview" and kinds[-1] == "full" and "partial" in kinds
    assert frames[0][0].shape[0] < 300  # a low-resolution first frame
    np.testing.assert_array_equal(frames[-1][0], _pixel_render()(ViewRequest(np.eye(4), full, {"tag": 7}), full))
    assert [e.kind for e in r.events] == kinds and all(e.latency > 0 for e in r.events)


def test_preview_resolution_follows_the_measured_speed():
    r = ProgressiveRenderer(_pixel_render(), lambda *a: None, preview_seconds=0.1, min_preview=16)
    full = Intrinsics(width=800, height=800, fx=700.0, fy=700.0, cx=400.0, cy=400.0)
    r._seconds_per_pixel = 1e-5  # 0.1 s buys 10000 pixels: 100 x 100
    p = r.preview_intrinsics(full)
    assert (p.width, p.height) == (100, 100) and np.isclose(p.fx, 87.5)
    r._seconds_per_pixel = 1.0  # never below min_preview on the short side
    assert min(r.preview_intrinsics(full).width, r.preview_intrinsics(full).height) == 16
    r._seconds_per_pixel = 1e-12  # fast: full resolution at once
    assert r.preview_intrinsics(full) == full
    with pytest.raises(ConfigError):
        ProgressiveRenderer(_pixel_render(), lambda *a: None, preview_seconds=0.0)


def test_stale_cameras_are_dropped_and_a_moving_camera_abandons_the_full_render():
    published = []
    calls = []
    r = ProgressiveRenderer(_pixel_render(2e-5, calls), lambda img, req, kind: published.append((req, kind)),
                            preview_seconds=0.01, settle_seconds=0.0, band_seconds=0.02).start()
    full = Intrinsics(width=200, height=200, fx=150.0, fy=150.0, cx=100.0, cy=100.0)
    try:
        for tag in range(1, 30):  # a camera moving faster than full frames can be rendered
            r.submit(ViewRequest(c2w=np.eye(4), intrinsics=full, options={"tag": tag}))
            time.sleep(0.03)
        last = ViewRequest(c2w=np.eye(4), intrinsics=full, options={"tag": 99})
        r.submit(last)
        end = time.monotonic() + 30
        while not any(req is last and kind == "full" for req, kind in published) and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        r.stop()
    assert any(req is last and kind == "full" for req, kind in published)
    tags = [req.options["tag"] for req, _ in calls]
    assert tags == sorted(tags)  # never an older camera after a newer one
    assert r.dropped + r.abandoned > 0  # stale cameras were skipped, not queued
    assert len(set(tags)) < 30
    full_tags = [req.options["tag"] for req, kind in published if kind == "full"]
    assert full_tags[-1] == 99



def test_a_refresh_shows_no_preview_and_rests_between_bands_until_a_camera_moves():
    published = []
    r = ProgressiveRenderer(_pixel_render(1e-5), lambda img, req, kind: published.append((req, kind, time.monotonic())),
                            band_seconds=0.02, partial_seconds=0.001).start()
    full = Intrinsics(width=200, height=400, fx=150.0, fy=150.0, cx=100.0, cy=200.0)
    try:
        r._band_seconds_per_pixel = 1e-5  # bands of 82 rows, ~0.16 s each
        t0 = time.monotonic()
        r.submit(ViewRequest(c2w=np.eye(4), intrinsics=full, options={"refresh": True, "rest_share": 0.5}))
        assert _wait_for(lambda: published, 30)
        refresh_seconds = published[-1][2] - t0
        assert [k for _, k, _ in published] == ["full"]  # the sharp picture is never replaced by a preview
        assert refresh_seconds > 1.6 * 400 * 200 * 1e-5  # rested about as long as it rendered
        # a moved camera cuts the rest short and gets its preview at once
        r.submit(ViewRequest(c2w=np.eye(4), intrinsics=full, options={"refresh": True, "rest_share": 0.05}))
        time.sleep(0.3)
        moved = ViewRequest(c2w=np.eye(4), intrinsics=full, options={"tag": 5})
        r.submit(moved)
        assert _wait_for(lambda: any(q is moved for q, _, _ in published), 10)
        first = next((t, k) for q, k, t in published if q is moved)
        assert first[1] == "preview" and first[0] - moved.issued < 0.5 + 0.2
    finally:
        r.stop()


def _wait_for(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False
