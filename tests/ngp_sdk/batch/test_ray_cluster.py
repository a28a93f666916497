"""``ngp batch --ray-address``: a batch joins a Ray cluster started with ``ray start --head`` (the cluster path,
with the head on this machine). Kept apart from the local-Ray tests: ``ray stop`` ends every Ray here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ngp batch needs the cluster extra: pip install 'ngp-sdk[cluster]'")

from tests.ngp_sdk.batch.conftest import ray_env  # noqa: E402


def test_joins_a_running_ray_cluster(inputs, tmp_path):
    ray_bin = Path(sys.executable).with_name("ray")
    port = "6391"
    start = subprocess.run([str(ray_bin), "start", "--head", "--port", port, "--num-cpus", "2",
                            "--include-dashboard", "false", "--disable-usage-stats"], capture_output=True, text=True,
                           env=ray_env(), timeout=180)
    assert start.returncode == 0, start.stderr
    try:
        jobs = tmp_path / "jobs.yaml"
        jobs.write_text(f"jobs:\n  - {{name: a, kind: train, primitive: image, data: {inputs / 'a.png'}, steps: 5,"
                        f" config: {inputs / 'img.json'}, out: a.ingp}}\n")
        r = subprocess.run([sys.executable, "-m", "ngp_sdk.cli", "batch", str(jobs), "--ray-address",
                            f"127.0.0.1:{port}", "--json", "--no-progress"], capture_output=True, text=True,
                           env=ray_env(), timeout=300)
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        assert summary["address"] == f"127.0.0.1:{port}" and summary["ok"] == 1 and summary["workers"] == 2
        assert (tmp_path / "a.ingp").is_file()
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=ray_env(), timeout=120)
