"""``ngp demo``: the main jobs on data the SDK makes itself (no downloads).

- NeRF (default): render a synthetic scene of spheres from 48 cameras, train a NeRF on it for about a minute,
  then render a held-out (novel) view next to its ground truth and report the PSNR over the held-out views.
- Image: fit scikit-image's bundled 'astronaut' photo and report its PSNR.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .data.images import ImageData, save_image, srgb_to_linear
from .errors import DataError
from .session import Session

__all__ = ["run_nerf_demo", "run_image_demo"]


def run_nerf_demo(out_dir: str | os.PathLike, *, seconds: float = 60.0, device: Any = None,
                  progress: bool = True) -> dict[str, Any]:
    """Train a NeRF on the built-in synthetic scene; write ``novel_view.png`` and ``demo_nerf.ingp``.

    Returns:
        steps, seconds, samples_per_second, psnr/ssim over the held-out views, and the output paths.
    """
    from .data.nerf_data import composite_alpha, load_nerf_dataset
    from .data.synthetic import write_synthetic_dataset

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


def demo_photo() -> ImageData:
    """scikit-image's bundled 'astronaut' photo (no download) as uint8 sRGB."""
    try:
        from skimage import data as skdata
    except ImportError:
        raise DataError("the image demo needs scikit-image for its bundled photo: "
                        "pip install 'ngp-sdk[demo]'") from None
    return ImageData(pixels=skdata.astronaut()[:, :, :3].copy(), srgb=True, name="skimage:astronaut")


def run_image_demo(out_dir: str | os.PathLike, *, seconds: float = 20.0, device: Any = None,
                   progress: bool = True) -> dict[str, Any]:
    """Fit the bundled photo; write ``demo_image.png`` and ``demo_image.ingp``."""
    out = Path(out_dir)
    session = Session.image(demo_photo(), device=device)
    r = session.train(seconds=seconds, progress=progress)
    return {
        "primitive": "image",
        "steps": session.step_count,
        "seconds": round(r.seconds, 3),
        "samples_per_second": round(r.samples_per_second),
        "psnr": round(session.evaluate()["psnr"], 3),
        "preview": str(save_image(out / "demo_image.png", session.render())),
        "snapshot": str(session.save(out / "demo_image.ingp")),
        "interrupted": r.interrupted,
    }
