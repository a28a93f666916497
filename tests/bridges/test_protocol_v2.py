"""Protocol version 2 over real sockets: one test per answer ``docs/protocol.md`` gives a client that version 1 left
it to guess -- endpoints and readiness, render background and alpha, the order of the checks, encodings, oversized
messages, ``seq``, session states, noisy poses, depth and camera ids. ``test_server.py`` stays the version-1 client
test; a version-1 client is also answered here, on the same servers.

The live server's session waits for 32 frames and gets fewer, so it never trains: its renders are repeatable.
"""

from __future__ import annotations

import argparse
import json
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from bridges import protocol as P  # noqa: E402
from bridges.client import NgpClient, connectable_endpoint  # noqa: E402
from bridges.handlers import accepts_refine_pose  # noqa: E402
from bridges.server import NgpServer, register_cli  # noqa: E402
from ngp_sdk.core.session import Session  # noqa: E402
from ngp_sdk.nerf.live import LiveNerfTask  # noqa: E402
from tests.bridges.test_server import INTR, LOOPBACK, SIZE, _raw_dealer, _roundtrip, _wait  # noqa: E402
from tests.ngp_sdk.nerf.synthetic_nerf import camera_positions, look_at_nerf, render_sphere  # noqa: E402
from tests.ngp_sdk.nerf.test_nerf_task import TINY  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
#: 1 MiB messages, hence 2 MiB ZeroMQ frames: the oversize tests stay small
SMALL = P.Limits(max_message_bytes=2**20)
POSES = [look_at_nerf(p) for p in camera_positions(8, 3.0, 0)]
RGBA = [render_sphere(m, SIZE) for m in POSES]
INTR2 = {"fx": 2.0, "fy": 2.0, "cx": 1.0, "cy": 1.0}
IMAGE2 = {"encoding": "rgb8", "width": 2, "height": 2}


class RefiningTask(LiveNerfTask):
    """The live NeRF, recording each ``add_frame`` of the version-2 signature (``refine_pose``)."""

    def add_frame(self, image, c2w, intrinsics, depth=None, *, refine_pose: bool = False) -> int:
        self.calls.append({"refine_pose": refine_pose, "depth": depth})
        extra = {"refine_pose": refine_pose} if accepts_refine_pose(LiveNerfTask) else {}
        return super().add_frame(image, c2w, intrinsics, depth, **extra)


class ExactPoseTask(LiveNerfTask):
    """A live NeRF whose ``add_frame`` has no ``refine_pose``: a server without pose refinement."""

    def add_frame(self, image, c2w, intrinsics, depth=None) -> int:
        return LiveNerfTask.add_frame(self, image, c2w, intrinsics, depth)


def _session(task_class: type) -> Session:
    session = Session.live("nerf", TINY, device="cpu", capacity=32, min_frames=32)
    session.task.__class__ = task_class
    session.task.calls = []
    return session


def _local(endpoint: str) -> str:
    """A connectable form of an endpoint bound to every interface."""
    return connectable_endpoint(endpoint, "tcp://127.0.0.1:1")


def _pack(header: dict) -> bytes:
    return msgpack.packb(header, use_bin_type=True)


def _add(seq: int, v: int = 2, **fields) -> dict:
    """A 2x2 rgb8 ``add_frame`` header (payload: 12 bytes)."""
    return P.make_request("add_frame", seq, v=v, **{"image": IMAGE2, "intrinsics": INTR2,
                                                    "pose": P.pose_to_wire(np.eye(4)), **fields})


def _frame(seq: int, image: np.ndarray, pose: np.ndarray, **fields) -> list:
    """The frames of a version-2 ``add_frame`` of a ``SIZE`` image, with extra header fields set raw."""
    encoding = "rgba8" if image.shape[-1] == 4 else "rgb8"
    frames = P.AddFrame(seq=seq, image=image, intrinsics=INTR, pose=pose, encoding=encoding).to_frames()
    return [_pack({**P.decode_header(frames[0]), **fields}), *frames[1:]]


def _error(sock, frames: list) -> tuple:
    h = _roundtrip(sock, frames)
    assert h["type"] == "error", h
    return h["code"], h["seq"], h["v"]


@pytest.fixture(scope="module")
def bare():
    """A server without a session, bound to every interface and to port 0, with 1 MiB messages, no PUB socket."""
    srv = NgpServer(bind="tcp://*:*", frames_bind="tcp://127.0.0.1:0", views_bind=None, limits=SMALL,
                    device="cpu").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def live():
    """A server whose session (a :class:`RefiningTask`) holds one RGBA frame and waits for 32."""
    srv = NgpServer(_session(RefiningTask), bind=LOOPBACK, frames_bind=LOOPBACK, views_bind=LOOPBACK,
                    device="cpu").start()
    with NgpClient(srv.endpoint, timeout_s=60) as c:
        assert c.add_frame(RGBA[0], POSES[0], INTR) == 0  # RGBA first: an RGBA session
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(0)


# -- 1.1 endpoints, 2.2 versions -----------------------------------------------------------------------------
def test_hello_announces_resolved_endpoints_and_answers_each_version(bare, ctx):
    with NgpClient(_local(bare.endpoint), timeout_s=10) as c:
        h = c.hello()
        assert h["protocol"] == 2 and h["protocols"] == [1, 2]
        eps = h["endpoints"]
        assert set(eps) == {"requests", "frames", "views"} and eps["views"] is None  # no PUB socket: nil
        assert re.fullmatch(r"tcp://0\.0\.0\.0:\d+", eps["requests"]) and eps["requests"] == bare.endpoint
        assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", eps["frames"]) and not eps["frames"].endswith(":0")
        assert connectable_endpoint(eps["requests"], c.endpoint) == c.endpoint  # wildcard host: the one we reached
        assert connectable_endpoint(eps["frames"], c.endpoint) == eps["frames"]  # a concrete host: as announced
        assert h["limits"]["max_message_bytes"] == 2**20 and h["limits"]["max_zmq_frame_bytes"] == 2**21
        assert h["encodings"]["depth"] == ["32FC1", "16UC1"] and "32FC3" in h["encodings"]["render"]
        assert "32FC3" not in h["encodings"]["frame"] and {"png", "jpeg"} <= set(h["encodings"]["frame"])
        # before a session: what configure creates (the real live NeRF) decides pose_refinement
        assert ("pose_refinement" in h["capabilities"]) == accepts_refine_pose(LiveNerfTask)
        # the announced frames endpoint works: a frame pushed before configure is rejected with no_session
        assert c.add_frame(RGBA[1][..., :3], POSES[1], INTR, push=True) is True
        _wait(lambda: c.status()["frames_rejected"] == 1, 10, "the pushed frame rejected")
        st = c.status()
        assert st["state"] == "unconfigured" and st["last_frame_error"]["code"] == "no_session"
    with NgpClient(_local(bare.endpoint), timeout_s=10, protocol=1) as c1:  # a version-1 client, as before
        h1 = c1.hello()
        assert h1["protocol"] == 1 and h1["endpoints"] == {"frames": eps["frames"]}
        assert "encodings" not in h1 and "pose_refinement" not in h1["capabilities"]
    d = _raw_dealer(ctx, _local(bare.endpoint))
    try:  # every reply is in the version of its request; an unknown version is answered in the newest
        assert _roundtrip(d, [_pack(P.make_request("status", 3, v=1))])["v"] == 1
        assert _roundtrip(d, [_pack(P.make_request("status", 4, v=2))])["v"] == 2
        assert _error(d, [_pack({**P.make_request("status", 5), "v": 3})]) == ("bad_version", 5, 2)
        assert _error(d, [_pack({**P.make_request("status", 6, v=1), "x": "y" * 5000})]) == ("bad_header", 6, 1)
    finally:
        d.close(0)


# -- 1.2 readiness, README synopsis ------------------------------------------------------------------------
def _ready_line(proc: subprocess.Popen, timeout: float) -> dict:
    """The first stdout line of ``ngp serve`` that is JSON."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=1.0):
            assert proc.poll() is None, proc.stderr.read()
            continue
        line = proc.stdout.readline()
        assert line, f"ngp serve exited: {proc.stderr.read()}"
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no readiness line within {timeout} s")


def test_ngp_serve_prints_a_readiness_line_with_resolved_endpoints(tmp_path):
    cmd = [sys.executable, "-m", "ngp_sdk.cli", "--device", "cpu", "serve", "--bind", "tcp://127.0.0.1:0",
           "--frames-bind", "tcp://127.0.0.1:*", "--views-bind", "tcp://127.0.0.1:0"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = _ready_line(proc, 120)
        assert ready["ready"] is True and ready["protocols"] == [1, 2]
        eps = ready["endpoints"]
        assert all(re.fullmatch(r"tcp://127\.0\.0\.1:[1-9]\d*", eps[k]) for k in ("requests", "frames", "views"))
        with NgpClient(eps["requests"], timeout_s=10) as c:  # ready means answering: no retry needed
            assert c.hello()["endpoints"] == eps
    finally:
        proc.terminate()
        proc.wait(30)


def test_readme_synopsis_lists_every_serve_flag():
    parser = argparse.ArgumentParser(prog="ngp")
    parser.add_argument("--device")
    parser.add_argument("--verbose", action="store_true")
    sub = parser.add_subparsers()
    register_cli(sub)
    flags = set(re.findall(r"--[a-z][a-z-]*", sub.choices["serve"].format_usage()))
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ngp [--device cpu|cuda:0] [--verbose] serve"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("ngp "))
    synopsis = "\n".join(lines[start:end])
    assert flags - {"--help"} and not sorted(f for f in flags if f not in synopsis and f != "--help")
    assert synopsis.index("--device") < synopsis.index(" serve")  # global options go before the command


# -- 3.5 background, colour where opacity < 1; 3.1 alpha ------------------------------------------------------
def test_render_background_compositing_and_premultiplied_alpha(live, ctx):
    with NgpClient(live.endpoint, timeout_s=120) as c:
        pose = POSES[2]
        black = c.render(pose, INTR, encoding="32FC3", background=(0, 0, 0))
        white = c.render(pose, INTR, encoding="32FC3", background=(1, 1, 1))
        rgba = c.render(pose, INTR, encoding="rgba8", background=(0, 0, 0))
        alpha = rgba[..., 3] / 255.0
        assert 0.05 < alpha.mean() < 0.95  # the untrained model is partly transparent: the background shows
        # rgb = C + (1 - a) * background: two backgrounds differ by (1 - a) times their difference
        np.testing.assert_allclose(white - black, np.repeat(1 - alpha[..., None], 3, axis=2), atol=0.6 / 255)
        red = c.render(pose, INTR, encoding="32FC3", background=(1, 0, 0))
        np.testing.assert_allclose(red[..., 0], white[..., 0], atol=1e-6)
        np.testing.assert_allclose(red[..., 1:], black[..., 1:], atol=1e-6)
        # over black, rgba8 colour is premultiplied (C <= a) and equal to the float render
        assert (rgba[..., :3].astype(int) <= rgba[..., 3:].astype(int) + 1).all()
        np.testing.assert_allclose(rgba[..., :3] / 255.0, black, atol=0.6 / 255)
        np.testing.assert_array_equal(c.render(pose, INTR, encoding="png", background=(0, 0, 0)), rgba)
        # the frames of this session have alpha: the default background is white
        np.testing.assert_array_equal(c.render(pose, INTR, encoding="32FC3"), white)
        assert c.add_frame(RGBA[3][..., :3], POSES[3], INTR) >= 1  # an RGB frame in an RGBA session: opaque
        for bad in ((1.5, 0, 0), (0, 0), (-0.1, 0.5, 0.5)):
            with pytest.raises(P.BadFieldError, match="background"):
                c.render(pose, INTR, background=bad)
    d = _raw_dealer(ctx, live.endpoint)
    try:  # a version-1 render has no background field
        v1 = P.Render(seq=9, pose=pose, intrinsics=INTR, version=1).to_frames()
        assert _error(d, [_pack({**P.decode_header(v1[0]), "background": [0, 0, 0]})]) == ("bad_field", 9, 1)
    finally:
        d.close(0)


def test_views_come_in_the_version_of_their_set_view_with_its_background(live, ctx):
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, P.view_topic("blue"))
    sub.connect(live.views_endpoint)
    try:
        with NgpClient(live.endpoint, timeout_s=120) as c:
            expected = c.render(POSES[4], INTR, encoding="32FC3", background=(0, 0, 1))
            c.set_view("blue", POSES[4], INTR, rate=20, encoding="32FC3", background=(0, 0, 1))
            try:
                assert sub.poll(60_000), "no view published"
                view = P.parse_reply(sub.recv_multipart()[1:])
            finally:
                c.clear_view("blue")
        assert view.version == 2 and view.fields["name"] == "blue"
        np.testing.assert_array_equal(P.decode_image(view.fields["image"], view.payloads[0]), expected)
    finally:
        sub.close(0)


# -- 7.1 the order of the checks, 7 unknown encodings ---------------------------------------------------------
def test_the_order_of_the_checks(bare, ctx):
    d = _raw_dealer(ctx, _local(bare.endpoint))
    payload = bytes(12)
    no_intrinsics = {k: v for k, v in _add(20).items() if k != "intrinsics"}
    try:
        # a missing intrinsics is reported before an unknown field, and before a later bad pose
        assert _error(d, [_pack({**no_intrinsics, "camer_id": "x"}), payload]) == ("bad_intrinsics", 20, 2)
        bad_pose = {"matrix": [1.0] * 16, "convention": "opengl"}
        assert _error(d, [_pack({**no_intrinsics, "pose": bad_pose}), payload])[0] == "bad_intrinsics"
        # unknown fields come after every known field, before the payload contents
        assert _error(d, [_pack(_add(21, camer_id="x")), bytes(5)]) == ("bad_field", 21, 2)
        assert _error(d, [_pack(_add(22, pose=bad_pose, camer_id="x")), payload])[0] == "bad_pose"
        # depth size, then the exact payload count (1 with no depth, 2 with)
        depth = {"encoding": "32FC1", "width": 3, "height": 2}
        assert _error(d, [_pack(_add(23, depth=depth)), payload])[0] == "bad_field"
        assert _error(d, [_pack(_add(24, depth={**depth, "width": 2})), payload])[0] == "payload_mismatch"
        # a render too large for one message: reported before its unknown fields
        render = P.make_request("render", 25, width=1000, height=1000, intrinsics=INTR2,
                                pose=P.pose_to_wire(np.eye(4)), encoding="32FC3", zoom=2)
        assert _error(d, [_pack(render)]) == ("too_large", 25, 2)
        # the message before the session: a bad frame is answered as such, a good one with no_session
        assert _error(d, [_pack(_add(26, pose=bad_pose)), payload])[0] == "bad_pose"
        assert _error(d, [_pack(_add(27)), payload]) == ("no_session", 27, 2)
        small = {**render, "width": 4, "height": 4}
        assert _error(d, [_pack(small)]) == ("bad_field", 25, 2)  # it fits: now its unknown field counts
        del small["zoom"]
        assert _error(d, [_pack(small)]) == ("no_session", 25, 2)
        # version-2 fields are unknown fields in a version-1 request
        assert _error(d, [_pack(_add(28, v=1, pose_noisy=True)), payload]) == ("bad_field", 28, 1)
        assert _error(d, [_pack(_add(29, v=2, pose_noisy=True)), payload]) == ("no_session", 29, 2)
    finally:
        d.close(0)


def test_an_encoding_the_server_does_not_take_is_unsupported(bare, ctx):
    d = _raw_dealer(ctx, _local(bare.endpoint))
    payload = bytes(12)
    render = P.make_request("render", 30, width=4, height=4, intrinsics=INTR2, pose=P.pose_to_wire(np.eye(4)))
    try:
        for v, code in ((2, "unsupported"), (1, "bad_field")):  # version 1 keeps its code
            assert _error(d, [_pack(_add(31, v=v, image={**IMAGE2, "encoding": "yuv422"})), payload])[0] == code
            assert _error(d, [_pack({**render, "v": v, "encoding": "webp"})])[0] == code
        assert _error(d, [_pack(_add(32, image={**IMAGE2, "encoding": "32FC3"})), bytes(48)])[0] == "unsupported"
        depth = {"encoding": "16UC3", "width": 2, "height": 2}
        assert _error(d, [_pack(_add(33, depth=depth)), payload, bytes(8)])[0] == "unsupported"
        assert _error(d, [_pack(_add(34, image={**IMAGE2, "encoding": 7})), payload])[0] == "bad_field"  # not a str
    finally:
        d.close(0)


# -- 1.3 oversized messages ------------------------------------------------------------------------------------
def test_oversized_messages_are_answered_too_large_up_to_the_zeromq_frame_limit(bare, ctx):
    d = _raw_dealer(ctx, _local(bare.endpoint))
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    push.connect(bare.frames_endpoint)
    over, beyond = bytes(3 * 2**19), bytes(3 * 2**20)  # 1.5 MiB: over max_message_bytes; 3 MiB: over one frame
    try:
        assert _error(d, [_pack(P.make_request("status", 40)), over]) == ("too_large", 40, 2)
        d.send_multipart([_pack(P.make_request("status", 41)), beyond])  # ZeroMQ drops it with the connection
        assert not d.poll(1000)
        for _ in range(20):  # the DEALER reconnects by itself; later requests are answered
            d.send_multipart([_pack(P.make_request("status", 42))])
            if d.poll(500):
                break
        assert msgpack.unpackb(d.recv_multipart()[0])["seq"] == 42
        with NgpClient(_local(bare.endpoint), timeout_s=10, limits=SMALL) as c:
            before = c.status()["frames_rejected"]
            push.send_multipart([_pack(_add(43)), over])  # on PULL: rejected too_large, counted
            _wait(lambda: c.status()["frames_rejected"] == before + 1, 10, "the oversized frame counted")
            assert c.status()["last_frame_error"]["seq"] == 43
            assert c.status()["last_frame_error"]["code"] == "too_large"
            push.send_multipart([_pack(_add(44)), beyond])  # dropped by ZeroMQ: never counted
            seq = 45
            while c.status()["frames_rejected"] == before + 1 and seq < 80:
                push.send_multipart([_pack(P.make_request("status", seq))])  # after the reconnect: counted
                seq += 1
                time.sleep(0.2)
            st = c.status()
            assert st["last_frame_error"]["code"] == "unsupported" and st["last_frame_error"]["seq"] >= 45
            with pytest.raises(P.TooLargeError):  # the Python client refuses to send what would be too large
                c.add_frame(np.zeros((600, 600, 3), np.uint8), np.eye(4), {**INTR2, "width": 600, "height": 600})
    finally:
        push.close(0)
        d.close(0)


# -- 2.3 seq ---------------------------------------------------------------------------------------------------
def test_seq_is_only_echoed_and_last_frame_seq_is_monotonic(live, ctx):
    d = _raw_dealer(ctx, live.endpoint)
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    push.connect(live.frames_endpoint)
    try:
        for _ in range(2):  # the same seq twice in flight: both answered (the client cannot tell them apart)
            d.send_multipart([_pack(P.make_request("status", 7))])
        assert [msgpack.unpackb(d.recv_multipart()[0])["seq"] for _ in range(2)] == [7, 7]
        with NgpClient(live.endpoint, timeout_s=60) as c, NgpClient(live.endpoint, protocol=1) as c1:
            assert c.request(P.AddFrame(seq=1000, image=RGBA[5], intrinsics=INTR, pose=POSES[5],
                                        encoding="rgba8")).fields["index"] >= 1
            pushed = c.status()["frames_pushed"]
            push.send_multipart(_frame(999, RGBA[6], POSES[6]))  # a lower seq, accepted later, on the other socket
            push.send_multipart(_frame(1000, RGBA[6], POSES[6]))  # the same seq on PUSH as on ROUTER: allowed
            push.send_multipart(_frame(998, RGBA[7], POSES[7]))
            _wait(lambda: c.status()["frames_pushed"] == pushed + 3, 10, "three pushed frames")
            assert c.status()["last_frame_seq"] == 1000  # version 2: the largest accepted seq
            assert c1.status()["last_frame_seq"] == 998  # version 1: the latest accepted, unchanged
    finally:
        push.close(0)
        d.close(0)


# -- 4.11 session states -----------------------------------------------------------------------------------------
def test_requests_before_a_session_and_while_waiting_for_min_frames(bare, live):
    with NgpClient(_local(bare.endpoint), timeout_s=10) as c:
        assert c.status()["state"] == "unconfigured"
        for call in (lambda: c.render(POSES[0], INTR), lambda: c.add_frame(RGBA[0], POSES[0], INTR), c.pause,
                     lambda: c.save("x.ingp")):
            with pytest.raises(P.NoSessionError):
                call()
    with NgpClient(live.endpoint, timeout_s=120) as c:
        st = c.status()
        assert st["state"] == "waiting" and st["step"] == 0 and 0 < st["frame_count"] < 32
        assert c.render(POSES[1], INTR).shape == (SIZE, SIZE, 3)  # the untrained model, as it is
        pushed, count = st["frames_pushed"], st["frame_count"]
        assert c.add_frame(RGBA[1], POSES[1], INTR, push=True) is True  # PULL while waiting: accepted
        _wait(lambda: c.status()["frames_pushed"] == pushed + 1, 10, "the pushed frame accepted")
        st = c.status()
        assert st["frame_count"] == count + 1 and st["state"] == "waiting" and st["step"] == 0


# -- 4.3 new add_frame fields: pose_noisy, pose_covariance, depth, camera_id ----------------------------------
def test_noisy_poses_are_refined_and_depth_and_camera_id_reach_the_task(live, ctx):
    task = live.session.task
    with NgpClient(live.endpoint, timeout_s=60) as c:
        assert "pose_refinement" in c.hello()["capabilities"]  # the served task takes refine_pose
        del task.calls[:]
        depth = np.full((SIZE, SIZE), 2.5, np.float32)
        c.add_frame(RGBA[2], POSES[2], INTR, pose_noisy=True, depth=depth, camera_id="cam1")
        c.add_frame(RGBA[3], POSES[3], INTR, pose_covariance=np.diag([1e-4] * 3 + [1e-2] * 3))
        c.add_frame(RGBA[4], POSES[4], INTR, pose_covariance=np.zeros((6, 6)))  # all zeros: an exact pose
        reply = c.request(P.AddFrame(seq=c.next_seq(), image=RGBA[5], intrinsics=INTR, pose=POSES[5],
                                     encoding="rgba8"))
        assert reply.version == 2 and set(reply.fields) == {"index", "frame_count", "kept", "refine_pose"}
        assert reply.fields["refine_pose"] is False and reply.fields["kept"] is True
        assert [call["refine_pose"] for call in task.calls] == [True, True, False, False]
        np.testing.assert_array_equal(task.calls[0]["depth"], depth)
        assert task.calls[1]["depth"] is None
        assert c.status()["camera_frames"]["cam1"] == 1
        nested = np.eye(6).tolist()
        assert c.request(P.AddFrame(seq=c.next_seq(), image=RGBA[6], intrinsics=INTR, pose=POSES[6],
                                    encoding="rgba8", pose_covariance=np.eye(6))).fields["refine_pose"] is True
        skew, negative, nan = np.eye(6), -np.eye(6), np.eye(6)
        skew[0, 1] = 0.5
        nan[2, 2] = np.nan
    d = _raw_dealer(ctx, live.endpoint)
    try:  # covariances as hand-built headers: 6 rows of 6 do as well as 36 numbers; invalid ones are bad_field
        assert _reply(d, _frame(90, RGBA[6], POSES[6], pose_covariance=nested)).fields["refine_pose"] is True
        for seq, (bad, what) in enumerate(((skew.reshape(36).tolist(), "symmetric"),
                                           (negative.reshape(36).tolist(), "negative"),
                                           (nan.reshape(36).tolist(), "finite"), ([0.0] * 35, "36 numbers"),
                                           ([row[:5] for row in nested], "36 numbers"),
                                           ([[True] * 6] * 6, "numbers")), start=91):
            with pytest.raises(P.BadFieldError, match=what):
                _reply(d, _frame(seq, RGBA[6], POSES[6], pose_covariance=bad))
    finally:
        d.close(0)


def _reply(sock, frames: list) -> P.Reply:
    """Send hand-built frames and parse the reply (an error reply raises its typed exception)."""
    sock.send_multipart(frames)
    assert sock.poll(60_000), "no reply"
    return P.parse_reply(sock.recv_multipart())


def test_without_pose_refinement_a_noisy_frame_is_unsupported():
    srv = NgpServer(_session(ExactPoseTask), bind=LOOPBACK, frames_bind=LOOPBACK, views_bind=None,
                    device="cpu").start()
    rgb = [img[..., :3] for img in RGBA]
    try:
        with NgpClient(srv.endpoint, timeout_s=120) as c:
            assert "pose_refinement" not in c.hello()["capabilities"]
            assert c.add_frame(rgb[0], POSES[0], INTR) == 0  # RGB first: an RGB session
            for noisy in ({"pose_noisy": True}, {"pose_covariance": np.eye(6) * 1e-3}):
                with pytest.raises(P.UnsupportedError, match="pose_refinement"):
                    c.add_frame(rgb[1], POSES[1], INTR, **noisy)
            assert c.add_frame(rgb[1], POSES[1], INTR, pose_covariance=np.zeros((6, 6))) == 1  # exact: taken
            with pytest.raises(P.BadFieldError, match="RGB"):
                c.add_frame(RGBA[2], POSES[2], INTR)  # alpha in an RGB session
            assert c.add_frame(rgb[2], POSES[2], INTR, pose_noisy=True, push=True) is True
            _wait(lambda: c.status()["frames_rejected"] == 1, 10, "the noisy pushed frame rejected")
            assert c.status()["last_frame_error"]["code"] == "unsupported"
            # no alpha in the frames: the default background is black
            np.testing.assert_array_equal(c.render(POSES[3], INTR, encoding="32FC3"),
                                          c.render(POSES[3], INTR, encoding="32FC3", background=(0, 0, 0)))
    finally:
        srv.stop()
