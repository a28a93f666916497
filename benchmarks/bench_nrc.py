"""Neural radiance caching against plain path tracing at equal time per frame, against a high-spp reference.

Run (the command of the recorded numbers):

    python benchmarks/bench_nrc.py --size 256 --reference-spp 4096 --warmup-frames 100 --moving-light \
        --images docs/images

Per scene (the built-in Cornell box and its glossy variant: a rough-gold box and a mirror box), one JSON entry:

1. Reference: ``--reference-spp`` paths per pixel of plain path tracing (cached as .npy in ``--workdir``),
   with the path tracer's paths/s.
2. NRC: ``--warmup-frames`` frames with the cache training online, then ``--frames`` more; each frame's
   relative MSE (``mean((x - ref)^2 / (ref^2 + 0.01))``) and its wall time; ``ms_per_frame`` is their median.
3. Path tracing at the same wall time per frame: the spp that fits in NRC's median frame time (rounded, at
   least 1; PT's time per spp measured on 8 spp), ``--frames`` independent frames, their relative MSE.
   ``ratio = median relMSE(NRC) / median relMSE(PT)`` (the bar: <= 0.5).
4. ``--moving-light``: after the measurement the light moves by ``--light-offset``; the cache keeps training;
   the frame errors against a reference of the moved scene (``--moving-reference-spp``) are listed per frame, and
   ``frames_to_recover`` is the first frame whose error is within 2x of the converged error (bar: <= 30).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._timing import machine_info  # noqa: E402


def reference(scene, spp: int, path: Path) -> tuple[np.ndarray, dict]:
    from ngp_sdk.nrc import PathTracer

    if path.exists():
        return np.load(path), {"cached": str(path)}
    pt = PathTracer(scene, seed=12345)
    t = time.perf_counter()
    img = pt.render(spp=spp, batch=min(64, spp), progress=True)
    dt = time.perf_counter() - t
    np.save(path, img)
    n = scene.sensor.width * scene.sensor.height * spp
    return img, {"seconds": round(dt, 1), "paths_per_second": round(n / dt)}


def bench_scene(name: str, args) -> dict:
    from ngp_sdk.nrc import PathTracer
    from ngp_sdk.nrc.renderer import NrcRenderer, relative_mse
    from ngp_sdk.nrc.task import load_scene

    scene = load_scene(name, width=args.size, height=args.size)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    ref, ref_info = reference(scene, args.reference_spp, work / f"ref_{name}_{args.size}_{args.reference_spp}.npy")
    nrc = NrcRenderer(scene, seed=1)
    for _ in range(args.warmup_frames):
        nrc.render_frame()
    nrc_err, nrc_t = [], []
    for _ in range(args.frames):
        t = time.perf_counter()
        img = nrc.render_frame()
        nrc_t.append(time.perf_counter() - t)
        nrc_err.append(relative_mse(img, ref))
    ms = statistics.median(nrc_t)
    pt = PathTracer(scene, seed=7)
    pt.render(spp=1)
    t = time.perf_counter()
    pt.render(spp=8, batch=8)
    per_spp = (time.perf_counter() - t) / 8
    spp = max(1, round(ms / per_spp))
    pt_err, pt_t = [], []
    for _ in range(args.frames):
        t = time.perf_counter()
        pt_img = pt.render(spp=spp, batch=spp)
        pt_t.append(time.perf_counter() - t)
        pt_err.append(relative_mse(pt_img, ref))
    out = {"scene": name, "size": args.size, "reference": ref_info,
           "nrc": {"ms_per_frame": round(1000 * ms, 1), "relmse_median": statistics.median(nrc_err),
                   "relmse": nrc_err, "timings_s": {k: round(v, 2) for k, v in nrc.timings.items()},
                   "frames": nrc.frame},
           "pt": {"spp": spp, "ms_per_frame": round(1000 * statistics.median(pt_t), 1),
                  "relmse_median": statistics.median(pt_err), "relmse": pt_err},
           }
    out["ratio"] = round(out["nrc"]["relmse_median"] / out["pt"]["relmse_median"], 3)
    if args.images:
        from ngp_sdk.core.images import save_image

        gap = np.ones((ref.shape[0], 4, 3), np.float32)
        side = np.concatenate([pt_img, gap, img, gap, ref], axis=1)
        out["picture"] = str(save_image(Path(args.images) / f"nrc_{name}.png", side))
    if args.moving_light:
        moved = load_scene(name, width=args.size, height=args.size)
        mref_path = work / f"ref_{name}_{args.size}_{args.moving_reference_spp}_moved.npy"
        mpt = PathTracer(moved, seed=99)
        mpt.gpu_scene.move_emitters(args.light_offset)
        if mref_path.exists():
            mref = np.load(mref_path)
        else:
            mref = mpt.render(spp=args.moving_reference_spp, batch=64, progress=True)
            np.save(mref_path, mref)
        nrc.gpu_scene.move_emitters(args.light_offset)
        errs = [relative_mse(nrc.render_frame(), mref) for _ in range(args.moving_frames)]
        # converged error of the moved scene: the median of the last 10 frames
        settled = statistics.median(errs[-10:])
        recover = next((i + 1 for i, e in enumerate(errs) if e <= 2 * settled), None)
        out["moving_light"] = {"offset": list(args.light_offset), "relmse": errs, "settled": settled,
                               "before_move": out["nrc"]["relmse_median"], "frames_to_recover": recover}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", default=["cornell-box", "glossy-box"])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--reference-spp", type=int, default=4096)
    ap.add_argument("--warmup-frames", type=int, default=100)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--moving-light", action="store_true")
    ap.add_argument("--light-offset", type=float, nargs=3, default=(0.5, 0.0, 0.3))
    ap.add_argument("--moving-frames", type=int, default=60)
    ap.add_argument("--moving-reference-spp", type=int, default=1024)
    ap.add_argument("--workdir", default=str(Path.home() / ".cache" / "ngp-sdk" / "bench_nrc"))
    ap.add_argument("--images", default=None, help="folder for side-by-side PNGs: PT | NRC | reference")
    args = ap.parse_args()
    import warp as wp

    wp.config.log_level = wp.LOG_ERROR  # stdout carries only the JSON
    result = {"benchmark": "nrc", "machine": machine_info(), "scenes": [bench_scene(s, args) for s in args.scenes]}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
