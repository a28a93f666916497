"""``ngp demo --primitive nrc``: the Cornell box rendered with the cache vs plain path tracing at equal time."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ngp_sdk.core.images import save_image
from ngp_sdk.nrc.renderer import NrcRenderer, relative_mse
from ngp_sdk.nrc.scene import build_scene, glossy_box
from ngp_sdk.nrc.tracer import PathTracer

__all__ = ["run_nrc_demo"]


def run_nrc_demo(out_dir: str | os.PathLike, *, seconds: float = 20.0, device: Any = None,
                 progress: bool = True, size: int = 128, **_: Any) -> dict[str, Any]:
    """Train the cache on the glossy Cornell box for ``seconds``, then compare one cached frame with path tracing
    given the same time, against a 256-spp reference; writes ``demo_nrc.png`` (PT | NRC | reference)."""
    from ngp_sdk.core.progress import progress_bar

    out = Path(out_dir)
    scene = build_scene(glossy_box(size, size), name="glossy-box")
    reference = PathTracer(scene, device=device, seed=5).render(spp=256, batch=64, progress=progress)
    r = NrcRenderer(scene, device=device)
    r.render_frame()  # compile
    t0 = time.perf_counter()
    bar = progress_bar(seconds=seconds) if progress else None
    try:
        while time.perf_counter() - t0 < seconds:
            r.render_frame()
            if bar is not None:
                bar.update(min(time.perf_counter() - t0, seconds) - bar.n)
                bar.set_postfix_str(f"frame {r.frame}")
    finally:
        if bar is not None:
            bar.close()
    t = time.perf_counter()
    nrc = r.render_frame(train=False)
    frame_s = time.perf_counter() - t
    pt = PathTracer(scene, device=device, seed=6)
    t = time.perf_counter()
    pt.render(spp=2, batch=2)
    spp = max(1, round(frame_s / ((time.perf_counter() - t) / 2)))
    pt_img = pt.render(spp=spp, batch=spp)
    gap = np.ones((size, 4, 3), np.float32)
    picture = save_image(out / "demo_nrc.png", np.concatenate([pt_img, gap, nrc, gap, reference], axis=1))
    rel_nrc, rel_pt = relative_mse(nrc, reference), relative_mse(pt_img, reference)
    return {
        "primitive": "nrc",
        "frames": r.frame,
        "steps": r.frame,
        "seconds": round(time.perf_counter() - t0, 3),
        "ms_per_frame": round(1000 * frame_s, 1),
        "relmse_nrc": round(rel_nrc, 4),
        "relmse_pt_equal_time": round(rel_pt, 4),
        "pt_spp": spp,
        "preview": str(picture),
        "headline": f"one frame with the radiance cache vs path tracing given the same {1000 * frame_s:.0f} ms: "
                    f"relative MSE {rel_nrc:.3f} vs {rel_pt:.3f} ({rel_pt / max(rel_nrc, 1e-12):.1f}x lower)",
        "outputs": {"picture": f"{picture}   (path tracing | cache | 256-spp reference)"},
        "next": ["ngp nrc render cornell-box --frames 60 --out cornell.exr",
                 "ngp nrc video glossy-box --frames 120 --animate light --out light.mp4",
                 "ngp nrc reference YOUR_SCENE.xml --spp 1024 --out ref.exr   # Mitsuba 3 XML"],
        "interrupted": False,
    }
