"""The image primitive at the paper's gigapixel scale: load, train against the clock, evaluate, write a pyramid.

Run (the command of the recorded numbers; about an hour on the 2-core host, ~2.5 GB of disk in --workdir):

    python benchmarks/bench_gigapixel.py --width 20000 --height 23466 --seconds 600 \
        --screenshot docs/images/gigapixel_viewer.png

What it does (one JSON document on stdout; progress bars on stderr):

1. Builds the test image procedurally (no download) in a separate process, cached in ``--workdir``: a quadtree
   mosaic of scikit-image's bundled photos at every size from the whole canvas down to ~48 px, so there is new
   detail at every zoom level; written as a tiled, deflate-compressed BigTIFF through libvips.
2. For each config of ``--configs`` (default ``gigapixel`` = T 2^22, then the 2^19 ``base``), in a fresh process
   (so its peak RSS is its own): loads the TIFF with the SDK's reader (uint8 codes, strip by strip), trains,
   and at every ``--checkpoints`` second of training time measures PSNR on a fixed random subset of
   ``--eval-pixels`` pixels (the same subset for every config and checkpoint; evaluation time is not training
   time). The first config then saves its snapshot, evaluates PSNR over every pixel (streamed) and writes the Deep
   Zoom pyramid (every level rendered from the field, JPEG tiles) with its OpenSeadragon ``index.html``.
3. ``--screenshot``: opens the pyramid in headless Chromium and saves what it shows.

Memory bar (issue 11): peak RSS <= 1.2 x stored pixel bytes + parameters + optimiser state + 1 GiB, where the
optimiser state counted is the gradient buffer and Adam's two moments (``budget_bytes``; ``within_budget``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._timing import machine_info  # noqa: E402

GiB = 1 << 30


# -- 1. the test image -----------------------------------------------------------------------------------------


def _photos() -> list[np.ndarray]:
    from skimage import data as d

    rgb = [d.astronaut(), d.coffee(), d.chelsea(), d.rocket(), d.immunohistochemistry(), d.hubble_deep_field(),
           d.retina(), d.colorwheel(), d.cat()]
    grey = [d.camera(), d.coins(), d.moon(), d.page(), d.text(), d.brick(), d.grass(), d.gravel(), d.cell(),
            d.clock()]
    return [np.ascontiguousarray(p[..., :3]) for p in rgb] + [np.repeat(g[..., None], 3, axis=2) for g in grey]


def generate_image(path: Path, width: int, height: int, seed: int = 7, min_block: int = 48) -> None:
    """Quadtree mosaic of bundled photos (uint8 sRGB), written as a tiled deflate BigTIFF."""
    import pyvips
    from PIL import Image
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(p) for p in _photos()]
    img = np.empty((height, width, 3), dtype=np.uint8)
    bar = tqdm(total=width * height, unit="px", unit_scale=True, desc="generate")
    stack = [(0, 0, width, height, 0)]
    while stack:
        x, y, w, h, depth = stack.pop()
        # big blocks split with high probability, small ones rarely: detail at every scale
        p_split = 0.0 if min(w, h) < 2 * min_block else (0.95 if depth < 2 else 0.55)
        if rng.random() < p_split:
            fx, fy = rng.uniform(0.35, 0.65, size=2)
            w0, h0 = int(w * fx), int(h * fy)
            stack += [(x, y, w0, h0, depth + 1), (x + w0, y, w - w0, h0, depth + 1),
                      (x, y + h0, w0, h - h0, depth + 1), (x + w0, y + h0, w - w0, h - h0, depth + 1)]
            continue
        photo = photos[rng.integers(len(photos))]
        if rng.random() < 0.5:
            photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        img[y:y + h, x:x + w] = np.asarray(photo.resize((w, h), Image.Resampling.BICUBIC))
        bar.update(w * h)
    bar.close()
    tmp = path.with_name(f".{path.name}.tmp")
    vim = pyvips.Image.new_from_memory(img.data, width, height, 3, "uchar").copy(interpretation="srgb")
    vim.tiffsave(str(tmp), tile=True, tile_width=256, tile_height=256, bigtiff=True, compression="deflate",
                 level=1)
    os.replace(tmp, path)


# -- 2. one config, in its own process ------------------------------------------------------------------------


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_config(args: argparse.Namespace) -> dict:
    from ngp_sdk.core.session import Session
    from ngp_sdk.image.data import load_image

    t0 = time.perf_counter()
    data = load_image(args.image, progress=True)
    load_s = time.perf_counter() - t0
    session = Session.image(data, config=args.run)
    task = session.task
    n_params = sum(int(g.params.shape[0]) for g in task.field.param_groups())
    stored = int(data.pixels.nbytes)
    curve, trained, steps = [], 0.0, 0
    for target in args.checkpoints:
        r = session.train(seconds=max(1e-3, target - trained), progress=True)
        trained += r.seconds
        steps = session.step_count
        t = time.perf_counter()
        m = session.evaluate(pixels=args.eval_pixels, seed=1)
        curve.append({"train_seconds": round(trained, 1), "steps": steps, "psnr_subset": round(m["psnr"], 3),
                      "eval_seconds": round(time.perf_counter() - t, 1)})
        print(json.dumps({"config": args.run, **curve[-1]}), file=sys.stderr, flush=True)
        if r.interrupted:
            break
    samples_per_s = steps * task.samples_per_step / trained
    out: dict = {"config": args.run, "log2_hashmap_size": task.config.encoding.log2_hashmap_size,
                 "batch_size": task.samples_per_step, "params": n_params, "load_seconds": round(load_s, 1),
                 "samples_per_second": round(samples_per_s), "curve": curve}
    if args.full:
        snap = Path(args.workdir) / f"{args.run}.ingp"
        t = time.perf_counter()
        session.save(snap)
        out["snapshot"] = str(snap)
        out["save_seconds"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        full = session.evaluate(progress=True)
        out["psnr_full"] = round(full["psnr"], 3)
        out["eval_full_seconds"] = round(time.perf_counter() - t, 1)
        from ngp_sdk.image.pyramid import PyramidLayout, write_pyramid

        t = time.perf_counter()
        dzi = write_pyramid(task.iter_render, task.size, Path(args.workdir) / f"pyramid_{args.run}",
                            name="image", progress=True, title=f"ngp-sdk {args.run}: {task.size[0]}x{task.size[1]}")
        out["pyramid_seconds"] = round(time.perf_counter() - t, 1)
        out["pyramid"] = str(dzi)
        out["pyramid_tiles"] = PyramidLayout(*task.size).tile_count()
    peak = _peak_rss()
    budget = 1.2 * stored + 4 * n_params * 4 + GiB  # params + (gradients + Adam m, v) + 1 GiB
    out.update(stored_pixel_bytes=stored, peak_rss_bytes=peak, budget_bytes=int(budget),
               peak_rss_over_budget=round(peak / budget, 3), within_budget=bool(peak <= budget))
    return out


# -- main -------------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=20000)
    ap.add_argument("--height", type=int, default=23466)
    ap.add_argument("--seconds", type=float, default=600.0, help="training seconds per config")
    ap.add_argument("--checkpoints", type=float, nargs="*", default=None,
                    help="training seconds at which to measure PSNR (default: 10 60 SECONDS)")
    ap.add_argument("--eval-pixels", type=int, default=1 << 22, help="pixels of the fixed PSNR subset")
    ap.add_argument("--configs", nargs="+", default=["gigapixel", "base"])
    ap.add_argument("--workdir", default=str(Path.home() / ".cache" / "ngp-sdk" / "bench_gigapixel"))
    ap.add_argument("--screenshot", default=None, help="PNG of the pyramid in headless Chromium")
    ap.add_argument("--generate", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--run", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--image", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.checkpoints is None:
        args.checkpoints = sorted({c for c in (10.0, 60.0, args.seconds) if c <= args.seconds})
    if args.generate:
        generate_image(Path(args.generate), args.width, args.height)
        return
    if args.run:
        print(json.dumps(run_config(args)), flush=True)
        return

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    image = work / f"mosaic_{args.width}x{args.height}.tif"
    t = time.perf_counter()
    if not image.exists():
        subprocess.run([sys.executable, __file__, "--generate", str(image), "--width", str(args.width),
                        "--height", str(args.height)], check=True)
    generate_s = time.perf_counter() - t
    runs = []
    for i, cfg in enumerate(args.configs):
        cmd = [sys.executable, __file__, "--run", cfg, "--image", str(image), "--workdir", str(work),
               "--eval-pixels", str(args.eval_pixels), "--checkpoints", *map(str, args.checkpoints)]
        if i == 0:
            cmd.append("--full")
        p = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    result = {"benchmark": "gigapixel", "machine": machine_info(), "width": args.width, "height": args.height,
              "megapixels": round(args.width * args.height / 1e6, 1), "image": str(image),
              "image_file_bytes": image.stat().st_size, "generate_seconds": round(generate_s, 1), "runs": runs}
    if len(runs) > 1:
        result["samples_per_second_ratio"] = round(runs[0]["samples_per_second"] / runs[1]["samples_per_second"], 3)
    if args.screenshot and runs and "pyramid" in runs[0]:
        from benchmarks._browser import screenshot_openseadragon

        index = Path(runs[0]["pyramid"]).parent / "index.html"
        result["screenshot"] = screenshot_openseadragon(index, args.screenshot, size=(1280, 960))
        result["screenshot_zoomed"] = screenshot_openseadragon(
            index, str(Path(args.screenshot).with_name(Path(args.screenshot).stem + "_zoom.png")),
            size=(1280, 960), zoom=64.0)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
