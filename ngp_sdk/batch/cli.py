"""``ngp batch JOBS``: run a job file on Ray (a command plugin; Ray is imported only when it runs)."""

from __future__ import annotations

import argparse
import sys

from ngp_sdk.core.cli import EXIT_INTERRUPTED, emit, positive_int

__all__ = ["register_cli"]


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``ngp batch`` to the ``ngp`` sub-command parsers."""
    b = sub.add_parser("batch", help="run a YAML/JSON file of training, render and command jobs on Ray (a local "
                                     "Ray, or a cluster with --ray-address)")
    b.add_argument("jobs", help="job file (.yaml/.yml/.json): see the README's 'Batch jobs on Ray'")
    b.add_argument("--ray-address", default=None,
                   help="join this Ray cluster (auto, host:6379, ray://host:10001); default: a local Ray")
    b.add_argument("--workers", type=positive_int, default=None,
                   help="most tasks at once (default: the cluster's CPUs // --cpus-per-worker)")
    b.add_argument("--cpus-per-worker", type=positive_int, default=1,
                   help="CPUs each task reserves and its Warp CPU threads (default 1)")
    b.add_argument("--log-dir", default=None, help="per-job logs (default: batch-logs beside the job file)")
    b.add_argument("--summary", default=None, help="JSON summary path (default: LOG_DIR/summary.json)")
    b.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    b.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    b.set_defaults(handler=_cmd_batch)


def _cmd_batch(args: argparse.Namespace) -> int:
    from ngp_sdk.batch.runner import BatchInterrupted, run

    try:
        summary = run(args.jobs, address=args.ray_address, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                      log_dir=args.log_dir, summary_path=args.summary, progress=not args.no_progress)
    except BatchInterrupted as e:
        _report(args, e.summary)
        print(f"interrupted: finished outputs kept; summary in {e.summary['summary']}", file=sys.stderr)
        return EXIT_INTERRUPTED
    _report(args, summary)
    return 0 if summary["failed"] == 0 and summary["skipped"] == 0 else 1


def _report(args: argparse.Namespace, summary: dict) -> None:
    if args.json:
        emit(args, summary)
        return
    for j in summary["jobs"]:
        metric = next((f" {m}={j[m]:.4g}" for m in ("psnr", "iou") if m in j), "")
        retried = f" (retried {len(j['retries'])}x: {j['retries'][-1]['reason']})" if j["retries"] else ""
        line = f"{j['status']:>9}  {j['name']}  {j['seconds']:.1f} s{metric}{retried}"
        if j["error"]:
            line += f"\n           {j['error']}"
        print(line)
    counts = ", ".join(f"{summary[k]} {k}" for k in ("ok", "failed", "skipped", "cancelled") if summary[k])
    print(f"{len(summary['jobs'])} job(s): {counts} in {summary['seconds']:.1f} s on {summary['workers']} worker(s); "
          f"summary: {summary['summary']}")
