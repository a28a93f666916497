"""Job files of ``ngp batch`` without Ray: parsing into ``ngp`` command lines, errors, dependencies, frame ranges,
and the worker functions called directly."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ngp_sdk.batch.jobs import JobFileError, frame_ranges, load_jobs, parse_jobs
from ngp_sdk.batch.worker import render_range, run_command


def test_train_job_becomes_the_train_command_line(tmp_path):
    (jobs,) = parse_jobs({"defaults": {"retries": 3}, "jobs": [
        {"name": "lego", "kind": "train", "primitive": "nerf", "data": "data/lego", "seconds": 30,
         "config": "c.json", "out": "out/lego.ingp", "device": "cpu",
         "options": {"downscale": 4, "eval_images": 2, "save_optimizer": True, "preview": None}}]}, base=tmp_path)
    assert jobs.error is None, jobs.error
    assert jobs.argv == ["--device", "cpu", "nerf", "train", str(tmp_path / "data/lego"), "--seconds", "30",
                         "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "out/lego.ingp"),
                         "--downscale", "4", "--eval-images", "2", "--save-optimizer", "--json", "--no-progress"]
    assert jobs.retries == 3 and jobs.outputs == [str(tmp_path / "out/lego.ingp")]


def test_render_job_counts_frames_and_runs_after_the_job_writing_its_snapshot(tmp_path):
    train, render, orbit = parse_jobs([
        {"name": "t", "kind": "train", "primitive": "sdf", "data": "m.obj", "steps": 10, "out": "s.ingp"},
        {"name": "r", "kind": "render", "snapshot": "s.ingp", "camera_path": "p.json", "frames": 90,
         "width": 64, "out": "v.mp4", "chunk_frames": 20},
        {"name": "o", "kind": "render", "snapshot": "other.ingp", "orbit": 7, "out": "o", "after": "r"},
    ], base=tmp_path)
    assert train.error is None and render.error is None and orbit.error is None
    assert render.after == ["t"] and render.n_frames == 90 and render.chunk_frames == 20
    assert orbit.after == ["r"] and orbit.n_frames == 7
    assert render.argv[:2] == ["render", str(tmp_path / "s.ingp")]
    assert "--camera-path" in render.argv and render.argv[-2:] == ["--out", str(tmp_path / "v.mp4")]


@pytest.mark.parametrize("raw, needle", [
    ({"kind": "train", "primitive": "sdf", "data": "m.obj", "steps": 5, "out": "x", "stepz": 3}, "unknown key"),
    ({"kind": "train", "primitive": "nrc", "data": "m.obj", "steps": 5, "out": "x"}, "'primitive' must be one of"),
    ({"kind": "train", "primitive": "sdf", "data": "m.obj", "out": "x"}, "exactly one of 'steps' and 'seconds'"),
    ({"kind": "train", "primitive": "sdf", "data": "m.obj", "steps": -1, "out": "x"}, "must be a positive integer"),
    ({"kind": "render", "snapshot": "s.ingp", "orbit": 3}, "needs 'out'"),
    ({"kind": "render", "snapshot": "s", "out": "o", "camera_path": "p", "orbit": 3}, "not allowed with"),
    ({"kind": "render", "snapshot": "s", "out": "o", "chunk_frames": 0}, "chunk_frames"),
    ({"kind": "command", "args": ["serve"]}, "cannot run as a batch job"),
    ({"kind": "command", "args": []}, "needs 'args'"),
    ({"kind": "paint"}, "'kind' must be one of"),
    ({"kind": "train", "primitive": "sdf", "data": "m", "steps": 1, "out": "x", "after": "ghost"}, "names no other"),
    ({"kind": "train", "primitive": "sdf", "data": "m", "steps": 1, "out": "x", "options": [1]}, "'options' must"),
])
def test_a_malformed_job_fails_alone_with_its_name(raw, needle):
    good = {"name": "good", "kind": "command", "args": ["render", "s.ingp", "--out", "x.png"]}
    bad, ok = parse_jobs([{"name": "broken", **raw}, good])
    assert bad.error is not None and "'broken'" in bad.error and needle in bad.error, bad.error
    assert ok.error is None


@pytest.mark.parametrize("doc, needle", [
    ({}, "non-empty list of jobs"),
    ({"jobs": []}, "non-empty list of jobs"),
    ({"jobs": [1]}, "expected a mapping"),
    ({"jobz": []}, "unknown top-level key"),
    ([{"name": "a b", "kind": "command", "args": ["x"]}], "must be 1-100 letters"),
    ([{"name": "a", "kind": "command", "args": ["x"]}, {"name": "a", "kind": "command", "args": ["y"]}], "twice"),
    ([{"name": "a", "kind": "command", "args": ["x"], "after": "b"},
      {"name": "b", "kind": "command", "args": ["x"], "after": "a"}], "cycle"),
])
def test_a_malformed_file_is_refused(doc, needle):
    with pytest.raises(JobFileError, match=needle):
        parse_jobs(doc)


def test_job_files_yaml_and_json_resolve_paths_beside_the_file(tmp_path):
    (tmp_path / "j.yaml").write_text("jobs:\n  - {name: a, kind: train, primitive: image, data: in.png, steps: 3,"
                                     " out: o.ingp}\n")
    (tmp_path / "j.json").write_text(json.dumps([{"name": "a", "kind": "train", "primitive": "image",
                                                  "data": "in.png", "steps": 3, "out": "o.ingp"}]))
    a, b = load_jobs(tmp_path / "j.yaml")[0], load_jobs(tmp_path / "j.json")[0]
    assert a.argv == b.argv and a.argv[2] == str(tmp_path / "in.png")
    (tmp_path / "bad.yaml").write_text("jobs: [unclosed\n")
    with pytest.raises(JobFileError, match="not valid YAML"):
        load_jobs(tmp_path / "bad.yaml")
    with pytest.raises(JobFileError, match="cannot read job file"):
        load_jobs(tmp_path / "missing.yaml")


@given(st.integers(0, 500), st.integers(1, 64))
def test_frame_ranges_cover_every_frame_once_in_order(n, chunk):
    ranges = frame_ranges(n, chunk)
    frames = [i for a, b in ranges for i in range(a, b)]
    assert frames == list(range(n))
    assert all(0 < b - a <= chunk for a, b in ranges)


def test_worker_functions_report_job_errors_instead_of_raising(tmp_path):
    out = run_command(["image", "train", str(tmp_path / "nope.png"), "--steps", "1", "--json", "--no-progress"],
                      name="x", log_path=str(tmp_path / "x.log"))
    assert out["status"] == "failed" and out["exit_status"] == 2 and "image not found" in out["error"]
    log = (tmp_path / "x.log").read_text()
    assert log.startswith("== x attempt 1 pid ") and "image not found" in log
    out = render_range(["render", str(tmp_path / "nope.ingp"), "--orbit", "4", "--out", str(tmp_path / "o")], 0, 2,
                       name="y")
    assert out["status"] == "failed" and out["frames"] == [] and "nope.ingp" in out["error"]


def test_worker_renders_a_frame_range_equal_to_those_frames_of_the_whole_render(tmp_path):
    from ngp_sdk.cli import build_parser, render_snapshot_frames
    from ngp_sdk.core.meshes import TriangleMesh
    from ngp_sdk.core.session import Session
    from tests.ngp_sdk.sdf.test_sdf_task import _icosphere, _tiny_config

    v, f = _icosphere(2, radius=0.8)
    s = Session.sdf(TriangleMesh(v, f, name="ico"), config=_tiny_config(2048), device="cpu")
    s.train(steps=20, progress=False)
    s.save(tmp_path / "s.ingp")
    argv = ["render", str(tmp_path / "s.ingp"), "--orbit", "5", "--width", "24", "--height", "20", "--out", "x"]
    whole = render_snapshot_frames(build_parser().parse_args(argv))
    part = render_range(argv, 2, 4, name="z")
    assert part["status"] == "ok" and len(part["frames"]) == 2
    for a, b in zip(part["frames"], whole[2:4], strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_core_never_imports_ray():
    code = ("import sys, ngp_sdk, ngp_sdk.cli, ngp_sdk.batch; ngp_sdk.cli.build_parser(); "
            "print('ray' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_the_sample_job_file_is_valid():
    from pathlib import Path

    jobs = load_jobs(Path(__file__).resolve().parents[3] / "samples" / "batch" / "jobs.yaml")
    assert [j.error for j in jobs] == [None] * len(jobs)
    by = {j.name: j for j in jobs}
    assert by["bunny-orbit"].after == ["bunny"] and by["bunny-orbit"].n_frames == 48
    assert by["bunny-mesh"].argv[:2] == ["export", "mesh"]
