"""``ngp nerf train|eval`` and the NeRF side of ``ngp render``: the NeRF part of the command line.

Registered through :mod:`ngp_sdk.core.registry`: :func:`add_commands` adds the ``nerf`` sub-commands and
:func:`render_frames` answers ``ngp render`` for NeRF snapshots. The entry point's error handling applies (an
:class:`~ngp_sdk.core.errors.NgpError` prints one ``error: ...`` line, exit 2).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ngp_sdk.core.cli import EXIT_INTERRUPTED, add_output_options, add_training_budget, emit, load_session, positive_int

__all__ = ["add_commands", "render_frames"]


def add_commands(sub) -> None:
    """Add ``ngp nerf train`` and ``ngp nerf eval`` to the ``ngp`` sub-command parsers ``sub``."""
    nerf = sub.add_parser("nerf", help="NeRF primitive: posed photos -> radiance field").add_subparsers(
        dest="action", required=True)
    tr = nerf.add_parser("train", help="train on a transforms.json (instant-ngp / Blender / nerfstudio)")
    tr.add_argument("data", help="transforms*.json or dataset folder (its train split)")
    add_training_budget(tr)
    tr.add_argument("--downscale", type=positive_int, default=1, help="shrink the images by this factor")
    tr.add_argument("--out", default=None, help="snapshot to write (.ingp or .msgpack)")
    tr.add_argument("--config", default=None, help="instant-ngp style NeRF JSON config")
    tr.add_argument("--eval-images", type=int, default=0,
                    help="after training, PSNR/SSIM over this many images of the val split (or train)")
    tr.add_argument("--preview", default=None, help="write a rendering of training view 0 (PNG/JPEG/EXR)")
    tr.add_argument("--save-optimizer", action="store_true", help="also store Adam moments in the snapshot")
    tr.add_argument("--optimize-extrinsics", action="store_true",
                    help="refine every training pose (training.optimize_extrinsics)")
    tr.add_argument("--optimize-focal-length", action="store_true",
                    help="refine one focal length shared by the cameras (training.optimize_focal_length)")
    tr.add_argument("--depth-lambda", type=float, default=None,
                    help="weight of the depth loss for frames with a depth_path (training.depth_supervision_lambda)")
    tr.add_argument("--export-poses", default=None,
                    help="after training, write the (refined) cameras to this transforms.json")
    add_output_options(tr)
    tr.set_defaults(handler=_cmd_train)

    ev = nerf.add_parser("eval", help="PSNR/SSIM of a NeRF snapshot against a dataset split")
    ev.add_argument("snapshot")
    ev.add_argument("--data", required=True, help="transforms_*.json (or folder: its val split)")
    ev.add_argument("--downscale", type=positive_int, default=1)
    ev.add_argument("--max-images", type=positive_int, default=None)
    add_output_options(ev, progress=False)
    ev.set_defaults(handler=_cmd_eval)


def _eval_split(data: str, downscale: int):
    """The val split next to a training dataset (else its train split)."""
    from ngp_sdk.nerf.data import load_nerf_dataset

    p = Path(data)
    folder = p if p.is_dir() else p.parent
    if (folder / "transforms_val.json").is_file():
        return load_nerf_dataset(folder / "transforms_val.json", downscale=downscale)
    return load_nerf_dataset(data, split="train", downscale=downscale)


def _config(args: argparse.Namespace):
    """``--config`` with the refinement / depth flags laid over its ``training`` section."""
    import dataclasses

    from ngp_sdk.core.config import config_from
    from ngp_sdk.nerf.config import NerfConfig

    cfg = config_from(NerfConfig, args.config)
    over: dict[str, Any] = {}
    if args.optimize_extrinsics:
        over["optimize_extrinsics"] = True
    if args.optimize_focal_length:
        over["optimize_focal_length"] = True
    if args.depth_lambda is not None:
        over["depth_supervision_lambda"] = args.depth_lambda
    return dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, **over)) if over else cfg


def _cmd_train(args: argparse.Namespace) -> int:
    from ngp_sdk.core.session import Session

    t0 = time.perf_counter()
    session = Session.nerf(args.data, config=_config(args), downscale=args.downscale, device=args.device)
    task = session.task
    samples0 = task.total_samples
    r = session.train(steps=args.steps, seconds=args.seconds, progress=not args.no_progress)
    result: dict[str, Any] = {
        "steps": session.step_count, "seconds": round(r.seconds, 3), "loss": r.loss,
        "samples_per_second": round((task.total_samples - samples0) / r.seconds) if r.seconds > 0 else 0,
        "rays_per_batch": task.n_rays, "interrupted": r.interrupted,
    }
    if args.eval_images > 0:
        m = task.evaluate(_eval_split(args.data, args.downscale), max_images=args.eval_images)
        result.update(psnr=round(m["psnr"], 3), ssim=round(m["ssim"], 4), eval_images=int(m["n_images"]))
        session.metrics.update(m)
    if args.out:
        result["snapshot"] = str(session.save(args.out, include_optimizer=args.save_optimizer))
    if args.export_poses:
        result["poses"] = task.export_poses(args.export_poses)
    if args.preview:
        from ngp_sdk.core.images import save_image

        result["preview"] = str(save_image(args.preview, session.render(view=0)))
    result["wall_seconds"] = round(time.perf_counter() - t0, 3)
    emit(args, result)
    return EXIT_INTERRUPTED if r.interrupted else 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from ngp_sdk.nerf.data import load_nerf_dataset

    p = Path(args.data)
    ds = load_nerf_dataset(p, split=None if p.is_file() else "val", downscale=args.downscale)
    session = load_session(args.snapshot, args.device, ("nerf",), eval_dataset=ds)
    t0 = time.perf_counter()
    m = session.task.evaluate(max_images=args.max_images)
    emit(args, {"psnr": round(m["psnr"], 3), "ssim": round(m["ssim"], 4), "n_images": int(m["n_images"]),
                 "seconds": round(time.perf_counter() - t0, 3)})
    return 0


def _cameras(args: argparse.Namespace, scene) -> list[tuple[Any, Any]]:
    """``(c2w, intrinsics or None)`` per frame; None = the first training camera's, resized."""
    from ngp_sdk.core.camera_path import intrinsics_with_fov, load_camera_path, orbit_poses, sample_camera_path

    first = scene.intrinsics[0]
    if args.camera_path:
        out = []
        for c2w, fov in sample_camera_path(load_camera_path(args.camera_path), args.frames):
            w = args.width or first.width
            h = args.height or (first.height if args.width is None else round(first.height * w / first.width))
            out.append((c2w, None if fov is None else intrinsics_with_fov(w, h, fov)))
        return out
    if args.orbit:
        return [(c2w, None) for c2w in orbit_poses(scene.poses[0], scene.centre, scene.up, args.orbit)]
    return [(None, None)]


def render_frames(session, args: argparse.Namespace, indices: Sequence[int] | None = None) -> list:
    """The frames ``ngp render`` asks of a NeRF snapshot: a training view, an orbit or a camera path.

    ``indices`` renders only those frames of the sequence (None: all), as a batch worker rendering a frame range
    does; frame ``i`` is the same whichever frames are rendered with it.
    """
    from ngp_sdk.core.errors import DataError

    scene = session.task.scene
    view = args.view or 0
    if not 0 <= view < scene.n_cameras:
        raise DataError(f"--view {view} is out of range for {scene.n_cameras} cameras")
    cameras = _cameras(args, scene)
    frames = []
    for c2w, intr in (cameras if indices is None else [cameras[i] for i in indices]):
        size = {} if intr is not None else {"width": args.width, "height": args.height}
        frames.append(session.render(view=view, c2w=c2w, intrinsics=intr, with_depth=args.depth, **size))
    return frames
