"""NeRF training throughput and render time on lego, against a PyTorch CPU implementation of the same model.

Run (the command of the recorded numbers):

    python benchmarks/bench_nerf.py --warmup-steps 200 --steps 40 --renders 3

``--no-torch`` skips the reference; ``--downscale 4`` (default) trains and renders lego at 200x200.

What is measured (one JSON document on stdout, medians unless said otherwise):

ngp_sdk (Warp)
    ``Session.nerf(lego, downscale)``, ``warmup()``, then ``--warmup-steps`` training steps so the occupancy grid
    and the ray count per batch are at steady state (past the all-cell grid warm-up of the first 64 steps), then
    ``--steps`` timed ``step()`` calls. Per step: ``n_rays`` (rays kept) and ``n_samples`` (marched samples, the
    density network's forward and backward batch). ``steps_per_s``, ``rays_per_s``, ``samples_per_s`` are medians
    of the per-step values; ``*_overall`` divide the totals by the whole timed window, which includes the
    occupancy-grid updates (every 16 steps). ``profile``: per-phase milliseconds per step and share of the step
    over ``--profile-steps`` further steps (``NerfTask.timer``; phases nest, ``forward/*`` inside ``step``).
    Rendering: ``render_view`` of val view 0 (EMA weights, white
    background) at the training resolution and at twice it; ``render_s_per_megapixel``.

PyTorch (same model, same marching)
    One training batch (rays, targets, random backgrounds) is marched by our marcher with the task's occupancy
    grid and jitter, and saved with the parameters to an .npz; a separate process (PyTorch's OpenMP threads and
    Warp's would fight inside one) runs the model of ``benchmarks/_torch_nerf.py`` on exactly those packed
    samples: TorchHashGrid (tcnn-exact) + density MLP + SH4 + colour MLP on the still-visible samples only,
    compositing with cumsum/index_add, Huber loss, autograd backward, Adam (fused CPU kernel) and an EMA - the
    work of our step. Its forward is checked against ours on that batch (``parity``).

    Marching is counted on both sides: our ``step`` marches its own rays, so the PyTorch step time is its
    forward+backward+Adam time plus the median time our ray sampling + ray generation + marching take for a batch
    of the same size (``march_s``). The PyTorch render time is its inference over the samples of the same view
    plus the time our ray generation + marching of that view take (``render_march_s``); it evaluates the samples
    in chunks of 2^11 (its fastest chunk here). Without marching,
    ``compute_only`` compares our forward+backward+Adam on the very same saved batch with PyTorch's.

    ``ratio_samples_per_s`` = ngp_sdk samples/s / PyTorch samples/s (both per step, marching included);
    ``ratio_render`` = PyTorch render time / ngp_sdk render time at the same resolution.

PyTorch is the ``bench`` extra (``pip install torch==2.13.0``, a CPU wheel here).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._timing import machine_info, median_time, run_torch_reference  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "nerf" / "lego"


# ------------------------------------------------------------------------------------------------------------
# ngp_sdk side
# ------------------------------------------------------------------------------------------------------------


def _train_batch(task, seed: int):
    """Sample, generate and march one training batch exactly as ``NerfTask._forward_backward`` does."""
    from ngp_sdk.nerf.task import SAMPLE_BUDGET_FACTOR
    from warp_kernels.nerf_batch import sample_training_rays
    from warp_kernels.ray_marching import march_rays
    from warp_kernels.rays import generate_rays

    t = task.config.training
    n = task.n_rays
    b = task._rays(n)
    pixels, sizes, n_channels = task._training_source()
    sample_training_rays(pixels, sizes, n, seed=seed, n_channels=n_channels, random_background=t.random_background,
                         pixel_xy=b["xy"], cam_index=b["cam"], targets=b["target"], backgrounds=b["bg"])
    generate_rays(*task._cams, b["cam"], b["xy"], origins=b["origins"], directions=b["dirs"])
    s = march_rays(b["origins"], b["dirs"], task.grid.bitfield, n_cascades=task.grid.n_cascades, aabb=task.scene.aabb,
                   max_samples_per_ray=t.max_samples_per_ray,
                   max_total_samples=int(t.target_samples * SAMPLE_BUDGET_FACTOR), jitter=True, seed=seed)
    return b, s


class _FixedBatchStep:
    """Our forward + composite + loss + backward + Adam on one saved batch (no sampling, no marching)."""

    def __init__(self, task, s, bg, target):
        import warp as wp

        self.task, self.s, self.k = task, s, s.n_rays_kept
        self.bg, self.target = wp.clone(bg), wp.clone(target)
        self.dcolor = wp.zeros_like(self.bg)

    def forward(self):
        from ngp_sdk.nerf.render import alive_samples
        from warp_kernels.volume_rendering import composite_rays

        task, s, t = self.task, self.s, self.task.config.training
        sigma = task.field.forward_density(s.positions)
        alive = alive_samples(s, sigma, t.min_transmittance, task._select_scratch(s.n_samples))
        rgb = task.field.forward_color(s.directions, alive)
        r = composite_rays(s.t_starts, s.t_ends, sigma, rgb, s.packed_info, background=self.bg,
                           min_transmittance=t.min_transmittance)
        return sigma, alive, rgb, r

    def __call__(self) -> float:
        from warp_kernels.losses import compute_loss
        from warp_kernels.volume_rendering import composite_rays_backward

        task, s, t, k = self.task, self.s, self.task.config.training, self.k
        sigma, _, rgb, r = self.forward()
        loss = compute_loss(task.config.loss.otype, r.colors[:k], self.target[:k], grad_out=self.dcolor[:k],
                            huber_delta=t.huber_delta, mean_out=task._loss, return_value=True)
        g = composite_rays_backward(s.t_starts, s.t_ends, sigma, rgb, s.packed_info, self.dcolor, background=self.bg,
                                    min_transmittance=t.min_transmittance)
        task.field.backward(g.sigmas, g.rgbs)
        task.optimizer.step()
        return float(loss)


def _march_view(task, c2w, intr, *, collect: bool):
    """Ray generation + the full march of one view (every sample up front, in ``render_camera``'s tiles): the
    samples the PyTorch reference renders, and the marching time charged to it.

    Returns the packed samples (NumPy, global ray indices) when ``collect``, else the sample count.
    """
    from ngp_sdk.core.cameras import camera_ray_tiles
    from warp_kernels.ray_marching import march_rays

    st = task._settings(None)
    budget = max(st.sample_budget, st.max_samples_per_ray)
    parts, total = [], 0
    for s0, e, o, d in camera_ray_tiles(c2w, intr, st.tile_rays, task.device):
        start = 0
        while start < e - s0:
            s = march_rays(o[start:], d[start:], task.grid.bitfield, n_cascades=task.grid.n_cascades,
                           aabb=task.scene.aabb, max_samples_per_ray=st.max_samples_per_ray, max_total_samples=budget,
                           jitter=False)
            total += s.n_samples
            if collect and s.n_samples:
                parts.append({"ray_indices": s.ray_indices.numpy() + (s0 + start), "t_starts": s.t_starts.numpy(),
                              "t_ends": s.t_ends.numpy(), "positions": s.positions.numpy(),
                              "directions": s.directions.numpy()})
            start += s.n_rays_kept
    if not collect:
        return total
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


def bench_ngp(args, out_dir: Path | None) -> dict:
    import warp as wp

    wp.config.log_level = wp.LOG_ERROR
    wp.init()
    from ngp_sdk import Session
    from ngp_sdk.nerf.data import load_nerf_dataset

    t0 = time.perf_counter()
    session = Session.nerf(args.data, downscale=args.downscale)
    task = session.task
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    session.warmup()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.warmup_steps):
        session.step()
    warm_s = time.perf_counter() - t0

    # -- training throughput ------------------------------------------------------------------------------
    times, rays, samples, grid_steps = [], [], [], 0
    t_start = time.perf_counter()
    for _ in range(args.steps):
        grid_steps += int(task._grid_due())
        t = time.perf_counter()
        m = session.step()
        times.append(time.perf_counter() - t)
        rays.append(m["n_rays"])
        samples.append(m["n_samples"])
    window = time.perf_counter() - t_start
    profile = None
    if args.profile_steps:
        # a separate window: on a GPU the timer synchronises around every phase
        task.timer.reset()
        task.timer.enabled = True
        for _ in range(args.profile_steps):
            session.step()
        task.timer.enabled = False
        profile = {"steps": args.profile_steps, "phases": task.timer.summary("step")}
    ngp = {
        "steps": args.steps, "warmup_steps": args.warmup_steps, "grid_updates_in_window": grid_steps,
        "step_s": statistics.median(times),
        "steps_per_s": statistics.median(1.0 / x for x in times),
        "rays_per_s": statistics.median(r / x for r, x in zip(rays, times, strict=True)),
        "samples_per_s": statistics.median(s / x for s, x in zip(samples, times, strict=True)),
        "rays_per_step": statistics.median(rays), "samples_per_step": statistics.median(samples),
        "steps_per_s_overall": args.steps / window, "rays_per_s_overall": sum(rays) / window,
        "samples_per_s_overall": sum(samples) / window,
        "load_s": load_s, "compile_s": compile_s, "warmup_train_s": warm_s,
    }
    if profile is not None:
        ngp["profile"] = profile

    # -- one batch for the reference (and the marching time of a batch that size) ---------------------------
    seed = 0x5EED
    b, s = _train_batch(task, seed)
    k = s.n_rays_kept
    fixed = _FixedBatchStep(task, s, b["bg"], b["target"])
    sigma, alive, rgb, r = fixed.forward()
    batch = {"positions": s.positions.numpy(), "directions": s.directions.numpy(), "t_starts": s.t_starts.numpy(),
             "t_ends": s.t_ends.numpy(), "ray_indices": s.ray_indices.numpy(),
             "background": fixed.bg.numpy()[:k].copy(), "target": fixed.target.numpy()[:k].copy(),
             "ref_sigma": sigma.numpy().copy(), "ref_alive": alive.numpy().copy(),
             "ref_colors": r.colors.numpy()[:k].copy()}
    task.field._saved = None
    ngp["march_s"] = median_time(lambda: _train_batch(task, seed + 1), args.renders + 2, warmup=1)
    ngp["batch"] = {"rays": k, "samples": s.n_samples, "alive_samples": int(alive.shape[0])}
    from warp_kernels.hash_encoding import forward_schedule

    ngp["hash_forward_schedule"] = forward_schedule(task.field.grid.layout)  # CPU: measured or forced

    # -- rendering ---------------------------------------------------------------------------------------
    val = load_nerf_dataset(args.data, split="val", downscale=args.downscale, max_frames=1, load_images=False)
    pose, intr = val.poses[0], val.intrinsics[0]
    bg = (1.0, 1.0, 1.0)
    renders = {}
    for factor in (1, 2):
        iv = intr.resized(intr.width * factor, intr.height * factor)
        img_holder = {}

        def render(iv=iv, holder=img_holder):
            holder["img"] = task.render_view(pose, iv, background=bg)

        rs = median_time(render, args.renders, warmup=1)
        mp = iv.width * iv.height / 1e6
        renders[f"{iv.width}x{iv.height}"] = {"render_s": rs, "render_s_per_megapixel": rs / mp,
                                              "samples": _march_view(task, pose, iv, collect=False)}
        if factor == 1:
            res_key = f"{iv.width}x{iv.height}"
            render_img = img_holder["img"].rgb
            march_s = median_time(lambda iv=iv: _march_view(task, pose, iv, collect=False), args.renders, warmup=1)
            renders[res_key]["march_s"] = march_s
            view = _march_view(task, pose, iv, collect=True)
    ngp["render"] = renders
    ngp["render_s_per_megapixel"] = renders[res_key]["render_s_per_megapixel"]
    ngp["render_resolution"] = res_key

    if out_dir is not None:
        cfg = task.config
        params = task.field.state_dict()
        ema = task.optimizer.inference_params() or {g.name: g.params for g in task.field.param_groups()}
        lay = task.field.grid.layout
        meta = {"layout": dataclasses.asdict(lay),
                "density_widths": [shape[1] for shape in task.field.density_mlp.layout.layer_shapes]
                + [task.field.density_mlp.layout.n_output],
                "color_widths": [shape[1] for shape in task.field.color_mlp.layout.layer_shapes]
                + [task.field.color_mlp.layout.n_output],
                "aabb": [np.asarray(v, np.float64).reshape(3).tolist() for v in task.scene.aabb],
                "n_rays": k, "view_rays": intr.width * intr.height, "view_resolution": res_key,
                "min_transmittance": cfg.training.min_transmittance, "huber_delta": cfg.training.huber_delta,
                "adam": dataclasses.asdict(cfg.optimizer.adam),
                "ema_decay": cfg.optimizer.ema.decay if cfg.optimizer.ema else 0.0,
                "march_s": ngp["march_s"], "render_march_s": renders[res_key]["march_s"]}
        (out_dir / "meta.json").write_text(json.dumps(meta))
        np.savez(out_dir / "batch.npz", **batch, **{f"param_{n}": p for n, p in params.items()},
                 **{f"ema_{n}": a.numpy() for n, a in ema.items()},
                 **{f"view_{n}": a for n, a in view.items()}, view_ref_rgb=render_img.reshape(-1, 3))

    # -- our compute on the saved batch, without sampling/marching (changes the parameters: last) ---------
    ngp["compute_only_step_s"] = median_time(fixed, max(3, min(args.steps, 15)), warmup=1)
    return ngp


# ------------------------------------------------------------------------------------------------------------
# PyTorch side (a separate process)
# ------------------------------------------------------------------------------------------------------------


def bench_torch(args) -> dict:
    import torch

    from benchmarks import _torch_nerf as tn
    from warp_kernels.hash_encoding import HashGridLayout

    d = Path(args.torch_only)
    meta = json.loads((d / "meta.json").read_text())
    z = np.load(d / "batch.npz")
    lay = HashGridLayout(**meta["layout"])
    names = ("encoding", "density_network", "rgb_network")

    def model_from(prefix: str) -> tn.TorchNerf:
        return tn.TorchNerf(lay, {n: z[f"{prefix}_{n}"] for n in names}, meta["density_widths"],
                            meta["color_widths"], meta["aabb"])

    def tensors(prefix: str) -> dict:
        b = {k: torch.from_numpy(np.ascontiguousarray(z[f"{prefix}{k}"]))
             for k in ("positions", "directions", "ray_indices")}
        b["ray_indices"] = b["ray_indices"].long()
        b["dt"] = torch.from_numpy(z[f"{prefix}t_ends"] - z[f"{prefix}t_starts"])
        return b

    min_t, n_rays = meta["min_transmittance"], meta["n_rays"]
    out: dict = {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}

    # -- training -----------------------------------------------------------------------------------------
    model = model_from("param")
    batch = tensors("")
    batch["background"] = torch.from_numpy(z["background"])
    batch["target"] = torch.from_numpy(z["target"])
    with torch.no_grad():
        colors, sigma, alive, _ = tn.forward(model, batch, n_rays, min_t)
    ref_alive = z["ref_alive"]
    out["parity"] = {
        "sigma_max_rel_err": float(np.max(np.abs(sigma.numpy() - z["ref_sigma"]) / (np.abs(z["ref_sigma"]) + 1e-3))),
        "alive_samples_torch": int(alive.numel()), "alive_samples_ngp": int(ref_alive.size),
        "colors_max_abs_err": float(np.max(np.abs(colors.numpy() - z["ref_colors"]))) if n_rays else 0.0,
    }
    adam = meta["adam"]
    opt, kind = tn.make_optimizer(model, lr=adam["learning_rate"], betas=(adam["beta1"], adam["beta2"]),
                                  eps=adam["epsilon"], l2_reg=adam["l2_reg"])
    ema = [p.detach().clone() for g in opt.param_groups for p in g["params"]]

    def step():
        tn.train_step(model, opt, ema, batch, n_rays, min_transmittance=min_t, huber_delta=meta["huber_delta"],
                      ema_decay=meta["ema_decay"])

    compute_s = median_time(step, args.steps, warmup=2)
    n_samples = int(batch["positions"].shape[0])
    step_s = compute_s + meta["march_s"]
    out.update({"adam": kind, "compute_only_step_s": compute_s, "march_s": meta["march_s"], "step_s": step_s,
                "steps_per_s": 1.0 / step_s, "rays_per_s": n_rays / step_s, "samples_per_s": n_samples / step_s,
                "rays_per_step": n_rays, "samples_per_step": n_samples})

    # -- rendering (EMA weights, like render_view) ----------------------------------------------------------
    model = model_from("ema")
    view = tensors("view_")
    bg = torch.ones(3)
    n_view = meta["view_rays"]
    colors = tn.render_samples(model, view, n_view, min_transmittance=min_t, background=bg)
    out["parity"]["render_rgb_max_abs_err"] = float(np.max(np.abs(colors.numpy() - z["view_ref_rgb"])))
    infer_s = median_time(lambda: tn.render_samples(model, view, n_view, min_transmittance=min_t, background=bg),
                           args.renders, warmup=0)
    render_s = infer_s + meta["render_march_s"]
    out.update({"render_resolution": meta["view_resolution"], "render_infer_s": infer_s,
                "render_march_s": meta["render_march_s"], "render_s": render_s,
                "render_s_per_megapixel": render_s / (n_view / 1e6), "render_samples": int(view["positions"].shape[0])})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="lego folder (Blender synthetic)")
    ap.add_argument("--downscale", type=int, default=4)
    ap.add_argument("--warmup-steps", type=int, default=200, help="training steps before timing")
    ap.add_argument("--steps", type=int, default=40, help="timed training steps (median)")
    ap.add_argument("--renders", type=int, default=3, help="timed renders per resolution (median)")
    ap.add_argument("--profile-steps", type=int, default=40,
                    help="steps of the per-phase profile (after the timed window; 0 = none)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--torch-only", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_only:
        print(json.dumps(bench_torch(args)))
        return
    if not (args.data / "transforms_train.json").is_file():
        sys.exit(f"no lego data at {args.data} (pass --data)")
    import warp as wp

    doc: dict = {"machine": {**machine_info(), "warp": wp.__version__},
                 "data": f"{args.data.name} downscale {args.downscale}"}
    with tempfile.TemporaryDirectory(prefix="bench_nerf_") as tmp:
        out_dir = None if args.no_torch else Path(tmp)
        doc["ngp_sdk"] = bench_ngp(args, out_dir)
        if out_dir is not None:
            # PyTorch runs after every Warp timing, in its own process
            ref = run_torch_reference(__file__, [str(out_dir), "--steps", str(max(3, min(args.steps, 15))),
                                                 "--renders", str(args.renders)])
            if ref is not None:
                doc["machine"].update(torch=ref.pop("torch"), torch_threads=ref.pop("torch_threads"))
                doc["parity"] = ref.pop("parity")
                doc["torch"] = ref
                ngp = doc["ngp_sdk"]
                rk = ref["render_resolution"]
                doc["ratio_samples_per_s"] = ngp["samples_per_s"] / ref["samples_per_s"]
                doc["ratio_compute_only"] = ref["compute_only_step_s"] / ngp["compute_only_step_s"]
                doc["ratio_render"] = ref["render_s"] / ngp["render"][rk]["render_s"]
    doc["bars"] = {"samples_per_s_ge_0.4M": doc["ngp_sdk"]["samples_per_s"] >= 4e5}
    if "ratio_samples_per_s" in doc:
        doc["bars"]["ratio_ge_5x"] = doc["ratio_samples_per_s"] >= 5.0
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
