"""Camera pose refinement and depth supervision of the NeRF primitive, offline and live, on scenes made in code."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import warp as wp

from ngp_sdk import Session
from ngp_sdk.core.cameras import nerf_matrix_to_ngp
from ngp_sdk.core.errors import DataError, SnapshotError
from ngp_sdk.nerf.config import NerfConfig
from ngp_sdk.nerf.data import load_nerf_dataset
from ngp_sdk.nerf.live import LiveNerfTask
from ngp_sdk.nerf.refine import (
    CameraRefiner,
    align_poses,
    coarse_to_fine_weights,
    perturb_nerf_poses,
    pose_errors,
)
from ngp_sdk.nerf.synthetic import DEMO_SCENE, write_synthetic_dataset
from ngp_sdk.nerf.task import NerfTask
from tests.ngp_sdk.nerf.test_nerf_task import TINY
from tests.reference.camera_refinement_ref import rotation_matrix


def _cfg(**training) -> NerfConfig:
    return NerfConfig.from_dict({**TINY, "training": {**TINY["training"], **training}})


@pytest.fixture(scope="module")
def depth_scene(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("depth"), DEMO_SCENE, n_train=16, n_val=2, size=32,
                                   depth=True)


def _noisy(ds, rotation_deg: float, translation: float, seed: int = 0):
    noisy = perturb_nerf_poses(ds.nerf_poses, rotation_deg=rotation_deg, translation_fraction=translation, seed=seed)
    return dataclasses.replace(ds, nerf_poses=noisy,
                               poses=nerf_matrix_to_ngp(noisy[:, :3], ds.scale, ds.offset).astype(np.float32))


def test_perturbation_and_errors_are_exact():
    rng = np.random.default_rng(0)
    truth = np.tile(np.eye(4), (5, 1, 1))
    for p in truth:
        p[:3, :3] = rotation_matrix(rng.normal(size=3))
        p[:3, 3] = rng.normal(size=3) * 3
    noisy = perturb_nerf_poses(truth, rotation_deg=1.0, translation_fraction=0.02, seed=3)
    e = pose_errors(noisy, truth)
    assert e["rotation_deg_mean"] == pytest.approx(1.0, abs=1e-9)
    assert e["rotation_deg_max"] == pytest.approx(1.0, abs=1e-9)
    dist = np.linalg.norm(truth[:, :3, 3], axis=1)
    assert e["position_mean"] == pytest.approx(float(np.mean(0.02 * dist)), rel=1e-9)
    np.testing.assert_array_equal(perturb_nerf_poses(truth, rotation_deg=1.0, translation_fraction=0.02, seed=3),
                                  noisy)
    # a rigid motion of every pose is invisible after alignment
    moved = truth.copy()
    r = rotation_matrix([0.3, -0.2, 0.5])
    moved[:, :3, :3] = r @ truth[:, :3, :3]
    moved[:, :3, 3] = truth[:, :3, 3] @ r.T + [1.0, 2.0, -0.5]
    assert pose_errors(moved, truth)["rotation_deg_mean"] > 10
    aligned = pose_errors(moved, truth, align=True)
    assert aligned["rotation_deg_mean"] < 1e-6 and aligned["position_mean"] < 1e-9
    np.testing.assert_allclose(align_poses(moved, truth), truth, atol=1e-9)


def test_refiner_state_round_trip_and_corrupt_state():
    base = np.tile(np.eye(3, 4, dtype=np.float32), (3, 1, 1))
    base[:, :, 3] = [[0.0, 0.0, -2.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
    r = CameraRefiner(base, wp.get_device("cpu"), refine=np.array([True, False, True]), pivot=(0.5, 0.5, 0.5),
                      local=True)
    g = np.ones((3, 6), np.float32)
    g[1] = 0  # what the gradient kernel leaves a camera that is not refined
    r.grads.assign(wp.array(g, device="cpu"))
    r.end_step()
    corr = r.corrections.numpy()
    assert np.abs(corr[0]).min() > 0 and np.all(corr[1] == 0)  # the masked camera is untouched
    assert not r.grads.numpy().any()  # gradients are consumed by the update
    r2 = CameraRefiner(base, wp.get_device("cpu"))
    r2.load_state_dict(r.state_dict())
    np.testing.assert_array_equal(r2.corrected_poses(), r.corrected_poses())
    assert r2.n_updates == 1 and r2.active and r2.pivot == (0.5, 0.5, 0.5) and r2.local  # its parametrisation
    with pytest.raises(SnapshotError, match="incomplete"):
        r2.load_state_dict({**r.state_dict(), "pivot": [1.0, 2.0]})
    r2.set_camera(0, base[0], refine=False)  # a new frame in slot 0 starts over
    np.testing.assert_array_equal(r2.corrections.numpy()[0], 0)
    np.testing.assert_array_equal(r2.corrected_poses()[0], base[0])
    with pytest.raises(SnapshotError):
        r2.load_state_dict({"corrections": np.zeros((2, 6)), "m": np.zeros((2, 6)), "v": np.zeros((2, 6)),
                            "mask": [1, 1], "n_updates": 1})
    with pytest.raises(SnapshotError):
        r2.load_state_dict({"corrections": np.zeros((3, 6))})


@pytest.mark.parametrize("pivot", ["scene", "camera"])
def test_refinement_recovers_perturbed_poses(depth_scene, tmp_path, pivot):
    """Train on the true poses, then perturb every pose by 3 degrees and 4 %: refining brings the poses back
    (the mean rotation error falls by 40 %, the position error by 20 %: on a scene of smooth spheres a rotation
    about the camera centre and a sideways move look alike), with the rotation about the scene centre (default)
    or the camera's (instant-ngp), and exports them as a loadable transforms file."""
    ds = load_nerf_dataset(depth_scene, split="train")
    task = NerfTask(_cfg(optimize_extrinsics=True, extrinsic_learning_rate=2e-3, extrinsic_pivot=pivot), ds)
    assert (task.refiner.pivot is None) == (pivot == "camera")
    for i in range(len(ds)):  # the true poses, unrefined, while the field forms
        task.refiner.set_camera(i, ds.poses[i], refine=False)
    for _ in range(300):
        task.step()
    noisy = _noisy(ds, 3.0, 0.04, seed=1)
    for i in range(len(ds)):
        task.refiner.set_camera(i, noisy.poses[i], refine=True)
    before = pose_errors(task.training_poses(), ds.nerf_poses)
    assert before["rotation_deg_mean"] == pytest.approx(3.0, abs=0.01)
    for _ in range(500):
        task.step()
    after = pose_errors(task.training_poses(), ds.nerf_poses)
    assert after["rotation_deg_mean"] < 0.6 * before["rotation_deg_mean"], after
    assert after["position_mean"] < 0.8 * before["position_mean"], after
    out = task.export_poses(tmp_path / "refined" / "transforms.json")
    back = load_nerf_dataset(out, load_images=False)
    np.testing.assert_allclose(back.nerf_poses, task.training_poses(), atol=1e-6)
    assert [p.resolve() for p in back.image_paths] == [p.resolve() for p in ds.image_paths]
    assert back.intrinsics == ds.intrinsics
    assert json.loads((tmp_path / "refined" / "transforms.json").read_text())["scale"] == ds.scale
    # snapshots keep the corrections
    path = Session(task).save(tmp_path / "refined.ingp")
    again = Session.load(path, dataset=ds).task
    np.testing.assert_allclose(again.training_poses(), task.training_poses(), atol=1e-6)


def test_depth_images_load_as_world_z_depth(depth_scene):
    ds = load_nerf_dataset(depth_scene, split="train")
    assert ds.has_depth and ds.integer_depth_scale > 0
    d = ds.load_depth(0)
    assert d.shape == (32, 32) and d.dtype == np.float32
    alpha = ds.images[0][..., 3]
    assert np.all(d[alpha == 0] == 0) and np.all(d[alpha == 255] > 0)
    # the nearest surface is no nearer than the camera's distance minus the scene's extent
    cam = np.linalg.norm(ds.nerf_poses[0][:3, 3])
    assert cam - 1.5 < d[d > 0].min() < cam
    half = load_nerf_dataset(depth_scene, split="train", downscale=2).load_depth(0)
    assert half.shape == (16, 16)
    assert abs(float(np.median(half[half > 0])) - float(np.median(d[d > 0]))) < 0.1


def test_depth_supervision_trains_depth(depth_scene):
    """With depth_supervision_lambda the step reports a depth loss that falls, and rendered depth follows it."""
    ds = load_nerf_dataset(depth_scene, split="train")
    task = NerfTask(_cfg(depth_supervision_lambda=1.0), ds)
    assert task.depth_supervision
    losses = [task.step()["depth_loss"] for _ in range(200)]
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:5])
    img = task.render_world(ds.nerf_poses[0], ds.intrinsics[0])
    truth = ds.load_depth(0)
    both = (truth > 0) & (img.opacity > 0.9)
    assert both.sum() > 100
    assert float(np.median(np.abs(img.depth[both] - truth[both]))) < 0.1
    plain = NerfTask(_cfg(), ds)
    assert not plain.depth_supervision and "depth_loss" not in plain.step()


def test_live_frames_with_depth_and_noisy_poses(depth_scene):
    ds = load_nerf_dataset(depth_scene, split="train")
    task = LiveNerfTask(_cfg(depth_supervision_lambda=1.0), scale=ds.scale, offset=ds.offset, capacity=8)
    intr = ds.intrinsics[0]
    assert task.refiner is None
    for i in range(6):
        depth = ds.load_depth(i) if i % 2 == 0 else None
        task.add_frame(ds.images[i], ds.nerf_poses[i], intr, depth=depth, refine_pose=i >= 3)
    with pytest.raises(DataError, match="depth"):
        task.add_frame(ds.images[0], ds.nerf_poses[0], intr, depth=np.zeros((5, 5)))
    metrics = [task.step() for _ in range(30)]
    assert task.refiner is not None and task.refiner.active
    np.testing.assert_array_equal(task.refiner.state_dict()["mask"][:6], [False] * 3 + [True] * 3)
    assert all("depth_loss" in m for m in metrics)
    poses = task.training_poses()
    assert poses.shape == (6, 4, 4)
    np.testing.assert_allclose(poses[:3], ds.nerf_poses[:3], atol=1e-5)  # exact poses stay exact
    assert not np.allclose(poses[3:], ds.nerf_poses[3:6], atol=1e-7)  # noisy ones moved
    # without depth supervision depth is accepted and ignored
    plain = LiveNerfTask(_cfg(), scale=ds.scale, offset=ds.offset, capacity=4)
    assert not plain.depth_supervision
    plain.add_frame(ds.images[0], ds.nerf_poses[0], intr, depth=np.zeros((5, 5)))
    assert "depth_loss" not in plain.step()


def test_focal_length_refinement_moves_towards_the_truth(depth_scene, tmp_path):
    """A field trained with the true focal length, then every camera's focal length made 6 % too long: the shared
    focal factor learned brings it back within 1.5 %. (From scratch, a field of an object seen from one distance
    largely absorbs a shared focal error - focal length and distance trade off - so the test starts trained.)"""
    ds = load_nerf_dataset(depth_scene, split="train")
    task = NerfTask(_cfg(optimize_focal_length=True, intrinsic_learning_rate=2e-3, extrinsic_start_step=300), ds)
    assert task.refiner is not None and not task.refiner.active  # poses stay as given
    for _ in range(300):
        task.step()
    r = task.refiner
    wrong = r.base_params.numpy()
    wrong[:, :2] *= 1.06
    r.base_params.assign(wp.array(wrong, device="cpu"))
    r.params.assign(r.base_params)
    for _ in range(200):
        task.step()
    f = r.focal_scale
    assert abs(1.06 * f - 1.0) < 0.015, f
    np.testing.assert_allclose(task.training_poses(), ds.nerf_poses, atol=1e-6)
    np.testing.assert_allclose(task._cams[1].numpy()[:, 0], wrong[:, 0] * f, rtol=1e-5)  # noqa: SLF001 - the rays'
    out = task.export_poses(tmp_path / "focal.json")
    doc = json.loads(open(out).read())
    assert doc["frames"][0]["fl_x"] == pytest.approx(ds.intrinsics[0].fx * f, rel=1e-5)


def test_cli_trains_with_refinement_and_depth_and_exports_poses(depth_scene, tmp_path, capsys):
    from ngp_sdk.cli import main

    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    out = tmp_path / "poses" / "transforms.json"
    assert main(["nerf", "train", str(depth_scene), "--steps", "6", "--json", "--no-progress", "--config", str(cfg),
                 "--optimize-extrinsics", "--depth-lambda", "0.5", "--export-poses", str(out)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["poses"] == str(out) and out.is_file()
    back = load_nerf_dataset(out, load_images=False)
    assert len(back) == 16
    assert main(["nerf", "train", str(depth_scene), "--steps", "1", "--depth-lambda", "-1", "--no-progress"]) == 2


def test_coarse_to_fine_weights():
    """BARF's eq. 14: alpha rises linearly from start_levels to n_levels; levels below alpha - 1 count fully, one
    level fades in with a raised cosine, the rest are off; all ones once the schedule ends or when it is off."""
    w0 = coarse_to_fine_weights(0, 16, steps=100, start_levels=4)
    np.testing.assert_array_equal(w0, [1] * 4 + [0] * 12)
    mid = coarse_to_fine_weights(25, 16, steps=100, start_levels=4)  # alpha = 7
    np.testing.assert_array_equal(mid, [1] * 7 + [0] * 9)
    half = coarse_to_fine_weights(27, 16, steps=100, start_levels=4)  # alpha = 7.24: level 7 at 0.24
    assert half[7] == pytest.approx((1 - np.cos(np.pi * 0.24)) / 2, rel=1e-5) and half[8] == 0 and half[6] == 1
    assert np.all(np.diff(half) <= 0)
    np.testing.assert_array_equal(coarse_to_fine_weights(100, 16, steps=100, start_levels=4), np.ones(16))
    np.testing.assert_array_equal(coarse_to_fine_weights(5, 16, steps=0, start_levels=4), np.ones(16))


def test_task_follows_the_coarse_to_fine_schedule(depth_scene, tmp_path):
    ds = load_nerf_dataset(depth_scene, split="train")
    levels = TINY["encoding"]["n_levels"]
    task = NerfTask(_cfg(optimize_extrinsics=True, coarse_to_fine_steps=4, coarse_to_fine_start_levels=0), ds)
    seen = []
    for _ in range(6):
        task.step()
        seen.append(task.field.level_weights)
    assert seen[0] is not None and seen[0].sum() == pytest.approx(0.0)  # step 0: alpha = 0
    assert seen[2] is not None and 0 < seen[2].sum() < levels
    assert seen[4] is None and seen[5] is None  # the schedule is over: every level, no weighting pass
    # a snapshot taken mid-schedule renders with the weights it trained with
    task2 = NerfTask(_cfg(optimize_extrinsics=True, coarse_to_fine_steps=8, coarse_to_fine_start_levels=1), ds)
    for _ in range(3):
        task2.step()
    task2._apply_coarse_to_fine()
    again = Session.load(Session(task2).save(tmp_path / "c2f.ingp")).task
    np.testing.assert_allclose(again.field.level_weights, task2.field.level_weights)
    # without pose refinement the schedule does not apply
    plain = NerfTask(_cfg(coarse_to_fine_steps=4), ds)
    plain.step()
    assert plain.field.level_weights is None
