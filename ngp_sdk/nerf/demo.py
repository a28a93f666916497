"""``ngp demo`` (the default primitive): a NeRF of a scene the SDK renders itself (no downloads).

Render a synthetic scene of spheres from 48 cameras, train a NeRF on it for about a minute, then render a
held-out (novel) view next to its ground truth and report the PSNR over the held-out views.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ngp_sdk.core.images import save_image, srgb_to_linear
from ngp_sdk.core.session import Session

__all__ = ["run_nerf_demo"]


def run_nerf_demo(out_dir: str | os.PathLike, *, seconds: float = 60.0, device: Any = None,
                  progress: bool = True) -> dict[str, Any]:
    """Train a NeRF on the built-in synthetic scene; write ``novel_view.png`` and ``demo_nerf.ingp``.

    Returns:
        steps, seconds, samples_per_second, psnr/ssim over the held-out views, and the output paths.
    """
    from ngp_sdk.nerf.data import composite_alpha, load_nerf_dataset
    from ngp_sdk.nerf.synthetic import write_synthetic_dataset

    out = Path(out_dir)
    data = write_synthetic_dataset(out / "scene")
    session = Session.nerf(data, device=device)
    r = session.train(seconds=seconds, progress=progress)
    val = load_nerf_dataset(data, split="val")
    metrics = session.task.evaluate(val)
    white = (1.0, 1.0, 1.0)
    novel = session.task.render_view(val.poses[0], val.intrinsics[0], background=white).rgb
    truth = composite_alpha(val.images[0], white)
    side_by_side = srgb_to_linear(np.clip(np.concatenate([novel, truth], axis=1), 0, 1))
    return {
        "primitive": "nerf",
        "steps": session.step_count,
        "seconds": round(r.seconds, 3),
        "samples_per_second": round(r.samples_per_second),
        "psnr": round(metrics["psnr"], 3),
        "ssim": round(metrics["ssim"], 4),
        "novel_view": str(save_image(out / "novel_view.png", side_by_side)),
        "snapshot": str(session.save(out / "demo_nerf.ingp")),
        "interrupted": r.interrupted,
    }
