"""``ngp demo`` (the default primitive): a NeRF of a scene the SDK renders itself (no downloads).

Render :data:`~ngp_sdk.nerf.synthetic.SHOWCASE_SCENE` (textured shapes casting shadows on a checkered disc,
anti-aliased, straight alpha) from cameras around its upper hemisphere, train a NeRF on it with a schedule made
for a one-minute CPU budget (:func:`demo_config`), then write a held-out (novel) view beside its ground truth, an
orbit video (MP4 and GIF), the snapshot, and the PSNR over the held-out views.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ngp_sdk.core.images import save_image, srgb_to_linear
from ngp_sdk.core.session import Session

__all__ = ["run_nerf_demo", "demo_config", "write_showcase_dataset"]

#: Views of the demo scene: training and held-out, at ``SIZE`` x ``SIZE`` pixels.
N_TRAIN, N_VAL, SIZE = 64, 4, 256


def write_showcase_dataset(folder: str | os.PathLike, *, n_train: int = N_TRAIN, n_val: int = N_VAL,
                           size: int = SIZE) -> Path:
    """Render the showcase scene into a Blender-style dataset (cameras 12-65 degrees above the disc).

    A folder that already holds this very dataset (same scene, views and size: a stamp file says so) is kept,
    so running the demo again skips the rendering.
    """
    import hashlib

    from ngp_sdk.nerf.synthetic import SHOWCASE_SCENE, write_synthetic_dataset

    folder = Path(folder)
    elevation = (12.0, 65.0)
    stamp = hashlib.sha256(repr((SHOWCASE_SCENE, n_train, n_val, size, elevation, 1)).encode()).hexdigest()
    stamp_file = folder / ".ngp-demo-scene"
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        return folder
    write_synthetic_dataset(folder, SHOWCASE_SCENE, n_train=n_train, n_val=n_val, size=size, elevation=elevation)
    stamp_file.write_text(stamp)
    return folder


def demo_config() -> dict[str, Any]:
    """instant-ngp's NeRF config with the changes a one-minute CPU budget wants (see benchmarks/RESULTS.md).

    A hash table of 2^16 entries per level instead of 2^19 (Adam and the gradient clear touch 8x fewer
    parameters: 2.2x more samples per second on a 2-core CPU) and a finest grid resolution of 1024 instead of 2048
    (256-pixel views need no finer): 22.1 -> 28.8-29.1 dB in 60 s on the held-out views.
    """
    return {"encoding": {"log2_hashmap_size": 16}, "training": {"desired_resolution": 1024}}


def _psnr_estimate(view: tuple[np.ndarray, Any, np.ndarray]):
    """A progress-bar figure: PSNR of a 64x64 render of one held-out view against its ground truth."""

    def estimate(session: Session) -> dict[str, str]:
        c2w, intr, truth = view
        rgb = session.task.render_view(c2w, intr, background=(1.0, 1.0, 1.0)).rgb
        mse = float(np.mean((np.clip(rgb, 0, 1) - truth) ** 2))
        return {"psnr≈": f"{-10 * math.log10(max(mse, 1e-10)):.1f} dB"}

    return estimate


def _progress(items, progress: bool, what: str = "orbit"):
    """Iterate ``items`` with a ``frames`` bar when ``progress``."""
    if not progress:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=what, unit="frame", leave=False, dynamic_ncols=True)


def run_nerf_demo(out_dir: str | os.PathLike, *, seconds: float = 75.0, device: Any = None,
                  progress: bool = True, orbit_frames: int = 32, orbit_size: int = 192, size: int = SIZE
                  ) -> dict[str, Any]:
    """Train a NeRF on the showcase scene; write the side-by-side, orbit videos and ``demo_nerf.ingp``.

    Returns:
        steps, seconds, samples_per_second, psnr/ssim over the held-out views, ``outputs`` (label -> path) and
        ``next`` (commands to try next).
    """
    from ngp_sdk.core.camera_path import orbit_poses
    from ngp_sdk.core.cli import training_summary, write_orbit_videos
    from ngp_sdk.nerf.data import composite_alpha, load_nerf_dataset

    out = Path(out_dir)
    data = write_showcase_dataset(out / "scene", size=size)
    session = Session.nerf(data, config=demo_config(), device=device)
    task = session.task
    val = load_nerf_dataset(data, split="val")
    white = (1.0, 1.0, 1.0)
    truth = composite_alpha(val.images[0], white)
    f = size // 64 if size % 64 == 0 else 1  # the progress bar's estimate renders a 64x64 view
    small = val.intrinsics[0].scaled(f)
    small_truth = truth.reshape(size // f, f, size // f, f, 3).mean(axis=(1, 3))
    r = session.train(seconds=seconds, progress=progress,
                      progress_extra=_psnr_estimate((val.poses[0], small, small_truth)) if progress else None)
    snapshot = session.save(out / "demo_nerf.ingp")
    metrics = task.evaluate(val)
    novel = task.render_view(val.poses[0], val.intrinsics[0], background=white).rgb
    side_by_side = srgb_to_linear(np.clip(np.concatenate([novel, truth], axis=1), 0, 1))
    outputs = {"side_by_side": str(save_image(out / "novel_view.png", side_by_side))}
    if orbit_frames > 0:
        scene = task.scene
        intr = val.intrinsics[0].scaled(size / min(orbit_size, size))
        frames = [srgb_to_linear(np.clip(task.render_view(c2w, intr, background=white).rgb, 0, 1))
                  for c2w in _progress(orbit_poses(val.poses[0], scene.centre, scene.up, orbit_frames), progress)]
        outputs.update(write_orbit_videos(out, "orbit", frames, fps=16))
    outputs["snapshot"] = str(snapshot)
    return {
        **training_summary("nerf", session, r),
        "psnr": round(metrics["psnr"], 3),
        "ssim": round(metrics["ssim"], 4),
        "resolution": f"{size}x{size}",
        "held_out_views": int(metrics["n_images"]),
        "headline": f"a NeRF of a {size}x{size} scene from {N_TRAIN} views: {metrics['psnr']:.1f} dB on "
                    f"{int(metrics['n_images'])} views it never saw",
        "outputs": outputs,
        "next": [f"ngp render {snapshot} --orbit 120 --width 512 --height 512 --out orbit512.mp4",
                 f"ngp export mesh {snapshot} --out demo.ply",
                 "ngp nerf train YOUR_DATA/transforms.json --seconds 300 --out scene.ingp --eval-images 4",
                 "ngp import rosbag robot.mcap --out robot_ds --image-topic /camera/image_raw",
                 "ngp demo --list"],
    }
