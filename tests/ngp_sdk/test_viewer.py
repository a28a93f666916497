"""The browser viewer, driven in a real headless Chromium (selenium + the system chromium/chromedriver).

A snapshot viewer and a live viewer are opened in the browser; the camera is moved by dragging on the page's
canvas; the canvas pixels (page overlays hidden) must change and match a direct ``Session.render`` at the camera
the page reported (PSNR >= 30 dB). Tests skip only where no browser/driver/selenium is installed (CI installs
Debian's ``chromium chromium-driver``).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks._browser import canvas_pixels, drag_canvas, find_chromium, open_chromium, wait_for
from ngp_sdk import Session
from ngp_sdk.core.camera_path import load_camera_path, quaternion_to_matrix
from ngp_sdk.core.errors import DataError
from ngp_sdk.core.images import linear_to_srgb, linear_to_srgb_codes
from ngp_sdk.core.registry import get_primitive
from tests.ngp_sdk.nerf.synthetic_nerf import camera_positions, look_at_nerf, render_sphere, write_sphere_dataset
from tests.ngp_sdk.nerf.test_live_nerf import INTR, SIZE
from tests.ngp_sdk.nerf.test_nerf_task import TINY

pytest.importorskip("viser", reason="the viewer extra (viser) is not installed")
from ngp_sdk.core.viewer import SceneViewer, ViewerOptions  # noqa: E402

VIEWPORT = (600, 340)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        pytest.skip("needs selenium, chromium and chromedriver (apt-get install chromium chromium-driver)")
    driver = open_chromium(VIEWPORT)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def nerf_snapshot(tmp_path_factory) -> Path:
    folder = write_sphere_dataset(tmp_path_factory.mktemp("sphere"), n_train=12, n_val=1, size=32)
    s = Session.nerf(folder / "transforms_train.json", config=TINY)
    s.train(steps=300)
    return s.save(folder / "sphere.ingp")


def click_button(driver, label: str) -> None:
    """Click the viser panel button whose text is ``label``."""
    button = driver.find_element("xpath", f"//button[normalize-space(.)='{label}']")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()


def direct_codes(session: Session, view, req) -> np.ndarray:
    """``Session.render`` at the camera of a viewer request, as the 8-bit codes a page shows."""
    return linear_to_srgb_codes(session.render(c2w=view.to_internal(req.c2w), intrinsics=req.intrinsics))


def full_frame_after(viewer: SceneViewer, t: float, timeout: float = 120.0):
    """The ``(image, request)`` of the first full-resolution frame of a camera seen after ``t``."""
    def find():
        for c in viewer.clients.values():
            if c.frames and c.frames[0][2] == "full" and c.frames[0][1].issued > t:
                return c.frames[0][0], c.frames[0][1]
        return None

    out = wait_for(find, timeout)
    assert out is not None, "no full-resolution frame reached the page"
    time.sleep(0.5)  # the page decodes and draws it
    return out


def test_snapshot_viewer_follows_the_camera_moved_in_the_page(browser, nerf_snapshot, tmp_path):
    session = Session.load(nerf_snapshot)
    view = get_primitive("nerf").scene_view(session.task)
    opts = ViewerOptions(port=free_port(), show_cameras=False, show_box=False, save_dir=str(tmp_path))
    with SceneViewer(session, opts) as viewer:
        t0 = time.monotonic()
        browser.get(viewer.url)
        first, req0 = full_frame_after(viewer, t0)
        shown0 = canvas_pixels(browser)
        assert shown0.shape[:2] == (req0.intrinsics.height, req0.intrinsics.width) == VIEWPORT[::-1]
        assert psnr(shown0, direct_codes(session, view, req0)) >= 30.0
        assert shown0.std() > 5  # the sphere is in view, not a blank page

        t1 = time.monotonic()
        drag_canvas(browser, 90, 20)
        _, req1 = full_frame_after(viewer, t1)
        shown1 = canvas_pixels(browser)
        assert not np.allclose(req1.c2w, req0.c2w)  # the page reported a new camera
        assert np.abs(shown1.astype(float) - shown0.astype(float)).mean() > 2.0  # and shows a new picture
        assert psnr(shown1, direct_codes(session, view, req1)) >= 30.0
        events = next(iter(viewer.clients.values())).renderer.events
        assert {"preview", "full"} <= {e.kind for e in events}

        # camera path: two keyframes from the page's camera, saved in instant-ngp's format, read back
        (cid,) = viewer.clients
        viewer.add_keyframe(cid)
        t2 = time.monotonic()
        drag_canvas(browser, -60, 0)
        full_frame_after(viewer, t2)
        viewer.add_keyframe(cid)
        path = viewer.save_camera_path(cid, "path.json")
        keyframes = load_camera_path(path)
        assert len(keyframes) == 2
        kf = keyframes[-1]
        pose = np.concatenate([quaternion_to_matrix(kf.R), kf.T[:, None]], axis=1)
        last = viewer.clients[cid].last_request  # the page's camera when the keyframe was added
        np.testing.assert_allclose(view.from_internal(pose), last.c2w, atol=1e-6)
        assert np.isclose(kf.fov, np.degrees(last.intrinsics.fov_y), atol=1e-3)
        with pytest.raises(DataError):
            viewer.save_camera_path(cid, "../outside.json")
        snap = viewer.save_snapshot("from_viewer.ingp")
        assert Session.load(snap).step_count == session.step_count


@pytest.fixture(scope="module")
def sdf_session():
    from ngp_sdk.core.meshes import TriangleMesh
    from tests.ngp_sdk.sdf.test_sdf_task import _icosphere, _tiny_config

    v, f = _icosphere(2, radius=0.8)
    sdf = Session.sdf(TriangleMesh(v + 2.0, f), config=_tiny_config(1024))
    sdf.train(steps=100)
    return sdf


def test_sdf_viewer_in_the_page_matches_session_render(browser, sdf_session):
    view = get_primitive("sdf").scene_view(sdf_session.task)
    with SceneViewer(sdf_session, ViewerOptions(port=free_port(), show_cameras=False, show_box=False)) as viewer:
        t0 = time.monotonic()
        browser.get(viewer.url)
        _, req0 = full_frame_after(viewer, t0)
        shown0 = canvas_pixels(browser)
        assert psnr(shown0, direct_codes(sdf_session, view, req0)) >= 30.0
        t1 = time.monotonic()
        drag_canvas(browser, 0, -40)
        _, req1 = full_frame_after(viewer, t1)
        shown1 = canvas_pixels(browser)
        assert np.abs(shown1.astype(float) - shown0.astype(float)).mean() > 1.0
        assert psnr(shown1, direct_codes(sdf_session, view, req1)) >= 30.0


def test_live_viewer_shows_frames_as_they_arrive_and_training_goes_on(browser, tmp_path):
    session = Session.live_nerf(TINY, capacity=16, min_frames=3)
    opts = ViewerOptions(port=free_port(), show_box=False, refresh_seconds=0.5, save_dir=str(tmp_path))
    poses = [look_at_nerf(p) for p in camera_positions(10, 3.0, 0)]
    session.start()
    try:
        with SceneViewer(session, opts) as viewer:
            browser.get(viewer.url)
            assert wait_for(lambda: viewer.clients, 30)
            feed = threading.Thread(target=lambda: [session.task.add_frame(render_sphere(m, SIZE), m, INTR)
                                                    or time.sleep(0.05) for m in poses])
            feed.start()
            feed.join(60)
            assert wait_for(lambda: viewer.frustum_count == len(poses), 30), "frames did not appear as frustums"
            steps = session.step_count
            assert wait_for(lambda: session.step_count > steps + 20, 60), "training stalled with a viewer open"
            # the view was rendered again while training went on
            client = next(iter(viewer.clients.values()))
            first = wait_for(lambda: next((e for e in client.renderer.events if e.kind == "full"), None), 90)
            assert first is not None, "no full-resolution frame while training"
            assert wait_for(lambda: any(e.request.issued > first.published for e in client.renderer.events), 30), \
                "the view was not rendered again as training went on"
            click_button(browser, "Pause")  # the page's buttons drive the session
            assert wait_for(lambda: session.status()["state"] == "paused", 30)
            click_button(browser, "Save snapshot")
            assert wait_for(lambda: (tmp_path / "viewer.ingp").is_file(), 60)
            session.task.flush()
            viewer._show_cameras.value = False
            t1 = time.monotonic()
            drag_canvas(browser, 70, 0)
            _, req = full_frame_after(viewer, t1)
            shown = canvas_pixels(browser)
            view = get_primitive("nerf").scene_view(session.task)
            assert psnr(shown, direct_codes(session, view, req)) >= 30.0
            assert shown.std() > 5
            click_button(browser, "Resume")
            assert wait_for(lambda: session.status()["state"] == "training", 30)
    finally:
        session.stop()


def test_sdf_and_nerf_views_render_what_session_render_shows(nerf_snapshot, sdf_session):
    from ngp_sdk.core.camera_path import intrinsics_with_fov

    for session in (Session.load(nerf_snapshot), sdf_session):
        view = get_primitive(session.primitive).scene_view(session.task)
        c2w, fov = view.default_camera()
        np.testing.assert_allclose(view.from_internal(view.to_internal(c2w)), c2w, atol=1e-9)
        intr = intrinsics_with_fov(40, 30, np.degrees(fov))
        layers = view.render(c2w, intr)
        direct = linear_to_srgb(np.clip(session.render(c2w=view.to_internal(c2w), intrinsics=intr), 0, 1))
        np.testing.assert_allclose(layers.rgb, direct, atol=2e-3)
        lo, hi = view.scene_box()
        assert np.all(lo < hi)
        hit = layers.depth > 0
        assert hit.any() and np.all(layers.opacity[~hit] < 0.5)


def _page_served(port: int, proc, timeout: float = 120.0) -> str:
    import urllib.request

    def get():
        if proc.poll() is not None:
            raise AssertionError(f"the command exited: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return None

    page = wait_for(get, timeout, period=0.5)
    assert page is not None, "the viewer page was not served"
    return page


@pytest.mark.parametrize("command", ["view", "serve"])
def test_ngp_view_and_serve_viewer_serve_the_page(command, nerf_snapshot, tmp_path):
    import subprocess
    import sys

    port = free_port()
    if command == "view":
        argv = ["view", str(nerf_snapshot), "--port", str(port), "--save-dir", str(tmp_path)]
    else:
        argv = ["serve", "--bind", f"tcp://127.0.0.1:{free_port()}", "--frames-bind", f"tcp://127.0.0.1:{free_port()}",
                "--views-bind", f"tcp://127.0.0.1:{free_port()}", "--snapshot", str(nerf_snapshot),
                "--save-dir", str(tmp_path), "--viewer", str(port)]
    proc = subprocess.Popen([sys.executable, "-m", "ngp_sdk.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        page = _page_served(port, proc)
        assert "<html" in page.lower()
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def image_session():
    from skimage import data

    s = Session.image(data.astronaut()[::2, ::2].astype(np.float32) / 255.0,
                      config={"encoding": {"n_levels": 8, "log2_hashmap_size": 14}})
    s.train(steps=60)
    return s


def _get(url: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_image_viewer_tiles_are_direct_renders_and_bad_paths_are_refused(image_session):
    import io

    from PIL import Image

    from ngp_sdk.core.viewer import ViewerOptions, open_viewer

    with open_viewer(image_session, ViewerOptions(port=free_port(), transport="png")) as viewer:
        lay = viewer.layout
        assert (lay.width, lay.height) == (256 * 4, 256 * 4)  # two levels past the training resolution
        for level, col, row in ((lay.max_level, 1, 2), (lay.max_level - 2, 0, 0), (3, 0, 0)):
            status, body = _get(f"{viewer.url}tiles/{level}/{col}_{row}.png")
            assert status == 200
            tile = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
            x0, y0, x1, y1 = lay.tile_bounds(level, col, row)
            s = lay.scale(level) * viewer.zoom  # output pixels per training pixel
            direct = image_session.render(region=(x0 / s, y0 / s, (x1 - x0) / s, (y1 - y0) / s), scale=s)
            codes = linear_to_srgb_codes(direct)
            assert tile.shape == codes.shape
            assert np.abs(tile.astype(int) - codes.astype(int)).max() <= 1
        for bad in ("tiles/99/0_0.png", f"tiles/{lay.max_level}/999_0.png", "tiles/3/0_0.jpg",
                    "openseadragon/../../pyproject.toml", "openseadragon/%2e%2e/task.py", "nothing"):
            assert _get(viewer.url + bad)[0] == 404, bad
        assert _get(viewer.url)[0] == 200  # still serving


def test_image_viewer_pans_and_zooms_in_the_browser_rendering_only_visible_tiles(browser, image_session):
    from ngp_sdk.core.viewer import ViewerOptions, open_viewer

    loaded = ("return !!(window.viewer && window.viewer.world.getItemCount() > 0 && "
              "window.viewer.world.getItemAt(0).getFullyLoaded())")
    with open_viewer(image_session, ViewerOptions(port=free_port())) as viewer:
        browser.get(viewer.url)
        assert wait_for(lambda: browser.execute_script(loaded), 120)
        before = list(viewer.tiles_rendered)
        assert before and max(t[0] for t in before) < viewer.layout.max_level  # the whole image: a coarse level
        browser.execute_script("window.viewer.viewport.zoomTo(16, null, true); "
                               "window.viewer.viewport.panTo(new OpenSeadragon.Point(0.3, 0.4), true);")
        time.sleep(0.5)
        assert wait_for(lambda: browser.execute_script(loaded), 120)
        deep = [t for t in viewer.tiles_rendered if t[0] == viewer.layout.max_level]
        assert deep, "zooming in did not render the deepest level"
        cols, rows = viewer.layout.tiles(viewer.layout.max_level)
        assert len(deep) < 0.25 * cols * rows  # only the visible window
        shot = browser.get_screenshot_as_png()
        assert len(shot) > 1000


def test_primitives_without_a_viewer_say_so(monkeypatch):
    import ngp_sdk.core.viewer as viewer_module
    from ngp_sdk.core.errors import ConfigError
    from ngp_sdk.core.registry import Primitive
    from ngp_sdk.core.task import Task

    class NoView:
        primitive = "plain"

    spec = Primitive(name="plain", summary="a primitive with no viewer", task=Task, create=lambda *a, **k: None)
    monkeypatch.setattr(viewer_module, "get_primitive", lambda name: spec)
    with pytest.raises(ConfigError, match="no browser viewer"):
        viewer_module.open_viewer(NoView())


@pytest.fixture(scope="module")
def nrc_session():
    from ngp_sdk.nrc.task import NrcTask, load_scene
    from tests.ngp_sdk.nrc.test_cache import SMALL

    return Session(NrcTask(SMALL, load_scene("cornell-box", width=48, height=32)))


def test_nrc_view_follows_the_camera_and_averages_frames_while_it_rests(nrc_session):
    from ngp_sdk.core.camera_path import intrinsics_with_fov
    from ngp_sdk.core.view import c2w_from_wxyz_position, wxyz_position_from_c2w

    view = get_primitive("nrc").scene_view(nrc_session.task)
    scene_sensor = nrc_session.task.renderer.scene.sensor
    c2w, fov = view.default_camera()
    film = intrinsics_with_fov(scene_sensor.width, scene_sensor.height, np.degrees(fov))
    sensor = view.sensor_for(c2w, film)  # the scene's own camera comes back
    np.testing.assert_allclose(sensor.to_world, scene_sensor.to_world, atol=1e-9)
    want = scene_sensor.fov if scene_sensor.fov_axis == "x" else None
    if want is not None:
        assert np.isclose(sensor.fov, want)
    step = nrc_session.step_count
    a = view.render(c2w, film)
    np.testing.assert_allclose(a.rgb, linear_to_srgb(np.clip(nrc_session.task.last_frame, 0, 1)), atol=1e-6)
    view.render(c2w, film)
    assert view.frames_averaged == 2 and nrc_session.step_count == step + 2  # every frame trains the cache
    wxyz, pos = wxyz_position_from_c2w(c2w)
    moved = c2w_from_wxyz_position(wxyz, pos + 0.05 * np.asarray(c2w)[:3, 0])
    wide = intrinsics_with_fov(64, 32, np.degrees(fov))  # another aspect: cropped out of the film
    b = view.render(moved, wide)
    assert view.frames_averaged == 1 and b.rgb.shape == (32, 64, 3)


def test_nrc_viewer_keeps_rendering_and_training_while_the_camera_rests(browser, nrc_session):
    with SceneViewer(nrc_session, ViewerOptions(port=free_port(), show_box=False)) as viewer:
        browser.get(viewer.url)
        client = wait_for(lambda: next(iter(viewer.clients.values()), None), 30)
        assert wait_for(lambda: len(client.renderer.events) >= 3, 60), "frames did not keep coming"
        step = nrc_session.step_count
        assert wait_for(lambda: nrc_session.step_count >= step + 3, 60)
        still = canvas_pixels(browser)
        t1 = time.monotonic()
        drag_canvas(browser, 80, 0)
        assert wait_for(lambda: any(e.request.issued > t1 for e in client.renderer.events), 30)
        time.sleep(1.0)
        moved = canvas_pixels(browser)
        assert np.abs(moved.astype(float) - still.astype(float)).mean() > 2.0


def test_a_session_without_a_3d_view_is_refused_before_a_port_is_taken(monkeypatch):
    import ngp_sdk.core.viewer as viewer_module
    from ngp_sdk.core.errors import ConfigError
    from ngp_sdk.core.registry import Primitive
    from ngp_sdk.core.task import Task

    class Flat:
        primitive = "flat"
        task = None

    spec = Primitive(name="flat", summary="no 3D view", task=Task, create=lambda *a, **k: None)
    monkeypatch.setattr(viewer_module, "get_primitive", lambda name: spec)
    port = free_port()
    with pytest.raises(ConfigError, match="no 3D view"):
        SceneViewer(Flat(), ViewerOptions(port=port))
    with socket.socket() as s:  # the port is still free: no server was left behind
        s.bind(("127.0.0.1", port))
