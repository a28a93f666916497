"""ZeroMQ server of the ngp-sdk bridge: a live NeRF session behind the wire protocol of ``docs/protocol.md``.

Three sockets, one poll-loop thread:

- ``ROUTER`` (requests): every request gets one reply or a typed ``error`` with the same ``seq``;
- ``PULL`` (fire-and-forget ``add_frame``): never replied; accepted and rejected frames are counted in ``status``;
- ``PUB`` (views): the views registered with ``set_view`` are rendered at most at their rate and published with
  ``SNDHWM`` 1, so a slow subscriber loses views instead of stalling anything.

Training runs on the session's background thread (:meth:`ngp_sdk.session.Session.start`). Both receiving sockets
set ``ZMQ_MAXMSGSIZE`` so ZeroMQ drops an oversize message (and its connection) before buffering it. Malformed
requests get typed error replies; unexpected exceptions give ``internal`` and the loop goes on.

Optional CURVE security: pass ``curve_keys=(public, secret)`` (Z85 bytes, see ``zmq.curve_keypair()``) and
``allow`` (client public keys); a :class:`zmq.auth.thread.ThreadAuthenticator` admits only those clients.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from . import protocol as P
from .render_worker import RenderWorker

__all__ = ["NgpServer", "register_cli", "SERVER_NAME"]

log = logging.getLogger("ngp_sdk.bridges.server")

#: ``hello_ok.server``.
SERVER_NAME = "ngp-sdk 0.1.0"
_POLL_MS = 20
_PULL_RCVHWM = 16


@dataclass(kw_only=True)
class _View:
    """A registered view: its request, next due time, publication counter and whether a render is queued."""

    request: P.SetView
    due: float
    seq: int = 0
    pending: bool = False


#: Requests answered on the render worker thread (they can take seconds); the rest on the poll thread.
SLOW_REQUESTS = frozenset({"render", "export_mesh"})


def _to_intrinsics(c: P.CameraIntrinsics):
    from ngp_sdk.cameras import Intrinsics

    return Intrinsics(width=c.width, height=c.height, fx=c.fx, fy=c.fy, cx=c.cx, cy=c.cy, model=c.model,
                      dist=c.dist)


def _capabilities() -> list[str]:
    caps = ["nerf", "render_depth", "save_load", "views", "push_frames"]
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


class NgpServer:
    """Serve a live NeRF session over ZeroMQ.

    Args:
        session: an existing session (e.g. ``Session.live_nerf(...)`` or a loaded snapshot); None waits for
            ``configure`` / ``load``. The server starts its background training.
        bind: ROUTER endpoint (``tcp://127.0.0.1:*`` picks a free port; see :attr:`endpoint`).
        frames_bind: PULL endpoint; None = no PULL socket.
        views_bind: PUB endpoint; None = no PUB socket (``set_view`` then gives ``unsupported``).
        limits: protocol limits enforced and announced.
        curve_keys: ``(public_key, secret_key)`` of the server (Z85) to require CURVE encryption.
        allow: client public keys (Z85) admitted under CURVE; None admits any client with the server key.
        device: Warp device of sessions created by ``configure`` / ``load``.
        live_options: extra keyword arguments of :meth:`Session.live_nerf` (``policy``, ``max_resolution``).
        save_dir: when set, ``save``/``load`` paths are confined to this directory.
        max_pending_renders: renders / mesh exports / view renders queued for the render worker at most; more
            are answered with ``busy``.

    Renders, mesh exports and view renders run on a worker thread, so frame acknowledgements and status
    requests are answered while an image is being rendered; replies carry the request's ``seq`` and may
    arrive in another order than the requests.
    """

    def __init__(self, session: Any = None, *, bind: str = P.DEFAULT_REQUEST_ENDPOINT,
                 frames_bind: str | None = P.DEFAULT_FRAME_ENDPOINT, views_bind: str | None = P.DEFAULT_VIEW_ENDPOINT,
                 limits: P.Limits = P.DEFAULT_LIMITS, curve_keys: tuple[bytes, bytes] | None = None,
                 allow: Iterable[bytes] | None = None, device: Any = None,
                 live_options: dict[str, Any] | None = None, save_dir: str | os.PathLike | None = None,
                 max_pending_renders: int = 8):
        self.limits = limits
        self.device = device
        self.live_options = dict(live_options or {})
        self.save_dir = None if save_dir is None else Path(save_dir).resolve()
        self.session = session
        self._ctx = zmq.Context()
        self._auth = None
        self._curve = curve_keys
        if curve_keys is not None:
            self._start_auth(allow)
        self._router = self._socket(zmq.ROUTER, bind, receive=True)
        self._pull = None if frames_bind is None else self._socket(zmq.PULL, frames_bind, receive=True)
        self._pub = None if views_bind is None else self._socket(zmq.PUB, views_bind, receive=False)
        self._inbox_address = f"inproc://ngp-render-{id(self):x}"
        self._inbox = self._ctx.socket(zmq.PAIR)
        self._inbox.linger = 0
        self._inbox.bind(self._inbox_address)
        self._worker = RenderWorker(self._ctx, self._inbox_address, self._run_job, max_pending=max_pending_renders)
        self._views: dict[str, _View] = {}
        self._frames_rejected = 0
        self._last_frame_seq: int | None = None
        self._last_frame_error: dict[str, Any] | None = None
        self._frames_pushed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handlers: dict[str, Callable[[Any], tuple[dict[str, Any], list[Any]]]] = {
            "hello": self._hello, "configure": self._configure, "add_frame": self._add_frame,
            "render": self._render, "status": self._status, "save": self._save, "load": self._load,
            "pause": self._pause, "resume": self._resume, "export_mesh": self._export_mesh,
            "set_view": self._set_view, "clear_view": self._clear_view,
        }
        if session is not None:
            self._start_training(session)

    # -- sockets -------------------------------------------------------------------------------------------
    def _start_auth(self, allow: Iterable[bytes] | None) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        allowed = None if allow is None else {bytes(k) for k in allow}

        class _Keys:
            def callback(self, domain: str, key: bytes) -> bool:
                from zmq.utils.z85 import encode

                return allowed is None or encode(key) in allowed or key in allowed

        self._auth = ThreadAuthenticator(self._ctx)
        self._auth.start()
        self._auth.configure_curve_callback(domain="*", credentials_provider=_Keys())

    def _socket(self, kind: int, endpoint: str, *, receive: bool) -> zmq.Socket:
        s = self._ctx.socket(kind)
        s.linger = 0
        if self._curve is not None:
            s.curve_server = True
            s.curve_publickey, s.curve_secretkey = self._curve
        if receive:
            s.setsockopt(zmq.MAXMSGSIZE, int(self.limits.max_message_bytes))
        if kind == zmq.PULL:
            s.rcvhwm = _PULL_RCVHWM
        if kind == zmq.PUB:
            s.sndhwm = 1
        if kind == zmq.ROUTER:
            s.setsockopt(zmq.ROUTER_MANDATORY, 0)
        s.bind(endpoint)
        return s

    @property
    def endpoint(self) -> str:
        """The ROUTER endpoint actually bound (resolves ``*`` ports)."""
        return self._router.getsockopt_string(zmq.LAST_ENDPOINT)

    @property
    def frames_endpoint(self) -> str | None:
        """The PULL endpoint actually bound, or None."""
        return None if self._pull is None else self._pull.getsockopt_string(zmq.LAST_ENDPOINT)

    @property
    def views_endpoint(self) -> str | None:
        """The PUB endpoint actually bound, or None."""
        return None if self._pub is None else self._pub.getsockopt_string(zmq.LAST_ENDPOINT)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> NgpServer:
        """Run the poll loop on a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="ngp-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Poll and answer until :meth:`stop` (or Ctrl-C when run on the main thread)."""
        self._worker.start()
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._inbox, zmq.POLLIN)
        if self._pull is not None:
            poller.register(self._pull, zmq.POLLIN)
        while not self._stop.is_set():
            events = dict(poller.poll(self._poll_timeout_ms()))
            if self._inbox in events:
                self._drain(self._inbox, self._on_worker_result)
            if self._router in events:
                self._drain(self._router, self._on_request)
            if self._pull is not None and self._pull in events:
                self._drain(self._pull, self._on_push)
            self._publish_views()
        self._close_sockets()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop, background training and the authenticator; close the sockets."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        worker_done = self._worker.stop(timeout)
        if self.session is not None:
            self.session.stop()
        if self._thread is None:
            self._close_sockets()
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if worker_done:
            self._ctx.term()
        else:  # a render still running after `timeout`: leave the context to the process exit
            log.warning("render worker still busy after %.0f s; not terminating the ZeroMQ context", timeout)

    def _close_sockets(self) -> None:
        for s in (self._router, self._pull, self._pub, self._inbox):
            if s is not None and not s.closed:
                s.close(0)

    def __enter__(self) -> NgpServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _poll_timeout_ms(self) -> int:
        if not self._views or self.session is None:
            return _POLL_MS
        wait = min(v.due for v in self._views.values()) - time.monotonic()
        return max(0, min(_POLL_MS, int(wait * 1000)))

    @staticmethod
    def _drain(sock: zmq.Socket, handle: Callable[[list[zmq.Frame]], None], budget: int = 64) -> None:
        for _ in range(budget):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            handle(frames)

    # -- requests ------------------------------------------------------------------------------------------
    def _on_request(self, frames: list[zmq.Frame]) -> None:
        envelope, message = P.split_envelope(frames)
        try:
            request = P.parse_request(message, self.limits)
        except P.ProtocolError as e:
            self._send_reply(envelope, P.encode_message(P.make_error(e.seq, e.code, e.message)))
            return
        except Exception as e:  # the server keeps serving whatever happens
            log.exception("internal error while parsing a request")
            self._send_reply(envelope, P.encode_message(P.make_error(None, "internal", f"{type(e).__name__}: {e}")))
            return
        if request.TYPE in SLOW_REQUESTS:
            if not self._worker.submit(("reply", [bytes(f.bytes) for f in envelope], request)):
                busy = P.make_error(request.seq, "busy", f"{self._worker.max_pending} renders are already queued; "
                                                         f"retry later")
                self._send_reply(envelope, P.encode_message(busy))
            return
        self._send_reply(envelope, self._answer(request))

    def _answer(self, request: P.Request) -> list[Any]:
        """The encoded reply (or typed error) to a parsed request."""
        try:
            fields, payloads = self._handlers[request.TYPE](request)
            return P.encode_message(P.make_reply(request.seq, request.TYPE, **fields), payloads)
        except P.ProtocolError as e:
            return P.encode_message(P.make_error(e.seq if e.seq is not None else request.seq, e.code, e.message))
        except Exception as e:  # the server keeps serving whatever happens
            log.exception("internal error while handling a request")
            return P.encode_message(P.make_error(request.seq, "internal", f"{type(e).__name__}: {e}"))

    def _send_reply(self, envelope: list[Any], reply: list[Any]) -> None:
        try:
            self._router.send_multipart([*envelope, *reply], zmq.NOBLOCK, copy=False)
        except zmq.ZMQError:  # peer gone or its queue full: the reply is dropped
            log.debug("could not deliver a reply")

    # -- the render worker ---------------------------------------------------------------------------------
    def _run_job(self, job: tuple) -> list[Any]:
        """On the worker thread: ``("reply", envelope, request)`` or ``("view", name, seq, request)``."""
        if job[0] == "reply":
            _, envelope, request = job
            return [b"reply", str(len(envelope)).encode(), *envelope, *self._answer(request)]
        _, name, seq, request = job
        try:
            fields, payloads, step = self._render_image(request)
            header = P.make_view(seq, name, image=fields["image"], step=step,
                                 **({"depth": fields["depth"]} if "depth" in fields else {}))
            return [b"view", name.encode(), P.view_topic(name), *P.encode_message(header, payloads)]
        except Exception:  # a view that cannot render must not stop the worker
            log.exception("view %s failed", name)
            return [b"view", name.encode()]

    def _on_worker_result(self, frames: list[zmq.Frame]) -> None:
        """On the poll thread: deliver a finished reply or publish a finished view."""
        kind = frames[0].bytes
        if kind == b"reply":
            n = int(frames[1].bytes)
            self._send_reply(frames[2:2 + n], frames[2 + n:])
            return
        view = self._views.get(frames[1].bytes.decode())
        if view is not None:
            view.pending = False
        if len(frames) > 2 and self._pub is not None:
            try:
                self._pub.send_multipart(frames[2:], zmq.NOBLOCK, copy=False)
            except zmq.Again:
                pass

    def _on_push(self, frames: list[zmq.Frame]) -> None:
        seq = None
        try:
            request = P.parse_request(frames, self.limits)
            seq = request.seq
            if not isinstance(request, P.AddFrame):
                raise P.UnsupportedError(f"only 'add_frame' is accepted on the frames socket, got {request.TYPE!r}")
            self._add_frame(request)
            self._frames_pushed += 1
        except P.ProtocolError as e:
            self._reject(e.seq if e.seq is not None else seq, e.code, e.message)
        except Exception as e:
            log.exception("internal error while handling a pushed frame")
            self._reject(seq, "internal", f"{type(e).__name__}: {e}")

    def _reject(self, seq: int | None, code: str, message: str) -> None:
        self._frames_rejected += 1
        self._last_frame_error = {"seq": seq, "code": code, "message": message[:1000]}

    def _need_session(self) -> Any:
        if self.session is None:
            raise P.NoSessionError("no session: send 'configure' (or 'load') first")
        return self.session

    def _state(self) -> str:
        if self.session is None:
            return "unconfigured"
        st = self.session.status().get("state")
        return {"paused": "paused", "training": "training"}.get(st, "waiting")

    def _start_training(self, session: Any) -> None:
        if self.session is not None and self.session is not session:
            self.session.stop()
        self.session = session
        session.start()

    # -- handlers: each returns (reply fields, payloads) ---------------------------------------------------
    def _hello(self, req: P.Hello) -> tuple[dict[str, Any], list[Any]]:
        endpoints = {k: v for k, v in (("frames", self.frames_endpoint), ("views", self.views_endpoint)) if v}
        return {"server": SERVER_NAME, "protocol": P.PROTOCOL_VERSION, "capabilities": _capabilities(),
                "limits": self.limits.to_dict(), "endpoints": endpoints}, []

    def _configure(self, req: P.Configure) -> tuple[dict[str, Any], list[Any]]:
        from ngp_sdk import Session
        from ngp_sdk.errors import NgpError

        try:
            session = Session.live_nerf(req.config or None, aabb_scale=req.aabb_scale, scale=req.scale,
                                        offset=tuple(req.offset), capacity=req.capacity, min_frames=req.min_frames,
                                        device=self.device, **self.live_options)
        except (NgpError, TypeError, ValueError) as e:
            raise P.BadFieldError(f"configure rejected: {e}") from None
        self._start_training(session)
        return {"primitive": req.primitive, "capacity": req.capacity, "min_frames": req.min_frames}, []

    def _add_frame(self, req: P.AddFrame) -> tuple[dict[str, Any], list[Any]]:
        from ngp_sdk.errors import NgpError

        task = self._need_session().task
        add = getattr(task, "add_frame", None)
        if add is None:
            raise P.UnsupportedError("this session does not take frames; 'configure' a live session")
        try:
            index = add(req.image, req.pose, _to_intrinsics(req.intrinsics), depth=req.depth)
        except NgpError as e:
            raise P.BadFieldError(str(e)) from None
        self._last_frame_seq = req.seq
        return {"index": index, "frame_count": task.frame_count, "kept": index >= 0}, []

    def _render_image(self, req: P.Render | P.SetView) -> tuple[dict[str, Any], list[Any], int]:
        session = self._need_session()
        with session.locked():
            img = session.task.render_world(req.pose, _to_intrinsics(req.intrinsics))
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

    def _render(self, req: P.Render) -> tuple[dict[str, Any], list[Any]]:
        fields, payloads, _ = self._render_image(req)
        return fields, payloads

    def _status(self, req: P.Status) -> tuple[dict[str, Any], list[Any]]:
        st = self.session.status() if self.session is not None else {}
        loss = st.get("loss")
        return {
            "state": self._state(),
            "step": int(st.get("step", 0)),
            "loss": float(loss) if loss is not None and math.isfinite(loss) else None,
            "frame_count": int(st.get("frame_count", 0)),
            "samples_per_second": float(st.get("samples_per_second", 0.0) or 0.0),
            "last_frame_seq": self._last_frame_seq,
            "frames_rejected": self._frames_rejected,
            "last_frame_error": self._last_frame_error,
            "frames_pushed": self._frames_pushed,
            "capacity": int(st.get("capacity", 0)),
            "training_error": st.get("error"),
        }, []

    def _path(self, text: str) -> Path:
        p = Path(text)
        if self.save_dir is None:
            return p
        full = (self.save_dir / p).resolve()
        if not full.is_relative_to(self.save_dir):
            raise P.StorageError(f"path {text!r} is outside the server's directory {self.save_dir}")
        return full

    def _save(self, req: P.Save) -> tuple[dict[str, Any], list[Any]]:
        from ngp_sdk.errors import NgpError

        session = self._need_session()
        try:
            path = session.save(self._path(req.path))
        except (OSError, NgpError) as e:
            raise P.StorageError(f"could not save {req.path!r}: {e}") from None
        return {"path": str(path), "bytes": path.stat().st_size}, []

    def _load(self, req: P.Load) -> tuple[dict[str, Any], list[Any]]:
        from ngp_sdk import Session
        from ngp_sdk.errors import NgpError

        options = {k: v for k, v in self.live_options.items() if k in ("capacity", "min_frames", "policy",
                                                                        "max_resolution")}
        try:
            session = Session.live_nerf_from_snapshot(self._path(req.path), device=self.device, **options)
        except (OSError, NgpError) as e:
            raise P.StorageError(f"could not load {req.path!r}: {e}") from None
        self._start_training(session)
        return {"path": req.path, "step": session.step_count, "frame_count": session.task.frame_count}, []

    def _pause(self, req: P.Pause) -> tuple[dict[str, Any], list[Any]]:
        self._need_session().pause()
        return {"state": self._state()}, []

    def _resume(self, req: P.Resume) -> tuple[dict[str, Any], list[Any]]:
        self._need_session().resume()
        return {"state": self._state()}, []

    def _export_mesh(self, req: P.ExportMesh) -> tuple[dict[str, Any], list[Any]]:
        from ngp_sdk.errors import NgpError

        session = self._need_session()
        try:
            from ngp_sdk.export import save_mesh

            with session.locked():
                mesh = session.task.extract_mesh(resolution=req.resolution, threshold=req.threshold)
            with tempfile.TemporaryDirectory() as tmp:
                data = save_mesh(mesh, Path(tmp) / f"mesh.{req.format}").read_bytes()
        except ImportError as e:
            raise P.UnsupportedError(f"mesh export needs scikit-image and trimesh: {e}") from None
        except NgpError as e:
            raise P.BadFieldError(str(e)) from None
        return {"format": req.format, "vertex_count": len(mesh.vertices), "face_count": len(mesh.faces)}, [data]

    def _set_view(self, req: P.SetView) -> tuple[dict[str, Any], list[Any]]:
        if self._pub is None:
            raise P.UnsupportedError("this server has no views socket")
        if req.name not in self._views and len(self._views) >= self.limits.max_views:
            raise P.TooLargeError(f"at most {self.limits.max_views} views; clear_view one first")
        self._views[req.name] = _View(request=req, due=time.monotonic())
        return {"name": req.name, "views": len(self._views)}, []

    def _clear_view(self, req: P.ClearView) -> tuple[dict[str, Any], list[Any]]:
        if req.name is None:
            cleared = len(self._views)
            self._views.clear()
        else:
            cleared = int(self._views.pop(req.name, None) is not None)
        return {"cleared": cleared}, []

    # -- views ---------------------------------------------------------------------------------------------
    def _publish_views(self) -> None:
        if self._pub is None or self.session is None:
            return
        now = time.monotonic()
        for name, view in list(self._views.items()):
            if view.due > now or view.pending:
                continue
            view.due = max(now, view.due + 1.0 / view.request.rate)
            if self._worker.submit(("view", name, view.seq, view.request)):  # full queue: skip this period
                view.pending = True
                view.seq += 1


# -- CLI -------------------------------------------------------------------------------------------------------
def _curve_options(args: argparse.Namespace) -> dict[str, Any]:
    """``curve_keys`` / ``allow`` from ``--curve-cert`` and ``--curve-allow`` (ZeroMQ certificate files, as written
    by ``zmq.auth.create_certificates``)."""
    from ngp_sdk.errors import DataError

    if args.curve_cert is None:
        if args.curve_allow is not None:
            raise DataError("--curve-allow needs --curve-cert (the server's own key pair)")
        return {}
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(args.curve_cert)
    except (OSError, ValueError) as e:
        raise DataError(f"--curve-cert {args.curve_cert}: cannot read a ZeroMQ certificate ({e})") from None
    if secret is None:
        raise DataError(f"--curve-cert {args.curve_cert}: holds no secret key (pass the .key_secret file)")
    allow = None
    if args.curve_allow is not None:
        folder = Path(args.curve_allow)
        if not folder.is_dir():
            raise DataError(f"--curve-allow {folder}: not a folder of client certificates")
        allow = list(zmq.auth.load_certificates(folder))
        if not allow:
            raise DataError(f"--curve-allow {folder}: no client certificates (*.key) found")
    return {"curve_keys": (public, secret), "allow": allow}


def _cmd_serve(args: argparse.Namespace) -> int:
    from ngp_sdk import Session

    live = {"capacity": args.capacity, "min_frames": args.min_frames, "policy": args.policy}
    session = None
    if args.snapshot:
        session = Session.live_nerf_from_snapshot(args.snapshot, device=args.device, **live)
    elif args.config:
        session = Session.live_nerf(args.config, device=args.device, aabb_scale=args.aabb_scale, **live)
    curve = _curve_options(args)
    server = NgpServer(session, bind=args.bind, frames_bind=args.frames_bind, views_bind=args.views_bind,
                       device=args.device, live_options={"policy": args.policy}, **curve)
    print(f"ngp serve: requests {server.endpoint}, frames {server.frames_endpoint}, views {server.views_endpoint}",
          flush=True)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        print("ngp serve: stopping", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """``ngp serve``: the plugin hook of :mod:`ngp_sdk.cli` (entry point group ``ngp_sdk.commands``)."""
    p = subparsers.add_parser("serve", help="serve a live NeRF over ZeroMQ (docs/protocol.md)")
    p.add_argument("--bind", default=P.DEFAULT_REQUEST_ENDPOINT, help="ROUTER endpoint for requests")
    p.add_argument("--frames-bind", default=P.DEFAULT_FRAME_ENDPOINT, help="PULL endpoint for pushed frames")
    p.add_argument("--views-bind", default=P.DEFAULT_VIEW_ENDPOINT, help="PUB endpoint for views")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--snapshot", default=None, help="start from a NeRF snapshot (.ingp)")
    src.add_argument("--config", default=None, help="start a live session with this JSON config")
    p.add_argument("--aabb-scale", type=int, default=1, help="scene box of a --config session")
    p.add_argument("--capacity", type=int, default=256, help="frames kept for training")
    p.add_argument("--min-frames", type=int, default=1, help="frames before training starts")
    p.add_argument("--policy", choices=("ring", "keyframes"), default="ring", help="replacement when full")
    p.add_argument("--curve-cert", default=None,
                   help="require CURVE encryption with this server certificate (a .key_secret file from "
                        "zmq.auth.create_certificates); clients need its public key")
    p.add_argument("--curve-allow", default=None,
                   help="with --curve-cert: admit only clients whose public certificates (*.key) are in this folder")
    p.set_defaults(handler=_cmd_serve)
