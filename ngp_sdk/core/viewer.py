"""The browser viewer of 3D primitives (NeRF, SDF), snapshots and live sessions, built on viser.

viser (the ``viewer`` extra; nerfstudio's viewer library) serves a three.js page over a websocket and reports each
browser's camera. :class:`SceneViewer` renders that camera with the primitive's :class:`~ngp_sdk.core.view.SceneView`
through one :class:`~ngp_sdk.core.progressive.ProgressiveRenderer` per browser (a low-resolution frame first, full
resolution once the camera rests, stale cameras dropped) and shows the result as the page's background image, with
the training cameras as frustums and the scene box drawn over it. Panels: render mode (rgb / depth / normals /
opacity), exposure, camera-path keyframes (saved in instant-ngp's ``base_cam.json`` format that
``ngp render --camera-path`` reads, and previewed in the page), and for a training session the steps, loss,
samples/s and frames with pause / resume / save-snapshot buttons.

The viewer never holds the session lock longer than one band of rows, so training (and the bridge) keep going.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ngp_sdk.core.camera_path import CameraKeyframe, intrinsics_with_fov, matrix_to_quaternion, sample_camera_path
from ngp_sdk.core.cameras import Intrinsics, box_corners
from ngp_sdk.core.errors import ConfigError, DataError
from ngp_sdk.core.files import write_text_atomic
from ngp_sdk.core.progressive import ProgressiveRenderer, ViewRequest
from ngp_sdk.core.registry import get_primitive
from ngp_sdk.core.view import RENDER_MODES, SceneView, c2w_from_wxyz_position, compose_view, wxyz_position_from_c2w

__all__ = ["SceneViewer", "ViewerOptions", "import_viser", "open_viewer"]

log = logging.getLogger(__name__)

#: How often the viewer polls the session for new steps and frames, in seconds.
_POLL_S = 0.5


def import_viser():
    """The ``viser`` module, or a ConfigError naming the extra to install."""
    try:
        import viser
    except ImportError:
        raise ConfigError("the browser viewer needs viser: pip install 'ngp-sdk[viewer]'") from None
    return viser


@dataclass(frozen=True, kw_only=True)
class ViewerOptions:
    """Viewer settings.

    Attributes:
        host: interface to listen on (``0.0.0.0`` for other machines).
        port: HTTP/websocket port (0: any free port).
        transport: ``jpeg`` or ``png`` for the frames sent to the page (previews are always JPEG).
        jpeg_quality: JPEG quality of frames.
        max_pixels: cap on the full-resolution frame (the canvas is scaled down to it, aspect kept).
        preview_seconds: target render time of the low-resolution frame shown while the camera moves.
        settle_seconds: rest time before the full-resolution render starts.
        refresh_seconds: while the session trains, the view is rendered again this often at most.
        refresh_share: while the session trains, re-renders of a resting camera take at most this share of the
            time (the render thread rests between bands); renders of a moved camera are never held back.
        save_dir: folder for snapshots and camera paths saved from the page.
        title: shown in the page's panel.
        show_cameras: draw the training cameras as frustums at start (a checkbox in the page).
        show_box: draw the scene box at start (a checkbox in the page).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    transport: str = "jpeg"
    jpeg_quality: int = 90
    max_pixels: int = 1024 * 1024
    preview_seconds: float = 0.25
    settle_seconds: float = 0.15
    refresh_seconds: float = 2.0
    refresh_share: float = 0.25
    save_dir: str = "."
    title: str = "ngp-sdk"
    show_cameras: bool = True
    show_box: bool = True

    def __post_init__(self) -> None:
        if self.transport not in ("jpeg", "png"):
            raise ConfigError(f"transport must be 'jpeg' or 'png', got {self.transport!r}")
        if not 1 <= self.jpeg_quality <= 100 or self.max_pixels < 64 or self.refresh_seconds <= 0:
            raise ConfigError("jpeg_quality must be in 1..100, max_pixels >= 64, refresh_seconds > 0")
        if not 0 < self.refresh_share <= 1:
            raise ConfigError(f"refresh_share must be in (0, 1], got {self.refresh_share}")


@dataclass
class _Client:
    handle: Any
    renderer: ProgressiveRenderer
    last_request: ViewRequest | None = None
    last_submit: float = 0.0
    last_step: int = -1
    frames: list = field(default_factory=list)  # (image, request, kind) of the last frame, for tests
    keyframes: list[CameraKeyframe] = field(default_factory=list)


class SceneViewer:
    """A viser page over a session of a 3D primitive (any registered primitive with a ``scene_view``).

    Args:
        source: a :class:`~ngp_sdk.core.session.Session`, or a callable returning the current one (or None while
            there is none yet, e.g. a bridge server before ``configure``).
        options: :class:`ViewerOptions`.

    Raises:
        ConfigError: viser is not installed, or the session's primitive has no scene view.
    """

    def __init__(self, source: Any, options: ViewerOptions | None = None):
        viser = import_viser()
        self.options = options or ViewerOptions()
        self._source: Callable[[], Any] = source if callable(source) else (lambda: source)
        self._lock = threading.RLock()
        self._session: Any = None
        self._view: SceneView | None = None
        self._clients: dict[int, _Client] = {}
        self._frustums: list[Any] = []
        self._box: Any = None
        self._stop = threading.Event()
        first = self._source()
        if first is not None:
            self._view_of(first)  # a primitive without a 3D view fails here, before a port is taken
        with contextlib.redirect_stdout(io.StringIO()):  # viser's banner; the caller prints self.url
            self.server = viser.ViserServer(host=self.options.host, port=self.options.port, verbose=False)
        try:
            self.server.gui.configure_theme(control_layout="floating", show_logo=False, show_share_button=False)
            self._build_gui()
            self._refresh_session()
        except BaseException:
            self.server.stop()
            raise
        self.server.on_client_connect(self._on_connect)
        self.server.on_client_disconnect(self._on_disconnect)
        self._poller = threading.Thread(target=self._poll, name="ngp-viewer-poll", daemon=True)
        self._poller.start()

    # -- public --------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The page's address. ``fixedDpr=1`` keeps the canvas at one pixel per CSS pixel: viser otherwise lowers
        the canvas resolution while frames come slowly, and the frames rendered for it would be blurred."""
        host = self.options.host if self.options.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.server.get_port()}/?fixedDpr=1"

    @property
    def clients(self) -> dict[int, _Client]:
        """Connected browsers by client id (their renderers keep ``events``: latencies of every frame)."""
        return dict(self._clients)

    @property
    def frustum_count(self) -> int:
        """Training cameras drawn in the page."""
        return len(self._frustums)

    def stop(self) -> None:
        """Close the page's server and stop the render threads."""
        self._stop.set()
        for c in list(self._clients.values()):
            c.renderer.stop()
        self.server.stop()
        self._poller.join(5.0)

    def __enter__(self) -> SceneViewer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def rerender(self) -> None:
        """Render every browser's current camera again (after a settings change)."""
        for c in list(self._clients.values()):
            self._submit(c)

    # -- session and scene ---------------------------------------------------------------------------------
    def _refresh_session(self) -> bool:
        """Pick up a new session from the source; True when it changed."""
        session = self._source()
        if session is self._session:
            return False
        view = None if session is None else self._view_of(session)
        with self._lock:
            self._session, self._view = session, view
        self._draw_scene()
        return True

    @staticmethod
    def _view_of(session: Any) -> SceneView:
        spec = get_primitive(session.primitive)
        if spec.scene_view is None:
            raise ConfigError(f"the {session.primitive} primitive has no 3D view")
        return spec.scene_view(session.task)

    def _draw_scene(self) -> None:
        view = self._view
        for h in self._frustums:
            h.remove()
        self._frustums = []
        if self._box is not None:
            self._box.remove()
            self._box = None
        if view is None:
            return
        lo, hi = (np.asarray(v, np.float64) for v in view.scene_box())
        self._box = self.server.scene.add_box("/scene_box", color=(255, 170, 0), dimensions=tuple(hi - lo),
                                              wireframe=True, position=tuple(0.5 * (lo + hi)),
                                              visible=self._show_box.value)
        self._box_size = float(np.linalg.norm(hi - lo))
        self._draw_cameras(view.cameras())

    def _draw_cameras(self, cameras: list[tuple[np.ndarray, Intrinsics]]) -> None:
        scale = 0.04 * getattr(self, "_box_size", 1.0)
        for i, (c2w, intr) in enumerate(cameras[len(self._frustums):], start=len(self._frustums)):
            wxyz, pos = wxyz_position_from_c2w(c2w)
            self._frustums.append(self.server.scene.add_camera_frustum(
                f"/cameras/{i:05d}", fov=intr.fov_y, aspect=intr.width / intr.height, scale=scale,
                thickness=1.5, thickness_units="screen", color=(40, 120, 255), wxyz=wxyz, position=pos,
                visible=self._show_cameras.value))

    # -- GUI -----------------------------------------------------------------------------------------------
    def _build_gui(self) -> None:
        gui = self.server.gui
        self._info = gui.add_markdown(f"**{self.options.title}**")
        with gui.add_folder("View"):
            self._mode = gui.add_dropdown("Render mode", RENDER_MODES, initial_value="rgb")
            self._exposure = gui.add_slider("Exposure", min=-4.0, max=4.0, step=0.1, initial_value=0.0)
            self._show_cameras = gui.add_checkbox("Training cameras", self.options.show_cameras)
            self._show_box = gui.add_checkbox("Scene box", self.options.show_box)
        for h in (self._mode, self._exposure):
            h.on_update(lambda _: self.rerender())
        self._show_cameras.on_update(lambda _: self._set_visible(self._frustums, self._show_cameras.value))
        self._show_box.on_update(lambda _: self._set_visible([self._box], self._show_box.value))
        with gui.add_folder("Camera path", expand_by_default=False):
            self._path_file = gui.add_text("Path file", "camera_path.json")
            add = gui.add_button("Add keyframe")
            self._path_info = gui.add_markdown("0 keyframes")
            save = gui.add_button("Save path")
            preview = gui.add_button("Preview path")
            clear = gui.add_button("Clear path")
        add.on_click(lambda e: self.add_keyframe(e.client.client_id))
        save.on_click(lambda e: self._save_path(e.client))
        preview.on_click(lambda e: self._preview_path(e.client))
        clear.on_click(lambda e: self._clear_path(e.client))
        with gui.add_folder("Training"):
            self._stats = gui.add_markdown("no session yet")
            pause = gui.add_button("Pause")
            resume = gui.add_button("Resume")
            self._snapshot_name = gui.add_text("Snapshot", "viewer.ingp")
            snap = gui.add_button("Save snapshot")
        pause.on_click(lambda _: self._session is not None and self._session.pause())
        resume.on_click(lambda _: self._session is not None and self._session.resume())
        snap.on_click(lambda e: self._save_snapshot(e.client))

    @staticmethod
    def _set_visible(handles: list[Any], visible: bool) -> None:
        for h in handles:
            if h is not None:
                h.visible = visible

    def _notify(self, client: Any, title: str, body: str) -> None:
        try:
            client.add_notification(title, body, auto_close_seconds=5.0)
        except Exception:  # a closed page
            log.debug("notification to a closed client dropped")

    def _confined(self, name: str) -> Path:
        """``name`` inside the save folder (no absolute paths or '..')."""
        p = Path(name)
        if not name or p.is_absolute() or ".." in p.parts:
            raise DataError(f"{name!r}: give a file name relative to the viewer's save folder")
        out = Path(self.options.save_dir) / p
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    # -- camera paths --------------------------------------------------------------------------------------
    def _client_c2w(self, handle: Any) -> tuple[np.ndarray, float]:
        cam = handle.camera
        return c2w_from_wxyz_position(cam.wxyz, cam.position), float(cam.fov)

    def add_keyframe(self, client_id: int) -> CameraKeyframe | None:
        """Append a browser's current camera to its camera path (the "Add keyframe" button)."""
        c = self._clients.get(client_id)
        if c is None or self._view is None:
            return None
        c2w, fov = self._client_c2w(c.handle)
        internal = self._view.to_internal(c2w)
        kf = CameraKeyframe(R=matrix_to_quaternion(internal[:3, :3]), T=internal[:3, 3].copy(), fov=math.degrees(fov))
        c.keyframes.append(kf)
        self._path_info.content = f"{len(c.keyframes)} keyframes"
        return kf

    def camera_path_document(self, client_id: int) -> dict[str, Any]:
        """The keyframes of a browser in instant-ngp's camera-path format (``ngp render --camera-path``)."""
        c = self._clients[client_id]
        return {"path": [{"R": [float(v) for v in k.R], "T": [float(v) for v in k.T], "fov": k.fov, "scale": 1.0,
                          "slice": 0.0, "aperture_size": 0.0} for k in c.keyframes],
                "time": max(1.0, float(len(c.keyframes)))}

    def save_camera_path(self, client_id: int, name: str | None = None) -> Path:
        """Write a browser's keyframes (atomically) to ``name`` in the save folder (default: the page's field).

        Raises:
            DataError: no keyframes, or a name outside the save folder.
        """
        out = self._confined(self._path_file.value if name is None else name)
        doc = self.camera_path_document(client_id)
        if not doc["path"]:
            raise DataError("add a keyframe first")
        return write_text_atomic(out, json.dumps(doc, indent=2))

    def _save_path(self, handle: Any) -> None:
        try:
            out = self.save_camera_path(handle.client_id)
        except (DataError, OSError) as e:
            self._notify(handle, "Camera path not saved", str(e))
            return
        self._notify(handle, "Camera path saved", str(out))

    def _clear_path(self, handle: Any) -> None:
        c = self._clients.get(handle.client_id)
        if c is not None:
            c.keyframes.clear()
            self._path_info.content = "0 keyframes"

    def _preview_path(self, handle: Any, frames: int = 30, seconds: float = 3.0) -> None:
        c = self._clients.get(handle.client_id)
        if c is None or not c.keyframes or self._view is None:
            return
        for internal, fov in sample_camera_path(c.keyframes, frames):
            c2w = self._view.from_internal(internal)
            wxyz, pos = wxyz_position_from_c2w(c2w)
            with handle.atomic():
                handle.camera.wxyz, handle.camera.position = wxyz, pos
                if fov is not None:
                    handle.camera.fov = math.radians(fov)
            time.sleep(seconds / frames)

    def save_snapshot(self, name: str | None = None) -> Path:
        """Save the session (atomically) as ``name`` in the save folder (default: the page's field).

        Raises:
            DataError: no session yet, or a name outside the save folder.
        """
        session = self._session
        if session is None:
            raise DataError("there is no session to save yet")
        return session.save(self._confined(self._snapshot_name.value if name is None else name))

    def _save_snapshot(self, handle: Any) -> None:
        try:
            out = self.save_snapshot()
        except (DataError, OSError) as e:
            self._notify(handle, "Snapshot not saved", str(e))
            return
        self._notify(handle, "Snapshot saved", str(out))

    # -- clients -------------------------------------------------------------------------------------------
    def _on_connect(self, handle: Any) -> None:
        o = self.options
        renderer = ProgressiveRenderer(self._render, lambda img, req, kind: self._publish(handle, img, req, kind),
                                       preview_seconds=o.preview_seconds, settle_seconds=o.settle_seconds)
        client = _Client(handle=handle, renderer=renderer.start())
        self._clients[handle.client_id] = client
        self._frame_client(handle)
        handle.camera.on_update(lambda _cam: self._submit(client))

    def _frame_client(self, handle: Any) -> None:
        """Put a browser's camera at the view's default camera, orbiting the scene box's centre."""
        view = self._view
        if view is None:
            return
        c2w, fov = view.default_camera()
        lo, hi = view.scene_box()
        target = 0.5 * (np.asarray(lo, np.float64) + np.asarray(hi, np.float64))
        pos = np.asarray(c2w, np.float64)[:3, 3]
        if np.linalg.norm(pos - target) < 1e-6:  # a camera inside the box centre: look along its axis instead
            target = pos - np.asarray(c2w, np.float64)[:3, 2]
        with handle.atomic():
            handle.camera.fov = float(fov)
            handle.camera.up_direction = tuple(view.up)
            handle.camera.position = tuple(pos)
            handle.camera.look_at = tuple(target)

    def _on_disconnect(self, handle: Any) -> None:
        c = self._clients.pop(handle.client_id, None)
        if c is not None:
            c.renderer.stop(timeout=0.0)

    def _submit(self, client: _Client, *, refresh: bool = False, rest_share: float | None = None) -> None:
        cam = client.handle.camera
        try:
            w, h = int(cam.image_width), int(cam.image_height)
        except AssertionError:  # no camera message yet
            return
        if w < 1 or h < 1:
            return
        k = min(1.0, math.sqrt(self.options.max_pixels / (w * h)))
        w, h = max(1, round(w * k)), max(1, round(h * k))
        c2w, fov = self._client_c2w(client.handle)
        view = self._view
        req = ViewRequest(c2w=c2w, intrinsics=intrinsics_with_fov(w, h, math.degrees(fov)),
                          options={"mode": self._mode.value, "exposure": float(self._exposure.value),
                                   "progressive": view is None or view.progressive,
                                   "repeat": view is not None and view.continuous, "refresh": refresh,
                                   "rest_share": rest_share})
        client.last_request, client.last_submit = req, time.monotonic()
        session = self._session
        client.last_step = session.step_count if session is not None else -1
        client.renderer.submit(req)

    def _render(self, req: ViewRequest, intr: Intrinsics) -> np.ndarray:
        with self._lock:
            session, view = self._session, self._view
        if session is None or view is None:
            return np.zeros((intr.height, intr.width, 3), np.uint8)
        with session.locked():
            layers = view.render(req.c2w, intr)
        lo, hi = view.scene_box()
        eye = req.c2w[:3, 3]
        d = np.linalg.norm(box_corners(lo, hi) - eye, axis=1)
        near = 0.0 if np.all((lo <= eye) & (eye <= hi)) else float(d.min())  # inside the box: from the camera
        return compose_view(layers, req.options.get("mode", "rgb"), exposure=req.options.get("exposure", 0.0),
                            depth_range=(near, float(d.max())), intrinsics=intr, c2w=req.c2w)

    def _publish(self, handle: Any, image: np.ndarray, req: ViewRequest, kind: str) -> None:
        fmt = self.options.transport if kind == "full" else "jpeg"
        handle.scene.set_background_image(image, format=fmt, jpeg_quality=self.options.jpeg_quality)
        c = self._clients.get(handle.client_id)
        if c is not None:
            c.frames[:] = [(image, req, kind)]

    # -- polling -------------------------------------------------------------------------------------------
    def _poll(self) -> None:
        while not self._stop.wait(_POLL_S):
            try:
                self._poll_once()
            except Exception:
                log.exception("viewer poll failed")

    def _poll_once(self) -> None:
        if self._refresh_session():
            self.rerender()
        session, view = self._session, self._view
        if session is None or view is None:
            return
        st = session.status()
        frames = st.get("frames")
        lines = [f"**{session.primitive}** · step {st['step']:,} · {st.get('state', 'idle')}"]
        if math.isfinite(st["loss"]):
            lines.append(f"loss {st['loss']:.4g}")
        if st.get("samples_per_second"):
            lines.append(f"{st['samples_per_second'] / 1e6:.2f} M samples/s")
        if frames is not None:
            lines.append(f"frames {frames}")
        self._stats.content = "  \n".join(lines)
        cams = view.cameras()
        if cams and not self._frustums:  # the first frames of a live session: frame them
            for c in list(self._clients.values()):
                self._frame_client(c.handle)
        if len(cams) != len(self._frustums):
            if len(cams) < len(self._frustums):  # a ring buffer replaced frames: draw them again
                for h in self._frustums:
                    h.remove()
                self._frustums = []
            self._draw_cameras(cams)
        now = time.monotonic()
        for c in list(self._clients.values()):
            if (c.last_request is not None and session.step_count != c.last_step and c.renderer.idle
                    and now - c.last_submit >= self.options.refresh_seconds):
                self._submit(c, refresh=True, rest_share=self.options.refresh_share
                             if st.get("state") == "training" else None)


def open_viewer(session: Any, options: ViewerOptions | None = None) -> Any:
    """The browser viewer of a session's primitive: its own (``Primitive.open_viewer``, e.g. the image's pan and
    zoom page) or a :class:`SceneViewer` for a primitive with a ``scene_view``. Returns an object with ``url``
    and ``stop()``.

    Raises:
        ConfigError: the primitive has no viewer, or viser is missing.
    """
    options = options or ViewerOptions()
    spec = get_primitive(session.primitive)
    if spec.open_viewer is not None:
        return spec.open_viewer(session, options)
    if spec.scene_view is None:
        raise ConfigError(f"the {session.primitive} primitive has no browser viewer yet")
    return SceneViewer(session, options)
