"""Stream a transforms.json dataset into an ngp-sdk bridge server as if it were a live camera, then measure.

    python samples/stream_dataset.py ../shared/data/nerf/lego --spawn-server --rate 5 --downscale 4 --eval-after 60

1. ``configure`` the server with the dataset's ``aabb_scale`` / ``scale`` / ``offset``;
2. send the train frames (``add_frame``, acknowledged) at ``--rate`` frames per second while the server trains;
3. ``--eval-after`` seconds after the first frame, render every ``transforms_val.json`` pose over the bridge
   (training keeps running; ``--min-steps`` also waits for that many steps) and print the PSNR (alpha
   composited over white for data with alpha, as Blender) and the render latency (median / p95) of
   ``--eval-size`` square renders.

With ``--spawn-server`` it starts ``ngp serve`` on free loopback ports as a subprocess and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bridges.client import NgpClient
from ngp_sdk.core.cameras import Intrinsics
from ngp_sdk.core.metrics import psnr
from ngp_sdk.nerf.data import composite_alpha, load_nerf_dataset

__all__ = ["main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    ports = [_free_port() for _ in range(3)]
    eps = [f"tcp://127.0.0.1:{p}" for p in ports]
    cmd = [sys.executable, "-m", "ngp_sdk.cli", "--device", args.device, "serve", "--bind", eps[0],
           "--frames-bind", eps[1], "--views-bind", eps[2], "--capacity", str(args.capacity)]
    if args.training_share is not None:
        cmd += ["--training-share", str(args.training_share)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL), eps[0]


def _square(intr: Intrinsics, size: int) -> Intrinsics:
    """The camera rescaled to ``size x size`` (the evaluation resolution)."""
    sx, sy = size / intr.width, size / intr.height
    return Intrinsics(width=size, height=size, fx=intr.fx * sx, fy=intr.fy * sy, cx=intr.cx * sx, cy=intr.cy * sy,
                      model=intr.model, dist=intr.dist)


def _evaluate(client: NgpClient, val, size: int, max_images: int) -> dict[str, float]:
    bg = (1.0, 1.0, 1.0) if val.has_alpha else (0.0, 0.0, 0.0)
    psnrs, latencies = [], []
    for i in range(min(len(val), max_images)):
        intr = _square(val.intrinsics[i], size)
        t = time.perf_counter()
        img = client.render(val.nerf_poses[i], intr, encoding="rgb8")
        latencies.append(time.perf_counter() - t)
        gt = val.images[i]
        if gt.shape[:2] != (size, size):  # nearest-neighbour resize of the ground truth
            ys = (np.arange(size) * gt.shape[0] / size).astype(int)
            xs = (np.arange(size) * gt.shape[1] / size).astype(int)
            gt = gt[ys][:, xs]
        psnrs.append(psnr(img.astype(np.float32) / 255.0, composite_alpha(gt, bg)))
    lat = np.array(latencies) * 1000
    return {"psnr": float(np.mean(psnrs)), "n_val": len(psnrs), "render_ms_median": float(np.median(lat)),
            "render_ms_p95": float(np.percentile(lat, 95)), "render_size": size}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", help="dataset folder (transforms_train.json / transforms_val.json) or transforms file")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5555")
    p.add_argument("--rate", type=float, default=5.0, help="frames per second")
    p.add_argument("--downscale", type=int, default=4)
    p.add_argument("--eval-after", type=float, default=60.0, help="seconds after the first frame")
    p.add_argument("--min-steps", type=int, default=0,
                   help="also wait until the server has trained this many steps (at most 10 minutes more)")
    p.add_argument("--eval-size", type=int, default=200, help="square render size for PSNR and latency")
    p.add_argument("--max-val", type=int, default=10, help="validation poses rendered")
    p.add_argument("--capacity", type=int, default=256)
    p.add_argument("--config", default=None, help="JSON config file sent with configure")
    p.add_argument("--spawn-server", action="store_true")
    p.add_argument("--device", default="cpu", help="device of a spawned server")
    p.add_argument("--training-share", type=float, default=None,
                   help="ngp serve --training-share of a spawned server (default: the server's)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    train = load_nerf_dataset(args.data, split="train", downscale=args.downscale)
    val = load_nerf_dataset(args.data, split="val", downscale=args.downscale)
    proc = None
    endpoint = args.endpoint
    if args.spawn_server:
        proc, endpoint = _spawn_server(args)
    try:
        with NgpClient(endpoint, timeout_s=60) as c:
            c.wait_for_server(60)  # a spawned server needs a moment to import Warp
            config = json.loads(Path(args.config).read_text()) if args.config else {}
            c.configure(config=config, aabb_scale=int(train.aabb_scale), scale=float(train.scale),
                        offset=tuple(train.offset), capacity=args.capacity)
            t0 = time.monotonic()
            sent = 0
            while time.monotonic() - t0 < args.eval_after:
                if sent < len(train) and time.monotonic() >= t0 + sent / args.rate:
                    c.add_frame(train.images[sent], train.nerf_poses[sent], train.intrinsics[sent])
                    sent += 1
                time.sleep(0.005)
            wait_until = time.monotonic() + 600
            while c.status()["step"] < args.min_steps and time.monotonic() < wait_until:
                time.sleep(0.2)  # a loaded machine trains fewer steps in --eval-after seconds
            status = c.status()
            result = {"frames_sent": sent, "step": status["step"], "loss": status["loss"],
                      "seconds": round(time.monotonic() - t0, 1), **_evaluate(c, val, args.eval_size, args.max_val)}
            result["step_after_eval"] = c.status()["step"]
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
