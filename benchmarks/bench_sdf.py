"""SDF training throughput (points/s) on a mesh, against a PyTorch CPU implementation of the same model.

Run (the command of the recorded numbers):

    python benchmarks/bench_sdf.py --steps 30

What is measured (one JSON document on stdout, medians of per-step times):

ngp_sdk (Warp)
    ``Session.sdf(mesh)`` with instant-ngp's SDF config (hash grid L16 F2 T2^19 per_level_scale 1.38, MLP 64x2,
    MAPE, Adam + EMA, 2^16 points per batch), ``warmup()``, ``--warmup-steps`` untimed steps, then ``--steps``
    timed ``step()`` calls: sampling (surface / near-surface / uniform) + BVH ground truth + forward + loss +
    backward + Adam. ``sample_s`` is the sampling + ground-truth part alone (timed separately), ``compute_only``
    a step on a fixed saved batch (no sampling).

PyTorch (same model, same batch)
    Batches and the parameters are saved to an .npz; a separate process (PyTorch's OpenMP threads and Warp's
    would fight inside one) trains ``benchmarks/_torch_ref.py``'s TorchHashGrid (tcnn-exact) + bias-free ReLU MLP
    with the MAPE loss, autograd backward, Adam (fused CPU kernel, L2 on the MLP) and an EMA. Its forward is
    checked against ours (``parity``). Sampling is counted on both sides: the PyTorch step time is its compute time
    plus our ``sample_s`` (PyTorch has no BVH of its own).

    ``ratio_points_per_s`` = ngp_sdk points/s / PyTorch points/s (sampling included);
    ``ratio_compute_only`` = PyTorch compute step / ngp_sdk compute step on the same batch.

PyTorch is the ``bench`` extra (``pip install torch==2.13.0``, a CPU wheel here).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._timing import machine_info, median_time, run_torch_reference  # noqa: E402

DEFAULT_MESH = ROOT.parent / "shared" / "data" / "sdf" / "bunny.obj"


def _per_step_median(fn, steps: int) -> float:
    ts = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def bench_ngp(args, out_dir: Path | None) -> dict:
    import warp as wp

    from ngp_sdk.core.meshes import load_mesh
    from ngp_sdk.core.session import Session
    from warp_kernels.losses import compute_loss
    from warp_kernels.sdf import sample_sdf_training_points

    wp.config.log_level = wp.LOG_ERROR
    session = Session.sdf(load_mesh(args.mesh), device="cpu")
    task = session.task
    b = task.config.training.batch_size
    t0 = time.perf_counter()
    session.warmup()
    warmup_s = time.perf_counter() - t0
    for _ in range(args.warmup_steps):
        task.step()
    step_s = _per_step_median(task.step, args.steps)
    mesh = task._mesh
    seeds = iter(range(10_000, 20_000))
    winding = task._winding_for_training  # the sign mode the task trains with (pseudo normal if watertight)
    sample_s = median_time(lambda: sample_sdf_training_points(mesh, b, next(seeds), use_winding_number=winding,
                                                              sampler=task._sampler)[1].numpy(), args.steps, 1)
    # compute only: a fixed batch through forward, loss, backward, Adam
    pos, dist = sample_sdf_training_points(mesh, b, 7)
    target = dist.reshape((b, 1))
    grad = wp.empty((b, 1), dtype=wp.float32, device=task.device)

    def fixed_step():
        pred = task.field.forward(pos)
        compute_loss(task.config.loss.otype, pred, target, grad_out=grad)
        task.field.backward(grad)
        task.optimizer.step()
        wp.synchronize_device(task.device)

    compute_s = median_time(fixed_step, args.steps, 2)
    if out_dir is not None:
        params = {k: np.asarray(v) for k, v in task.field.state_dict().items()}
        ref_out = task.field.infer(pos[:4096]).numpy()[:, 0]
        np.savez(out_dir / "batch.npz", pos=pos.numpy(), dist=dist.numpy(), ref_out=ref_out,
                 **{f"param_{k}": v for k, v in params.items()})
        cfg = task.config
        mlp = task.field.mlp.layout
        (out_dir / "config.json").write_text(json.dumps({
            "grid_layout": dataclasses.asdict(task.field.grid.layout), "grid_name": task.field.grid.name,
            "mlp_name": task.field.mlp.name, "layer_shapes": mlp.layer_shapes, "layer_offsets": mlp.layer_offsets,
            "l2_reg": cfg.optimizer.adam.l2_reg, "lr": cfg.optimizer.adam.learning_rate, "sample_s": sample_s}))
    return {"batch_size": b, "sign": "winding number" if winding else "pseudo normal", "warmup_s": warmup_s,
            "step_s": step_s, "points_per_s": b / step_s,
            "sample_s": sample_s, "compute_only_step_s": compute_s, "compute_only_points_per_s": b / compute_s}


def bench_torch(args) -> dict:
    import torch

    from benchmarks._torch_ref import TorchHashGrid, torch_mlp
    from warp_kernels.hash_encoding import HashGridLayout

    d = Path(args.torch_only)
    meta = json.loads((d / "config.json").read_text())
    z = np.load(d / "batch.npz")
    layout = HashGridLayout(**meta["grid_layout"])
    shapes = [tuple(s) for s in meta["layer_shapes"]]
    widths = [shapes[0][1]] + [s[0] for s in shapes]
    flat = z[f"param_{meta['mlp_name']}"]
    weights = [flat[o:o + a * b].reshape(a, b) for (a, b), o in zip(shapes, meta["layer_offsets"], strict=False)]
    grid = TorchHashGrid(layout, z[f"param_{meta['grid_name']}"])
    mlp = torch_mlp(widths, weights)
    params = [grid.table, *mlp.parameters()]
    groups = [{"params": [grid.table], "weight_decay": 0.0},
              {"params": list(mlp.parameters()), "weight_decay": meta["l2_reg"]}]
    try:
        opt = torch.optim.Adam(groups, lr=meta["lr"], betas=(0.9, 0.99), eps=1e-15, fused=True)
    except (RuntimeError, TypeError, ValueError):
        opt = torch.optim.Adam(groups, lr=meta["lr"], betas=(0.9, 0.99), eps=1e-15, foreach=True)
    ema = [p.detach().clone() for p in params]
    pos = torch.from_numpy(z["pos"])
    dist = torch.from_numpy(z["dist"])
    with torch.no_grad():
        out = mlp(grid(pos[:4096]))[:, 0].numpy()
    parity = float(np.max(np.abs(out - z["ref_out"])))

    def step():
        pred = mlp(grid(pos))[:, 0]
        loss = ((pred - dist).abs() / (dist.abs() + 0.01)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 0.05)
        return float(loss)

    compute_s = median_time(step, args.steps, 2)
    step_s = compute_s + meta["sample_s"]
    b = int(pos.shape[0])
    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(), "parity_max_abs": parity,
            "compute_only_step_s": compute_s, "step_s": step_s, "points_per_s": b / step_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mesh", type=Path, default=DEFAULT_MESH)
    ap.add_argument("--warmup-steps", type=int, default=10, help="untimed training steps after compilation")
    ap.add_argument("--steps", type=int, default=30, help="timed steps (median)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--torch-only", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_only:
        print(json.dumps(bench_torch(args)))
        return
    if not args.mesh.is_file():
        sys.exit(f"no mesh at {args.mesh} (pass --mesh)")
    import warp as wp

    doc: dict = {"machine": {**machine_info(), "warp": wp.__version__}, "mesh": args.mesh.name}
    with tempfile.TemporaryDirectory(prefix="bench_sdf_") as tmp:
        out_dir = None if args.no_torch else Path(tmp)
        doc["ngp_sdk"] = bench_ngp(args, out_dir)
        if out_dir is not None:
            ref = run_torch_reference(__file__, [str(out_dir), "--steps", str(max(3, min(args.steps, 10)))])
            if ref is not None:
                doc["machine"].update(torch=ref.pop("torch"), torch_threads=ref.pop("torch_threads"))
                doc["parity_max_abs"] = ref.pop("parity_max_abs")
                doc["torch"] = ref
                doc["ratio_points_per_s"] = doc["ngp_sdk"]["points_per_s"] / ref["points_per_s"]
                doc["ratio_compute_only"] = ref["compute_only_step_s"] / doc["ngp_sdk"]["compute_only_step_s"]
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
