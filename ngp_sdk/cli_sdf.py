"""``ngp sdf ...``: train a neural signed distance field on a mesh and evaluate it (IoU against the mesh)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

__all__ = ["add_parsers", "HANDLERS"]


def add_parsers(sub) -> None:
    """Add ``sdf train`` and ``sdf eval`` to the ``ngp`` sub-parsers."""
    sdf = sub.add_parser("sdf", help="SDF primitive: a mesh -> neural signed distance field").add_subparsers(
        dest="action", required=True)
    tr = sdf.add_parser("train", help="fit the signed distance of an OBJ/PLY/STL mesh")
    tr.add_argument("mesh")
    budget = tr.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, help="training steps")
    budget.add_argument("--seconds", type=float, help="training time budget in seconds")
    tr.add_argument("--out", default=None, help="snapshot to write (.ingp or .msgpack)")
    tr.add_argument("--config", default=None, help="SDF JSON config (default: instant-ngp's)")
    tr.add_argument("--eval-points", type=int, default=1 << 20, help="uniform points for the IoU after training")
    tr.add_argument("--json", action="store_true", help="print one JSON line with the results")
    tr.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ev = sdf.add_parser("eval", help="IoU and mean |error| of an SDF snapshot against its mesh")
    ev.add_argument("snapshot")
    ev.add_argument("--mesh", required=True, help="the mesh the snapshot was trained on")
    ev.add_argument("--points", type=int, default=1 << 20, help="uniform random points")
    ev.add_argument("--json", action="store_true")


def _emit(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(result, sort_keys=True), flush=True)
    else:
        for k, v in result.items():
            print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")


def _cmd_train(args: argparse.Namespace) -> int:
    from .session import Session

    session = Session.sdf(args.mesh, config=args.config, device=args.device)
    t0 = time.perf_counter()
    r = session.train(steps=args.steps, seconds=args.seconds, progress=not args.no_progress)
    m = session.task.evaluate(n_points=args.eval_points)
    result: dict[str, Any] = {"steps": session.step_count, "seconds": round(r.seconds, 3), "loss": r.loss,
                              "samples_per_second": round(r.samples_per_second), "iou": round(m["iou"], 5),
                              "mean_abs_error": m["mean_abs_error"], "interrupted": r.interrupted}
    if args.out:
        result["snapshot"] = str(session.save(args.out))
    result["wall_seconds"] = round(time.perf_counter() - t0, 3)
    _emit(args, result)
    return 130 if r.interrupted else 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .data.meshes import load_mesh
    from .errors import SnapshotError
    from .session import Session

    mesh = load_mesh(args.mesh)
    session = Session.load(args.snapshot, device=args.device, mesh=mesh)
    if session.primitive != "sdf":
        raise SnapshotError(f"{args.snapshot} holds a {session.primitive!r} snapshot, not an SDF")
    m = session.task.evaluate(n_points=args.points)
    _emit(args, {"iou": round(m["iou"], 5), "mean_abs_error": m["mean_abs_error"], "points": args.points})
    return 0


HANDLERS = {("sdf", "train"): _cmd_train, ("sdf", "eval"): _cmd_eval}
