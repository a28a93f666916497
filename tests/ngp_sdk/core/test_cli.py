"""The ``ngp`` command line, run as a user would (subprocess): JSON output, round trips, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]


def ngp(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ngp_sdk.cli", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=600)


@pytest.fixture(scope="module")
def small_setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    y, x = np.mgrid[0:40, 0:56]
    img = np.stack([x * 4, y * 6, (x + y) * 2], axis=-1).astype(np.uint8)
    iio.imwrite(d / "in.png", img)
    cfg = {"encoding": {"n_levels": 6, "log2_hashmap_size": 12}, "network": {"n_neurons": 16, "n_hidden_layers": 1},
           "training": {"batch_size": 2048}}
    (d / "small.json").write_text(json.dumps(cfg))
    return d


def test_train_json_then_render(small_setup):
    d = small_setup
    r = ngp("image", "train", str(d / "in.png"), "--steps", "20", "--config", str(d / "small.json"),
            "--out", str(d / "s.ingp"), "--preview", str(d / "p.png"), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["steps"] == 20 and result["psnr"] > 10 and result["seconds"] > 0
    assert {"loss", "samples_per_second", "snapshot", "preview"} <= set(result)
    assert iio.imread(d / "p.png").shape == (40, 56, 3)
    r = ngp("image", "render", str(d / "s.ingp"), "--width", "30", "--height", "20", "--out", str(d / "r.png"))
    assert r.returncode == 0, r.stderr
    assert iio.imread(d / "r.png").shape == (20, 30, 3)


def test_render_round_trip_is_identical(small_setup):
    d = small_setup
    assert ngp("image", "render", str(d / "s.ingp"), "--out", str(d / "a.exr")).returncode == 0
    assert ngp("image", "render", str(d / "s.ingp"), "--out", str(d / "b.exr")).returncode == 0
    from ngp_sdk.image.data import load_image

    np.testing.assert_array_equal(load_image(d / "a.exr").pixels, load_image(d / "b.exr").pixels)


def _assert_one_line_error(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "CUDA" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_user_errors_are_one_line(small_setup, tmp_path):
    d = small_setup
    raw = (d / "s.ingp").read_bytes()
    (tmp_path / "trunc.ingp").write_bytes(raw[: len(raw) // 3])
    _assert_one_line_error(ngp("image", "render", str(tmp_path / "trunc.ingp"), "--out", str(tmp_path / "x.png")),
                           "truncated or corrupt")
    _assert_one_line_error(ngp("image", "render", str(d / "in.png"), "--out", str(tmp_path / "x.png")),
                           "not an ngp-sdk snapshot")
    (tmp_path / "bad.json").write_text('{"encoding": {"n_levls": 4}}')
    _assert_one_line_error(ngp("image", "train", str(d / "in.png"), "--steps", "1", "--config",
                               str(tmp_path / "bad.json")), "unknown key 'n_levls'")
    _assert_one_line_error(ngp("image", "train", str(tmp_path / "nope.png"), "--steps", "1"), "image not found")
    _assert_one_line_error(ngp("image", "render", str(tmp_path / "nope.ingp"), "--out", "x.png"),
                           "snapshot not found")


def test_argument_errors_exit_nonzero():
    r = ngp("image", "train", "x.png")  # neither --steps nor --seconds
    assert r.returncode == 2 and "Traceback" not in r.stderr
