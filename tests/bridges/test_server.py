"""The ZeroMQ bridge over real loopback sockets: every message type, concurrent frames, hostile input.

Everything here speaks protocol version 1 (``NgpClient(protocol=1)``, ``v: 1`` headers): the version-1 client test
that must keep passing; ``test_protocol_v2.py`` covers version 2.
"""

from __future__ import annotations

import math
import socket
import struct
import threading
import time

import msgpack
import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from bridges import protocol as P  # noqa: E402
from bridges.client import NgpClient  # noqa: E402
from bridges.server import NgpServer  # noqa: E402
from ngp_sdk.core.task import WorldRenderer  # noqa: E402
from tests.ngp_sdk.nerf.synthetic_nerf import CAMERA_ANGLE_X, camera_positions, look_at_nerf, render_sphere  # noqa: E402
from tests.ngp_sdk.nerf.test_nerf_task import TINY  # noqa: E402

LOOPBACK = "tcp://127.0.0.1:*"
SIZE = 32
FOCAL = 0.5 * SIZE / math.tan(0.5 * CAMERA_ANGLE_X)
INTR = P.CameraIntrinsics(width=SIZE, height=SIZE, fx=FOCAL, fy=FOCAL, cx=SIZE / 2, cy=SIZE / 2)


def _client(endpoint: str, **kw) -> NgpClient:
    """A client that speaks protocol version 1."""
    return NgpClient(endpoint, protocol=1, **kw)


def _request(kind: str, seq: int, **fields) -> dict:
    """A version-1 request header."""
    return P.make_request(kind, seq, v=1, **fields)


def _wait(pred, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)


def _server(**kw) -> NgpServer:
    return NgpServer(bind=LOOPBACK, frames_bind=LOOPBACK, views_bind=LOOPBACK, device="cpu", **kw).start()


@pytest.fixture(scope="module")
def trained_server():
    """A server with a live sphere NeRF that trains in the background."""
    srv = _server()
    with _client(srv.endpoint, timeout_s=30) as c:
        c.configure(config=TINY, capacity=32, min_frames=4)
        for i, pos in enumerate(camera_positions(16, 3.0, 0)):
            m = look_at_nerf(pos)
            assert c.add_frame(render_sphere(m, SIZE), m, INTR) == i
        _wait(lambda: c.status()["step"] >= 20, 60, "20 training steps")
    yield srv
    srv.stop()


@pytest.fixture()
def client(trained_server):
    with _client(trained_server.endpoint, timeout_s=30) as c:
        yield c


def _raw_dealer(ctx, endpoint):
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(endpoint)
    return s


def _roundtrip(sock, frames, timeout=10.0):
    sock.send_multipart(frames)
    assert sock.poll(int(timeout * 1000)), "no reply"
    header = msgpack.unpackb(sock.recv_multipart()[0], raw=False)
    return header


# -- every message type ------------------------------------------------------------------------------------------
def test_every_message_type_round_trips(client, trained_server, tmp_path):
    hello = client.hello()
    assert hello["protocol"] == 1 and "nerf" in hello["capabilities"] and hello["limits"]["max_views"] == 16
    assert hello["endpoints"]["frames"] == trained_server.frames_endpoint
    st = client.status()
    assert st["state"] == "training" and st["frame_count"] == 16 and st["loss"] is not None
    pose = look_at_nerf(camera_positions(16, 3.0, 0)[0])
    m = pose.copy()
    assert client.add_frame(render_sphere(m, SIZE), m, INTR, convention="opengl") == 16
    opencv = m.copy()
    opencv[:3, 1:3] *= -1
    assert client.add_frame(render_sphere(m, SIZE), opencv, INTR, convention="opencv", encoding="png") == 17
    img = client.render(pose, INTR)
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    assert client.render(pose, INTR, 24, 16).shape == (16, 24, 3)
    rgba, depth = client.render(pose, INTR, encoding="rgba8", depth=True)
    assert rgba.shape == (SIZE, SIZE, 4) and depth.shape == (SIZE, SIZE)
    hit = render_sphere(pose, SIZE)[..., 3] > 0
    assert 1.8 < np.median(depth[hit]) < 3.0  # the sphere's surface is 2.4 to 2.6 units in front of the camera
    for enc, shape in (("32FC3", (SIZE, SIZE, 3)), ("png", (SIZE, SIZE, 4)), ("jpeg", (SIZE, SIZE, 3))):
        assert client.render(pose, INTR, encoding=enc).shape == shape
    saved = client.save(str(tmp_path / "live.ingp"))
    assert saved["bytes"] > 0
    assert client.pause() == "paused"
    assert client.pause() == "paused"  # idempotent
    assert client.status()["state"] == "paused"
    assert client.resume() in ("training", "waiting")
    client.resume()
    _wait(lambda: client.status()["step"] >= 200, 60, "200 training steps")  # a surface for marching cubes
    fields, data = client.export_mesh(resolution=32, format="obj", threshold=1.0)
    assert fields["format"] == "obj" and fields["face_count"] > 0 and b"\nf " in data
    assert client.set_view("front", pose, INTR, rate=20, encoding="jpeg") == 1
    with client.subscribe_views(["front"]) as views:
        got = [views.recv(10) for _ in range(2)]
    assert all(v is not None and v.name == "front" and v.image.shape == (SIZE, SIZE, 3) for v in got)
    assert got[1].seq > got[0].seq
    assert client.clear_view("front") == 1 and client.clear_view() == 0
    loaded = client.load(saved["path"])
    assert loaded["step"] > 0 and loaded["frame_count"] == 0
    assert client.status()["state"] == "waiting"  # a loaded model waits for frames
    assert client.render(pose, INTR).shape == (SIZE, SIZE, 3)


def test_renders_are_answered_while_training(trained_server):
    with _client(trained_server.endpoint, timeout_s=30) as c:
        if c.status()["frame_count"] == 0:  # the round-trip test loaded a snapshot: give it frames again
            for pos in camera_positions(8, 3.0, 2):
                m = look_at_nerf(pos)
                c.add_frame(render_sphere(m, SIZE), m, INTR)
        c.resume()
        pose = look_at_nerf(np.array([0.0, -3.0, 1.0]))
        steps = []
        for _ in range(4):
            t = time.monotonic()
            assert c.render(pose, INTR).shape == (SIZE, SIZE, 3)
            assert time.monotonic() - t < 10
            steps.append(c.status()["step"])
            time.sleep(0.2)
        assert steps[-1] > steps[0] and c.status()["state"] == "training"


# -- frames from concurrent clients ------------------------------------------------------------------------------
def test_1000_frames_from_4_clients_none_lost():
    srv = _server()
    try:
        with _client(srv.endpoint, timeout_s=30) as c:
            c.configure(config=TINY, capacity=2000, min_frames=2000)  # never trains: frames only
        results: dict[int, tuple[list[int], int]] = {}

        def run(k: int) -> None:
            rng = np.random.default_rng(k)
            with _client(srv.endpoint, timeout_s=30) as c:
                c.hello()
                acked, pushed = [], 0
                for i in range(250):
                    img = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                    intr = {"width": 8, "height": 8, "fx": 8.0, "fy": 8.0, "cx": 4.0, "cy": 4.0}
                    if i % 2:
                        pushed += bool(c.add_frame(img, np.eye(4), intr, push=True))
                    else:
                        acked.append(c.add_frame(img, np.eye(4), intr))
                # linger: queued pushes must reach the server before the socket closes
                _wait(lambda: c.status()["frames_pushed"] >= pushed, 20, "pushed frames delivered")
                results[k] = (acked, pushed)

        threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 4
        acked = [i for a, _ in results.values() for i in a]
        pushed = sum(p for _, p in results.values())
        assert len(acked) == 500 and len(set(acked)) == 500  # every acked frame got its own index
        with _client(srv.endpoint, timeout_s=30) as c:
            _wait(lambda: c.status()["frame_count"] == 500 + pushed, 20, "all frames counted")
            st = c.status()
        assert st["frames_pushed"] == pushed and st["frames_rejected"] == 0 and pushed > 0
        assert max(acked) < 500 + pushed
    finally:
        srv.stop()


# -- hostile input -----------------------------------------------------------------------------------------------
def _zmtp_partial_message(endpoint: str) -> None:
    """Connect with raw TCP, speak ZMTP 3.0 (NULL, DEALER) and disconnect in the middle of a message frame."""
    host, port = endpoint.rsplit("/", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31)
        prop = b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
        body = b"\x05READY" + prop
        s.sendall(b"\x04" + bytes([len(body)]) + body)
        header = msgpack.packb(_request("hello", 5))
        s.sendall(b"\x00" + bytes([len(header)]) + header[: len(header) // 2])  # half a frame, then hang up
        time.sleep(0.1)


def test_hostile_input_gets_typed_errors_and_the_server_keeps_serving(tmp_path):
    srv = _server()
    ctx = zmq.Context()
    try:
        raw = _raw_dealer(ctx, srv.endpoint)
        pose = P.pose_to_wire(np.eye(4))
        intr = INTR.to_wire()
        image = {"encoding": "rgb8", "width": 2, "height": 2}

        def err(frames):
            h = _roundtrip(raw, frames)
            assert h["type"] == "error", h
            return h["code"], h["seq"]

        pack = msgpack.packb
        assert err([pack(_request("render", 1, width=4, height=4, intrinsics=intr, pose=pose))]) == (
            "no_session", 1)
        assert err([b"\xc1not msgpack"]) == ("bad_header", None)
        assert err([pack({**_request("hello", 2), "type": "frobnicate"})]) == ("unknown_type", 2)
        assert err([pack({**_request("hello", 3), "v": 3})]) == ("bad_version", 3)
        with _client(srv.endpoint, timeout_s=30) as c:
            c.configure(config=TINY, capacity=1000, min_frames=1000)
        add = _request("add_frame", 4, image=image, intrinsics=intr, pose=pose)
        assert err([pack(add)]) == ("payload_mismatch", 4)  # truncated multipart: the payload frame is missing
        assert err([pack(add), b"\x00" * 11]) == ("payload_mismatch", 4)  # 11 bytes, 2x2 rgb8 needs 12
        nan_pose = {"matrix": [math.nan] + pose["matrix"][1:], "convention": "opengl"}
        assert err([pack({**add, "pose": nan_pose}), b"\x00" * 12]) == ("bad_pose", 4)
        assert err([pack({**add, "intrinsic": intr}), b"\x00" * 12]) == ("bad_field", 4)
        assert err([pack(_request("load", 6, path=str(tmp_path / "missing.ingp")))]) == ("io_error", 6)
        # an internal failure is reported and the server goes on
        original = srv.handlers.table["status"]
        srv.handlers.table["status"] = lambda req: 1 / 0
        try:
            assert err([pack(_request("status", 7))]) == ("internal", 7)
        finally:
            srv.handlers.table["status"] = original
        # a 100 MB message (over max_message_bytes, each frame within max_zmq_frame_bytes) is answered too_large
        assert err([pack(_request("hello", 8)), b"\x00" * (100 * 2**20)]) == ("too_large", 8)
        # a 130 MB frame: ZeroMQ drops it (MAXMSGSIZE) and the connection; the next client is served
        big = ctx.socket(zmq.DEALER)
        big.linger = 0
        big.connect(srv.endpoint)
        big.send_multipart([pack(_request("hello", 8)), b"\x00" * (130 * 2**20)])
        assert not big.poll(1500)
        big.close(0)
        _zmtp_partial_message(srv.endpoint)
        # the PULL socket rejects silently but counts
        push = ctx.socket(zmq.PUSH)
        push.linger = 0
        push.connect(srv.frames_endpoint)
        push.send_multipart([pack(_request("status", 9))])
        push.send_multipart([b"junk"])
        with _client(srv.endpoint, timeout_s=30) as c:
            assert c.hello()["protocol"] == 1
            _wait(lambda: c.status()["frames_rejected"] == 2, 10, "pushed junk rejected")
            st = c.status()
            assert st["last_frame_error"]["code"] == "bad_header" and st["frame_count"] == 0
            with pytest.raises(P.BadPoseError):
                c.render(np.diag([1.0, 1.0, 1.0, 2.0]), INTR)
        push.close(0)
        raw.close(0)
        assert _roundtrip(_raw_dealer(ctx, srv.endpoint), [pack(_request("hello", 10))])["type"] == "hello_ok"
    finally:
        ctx.destroy(0)
        srv.stop()


def test_curve_allow_list():
    server_pub, server_sec = zmq.curve_keypair()
    good_pub, good_sec = zmq.curve_keypair()
    bad_keys = zmq.curve_keypair()
    srv = _server(curve_keys=(server_pub, server_sec), allow=[good_pub])
    try:
        with _client(srv.endpoint, timeout_s=5, curve_server_key=server_pub, curve_keys=(good_pub, good_sec)) as c:
            assert c.hello()["protocol"] == 1
        with _client(srv.endpoint, timeout_s=1, curve_server_key=server_pub, curve_keys=bad_keys) as c:
            with pytest.raises(TimeoutError):
                c.hello()
    finally:
        srv.stop()


# -- slow renders run off the poll thread ------------------------------------------------------------------------
class _SlowSession:
    """Just enough of a Session for the server: renders take ``delay`` seconds."""

    def __init__(self, delay: float):
        self.delay = delay
        self.step_count = 0
        self.task = _SlowTask(delay)
        self.primitive = "slow"

    def locked(self):
        import contextlib

        return contextlib.nullcontext()

    def status(self):
        return {"state": "training", "step": self.step_count}

    def start(self):
        pass

    def stop(self):
        pass


class _SlowTask(WorldRenderer):
    """A world renderer that takes ``delay`` seconds per render."""

    primitive = "slow"

    def __init__(self, delay: float):
        self.delay = delay

    def render_world(self, pose, intr, *, background=None):
        import types

        time.sleep(self.delay)
        h, w = intr.height, intr.width
        return types.SimpleNamespace(rgb=np.full((h, w, 3), 0.5, np.float32), depth=np.zeros((h, w), np.float32),
                                     opacity=np.ones((h, w), np.float32))


def test_status_is_answered_while_a_slow_render_runs_and_a_full_queue_says_busy():
    srv = NgpServer(_SlowSession(1.5), bind=LOOPBACK, frames_bind=None, views_bind=None, device="cpu",
                    max_pending_renders=1).start()
    results: dict[str, object] = {}

    def render(key: str) -> None:
        with _client(srv.endpoint, timeout_s=30) as c:
            try:
                results[key] = c.render(np.eye(4), INTR)
            except P.ProtocolError as e:
                results[key] = e

    try:
        first = threading.Thread(target=render, args=("first",))
        first.start()
        time.sleep(0.4)  # the worker has taken the first render
        second = threading.Thread(target=render, args=("second",))
        second.start()  # waits in the queue (max_pending_renders=1)
        time.sleep(0.2)
        with _client(srv.endpoint, timeout_s=30) as c:
            t = time.monotonic()
            assert c.status()["state"] == "training"
            assert time.monotonic() - t < 0.5  # not stuck behind 1.5 s renders
            with pytest.raises(P.BusyError):
                c.render(np.eye(4), INTR)
        first.join(10)
        second.join(10)
        for key in ("first", "second"):
            img = results[key]
            assert isinstance(img, np.ndarray) and img.shape == (SIZE, SIZE, 3) and int(img[0, 0, 0]) in (127, 128)
    finally:
        srv.stop()
