"""Browser-viewer latency on lego at 800x800 and training throughput with and without a viewer attached.

Trains lego (``../shared/data/nerf/lego``, full 800x800 cameras) for ``--train-seconds`` (or loads ``--snapshot``),
opens :class:`ngp_sdk.core.viewer.SceneViewer` in headless Chromium with an 800x800 canvas, and moves the camera
``--moves`` times by dragging on the page. For each move: seconds from the drag to the first low-resolution frame
handed to the page and to the full-resolution frame (median and p95), plus the preview size.

Then, in the same run, background training for ``--train-window`` seconds without a viewer, then with the viewer
open and its camera at rest (the view re-rendered as training goes on), then with the camera moved every
``--move-every`` seconds (a person looking around): samples/s of each and the ratios to no viewer. The browser runs
on the same machine (software WebGL), as in the tests.
Prints one JSON object. Needs the ``viewer`` and ``test`` extras and Debian's chromium/chromium-driver.

    python -m benchmarks.bench_viewer --train-seconds 120
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._browser import drag_canvas, find_chromium, open_chromium, wait_for
from benchmarks._timing import machine_info

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "nerf" / "lego"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stats(xs: list[float]) -> dict:
    a = np.asarray(xs, np.float64)
    return {"median": round(float(np.median(a)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "n": int(a.size)} if a.size else {}


def _session(args):
    from ngp_sdk import Session

    if args.snapshot:
        if "training" not in args.parts:
            return Session.load(args.snapshot)
        from ngp_sdk.nerf.data import load_nerf_dataset

        return Session.load(args.snapshot, dataset=load_nerf_dataset(args.data / "transforms_train.json"))
    s = Session.nerf(args.data / "transforms_train.json")
    s.train(seconds=args.train_seconds)
    return s


def measure_latency(session, args) -> dict:
    from ngp_sdk.core.viewer import SceneViewer, ViewerOptions

    driver = open_chromium((args.size, args.size))
    opts = ViewerOptions(port=_free_port(), show_cameras=False, show_box=False)
    first_low, full, server_low, server_full, preview_px = [], [], [], [], []
    try:
        with SceneViewer(session, opts) as viewer:
            driver.get(viewer.url)
            client = wait_for(lambda: next(iter(viewer.clients.values()), None), 60)
            wait_for(lambda: any(e.kind == "full" for e in client.renderer.events), 600)
            for i in range(args.moves):
                t0 = time.monotonic()
                drag_canvas(driver, 60 if i % 2 == 0 else -50, 10)
                done = wait_for(lambda t=t0: next((e for e in client.renderer.events
                                                   if e.kind == "full" and e.request.issued > t), None), 600, 0.02)
                if done is None:
                    continue
                evs = [e for e in client.renderer.events if e.request.issued > t0]
                low = next(e for e in evs if e.kind in ("preview", "full"))
                first_low.append(low.published - t0)
                full.append(done.published - t0)
                server_low.append(low.latency)
                server_full.append(done.latency)
                preview_px.append(low.size)
                print(f"move {i}: first frame {first_low[-1]:.2f} s ({low.size[0]}x{low.size[1]}), "
                      f"full {full[-1]:.2f} s", file=sys.stderr, flush=True)
            canvas = (client.last_request.intrinsics.width, client.last_request.intrinsics.height)
            dropped, abandoned = client.renderer.dropped, client.renderer.abandoned
    finally:
        driver.quit()
    return {"canvas": list(canvas), "move_to_first_low_res_s": _stats(first_low), "move_to_full_res_s": _stats(full),
            "camera_seen_to_low_res_s": _stats(server_low), "camera_seen_to_full_res_s": _stats(server_full),
            "preview_sizes": [list(p) for p in preview_px], "dropped_cameras": dropped, "abandoned_full": abandoned}


def measure_training(session, args) -> dict:
    from ngp_sdk.core.viewer import SceneViewer, ViewerOptions

    def window(viewer_driver=None, move: bool = True) -> float:
        s0, t0 = session.step_count, time.monotonic()
        session.start()
        next_move = t0 + args.move_every
        while time.monotonic() - t0 < args.train_window:
            time.sleep(0.05)
            if viewer_driver is not None and move and time.monotonic() >= next_move:
                drag_canvas(viewer_driver, 40, 0)
                next_move += args.move_every
        session.stop()
        return (session.step_count - s0) * session.task.samples_per_step / (time.monotonic() - t0)

    without = window()
    driver = open_chromium((args.size, args.size))
    try:
        with SceneViewer(session, ViewerOptions(port=_free_port(), refresh_seconds=2.0)) as viewer:
            driver.get(viewer.url)
            client = wait_for(lambda: next(iter(viewer.clients.values()), None), 60)
            wait_for(lambda: any(e.kind == "full" for e in client.renderer.events), 600)  # the page's first frame
            at_rest = window(driver, move=False)
            n_rest = len(client.renderer.events)
            with_viewer = window(driver)
            frames = {k: sum(e.kind == k for e in client.renderer.events[n_rest:])
                      for k in ("preview", "partial", "full")}
    finally:
        driver.quit()
    return {"samples_per_s_without_viewer": round(without), "samples_per_s_viewer_camera_at_rest": round(at_rest),
            "ratio_at_rest": round(at_rest / without, 3), "samples_per_s_with_viewer": round(with_viewer),
            "ratio": round(with_viewer / without, 3), "frames_shown_while_moving": frames,
            "window_s": args.train_window, "move_every_s": args.move_every}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="lego folder (Blender synthetic)")
    ap.add_argument("--snapshot", type=Path, default=None, help="a lego snapshot instead of training one")
    ap.add_argument("--train-seconds", type=float, default=120.0)
    ap.add_argument("--size", type=int, default=800, help="canvas width and height in pixels")
    ap.add_argument("--moves", type=int, default=6)
    ap.add_argument("--train-window", type=float, default=40.0)
    ap.add_argument("--move-every", type=float, default=4.0)
    ap.add_argument("--parts", default="latency,training", help="comma list of latency, training")
    ap.add_argument("--save-snapshot", type=Path, default=None, help="keep the trained lego snapshot here")
    args = ap.parse_args()
    import warp as wp

    wp.config.log_level = wp.LOG_ERROR
    parts = set(args.parts.split(","))
    if find_chromium() is None:
        sys.exit("needs selenium, chromium and chromedriver")
    if args.snapshot is None and not (args.data / "transforms_train.json").exists():
        sys.exit(f"no lego data at {args.data} (pass --data or --snapshot)")
    t0 = time.perf_counter()
    session = _session(args)
    if args.save_snapshot:
        session.save(args.save_snapshot)
    out = {"benchmark": "viewer", "machine": machine_info(), "scene": "lego", "train_steps": session.step_count,
           "setup_s": round(time.perf_counter() - t0, 1)}
    if "latency" in parts:
        out["latency"] = measure_latency(session, args)
    if "training" in parts:
        out["training"] = measure_training(session, args)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
