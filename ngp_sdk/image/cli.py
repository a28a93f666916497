"""``ngp image train|render``: the image part of the command line (registered through the primitive registry)."""

from __future__ import annotations

import argparse
import time

from ngp_sdk.core.cli import (
    EXIT_INTERRUPTED,
    add_output_options,
    add_training_budget,
    emit,
    load_session,
    positive_int,
    train_and_report,
)

__all__ = ["add_commands"]


def add_commands(sub) -> None:
    """Add ``ngp image train`` and ``ngp image render`` to the ``ngp`` sub-command parsers ``sub``."""
    image = sub.add_parser("image", help="gigapixel-image primitive").add_subparsers(dest="action", required=True)
    tr = image.add_parser("train", help="fit an image (PNG/JPEG/EXR)")
    tr.add_argument("image", help="image file")
    add_training_budget(tr)
    tr.add_argument("--out", default=None, help="snapshot to write (.ingp or .msgpack)")
    tr.add_argument("--config", default=None, help="tcnn/instant-ngp JSON config (default: the built-in base)")
    tr.add_argument("--preview", default=None, help="write a rendering at the image's size (PNG/JPEG/EXR)")
    tr.add_argument("--save-optimizer", action="store_true", help="also store Adam moments in the snapshot")
    add_output_options(tr)
    tr.set_defaults(handler=_cmd_train)

    rd = image.add_parser("render", help="render a trained image snapshot at any resolution")
    rd.add_argument("snapshot")
    rd.add_argument("--width", type=positive_int, default=None)
    rd.add_argument("--height", type=positive_int, default=None)
    rd.add_argument("--out", required=True, help="output image (PNG/JPEG/EXR)")
    rd.set_defaults(handler=_cmd_render)


def _cmd_train(args: argparse.Namespace) -> int:
    from ngp_sdk.core.session import Session

    session = Session.image(args.image, config=args.config, device=args.device)
    result = train_and_report(session, args, preview=args.preview,
                              evaluate=lambda s: {"psnr": round(s.evaluate()["psnr"], 3)})
    emit(args, result)
    return EXIT_INTERRUPTED if result["interrupted"] else 0


def _cmd_render(args: argparse.Namespace) -> int:
    from ngp_sdk.core.images import save_image

    session = load_session(args.snapshot, args.device, ("image",))
    t0 = time.perf_counter()
    img = session.render(width=args.width, height=args.height)
    path = save_image(args.out, img)
    print(f"wrote {path} ({img.shape[1]}x{img.shape[0]}) in {time.perf_counter() - t0:.2f} s")
    return 0
