"""``ngp batch`` on a local Ray (``num_cpus=2``): four training jobs and a split camera-path render that equals
the single-worker render bit for bit, a bad job failing alone, a killed worker retried and Ctrl-C keeping what
finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import imageio.v3 as iio
import pytest

ray = pytest.importorskip("ray", reason="ngp batch needs the cluster extra: pip install 'ngp-sdk[cluster]'")

from ngp_sdk.batch import run  # noqa: E402
from ngp_sdk.cli import main  # noqa: E402
from tests.ngp_sdk.batch.conftest import ray_env  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _train(name: str, primitive: str, data: str, config: str, steps: int = 40, **extra) -> dict:
    return {"name": name, "kind": "train", "primitive": primitive, "data": data, "steps": steps, "config": config,
            "out": f"out/{name}.ingp", **extra}


def test_four_trainings_and_a_split_render_equal_to_one_worker(local_ray, inputs, monkeypatch, tmp_path):
    monkeypatch.chdir(inputs)
    doc = {"jobs": [
        _train("sphere", "sdf", "sphere.obj", "sdf.json", options={"eval_points": 20000}),
        _train("box", "sdf", "box.obj", "sdf.json"),
        _train("img-a", "image", "a.png", "img.json"),
        _train("img-b", "image", "b.png", "img.json"),
        {"name": "bad-data", "kind": "train", "primitive": "image", "data": "missing.png", "steps": 3,
         "out": "out/bad.ingp"},
        {"name": "bad-key", "kind": "train", "primitive": "image", "data": "a.png", "steps": 3, "out": "o.ingp",
         "colour": "red"},
        {"name": "after-bad", "kind": "render", "snapshot": "out/bad.ingp", "orbit": 2, "out": "out/never"},
        {"name": "path", "kind": "render", "snapshot": "out/sphere.ingp", "camera_path": "path.json", "frames": 7,
         "width": 40, "height": 32, "out": "out/path_frames", "chunk_frames": 3},
    ]}
    summary = run(doc, workers=2, log_dir=tmp_path / "logs", progress=False)
    by = {j["name"]: j for j in summary["jobs"]}
    for name in ("sphere", "box", "img-a", "img-b", "path"):
        assert by[name]["status"] == "ok", by[name]
        assert by[name]["attempts"] == 1 and by[name]["retries"] == []
    assert by["sphere"]["iou"] > 0.5 and by["img-a"]["psnr"] > 15 and by["img-b"]["psnr"] > 10
    assert by["bad-data"]["status"] == "failed" and "image not found" in by["bad-data"]["error"]
    assert by["bad-key"]["status"] == "failed" and "unknown key(s) ['colour']" in by["bad-key"]["error"]
    assert by["after-bad"]["status"] == "skipped" and "'bad-data'" in by["after-bad"]["error"]
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (5, 2, 1)
    assert json.loads((tmp_path / "logs" / "summary.json").read_text())["jobs"][0]["name"] == "sphere"
    assert "== sphere attempt 1 pid" in (tmp_path / "logs" / "sphere.log").read_text()

    # the split render: 7 frames in 3 tasks, identical to `ngp render` in one process, file for file
    assert by["path"]["tasks"] == 3 and by["path"]["result"]["frames"] == 7
    assert main(["render", "out/sphere.ingp", "--camera-path", "path.json", "--frames", "7", "--width", "40",
                 "--height", "32", "--out", str(tmp_path / "single")]) == 0
    split = sorted((inputs / "out/path_frames").glob("frame_*.png"))
    single = sorted((tmp_path / "single").glob("frame_*.png"))
    assert [p.name for p in split] == [p.name for p in single] and len(split) == 7
    for a, b in zip(split, single, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert len({iio.imread(p).tobytes() for p in split}) == 7  # the camera moves: every frame differs


def _wait_for(predicate, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_a_killed_worker_is_retried_and_the_summary_says_so(local_ray, inputs, tmp_path):
    doc = [{"name": "long", "kind": "train", "primitive": "sdf", "data": str(inputs / "box.obj"), "seconds": 6,
            "config": str(inputs / "sdf.json"), "out": str(tmp_path / "long.ingp")}]
    log = tmp_path / "logs" / "long.log"
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(run(doc, workers=1, log_dir=tmp_path / "logs",
                                                          progress=False)))
    t.start()
    _wait_for(lambda: log.exists() and " pid " in log.read_text(), 120, "the job to start")
    pid = int(log.read_text().split(" pid ")[1].split()[0])
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)
    t.join(timeout=300)
    assert not t.is_alive()
    (job,) = result["jobs"]
    assert job["status"] == "ok" and job["attempts"] == 2, job
    assert len(job["retries"]) == 1 and "WorkerCrashedError" in job["retries"][0]["reason"]
    assert result["retried"] == 1 and (tmp_path / "long.ingp").is_file()
    text = log.read_text()
    assert "attempt 2 pid" in text and "lost its worker" in text and f"pid {pid}" in text


def test_ctrl_c_keeps_finished_outputs_and_writes_the_summary(inputs, tmp_path):
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([
        _train("quick", "image", str(inputs / "a.png"), str(inputs / "img.json"), steps=5),
        {"name": "slow", "kind": "train", "primitive": "sdf", "data": str(inputs / "box.obj"), "seconds": 120,
         "config": str(inputs / "sdf.json"), "out": "out/slow.ingp", "after": "quick"},
    ]))
    # Ctrl-C as in a terminal: a runner that started the tests in the background (`cmd &` in a shell) hands its
    # children SIGINT ignored, and Python then installs no KeyboardInterrupt handler; give the batch the default
    proc = subprocess.Popen([sys.executable, "-m", "ngp_sdk.cli", "batch", str(jobs), "--workers", "1",
                             "--no-progress"], cwd=tmp_path, env=ray_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for(lambda: (tmp_path / "batch-logs" / "slow.log").exists(), 180, "the second job to start")
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            logs = {p.name: p.read_text()[-500:] for p in (tmp_path / "batch-logs").glob("*")}
            raise AssertionError(f"ngp batch did not stop within 120 s of Ctrl-C; batch-logs: {logs}") from None
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: finished outputs kept" in err
    summary = json.loads((tmp_path / "batch-logs" / "summary.json").read_text())
    by = {j["name"]: j for j in summary["jobs"]}
    assert by["quick"]["status"] == "ok" and (tmp_path / "out" / "quick.ingp").is_file()
    assert by["slow"]["status"] == "cancelled" and not (tmp_path / "out" / "slow.ingp").exists()
    assert not list((tmp_path / "out").glob(".*"))  # no half-written snapshot left behind
    assert "ok  quick" in out and "cancelled  slow" in out
