"""What the bridge does with each request: the handlers behind the transport of :mod:`bridges.server`.

:class:`Handlers` owns the served session and the bookkeeping the protocol reports (frames pushed and rejected,
the last frame's ``seq``, the registered views). It knows no sockets: each handler takes a parsed
:class:`~bridges.protocol.Request` and returns ``(reply fields, payloads)`` or raises a typed
:class:`~bridges.protocol.ProtocolError`; :meth:`Handlers.answer` turns that into the encoded reply.

It dispatches on the SDK's task protocols (:class:`~ngp_sdk.core.task.LiveTask` takes frames and renders world
poses, :class:`~ngp_sdk.core.task.WorldRenderer` renders them, :class:`~ngp_sdk.core.task.MeshExporter`
exports meshes) and builds sessions through the primitive
registry (``Session.live`` / ``Session.live_from_snapshot``), never by probing attributes. What a live task can do
beyond :class:`~ngp_sdk.core.task.LiveTask` is read from the task itself: pose refinement from its ``add_frame``
signature (a ``refine_pose`` keyword; read once per class), depth supervision from its ``depth_supervision``
attribute (True when it trains on ``add_frame`` depth).

Every request is answered in its own protocol version (``request.version``): version-2 replies carry the fields
version 2 adds (``hello_ok.endpoints`` in full, ``add_frame_ok.refine_pose``, a monotonic
``status_ok.last_frame_seq``).
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridges import protocol as P
from ngp_sdk.core.cameras import Intrinsics
from ngp_sdk.core.errors import NgpError
from ngp_sdk.core.registry import get_primitive
from ngp_sdk.core.session import Session
from ngp_sdk.core.task import LiveTask, MeshExporter, WorldRenderer

__all__ = ["Handlers", "RegisteredView", "SERVER_NAME", "SLOW_REQUESTS", "LIVE_OPTION_KEYS", "capabilities",
           "accepts_refine_pose", "supervises_depth"]

log = logging.getLogger("ngp_sdk.bridges.handlers")

#: ``hello_ok.server``.
SERVER_NAME = "ngp-sdk 0.1.0"
#: Requests answered on the render worker thread (they can take seconds); the rest on the poll thread.
SLOW_REQUESTS = frozenset({"render", "export_mesh"})
#: Server-side options of live sessions (not wire fields) passed on to ``Session.live``.
LIVE_OPTION_KEYS = ("capacity", "min_frames", "policy", "max_resolution")

Reply = tuple[dict[str, Any], list[Any]]


@dataclass(kw_only=True)
class RegisteredView:
    """A view registered with ``set_view``: its request, next due time, publication counter, queued render."""

    request: P.SetView
    due: float
    seq: int = 0
    pending: bool = False


def to_intrinsics(c: P.CameraIntrinsics) -> Intrinsics:
    """The SDK camera of a wire camera."""
    return Intrinsics(width=c.width, height=c.height, fx=c.fx, fy=c.fy, cx=c.cx, cy=c.cy, model=c.model,
                      dist=c.dist)


@functools.cache
def accepts_refine_pose(task_cls: type) -> bool:
    """Whether ``task_cls.add_frame`` takes a ``refine_pose`` keyword (read once per class from its signature)."""
    try:
        param = inspect.signature(task_cls.add_frame).parameters.get("refine_pose")
    except (AttributeError, TypeError, ValueError):
        return False
    return param is not None and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD)


def supervises_depth(task: Any) -> bool:
    """Whether a task (or task class) trains on ``add_frame`` depth: its ``depth_supervision`` is True."""
    return getattr(task, "depth_supervision", False) is True


def capabilities(task: Any = None, version: int = P.PROTOCOL_VERSION) -> list[str]:
    """What ``hello_ok`` announces: fixed features, codecs / exports whose libraries are installed, and what the
    served task (or, before a session, the live task class ``configure`` creates) can do: ``depth_input`` /
    ``depth_supervision``, and ``pose_refinement`` in version 2 (the only version that can ask for it)."""
    caps = ["nerf", "render_depth", "save_load", "views", "push_frames", "camera_id"]
    if task is not None and supervises_depth(task):
        caps += ["depth_input", "depth_supervision"]
    if task is not None and version >= 2 and accepts_refine_pose(task if isinstance(task, type) else type(task)):
        caps.append("pose_refinement")
    try:
        import imageio  # noqa: F401

        caps += ["png", "jpeg"]
    except ImportError:  # pragma: no cover
        pass
    try:
        import skimage.measure  # noqa: F401
        import trimesh  # noqa: F401

        caps.append("export_mesh")
    except ImportError:  # pragma: no cover
        pass
    return caps


class Handlers:
    """The request handlers of one server.

    Args:
        session: an existing session (a live task, or a loaded snapshot for renders only); None waits for
            ``configure`` / ``load``. Background training is started for it.
        limits: protocol limits announced in ``hello_ok``.
        device: Warp device of sessions created by ``configure`` / ``load``.
        live_options: server-side options of live sessions (see :data:`LIVE_OPTION_KEYS`), and
            ``training_share`` (:attr:`Session.training_share` of every session served).
        save_dir: when set, ``save``/``load`` paths are confined to this directory.
        endpoints: ``() -> {"requests": ..., "frames": ..., "views": ...}``: the bound ROUTER / PULL / PUB
            endpoints (None = that socket is absent).
        max_views: most registered views.
    """

    def __init__(self, session: Session | None = None, *, limits: P.Limits = P.DEFAULT_LIMITS, device: Any = None,
                 live_options: dict[str, Any] | None = None, save_dir: str | os.PathLike | None = None,
                 endpoints: Callable[[], dict[str, str | None]] = dict, views_enabled: bool = True):
        self.limits = limits
        self.device = device
        self.live_options = dict(live_options or {})
        self.save_dir = None if save_dir is None else Path(save_dir).absolute()
        self.session: Session | None = None
        self.views: dict[str, RegisteredView] = {}
        self.frames_rejected = 0
        self.frames_pushed = 0
        self.last_frame_seq: int | None = None
        #: the largest ``seq`` of an accepted ``add_frame`` (``status_ok.last_frame_seq`` of version 2)
        self.max_frame_seq: int | None = None
        self.last_frame_error: dict[str, Any] | None = None
        #: frames accepted per ``camera_id`` (``""``: frames without one) since the current session started
        self.camera_frames: dict[str, int] = {}
        self._endpoints = endpoints
        self._views_enabled = views_enabled
        #: The dispatch table, request type -> handler (tests replace entries to inject failures).
        self.table: dict[str, Callable[[Any], Reply]] = {
            "hello": self.hello, "configure": self.configure, "add_frame": self.add_frame, "render": self.render,
            "status": self.status, "save": self.save, "load": self.load, "pause": self.pause,
            "resume": self.resume, "export_mesh": self.export_mesh, "set_view": self.set_view,
            "clear_view": self.clear_view,
        }
        if session is not None:
            self.serve(session)

    # -- dispatch ------------------------------------------------------------------------------------------
    def answer(self, request: P.Request) -> list[Any]:
        """The encoded reply (or typed error) to a parsed request; never raises."""
        try:
            fields, payloads = self.table[request.TYPE](request)
            return P.encode_message(P.make_reply(request.seq, request.TYPE, v=request.version, **fields), payloads)
        except P.ProtocolError as e:
            return P.encode_message(P.make_error(e.seq if e.seq is not None else request.seq, e.code, e.message,
                                                 request_type=request.TYPE, v=request.version))
        except Exception as e:  # the server keeps serving whatever happens
            log.exception("internal error while handling a request")
            return P.encode_message(P.make_error(request.seq, "internal", f"{type(e).__name__}: {e}",
                                                 request_type=request.TYPE, v=request.version))

    def push(self, frames: list[Any]) -> None:
        """A message from the PULL socket: only ``add_frame``; never answered, counted in ``status``."""
        seq = None
        try:
            request = P.parse_request(frames, self.limits)
            seq = request.seq
            if not isinstance(request, P.AddFrame):
                raise P.UnsupportedError(f"only 'add_frame' is accepted on the frames socket, got {request.TYPE!r}")
            self.add_frame(request)
            self.frames_pushed += 1
        except P.ProtocolError as e:
            self._reject(e.seq if e.seq is not None else seq, e.code, e.message)
        except Exception as e:
            log.exception("internal error while handling a pushed frame")
            self._reject(seq, "internal", f"{type(e).__name__}: {e}")

    def _reject(self, seq: int | None, code: str, message: str) -> None:
        self.frames_rejected += 1
        self.last_frame_error = {"seq": seq, "code": code, "message": message[:1000]}

    # -- sessions ------------------------------------------------------------------------------------------
    def serve(self, session: Session) -> None:
        """Serve ``session`` (stopping the previous one) and start its background training."""
        if self.session is not None and self.session is not session:
            self.session.stop()
        self.session = session
        self.camera_frames = {}
        if self.live_options.get("training_share") is not None:
            session.training_share = self.live_options["training_share"]
        session.start()

    def stop(self) -> None:
        """Stop background training of the served session."""
        if self.session is not None:
            self.session.stop()

    def _need_session(self) -> Session:
        if self.session is None:
            raise P.NoSessionError("no session: send 'configure' (or 'load') first")
        return self.session

    def capability_source(self) -> Any:
        """The served task, or before any session the live task class ``configure`` creates (None: unknown)."""
        if self.session is not None:
            return self.session.task
        try:
            create = get_primitive(P.CONFIGURE_DEFAULTS.primitive).create_live
        except NgpError:
            return None
        owner = getattr(create, "__self__", None)  # create_live is the live task class's constructor classmethod
        return owner if isinstance(owner, type) else None

    def _need_live(self) -> LiveTask:
        task = self._need_session().task
        if not isinstance(task, LiveTask):
            raise P.UnsupportedError(f"this {task.primitive!r} session does not take frames; 'configure' a live one")
        return task

    def state(self) -> str:
        """The protocol's ``state``: unconfigured, waiting, training or paused."""
        if self.session is None:
            return "unconfigured"
        st = self.session.status().get("state")
        return {"paused": "paused", "training": "training"}.get(st, "waiting")

    def _live_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.live_options.items() if k in LIVE_OPTION_KEYS}

    def _path(self, text: str) -> Path:
        """The file a ``save``/``load`` path names: inside ``save_dir`` when the server confines paths.

        Confined: relative paths only, no ``..`` component, and the resolved path (symlinks followed) must stay
        inside the directory; anything else is a ``StorageError`` (``io_error``).
        """
        p = Path(text)
        if self.save_dir is None:
            return p
        if p.is_absolute() or p.anchor:
            raise P.StorageError(f"path {text!r} is absolute; this server takes paths relative to its snapshot "
                                 f"directory {self.save_dir}")
        if ".." in p.parts:
            raise P.StorageError(f"path {text!r} contains '..'; paths stay inside {self.save_dir}")
        full = (self.save_dir / p).resolve()
        if not full.is_relative_to(self.save_dir.resolve()):
            raise P.StorageError(f"path {text!r} leaves the server's directory {self.save_dir} (through a symlink)")
        return full

    # -- handlers: each returns (reply fields, payloads) ---------------------------------------------------
    def hello(self, req: P.Hello) -> Reply:
        bound = self._endpoints()
        caps = capabilities(self.capability_source(), req.version)
        fields = {"server": SERVER_NAME, "protocol": req.version, "protocols": list(P.PROTOCOL_VERSIONS),
                  "capabilities": caps, "limits": self.limits.to_dict()}
        if req.version == 1:  # as version 1 always answered: the bound PULL / PUB sockets only
            return {**fields, "endpoints": {k: bound[k] for k in ("frames", "views") if bound.get(k)}}, []
        codecs = [e for e in P.COMPRESSED_ENCODINGS if e in caps]
        encodings = {"frame": [e for e in P.FRAME_ENCODINGS if e in P.RAW_ENCODINGS or e in codecs],
                     "depth": list(P.DEPTH_ENCODINGS),
                     "render": [e for e in P.RENDER_ENCODINGS if e not in P.COMPRESSED_ENCODINGS or e in codecs]}
        endpoints = {k: bound.get(k) or None for k in ("requests", "frames", "views")}
        return {**fields, "endpoints": endpoints, "encodings": encodings}, []

    def configure(self, req: P.Configure) -> Reply:
        options = {**self._live_options(), "capacity": req.capacity, "min_frames": req.min_frames}
        try:
            session = Session.live(req.primitive, req.config or None, device=self.device, aabb_scale=req.aabb_scale,
                                   scale=req.scale, offset=tuple(req.offset), **options)
        except (NgpError, TypeError, ValueError) as e:
            raise P.BadFieldError(f"configure rejected: {e}") from None
        self.serve(session)
        return {"primitive": req.primitive, "capacity": req.capacity, "min_frames": req.min_frames}, []

    def add_frame(self, req: P.AddFrame) -> Reply:
        task = self._need_live()
        options: dict[str, Any] = {}
        if req.noisy:
            if not accepts_refine_pose(type(task)):
                raise P.UnsupportedError("this server cannot refine poses (no 'pose_refinement' capability): send the "
                                         "frame without pose_noisy and pose_covariance, or leave it out")
            options["refine_pose"] = True
        try:
            index = task.add_frame(req.image, req.pose, to_intrinsics(req.intrinsics), depth=req.depth, **options)
        except NgpError as e:
            raise P.BadFieldError(str(e)) from None
        self.last_frame_seq = req.seq
        self.max_frame_seq = req.seq if self.max_frame_seq is None else max(self.max_frame_seq, req.seq)
        self.camera_frames[req.camera_id] = self.camera_frames.get(req.camera_id, 0) + 1
        fields = {"index": index, "frame_count": task.frame_count, "kept": index >= 0}
        if req.version >= 2:
            fields["refine_pose"] = bool(options)
        return fields, []

    def render_image(self, req: P.Render | P.SetView) -> tuple[dict[str, Any], list[Any], int]:
        """Render a ``render`` or ``set_view`` camera: ``(fields, payloads, step)``."""
        session = self._need_session()
        task = session.task
        if not isinstance(task, WorldRenderer):
            raise P.UnsupportedError(f"a {task.primitive!r} session does not render world cameras")
        with session.locked():
            img = task.render_world(req.pose, to_intrinsics(req.intrinsics), background=req.background)
            step = session.step_count
        rgb = np.clip(img.rgb, 0.0, 1.0)
        encode = {
            "32FC3": lambda: rgb.astype(np.float32),
            "rgba8": lambda: np.rint(np.dstack([rgb, np.clip(img.opacity, 0, 1)]) * 255).astype(np.uint8),
            "png": lambda: np.rint(np.dstack([rgb, np.clip(img.opacity, 0, 1)]) * 255).astype(np.uint8),
        }.get(req.encoding, lambda: np.rint(rgb * 255).astype(np.uint8))
        try:
            field, payload = P.encode_image(encode(), req.encoding, quality=req.quality)
        except ImportError as e:
            raise P.UnsupportedError(f"{req.encoding} needs imageio: {e}") from None
        fields, payloads = {"image": field, "step": step}, [payload]
        if req.depth:
            fields["depth"], depth_payload = P.encode_depth(img.depth)
            payloads.append(depth_payload)
        return fields, payloads, step

    def render(self, req: P.Render) -> Reply:
        fields, payloads, _ = self.render_image(req)
        return fields, payloads

    def status(self, req: P.Status) -> Reply:
        st = self.session.status() if self.session is not None else {}
        loss = st.get("loss")
        return {
            "state": self.state(),
            "step": int(st.get("step", 0)),
            "loss": float(loss) if loss is not None and math.isfinite(loss) else None,
            "frame_count": int(st.get("frame_count", 0)),
            "samples_per_second": float(st.get("samples_per_second", 0.0) or 0.0),
            "last_frame_seq": self.last_frame_seq if req.version == 1 else self.max_frame_seq,
            "frames_rejected": self.frames_rejected,
            "last_frame_error": self.last_frame_error,
            "frames_pushed": self.frames_pushed,
            "capacity": int(st.get("capacity", 0)),
            "training_error": st.get("error"),
            "camera_frames": dict(self.camera_frames),
            "policy": st.get("policy"),
            "frames_added": int(st.get("frames_added", 0)),
            "frames_discarded": int(st.get("frames_discarded", 0)),
        }, []

    def save(self, req: P.Save) -> Reply:
        session = self._need_session()
        try:
            target = self._path(req.path)
            if self.save_dir is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
            path = session.save(target)
        except (OSError, NgpError) as e:
            raise P.StorageError(f"could not save {req.path!r}: {e}") from None
        return {"path": str(path), "bytes": path.stat().st_size}, []

    def load(self, req: P.Load) -> Reply:
        try:
            session = Session.live_from_snapshot(self._path(req.path), device=self.device, **self._live_options())
        except (OSError, NgpError) as e:
            raise P.StorageError(f"could not load {req.path!r}: {e}") from None
        self.serve(session)
        return {"path": req.path, "step": session.step_count,
                "frame_count": session.status().get("frame_count", 0)}, []

    def pause(self, req: P.Pause) -> Reply:
        self._need_session().pause()
        return {"state": self.state()}, []

    def resume(self, req: P.Resume) -> Reply:
        self._need_session().resume()
        return {"state": self.state()}, []

    def export_mesh(self, req: P.ExportMesh) -> Reply:
        session = self._need_session()
        if not isinstance(session.task, MeshExporter):
            raise P.UnsupportedError(f"a {session.primitive!r} session has no surface to export")
        try:
            from ngp_sdk.core.meshes import save_mesh

            with session.locked():
                mesh = session.task.extract_mesh(resolution=req.resolution, threshold=req.threshold)
            with tempfile.TemporaryDirectory() as tmp:
                data = save_mesh(mesh, Path(tmp) / f"mesh.{req.format}").read_bytes()
        except ImportError as e:
            raise P.UnsupportedError(f"mesh export needs scikit-image and trimesh: {e}") from None
        except NgpError as e:
            raise P.BadFieldError(str(e)) from None
        return {"format": req.format, "vertex_count": len(mesh.vertices), "face_count": len(mesh.faces)}, [data]

    def set_view(self, req: P.SetView) -> Reply:
        if not self._views_enabled:
            raise P.UnsupportedError("this server has no views socket")
        if req.name not in self.views and len(self.views) >= self.limits.max_views:
            raise P.TooLargeError(f"at most {self.limits.max_views} views; clear_view one first")
        self.views[req.name] = RegisteredView(request=req, due=time.monotonic())
        return {"name": req.name, "views": len(self.views)}, []

    def clear_view(self, req: P.ClearView) -> Reply:
        if req.name is None:
            cleared = len(self.views)
            self.views.clear()
        else:
            cleared = int(self.views.pop(req.name, None) is not None)
        return {"cleared": cleared}, []
