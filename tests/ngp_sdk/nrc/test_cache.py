"""The radiance cache: training targets are unbiased, the cache learns a furnace's analytic radiance, and a cached
frame beats a path-traced frame of the same sample count on the Cornell box."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ngp_sdk.core.config import HashGridConfig, NetworkConfig, TrainingConfig
from ngp_sdk.nrc import PathTracer, build_scene, cornell_box
from ngp_sdk.nrc.config import CachePathConfig, NrcConfig
from ngp_sdk.nrc.renderer import NrcRenderer, relative_mse
from tests.ngp_sdk.nrc.test_path_tracer import closed_box

SMALL = NrcConfig(encoding=HashGridConfig(n_levels=8, log2_hashmap_size=14, per_level_scale=1.5),
                  network=NetworkConfig(n_neurons=32, n_hidden_layers=2),
                  training=TrainingConfig(batch_size=4096))


def test_unbiased_training_targets_average_to_the_scattered_radiance(device):
    """With every training path run to the end (no cache), the target of a path's first vertex is an unbiased
    estimate of its scattered radiance ``Le a / (1 - a)`` (later vertices exist only when Russian roulette let the
    path go on, so their average is conditioned on survival)."""
    cfg = dataclasses.replace(SMALL, nrc=CachePathConfig(train_stride=1, unbiased_every=1, steps_per_frame=0))
    r = NrcRenderer(build_scene(closed_box(0.5, 1.0, size=24)), cfg, device=device, seed=3)
    totals = []
    for _ in range(8):
        r.render_frame(train=False)
        index, targets = r._targets()
        first = index % cfg.nrc.max_train_vertices == 0
        assert first.sum() == 24 * 24  # every pixel's path leaves a record at its first vertex
        totals.append(targets[first].mean())
    assert np.mean(totals) == pytest.approx(1.0, rel=0.03)


def test_cache_learns_the_furnace_and_the_frame_converges(device):
    cfg = dataclasses.replace(SMALL, nrc=CachePathConfig(train_stride=2, steps_per_frame=2))
    r = NrcRenderer(build_scene(closed_box(0.5, 1.0, size=24)), cfg, device=device, seed=4)
    for _ in range(40):
        img = r.render_frame()
    assert img.mean() == pytest.approx(2.0, rel=0.05)  # Le / (1 - a)
    # the cache itself predicts the scattered radiance (1.0) at the frame's cache vertices
    pred = r.cache.predict(r.buffers.query, r.buffers.pixels).numpy()
    valid = r.buffers.query_valid.numpy() > 0
    assert valid.mean() > 0.5 and np.median(pred[valid]) == pytest.approx(1.0, rel=0.1)


@pytest.mark.slow
def test_cached_frame_has_lower_error_than_a_path_traced_frame_of_equal_spp(device):
    scene = build_scene(cornell_box(48, 48))
    reference = PathTracer(scene, device=device, seed=9).render(spp=1024, batch=128)
    r = NrcRenderer(scene, SMALL, device=device, seed=1)
    for _ in range(60):
        r.render_frame()
    nrc = np.median([relative_mse(r.render_frame(), reference) for _ in range(5)])
    pt = PathTracer(scene, device=device, seed=2)
    pt_err = np.median([relative_mse(pt.render(spp=1), reference) for _ in range(5)])
    assert nrc < 0.5 * pt_err, (nrc, pt_err)


def test_session_steps_saves_and_restores_the_cache(tmp_path, device):
    from ngp_sdk import Session

    s = Session.nrc(None, config=SMALL.to_dict(), device=device)  # the built-in Cornell box
    s.task.renderer = NrcRenderer(s.task.scene_data.with_film(16, 16), SMALL, device=device)
    for _ in range(3):
        s.step()
    assert s.step_count == 3 and s.task.samples_per_step == 16 * 16
    path = s.save(tmp_path / "cache.ingp")
    t = Session.load(path, device=device)
    assert t.primitive == "nrc" and t.step_count == 3
    a = s.task.cache.state_dict()
    b = t.task.cache.state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(Exception, match="reference"):
        t.evaluate()


def test_cli_renders_nrc_and_pt_frames_and_a_reference(tmp_path, capsys):
    import json

    from ngp_sdk.cli import main

    out = tmp_path / "nrc.exr"
    assert main(["nrc", "render", "--frames", "3", "--width", "16", "--height", "16", "--out", str(out),
                 "--json", "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["frames"] == 3 and res["mode"] == "nrc" and res["spp"] == 1 and res["ms_per_frame"] > 0
    assert out.is_file()
    assert main(["nrc", "render", "glossy-box", "--mode", "pt", "--spp", "2", "--frames", "2", "--accumulate",
                 "--width", "16", "--height", "16", "--out", str(tmp_path / "pt.png"), "--json",
                 "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["mode"] == "pt"
    assert main(["nrc", "reference", "--spp", "8", "--width", "16", "--height", "12", "--out",
                 str(tmp_path / "ref.exr"), "--json", "--no-progress"]) == 0
    assert main(["nrc", "render", str(tmp_path / "missing.xml"), "--out", str(tmp_path / "x.exr")]) == 2


def test_video_moves_the_light_or_the_camera(tmp_path, capsys, device):
    import json

    from ngp_sdk.cli import main
    from ngp_sdk.nrc.animation import animate, light_offset, orbit_sensor

    scene = build_scene(cornell_box(16, 16))
    np.testing.assert_allclose(light_offset(scene, 0.0), 0.0, atol=1e-9)  # starts where the light is
    assert np.linalg.norm(light_offset(scene, 0.5)) > 0.1
    moved = orbit_sensor(scene, 0.25)
    assert not np.allclose(moved.to_world, scene.sensor.to_world)
    frames, stopped = animate(scene, frames=3, what="light", mode="nrc", config=SMALL, device=device)
    assert len(frames) == 3 and not stopped and all(np.isfinite(f).all() for f in frames)
    assert main(["nrc", "video", "--frames", "3", "--animate", "camera", "--mode", "pt", "--width", "16",
                 "--height", "16", "--out", str(tmp_path / "frames"), "--json", "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["frames"] == 3 and res["animate"] == "camera" and len(list((tmp_path / "frames").glob("*.png"))) == 3


@pytest.mark.slow
def test_demo_writes_a_comparison_picture(tmp_path, device):
    from ngp_sdk.nrc.demo import run_nrc_demo

    r = run_nrc_demo(tmp_path, seconds=2, device=device, progress=False, size=32)
    assert r["frames"] > 2 and r["relmse_nrc"] > 0 and r["relmse_pt_equal_time"] > 0
    from PIL import Image

    assert Image.open(r["preview"]).size == (3 * 32 + 8, 32)
