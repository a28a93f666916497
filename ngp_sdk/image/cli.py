"""``ngp image train|render|pyramid``: the image part of the command line (registered through the primitive
registry)."""

from __future__ import annotations

import argparse
import time

from ngp_sdk.core.cli import (
    EXIT_INTERRUPTED,
    add_output_options,
    add_training_budget,
    emit,
    load_session,
    positive_float,
    positive_int,
    train_and_report,
)

__all__ = ["add_commands", "parse_region"]


def parse_region(text: str) -> tuple[float, float, float, float]:
    """argparse type: ``x,y,w,h`` in original-image pixels, ``w, h > 0``."""
    try:
        x, y, w, h = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"region must be x,y,w,h (four numbers), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"region width and height must be positive, got {text!r}")
    return x, y, w, h


def add_commands(sub) -> None:
    """Add ``ngp image train|render|pyramid`` to the ``ngp`` sub-command parsers ``sub``."""
    image = sub.add_parser("image", help="gigapixel-image primitive").add_subparsers(dest="action", required=True)
    tr = image.add_parser("train", help="fit an image (PNG/JPEG/TIFF/EXR/.npy, any size)")
    tr.add_argument("image", help="image file")
    add_training_budget(tr)
    tr.add_argument("--out", default=None, help="snapshot to write (.ingp or .msgpack)")
    tr.add_argument("--config", default=None,
                    help="tcnn/instant-ngp JSON config, or a bundled one by name: base (default), gigapixel")
    tr.add_argument("--preview", default=None, help="write a rendering at the image's size (PNG/JPEG/EXR)")
    tr.add_argument("--eval-pixels", type=positive_int, default=None,
                    help="PSNR over a fixed random subset of this many pixels (default: every pixel, streamed)")
    tr.add_argument("--save-optimizer", action="store_true", help="also store Adam moments in the snapshot")
    add_output_options(tr)
    tr.set_defaults(handler=_cmd_train)

    rd = image.add_parser("render", help="render a trained image snapshot: all of it, or a region at any scale")
    rd.add_argument("snapshot")
    rd.add_argument("--width", type=positive_int, default=None, help="whole image at this width")
    rd.add_argument("--height", type=positive_int, default=None, help="whole image at this height")
    rd.add_argument("--region", type=parse_region, default=None,
                    help="x,y,w,h in original-image pixels (default: the whole image)")
    rd.add_argument("--scale", type=positive_float, default=None,
                    help="output pixels per original pixel for --region (default 1; > 1 zooms in)")
    rd.add_argument("--out", required=True, help="output image (PNG/JPEG/EXR)")
    rd.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    rd.set_defaults(handler=_cmd_render)

    py = image.add_parser("pyramid", help="write a Deep Zoom tile pyramid + OpenSeadragon viewer of a snapshot")
    py.add_argument("snapshot")
    py.add_argument("--out", required=True, help="output folder (NAME.dzi, NAME_files/, index.html)")
    py.add_argument("--name", default="image", help="base name of the .dzi (default: image)")
    py.add_argument("--tile-size", type=positive_int, default=254)
    py.add_argument("--overlap", type=int, default=1)
    py.add_argument("--format", choices=("jpg", "png"), default="jpg", help="tile format")
    py.add_argument("--quality", type=positive_int, default=90, help="JPEG quality")
    add_output_options(py)
    py.set_defaults(handler=_cmd_pyramid)


def _cmd_train(args: argparse.Namespace) -> int:
    from ngp_sdk.core.session import Session
    from ngp_sdk.image.data import load_image

    show = not args.no_progress
    session = Session.image(load_image(args.image, progress=show), config=args.config, device=args.device)

    def evaluate(s):
        m = s.evaluate(pixels=args.eval_pixels, progress=show)
        return {k: round(v, 3) if k == "psnr" else v for k, v in m.items() if k != "mse"}

    result = train_and_report(session, args, preview=args.preview, evaluate=evaluate)
    emit(args, result)
    return EXIT_INTERRUPTED if result["interrupted"] else 0


def _cmd_render(args: argparse.Namespace) -> int:
    from ngp_sdk.core.images import EXR_SUFFIXES, save_image
    from ngp_sdk.image.render import render_codes

    session = load_session(args.snapshot, args.device, ("image",))
    t0 = time.perf_counter()
    task = session.task
    win = task.window(width=args.width, height=args.height, region=args.region, scale=args.scale)
    if args.out.lower().endswith(EXR_SUFFIXES):
        img = task.render(window=win)
    else:  # 3 bytes per output pixel in memory, not 12
        img = render_codes(task.iter_render, win, progress=not args.no_progress)
    path = save_image(args.out, img)
    print(f"wrote {path} ({win.width}x{win.height}) in {time.perf_counter() - t0:.2f} s")
    return 0


def _cmd_pyramid(args: argparse.Namespace) -> int:
    from ngp_sdk.image.pyramid import write_pyramid

    session = load_session(args.snapshot, args.device, ("image",))
    t0 = time.perf_counter()
    task = session.task
    dzi = write_pyramid(task.iter_render, task.size, args.out, name=args.name, tile_size=args.tile_size,
                        overlap=args.overlap, tile_format=args.format, quality=args.quality,
                        progress=not args.no_progress, title=f"{args.snapshot}")
    emit(args, {"dzi": str(dzi), "index": str(dzi.parent / "index.html"), "size": list(task.size),
                "seconds": round(time.perf_counter() - t0, 3)})
    return 0
