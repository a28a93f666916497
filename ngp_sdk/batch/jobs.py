"""Job files of ``ngp batch``: what to train and render, read from YAML or JSON and checked before anything runs.

A job file is a mapping with a ``jobs`` list (and optional ``defaults`` merged into every job) or the list itself::

    defaults: {retries: 2}
    jobs:
      - name: bunny                      # unique; names the log file and the summary entry
        kind: train                      # ngp <primitive> train
        primitive: sdf
        data: meshes/bunny.obj
        steps: 2000                      # or seconds: 60
        config: configs/sdf_small.json   # optional
        options: {eval_points: 100000}   # any flag of `ngp sdf train`, without the dashes
        out: out/bunny.ingp
      - name: bunny-orbit
        kind: render                     # ngp render, split into frame ranges across workers
        snapshot: out/bunny.ingp         # the training job above: runs after it
        camera_path: paths/orbit.json    # or orbit: 120, or view: 3
        frames: 240
        width: 640
        out: out/bunny.mp4               # a video, or a folder of PNG frames
        chunk_frames: 30                 # frames per task (default: the frames shared evenly by the workers)
      - name: cornell
        kind: command                    # any other ngp command, run as one task
        args: [nrc, render, --frames, "8", --out, out/cornell.png]
        outputs: [out/cornell.png]

Relative paths are relative to the job file's folder (on a cluster they must name shared storage). Every job
becomes the argument list of the ``ngp`` command that does it, parsed here by ``ngp``'s own parser, so a job is
exactly as valid as the command line it stands for. A malformed job is reported with that job's name and fails
alone; a malformed file (not YAML/JSON, no ``jobs`` list, duplicate names) raises :class:`JobFileError`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ngp_sdk.core.errors import ConfigError

__all__ = ["Job", "JobFileError", "load_jobs", "parse_jobs", "frame_ranges", "default_chunk_frames"]

KINDS = ("train", "render", "command")
_COMMON = {"name", "kind", "retries", "after", "device", "options"}
_KEYS = {
    "train": _COMMON | {"primitive", "data", "steps", "seconds", "config", "out"},
    "render": _COMMON | {"snapshot", "camera_path", "orbit", "view", "frames", "fps", "width", "height", "depth",
                         "out", "chunk_frames"},
    "command": _COMMON | {"args", "outputs"},
}
#: options given as top-level keys of a render job (each becomes ``--key value``)
_RENDER_FLAGS = ("camera_path", "orbit", "view", "frames", "fps", "width", "height", "depth")
_PATH_KEYS = {"data", "config", "out", "snapshot", "camera_path"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
DEFAULT_RETRIES = 2


class JobFileError(ConfigError):
    """The job file cannot be used at all: unreadable, not YAML/JSON, no job list, or duplicate job names."""


@dataclass
class Job:
    """One job of a batch: the ``ngp`` command line that does it, and how to schedule it.

    Attributes:
        name: unique name (log file ``<name>.log``, summary entry).
        kind: ``"train"``, ``"render"`` or ``"command"``.
        argv: the ``ngp`` arguments of the job (global ``--device`` first).
        outputs: files the job writes (snapshot, video, frame folder).
        after: names of the jobs that must finish first (explicit ``after`` plus a training job whose ``out`` is
            this render job's ``snapshot``).
        retries: how often a task of this job is run again after its worker died (not after a job error).
        n_frames: frames of a render job (0 otherwise).
        fps: frame rate of a render job's video (its ``--fps``).
        chunk_frames: frames per task of a render job (None: chosen from the number of workers).
        error: why the job is malformed (it then fails alone without running); None when valid.
        snapshot: the snapshot a render job reads.
        cwd: the folder the job runs in (the job file's; relative ``args`` of a command job are relative to it).
    """

    name: str
    kind: str
    argv: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    retries: int = DEFAULT_RETRIES
    n_frames: int = 0
    fps: float = 30.0
    chunk_frames: int | None = None
    error: str | None = None
    snapshot: str | None = None
    cwd: str = "."


def load_jobs(path: str | Path) -> list[Job]:
    """Read a job file (``.yaml``/``.yml`` or ``.json``); relative paths in it are relative to its folder.

    Raises:
        JobFileError: the file is missing, unreadable, not a mapping with a ``jobs`` list, or names repeat.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise JobFileError(f"cannot read job file {p}: {e}") from None
    if p.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise JobFileError(f"{p}: not valid JSON: {e}") from None
    else:
        try:
            import yaml
        except ImportError:
            raise JobFileError(f"{p}: YAML job files need PyYAML (pip install 'ngp-sdk[cluster]'), or use "
                               f"JSON") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise JobFileError(f"{p}: not valid YAML: {e}") from None
    return parse_jobs(doc, base=p.parent)


def parse_jobs(doc: Any, *, base: str | Path = ".") -> list[Job]:
    """Jobs from a parsed job file: a list of job mappings, or ``{"jobs": [...], "defaults": {...}}``.

    Args:
        doc: the parsed document.
        base: folder that relative paths are relative to.

    Raises:
        JobFileError: no job list, a job that is not a mapping or has no valid unique name.
    """
    defaults: Mapping[str, Any] = {}
    if isinstance(doc, Mapping):
        unknown = set(doc) - {"jobs", "defaults"}
        if unknown:
            raise JobFileError(f"unknown top-level key(s) {sorted(unknown)} (expected 'jobs' and 'defaults')")
        defaults = doc.get("defaults") or {}
        if not isinstance(defaults, Mapping):
            raise JobFileError("'defaults' must be a mapping of job keys")
        doc = doc.get("jobs")
    if not isinstance(doc, list) or not doc:
        raise JobFileError("a job file needs a non-empty list of jobs (a list, or a mapping with 'jobs:')")
    names: set[str] = set()
    jobs = []
    for i, raw in enumerate(doc):
        if not isinstance(raw, Mapping):
            raise JobFileError(f"job {i}: expected a mapping, got {type(raw).__name__}")
        name = raw.get("name", f"job{i}")
        if not isinstance(name, str) or not _NAME.match(name):
            raise JobFileError(f"job {i}: name {name!r} must be 1-100 letters, digits, '_', '.', '-'")
        if name in names:
            raise JobFileError(f"job name {name!r} appears twice")
        names.add(name)
        jobs.append(_parse_job(name, {**defaults, **raw}, Path(base)))
    _link_dependencies(jobs, names)
    return jobs


def frame_ranges(n_frames: int, chunk_frames: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of at most ``chunk_frames`` frames covering ``0..n_frames`` in order."""
    if n_frames < 0 or chunk_frames <= 0:
        raise ValueError(f"n_frames {n_frames} must be >= 0 and chunk_frames {chunk_frames} > 0")
    return [(a, min(a + chunk_frames, n_frames)) for a in range(0, n_frames, chunk_frames)]


def default_chunk_frames(n_frames: int, workers: int) -> int:
    """Frames per task when a render job does not say: the frames shared evenly by the workers."""
    return max(1, math.ceil(n_frames / max(1, workers)))


# -- one job ---------------------------------------------------------------------------------------------------
def _parse_job(name: str, raw: Mapping[str, Any], base: Path) -> Job:
    kind = raw.get("kind")
    job = Job(name=name, kind=kind if isinstance(kind, str) else "?", cwd=os.path.abspath(base))
    try:
        if kind not in KINDS:
            raise ConfigError(f"'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
        unknown = set(raw) - _KEYS[kind]
        if unknown:
            raise ConfigError(f"unknown key(s) {sorted(unknown)} for a {kind} job (allowed: {sorted(_KEYS[kind])})")
        raw = {k: (_resolve(base, v) if k in _PATH_KEYS and isinstance(v, str) else v) for k, v in raw.items()}
        job.retries = _non_negative_int(raw.get("retries", DEFAULT_RETRIES), "retries")
        after = raw.get("after", [])
        after = [after] if isinstance(after, str) else after
        if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
            raise ConfigError("'after' must be a job name or a list of job names")
        job.after = list(after)
        prefix = ["--device", str(raw["device"])] if raw.get("device") else []
        if kind == "train":
            _fill_train(job, raw)
        elif kind == "render":
            _fill_render(job, raw)
        else:
            _fill_command(job, raw, base)
        job.argv = prefix + job.argv
        args = _parse_argv(job.argv)
        if kind == "render":
            from ngp_sdk.cli import render_frame_count

            job.n_frames, job.fps = render_frame_count(args), args.fps
    except ConfigError as e:
        job.error = f"job {name!r}: {e}"
    return job


def _fill_train(job: Job, raw: Mapping[str, Any]) -> None:
    from ngp_sdk.core.registry import primitives

    trainable = sorted(s.name for s in primitives() if s.name in ("nerf", "sdf", "image"))
    primitive = raw.get("primitive")
    if primitive not in trainable:
        raise ConfigError(f"'primitive' must be one of {', '.join(trainable)}, got {primitive!r} (other commands: "
                          f"kind: command)")
    for key in ("data", "out"):
        if not isinstance(raw.get(key), str):
            raise ConfigError(f"a train job needs '{key}' (a path)")
    if ("steps" in raw) == ("seconds" in raw):
        raise ConfigError("a train job needs exactly one of 'steps' and 'seconds'")
    budget = ["--steps", str(raw["steps"])] if "steps" in raw else ["--seconds", str(raw["seconds"])]
    config = ["--config", str(raw["config"])] if raw.get("config") is not None else []
    job.argv = [primitive, "train", raw["data"], *budget, *config, "--out", raw["out"],
                *_flags(raw.get("options")), "--json", "--no-progress"]
    job.outputs = [raw["out"]]


def _fill_render(job: Job, raw: Mapping[str, Any]) -> None:
    for key in ("snapshot", "out"):
        if not isinstance(raw.get(key), str):
            raise ConfigError(f"a render job needs '{key}' (a path)")
    flags = {k: raw[k] for k in _RENDER_FLAGS if k in raw}
    job.argv = ["render", raw["snapshot"], *_flags(flags), *_flags(raw.get("options")), "--out", raw["out"]]
    job.outputs = [raw["out"]]
    job.snapshot = raw["snapshot"]
    if raw.get("chunk_frames") is not None:
        job.chunk_frames = _non_negative_int(raw["chunk_frames"], "chunk_frames") or None
        if job.chunk_frames is None:
            raise ConfigError("'chunk_frames' must be a positive integer")


def _fill_command(job: Job, raw: Mapping[str, Any], base: Path) -> None:
    args = raw.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, (str, int, float)) for a in args):
        raise ConfigError("a command job needs 'args': the ngp arguments as a list of strings")
    if str(args[0]) in ("batch", "serve"):
        raise ConfigError(f"'ngp {args[0]}' cannot run as a batch job")
    outputs = raw.get("outputs", [])
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise ConfigError("'outputs' must be a list of paths")
    job.argv = [str(a) for a in args] + _flags(raw.get("options"))
    job.outputs = [_resolve(base, o) for o in outputs]


def _flags(options: Any) -> list[str]:
    """``{"eval_images": 4, "depth": True}`` -> ``["--eval-images", "4", "--depth"]``."""
    if options is None:
        return []
    if not isinstance(options, Mapping):
        raise ConfigError(f"'options' must be a mapping of flag names to values, got {type(options).__name__}")
    out: list[str] = []
    for key, value in options.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return out


def _parse_argv(argv: Sequence[str]) -> argparse.Namespace:
    """Parse with ``ngp``'s own parser; its usage error becomes a :class:`ConfigError`."""
    from ngp_sdk.cli import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return build_parser().parse_args(list(argv))
    except SystemExit:
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        raise ConfigError(f"`ngp {' '.join(argv)}`: {lines[-1] if lines else 'invalid arguments'}") from None


def _resolve(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return os.path.abspath(p if p.is_absolute() else (base / p))


def _non_negative_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"'{key}' must be a non-negative integer, got {value!r}")
    return value


def _link_dependencies(jobs: list[Job], names: set[str]) -> None:
    """Add the training job that writes a render job's snapshot to its ``after``; check the names."""
    writers = {str(Path(o).resolve()): j.name for j in jobs for o in j.outputs if j.error is None}
    for job in jobs:
        if job.snapshot is not None:
            writer = writers.get(str(Path(job.snapshot).resolve()))
            if writer is not None and writer != job.name and writer not in job.after:
                job.after.append(writer)
        missing = [a for a in job.after if a not in names or a == job.name]
        if missing and job.error is None:
            job.error = f"job {job.name!r}: 'after' names no other job: {missing}"
    _check_cycles(jobs)


def _check_cycles(jobs: list[Job]) -> None:
    graph = {j.name: j.after for j in jobs}
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise JobFileError(f"jobs depend on each other in a cycle: {' -> '.join(trail + [n])}")
        state[n] = 1
        for m in graph.get(n, []):
            visit(m, trail + [n])
        state[n] = 2

    for j in jobs:
        visit(j.name, [])
