"""``ngp nrc render|reference|video``: the NRC part of the command line (registered through the primitive
registry)."""

from __future__ import annotations

import argparse
import time

from ngp_sdk.core.cli import add_output_options, emit, positive_float, positive_int

__all__ = ["add_commands"]


def _scene_options(parser: argparse.ArgumentParser, *, spp: int, out_help: str) -> None:
    """The options every ``ngp nrc`` command shares: the scene, the film size, spp and the output."""
    parser.add_argument("scene", nargs="?", default=None,
                        help="Mitsuba 3 XML scene or a built-in (cornell-box, glossy-box; default: cornell-box)")
    parser.add_argument("--spp", type=positive_int, default=spp, help="samples per pixel (per frame)")
    parser.add_argument("--width", type=positive_int, default=None, help="override the film width")
    parser.add_argument("--height", type=positive_int, default=None, help="override the film height")
    parser.add_argument("--out", required=True, help=out_help)
    add_output_options(parser)


def _cache_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=("nrc", "pt"), default="nrc", help="cache (nrc) or plain path tracing (pt)")
    parser.add_argument("--config", default=None, help="cache config (tcnn JSON with an 'nrc' section)")


def add_commands(sub) -> None:
    """Add ``ngp nrc render``, ``ngp nrc reference`` and ``ngp nrc video`` to the ``ngp`` sub-command parsers."""
    nrc = sub.add_parser("nrc", help="neural radiance caching in a Warp path tracer").add_subparsers(
        dest="action", required=True)
    rd = nrc.add_parser("render", help="render frames with the cache training online (or plain path tracing)")
    _scene_options(rd, spp=1, out_help="output image (.exr keeps linear radiance; .png is sRGB)")
    _cache_options(rd)
    budget = rd.add_mutually_exclusive_group()
    budget.add_argument("--frames", type=positive_int, default=None, help="frames to render (default 60)")
    budget.add_argument("--seconds", type=positive_float, default=None, help="render frames for this long")
    rd.add_argument("--accumulate", action="store_true", help="write the mean of all frames, not the last")
    rd.set_defaults(handler=_cmd_render)

    ref = nrc.add_parser("reference", help="progressive path-traced ground truth (bounded memory)")
    _scene_options(ref, spp=4096, out_help="output image (.exr)")
    ref.set_defaults(handler=_cmd_reference)

    vid = nrc.add_parser("video", help="a dynamic scene: the light or the camera moves while the cache trains")
    _scene_options(vid, spp=1, out_help="video (.mp4/.gif) or a folder for PNG frames")
    _cache_options(vid)
    vid.add_argument("--frames", type=positive_int, default=120)
    vid.add_argument("--animate", choices=("light", "camera"), default="light")
    vid.add_argument("--fps", type=positive_float, default=30.0)
    vid.set_defaults(handler=_cmd_video)


def _frame_loop(render_one, frames: int | None, seconds: float | None, accumulate: bool, progress: bool):
    import numpy as np
    from tqdm import tqdm

    total, img, n = None, None, 0
    limit = frames if frames is not None else (None if seconds is not None else 60)
    t0 = time.perf_counter()
    with tqdm(total=limit, unit="frame", disable=not progress, leave=False) as bar:
        while True:
            if limit is not None and n >= limit:
                break
            if seconds is not None and n > 0 and time.perf_counter() - t0 >= seconds:
                break
            try:
                img = render_one()
            except KeyboardInterrupt:
                break
            n += 1
            if accumulate:
                total = img.astype(np.float64) if total is None else total + img
            bar.update(1)
    elapsed = time.perf_counter() - t0
    out = (total / n).astype(np.float32) if accumulate and n else img
    return out, n, elapsed


def _cmd_render(args: argparse.Namespace) -> int:
    from ngp_sdk.core.images import save_image
    from ngp_sdk.nrc.renderer import FrameSource
    from ngp_sdk.nrc.task import load_scene

    scene = load_scene(args.scene, width=args.width, height=args.height)
    source = FrameSource(scene, mode=args.mode, spp=args.spp, config=args.config, device=args.device)
    source.warmup()  # compile before the clock starts
    img, n, elapsed = _frame_loop(source.render, args.frames, args.seconds, args.accumulate, not args.no_progress)
    if img is None:
        return 130
    path = save_image(args.out, img)
    emit(args, {"frames": n, "seconds": round(elapsed, 3), "ms_per_frame": round(1000 * elapsed / n, 2),
                "spp": args.spp, "mode": args.mode, "width": scene.sensor.width, "height": scene.sensor.height,
                "out": str(path)})
    return 0


def _cmd_reference(args: argparse.Namespace) -> int:
    from ngp_sdk.core.images import save_image
    from ngp_sdk.nrc.task import load_scene
    from ngp_sdk.nrc.tracer import PathTracer

    scene = load_scene(args.scene, width=args.width, height=args.height)
    pt = PathTracer(scene, device=args.device)
    t0 = time.perf_counter()
    img = pt.render(spp=args.spp, batch=min(64, args.spp), progress=not args.no_progress)
    path = save_image(args.out, img)
    elapsed = time.perf_counter() - t0
    paths = scene.sensor.width * scene.sensor.height * args.spp
    emit(args, {"spp": args.spp, "seconds": round(elapsed, 3), "paths_per_second": round(paths / elapsed),
                "out": str(path)})
    return 0


def _cmd_video(args: argparse.Namespace) -> int:
    import numpy as np

    from ngp_sdk.core.cli import write_frames
    from ngp_sdk.nrc.animation import animate
    from ngp_sdk.nrc.task import load_scene

    scene = load_scene(args.scene, width=args.width, height=args.height)
    t0 = time.perf_counter()
    frames, interrupted = animate(scene, frames=args.frames, what=args.animate, mode=args.mode, spp=args.spp,
                                  config=args.config, device=args.device, progress=not args.no_progress)
    if not frames:
        return 130
    out = write_frames(args.out, frames, fps=args.fps)
    elapsed = time.perf_counter() - t0
    emit(args, {"frames": len(frames), "seconds": round(elapsed, 3),
                "ms_per_frame": round(1000 * elapsed / len(frames), 2), "spp": args.spp, "mode": args.mode,
                "animate": args.animate, "out": out, "interrupted": interrupted,
                "mean_radiance": round(float(np.mean(frames[-1])), 5)})
    return 130 if interrupted else 0
