"""`ngp serve` as a process: CURVE certificates from the command line, and its user errors."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import zmq
import zmq.auth

from bridges.client import NgpClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(*extra: str) -> tuple[subprocess.Popen, str]:
    eps = [f"tcp://127.0.0.1:{_free_port()}" for _ in range(3)]
    cmd = [sys.executable, "-m", "ngp_sdk.cli", "--device", "cpu", "serve", "--bind", eps[0], "--frames-bind",
           eps[1], "--views-bind", eps[2], *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), eps[0]


def _hello_within(endpoint: str, seconds: float, **curve) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        with NgpClient(endpoint, timeout_s=2, **curve) as c:
            try:
                return c.hello()
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise


def test_serve_with_curve_certificates(tmp_path):
    server_pub_file, server_secret_file = zmq.auth.create_certificates(tmp_path, "server")
    allowed = tmp_path / "clients"
    allowed.mkdir()
    zmq.auth.create_certificates(allowed, "robot")
    robot_pub, robot_sec = zmq.auth.load_certificate(allowed / "robot.key_secret")
    (allowed / "robot.key_secret").unlink()  # the server only needs the clients' public certificates
    server_pub, _ = zmq.auth.load_certificate(server_pub_file)
    proc, endpoint = _serve("--curve-cert", str(server_secret_file), "--curve-allow", str(allowed))
    try:
        hello = _hello_within(endpoint, 60, curve_server_key=server_pub, curve_keys=(robot_pub, robot_sec))
        assert hello["protocol"] == 2  # the client speaks version 2 by default
        with NgpClient(endpoint, timeout_s=1, curve_server_key=server_pub) as stranger:  # fresh, unknown key pair
            with pytest.raises(TimeoutError):
                stranger.hello()
        with NgpClient(endpoint, timeout_s=1) as plain:  # no encryption at all
            with pytest.raises(TimeoutError):
                plain.hello()
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("flags, message", [
    (["--curve-allow", "."], "needs --curve-cert"),
    (["--curve-cert", "/nonexistent/server.key_secret"], "cannot read a ZeroMQ certificate"),
])
def test_serve_curve_errors_are_one_line(flags, message):
    r = subprocess.run([sys.executable, "-m", "ngp_sdk.cli", "serve", "--bind", f"tcp://127.0.0.1:{_free_port()}",
                        *flags], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last and "Traceback" not in r.stderr


def test_serve_refuses_a_public_only_certificate(tmp_path):
    public_file, _ = zmq.auth.create_certificates(tmp_path, "server")
    r = subprocess.run([sys.executable, "-m", "ngp_sdk.cli", "serve", "--bind", f"tcp://127.0.0.1:{_free_port()}",
                        "--curve-cert", str(public_file)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "holds no secret key" in r.stderr
