"""The ``ngp`` command line: thin argument parsing around :class:`~ngp_sdk.session.Session`.

Every user error (bad path, corrupt snapshot, unknown config key) prints one ``error: ...`` line on stderr and
exits with status 2; Ctrl-C during training stops cleanly and still writes the snapshot.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]

EXIT_USER_ERROR = 2


def _positive_int(text: str) -> int:
    v = int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def _add_training_budget(parser: argparse.ArgumentParser) -> None:
    """``--steps N | --seconds S`` (one of them required), shared by every ``train`` command."""
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=_positive_int, help="training steps")
    budget.add_argument("--seconds", type=_positive_float, help="training time budget in seconds")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of ``ngp``."""
    p = argparse.ArgumentParser(prog="ngp", description="Instant neural graphics primitives on CPU and GPU (Warp).")
    p.add_argument("--device", default=None, help="Warp device, e.g. cpu or cuda:0 (default: Warp's current)")
    p.add_argument("--verbose", action="store_true", help="show Warp's initialisation and kernel-build messages")
    sub = p.add_subparsers(dest="command", required=True)

    image = sub.add_parser("image", help="gigapixel-image primitive").add_subparsers(dest="action", required=True)
    tr = image.add_parser("train", help="fit an image (PNG/JPEG/EXR)")
    tr.add_argument("image", help="image file")
    _add_training_budget(tr)
    tr.add_argument("--out", default=None, help="snapshot to write (.ingp or .msgpack)")
    tr.add_argument("--config", default=None, help="tcnn/instant-ngp JSON config (default: the built-in base)")
    tr.add_argument("--preview", default=None, help="write a rendering at the image's size (PNG/JPEG/EXR)")
    tr.add_argument("--save-optimizer", action="store_true", help="also store Adam moments in the snapshot")
    tr.add_argument("--json", action="store_true", help="print a final JSON line with steps, seconds, loss, psnr")
    tr.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    rd = image.add_parser("render", help="render a trained image snapshot at any resolution")
    rd.add_argument("snapshot")
    rd.add_argument("--width", type=_positive_int, default=None)
    rd.add_argument("--height", type=_positive_int, default=None)
    rd.add_argument("--out", required=True, help="output image (PNG/JPEG/EXR)")

    demo = sub.add_parser("demo", help="the main job on data the SDK makes itself: a NeRF of a synthetic scene "
                                       "(default) or a photo fit; reports PSNR and writes a novel view")
    demo.add_argument("--primitive", choices=("nerf", "image"), default="nerf")
    demo.add_argument("--seconds", type=_positive_float, default=None,
                      help="training time (default: 60 for nerf, 20 for image)")
    demo.add_argument("--out-dir", default="ngp-demo", help="folder for the scene, snapshot and pictures")
    demo.add_argument("--json", action="store_true")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    from .cli_nerf import add_parsers as add_nerf_parsers

    add_nerf_parsers(sub)
    from .cli_sdf import add_parsers as add_sdf_parsers

    add_sdf_parsers(sub)
    _add_plugin_parsers(sub)
    return p


#: Entry-point group of command plugins: each entry is a ``register(subparsers)`` function that adds its
#: subcommand and sets ``handler=`` (a function ``(args) -> exit status``) with ``set_defaults``.
PLUGIN_GROUP = "ngp_sdk.commands"


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


def _emit(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result, sort_keys=True), flush=True)
    else:
        for k, v in result.items():
            print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")


def _train_and_report(session, args, *, steps, seconds, out, preview, save_optimizer=False) -> dict[str, Any]:
    t0 = time.perf_counter()
    r = session.train(steps=steps, seconds=seconds, progress=not getattr(args, "no_progress", False))
    metrics = session.evaluate()
    result: dict[str, Any] = {
        "steps": session.step_count,
        "seconds": round(r.seconds, 3),
        "loss": r.loss,
        "psnr": round(metrics["psnr"], 3),
        "samples_per_second": round(r.samples_per_second),
        "interrupted": r.interrupted,
    }
    if out:
        result["snapshot"] = str(session.save(out, include_optimizer=save_optimizer))
    if preview:
        from .data.images import save_image

        result["preview"] = str(save_image(preview, session.render()))
    result["wall_seconds"] = round(time.perf_counter() - t0, 3)
    return result


def _cmd_image_train(args: argparse.Namespace) -> int:
    from .session import Session

    session = Session.image(args.image, config=args.config, device=args.device)
    result = _train_and_report(session, args, steps=args.steps, seconds=args.seconds, out=args.out,
                               preview=args.preview, save_optimizer=args.save_optimizer)
    _emit(args, result)
    return 130 if result["interrupted"] else 0


def _cmd_image_render(args: argparse.Namespace) -> int:
    from .data.images import save_image
    from .errors import SnapshotError
    from .session import Session

    session = Session.load(args.snapshot, device=args.device)
    if session.primitive != "image":
        raise SnapshotError(f"{args.snapshot} holds a {session.primitive!r} snapshot; use `ngp render`")
    t0 = time.perf_counter()
    img = session.render(width=args.width, height=args.height)
    path = save_image(args.out, img)
    print(f"wrote {path} ({img.shape[1]}x{img.shape[0]}) in {time.perf_counter() - t0:.2f} s")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_image_demo, run_nerf_demo

    run, default_seconds, what = {"nerf": (run_nerf_demo, 60.0, "a NeRF of a synthetic scene"),
                                  "image": (run_image_demo, 20.0, "a 512x512 photo")}[args.primitive]
    seconds = args.seconds or default_seconds
    print(f"ngp demo: training {what} for {seconds:g} s ...", file=sys.stderr)
    result = run(Path(args.out_dir), seconds=seconds, device=args.device, progress=not args.no_progress)
    _emit(args, result)
    return 130 if result["interrupted"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ngp`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    import warp as wp

    if not args.verbose:
        wp.config.log_level = wp.LOG_ERROR  # no init banner / module-load lines on the user's terminal
    from .cli_nerf import HANDLERS as NERF_HANDLERS
    from .cli_sdf import HANDLERS as SDF_HANDLERS
    from .errors import NgpError

    handlers = {("image", "train"): _cmd_image_train, ("image", "render"): _cmd_image_render,
                ("demo", None): _cmd_demo, **NERF_HANDLERS, **SDF_HANDLERS}
    handler = getattr(args, "handler", None) or handlers[(args.command, getattr(args, "action", None))]
    try:
        return handler(args)
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
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
