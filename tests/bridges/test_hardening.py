"""The bridge under abuse: confined snapshot paths, a seeded fuzz of a running ``ngp serve``, a load test, a
``kill -9`` during ``save``, and CURVE strangers -- the server keeps serving through all of it."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from bridges import protocol as P  # noqa: E402
from bridges.client import NgpClient  # noqa: E402
from bridges.server import NgpServer  # noqa: E402
from tests.ngp_sdk.nerf.test_nerf_task import TINY  # noqa: E402

LOOPBACK = "tcp://127.0.0.1:*"
INTR8 = {"width": 8, "height": 8, "fx": 8.0, "fy": 8.0, "cx": 4.0, "cy": 4.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)


def _serve(cwd: Path, *extra: str, attempts: int = 3) -> tuple[subprocess.Popen, list[str]]:
    """Start ``ngp serve`` on free ports; a port taken between choosing and binding it means new ports."""
    for attempt in range(attempts):
        eps = [f"tcp://127.0.0.1:{_free_port()}" for _ in range(3)]
        cmd = [sys.executable, "-m", "ngp_sdk.cli", "--device", "cpu", "serve", "--bind", eps[0], "--frames-bind",
               eps[1], "--views-bind", eps[2], *extra]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while True:
            with NgpClient(eps[0], timeout_s=2) as c:
                try:
                    c.hello()
                    return proc, eps
                except TimeoutError:
                    if proc.poll() is not None:
                        err = proc.stderr.read()
                        if "Address already in use" in err and attempt + 1 < attempts:
                            break
                        raise AssertionError(err) from None
                    assert time.monotonic() < deadline, "ngp serve did not answer hello within 120 s"
    raise AssertionError("unreachable")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# -- snapshot paths ----------------------------------------------------------------------------------------------
def test_python_server_confines_paths_to_save_dir(tmp_path):
    snaps, outside = tmp_path / "snaps", tmp_path / "outside"
    outside.mkdir()
    srv = NgpServer(bind=LOOPBACK, frames_bind=None, views_bind=None, device="cpu", save_dir=snaps).start()
    try:
        with NgpClient(srv.endpoint, timeout_s=120) as c:
            c.configure(config=TINY, capacity=4, min_frames=4)
            ok = c.save("a.ingp")
            assert Path(ok["path"]) == (snaps / "a.ingp").resolve() and ok["bytes"] > 0
            assert Path(c.save("sub/dir/b.ingp")["path"]).is_file()
            snaps.joinpath("escape").symlink_to(outside, target_is_directory=True)
            for bad, why in (("/tmp/x.ingp", "absolute"), ("../x.ingp", "'..'"), ("sub/../../x.ingp", "'..'"),
                             ("escape/x.ingp", "symlink"), (str(snaps / "a.ingp"), "absolute")):
                with pytest.raises(P.StorageError, match=why):
                    c.save(bad)
                with pytest.raises(P.StorageError):
                    c.load(bad)
            assert not any(outside.iterdir()) and not (tmp_path / "x.ingp").exists()
            assert c.load("a.ingp")["path"]
    finally:
        srv.stop()


def test_ngp_serve_confines_paths_by_default(tmp_path):
    proc, eps = _serve(tmp_path)
    try:
        with NgpClient(eps[0], timeout_s=120) as c:
            c.configure(config=TINY, capacity=4, min_frames=4)
            for bad in ("/tmp/x.ingp", "../x.ingp"):
                with pytest.raises(P.StorageError):
                    c.save(bad)
                with pytest.raises(P.StorageError):
                    c.load(bad)
            assert Path(c.save("ok.ingp")["path"]) == (tmp_path / "snapshots" / "ok.ingp").resolve()
            assert c.hello()["protocol"] == P.PROTOCOL_VERSION
    finally:
        _stop(proc)
    assert not (tmp_path.parent / "x.ingp").exists()
    proc, eps = _serve(tmp_path, "--allow-any-path")
    try:
        with NgpClient(eps[0], timeout_s=120) as c:
            c.configure(config=TINY, capacity=4, min_frames=4)
            assert Path(c.save(str(tmp_path / "anywhere.ingp"))["path"]).is_file()
    finally:
        _stop(proc)


# -- a seeded fuzz of a running server --------------------------------------------------------------------------
def _malformed(rng: np.random.Generator, seq: int) -> tuple[list[bytes], int | None]:
    """One malformed request written from docs/protocol.md; returns ``(frames, seq the reply must carry)``."""
    pack = msgpack.packb
    pose = P.pose_to_wire(np.eye(4))
    base = P.make_request("add_frame", seq, image={"encoding": "rgb8", "width": 2, "height": 2},
                          intrinsics={"width": 2, "height": 2, "fx": 2.0, "fy": 2.0, "cx": 1.0, "cy": 1.0}, pose=pose)
    payload = bytes(12)
    kind = int(rng.integers(0, 22))
    deep: object = 1
    for _ in range(int(rng.integers(17, 40))):
        deep = [deep]
    if kind == 0:
        return [rng.bytes(int(rng.integers(1, 64)))], None  # random bytes (may not even be msgpack)
    if kind == 1:
        return [pack({**base, "v": int(rng.integers(3, 9))}), payload], seq
    if kind == 2:
        return [pack({k: v for k, v in base.items() if k != "v"}), payload], seq
    if kind == 3:
        return [pack({**base, "type": "frobnicate"}), payload], seq
    if kind == 4:
        return [pack({**base, "seq": "seven"}), payload], None
    if kind == 5:
        return [pack({**base, "stamp_ns": -1}), payload], seq
    if kind == 6:
        return [pack({**base, "extra": 1}), payload], seq
    if kind == 7:
        return [pack({**base, "x": deep}), payload], seq
    if kind == 8:
        return [pack({**base, "x": "s" * 5000}), payload], seq
    if kind == 9:
        return [pack({**base, "x": list(range(1100))}), payload], seq
    if kind == 10:
        return [pack({**base, "x": b"bin"}, use_bin_type=True), payload], seq
    if kind == 11:
        return [pack({**base, "x": msgpack.ExtType(3, b"e")}), payload], seq
    if kind == 12:
        return [pack(base) + b"\x00", payload], seq
    if kind == 13:
        return [pack(base)], seq  # payload missing
    if kind == 14:
        return [pack(base), bytes(int(rng.integers(0, 11)))], seq  # payload too short
    if kind == 15:
        m = pose["matrix"].copy()
        m[int(rng.integers(0, 12))] = float(rng.choice([math.nan, math.inf, 5.0]))
        return [pack({**base, "pose": {"matrix": m, "convention": "opengl"}}), payload], seq
    if kind == 16:
        return [pack({**base, "intrinsics": {**base["intrinsics"], "fx": -1.0}}), payload], seq
    if kind == 17:
        return [pack({**base, "image": {"encoding": "yuv422", "width": 2, "height": 2}}), payload], seq
    if kind == 18:
        return [pack({**base, "image": {"encoding": "rgb8", "width": 9000, "height": 2}}), payload], seq
    if kind == 19:
        return [pack({**base, "image": {"encoding": "png", "width": 2, "height": 2}}), rng.bytes(40)], seq
    if kind == 20:
        r = P.make_request("render", seq, width=int(rng.integers(9000, 10**6)), height=4, intrinsics=INTR8,
                           pose=pose)
        return [pack(r)], seq
    return [pack({**base, "x": "s" * 70000})], seq  # header over max_header_bytes


def test_fuzz_a_running_server_on_both_sockets(tmp_path):
    rng = np.random.default_rng(20261202)
    proc, eps = _serve(tmp_path)
    ctx = zmq.Context()
    try:
        with NgpClient(eps[0], timeout_s=120) as c:
            c.configure(config=TINY, capacity=8, min_frames=8)  # a session that never trains: pure protocol work
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(eps[0])
        push = ctx.socket(zmq.PUSH)
        push.linger = 0
        push.sndhwm = 100_000
        push.connect(eps[1])
        rss0 = _rss_kb(proc.pid)
        sent = answered = 0
        codes: dict[str, int] = {}
        with NgpClient(eps[0], timeout_s=30) as status:
            for batch in range(100):  # 100 x 50 requests, pipelined, replies matched by seq
                expected = {}
                for i in range(50):
                    seq = batch * 50 + i
                    frames, echo = _malformed(rng, seq)
                    dealer.send_multipart(frames)
                    expected[seq] = echo
                    sent += 1
                got = []
                while len(got) < 50:
                    assert dealer.poll(30_000), f"no reply to {50 - len(got)} requests of batch {batch}"
                    h = msgpack.unpackb(dealer.recv_multipart()[0], raw=False)
                    assert h["type"] == "error"
                    codes[h["code"]] = codes.get(h["code"], 0) + 1
                    got.append(h["seq"])
                    answered += 1
                # every reply whose request had a readable seq carries it
                readable = sorted(s for s, e in expected.items() if e is not None)
                assert sorted(s for s in got if s is not None) == readable
                for k in range(13):  # and 1,300 on the frames socket
                    push.send_multipart(_malformed(rng, 10**6 + batch * 13 + k)[0])
                if batch % 5 == 0:
                    st = status.status()  # 20 status checks through the run
                    assert st["state"] == "waiting" and st["frame_count"] == 0
        assert sent == answered == 5000 and "internal" not in codes
        with NgpClient(eps[0], timeout_s=30) as c:
            _wait(lambda: c.status()["frames_rejected"] >= 1300, 60, "1300 pushed messages rejected")
            assert c.hello()["protocol"] == P.PROTOCOL_VERSION
        growth_mb = (_rss_kb(proc.pid) - rss0) / 1024
        assert growth_mb < 64, f"RSS grew by {growth_mb:.0f} MB"
        assert proc.poll() is None
    finally:
        ctx.destroy(0)
        _stop(proc)


# -- load ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["ring", "keyframes"])
def test_4_clients_x_1000_frames_with_renders_lose_no_acknowledged_frame(policy):
    srv = NgpServer(bind=LOOPBACK, frames_bind=LOOPBACK, views_bind=None, device="cpu",
                    live_options={"policy": policy}).start()
    try:
        with NgpClient(srv.endpoint, timeout_s=120) as c:
            c.configure(config=TINY, capacity=256, min_frames=16)
        acked: dict[int, list[int]] = {}
        renders: list[tuple] = []
        stop = threading.Event()

        def send(k: int) -> None:
            rng = np.random.default_rng(k)
            out = []
            with NgpClient(srv.endpoint, timeout_s=60) as c:
                for _ in range(1000):
                    pose = np.eye(4)
                    pose[:3, 3] = rng.normal(size=3)  # distinct poses: the keyframe policy has choices to make
                    out.append(c.add_frame(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), pose, INTR8,
                                           camera_id=f"cam{k}"))
            acked[k] = out

        def render() -> None:
            with NgpClient(srv.endpoint, timeout_s=60) as c:
                while not stop.is_set():
                    img = c.render(np.eye(4), INTR8)
                    renders.append(img.shape)

        threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
        viewer = threading.Thread(target=render)
        viewer.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        stop.set()
        viewer.join(120)
        assert len(acked) == 4 and all(len(v) == 1000 for v in acked.values())
        with NgpClient(srv.endpoint, timeout_s=60) as c:
            st = c.status()
        kept = [i for v in acked.values() for i in v if i >= 0]
        assert len(kept) == len(set(kept))  # every kept frame has its own index
        assert st["policy"] == policy and st["frame_count"] == 256
        assert st["camera_frames"] == {f"cam{k}": 1000 for k in range(4)}  # every acknowledged frame arrived
        assert st["frames_added"] == len(kept) and st["frames_added"] + st["frames_discarded"] == 4000
        if policy == "ring":
            assert sorted(kept) == list(range(4000))
        assert renders and all(s == (8, 8, 3) for s in renders)
    finally:
        srv.stop()


# -- kill -9 while saving ------------------------------------------------------------------------------------------
BIG = {**TINY, "encoding": {**TINY["encoding"], "log2_hashmap_size": 19, "n_levels": 16}}


def test_kill_9_during_save_leaves_the_previous_snapshot_loadable(tmp_path):
    from ngp_sdk.core.session import Session

    rng = np.random.default_rng(9)
    target = tmp_path / "snapshots" / "live.ingp"
    killed_mid_write = 0
    for attempt in range(3):
        proc, eps = _serve(tmp_path)
        try:
            with NgpClient(eps[0], timeout_s=300) as c:
                c.configure(config=BIG, capacity=4, min_frames=4)
                if attempt == 0:
                    c.save("live.ingp")
            previous = target.read_bytes()

            def save(endpoint: str = eps[0]) -> None:
                with NgpClient(endpoint, timeout_s=3) as c:  # the server dies before it can answer
                    try:
                        c.save("live.ingp")
                    except (TimeoutError, P.ProtocolError):
                        pass

            saver = threading.Thread(target=save)
            saver.start()
            # kill while the new snapshot is being written: once its temporary file exists, at a random moment
            _wait(lambda: any(target.parent.glob(".live.ingp.*.tmp")), 60, "the save to start writing")
            time.sleep(float(rng.uniform(0.0, 0.2)))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            saver.join(30)
        finally:
            _stop(proc)
        # the file is either the previous snapshot, untouched, or the complete new one: never torn
        leftovers = list(target.parent.glob(".live.ingp.*.tmp"))  # what a writer killed mid-write leaves behind
        killed_mid_write += bool(leftovers)
        assert Session.load(target, device="cpu").primitive == "nerf"
        if leftovers:
            assert target.read_bytes() == previous  # the rename never happened: the old file is untouched
        for leftover in leftovers:
            leftover.unlink()
    assert killed_mid_write >= 1  # at least one kill hit the write itself


# -- CURVE strangers -------------------------------------------------------------------------------------------------
def test_a_client_off_the_curve_allow_list_gets_nothing_and_the_server_keeps_serving():
    server_pub, server_sec = zmq.curve_keypair()
    good = zmq.curve_keypair()
    srv = NgpServer(bind=LOOPBACK, frames_bind=LOOPBACK, views_bind=None, device="cpu",
                    curve_keys=(server_pub, server_sec), allow=[good[0]]).start()
    ctx = zmq.Context()
    try:
        with NgpClient(srv.endpoint, timeout_s=60, curve_server_key=server_pub, curve_keys=good) as friend:
            friend.configure(config=TINY, capacity=4, min_frames=4)
        frame = P.AddFrame(seq=1, image=np.zeros((8, 8, 3), np.uint8), intrinsics=P.CameraIntrinsics(**INTR8),
                           pose=np.eye(4)).to_frames()
        for _ in range(3):
            with NgpClient(srv.endpoint, timeout_s=1, curve_server_key=server_pub,
                           curve_keys=zmq.curve_keypair()) as stranger:
                with pytest.raises(TimeoutError):
                    stranger.hello()
            push = ctx.socket(zmq.PUSH)  # a stranger pushing a valid frame on the frames socket
            push.linger = 0
            push.curve_serverkey = server_pub
            push.curve_publickey, push.curve_secretkey = zmq.curve_keypair()
            push.connect(srv.frames_endpoint)
            push.send_multipart(frame, zmq.NOBLOCK) if push.poll(500, zmq.POLLOUT) else None
            time.sleep(0.3)
            push.close(0)
            with NgpClient(srv.endpoint, timeout_s=10, curve_server_key=server_pub, curve_keys=good) as friend:
                assert friend.hello()["protocol"] == P.PROTOCOL_VERSION
                st = friend.status()
                assert st["frames_pushed"] == 0 and st["frames_rejected"] == 0 and st["frame_count"] == 0
    finally:
        ctx.destroy(0)
        srv.stop()
