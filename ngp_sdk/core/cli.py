"""Building blocks of the ``ngp`` command line that every primitive's commands share.

The entry point (:mod:`ngp_sdk.cli`) owns the parser and the error handling; primitives add their
sub-commands through the registry with these helpers, so every command parses budgets, prints results and
writes frames the same way. A handler is ``handler(args) -> exit status``; user errors are raised as
:class:`~ngp_sdk.core.errors.NgpError` and printed by the entry point as one ``error: ...`` line (exit 2).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ngp_sdk.core.errors import DataError, SnapshotError

__all__ = [
    "EXIT_USER_ERROR",
    "EXIT_INTERRUPTED",
    "VIDEO_SUFFIXES",
    "positive_int",
    "positive_float",
    "add_training_budget",
    "add_output_options",
    "emit",
    "load_session",
    "train_and_report",
    "write_frames",
    "write_orbit_videos",
    "training_summary",
]

#: Exit status of a user error (bad path, corrupt snapshot, unknown config key).
EXIT_USER_ERROR = 2
#: Exit status after Ctrl-C (the snapshot is still written).
EXIT_INTERRUPTED = 130
#: Output suffixes written as one video instead of image files.
VIDEO_SUFFIXES = (".mp4", ".gif", ".webm", ".mkv", ".avi", ".mov")


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    v = int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def add_training_budget(parser: argparse.ArgumentParser) -> None:
    """``--steps N | --seconds S`` (one of them required), shared by every ``train`` command."""
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=positive_int, help="training steps")
    budget.add_argument("--seconds", type=positive_float, help="training time budget in seconds")


def add_output_options(parser: argparse.ArgumentParser, *, progress: bool = True) -> None:
    """``--json`` (one final JSON line) and, for long commands, ``--no-progress``."""
    parser.add_argument("--json", action="store_true", help="print one JSON line with the results")
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def emit(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Print ``result`` as one JSON line (``--json``) or as ``key: value`` lines."""
    if getattr(args, "json", False):
        print(json.dumps(result, sort_keys=True), flush=True)
    else:
        for k, v in result.items():
            print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")


def load_session(snapshot: str, device: Any, primitives: Sequence[str] | None = None, **kwargs: Any):
    """``Session.load(snapshot)``, refusing snapshots of other primitives than ``primitives`` (None: any).

    Raises:
        SnapshotError: unreadable snapshot, or one of another primitive (the message names the command to use).
    """
    from ngp_sdk.core.session import Session

    session = Session.load(snapshot, device=device, **kwargs)
    if primitives is not None and session.primitive not in primitives:
        raise SnapshotError(f"{snapshot} holds a {session.primitive!r} snapshot, not a "
                            f"{' or '.join(p.upper() for p in primitives)} (use `ngp {session.primitive} ...`)")
    return session


def train_and_report(session: Any, args: argparse.Namespace, *, preview: str | None = None,
                     preview_kwargs: dict[str, Any] | None = None,
                     evaluate: Any = None) -> dict[str, Any]:
    """Train with ``args.steps`` / ``args.seconds``, evaluate, save ``args.out`` and an optional preview.

    Args:
        session: the session to train.
        args: parsed arguments with ``steps``, ``seconds``, ``out``, ``no_progress`` and optionally
            ``save_optimizer``.
        preview: image file to render to (None: no preview).
        preview_kwargs: keyword arguments of ``session.render`` for the preview.
        evaluate: ``evaluate(session) -> dict`` of metrics added to the result (default: ``session.evaluate``).

    Returns:
        steps, seconds, loss, samples_per_second, interrupted, the metrics, snapshot/preview paths and
        wall_seconds.
    """
    from ngp_sdk.core.images import save_image

    t0 = time.perf_counter()
    r = session.train(steps=args.steps, seconds=args.seconds, progress=not getattr(args, "no_progress", False))
    out = getattr(args, "out", None)
    # the snapshot is written before the (possibly long) evaluation, so an interrupt there loses nothing
    snapshot = str(session.save(out, include_optimizer=getattr(args, "save_optimizer", False))) if out else None
    metrics = evaluate(session) if evaluate is not None else session.evaluate()
    session.metrics.update({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
    result: dict[str, Any] = {
        "steps": session.step_count,
        "seconds": round(r.seconds, 3),
        "loss": r.loss,
        "samples_per_second": round(r.samples_per_second),
        "interrupted": r.interrupted,
        **metrics,
    }
    if snapshot:  # again, now with the metrics
        result["snapshot"] = str(session.save(out, include_optimizer=getattr(args, "save_optimizer", False)))
    if preview:
        result["preview"] = str(save_image(preview, session.render(**(preview_kwargs or {}))))
    result["wall_seconds"] = round(time.perf_counter() - t0, 3)
    return result


def write_frames(out: str | Path, frames: Sequence[np.ndarray], *, fps: float = 30.0) -> str:
    """Write linear RGB frames as a video (by suffix), one image file, or ``frame_NNNN.png`` in a folder.

    Returns:
        What was written (a path, or ``folder/frame_*.png``).

    Raises:
        DataError: a video cannot be written (no ffmpeg plugin), or an unsupported image suffix.
    """
    from ngp_sdk.core.images import linear_to_srgb_codes, save_image

    out = Path(out)
    if out.suffix.lower() in VIDEO_SUFFIXES:
        import imageio.v3 as iio

        u8 = [linear_to_srgb_codes(f) for f in frames]
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            if out.suffix.lower() == ".gif":
                iio.imwrite(out, u8, duration=1000.0 / fps, loop=0)
            else:
                iio.imwrite(out, u8, fps=fps)
        except Exception as e:  # imageio raises plain errors when no video plugin is installed
            raise DataError(f"cannot write {out} ({e}); install imageio-ffmpeg for videos, or pass a folder "
                            f"to get PNG frames") from None
        return str(out)
    if out.suffix and len(frames) == 1:
        return str(save_image(out, frames[0]))
    out.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        save_image(out / f"frame_{i:04d}.png", f)
    return f"{out}/frame_*.png"


def write_orbit_videos(out_dir: str | Path, stem: str, frames: Sequence[np.ndarray], *, fps: float,
                       gif_stride: int = 1) -> dict[str, str]:
    """Write linear RGB ``frames`` as ``STEM.mp4`` and ``STEM.gif`` (every ``gif_stride``-th pixel) in ``out_dir``.

    Returns:
        ``{"orbit_mp4": path, "orbit_gif": path}``.
    """
    out = Path(out_dir)
    return {"orbit_mp4": write_frames(out / f"{stem}.mp4", frames, fps=fps),
            "orbit_gif": write_frames(out / f"{stem}.gif", [f[::gif_stride, ::gif_stride] for f in frames], fps=fps)}


def training_summary(primitive: str, session: Any, result: Any) -> dict[str, Any]:
    """The figures every demo and report starts with: primitive, steps, seconds, samples/s, interrupted."""
    return {"primitive": primitive, "steps": session.step_count, "seconds": round(result.seconds, 3),
            "samples_per_second": round(result.samples_per_second), "interrupted": result.interrupted}
