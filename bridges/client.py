"""Python client of the ngp-sdk bridge (``docs/protocol.md``): requests on a DEALER, frames on a PUSH, views on a SUB.

::

    with NgpClient("tcp://127.0.0.1:5555") as c:
        c.configure(aabb_scale=1)
        c.add_frame(rgb, c2w, intrinsics)                  # acknowledged: returns the frame index
        c.add_frame(rgb, c2w, intrinsics, push=True)       # fire-and-forget: False when dropped
        img = c.render(c2w, intrinsics, 200, 200)          # uint8 [200, 200, 3]

Replies are matched to requests by ``seq`` (a stale reply of a timed-out request is discarded). Error replies are
raised as the protocol's typed exceptions (:class:`bridges.protocol.BadPoseError`, ...); a request that gets no
reply within the timeout raises :class:`TimeoutError`. The client speaks protocol version 2 unless built with
``protocol=1``; one counter numbers the requests and the pushed frames alike, so ``seq`` values never repeat.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from . import protocol as P

__all__ = ["NgpClient", "View", "ViewStream", "intrinsics_from", "connectable_endpoint"]

_PUSH_SNDHWM = 4


def intrinsics_from(intrinsics: Any, width: int | None = None, height: int | None = None) -> P.CameraIntrinsics:
    """A :class:`~bridges.protocol.CameraIntrinsics` from itself, any object with the same attributes
    (e.g. ``ngp_sdk.core.cameras.Intrinsics``) or a dict; ``width``/``height`` override the size."""
    if isinstance(intrinsics, P.CameraIntrinsics) and width is None and height is None:
        return intrinsics
    get = intrinsics.get if isinstance(intrinsics, dict) else lambda k, d=None: getattr(intrinsics, k, d)
    return P.CameraIntrinsics(width=int(width if width is not None else get("width")),
                              height=int(height if height is not None else get("height")),
                              fx=float(get("fx")), fy=float(get("fy")), cx=float(get("cx")), cy=float(get("cy")),
                              model=str(get("model", "PINHOLE")), dist=tuple(get("dist", (0.0,) * 4)))


_WILDCARD_HOSTS = ("0.0.0.0", "[::]", "*", "[::0]")
_TCP = re.compile(r"tcp://(\[[^\]]*\]|[^:/]*):(\d+|\*)$")


def connectable_endpoint(announced: str, via: str) -> str:
    """An endpoint from ``hello_ok.endpoints`` made connectable: a wildcard host (``0.0.0.0``, ``[::]``, ``*``: a
    socket bound to every interface) is replaced by the host of ``via``, the request endpoint this client reached.
    Anything else (a concrete host, ``ipc://``, ``inproc://``) is returned unchanged."""
    m = _TCP.match(announced)
    if m is None or m.group(1) not in _WILDCARD_HOSTS:
        return announced
    host = _TCP.match(via)
    return announced if host is None else f"tcp://{host.group(1)}:{m.group(2)}"


@dataclass(frozen=True, kw_only=True, eq=False)
class View:
    """One published view.

    Attributes:
        name: view name.
        seq: publication counter (gaps: dropped messages).
        step: training step of the model that rendered it.
        stamp_ns: server clock at render time.
        image: decoded image (uint8 ``[H, W, 3|4]`` or float32 for ``32FC3``).
        depth: float32 ``[H, W]`` z-depth, or None.
    """

    name: str
    seq: int
    step: int
    stamp_ns: int
    image: np.ndarray
    depth: np.ndarray | None = None


class ViewStream:
    """A SUB socket receiving views (from :meth:`NgpClient.subscribe_views`); close it when done."""

    def __init__(self, ctx: zmq.Context, endpoint: str, names: list[str] | None, limits: P.Limits,
                 curve: dict[str, bytes] | None = None):
        self._sock = ctx.socket(zmq.SUB)
        self._sock.linger = 0
        self._sock.rcvhwm = 2
        for k, v in (curve or {}).items():
            setattr(self._sock, k, v)
        for topic in ([P.view_topic(n) for n in names] if names else [b""]):
            self._sock.setsockopt(zmq.SUBSCRIBE, topic)
        self._sock.connect(endpoint)
        self._limits = limits

    def recv(self, timeout_s: float = 10.0) -> View | None:
        """The next view, or None after ``timeout_s`` seconds without one."""
        if not self._sock.poll(int(timeout_s * 1000)):
            return None
        frames = self._sock.recv_multipart(copy=False)
        reply = P.parse_reply(frames[1:], self._limits)
        f = reply.fields
        depth = P.decode_depth(f["depth"], reply.payloads[1], self._limits) if "depth" in f else None
        return View(name=f["name"], seq=reply.seq, step=int(f["step"]), stamp_ns=reply.stamp_ns,
                    image=P.decode_image(f["image"], reply.payloads[0], self._limits), depth=depth)

    def close(self) -> None:
        self._sock.close(0)

    def __enter__(self) -> ViewStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class NgpClient:
    """Talk to an :class:`~bridges.server.NgpServer`.

    Args:
        endpoint: the server's request (ROUTER) endpoint.
        frames_endpoint: its PULL endpoint for ``push=True`` frames; None: learnt from ``hello`` when needed.
        views_endpoint: its PUB endpoint; None: learnt from ``hello`` when needed.
        timeout_s: seconds to wait for each reply.
        limits: limits used to decode replies.
        curve_server_key: the server's CURVE public key (Z85) to connect with encryption; the client's own
            key pair is ``curve_keys`` (generated when omitted).
        curve_keys: ``(public, secret)`` of this client (Z85).
        protocol: protocol version spoken (the ``v`` of every request; replies come in the same version): 2, or 1
            for a server that only speaks version 1.

    Requests whose message would exceed ``limits.max_message_bytes`` raise :class:`~bridges.protocol.TooLargeError`
    here without being sent.
    """

    def __init__(self, endpoint: str = P.DEFAULT_REQUEST_ENDPOINT, *, frames_endpoint: str | None = None,
                 views_endpoint: str | None = None, timeout_s: float = 10.0, limits: P.Limits = P.DEFAULT_LIMITS,
                 curve_server_key: bytes | None = None, curve_keys: tuple[bytes, bytes] | None = None,
                 protocol: int = P.PROTOCOL_VERSION):
        if protocol not in P.PROTOCOL_VERSIONS:
            raise ValueError(f"protocol must be one of {P.PROTOCOL_VERSIONS}, got {protocol!r}")
        self.protocol = protocol
        self.endpoint, self.timeout_s, self.limits = endpoint, float(timeout_s), limits
        self._frames_endpoint, self._views_endpoint = frames_endpoint, views_endpoint
        self._ctx = zmq.Context()
        self._curve: dict[str, bytes] | None = None
        if curve_server_key is not None:
            public, secret = curve_keys or zmq.curve_keypair()
            self._curve = {"curve_serverkey": curve_server_key, "curve_publickey": public,
                           "curve_secretkey": secret}
        self._dealer = self._socket(zmq.DEALER, endpoint)
        self._push: zmq.Socket | None = None
        self._seq = itertools.count(1)
        self.frames_dropped = 0

    def _socket(self, kind: int, endpoint: str) -> zmq.Socket:
        s = self._ctx.socket(kind)
        s.linger = 0
        for k, v in (self._curve or {}).items():
            setattr(s, k, v)
        if kind == zmq.PUSH:
            s.sndhwm = _PUSH_SNDHWM
        s.connect(endpoint)
        return s

    def close(self) -> None:
        """Close the sockets (pending pushes are dropped)."""
        for s in (self._dealer, self._push):
            if s is not None:
                s.close(0)
        self._ctx.term()

    def __enter__(self) -> NgpClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------------------
    def next_seq(self) -> int:
        """A fresh request id."""
        return next(self._seq)

    def request(self, req: P.Request, *, timeout_s: float | None = None) -> P.Reply:
        """Send a typed request and wait for its reply (matched by ``seq``).

        Raises:
            ProtocolError: the server answered with an error (its typed subclass).
            TimeoutError: no reply in time.
        """
        self._dealer.send_multipart(self._checked(req.to_frames()), copy=False)
        return self._wait(req, timeout_s)

    def _checked(self, frames: list[Any]) -> list[Any]:
        """``frames``, unless together they exceed ``max_message_bytes`` (the server would refuse them)."""
        total = sum(memoryview(f).nbytes for f in frames)
        if total > self.limits.max_message_bytes:
            raise P.TooLargeError(f"the message is {total} bytes; max_message_bytes is {self.limits.max_message_bytes}")
        return frames

    def _call(self, cls: type[P.Request], *, timeout_s: float | None = None, **fields: Any) -> P.Reply:
        return self.request(cls(seq=self.next_seq(), version=self.protocol, **fields), timeout_s=timeout_s)

    # -- requests ------------------------------------------------------------------------------------------
    def hello(self, client: str = "ngp-sdk python client") -> dict[str, Any]:
        """Handshake: server name, protocol, capabilities, limits, endpoints (wildcard hosts made connectable)."""
        fields = self._call(P.Hello, client=client).fields
        endpoints = fields.get("endpoints") or {}
        if endpoints.get("frames"):
            self._frames_endpoint = self._frames_endpoint or connectable_endpoint(endpoints["frames"], self.endpoint)
        if endpoints.get("views"):
            self._views_endpoint = self._views_endpoint or connectable_endpoint(endpoints["views"], self.endpoint)
        return fields

    def wait_for_server(self, timeout_s: float = 120.0) -> dict[str, Any]:
        """:meth:`hello` until a server answers (one just spawned needs a moment to import Warp).

        Raises:
            TimeoutError: no answer within ``timeout_s`` seconds.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.hello()
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def configure(self, *, config: dict[str, Any] | None = None, aabb_scale: int = 1, scale: float = 0.33,
                  offset: tuple[float, float, float] = (0.5, 0.5, 0.5), capacity: int = 256, min_frames: int = 1,
                  timeout_s: float | None = 300.0) -> dict[str, Any]:
        """Create a new live NeRF session (the first one may take a while: kernels compile)."""
        return self._call(P.Configure, timeout_s=timeout_s, primitive="nerf", config=dict(config or {}),
                          aabb_scale=aabb_scale, scale=scale, offset=tuple(offset), capacity=capacity,
                          min_frames=min_frames).fields

    def add_frame(self, image: np.ndarray, pose: Any, intrinsics: Any, *, convention: str = "opengl",
                  encoding: str = "rgb8", depth: np.ndarray | None = None, push: bool = False,
                  stamp_ns: int | None = None, camera_id: str = "", pose_noisy: bool = False,
                  pose_covariance: Any = None) -> int | bool:
        """Send one posed frame.

        Args:
            image: uint8 ``[H, W, 3]`` RGB or ``[H, W, 4]`` RGBA.
            pose: 4x4 camera-to-world in ``convention`` (``opengl`` or ``opencv``).
            intrinsics: camera of this image (``CameraIntrinsics``, ``ngp_sdk.core.cameras.Intrinsics`` or a dict).
            convention: camera axes of ``pose``.
            encoding: wire encoding: ``rgb8``/``rgba8`` (matching the channels), ``png`` or ``jpeg``.
            depth: optional float ``[H, W]`` z-depth in world units.
            push: send on the PUSH socket without waiting (never blocks).
            stamp_ns: capture time (default: now).
            camera_id: which camera of a rig took the frame (servers announcing the ``camera_id`` capability).
            pose_noisy: the pose is approximate: the server refines it while training (protocol 2, servers
                announcing ``pose_refinement``; others answer ``unsupported``).
            pose_covariance: ``[6, 6]`` (or 36 numbers) covariance of the pose, order ``(rx, ry, rz, tx, ty, tz)``;
                one that is not all zeros makes the frame noisy (protocol 2).

        Returns:
            ``push=False``: the frame index from the reply (-1: discarded by a keyframe policy).
            ``push=True``: True when queued, False when dropped because the queue was full.
        """
        img = np.asarray(image)
        if encoding in ("rgb8", "rgba8"):
            encoding = "rgba8" if img.shape[-1] == 4 else "rgb8"
        intr = intrinsics_from(intrinsics, img.shape[1], img.shape[0])
        covariance = None if pose_covariance is None else np.asarray(pose_covariance, np.float64).reshape(6, 6)
        req = P.AddFrame(seq=self.next_seq(), stamp_ns=stamp_ns, image=img, intrinsics=intr,
                         pose=np.asarray(pose, np.float64), depth=depth, encoding=encoding, camera_id=camera_id,
                         pose_noisy=pose_noisy, pose_covariance=covariance, version=self.protocol)
        frames = self._checked(req.to_frames())
        if convention != "opengl":  # to_frames writes opengl poses: rewrite the header with the caller's matrix
            header = P.decode_header(frames[0], self.limits)
            header["pose"] = P.pose_to_wire(pose, convention)
            frames = P.encode_message(header, frames[1:])
        if not push:
            self._dealer.send_multipart(frames, copy=False)
            return int(self._wait(req).fields["index"])
        if self._push is None:
            if self._frames_endpoint is None:
                self.hello()
            if self._frames_endpoint is None:
                raise P.UnsupportedError("the server announced no frames endpoint")
            self._push = self._socket(zmq.PUSH, self._frames_endpoint)
        try:
            self._push.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.frames_dropped += 1
            return False
        return True

    def _wait(self, req: P.Request, timeout_s: float | None = None) -> P.Reply:
        """Wait for the reply to an already sent request (replies to other ``seq`` values are discarded)."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._dealer.poll(max(1, int(left * 1000))):
                raise TimeoutError(f"no reply to {req.TYPE!r} (seq {req.seq}) from {self.endpoint} in time")
            try:
                reply = P.parse_reply(self._dealer.recv_multipart(copy=False), self.limits)
            except P.ProtocolError as e:
                if e.seq is None or e.seq == req.seq:
                    raise
                continue
            if reply.seq == req.seq:
                return reply

    def render(self, pose: Any, intrinsics: Any, width: int | None = None, height: int | None = None, *,
               encoding: str = "rgb8", depth: bool = False, convention: str = "opengl", quality: int = 90,
               background: tuple[float, float, float] | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Render a view: the decoded image, or ``(image, depth)`` when ``depth`` is True.

        ``background``: RGB in [0, 1] (colour code space) behind the scene where opacity < 1 (protocol 2); None:
        the server's default (white when the frames had alpha, else black).
        """
        m = np.asarray(pose, np.float64)
        if convention == "opencv":
            m = m.copy()
            m[:3, 1:3] *= -1
        reply = self._call(P.Render, pose=m, intrinsics=intrinsics_from(intrinsics, width, height),
                           encoding=encoding, depth=depth, quality=quality,
                           background=None if background is None else tuple(float(c) for c in background))
        img = P.decode_image(reply.fields["image"], reply.payloads[0], self.limits)
        if depth:
            return img, P.decode_depth(reply.fields["depth"], reply.payloads[1], self.limits)
        return img

    def status(self) -> dict[str, Any]:
        """Training state, step, loss, frame counts."""
        return self._call(P.Status).fields

    def save(self, path: str) -> dict[str, Any]:
        """Write a snapshot on the server's file system."""
        return self._call(P.Save, path=str(path), timeout_s=max(self.timeout_s, 60.0)).fields

    def load(self, path: str) -> dict[str, Any]:
        """Replace the server's session by a snapshot on its file system."""
        return self._call(P.Load, path=str(path), timeout_s=max(self.timeout_s, 300.0)).fields

    def pause(self) -> str:
        """Pause training; returns the state."""
        return self._call(P.Pause).fields["state"]

    def resume(self) -> str:
        """Resume training; returns the state."""
        return self._call(P.Resume).fields["state"]

    def export_mesh(self, *, resolution: int = 256, format: str = "ply", threshold: float = 2.5,
                    timeout_s: float | None = 120.0) -> tuple[dict[str, Any], bytes]:
        """Marching-cubes mesh: ``(reply fields, file bytes)``."""
        reply = self._call(P.ExportMesh, resolution=resolution, format=format, threshold=threshold,
                           timeout_s=timeout_s)
        return reply.fields, bytes(reply.payloads[0])

    def set_view(self, name: str, pose: Any, intrinsics: Any, width: int | None = None, height: int | None = None,
                 *, rate: float = 5.0, encoding: str = "jpeg", depth: bool = False, quality: int = 90,
                 background: tuple[float, float, float] | None = None) -> int:
        """Register (or replace) a streamed view; returns the number of views (``background``: as in
        :meth:`render`)."""
        return int(self._call(P.SetView, name=name, rate=rate, pose=np.asarray(pose, np.float64),
                              intrinsics=intrinsics_from(intrinsics, width, height), encoding=encoding, depth=depth,
                              quality=quality,
                              background=None if background is None else tuple(float(c) for c in background)
                              ).fields["views"])

    def clear_view(self, name: str | None = None) -> int:
        """Remove one view (or all); returns how many were removed."""
        return int(self._call(P.ClearView, name=name).fields["cleared"])

    def subscribe_views(self, names: list[str] | None = None, *, endpoint: str | None = None) -> ViewStream:
        """A :class:`ViewStream` of the named views (all when None)."""
        if endpoint is None and self._views_endpoint is None:
            self.hello()
        ep = endpoint or self._views_endpoint
        if ep is None:
            raise P.UnsupportedError("the server announced no views endpoint")
        return ViewStream(self._ctx, ep, names, self.limits, self._curve)
