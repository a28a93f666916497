"""``ngp nerf train|eval``, ``ngp render`` and ``ngp export mesh``: the NeRF part of the command line.

:mod:`ngp_sdk.cli` adds these parsers with :func:`add_parsers` and dispatches through :data:`HANDLERS`; its
error handling applies (an :class:`~ngp_sdk.errors.NgpError` prints one ``error: ...`` line, exit 2).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .cli import _add_training_budget, _emit, _positive_float, _positive_int

__all__ = ["add_parsers", "HANDLERS"]

_VIDEO_SUFFIXES = (".mp4", ".gif", ".webm", ".mkv", ".avi", ".mov")


def add_parsers(sub) -> None:
    """Add ``nerf``, ``render`` and ``export`` to the ``ngp`` sub-command parsers ``sub``."""
    nerf = sub.add_parser("nerf", help="NeRF primitive: posed photos -> radiance field").add_subparsers(
        dest="action", required=True)
    tr = nerf.add_parser("train", help="train on a transforms.json (instant-ngp / Blender / nerfstudio)")
    tr.add_argument("data", help="transforms*.json or dataset folder (its train split)")
    _add_training_budget(tr)
    tr.add_argument("--downscale", type=_positive_int, default=1, help="shrink the images by this factor")
    tr.add_argument("--out", default=None, help="snapshot to write (.ingp or .msgpack)")
    tr.add_argument("--config", default=None, help="instant-ngp style NeRF JSON config")
    tr.add_argument("--eval-images", type=int, default=0,
                    help="after training, PSNR/SSIM over this many images of the val split (or train)")
    tr.add_argument("--preview", default=None, help="write a rendering of training view 0 (PNG/JPEG/EXR)")
    tr.add_argument("--save-optimizer", action="store_true", help="also store Adam moments in the snapshot")
    tr.add_argument("--json", action="store_true", help="print one JSON line with the results")
    tr.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    ev = nerf.add_parser("eval", help="PSNR/SSIM of a NeRF snapshot against a dataset split")
    ev.add_argument("snapshot")
    ev.add_argument("--data", required=True, help="transforms_*.json (or folder: its val split)")
    ev.add_argument("--downscale", type=_positive_int, default=1)
    ev.add_argument("--max-images", type=_positive_int, default=None)
    ev.add_argument("--json", action="store_true")

    rd = sub.add_parser("render", help="render a NeRF or SDF snapshot: one view, an orbit or an instant-ngp "
                                       "camera path (SDF snapshots are sphere-traced)")
    rd.add_argument("snapshot")
    how = rd.add_mutually_exclusive_group()
    how.add_argument("--camera-path", default=None, help="instant-ngp camera path json ({'path': [{R, T, fov}]})")
    how.add_argument("--orbit", type=_positive_int, default=None, metavar="N",
                     help="N frames orbiting the scene centre at the first camera's radius and height")
    how.add_argument("--view", type=int, default=None,
                     help="render training camera VIEW (default 0; SDF: 0 = the default camera)")
    rd.add_argument("--frames", type=_positive_int, default=60, help="frames of a camera path (default 60)")
    rd.add_argument("--fps", type=_positive_float, default=30.0)
    rd.add_argument("--width", type=_positive_int, default=None)
    rd.add_argument("--height", type=_positive_int, default=None)
    rd.add_argument("--depth", action="store_true", help="append a depth map to each frame")
    rd.add_argument("--normals", action="store_true", help="SDF: append a normal map to each frame")
    rd.add_argument("--shading", choices=("lambert", "normals"), default="lambert", help="SDF: surface shading")
    rd.add_argument("--ao", action="store_true", help="SDF: ambient occlusion")
    rd.add_argument("--out", required=True, help="image file, video (.mp4/.gif) or a folder for PNG frames")

    ex = sub.add_parser("export", help="export geometry").add_subparsers(dest="action", required=True)
    me = ex.add_parser("mesh", help="marching-cubes mesh of a NeRF (with vertex colours) or SDF snapshot (PLY/OBJ)")
    me.add_argument("snapshot")
    me.add_argument("--out", required=True, help="mesh.ply or mesh.obj (NeRF world frame / the input mesh's frame)")
    me.add_argument("--resolution", type=_positive_int, default=256)
    me.add_argument("--threshold", type=float, default=None,
                    help="iso-value: NeRF density (default 2.5, instant-ngp's), SDF distance in mesh units (default 0)")


def _load(snapshot: str, device, primitives: tuple[str, ...] = ("nerf",), **kwargs):
    from .errors import SnapshotError
    from .session import Session

    session = Session.load(snapshot, device=device, **kwargs)
    if session.primitive not in primitives:
        raise SnapshotError(f"{snapshot} holds a {session.primitive!r} snapshot, not a "
                            f"{' or '.join(p.upper() for p in primitives)} (use `ngp {session.primitive} render`)")
    return session


def _eval_split(data: str, downscale: int):
    """The val split next to a training dataset (else its train split)."""
    from .data.nerf_data import load_nerf_dataset

    p = Path(data)
    folder = p if p.is_dir() else p.parent
    if (folder / "transforms_val.json").is_file():
        return load_nerf_dataset(folder / "transforms_val.json", downscale=downscale)
    return load_nerf_dataset(data, split="train", downscale=downscale)


def _cmd_train(args: argparse.Namespace) -> int:
    from .session import Session

    t0 = time.perf_counter()
    session = Session.nerf(args.data, config=args.config, downscale=args.downscale, device=args.device)
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
    if args.preview:
        from .data.images import save_image

        result["preview"] = str(save_image(args.preview, session.render(view=0)))
    result["wall_seconds"] = round(time.perf_counter() - t0, 3)
    _emit(args, result)
    return 130 if r.interrupted else 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .data.nerf_data import load_nerf_dataset

    p = Path(args.data)
    ds = load_nerf_dataset(p, split=None if p.is_file() else "val", downscale=args.downscale)
    session = _load(args.snapshot, args.device, eval_dataset=ds)
    t0 = time.perf_counter()
    m = session.task.evaluate(max_images=args.max_images)
    _emit(args, {"psnr": round(m["psnr"], 3), "ssim": round(m["ssim"], 4), "n_images": int(m["n_images"]),
                 "seconds": round(time.perf_counter() - t0, 3)})
    return 0


def _cameras(args: argparse.Namespace, scene) -> list[tuple[Any, Any]]:
    """``(c2w, intrinsics or None)`` per frame; None = the first training camera's, resized."""
    from .camera_path import intrinsics_with_fov, load_camera_path, orbit_poses, sample_camera_path

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


def _nerf_frames(session, args: argparse.Namespace) -> list:
    from .errors import DataError

    scene = session.task.scene
    view = args.view or 0
    if not 0 <= view < scene.n_cameras:
        raise DataError(f"--view {view} is out of range for {scene.n_cameras} cameras")
    frames = []
    for c2w, intr in _cameras(args, scene):
        size = {} if intr is not None else {"width": args.width, "height": args.height}
        frames.append(session.render(view=view, c2w=c2w, intrinsics=intr, with_depth=args.depth, **size))
    return frames


def _cmd_render(args: argparse.Namespace) -> int:
    import numpy as np

    from .cli_sdf import sdf_frames
    from .data.images import linear_to_srgb, save_image
    from .errors import DataError

    session = _load(args.snapshot, args.device, ("nerf", "sdf"))
    t0 = time.perf_counter()
    frames = {"nerf": _nerf_frames, "sdf": sdf_frames}[session.primitive](session, args)
    out = Path(args.out)
    if out.suffix.lower() in _VIDEO_SUFFIXES:
        import imageio.v3 as iio

        u8 = [(linear_to_srgb(f) * 255 + 0.5).astype(np.uint8) for f in frames]
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            if out.suffix.lower() == ".gif":
                iio.imwrite(out, u8, duration=1000.0 / args.fps, loop=0)
            else:
                iio.imwrite(out, u8, fps=args.fps)
        except Exception as e:  # imageio raises plain errors when no video plugin is installed
            raise DataError(f"cannot write {out} ({e}); install imageio-ffmpeg for videos, or pass a folder "
                            f"to get PNG frames") from None
        written = str(out)
    elif out.suffix and len(frames) == 1:
        written = str(save_image(out, frames[0]))
    else:
        out.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(frames):
            save_image(out / f"frame_{i:04d}.png", f)
        written = f"{out}/frame_*.png"
    h, w = frames[0].shape[:2]
    print(f"wrote {written}: {len(frames)} frame(s) of {w}x{h} in {time.perf_counter() - t0:.2f} s")
    return 0


def _cmd_export_mesh(args: argparse.Namespace) -> int:
    from .export import save_mesh

    session = _load(args.snapshot, args.device, ("nerf", "sdf"))
    t0 = time.perf_counter()
    threshold = {} if args.threshold is None else {"threshold": args.threshold}
    mesh = session.task.extract_mesh(resolution=args.resolution, **threshold)
    path = save_mesh(mesh, args.out)
    print(f"wrote {path}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces in "
          f"{time.perf_counter() - t0:.2f} s")
    return 0


#: ``(command, action) -> handler`` for :func:`ngp_sdk.cli.main`.
HANDLERS = {("nerf", "train"): _cmd_train, ("nerf", "eval"): _cmd_eval, ("render", None): _cmd_render,
            ("export", "mesh"): _cmd_export_mesh}
