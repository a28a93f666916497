"""Background training: start/pause/resume/stop, renders and saves while training are consistent."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ngp_sdk import Session
from ngp_sdk.core.errors import ConfigError
from tests.ngp_sdk.image.test_image_task import SMALL, make_test_image


def _wait(pred, timeout=30.0):
    t = time.perf_counter()
    while not pred():
        if time.perf_counter() - t > timeout:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_start_pause_resume_stop(device, tmp_path):
    s = Session.image(make_test_image(), config=SMALL, device=device)
    s.start()
    try:
        with pytest.raises(ConfigError, match="already running"):
            s.start()
        _wait(lambda: s.step_count >= 5)
        assert s.status()["state"] == "training"
        # renders while training: every render sees a whole step (compare against the same step's render)
        for _ in range(3):
            with s._lock:  # freeze training between two steps
                a = s.render(width=16, height=12)
                b = s.render(width=16, height=12)
            np.testing.assert_array_equal(a, b)
            assert np.isfinite(s.render(width=16, height=12)).all()
        s.pause()
        time.sleep(0.2)
        n = s.step_count
        time.sleep(0.3)
        assert s.step_count == n and s.status()["state"] == "paused"
        path = s.save(tmp_path / "live.ingp")
        assert Session.load(path, device=device).step_count == n
        s.resume()
        _wait(lambda: s.step_count > n)
    finally:
        s.stop()
    assert s.status()["state"] == "stopped"
    n = s.step_count
    time.sleep(0.2)
    assert s.step_count == n
    st = s.status()
    assert st["error"] is None and st["step"] == n


def test_errors_in_the_thread_are_reported(device):
    s = Session.image(make_test_image(), config=SMALL, device=device)

    def boom():
        raise RuntimeError("kaboom")

    s.task.step = boom
    s.start()
    _wait(lambda: s.status()["state"] == "stopped")
    assert "kaboom" in s.status()["error"]


def test_a_render_waits_for_the_step_in_progress_not_for_a_run_of_steps(device):
    """The trainer gives way: a render asked for while a step runs gets the lock as soon as that step ends."""
    s = Session.image(make_test_image(), config=SMALL, device=device)
    step = s.task.step

    def busy_step():  # a step that keeps the CPU (and the GIL) busy, like a long kernel launch
        t = time.perf_counter()
        while time.perf_counter() - t < 0.02:
            pass
        return step()

    s.task.step = busy_step
    s.start()
    try:
        _wait(lambda: s.step_count >= 3)
        waited = []
        for _ in range(30):
            n = s.step_count
            with s.locked():
                waited.append(s.step_count - n)
            time.sleep(0.005)
    finally:
        s.stop()
    assert s.status()["error"] is None
    assert max(waited) <= 2, waited  # the step in progress, and at most one that had already passed give_way
    assert s.step_count > 10  # and training still went on between the renders


def test_long_renders_leave_training_at_least_half_of_the_time(device):
    """Renders asked back to back: after each, training takes back as long as the render held the session
    (so it keeps about half of the time) and the next render waits for about that, not for ever."""
    s = Session.image(make_test_image(), config=SMALL, device=device)
    s.start()
    try:
        _wait(lambda: s.step_count >= 3)
        waits, steps = [], []
        for _ in range(6):
            n, t = s.step_count, time.perf_counter()
            with s.locked():
                waits.append(time.perf_counter() - t)
                steps.append(s.step_count - n)
                time.sleep(0.3)  # a "render" holding the session for 0.3 s
    finally:
        s.stop()
    assert s.status()["error"] is None
    # after the first, every render waited while training took back ~0.3 s (>= 0.2 s), but not much longer
    assert min(waits[1:]) >= 0.2 and max(waits) < 2.0, waits
    assert min(steps[1:]) >= 1, steps


def test_training_share_zero_favours_render_latency_and_is_validated(device):
    s = Session.image(make_test_image(), config=SMALL, device=device)
    assert s.training_share == 0.5
    for bad in (-0.1, 0.95, 1.0, float("nan")):
        with pytest.raises(ConfigError, match="training_share"):
            s.training_share = bad
    s.training_share = 0.0
    s.start()
    try:
        _wait(lambda: s.step_count >= 3)
        waits = []
        for _ in range(4):
            t = time.perf_counter()
            with s.locked():
                waits.append(time.perf_counter() - t)
                time.sleep(0.3)
    finally:
        s.stop()
    assert max(waits) < 0.2, waits  # the step in progress at most, no claim after 0.3 s holds


def test_the_server_applies_its_training_share(device):
    from bridges.handlers import Handlers
    from bridges.server import _training_share

    s = Session.image(make_test_image(), config=SMALL, device=device)
    h = Handlers(s, device=device, live_options={"training_share": 0.2})
    try:
        assert s.training_share == 0.2
    finally:
        h.stop()
    assert _training_share("0.25") == 0.25
    for bad in ("1", "-0.5", "x"):
        with pytest.raises(Exception, match="must be a number in"):
            _training_share(bad)
