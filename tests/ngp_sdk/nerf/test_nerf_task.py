"""The NeRF primitive end to end on a sphere rendered in code: training, snapshots, rendering, mesh, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ngp_sdk import Session
from ngp_sdk.cli import main
from ngp_sdk.core.camera_path import eval_camera_path, load_camera_path, look_at, orbit_poses, quaternion_to_matrix
from ngp_sdk.core.errors import ConfigError, DataError
from ngp_sdk.core.meshes import save_mesh
from ngp_sdk.core.task import Task
from ngp_sdk.nerf.config import NerfConfig
from ngp_sdk.nerf.data import load_nerf_dataset
from ngp_sdk.nerf.export import extract_mesh
from tests.ngp_sdk.nerf.synthetic_nerf import SPHERE_RADIUS, write_sphere_dataset

# a small field and batch so a step takes milliseconds; sampled grid updates from the start
TINY = {
    "encoding": {"n_levels": 8, "log2_hashmap_size": 15, "base_resolution": 8},
    "network": {"n_neurons": 32, "n_hidden_layers": 1},
    "rgb_network": {"n_neurons": 32, "n_hidden_layers": 1, "output_activation": "Sigmoid"},
    "training": {"target_samples": 8192, "initial_rays": 256, "desired_resolution": 256, "grid_warmup_steps": 0,
                 "grid_update_interval": 8, "grid_update_fraction": 0.03},
}
STEPS = 200


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return write_sphere_dataset(tmp_path_factory.mktemp("sphere"), n_train=16, n_val=2, size=32)


@pytest.fixture(scope="module")
def trained(scene_dir, device):
    s = Session.nerf(scene_dir, config=TINY, device=device)
    losses = [s.step()["loss"] for _ in range(STEPS)]
    return s, losses


def test_training_reduces_loss_and_prunes_space(trained, scene_dir):
    s, losses = trained
    assert isinstance(s.task, Task) and s.primitive == "nerf"
    assert np.mean(losses[-15:]) < 0.4 * np.mean(losses[:5])
    assert s.task.grid.occupied_fraction() < 0.5  # the grid carved away empty space
    assert s.task.total_samples > STEPS * 4000
    m = s.task.evaluate(load_nerf_dataset(scene_dir, split="val"))
    assert m["n_images"] == 2 and m["psnr"] > 16 and 0 < m["ssim"] <= 1
    assert s.task.evaluate("val") == m
    assert s.task.evaluate(max_images=3)["psnr"] > m["psnr"] - 3  # training views


def test_snapshot_renders_identically_without_images(trained, tmp_path, device):
    s, _ = trained
    before = s.render(view=3, with_depth=True)
    path = s.save(tmp_path / "sphere.ingp")
    loaded = Session.load(path, device=device)
    assert loaded.primitive == "nerf" and loaded.step_count == s.step_count and loaded.task.dataset is None
    np.testing.assert_array_equal(loaded.render(view=3, with_depth=True), before)
    assert before.shape == (32, 64, 3)
    side = s.render(view=3, with_ground_truth=True, background=(1, 1, 1))
    assert side.shape == (32, 64, 3) and np.all(side[0, 32:] == 1.0)  # ground truth: corner pixel is background
    np.testing.assert_array_equal(loaded.task.grid.bitfield.numpy(), s.task.grid.bitfield.numpy())
    with pytest.raises(DataError, match="without its images"):
        loaded.step()
    with pytest.raises(DataError, match="out of range"):
        loaded.render(view=99)


def test_snapshot_renders_identically_in_a_new_process(trained, tmp_path):
    import subprocess
    import sys

    s, _ = trained
    path = s.save(tmp_path / "sphere.ingp")
    np.save(tmp_path / "before.npy", s.render(view=2))
    code = ("import sys, numpy as np; from ngp_sdk import Session; "
            "s = Session.load(sys.argv[1], device='cpu'); np.save(sys.argv[2], s.render(view=2))")
    r = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "after.npy")], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "after.npy"), np.load(tmp_path / "before.npy"))


def test_render_any_camera_and_size(trained):
    s, _ = trained
    task = s.task
    # a camera looking at the sphere from a new direction sees it in the middle of the frame
    c2w = look_at(task.scene.centre + np.array([0.0, 0.2, 1.0]), task.scene.centre, task.scene.up)
    img = task.render_view(c2w, task.scene.intrinsics[0])
    assert img.opacity[16, 16] > 0.9 and img.opacity[0, 0] < 0.1
    assert s.render(view=0, width=48).shape == (48, 48, 3)


def test_mesh_export(trained, tmp_path):
    trimesh = pytest.importorskip("trimesh")
    s, _ = trained
    mesh = extract_mesh(s.task, resolution=48, threshold=2.5)
    assert len(mesh.faces) > 100
    r = np.linalg.norm(mesh.vertices, axis=1)  # NeRF frame: the sphere is centred at the origin
    assert abs(np.median(r) - SPHERE_RADIUS) < 0.15
    outward = np.sum(mesh.normals * mesh.vertices, axis=1) > 0
    assert outward.mean() > 0.7  # mostly the sphere's outer surface (a short training leaves some floaters)
    tri = mesh.vertices[mesh.faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert np.mean(np.sum(face_n * mesh.normals[mesh.faces].sum(axis=1), axis=1) > 0) > 0.95  # CCW from outside
    for suffix in (".ply", ".obj"):
        p = save_mesh(mesh, tmp_path / f"sphere{suffix}")
        m = trimesh.load(p, process=False)
        assert len(m.vertices) == len(mesh.vertices) and len(m.faces) == len(mesh.faces)
    tm = trimesh.load(tmp_path / "sphere.ply", process=False)
    assert np.asarray(tm.visual.vertex_colors).shape == (len(mesh.vertices), 4)
    with pytest.raises(DataError, match="no surface"):
        extract_mesh(s.task, resolution=16, threshold=1e9)
    # the task method and `ngp export mesh` (which calls it) give the same mesh
    np.testing.assert_array_equal(s.task.extract_mesh(resolution=48).faces, mesh.faces)
    snap = s.save(tmp_path / "sphere.ingp")
    assert main(["export", "mesh", str(snap), "--resolution", "48", "--out", str(tmp_path / "cli.ply")]) == 0
    assert len(trimesh.load(tmp_path / "cli.ply", process=False).faces) == len(mesh.faces)


def test_camera_path_and_orbit(tmp_path):
    q = np.array([0.1, -0.3, 0.2, 0.9])
    rot = quaternion_to_matrix(q)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    keys = [{"R": list(q), "T": [0.5, 1.5, 0.5], "fov": 40.0, "slice": 0.0, "scale": 1.0, "aperture_size": 0.0}] * 3
    p = tmp_path / "path.json"
    p.write_text(json.dumps({"path": keys, "time": 1.0}))
    kf = load_camera_path(p)
    for t in (0.0, 0.37, 1.0):  # the B-spline of equal keyframes is that keyframe
        c2w, fov = eval_camera_path(kf, t)
        np.testing.assert_allclose(c2w[:, :3], rot, atol=1e-12)
        np.testing.assert_allclose(c2w[:, 3], [0.5, 1.5, 0.5], atol=1e-12)
        assert fov == pytest.approx(40.0)
    centre = np.array([0.5, 0.5, 0.5])
    poses = orbit_poses(look_at([0.5, 0.8, 1.5], centre, [0, 1, 0]), centre, [0, 1, 0], 8)
    for c2w in poses:
        assert np.linalg.norm(c2w[:, 3] - centre) == pytest.approx(math.sqrt(0.09 + 1.0))
        assert c2w[1, 3] == pytest.approx(0.8)
        fwd = (centre - c2w[:, 3]) / np.linalg.norm(centre - c2w[:, 3])
        np.testing.assert_allclose(c2w[:, 2], fwd, atol=1e-12)
        assert np.linalg.det(c2w[:, :3]) == pytest.approx(1.0)
    p.write_text(json.dumps({"path": [{"R": [0, 0, 0]}]}))
    with pytest.raises(DataError, match="keyframe 0"):
        load_camera_path(p)


def test_cli_train_render_eval_export(scene_dir, tmp_path, capsys):
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    snap = tmp_path / "s.ingp"
    assert main(["nerf", "train", str(scene_dir), "--steps", "5", "--json", "--no-progress", "--config", str(cfg),
                 "--out", str(snap), "--eval-images", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["steps"] == 5 and out["samples_per_second"] > 0 and out["eval_images"] == 1 and snap.is_file()
    assert main(["render", str(snap), "--orbit", "2", "--out", str(tmp_path / "frames")]) == 0
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_0000.png", "frame_0001.png"]
    path = tmp_path / "path.json"
    path.write_text(json.dumps({"path": [{"R": [0, 0, 0, 1], "T": [0.5, 0.5, -0.5], "fov": 30}] * 2}))
    assert main(["render", str(snap), "--camera-path", str(path), "--frames", "2", "--width", "24",
                 "--out", str(tmp_path / "path.gif")]) == 0
    assert (tmp_path / "path.gif").stat().st_size > 0
    assert main(["nerf", "eval", str(snap), "--data", str(scene_dir / "transforms_val.json"), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["n_images"] == 2 and math.isfinite(ev["psnr"])
    assert main(["export", "mesh", str(tmp_path / "missing.ingp"), "--out", str(tmp_path / "m.ply")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["nerf", "train", str(tmp_path / "nope"), "--steps", "1"]) == 2


def test_config_defaults_and_errors():
    cfg = NerfConfig()
    assert cfg.encoding.n_levels == 16 and cfg.encoding.log2_hashmap_size == 19
    assert cfg.network.n_hidden_layers == 1 and cfg.rgb_network.n_hidden_layers == 2
    assert cfg.optimizer.ema.decay == 0.95 and cfg.optimizer.adam.epsilon == 1e-15 and cfg.loss.otype == "Huber"
    r = cfg.resolved(16)
    assert r.encoding.per_level_scale == pytest.approx(math.exp(math.log(2048 * 16 / 16) / 15))
    assert NerfConfig.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert NerfConfig.from_dict({"encoding": {"per_level_scale": 1.5}}).resolved(4).encoding.per_level_scale == 1.5
    with pytest.raises(ConfigError, match="output_activation"):
        NerfConfig.from_dict({"network": {"output_activation": "Exponential"}})
    with pytest.raises(ConfigError, match="unknown key"):
        NerfConfig.from_dict({"training": {"target_sample": 5}})
    assert cfg.training.extrinsic_pivot == "scene" and cfg.training.coarse_to_fine_steps == 0
    with pytest.raises(ConfigError, match="extrinsic_pivot"):
        NerfConfig.from_dict({"training": {"extrinsic_pivot": "origin"}})
    with pytest.raises(ConfigError, match="coarse_to_fine_steps"):
        NerfConfig.from_dict({"training": {"coarse_to_fine_steps": -1}})


def test_remove_small_components_keeps_the_object():
    from ngp_sdk.core.isosurface import remove_small_components

    vol = np.zeros((40, 40, 40), np.float32)
    vol[5:25, 5:25, 5:25] = 10.0  # the object: 8000 voxels
    vol[35, 35, 35] = 10.0  # a floater: 1 voxel
    vol[30:33, 2:5, 30:33] = 10.0  # 27 voxels
    out = remove_small_components(vol, 2.5, 0.01)
    assert out[35, 35, 35] == 0 and out[31, 3, 31] == 0
    np.testing.assert_array_equal(out[5:25, 5:25, 5:25], 10.0)
    assert remove_small_components(vol, 2.5, 0.002)[31, 3, 31] == 10.0  # 27 >= 0.2% of 8000
    assert remove_small_components(vol, 2.5, 0.0) is vol


def test_phase_profile_covers_the_step_and_changes_nothing(scene_dir, device):
    a = Session.nerf(scene_dir, config=TINY, device=device)
    b = Session.nerf(scene_dir, config=TINY, device=device)
    b.task.timer.enabled = True
    for _ in range(20):
        la, lb = a.step(), b.step()
        assert la == lb  # the timer only observes
    prof = b.task.timer.summary("step")
    assert b.task.timer.steps == 20
    for name in ("batch", "march", "forward/encoding", "forward/density_mlp", "forward/color", "composite",
                 "backward/color", "backward/density_mlp", "backward/encoding", "optimizer/adam", "optimizer/ema",
                 "grid_update"):
        assert name in prof, name
    top = sum(v["share"] for k, v in prof.items() if k != "step")
    assert 0.5 < top <= 1.0  # the named phases account for most of the step and never more than all of it


def test_early_ray_termination_renders_what_evaluating_every_sample_renders(trained):
    import dataclasses

    from ngp_sdk.nerf.render import RenderSettings, render_camera

    s, _ = trained
    t = s.task
    base = RenderSettings(background=(1.0, 1.0, 1.0), min_transmittance=t.config.training.min_transmittance)
    whole = dataclasses.replace(base, first_slice=base.max_samples_per_ray)  # one slice: every marched sample
    args = (t.field, t.grid, t.scene.poses[3], t.scene.intrinsics[3])
    kw = {"aabb": t.scene.aabb, "params": t.optimizer.inference_params()}
    a, b = render_camera(*args, settings=base, **kw), render_camera(*args, settings=whole, **kw)
    np.testing.assert_allclose(a.rgb, b.rgb, atol=1e-5)
    np.testing.assert_allclose(a.opacity, b.opacity, atol=1e-5)
    np.testing.assert_allclose(a.depth, b.depth, rtol=1e-4, atol=1e-5)
