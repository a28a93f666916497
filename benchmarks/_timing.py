"""Helpers shared by the benchmark scripts: timing, machine description, the PyTorch reference process."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["machine_info", "median_time", "run_torch_reference"]


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def machine_info() -> dict:
    """Platform, CPU model, core count and Python version."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "python": platform.python_version()}


def run_torch_reference(script: str, args: list[str]) -> dict | None:
    """Run ``script --torch-only *args`` in its own process and return the JSON of its last stdout line.

    PyTorch runs in a separate process because its OpenMP workers spin after each op and would steal the cores
    from OpenBLAS and Warp's threads (and vice versa) inside one process. Returns None (after printing why on
    stderr) when the reference fails, e.g. because torch is not installed.
    """
    r = subprocess.run([sys.executable, script, "--torch-only", *args], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"torch reference failed or is not installed (pip install torch==2.13.0):\n{r.stderr[-3000:]}",
              file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def train_for(step: Callable[[], object], seconds: float, desc: str) -> int:
    """Call ``step`` until ``seconds`` of wall time have passed, with a progress bar on stderr; Ctrl-C ends it
    early (said on stderr). Returns the number of calls."""
    from ngp_sdk.core.progress import progress_bar

    n, t0, last = 0, time.perf_counter(), 0.0
    bar = progress_bar(seconds=seconds, desc=desc)
    try:
        while (now := time.perf_counter() - t0) < seconds:
            step()
            n += 1
            if now - last >= 1.0:
                bar.update(now - last)
                last = now
    except KeyboardInterrupt:
        print(f"{desc}: interrupted after {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    finally:
        bar.close()
    return n
