"""Kernel and training throughput on this machine, each against a PyTorch CPU implementation of the same math.

Measures (medians of several runs, one JSON document on stdout):
- hash encoding, 3D, L16 F2 T2^19, 2^18 points: forward, and forward + backward (to the table);
- MLP 32-64-64-16 (no bias, ReLU), 2^18 rows: forward + backward (weights and input);
- end-to-end image training samples/s on albert's default config (if ../shared/data is present);
- machine limits: sgemm GFLOP/s (NumPy/OpenBLAS) and random-gather rate (NumPy fancy indexing).

Run:  python benchmarks/bench_kernels.py [--repeats 7] [--points 262144]
PyTorch is the ``bench`` extra (``pip install torch==2.13.0``, a CPU wheel here).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import warp as wp  # noqa: E402

wp.config.log_level = wp.LOG_ERROR

from benchmarks._timing import machine_info, median_time, run_torch_reference  # noqa: E402
from warp_kernels.hash_encoding import (  # noqa: E402
    HashGridLayout,
    hash_encode,
    hash_encode_backward,
    init_hash_grid_params,
)
from warp_kernels.mlp import MlpLayout, MlpWorkspace, init_mlp_params, mlp_backward, mlp_forward  # noqa: E402


def _encoding_inputs(n: int) -> dict:
    """Deterministic inputs shared by the Warp run and the PyTorch reference process."""
    lay = HashGridLayout(n_dims=3, n_levels=16, n_features_per_level=2, log2_hashmap_size=19, base_resolution=16,
                         per_level_scale=float(np.exp(np.log(2048 / 16) / 15)))
    rng = np.random.default_rng(0)
    dev = wp.get_device("cpu")
    x_np = rng.random((n, 3), dtype=np.float32)
    params_np = init_hash_grid_params(lay, seed=0)
    go = wp.array(rng.standard_normal((n, lay.n_output_dims), dtype=np.float32), device=dev)
    return {"lay": lay, "x": wp.array(x_np, device=dev), "p": wp.array(params_np, device=dev), "x_np": x_np,
            "params_np": params_np, "go": go}


def bench_encoding(n: int, repeats: int) -> tuple[dict, dict]:
    ctx = _encoding_inputs(n)
    lay, x, p, go = ctx["lay"], ctx["x"], ctx["p"], ctx["go"]
    out = wp.empty((n, lay.n_output_dims), dtype=wp.float32, device=x.device)
    gp = wp.zeros(lay.n_params, dtype=wp.float32, device=x.device)

    def warp_fb():
        hash_encode(lay, x, p, out=out)
        hash_encode_backward(lay, x, go, gp)

    res = {"config": "3D L16 F2 T2^19 b=1.3819", "points": n,
           "warp_fwd_s": median_time(lambda: hash_encode(lay, x, p, out=out), repeats),
           "warp_fwd_bwd_s": median_time(warp_fb, repeats)}
    res["warp_fwd_bwd_points_per_s"] = n / res["warp_fwd_bwd_s"]
    return res, ctx


def bench_encoding_torch(res: dict, ctx: dict, repeats: int, torch) -> None:
    """The same math in PyTorch (nerfstudio-style gather), run after every Warp timing (see main)."""
    lay, x, p, x_np, params_np, go = (ctx[k] for k in ("lay", "x", "p", "x_np", "params_np", "go"))
    from benchmarks._torch_ref import TorchHashGrid

    enc = TorchHashGrid(lay, params_np)
    tx = torch.from_numpy(x_np)
    tgo = torch.from_numpy(go.numpy())
    # same numbers as the Warp kernel (checked once, so the comparison is of identical math)
    with torch.no_grad():
        assert np.allclose(enc(tx[:4096]).numpy(), hash_encode(lay, x, p).numpy()[:4096], atol=1e-5)

    def torch_fwd():
        with torch.no_grad():
            enc(tx)

    def torch_fb():
        enc.table.grad = None
        enc(tx).backward(tgo)

    res["torch_fwd_s"] = median_time(torch_fwd, max(3, repeats // 2))
    res["torch_fwd_bwd_s"] = median_time(torch_fb, max(3, repeats // 2))


def _mlp_inputs(n: int) -> dict:
    lay = MlpLayout(n_input=32, n_output=16, n_neurons=64, n_hidden_layers=2)
    rng = np.random.default_rng(1)
    dev = wp.get_device("cpu")
    params_np = init_mlp_params(lay, seed=0)
    x_np = rng.standard_normal((n, 32), dtype=np.float32)
    dy = wp.array(rng.standard_normal((n, 16), dtype=np.float32), device=dev)
    return {"lay": lay, "params_np": params_np, "x_np": x_np, "dy": dy}


def bench_mlp(n: int, repeats: int) -> tuple[dict, dict]:
    ctx = _mlp_inputs(n)
    lay, dy = ctx["lay"], ctx["dy"]
    dev = dy.device
    p = wp.array(ctx["params_np"], device=dev)
    x = wp.array(ctx["x_np"], device=dev)
    g = wp.zeros(lay.n_params, dtype=wp.float32, device=dev)
    ws = MlpWorkspace(lay, dev)

    def warp_fb():
        mlp_forward(lay, p, x, workspace=ws)
        mlp_backward(lay, p, ws, dy, grad_params=g)

    flops = 3 * 2 * n * (32 * 64 + 64 * 64 + 64 * 16)
    res = {"config": "32-64-64-16 no bias, ReLU", "rows": n, "warp_fwd_bwd_s": median_time(warp_fb, repeats)}
    res["warp_gflops"] = flops / res["warp_fwd_bwd_s"] / 1e9
    return res, ctx


def bench_mlp_torch(res: dict, ctx: dict, repeats: int, torch) -> None:
    lay, params_np, x_np, dy = (ctx[k] for k in ("lay", "params_np", "x_np", "dy"))
    from benchmarks._torch_ref import torch_mlp

    offs = lay.layer_offsets
    weights = [params_np[o:o + a * b].reshape(a, b) for o, (a, b) in zip(offs, lay.layer_shapes, strict=True)]
    net = torch_mlp([32, 64, 64, 16], weights)
    tx = torch.from_numpy(x_np).requires_grad_(True)
    tdy = torch.from_numpy(dy.numpy())

    def torch_fb():
        net.zero_grad(set_to_none=True)
        tx.grad = None
        net(tx).backward(tdy)

    res["torch_fwd_bwd_s"] = median_time(torch_fb, repeats)


def bench_image_training(repeats: int) -> dict | None:
    albert = ROOT.parent / "shared" / "data" / "image" / "albert.exr"
    if not albert.is_file():
        return None
    from ngp_sdk import Session

    s = Session.image(albert)
    s.warmup()
    for _ in range(3):
        s.step()
    t = median_time(s.step, max(repeats, 15), warmup=0)
    b = s.task.samples_per_step
    return {"image": "albert.exr 1024x1024", "config": "default (L16 F2 T2^19 b1.5, MLP 64x2, batch 2^16)",
            "step_s": t, "samples_per_s": b / t}


def machine_limits(repeats: int) -> dict:
    rng = np.random.default_rng(2)
    a = rng.standard_normal((1 << 18, 64), dtype=np.float32)
    w = rng.standard_normal((64, 64), dtype=np.float32)
    c = np.empty((1 << 18, 64), np.float32)
    t = median_time(lambda: np.matmul(a, w, out=c), repeats)
    table = rng.standard_normal((1 << 20, 2), dtype=np.float32)
    idx = rng.integers(0, 1 << 20, size=1 << 22)
    tg = median_time(lambda: table[idx], repeats)
    return {"sgemm_gflops_2^18x64x64": 2 * (1 << 18) * 64 * 64 / t / 1e9, "random_gather_M_per_s": (1 << 22) / tg / 1e6,
            "cpu_count": os.cpu_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--points", type=int, default=1 << 18)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--torch-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_only:
        import torch

        enc, enc_ctx = {}, _encoding_inputs(args.points)
        mlp, mlp_ctx = {}, _mlp_inputs(args.points)
        bench_encoding_torch(enc, enc_ctx, args.repeats, torch)
        bench_mlp_torch(mlp, mlp_ctx, args.repeats, torch)
        print(json.dumps({"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                          "hash_encoding": enc, "mlp": mlp}))
        return
    machine = {**machine_info(), "warp": wp.__version__, **machine_limits(args.repeats)}
    enc, _ = bench_encoding(args.points, args.repeats)
    mlp, _ = bench_mlp(args.points, args.repeats)
    image = bench_image_training(args.repeats)
    if not args.no_torch:
        ref = run_torch_reference(__file__, ["--repeats", str(args.repeats), "--points", str(args.points)])
        if ref is not None:
            machine.update(torch=ref["torch"], torch_threads=ref["torch_threads"])
            enc.update(ref["hash_encoding"])
            mlp.update(ref["mlp"])
            enc["speedup_fwd"] = enc["torch_fwd_s"] / enc["warp_fwd_s"]
            enc["speedup_fwd_bwd"] = enc["torch_fwd_bwd_s"] / enc["warp_fwd_bwd_s"]
            mlp["speedup_fwd_bwd"] = mlp["torch_fwd_bwd_s"] / mlp["warp_fwd_bwd_s"]
    out = {"machine": machine, "hash_encoding": enc, "mlp": mlp, "image_training": image}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
