"""What a batch worker runs: one job's ``ngp`` command, or one frame range of a render, with a log of its own.

Plain functions (no Ray here): :mod:`ngp_sdk.batch.runner` wraps them as Ray tasks, and they can be called
directly. Each returns a dict; a job error (bad data, corrupt snapshot, unknown flag) comes back as
``status: "failed"`` with the command's one-line ``error: ...`` message instead of being raised, so only a dead
worker (killed process, lost node) surfaces as a Ray error, and only that is retried.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["run_command", "render_range"]


class _Tee(io.TextIOBase):
    """Write to several text streams (the job's log and the captured output)."""

    def __init__(self, *streams: TextIO):
        self._streams = streams

    def write(self, s: str) -> int:
        for st in self._streams:
            st.write(s)
            st.flush()
        return len(s)


def _set_threads(threads: int | None) -> None:
    if threads:
        os.environ["NGP_NUM_THREADS"] = str(threads)


@contextlib.contextmanager
def _in_folder(cwd: str | None):
    """Run in ``cwd`` (the job file's folder), back to the worker's own folder afterwards."""
    if cwd is None:
        yield
        return
    if not os.path.isdir(cwd):
        raise FileNotFoundError(f"the job's folder {cwd} does not exist on {socket.gethostname()} (jobs on a "
                                f"cluster need their files on storage every node sees)")
    before = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _job_log(log_path: str | None, header: str):
    """Append ``header`` and then everything the job prints to ``log_path``; yields the captured text buffer."""
    captured = io.StringIO()
    log: TextIO
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    else:
        log = io.StringIO()
    try:
        log.write(header + "\n")
        log.flush()
        tee = _Tee(log, captured)
        with contextlib.redirect_stdout(tee), contextlib.redirect_stderr(tee):
            yield captured
    finally:
        log.close()


def _header(name: str, attempt: int, what: str) -> str:
    return (f"== {name} attempt {attempt} pid {os.getpid()} host {socket.gethostname()} "
            f"{time.strftime('%Y-%m-%dT%H:%M:%S')}: {what}")


def _error_line(text: str) -> str | None:
    lines = [ln[len("error: "):] for ln in text.splitlines() if ln.startswith("error: ")]
    return lines[-1] if lines else None


def run_command(argv: Sequence[str], *, name: str, attempt: int = 1, log_path: str | None = None,
                threads: int | None = None, cwd: str | None = None) -> dict[str, Any]:
    """Run ``ngp ARGV`` in this process (in folder ``cwd``), its output appended to ``log_path``.

    Returns:
        ``status`` (``"ok"``/``"failed"``/``"interrupted"``), ``exit_status``, ``result`` (the command's JSON
        line, if it printed one), ``error`` (its ``error:`` line), ``seconds``, ``pid``, ``host``, ``log`` (the
        captured text).
    """
    _set_threads(threads)
    from ngp_sdk.cli import main

    t0 = time.perf_counter()
    status = 1
    with _job_log(log_path, _header(name, attempt, "ngp " + " ".join(argv))) as captured:
        try:
            with _in_folder(cwd):
                status = main(list(argv))
        except FileNotFoundError as e:
            print(f"error: {e}")
            status = 2
        except SystemExit as e:  # argparse's usage errors
            status = e.code if isinstance(e.code, int) else 2
        except Exception:  # a bug, not bad input: keep the traceback in the log and the summary
            traceback.print_exc()
            status = 1
    text = captured.getvalue()
    result = None
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                result = json.loads(line)
                break
    error = _error_line(text)
    if status != 0 and error is None:
        error = (text.strip().splitlines() or [f"exit status {status}"])[-1]
    return {"status": "ok" if status == 0 else ("interrupted" if status == 130 else "failed"),
            "exit_status": status, "result": result, "error": error if status != 0 else None,
            "seconds": time.perf_counter() - t0, "pid": os.getpid(), "host": socket.gethostname(), "log": text}


def render_range(argv: Sequence[str], start: int, stop: int, *, name: str, attempt: int = 1,
                 log_path: str | None = None, threads: int | None = None, cwd: str | None = None) -> dict[str, Any]:
    """Render frames ``start..stop-1`` of ``ngp render ARGV`` (the snapshot read here, nothing written).

    Returns:
        ``status``, ``frames`` (float32 linear RGB arrays in order; empty on failure), ``error``, ``seconds``,
        ``pid``, ``host``, ``log``.
    """
    _set_threads(threads)
    from ngp_sdk.cli import build_parser, render_snapshot_frames
    from ngp_sdk.core.errors import NgpError

    t0 = time.perf_counter()
    frames: list = []
    error = None
    with _job_log(log_path, _header(name, attempt, f"frames {start}..{stop - 1} of ngp {' '.join(argv)}")) as cap:
        try:
            with _in_folder(cwd):
                frames = render_snapshot_frames(build_parser().parse_args(list(argv)), indices=range(start, stop))
            print(f"rendered {len(frames)} frame(s) in {time.perf_counter() - t0:.2f} s")
        except (NgpError, OSError, ValueError, RuntimeError, ImportError) as e:
            error = str(e)
            print(f"error: {e}")
    return {"status": "ok" if error is None else "failed", "frames": frames, "error": error,
            "seconds": time.perf_counter() - t0, "pid": os.getpid(), "host": socket.gethostname(),
            "log": cap.getvalue()}
