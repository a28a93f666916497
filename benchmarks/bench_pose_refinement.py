"""Pose refinement on lego with perturbed training poses: quality and pose error, offline and over the bridge.

Run (the command of the recorded numbers):

    python benchmarks/bench_pose_refinement.py --seconds 600 --modes clean,noisy,refined,live

Every training pose of lego's train split is perturbed (seeded) by a rotation of exactly ``--rotation-deg`` about a
random axis through the camera centre and a translation of ``--translation`` times the camera's distance to the
origin in a random direction (:func:`ngp_sdk.nerf.refine.perturb_nerf_poses`). Modes, each trained for
``--seconds`` of wall time at ``--downscale`` (400x400 by default) from the same seed:

``clean``    the true poses (the reference quality);
``noisy``    the perturbed poses, no refinement (the gap refinement has to close);
``refined``  the perturbed poses with ``training.optimize_extrinsics``;
``live``     the perturbed poses streamed into ``ngp serve``'s server (in process, over TCP) with ``pose_noisy``;
             the server trains in the background; then ``save`` and the snapshot is evaluated like the others.

Measured per mode: held-out PSNR on the first ``--eval-images`` val views at their true poses (``psnr``) and,
for refined modes, with the val poses expressed in the reconstruction's frame (``psnr_aligned``: the rigid
motion that best aligns the refined camera centres with the true ones, applied to the val cameras - a refined
reconstruction is defined only up to such a motion); pose errors against the truth (mean / max rotation in
degrees, mean position error in world units), raw and after that alignment. The JSON summary compares: PSNR gap
to ``clean`` and the reduction of the mean rotation and position errors (noisy / refined).

Progress goes to stderr; Ctrl-C ends the current mode's training early (it is still evaluated).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._timing import train_for  # noqa: E402

LEGO = ROOT.parent / "shared" / "data" / "nerf" / "lego"


def _errors(poses, truth) -> dict:
    from ngp_sdk.nerf.refine import pose_errors

    raw, aligned = pose_errors(poses, truth), pose_errors(poses, truth, align=True)
    return {**{k: round(v, 5) for k, v in raw.items()}, **{f"{k}_aligned": round(v, 5) for k, v in aligned.items()}}


def _evaluate(task, val, n_images: int, refined=None, truth=None) -> dict:
    from ngp_sdk.core.cameras import nerf_matrix_to_ngp
    from ngp_sdk.nerf.refine import alignment_transform

    out = {"psnr": round(task.evaluate(val, max_images=n_images)["psnr"], 3)}
    if refined is not None:
        a = alignment_transform(refined, truth)  # refined frame -> true frame; val cameras go the other way
        moved = np.linalg.inv(a)[None] @ val.nerf_poses
        vds = dataclasses.replace(val, nerf_poses=moved,
                                  poses=nerf_matrix_to_ngp(moved[:, :3], val.scale, val.offset).astype(np.float32))
        out["psnr_aligned"] = round(task.evaluate(vds, max_images=n_images)["psnr"], 3)
    return out


def run_offline(mode: str, train, noisy_ds, val, args) -> dict:
    from ngp_sdk.nerf.config import NerfConfig
    from ngp_sdk.nerf.task import NerfTask

    ds = train if mode == "clean" else noisy_ds
    cfg = NerfConfig.from_dict({"training": {**json.loads(args.training), "optimize_extrinsics": mode == "refined",
                                             "seed": args.seed}})
    task = NerfTask(cfg, ds)
    task.warmup()
    steps = train_for(task.step, args.seconds, mode)
    poses = task.training_poses()
    res = {"steps": steps, "errors": _errors(poses, train.nerf_poses)}
    res.update(_evaluate(task, val, args.eval_images, poses if mode == "refined" else None, train.nerf_poses))
    if mode == "refined" and args.export:
        res["exported"] = task.export_poses(args.export)
    return res


def run_live(train, noisy_ds, val, args) -> dict:
    from bridges.client import NgpClient
    from bridges.server import NgpServer
    from ngp_sdk.core.session import Session

    srv = NgpServer(bind="tcp://127.0.0.1:0", frames_bind=None, views_bind=None).start()
    n = len(noisy_ds)
    with NgpClient(srv.endpoint, timeout_s=300) as c, tempfile.TemporaryDirectory() as tmp:
        c.wait_for_server(120)
        c.configure(config={"training": {**json.loads(args.training), "seed": args.seed}},
                    aabb_scale=noisy_ds.aabb_scale, scale=noisy_ds.scale,
                    offset=noisy_ds.offset, capacity=n, min_frames=n)
        t0 = time.perf_counter()
        for i in range(n):
            c.add_frame(noisy_ds.images[i], noisy_ds.nerf_poses[i], noisy_ds.intrinsics[i], pose_noisy=True)
        send_s = time.perf_counter() - t0
        train_for(lambda: time.sleep(0.5), args.seconds, "live")
        status = c.status()
        snap = str(Path(tmp) / "live.ingp")
        c.save(snap)
        srv.stop()
        # the frames again (a live snapshot keeps cameras, not pixels): the snapshot's corrections apply to them
        task = Session.load(snap, dataset=noisy_ds).task
    refined = task.training_poses()
    res = {"steps": int(status.get("step", 0)), "frames_sent_s": round(send_s, 2),
           "errors": _errors(refined, train.nerf_poses)}
    res.update(_evaluate(task, val, args.eval_images, refined, train.nerf_poses))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(LEGO))
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--downscale", type=int, default=2)
    ap.add_argument("--eval-images", type=int, default=6)
    ap.add_argument("--rotation-deg", type=float, default=1.0)
    ap.add_argument("--translation", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--modes", default="clean,noisy,refined,live")
    ap.add_argument("--training", default="{}",
                    help='extra training config keys as JSON, e.g. \'{"extrinsic_pivot": "camera"}\'')
    ap.add_argument("--export", default=None, help="write the refined poses (refined mode) to this transforms.json")
    args = ap.parse_args()

    import warp as wp

    wp.config.quiet = True
    warnings.filterwarnings("ignore")
    from ngp_sdk.core.cameras import nerf_matrix_to_ngp
    from ngp_sdk.nerf.data import load_nerf_dataset
    from ngp_sdk.nerf.refine import perturb_nerf_poses

    train = load_nerf_dataset(args.data, split="train", downscale=args.downscale)
    val = load_nerf_dataset(args.data, split="val", downscale=args.downscale)
    noisy = perturb_nerf_poses(train.nerf_poses, rotation_deg=args.rotation_deg,
                               translation_fraction=args.translation, seed=0)
    noisy_ds = dataclasses.replace(train, nerf_poses=noisy, poses=nerf_matrix_to_ngp(
        noisy[:, :3], train.scale, train.offset).astype(np.float32))
    results: dict = {"config": dict(vars(args)), "initial_errors": _errors(noisy, train.nerf_poses)}
    for mode in args.modes.split(","):
        t0 = time.perf_counter()
        results[mode] = (run_live(train, noisy_ds, val, args) if mode == "live"
                         else run_offline(mode, train, noisy_ds, val, args))
        results[mode]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps({mode: results[mode]}), file=sys.stderr, flush=True)
    summary = {}
    init = results["initial_errors"]
    for mode in ("noisy", "refined", "live"):
        if mode in results and "clean" in results:
            summary[f"{mode}_psnr_gap_db"] = round(results["clean"]["psnr"] - results[mode].get(
                "psnr_aligned", results[mode]["psnr"]), 3)
        if mode in ("refined", "live") and mode in results:
            e = results[mode]["errors"]
            summary[f"{mode}_rotation_error_reduction"] = round(
                init["rotation_deg_mean"] / max(e["rotation_deg_mean_aligned"], 1e-9), 2)
            summary[f"{mode}_position_error_reduction"] = round(
                init["position_mean"] / max(e["position_mean_aligned"], 1e-9), 2)
    results["summary"] = summary
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
