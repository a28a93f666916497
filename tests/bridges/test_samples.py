"""The runnable sample, shortened: samples/stream_dataset.py spawns `ngp serve`, streams frames, renders views."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.ngp_sdk.nerf.synthetic_nerf import write_sphere_dataset

ROOT = Path(__file__).resolve().parents[2]


def test_stream_dataset_sample_against_a_spawned_server(tmp_path):
    data = write_sphere_dataset(tmp_path / "sphere", n_train=8, n_val=2, size=32)
    r = subprocess.run([sys.executable, str(ROOT / "samples" / "stream_dataset.py"), str(data), "--spawn-server",
                        "--rate", "40", "--downscale", "1", "--eval-after", "20", "--min-steps", "100",
                        "--eval-size", "32", "--max-val", "2", "--json"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["frames_sent"] == 8 and out["n_val"] == 2 and out["render_size"] == 32
    assert out["step"] >= 100 and out["step_after_eval"] >= out["step"]  # trained while frames arrived
    assert out["psnr"] > 13.0  # a blank white image scores 11.1 dB on these views
    assert out["render_ms_median"] > 0
