"""ZeroMQ transport of the ngp-sdk bridge: a live session behind the wire protocol of ``docs/protocol.md``.

This module owns the sockets and threads; what each request does lives in :mod:`bridges.handlers`.
Three sockets, one poll-loop thread:

- ``ROUTER`` (requests): every request gets one reply or a typed ``error`` with the same ``seq``;
- ``PULL`` (fire-and-forget ``add_frame``): never replied; accepted and rejected frames are counted in ``status``;
- ``PUB`` (views): the views registered with ``set_view`` are rendered at most at their rate and published with
  ``SNDHWM`` 1, so a slow subscriber loses views instead of stalling anything.

Training runs on the session's background thread (:meth:`ngp_sdk.core.session.Session.start`). Both receiving sockets
set ``ZMQ_MAXMSGSIZE`` to ``limits.max_zmq_frame_bytes`` (twice ``max_message_bytes`` by default): a message over
``max_message_bytes`` is still read and answered with ``too_large`` (counted in ``status`` on PULL), and only a
single frame over the larger limit makes ZeroMQ drop it with its connection before buffering it. Malformed requests
get typed error replies, in the request's protocol version; unexpected exceptions give ``internal`` and the loop
goes on.

``ngp serve`` prints one JSON line ``{"ready": true, ...}`` on stdout once its sockets are bound and answering
(see ``docs/protocol.md``, section 1.2).

Optional CURVE security: pass ``curve_keys=(public, secret)`` (Z85 bytes, see ``zmq.curve_keypair()``) and
``allow`` (client public keys); a :class:`zmq.auth.thread.ThreadAuthenticator` admits only those clients.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import zmq

from bridges import protocol as P
from bridges.handlers import SERVER_NAME, SLOW_REQUESTS, Handlers
from bridges.render_worker import RenderWorker
from ngp_sdk.core.errors import ConfigError
from ngp_sdk.core.session import DEFAULT_TRAINING_SHARE, MAX_TRAINING_SHARE, check_training_share

__all__ = ["NgpServer", "register_cli", "ready_line", "SERVER_NAME"]

log = logging.getLogger("ngp_sdk.bridges.server")

_POLL_MS = 20
_PULL_RCVHWM = 16


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
        live_options: server-side options of live sessions (``policy``, ``max_resolution``, ...; see
            :data:`bridges.handlers.LIVE_OPTION_KEYS`) and ``training_share`` (see ``Session.training_share``).
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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.handlers = Handlers(session, limits=limits, device=device, live_options=live_options, save_dir=save_dir,
                                 endpoints=self.endpoints,
                                 views_enabled=self._pub is not None)

    @property
    def session(self) -> Any:
        """The served session (None until ``configure`` / ``load``)."""
        return self.handlers.session

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
            s.setsockopt(zmq.MAXMSGSIZE, int(self.limits.max_zmq_frame_bytes))
        if kind == zmq.PULL:
            s.rcvhwm = _PULL_RCVHWM
        if kind == zmq.PUB:
            s.sndhwm = 1
        if kind == zmq.ROUTER:
            s.setsockopt(zmq.ROUTER_MANDATORY, 0)
        s.bind(endpoint)
        return s

    def endpoints(self) -> dict[str, str | None]:
        """The bound endpoints ``{"requests", "frames", "views"}`` as ZeroMQ reports them (ports resolved; None: no
        such socket)."""
        return {"requests": self.endpoint, "frames": self.frames_endpoint, "views": self.views_endpoint}

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
        self.handlers.stop()
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
        views = self.handlers.views
        if not views or self.session is None:
            return _POLL_MS
        wait = min(v.due for v in views.values()) - time.monotonic()
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
            self._send_reply(envelope, P.encode_message(P.make_error(e.seq, e.code, e.message,
                                                                     request_type=e.request_type, v=e.version)))
            return
        except Exception as e:  # the server keeps serving whatever happens
            log.exception("internal error while parsing a request")
            self._send_reply(envelope, P.encode_message(P.make_error(None, "internal", f"{type(e).__name__}: {e}")))
            return
        if request.TYPE in SLOW_REQUESTS:
            if not self._worker.submit(("reply", [bytes(f.bytes) for f in envelope], request)):
                busy = P.make_error(request.seq, "busy", f"{self._worker.max_pending} renders are already queued; "
                                                         f"retry later", request_type=request.TYPE, v=request.version)
                self._send_reply(envelope, P.encode_message(busy))
            return
        self._send_reply(envelope, self.handlers.answer(request))

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
            return [b"reply", str(len(envelope)).encode(), *envelope, *self.handlers.answer(request)]
        _, name, seq, request = job
        try:
            fields, payloads, step = self.handlers.render_image(request)
            header = P.make_view(seq, name, v=request.version, image=fields["image"], step=step,
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
        view = self.handlers.views.get(frames[1].bytes.decode())
        if view is not None:
            view.pending = False
        if len(frames) > 2 and self._pub is not None:
            try:
                self._pub.send_multipart(frames[2:], zmq.NOBLOCK, copy=False)
            except zmq.Again:
                pass

    def _on_push(self, frames: list[zmq.Frame]) -> None:
        self.handlers.push(frames)

    # -- views ---------------------------------------------------------------------------------------------
    def _publish_views(self) -> None:
        if self._pub is None or self.session is None:
            return
        now = time.monotonic()
        for name, view in list(self.handlers.views.items()):
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
    from ngp_sdk.core.errors import DataError

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


def _replay_options(args: argparse.Namespace) -> Callable[[str, threading.Event], threading.Thread] | None:
    """``--replay BAG``: a function starting the replay thread once the server listens (None without it)."""
    if args.replay is None:
        return None
    from bridges.replay import ReplayStats, replay_bag
    from ngp_sdk.core.errors import ConfigError
    from ngp_sdk.robotics.cli import frame_options

    if args.snapshot or args.config:
        raise ConfigError("--replay configures its own session from the bag; drop --snapshot / --config")
    if not args.image_topic:
        raise ConfigError("--replay needs --image-topic")
    options = frame_options(args)
    # --aabb-scale of `ngp serve` applies when given; else the replay estimates it with the scene box
    aabb_scale = None if args.aabb_scale == P.CONFIGURE_DEFAULTS.aabb_scale else args.aabb_scale

    def start(endpoint: str, stop: threading.Event) -> threading.Thread:
        stats = ReplayStats()

        def run() -> None:
            try:
                replay_bag(args.replay, endpoint, options, rate=args.rate, aabb=args.aabb,
                           aabb_scale=aabb_scale, capacity=args.capacity, stop=stop, stats=stats)
                print(f"ngp serve: replay of {args.replay} done: {stats.frames_sent} frames in "
                      f"{stats.seconds:.1f} s {stats.cameras}", flush=True)
            except Exception as e:  # the server keeps serving; the replay's failure is reported
                stats.error = f"{type(e).__name__}: {e}"
                print(f"ngp serve: replay failed: {stats.error}", flush=True)

        thread = threading.Thread(target=run, name="ngp-replay", daemon=True)
        thread.start()
        return thread

    return start


#: How often ``ngp serve`` hands freed heap memory back to the operating system, in seconds.
_TRIM_PERIOD_S = 30.0


def _trimmer() -> Callable[[], object]:
    """``malloc_trim(0)`` of glibc, or a no-op elsewhere.

    A live server frees a ~1 MB frame buffer per frame, from several threads; glibc keeps such freed blocks in
    its per-thread heaps (above the dynamic mmap threshold), so without a trim the resident size creeps up with
    fragmentation although nothing leaks.
    """
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda *_: None


def _cmd_serve(args: argparse.Namespace) -> int:
    from ngp_sdk.core.session import Session

    live = {"capacity": args.capacity, "min_frames": args.min_frames, "policy": args.policy}
    session = None
    if args.snapshot:
        session = Session.live_from_snapshot(args.snapshot, device=args.device, **live)
    elif args.config:
        session = Session.live(P.CONFIGURE_DEFAULTS.primitive, args.config, device=args.device,
                               aabb_scale=args.aabb_scale, **live)
    curve = _curve_options(args)
    replay = _replay_options(args)
    save_dir = None if args.allow_any_path else Path(args.save_dir)
    server = NgpServer(session, bind=args.bind, frames_bind=args.frames_bind, views_bind=args.views_bind,
                       device=args.device, live_options={"policy": args.policy, "training_share": args.training_share},
                       save_dir=save_dir, **curve)
    where = "any path" if save_dir is None else f"snapshots in {save_dir.absolute()}"
    print(f"ngp serve: requests {server.endpoint}, frames {server.frames_endpoint}, views {server.views_endpoint}, "
          f"{where}", flush=True)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(json.dumps(ready_line(server)), flush=True)
    viewer = None
    if args.viewer is not None:
        from ngp_sdk.core.viewer import SceneViewer, ViewerOptions

        viewer = SceneViewer(lambda: server.session, ViewerOptions(
            host=args.viewer_host, port=args.viewer, save_dir=str(save_dir or "."), title="ngp serve (live)"))
        print(f"ngp serve: viewer at {viewer.url}", flush=True)
    if replay is not None:
        replay(server.endpoint, stop)
    trim, last_trim = _trimmer(), time.monotonic()
    try:
        while not stop.wait(0.2):
            if time.monotonic() - last_trim > _TRIM_PERIOD_S:
                trim(0)
                last_trim = time.monotonic()
    except KeyboardInterrupt:
        print("ngp serve: stopping", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if viewer is not None:
            viewer.stop()
        server.stop()
    return 0


def ready_line(server: NgpServer) -> dict[str, Any]:
    """The readiness line ``ngp serve`` prints (as one JSON line on stdout) once its sockets answer."""
    return {"ready": True, "server": SERVER_NAME, "protocols": list(P.PROTOCOL_VERSIONS),
            "endpoints": server.endpoints()}


def _training_share(text: str) -> float:
    try:
        return check_training_share(float(text))
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f"must be a number in [0, {MAX_TRAINING_SHARE}], got {text!r}") from None


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """``ngp serve``: the plugin hook of :mod:`ngp_sdk.cli` (entry point group ``ngp_sdk.commands``)."""
    p = subparsers.add_parser("serve", help="serve a live NeRF over ZeroMQ (docs/protocol.md)")
    p.add_argument("--bind", default=P.DEFAULT_REQUEST_ENDPOINT, help="ROUTER endpoint for requests")
    p.add_argument("--frames-bind", default=P.DEFAULT_FRAME_ENDPOINT, help="PULL endpoint for pushed frames")
    p.add_argument("--views-bind", default=P.DEFAULT_VIEW_ENDPOINT, help="PUB endpoint for views")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--snapshot", default=None, help="start from a NeRF snapshot (.ingp)")
    src.add_argument("--config", default=None, help="start a live session with this JSON config")
    defaults = P.CONFIGURE_DEFAULTS
    p.add_argument("--aabb-scale", type=int, default=defaults.aabb_scale, help="scene box of a --config session")
    p.add_argument("--capacity", type=int, default=defaults.capacity, help="frames kept for training")
    p.add_argument("--min-frames", type=int, default=defaults.min_frames, help="frames before training starts")
    p.add_argument("--policy", choices=("ring", "keyframes"), default="ring", help="replacement when full")
    p.add_argument("--training-share", type=_training_share, default=DEFAULT_TRAINING_SHARE, metavar="F",
                   help=f"share of the time training keeps while renders are asked back to back, "
                        f"0..{MAX_TRAINING_SHARE} (default %(default)s; 0 favours render latency: training only "
                        "fills the gaps between requests)")
    paths = p.add_mutually_exclusive_group()
    paths.add_argument("--save-dir", default="snapshots",
                       help="save/load paths are relative to this folder and may not leave it (default: ./snapshots; "
                            "absolute paths, '..' and symlinks out of it are refused with io_error)")
    paths.add_argument("--allow-any-path", action="store_true",
                       help="let clients save/load any path the server's user may write or read (trusted setups only)")
    p.add_argument("--viewer", type=int, nargs="?", const=8080, default=None, metavar="PORT",
                   help="also serve the browser viewer of the live session on PORT (default 8080; needs the 'viewer' "
                        "extra): frames appear as camera frustums, the view follows training, pause/resume/save")
    p.add_argument("--viewer-host", default="127.0.0.1", help="interface of the viewer (default %(default)s)")
    p.add_argument("--curve-cert", default=None,
                   help="require CURVE encryption with this server certificate (a .key_secret file from "
                        "zmq.auth.create_certificates); clients need its public key")
    p.add_argument("--curve-allow", default=None,
                   help="with --curve-cert: admit only clients whose public certificates (*.key) are in this folder")
    rp = p.add_argument_group("replay a bag (needs the 'ros' extra)")
    rp.add_argument("--replay", default=None, metavar="BAG",
                    help="stream this bag's frames into a new live session through the bridge, as a robot would")
    rp.add_argument("--rate", type=float, default=1.0, help="replay speed (1 = as recorded, 0 = as fast as acked)")
    from ngp_sdk.robotics.cli import add_bag_options

    add_bag_options(rp, image_topic_required=False, aabb_scale=False)
    p.set_defaults(handler=_cmd_serve)
