"""Depth supervision on a few-view scene: held-out PSNR with and without depth, at equal training time.

Run (the command of the recorded numbers):

    python benchmarks/bench_depth.py --seconds 120 --views 8

The scene is :data:`ngp_sdk.nerf.synthetic.SHOWCASE_SCENE` (the demo's textured, self-shadowing shapes on a
checkered disc) rendered analytically with colour and z-depth (``write_synthetic_dataset(depth=True)``: 16-bit
PNG depth, instant-ngp's ``depth_path`` / ``integer_depth_scale``) from ``--views`` training cameras and
``--val`` held-out cameras, ``--size`` pixels square, cameras 12-65 degrees above the disc (the demo's band).

Two runs from the same seed, each ``--seconds`` of wall-clock training (warm-up compile excluded):

``rgb``    colour only (``depth_supervision_lambda = 0``);
``depth``  colour + the L1 expected-depth loss (``depth_supervision_lambda = --weight``), the grid seeded from
           the depth images.

Reported: steps, held-out PSNR / SSIM over all val views (white background), the mean absolute depth error of
the held-out renders where the truth has a surface (world units), and ``psnr_gain_db`` = depth - rgb.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._timing import train_for  # noqa: E402


def run(data: Path, weight: float, args) -> dict:
    from ngp_sdk.nerf.config import NerfConfig
    from ngp_sdk.nerf.data import load_nerf_dataset
    from ngp_sdk.nerf.task import NerfTask

    train = load_nerf_dataset(data, split="train")
    val = load_nerf_dataset(data, split="val")
    task = NerfTask(NerfConfig.from_dict({"training": {"depth_supervision_lambda": weight, "seed": args.seed}}),
                    train)
    task.warmup()
    steps = train_for(task.step, args.seconds, "depth" if weight else "rgb")
    m = task.evaluate(val)
    errs = []
    for i in range(len(val)):
        img = task.render_world(val.nerf_poses[i], val.intrinsics[i])
        truth = val.load_depth(i)
        hit = truth > 0
        errs.append(float(np.mean(np.abs(img.depth[hit] - truth[hit]))))
    return {"steps": steps, "psnr": round(m["psnr"], 3), "ssim": round(m["ssim"], 4),
            "depth_mae": round(float(np.mean(errs)), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--val", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--weight", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args()

    import warp as wp

    wp.config.quiet = True
    warnings.filterwarnings("ignore")
    from ngp_sdk.nerf.synthetic import SHOWCASE_SCENE, write_synthetic_dataset

    with tempfile.TemporaryDirectory() as tmp:
        data = write_synthetic_dataset(Path(tmp), SHOWCASE_SCENE, n_train=args.views, n_val=args.val,
                                       size=args.size, elevation=(12.0, 65.0), depth=True)
        out = {"config": dict(vars(args))}
        for name, weight in (("rgb", 0.0), ("depth", args.weight)):
            out[name] = run(data, weight, args)
            print(json.dumps({name: out[name]}), file=sys.stderr, flush=True)
    out["psnr_gain_db"] = round(out["depth"]["psnr"] - out["rgb"]["psnr"], 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
