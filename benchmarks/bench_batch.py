"""Throughput of ``ngp batch`` on a local Ray: N small training jobs on 1 worker vs 2, per-job overhead, data moved.

    python benchmarks/bench_batch.py --jobs 8 --steps 150 --reps 2 --json-out /tmp/batch.json

Makes N SDF jobs on meshes of its own (spheres and boxes of different sizes, the same small config and step
count, so every job does the same work) plus one split render, and runs them with ``ngp_sdk.batch.run`` on one
local Ray (``num_cpus=2``): first a warm-up (every worker process has imported Warp and loaded the kernels, as in
a long-lived cluster), then ``--reps`` alternating timed runs with 1 worker and with 2 workers (1 CPU and 1 Warp
thread each). The reference in the same run is 1 worker. A last configuration, on a fresh Ray, gives the one
worker both cores (2 Warp threads): what the second core buys inside a job instead of across jobs.

Reported (JSON): jobs/min and the ratio 2 workers / 1 worker (medians over reps); per job, the seconds the
training itself took (the command's ``seconds``) against the job's seconds in the batch summary, the difference
being the per-job overhead (Ray scheduling, session set-up, mesh load and sampling set-up, snapshot write,
IoU); a no-op Ray task round trip (median of 50); and the bytes a job moves: mesh and config in, snapshot out,
result object back to the driver, and for the split render the frame bytes per frame returned through the object
store.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SDF_CONFIG = {"encoding": {"n_levels": 8, "log2_hashmap_size": 15, "per_level_scale": 1.5},
              "network": {"n_neurons": 32, "n_hidden_layers": 1},
              "optimizer": {"otype": "Adam", "learning_rate": 1e-2}, "training": {"batch_size": 8192}}


def make_inputs(d: Path, n_jobs: int, steps: int) -> dict:
    import trimesh

    d.mkdir(parents=True, exist_ok=True)
    (d / "sdf.json").write_text(json.dumps(SDF_CONFIG))
    jobs = []
    for i in range(n_jobs):
        mesh = (trimesh.creation.icosphere(subdivisions=3, radius=0.5 + 0.05 * i) if i % 2 == 0 else
                trimesh.creation.box(extents=(0.8 + 0.05 * i, 0.7, 0.9)))
        mesh.export(d / f"mesh{i}.obj")
        jobs.append({"name": f"job{i}", "kind": "train", "primitive": "sdf", "data": f"mesh{i}.obj", "steps": steps,
                     "config": "sdf.json", "out": f"out/job{i}.ingp", "options": {"eval_points": 50000}})
    (d / "path.json").write_text(json.dumps({"path": [
        {"R": [0, 0, 0, 1], "T": [0.5, 0.5, -1.2], "fov": 45},
        {"R": [0, 0.5, 0, 0.866], "T": [-0.3, 0.55, -0.8], "fov": 40}]}))
    return {"jobs": jobs}


def render_job(frames: int) -> dict:
    return {"name": "path", "kind": "render", "snapshot": "out/job0.ingp", "camera_path": "path.json",
            "frames": frames, "width": 128, "height": 128, "out": "out/path_frames"}


def timed(doc: dict, d: Path, workers: int, cpus: int, tag: str) -> dict:
    from ngp_sdk.batch import run

    t0 = time.perf_counter()
    s = run(doc, workers=workers, cpus_per_worker=cpus, log_dir=d / f"logs-{tag}", progress=False)
    wall = time.perf_counter() - t0
    assert s["failed"] == 0 and s["skipped"] == 0, s
    return {"wall": wall, "summary": s}


def noop_round_trip_ms(ray) -> float:
    @ray.remote(num_cpus=1)
    def noop(x):
        return x

    ray.get(noop.remote(0))
    times = []
    for i in range(50):
        t0 = time.perf_counter()
        ray.get(noop.remote(i))
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--render-frames", type=int, default=8)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    d = Path(args.workdir or tempfile.mkdtemp(prefix="bench_batch_"))
    doc = make_inputs(d, args.jobs, args.steps)
    os.chdir(d)
    out: dict = {"jobs": args.jobs, "steps": args.steps, "reps": args.reps, "cpus": os.cpu_count()}

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    out["ray_init_s"] = round(time.perf_counter() - t0, 2)
    out["noop_task_round_trip_ms"] = round(noop_round_trip_ms(ray), 2)
    warm = {"jobs": doc["jobs"][:2]}
    t0 = time.perf_counter()
    timed(warm, d, 2, 1, "warm")
    out["warmup_s"] = round(time.perf_counter() - t0, 2)

    walls: dict[str, list[float]] = {"1": [], "2": []}
    last: dict[str, dict] = {}
    for rep in range(args.reps):
        for w in ("1", "2"):
            r = timed(doc, d, int(w), 1, f"w{w}-r{rep}")
            walls[w].append(r["wall"])
            last[w] = r["summary"]
            print(f"rep {rep} workers {w}: {r['wall']:.1f} s", file=sys.stderr)
    for w in ("1", "2"):
        out[f"workers{w}_wall_s"] = [round(x, 2) for x in walls[w]]
        out[f"workers{w}_jobs_per_min"] = round(args.jobs / statistics.median(walls[w]) * 60, 2)
    out["throughput_ratio_2_vs_1"] = round(statistics.median(walls["1"]) / statistics.median(walls["2"]), 3)

    # per-job overhead (1-worker run: no competition for the cores)
    jobs1 = last["1"]["jobs"]
    train_s = [j["result"]["seconds"] for j in jobs1]
    job_s = [j["seconds"] for j in jobs1]
    out["per_job_train_s_median"] = round(statistics.median(train_s), 3)
    out["per_job_batch_s_median"] = round(statistics.median(job_s), 3)
    out["per_job_overhead_s_median"] = round(statistics.median(b - t for b, t in zip(job_s, train_s, strict=True)), 3)
    out["per_job_iou_median"] = round(statistics.median(j["iou"] for j in jobs1), 4)

    # data movement per job
    mesh_bytes = [Path(f"mesh{i}.obj").stat().st_size for i in range(args.jobs)]
    snap_bytes = [Path(f"out/job{i}.ingp").stat().st_size for i in range(args.jobs)]
    result_bytes = [len(pickle.dumps({k: v for k, v in j["result"].items()})) for j in jobs1]
    out["bytes_in_per_job_median"] = int(statistics.median(mesh_bytes)) + len(json.dumps(SDF_CONFIG))
    out["bytes_out_snapshot_median"] = int(statistics.median(snap_bytes))
    out["bytes_result_object_median"] = int(statistics.median(result_bytes))

    # a split render: frame bytes through the object store, and 1 vs 2 workers
    rj = {"jobs": [render_job(args.render_frames)]}
    r1 = timed(rj, d, 1, 1, "render1")
    r2 = timed(rj, d, 2, 1, "render2")
    job = r2["summary"]["jobs"][0]
    out["render_frames"] = args.render_frames
    out["render_bytes_per_frame"] = job["bytes_returned"] // args.render_frames
    out["render_1_worker_s"] = round(r1["wall"], 2)
    out["render_2_workers_s"] = round(r2["wall"], 2)
    ray.shutdown()

    # the same two cores given to one worker instead (2 Warp threads per job), on a fresh Ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    timed(warm, d, 1, 2, "warm2")
    two = [timed(doc, d, 1, 2, f"w1c2-r{rep}")["wall"] for rep in range(args.reps)]
    ray.shutdown()
    out["workers1_cpus2_wall_s"] = [round(x, 2) for x in two]
    out["throughput_ratio_2_workers_vs_1_worker_2_threads"] = round(statistics.median(two) /
                                                                     statistics.median(walls["2"]), 3)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")


if __name__ == "__main__":
    main()
