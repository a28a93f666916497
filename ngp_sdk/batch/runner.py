"""The Ray driver of ``ngp batch``: schedule jobs as Ray tasks, retry dead workers, assemble split renders.

Every job becomes Ray tasks running :mod:`ngp_sdk.batch.worker` functions: a training or command job one task,
a render job one task per frame range. At most ``workers`` tasks are in flight, each reserving
``cpus_per_worker`` CPUs (and running its Warp CPU launches on that many threads). A job runs when the jobs it
depends on have succeeded (it is skipped when one failed). A task whose worker dies (process killed, node lost)
is submitted again up to the job's ``retries``, and the summary lists each retry; a job error (bad input) is
final and fails that job alone. The frames of a split render come back through Ray's object store and are
written in order by the driver, exactly as ``ngp render`` writes them. Ctrl-C cancels what is running, keeps
what has finished and still writes the summary.

Ray is imported only here, only when a batch runs (``pip install 'ngp-sdk[cluster]'``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ngp_sdk.batch.jobs import Job, default_chunk_frames, frame_ranges, load_jobs, parse_jobs
from ngp_sdk.core.errors import ConfigError
from ngp_sdk.core.files import write_text_atomic

__all__ = ["run", "BatchInterrupted"]


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the batch; ``summary`` holds what had finished (the summary file is written too)."""

    def __init__(self, summary: dict[str, Any]):
        super().__init__("batch interrupted")
        self.summary = summary


@dataclass
class _Unit:
    """One Ray task of a job: the whole job, or frames ``[start, stop)`` of a render."""

    job: _JobState
    index: int
    start: int = 0
    stop: int = 0
    attempt: int = 0
    result: dict[str, Any] | None = None


@dataclass
class _JobState:
    job: Job
    status: str = "pending"  # pending -> running -> ok | failed | skipped | cancelled
    units: list[_Unit] = field(default_factory=list)
    retries: list[dict[str, Any]] = field(default_factory=list)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    hosts: set[str] = field(default_factory=set)
    bytes_returned: int = 0

    @property
    def done(self) -> bool:
        return self.status in ("ok", "failed", "skipped", "cancelled")


def run(jobs: str | os.PathLike | Sequence[Any] | dict[str, Any], *, address: str | None = None,
        workers: int | None = None, cpus_per_worker: int = 1, log_dir: str | os.PathLike | None = None,
        summary_path: str | os.PathLike | None = None, progress: bool = True) -> dict[str, Any]:
    """Run a batch of training, render and command jobs on Ray; returns the summary.

    Args:
        jobs: a job file (YAML/JSON), a parsed job document (list or ``{"jobs": [...]}``; relative paths are
            relative to the current folder) or a list of :class:`~ngp_sdk.batch.jobs.Job`.
        address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); None starts a local
            Ray on this machine with ``workers * cpus_per_worker`` CPUs (or uses the one this process already
            initialised).
        workers: most tasks in flight (default: the cluster's CPUs // ``cpus_per_worker``).
        cpus_per_worker: CPUs each task reserves, and its Warp CPU thread count.
        log_dir: per-job logs ``<name>.log`` (default: ``batch-logs`` beside the job file, or in the current
            folder).
        summary_path: where to write the JSON summary (default ``<log_dir>/summary.json``).
        progress: show a progress bar over all tasks.

    Returns:
        ``{"jobs": [{name, kind, status, attempts, retries, seconds, outputs, error, log, result, psnr/iou}],
        "ok", "failed", "skipped", "cancelled", "seconds", "workers", "address", "summary"}``.

    Raises:
        JobFileError: the job file cannot be used.
        BatchInterrupted: Ctrl-C (the summary of what finished is attached and written).
        ImportError: Ray is not installed.
    """
    if cpus_per_worker < 1 or (workers is not None and workers < 1):
        raise ConfigError(f"workers ({workers}) and cpus_per_worker ({cpus_per_worker}) must be >= 1")
    base = Path(".")
    if isinstance(jobs, (str, os.PathLike)):
        base = Path(jobs).parent
        job_list = load_jobs(jobs)
    elif isinstance(jobs, Sequence) and jobs and all(isinstance(j, Job) for j in jobs):
        job_list = list(jobs)
    else:
        job_list = parse_jobs(jobs)
    log_dir = Path(os.path.abspath(log_dir if log_dir is not None else base / "batch-logs"))
    summary_file = Path(os.path.abspath(summary_path)) if summary_path is not None else log_dir / "summary.json"

    ray = _import_ray()
    started_here = False
    if not ray.is_initialized():
        if address is None:
            ray.init(num_cpus=(workers or os.cpu_count() or 1) * cpus_per_worker, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        started_here = True
    try:
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_worker)
        batch = _Batch(ray, job_list, workers=workers, cpus=cpus_per_worker, log_dir=log_dir, progress=progress)
        try:
            batch.run()
        except KeyboardInterrupt:
            batch.cancel()
            summary = batch.summary(address, summary_file)
            _write_json(summary_file, summary)
            if started_here:  # Ctrl-C: do not let a slow shutdown of the local Ray hold the terminal
                started_here = False
                _shutdown_within(ray, _INTERRUPT_SHUTDOWN_S)
            raise BatchInterrupted(summary) from None
        summary = batch.summary(address, summary_file)
        _write_json(summary_file, summary)
        return summary
    finally:
        if started_here:
            ray.shutdown()


#: After Ctrl-C, seconds the local Ray gets to shut down before the driver exits anyway (its processes watch the
#: driver and end with it).
_INTERRUPT_SHUTDOWN_S = 20.0


def _shutdown_within(ray: Any, seconds: float) -> bool:
    """``ray.shutdown()`` on a daemon thread, waited for at most ``seconds``; False when it did not finish."""
    t = threading.Thread(target=ray.shutdown, name="ray-shutdown", daemon=True)
    t.start()
    t.join(seconds)
    return not t.is_alive()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError("ngp batch runs on Ray: pip install 'ngp-sdk[cluster]'") from None
    return ray


class _Batch:
    """The scheduler of one batch run (driver side)."""

    def __init__(self, ray: Any, jobs: list[Job], *, workers: int, cpus: int, log_dir: Path, progress: bool):
        from ngp_sdk.batch import worker

        self.ray = ray
        self.workers = workers
        self.cpus = cpus
        self.log_dir = log_dir
        self.states = {j.name: _JobState(j) for j in jobs}
        opts = {"num_cpus": cpus, "max_retries": 0}  # retries are ours, so the summary can tell them
        self._run_command = ray.remote(worker.run_command).options(**opts)
        self._render_range = ray.remote(worker.render_range).options(**opts)
        self.in_flight: dict[Any, _Unit] = {}
        self.t0 = time.perf_counter()
        for st in self.states.values():
            if st.job.error is not None:
                self._finish(st, "failed", st.job.error)
            elif st.job.kind == "render":
                chunk = st.job.chunk_frames or default_chunk_frames(st.job.n_frames, workers)
                st.units = [_Unit(st, i, a, b) for i, (a, b) in enumerate(frame_ranges(st.job.n_frames, chunk))]
            else:
                st.units = [_Unit(st, 0)]
        self.queue: list[_Unit] = [u for st in self.states.values() for u in st.units]
        total = len(self.queue)
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="task", desc="ngp batch", disable=not progress, dynamic_ncols=True)

    # -- scheduling ----------------------------------------------------------------------------------------
    def run(self) -> None:
        while True:
            self._skip_blocked()
            self._submit_ready()
            if not self.in_flight:
                break
            ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=0.5)
            for ref in ready:
                self._collect(ref)
        self.bar.close()

    def _skip_blocked(self) -> None:
        changed = True
        while changed:
            changed = False
            for st in self.states.values():
                if st.status != "pending":
                    continue
                bad = [a for a in st.job.after if self.states[a].status in ("failed", "skipped", "cancelled")]
                if bad:
                    self._finish(st, "skipped", f"job {st.job.name!r} needs {bad[0]!r}, which "
                                                f"{self.states[bad[0]].status}")
                    self.queue = [u for u in self.queue if u.job is not st]
                    self.bar.update(len(st.units))
                    changed = True

    def _submit_ready(self) -> None:
        for unit in list(self.queue):
            if len(self.in_flight) >= self.workers:
                return
            st = unit.job
            if st.done or any(self.states[a].status != "ok" for a in st.job.after):
                continue
            self.queue.remove(unit)
            self._submit(unit)

    def _submit(self, unit: _Unit) -> None:
        st, job = unit.job, unit.job.job
        unit.attempt += 1
        if st.started is None:
            st.started = time.perf_counter()
        st.status = "running"
        kw = {"name": job.name, "attempt": unit.attempt, "log_path": str(self._log_path(job)), "threads": self.cpus,
              "cwd": job.cwd}
        if job.kind == "render":
            ref = self._render_range.remote(job.argv, unit.start, unit.stop, **kw)
        else:
            ref = self._run_command.remote(job.argv, **kw)
        self.in_flight[ref] = unit

    def _collect(self, ref: Any) -> None:
        unit = self.in_flight.pop(ref)
        st = unit.job
        ray = self.ray
        try:
            out = ray.get(ref)
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError,
                ray.exceptions.OwnerDiedError, ray.exceptions.LocalRayletDiedError) as e:
            reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else 'worker died'}"
            if unit.attempt <= st.job.retries:
                st.retries.append({"task": unit.index, "attempt": unit.attempt, "reason": reason})
                self._append_log(st, f"== attempt {unit.attempt} of task {unit.index} lost its worker ({reason}); "
                                     f"retrying")
                self.queue.insert(0, unit)
                return
            self._fail(st, f"worker died {unit.attempt} time(s), the last: {reason}")
            return
        except ray.exceptions.RayError as e:  # anything else Ray reports: fail the job, keep the batch going
            self._fail(st, f"{type(e).__name__}: {e}")
            return
        unit.result = out
        st.hosts.add(out.get("host", "?"))
        if out["status"] != "ok":
            self._fail(st, out.get("error") or out["status"])
            return
        self.bar.update(1)
        if all(u.result is not None and u.result["status"] == "ok" for u in st.units):
            self._complete(st)

    def _complete(self, st: _JobState) -> None:
        job = st.job
        if job.kind != "render":
            st.result = st.units[0].result.get("result")
            self._finish(st, "ok")
            return
        from ngp_sdk.core.cli import write_frames
        from ngp_sdk.core.errors import NgpError

        frames = [f for u in st.units for f in u.result["frames"]]
        st.bytes_returned = sum(int(f.nbytes) for f in frames)
        try:
            written = write_frames(job.outputs[0], frames, fps=job.fps)
        except (NgpError, OSError) as e:
            self._fail(st, str(e))
            return
        h, w = frames[0].shape[:2]
        st.result = {"frames": len(frames), "width": w, "height": h, "written": written,
                     "tasks": len(st.units)}
        for u in st.units:  # the frames are written: let them go
            u.result["frames"] = []
        self._finish(st, "ok")

    def _fail(self, st: _JobState, error: str) -> None:
        # the job's other tasks: cancel those in flight, drop those queued
        for ref, u in list(self.in_flight.items()):
            if u.job is st:
                self.ray.cancel(ref, force=True)
                self.in_flight.pop(ref)
        self.queue = [u for u in self.queue if u.job is not st]
        self.bar.update(sum(1 for u in st.units if u.result is None or u.result["status"] != "ok"))
        self._finish(st, "failed", f"job {st.job.name!r}: {error}" if not error.startswith("job ") else error)

    def _finish(self, st: _JobState, status: str, error: str | None = None) -> None:
        st.status = status
        st.error = error
        st.finished = time.perf_counter()
        if error is not None:
            self._append_log(st, f"== {status}: {error}")
        if hasattr(self, "bar"):
            self.bar.set_postfix_str(self._counts_text(), refresh=False)

    def cancel(self) -> None:
        """Ctrl-C: cancel the tasks in flight; their jobs and the queued ones end as ``cancelled``."""
        for ref in list(self.in_flight):
            self.ray.cancel(ref, force=True)
        self.in_flight.clear()
        self.queue.clear()
        for st in self.states.values():
            if not st.done:
                self._finish(st, "cancelled", "interrupted (Ctrl-C) before it finished")
        self.bar.close()

    # -- reporting -----------------------------------------------------------------------------------------
    def _log_path(self, job: Job) -> Path:
        return self.log_dir / f"{job.name}.log"

    def _append_log(self, st: _JobState, line: str) -> None:
        path = self._log_path(st.job)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def _counts_text(self) -> str:
        c = self._counts()
        return " ".join(f"{k}={v}" for k, v in c.items() if v)

    def _counts(self) -> dict[str, int]:
        out = {"ok": 0, "failed": 0, "skipped": 0, "cancelled": 0}
        for st in self.states.values():
            if st.status in out:
                out[st.status] += 1
        out["retried"] = sum(len(st.retries) for st in self.states.values())
        return out

    def summary(self, address: str | None, summary_file: Path) -> dict[str, Any]:
        jobs = []
        for st in self.states.values():
            job = st.job
            entry: dict[str, Any] = {
                "name": job.name, "kind": job.kind, "status": st.status,
                "attempts": max((u.attempt for u in st.units), default=0),
                "retries": st.retries,
                "seconds": round(st.finished - st.started, 3) if st.started and st.finished else 0.0,
                "outputs": [o for o in job.outputs if st.status == "ok" and Path(o).exists()],
                "error": st.error, "log": str(self._log_path(job)),
                "hosts": sorted(st.hosts), "argv": job.argv, "result": st.result,
            }
            if job.kind == "render":
                entry["tasks"] = len(st.units)
                entry["bytes_returned"] = st.bytes_returned
            for metric in ("psnr", "ssim", "iou"):
                if isinstance(st.result, dict) and isinstance(st.result.get(metric), (int, float)):
                    entry[metric] = st.result[metric]
            jobs.append(entry)
        return {"jobs": jobs, **self._counts(), "seconds": round(time.perf_counter() - self.t0, 3),
                "workers": self.workers, "cpus_per_worker": self.cpus, "address": address or "local",
                "summary": str(summary_file)}


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` atomically (temp file in the same folder, then rename)."""
    write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=False) + "\n")
