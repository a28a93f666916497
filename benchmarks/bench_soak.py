"""Soak: a live ``ngp serve`` fed 640x480 frames at 10 fps with renders, for half an hour; RSS and latency over time.

    python benchmarks/bench_soak.py --minutes 30 --alpha --json-out /tmp/soak.json

A fresh ``ngp serve`` (default config, ring buffer of 256 frames) receives the demo scene's views as a robot would
send them (acknowledged ``add_frame`` at ``--fps``; 640x480, a camera orbiting the scene) while another client
asks for a 320x240 render every ``--render-period`` seconds (once the server trained ``--render-after-steps``
steps). Every 10 s the server's RSS (``/proc/PID/status``) and training step are sampled. The JSON compares the
first and the last fifth of the run: median RSS, median and p95 render latency, median frame acknowledgement
latency, training steps per minute, and the frames the server took (``frames_added`` vs ``sent``).
``--alpha`` sends RGBA frames (see its help).
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def _frames(n: int, channels: int = 3) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    from ngp_sdk.nerf.synthetic import DEMO_SCENE, look_at_nerf, render_scene

    h, w = 480, 640
    f = 0.5 * h / math.tan(0.5 * DEMO_SCENE.camera_angle_x)
    images, poses = [], []
    for k in range(n):
        a = 2 * math.pi * k / n
        c2w = look_at_nerf(np.array([3.2 * math.cos(a), 3.2 * math.sin(a), 0.8 + 0.4 * math.sin(3 * a)]))
        square = render_scene(DEMO_SCENE, c2w, h)
        img = np.zeros((h, w, channels), np.uint8)
        img[:, (w - h) // 2:(w + h) // 2] = square[..., :channels]  # the square view in a wider frame (same focal)
        images.append(img)
        poses.append(c2w)
    return images, poses, {"width": w, "height": h, "fx": f, "fy": f, "cx": w / 2, "cy": h / 2}


def _summary(xs: list[float]) -> dict:
    a = np.asarray(xs, float)
    if not a.size:
        return {"median": None, "p95": None, "n": 0}
    return {"median": round(float(np.median(a)), 3), "p95": round(float(np.percentile(a, 95)), 3), "n": len(a)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--render-period", type=float, default=2.0, help="seconds between 320x240 renders")
    p.add_argument("--alpha", action="store_true",
                   help="send RGBA frames (the scene's empty space is transparent, so the occupancy grid prunes it "
                        "and renders stay cheap); default RGB with a black background the field must fill")
    p.add_argument("--render-after-steps", type=int, default=64,
                   help="start rendering once the server trained this many steps (a render of an untrained field, "
                        "before the first occupancy-grid update, marches every sample of every ray)")
    p.add_argument("--json-out", default=None)
    args = p.parse_args()
    from bridges.client import NgpClient

    images, poses, intr = _frames(72, 4 if args.alpha else 3)
    eps = [f"tcp://127.0.0.1:{_free_port()}" for _ in range(3)]
    cmd = [sys.executable, "-m", "ngp_sdk.cli", "serve", "--bind", eps[0], "--frames-bind", eps[1], "--views-bind",
           eps[2], "--capacity", "256", "--min-frames", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    rss: list[tuple[float, float]] = []
    steps: list[tuple[float, float]] = []  # (time, training steps taken)
    renders: list[tuple[float, float]] = []
    acks: list[tuple[float, float]] = []
    stop = threading.Event()
    try:
        with NgpClient(eps[0], timeout_s=600) as c:
            c.wait_for_server(120)  # a spawned server needs a moment to import Warp
            c.configure(aabb_scale=1, capacity=256, min_frames=8)
        t0 = time.monotonic()
        duration = 60.0 * args.minutes

        def render_loop() -> None:
            small = {**intr, "width": 320, "height": 240, "fx": intr["fx"] / 2, "fy": intr["fy"] / 2,
                     "cx": 160.0, "cy": 120.0}
            with NgpClient(eps[0], timeout_s=600) as rc:
                while not stop.is_set() and rc.status()["step"] < args.render_after_steps:
                    stop.wait(1.0)
                k = 0
                while not stop.is_set():
                    t = time.monotonic()
                    rc.render(poses[k % len(poses)], small)
                    renders.append((t - t0, time.monotonic() - t))
                    k += 7
                    stop.wait(max(0.0, args.render_period - (time.monotonic() - t)))

        def rss_loop() -> None:
            with NgpClient(eps[0], timeout_s=600) as sc:
                while not stop.is_set():
                    rss.append((time.monotonic() - t0, _rss_mb(proc.pid)))
                    steps.append((time.monotonic() - t0, sc.status()["step"]))
                    stop.wait(10.0)

        threads = [threading.Thread(target=render_loop), threading.Thread(target=rss_loop)]
        for t in threads:
            t.start()
        sent = 0
        with NgpClient(eps[0], timeout_s=600) as fc:
            while time.monotonic() - t0 < duration:
                due = t0 + sent / args.fps
                time.sleep(max(0.0, due - time.monotonic()))
                t = time.monotonic()
                fc.add_frame(images[sent % len(images)], poses[sent % len(images)], intr, stamp_ns=time.time_ns())
                acks.append((t - t0, time.monotonic() - t))
                sent += 1
                if sent % 600 == 0:
                    print(f"{(time.monotonic() - t0) / 60:.1f} min: {sent} frames, RSS {rss[-1][1]:.0f} MB, "
                          f"last render {renders[-1][1] if renders else math.nan:.2f} s", file=sys.stderr, flush=True)
            status = fc.status()
        stop.set()
        for t in threads:
            t.join(600)
    finally:
        stop.set()
        proc.terminate()
        proc.wait(60)

    def part(series, lo, hi):
        return [v for t, v in series if lo * duration <= t < hi * duration]

    result = {"minutes": args.minutes, "fps": args.fps, "frame_size": "640x480", "sent": sent,
              "frames_added": status["frames_added"], "frame_count": status["frame_count"], "step": status["step"],
              "elapsed_s": round(time.monotonic() - t0, 1), "achieved_fps": round(sent / duration, 2)}
    for name, series in (("rss_mb", rss), ("render_s", renders), ("ack_s", acks)):
        result[name] = {"first_fifth": _summary(part(series, 0.0, 0.2)),
                        "last_fifth": _summary(part(series, 0.8, 1.01))}
    result["rss_mb"]["max"] = round(max(v for _, v in rss), 1)

    def rate(lo, hi):  # training steps per minute over a part of the run
        part_steps = [(t, n) for t, n in steps if lo * duration <= t < hi * duration]
        (ta, na), (tb, nb) = part_steps[0], part_steps[-1]
        return round(60.0 * (nb - na) / (tb - ta), 1) if tb > ta else math.nan

    result["steps_per_min"] = {"first_fifth": rate(0.0, 0.2), "last_fifth": rate(0.8, 1.01)}
    print(json.dumps(result))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"result": result, "rss": rss, "renders": renders,
                                                   "steps": steps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
