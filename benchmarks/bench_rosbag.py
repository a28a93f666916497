"""Issue 13 bars: lego as a robot's bag -> import -> train, against training on the original; and replay.

    python benchmarks/bench_rosbag.py ../shared/data/nerf/lego --workdir /tmp/rosbag --seconds 600

1. Writes lego's training views as an MCAP bag (``rgba8`` at 5 Hz, ``/tf`` ``map -> base_link`` at 30 Hz with
   stamps never equal to an image's, static ``base_link -> camera_optical_frame``, CameraInfo) with
   :func:`ngp_sdk.robotics.write_capture`.
2. ``ngp import rosbag`` with default flags (the scene box estimated from the cameras).
3. ``ngp nerf train`` for ``--seconds`` on the import and on ``transforms_train.json``; ``ngp nerf eval`` of both
   snapshots on ``transforms_val.json`` (the import's snapshot re-expresses the val poses in its own scene box).
4. With ``--replay``: ``ngp serve --replay BAG`` (a fresh server, frames sent as recorded) and, ``--seconds`` after
   the first frame, renders of the val poses over the bridge at full resolution (PSNR over white).

Prints one JSON object; every stage's command is in it. Stages whose outputs exist are reused (``--fresh``).
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


def _run(cmd: list[str]) -> dict:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _ngp(*args: str) -> list[str]:
    return [sys.executable, "-m", "ngp_sdk.cli", *args]


def write_bag(data: Path, bag: Path) -> dict:
    from ngp_sdk.nerf.data import load_nerf_dataset
    from ngp_sdk.robotics import write_capture

    ds = load_nerf_dataset(data / "transforms_train.json")
    t = time.perf_counter()
    info = write_capture(bag, list(ds.images), ds.nerf_poses, ds.intrinsics[0], format="mcap")
    return {"bag": str(bag), "frames": len(ds), "size": f"{ds.intrinsics[0].width}x{ds.intrinsics[0].height}",
            "bag_mb": round(sum(f.stat().st_size for f in bag.rglob("*") if f.is_file()) / 1e6, 1),
            "write_s": round(time.perf_counter() - t, 1), "tf_samples": len(info["tf_stamps_ns"]),
            "image_topic": info["image_topic"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replay(bag: Path, data: Path, image_topic: str, seconds: float, max_val: int) -> dict:
    from bridges.client import NgpClient
    from ngp_sdk.core.metrics import psnr
    from ngp_sdk.nerf.data import composite_alpha, load_nerf_dataset

    eps = [f"tcp://127.0.0.1:{_free_port()}" for _ in range(3)]
    cmd = _ngp("serve", "--bind", eps[0], "--frames-bind", eps[1], "--views-bind", eps[2], "--replay", str(bag),
               "--image-topic", image_topic, "--rate", "1")
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, stdout=sys.stderr)  # the server's lines go to stderr: stdout is the JSON
    val = load_nerf_dataset(data / "transforms_val.json")
    try:
        with NgpClient(eps[0], timeout_s=600) as c:
            c.wait_for_server(120)  # a spawned server needs a moment to import Warp
            while c.status()["frame_count"] == 0:
                time.sleep(0.1)
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                time.sleep(1.0)
            status = c.status()
            psnrs = []
            for i in range(min(max_val, len(val))):
                img = c.render(val.nerf_poses[i], val.intrinsics[i], encoding="rgb8")
                psnrs.append(psnr(img.astype(np.float32) / 255.0, composite_alpha(val.images[i], (1.0, 1.0, 1.0))))
            return {"command": " ".join(cmd[2:]), "frames": status["frame_count"], "step": status["step"],
                    "camera_frames": status.get("camera_frames"), "seconds": seconds,
                    "psnr": round(float(np.mean(psnrs)), 3), "n_val": len(psnrs)}
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", type=Path, help="the lego folder (transforms_train.json, transforms_val.json)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/rosbag"))
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--max-val", type=int, default=10)
    p.add_argument("--stages", default="bag,import,train,eval", help="comma list of bag,import,train,eval,replay")
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args()
    w = args.workdir
    w.mkdir(parents=True, exist_ok=True)
    stages = set(args.stages.split(","))
    bag, out = w / "lego_bag", w / "lego_import"
    result: dict = {}
    if "bag" in stages and (args.fresh or not bag.exists()):
        result["bag"] = write_bag(args.data, bag)
    if "import" in stages:
        result["import"] = _run(_ngp("import", "rosbag", str(bag), "--out", str(out), "--image-topic",
                                     "/camera/image_raw", "--overwrite", "--json", "--no-progress"))
    runs = {"bag": out, "original": args.data / "transforms_train.json"}
    if "train" in stages:
        for name, d in runs.items():
            result[f"train_{name}"] = _run(_ngp("nerf", "train", str(d), "--seconds", str(args.seconds), "--out",
                                                str(w / f"{name}.ingp"), "--json", "--no-progress"))
    if "eval" in stages:
        for name in runs:
            result[f"eval_{name}"] = _run(_ngp("nerf", "eval", str(w / f"{name}.ingp"), "--data",
                                               str(args.data / "transforms_val.json"), "--max-images",
                                               str(args.max_val), "--json"))
        if "eval_bag" in result and "eval_original" in result:
            result["psnr_difference_db"] = round(result["eval_original"]["psnr"] - result["eval_bag"]["psnr"], 3)
    if "replay" in stages:
        result["replay"] = replay(bag, args.data, "/camera/image_raw", args.seconds, args.max_val)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
