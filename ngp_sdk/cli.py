"""The ``ngp`` command line: sub-commands come from the primitive registry and from command plugins.

- Each registered primitive adds its own commands (``ngp image ...``, ``ngp nerf ...``, ``ngp sdf ...``).
- ``ngp render`` and ``ngp export mesh`` work on any snapshot whose primitive supports them (dispatch on the
  snapshot's primitive, never on a mode switch); ``ngp demo`` runs a primitive's demo.
- Packages add commands through the entry-point group ``ngp_sdk.commands`` (``ngp serve`` from the bridge).

Every user error (bad path, corrupt snapshot, unknown config key) prints one ``error: ...`` line on stderr and
exits with status 2; Ctrl-C during training stops cleanly and still writes the snapshot.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ngp_sdk.core.cli import (
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    add_output_options,
    emit,
    load_session,
    positive_float,
    positive_int,
    write_frames,
)
from ngp_sdk.core.errors import DataError, NgpError
from ngp_sdk.core.registry import get_primitive, primitives

__all__ = ["main", "build_parser", "render_frame_count", "render_snapshot_frames", "PLUGIN_GROUP"]

#: Entry-point group of command plugins: each entry is a ``register(subparsers)`` function that adds its
#: subcommand and sets ``handler=`` (a function ``(args) -> exit status``) with ``set_defaults``.
PLUGIN_GROUP = "ngp_sdk.commands"


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of ``ngp``: global options, every primitive's commands, the shared ones, plugins."""
    p = argparse.ArgumentParser(prog="ngp", description="Instant neural graphics primitives on CPU and GPU (Warp).")
    p.add_argument("--device", default=None, help="Warp device, e.g. cpu or cuda:0 (default: Warp's current)")
    p.add_argument("--verbose", action="store_true", help="show Warp's initialisation and kernel-build messages")
    sub = p.add_subparsers(dest="command", required=True)
    for spec in primitives():
        if spec.add_commands is not None:
            spec.add_commands(sub)
    _add_render(sub)
    _add_export(sub)
    _add_demo(sub)
    _add_view(sub)
    _add_plugin_parsers(sub)
    return p


def _add_render(sub) -> None:
    renderable = [s for s in primitives() if s.render_frames is not None]
    rd = sub.add_parser("render", help=f"render a {' or '.join(s.name.upper() for s in renderable)} snapshot: one "
                                       "view, an orbit or an instant-ngp camera path")
    rd.add_argument("snapshot")
    how = rd.add_mutually_exclusive_group()
    how.add_argument("--camera-path", default=None, help="instant-ngp camera path json ({'path': [{R, T, fov}]})")
    how.add_argument("--orbit", type=positive_int, default=None, metavar="N",
                     help="N frames orbiting the scene centre at the first camera's radius and height")
    how.add_argument("--view", type=int, default=None,
                     help="render training camera VIEW (default 0; SDF: 0 = the default camera)")
    rd.add_argument("--frames", type=positive_int, default=60, help="frames of a camera path (default 60)")
    rd.add_argument("--fps", type=positive_float, default=30.0)
    rd.add_argument("--width", type=positive_int, default=None)
    rd.add_argument("--height", type=positive_int, default=None)
    rd.add_argument("--depth", action="store_true", help="append a depth map to each frame")
    for spec in renderable:
        if spec.render_arguments is not None:
            spec.render_arguments(rd)
    rd.add_argument("--out", required=True, help="image file, video (.mp4/.gif) or a folder for PNG frames")
    rd.set_defaults(handler=_cmd_render)


def _add_export(sub) -> None:
    ex = sub.add_parser("export", help="export geometry").add_subparsers(dest="action", required=True)
    me = ex.add_parser("mesh", help="marching-cubes mesh of a NeRF (with vertex colours) or SDF snapshot (PLY/OBJ)")
    me.add_argument("snapshot")
    me.add_argument("--out", required=True, help="mesh.ply or mesh.obj (NeRF world frame / the input mesh's frame)")
    me.add_argument("--resolution", type=positive_int, default=256)
    me.add_argument("--threshold", type=float, default=None,
                    help="iso-value: NeRF density (default 2.5, instant-ngp's), SDF distance in mesh units (default 0)")
    me.set_defaults(handler=_cmd_export_mesh)


def _add_demo(sub) -> None:
    demos = {s.name: s.demo for s in primitives() if s.demo is not None}
    demo = sub.add_parser("demo", help="the main job on data the SDK makes itself: a NeRF of a scene it renders "
                                       "(default) or another primitive; reports quality and writes pictures")
    demo.add_argument("--primitive", choices=sorted(demos), default="nerf" if "nerf" in demos else None)
    demo.add_argument("--list", action="store_true", help="say what each demo does, then exit")
    demo.add_argument("--seconds", type=positive_float, default=None,
                      help="training time (default: " + ", ".join(f"{d.seconds:g} for {n}" for n, d in demos.items())
                      + ")")
    demo.add_argument("--out-dir", default="ngp-demo", help="folder for the scene, snapshot and pictures")
    demo.add_argument("--orbit-frames", type=int, default=None,
                      help="frames of the orbit video (NeRF, SDF; default 32 / 36; 0: no video)")
    demo.add_argument("--size", type=positive_int, default=None,
                      help="NeRF: side of the scene's views in pixels (default 256; smaller is faster)")
    add_output_options(demo)
    demo.add_argument("--quiet", action="store_true", help="no progress bar and no summary (errors only)")
    demo.set_defaults(handler=_cmd_demo)


def _add_view(sub) -> None:
    vw = sub.add_parser("view", help="open a snapshot in the browser viewer (needs the 'viewer' extra): fly around a "
                                     "NeRF or SDF, render modes, camera paths")
    vw.add_argument("snapshot", help="a .ingp/.msgpack snapshot")
    vw.add_argument("--port", type=int, default=8080, help="HTTP/websocket port (default %(default)s)")
    vw.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: reachable from other "
                                                       "machines; default %(default)s)")
    vw.add_argument("--max-pixels", type=int, default=1024 * 1024,
                    help="cap on the rendered frame; a larger browser canvas is rendered smaller and stretched")
    vw.add_argument("--transport", choices=("jpeg", "png"), default="jpeg", help="encoding of full-resolution frames")
    vw.add_argument("--save-dir", default=".", help="where camera paths and snapshots saved from the page go")
    vw.set_defaults(handler=_cmd_view)


def _cmd_view(args: argparse.Namespace) -> int:
    from ngp_sdk.core.viewer import ViewerOptions, open_viewer

    session = load_session(args.snapshot, args.device)
    options = ViewerOptions(host=args.host, port=args.port, max_pixels=args.max_pixels, transport=args.transport,
                            save_dir=args.save_dir, title=Path(args.snapshot).name)
    viewer = open_viewer(session, options)
    print(f"ngp view: {session.primitive} snapshot {args.snapshot} at {viewer.url} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(1.0)
    finally:
        viewer.stop()


def _add_plugin_parsers(sub: argparse._SubParsersAction) -> None:
    """Let installed packages add subcommands (e.g. ``ngp serve`` from the ZeroMQ bridge)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            register = ep.load()
        except Exception as e:  # a broken or partially installed plugin must not break the other commands
            print(f"warning: ngp command plugin {ep.name!r} unavailable: {e}", file=sys.stderr)
            continue
        register(sub)


def render_frame_count(args: argparse.Namespace) -> int:
    """How many frames ``ngp render`` with these arguments makes (known before the snapshot is read)."""
    if args.orbit:
        return args.orbit
    return args.frames if args.camera_path else 1


def render_snapshot_frames(args: argparse.Namespace, indices: Sequence[int] | None = None) -> list:
    """The frames of ``ngp render`` (parsed arguments ``args``): all, or only frames ``indices`` of the sequence.

    Raises:
        SnapshotError: unreadable snapshot, or one of a primitive ``ngp render`` does not serve.
        DataError: a bad camera path or view.
    """
    names = tuple(s.name for s in primitives() if s.render_frames is not None)
    session = load_session(args.snapshot, args.device, names)
    return get_primitive(session.primitive).render_frames(session, args, indices=indices)


def _cmd_render(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    frames = render_snapshot_frames(args)
    written = write_frames(args.out, frames, fps=args.fps)
    h, w = frames[0].shape[:2]
    print(f"wrote {written}: {len(frames)} frame(s) of {w}x{h} in {time.perf_counter() - t0:.2f} s")
    return 0


def _cmd_export_mesh(args: argparse.Namespace) -> int:
    from ngp_sdk.core.meshes import save_mesh
    from ngp_sdk.core.task import MeshExporter

    session = load_session(args.snapshot, args.device)
    if not isinstance(session.task, MeshExporter):
        raise DataError(f"{args.snapshot}: a {session.primitive!r} snapshot has no surface to export")
    t0 = time.perf_counter()
    threshold = {} if args.threshold is None else {"threshold": args.threshold}
    mesh = session.task.extract_mesh(resolution=args.resolution, **threshold)
    path = save_mesh(mesh, args.out)
    print(f"wrote {path}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces in "
          f"{time.perf_counter() - t0:.2f} s")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.list:
        for spec in primitives():
            if spec.demo is not None:
                print(f"ngp demo --primitive {spec.name:<6} {spec.demo.description} ({spec.demo.seconds:g} s)")
        return 0
    demo = get_primitive(args.primitive).demo
    seconds = args.seconds or demo.seconds
    quiet = args.quiet or args.json
    if not quiet:
        print(f"ngp demo: {demo.description}; training for {seconds:g} s ...", file=sys.stderr)
    extra = {k: v for k, v in (("orbit_frames", args.orbit_frames), ("size", args.size)) if v is not None}
    result = demo.run(Path(args.out_dir), seconds=seconds, device=args.device,
                      progress=not (args.no_progress or args.quiet), **extra)
    if args.json:
        emit(args, result)
    elif not args.quiet:
        print(_demo_summary(result))
    return EXIT_INTERRUPTED if result["interrupted"] else 0


def _demo_summary(result: dict) -> str:
    """What the demo made and what to run next, for a person."""
    lines = [f"ngp demo --primitive {result['primitive']}: {result.get('headline', '')}".rstrip(": "),
             f"  trained {result['seconds']:.0f} s, {result.get('steps', 0)} steps"
             + (f", {result['samples_per_second'] / 1e6:.2f} M samples/s" if result.get("samples_per_second") else "")
             + (" (interrupted)" if result.get("interrupted") else "")]
    outputs = result.get("outputs") or {}
    if outputs:
        lines.append("  wrote:")
        width = max(len(k) for k in outputs)
        lines += [f"    {k.replace('_', ' '):<{width}}  {v}" for k, v in outputs.items()]
    if result.get("next"):
        lines.append("  next:")
        lines += [f"    {cmd}" for cmd in result["next"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ngp`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    import warp as wp

    if not args.verbose:
        wp.config.log_level = wp.LOG_ERROR  # no init banner / module-load lines on the user's terminal
    try:
        return args.handler(args)
    except NgpError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (ValueError, RuntimeError) as e:  # e.g. an unknown Warp device
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ImportError as e:  # an optional extra that is not installed
        print(f"error: {e}; install the extras, e.g. pip install 'ngp-sdk[mesh,demo]'", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
