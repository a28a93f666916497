"""``ngp sdf train|eval``, and the SDF side of ``ngp render``: a mesh -> neural signed distance field.

Registered through :mod:`ngp_sdk.core.registry`: :func:`add_commands` adds the ``sdf`` sub-commands,
:func:`render_arguments` the SDF options of ``ngp render`` and :func:`render_frames` answers it for SDF
snapshots. The entry point's error handling applies (an :class:`~ngp_sdk.core.errors.NgpError` prints one
``error: ...`` line, exit 2).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from ngp_sdk.core.cli import EXIT_INTERRUPTED, add_output_options, add_training_budget, emit, load_session, positive_int

__all__ = ["add_commands", "render_arguments", "render_frames"]


def add_commands(sub) -> None:
    """Add ``ngp sdf train`` and ``ngp sdf eval`` to the ``ngp`` sub-parsers."""
    sdf = sub.add_parser("sdf", help="SDF primitive: a mesh -> neural signed distance field").add_subparsers(
        dest="action", required=True)
    tr = sdf.add_parser("train", help="fit the signed distance of an OBJ/PLY/STL mesh")
    tr.add_argument("mesh")
    add_training_budget(tr)
    tr.add_argument("--out", default=None, help="snapshot to write (.ingp or .msgpack)")
    tr.add_argument("--config", default=None, help="SDF JSON config (default: instant-ngp's)")
    tr.add_argument("--eval-points", type=positive_int, default=1 << 20,
                    help="uniform points for the IoU after training")
    tr.add_argument("--preview", default=None, help="write a sphere-traced view from the default camera (PNG/EXR)")
    add_output_options(tr)
    tr.set_defaults(handler=_cmd_train)
    ev = sdf.add_parser("eval", help="IoU, Chamfer distance and normal consistency of an SDF snapshot "
                                     "against its mesh")
    ev.add_argument("snapshot")
    ev.add_argument("--mesh", required=True, help="the mesh the snapshot was trained on")
    ev.add_argument("--points", type=positive_int, default=1 << 20, help="uniform random points for the IoU")
    ev.add_argument("--mesh-resolution", type=int, default=256,
                    help="marching-cubes resolution of the mesh compared with the input (0: skip Chamfer)")
    ev.add_argument("--surface-points", type=positive_int, default=200_000,
                    help="points sampled on each surface for Chamfer / normal consistency")
    ev.add_argument("--export", default=None, help="also write the compared mesh (PLY/OBJ, mesh frame)")
    add_output_options(ev, progress=False)
    ev.set_defaults(handler=_cmd_eval)


def render_arguments(parser: argparse.ArgumentParser) -> None:
    """The SDF options of ``ngp render``."""
    parser.add_argument("--normals", action="store_true", help="SDF: append a normal map to each frame")
    parser.add_argument("--shading", choices=("lambert", "normals"), default="lambert", help="SDF: surface shading")
    parser.add_argument("--ao", action="store_true", help="SDF: ambient occlusion")


def _cmd_train(args: argparse.Namespace) -> int:
    from ngp_sdk.core.session import Session

    session = Session.sdf(args.mesh, config=args.config, device=args.device)
    t0 = time.perf_counter()
    r = session.train(steps=args.steps, seconds=args.seconds, progress=not args.no_progress)
    m = session.task.evaluate(n_points=args.eval_points)
    session.metrics.update(m)
    result: dict[str, Any] = {"steps": session.step_count, "seconds": round(r.seconds, 3), "loss": r.loss,
                              "samples_per_second": round(r.samples_per_second), "iou": round(m["iou"], 5),
                              "mean_abs_error": m["mean_abs_error"], "interrupted": r.interrupted}
    if args.out:
        result["snapshot"] = str(session.save(args.out))
    if args.preview:
        from ngp_sdk.core.images import save_image

        result["preview"] = str(save_image(args.preview, session.render(width=640, height=640,
                                                                        ambient_occlusion=True)))
    result["wall_seconds"] = round(time.perf_counter() - t0, 3)
    emit(args, result)
    return EXIT_INTERRUPTED if r.interrupted else 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from ngp_sdk.core.errors import DataError
    from ngp_sdk.core.meshes import load_mesh

    mesh = load_mesh(args.mesh)
    session = load_session(args.snapshot, args.device, ("sdf",), mesh=mesh)
    t0 = time.perf_counter()
    m = session.task.evaluate(n_points=args.points)
    result: dict[str, Any] = {"iou": round(m["iou"], 5), "mean_abs_error": m["mean_abs_error"],
                              "points": args.points}
    if args.mesh_resolution:
        if not 8 <= args.mesh_resolution <= 1024:
            raise DataError(f"--mesh-resolution must be 0 or in 8..1024, got {args.mesh_resolution}")
        from ngp_sdk.sdf.metrics import chamfer_and_normal_consistency

        out = session.task.extract_mesh(resolution=args.mesh_resolution)
        g = chamfer_and_normal_consistency(out.vertices, out.faces, mesh.vertices, mesh.faces,
                                           n_points=args.surface_points)
        result.update(chamfer=g["chamfer"], chamfer_relative=round(g["chamfer_relative"], 6),
                      normal_consistency=round(g["normal_consistency"], 5), bbox_diagonal=g["bbox_diagonal"],
                      mesh_resolution=args.mesh_resolution, mesh_faces=len(out.faces))
        if args.export:
            from ngp_sdk.core.meshes import save_mesh

            result["mesh"] = str(save_mesh(out, args.export))
    result["seconds"] = round(time.perf_counter() - t0, 3)
    emit(args, result)
    return 0


def render_frames(session, args: argparse.Namespace, indices: Sequence[int] | None = None) -> list:
    """The frames ``ngp render`` asks of an SDF snapshot: the default camera, an orbit or a camera path.

    Camera paths are in the SDF's internal frame (the normalised unit cube), like instant-ngp's SDF mode.
    ``indices`` renders only those frames of the sequence (None: all).
    """
    import numpy as np

    from ngp_sdk.core.camera_path import intrinsics_with_fov, load_camera_path, orbit_poses, sample_camera_path
    from ngp_sdk.core.errors import DataError

    task = session.task
    if args.view not in (None, 0):
        raise DataError(f"--view {args.view}: an SDF snapshot has no training cameras; use --orbit or --camera-path")
    w = args.width or (args.height or 512)
    h = args.height or w
    pose, intr = task.default_camera(w, h)
    cams: list[tuple[np.ndarray, Any]] = [(pose, intr)]
    if args.orbit:
        cams = [(p, intr) for p in orbit_poses(pose, task.centre, (0.0, 1.0, 0.0), args.orbit)]
    elif args.camera_path:
        cams = [(c2w, intr if fov is None else intrinsics_with_fov(w, h, fov))
                for c2w, fov in sample_camera_path(load_camera_path(args.camera_path), args.frames)]
    if indices is not None:
        cams = [cams[i] for i in indices]
    return [session.render(c2w=c2w, intrinsics=i, shading=args.shading, ambient_occlusion=args.ao,
                           with_depth=args.depth, with_normals=args.normals) for c2w, i in cams]
